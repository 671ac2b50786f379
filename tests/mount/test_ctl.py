"""bananactl against a real mount and the emulator: every subcommand and its exit status."""
import json
import os
import subprocess
import threading
import time

import pytest

from conftest import BUILD, binary, ledger, wait_done

PRO2K = ("gemini-3-pro-image", "2K")


def ctl(*args, cwd=None, timeout=60):
    return subprocess.run([binary("bananactl"), *args], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout)


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def test_wait_done_and_status(mount, emulator):
    p = mount.path(*PRO2K, "w.txt")
    write(p, "wait for me")
    r = ctl("wait", "--timeout", "30", p)
    assert r.returncode == 0, r.stderr
    assert os.path.exists(mount.path(*PRO2K, "w.png"))
    r = ctl("status", cwd=mount.mnt)
    assert r.returncode == 0
    assert "gemini-3-pro-image/2K/w.txt" in r.stdout and "done" in r.stdout
    r = ctl("status", mount.path(*PRO2K))
    assert "w.txt" in r.stdout


def test_wait_failed_and_timeout(mount, emulator):
    bad = mount.path(*PRO2K, "bad.txt")
    write(bad, "")
    assert ctl("wait", "--timeout", "30", bad).returncode == 1
    emulator.fault("slow", 1, delay_ms=5000)
    slow = mount.path(*PRO2K, "slow.txt")
    write(slow, "takes a while")
    r = ctl("wait", "--timeout", "0.5", slow)
    assert r.returncode == 2
    assert r.stdout == ""  # quiet when piped


def test_cost_and_ledger(mount, emulator):
    for i in range(2):
        p = mount.path(*PRO2K, f"c{i}.txt")
        write(p, f"costly {i}")
        assert wait_done(p) == "done"
    r = ctl("-m", mount.mnt, "cost", "--by", "model")
    assert r.returncode == 0, r.stderr
    assert "gemini-3-pro-image" in r.stdout and "0.268" in r.stdout
    r = ctl("-m", mount.mnt, "cost", "--by", "route")
    assert "standard" in r.stdout
    r = ctl("-m", mount.mnt, "ledger", "--json")
    assert r.returncode == 0
    lines = [json.loads(l) for l in r.stdout.splitlines() if l.strip()]
    assert lines == ledger(mount.store)
    r = ctl("-m", mount.mnt, "ledger")
    assert r.returncode == 0 and "ok" in r.stdout
    assert ctl("-m", mount.mnt, "cost", "--by", "colour").returncode == 1


def test_cache_stats_verify_gc(mount, emulator):
    p = mount.path(*PRO2K, "cache.txt")
    write(p, "cache me")
    assert wait_done(p) == "done"
    r = ctl("-m", mount.mnt, "cache", "stats")
    assert r.returncode == 0 and "png" in r.stdout
    r = ctl("-m", mount.mnt, "cache", "verify")
    assert r.returncode == 0, r.stdout + r.stderr
    # gc never removes an object still linked in the tree
    r = ctl("-m", mount.mnt, "cache", "gc", "--keep-days", "0")
    assert r.returncode == 0
    objects = os.path.join(mount.store, "cache", "objects")
    assert any(n.endswith(".png") for n in os.listdir(objects))
    # a corrupted object is reported
    obj = [os.path.join(objects, n) for n in os.listdir(objects) if n.endswith(".png")][0]
    os.chmod(obj, 0o644)
    with open(obj, "r+b") as f:
        f.seek(0)
        f.write(b"garbage!")
    r = ctl("-m", mount.mnt, "cache", "verify")
    assert r.returncode == 1


def test_regen_pays_for_a_new_image(mount, emulator):
    p = mount.path(*PRO2K, "re.txt")
    write(p, "again please")
    assert wait_done(p) == "done"
    before = open(mount.path(*PRO2K, "re.png"), "rb").read()
    r = ctl("regen", p)
    assert r.returncode == 0, r.stderr
    time.sleep(0.3)
    assert wait_done(p) == "done"
    assert emulator.stats()["generations"] == 2
    assert open(mount.path(*PRO2K, "re.png"), "rb").read() != before
    assert open(p).read().endswith("again please")


def test_prices_and_doctor(mount, emulator):
    r = ctl("-m", mount.mnt, "prices")
    assert r.returncode == 0 and "gemini-3-pro-image" in r.stdout and "0.134" in r.stdout
    env = dict(os.environ, GEMINI_API_KEY="emulator-key-0123456789abcdef")
    env.pop("GOOGLE_API_KEY", None)
    r = subprocess.run([binary("bananactl"), "-m", mount.mnt, "doctor"], capture_output=True,
                       text=True, env=env, timeout=60)
    assert "emulator-key-0123456789abcdef" not in r.stdout + r.stderr
    assert r.returncode == 0, r.stdout + r.stderr


def test_unknown_command_lists_valid_ones():
    r = ctl("frob")
    assert r.returncode == 1
    assert "status" in r.stderr and "wait" in r.stderr
