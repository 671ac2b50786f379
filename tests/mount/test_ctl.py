"""bananactl against a real mount and the emulator: every subcommand and its exit status."""
import errno
import json
import os
import subprocess
import threading
import time

import pytest

from conftest import BUILD, binary, ledger, status, wait_done, wait_for

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
    # the settled costs (the answers' tokens), which is what the emulator billed
    assert "gemini-3-pro-image" in r.stdout and "%.4f" % emulator.stats()["billed_usd"] in r.stdout
    r = ctl("-m", mount.mnt, "cost", "--by", "route")
    assert "standard" in r.stdout
    r = ctl("-m", mount.mnt, "ledger", "--json")
    assert r.returncode == 0
    lines = [json.loads(l) for l in r.stdout.splitlines() if l.strip()]
    assert lines == ledger(mount.store)
    r = ctl("-m", mount.mnt, "ledger")
    assert r.returncode == 0 and "ok" in r.stdout
    # the table shows how each cost was settled, as the lines say it
    table = [l.split() for l in r.stdout.splitlines()]
    assert "BASIS" in table[0]
    basis = [row[table[0].index("BASIS")] for row in table[1:]]
    assert basis == [l.get("cost_basis", "-") for l in lines] and basis.count("usage") == 2
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


# --- bananactl as a daily tool -------------------------------------------------

COMMANDS = ("status", "wait", "run", "cancel", "cost", "ledger", "cache", "regen", "prices",
            "doctor", "help")


def test_help_on_bananactl_and_every_command():
    for flag in ("--help", "-h"):
        r = ctl(flag)
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith("usage: bananactl") and "cancel path" in r.stdout
    for word in COMMANDS:
        for args in ((word, "--help"), (word, "-h"), ("help", word), ("--help", word)):
            r = ctl(*args)
            assert r.returncode == 0, (args, r.stderr)
            assert r.stdout.startswith("usage: bananactl"), args
            assert word in r.stdout.splitlines()[0], args
    r = ctl("-x", "status")
    assert r.returncode == 1 and "unknown option -x" in r.stderr


def test_global_options_anywhere_and_the_demo_mount(mount, emulator, workdir):
    p = mount.path(*PRO2K, "g.txt")
    write(p, "options anywhere")
    assert wait_done(p) == "done"
    for args in (("cost", "-m", mount.mnt), ("-m", mount.mnt, "cost"),
                 ("cost", "--by", "model", "-m", mount.mnt), ("status", f"-m{mount.mnt}")):
        r = ctl(*args)
        assert r.returncode == 0, (args, r.stderr)
        assert "gemini-3-pro-image" in r.stdout or "%.4f" % emulator.stats()["billed_usd"] in r.stdout, args
    # From a repository root where ./banana is the demo mount.
    repo = os.path.join(workdir, "repo")
    os.makedirs(repo)
    os.symlink(mount.mnt, os.path.join(repo, "banana"))
    r = ctl("status", cwd=repo)
    assert r.returncode == 0, r.stderr
    assert "gemini-3-pro-image/2K/g.txt" in r.stdout
    # A -m that is no mount is refused, wherever it stands.
    r = ctl("cost", "-m", repo)
    assert r.returncode == 1 and "not a bananafs mount" in r.stderr


def test_wait_refuses_what_can_never_be_a_prompt(mount, emulator, workdir):
    folder = mount.path(*PRO2K)
    write(os.path.join(folder, "notes.md"), "not a prompt")
    write(os.path.join(folder, ".h.txt"), "hidden")
    p = os.path.join(folder, "img.txt")
    write(p, "an image")
    assert wait_done(p) == "done"
    outside = os.path.join(workdir, "outside.txt")
    write(outside, "not in a mount")
    for path in (os.path.join(folder, "notes.md"), os.path.join(folder, "img.png"),
                 os.path.join(folder, ".h.txt"), outside, os.path.join(folder, "absent.txt"),
                 mount.path(".bananafs", "stats"), folder):
        r = ctl("wait", path, timeout=10)
        assert r.returncode == 2, (path, r.stderr)
        assert os.path.basename(path) in r.stderr, r.stderr
    # One bad path among good ones: nothing is waited for.
    r = ctl("wait", p, outside, timeout=10)
    assert r.returncode == 2


def test_doctor_asks_the_mount_with_its_own_key(mount_factory, emulator):
    m = mount_factory()
    wrong = dict(os.environ, GEMINI_API_KEY="wrong-key-that-the-emulator-refuses")
    wrong.pop("GOOGLE_API_KEY", None)
    # The shell's key is wrong, the mount's is right: the mount is what counts.
    r = subprocess.run([binary("bananactl"), "doctor"], cwd=m.mnt, capture_output=True, text=True,
                       env=wrong, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "asked by the mount" in r.stdout and "key accepted" in r.stdout
    m.unmount()
    # The mount's key is wrong: doctor says so even from a shell with a good key.
    m = mount_factory(env={"GEMINI_API_KEY": "wrong-key-that-the-emulator-refuses"})
    good = dict(os.environ, GEMINI_API_KEY="emulator-key-0123456789abcdef")
    good.pop("GOOGLE_API_KEY", None)
    r = subprocess.run([binary("bananactl"), "doctor", "-m", m.mnt], capture_output=True, text=True,
                       env=good, timeout=60)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "FAIL" in r.stdout and "key rejected" in r.stdout
    out = r.stdout + r.stderr + open(m.path(".bananafs", "doctor")).read()
    assert "wrong-key-that" not in out and "emulator-key-0123" not in out


def stats(m):
    with open(m.path(".bananafs", "stats")) as f:
        return json.load(f)


def test_dry_run_total_then_run_sends_the_priced_prompts(mount_factory, emulator):
    m = mount_factory(opts=("--dry-run",))
    a, b = m.path(*PRO2K, "a.txt"), m.path(*PRO2K, "b.txt")
    write(a, "priced first")
    write(b, "priced second")
    assert wait_done(a) == "dry-run" and wait_done(b) == "dry-run"
    st = stats(m)
    assert st["dry_run_prompts"] == 2 and abs(st["dry_run_usd"] - 0.268) < 1e-9
    r = ctl("cost", "-m", m.mnt)
    assert r.returncode == 0 and "dry run: 2 prompts priced, not sent: $0.2680" in r.stdout
    r = ctl("status", "-m", m.mnt)
    assert r.returncode == 0 and "dry run: 2 prompts priced, not sent: $0.2680" in r.stdout
    assert emulator.stats()["generations"] == 0
    r = ctl("run", a)
    assert r.returncode == 0, r.stderr
    assert ctl("wait", "--timeout", "30", a).returncode == 0
    assert os.path.exists(m.path(*PRO2K, "a.png")) and not os.path.exists(m.path(*PRO2K, "b.png"))
    assert emulator.stats()["generations"] == 1
    sent = [l for l in ledger(m.store) if l["outcome"] == "sent"]
    assert len(sent) == 1 and sent[0].get("reason") == "bananactl run"
    assert stats(m)["dry_run_prompts"] == 1
    # Done already: run refuses (regen is the way); a non-prompt is refused before the mount.
    r = ctl("run", a)
    assert r.returncode == 1 and "regen" in r.stderr
    write(m.path(*PRO2K, "notes.md"), "x")
    assert ctl("run", m.path(*PRO2K, "notes.md")).returncode == 1
    assert emulator.stats()["generations"] == 1


def test_touch_does_not_retry_a_failed_prompt_run_does(mount, emulator):
    emulator.fault("403", 1)
    p = mount.path(*PRO2K, "f.txt")
    write(p, "fails once")
    assert wait_done(p) == "failed"
    os.utime(p)
    subprocess.run(["touch", p], check=True)
    time.sleep(0.3)
    assert wait_done(p) == "failed" and emulator.stats()["generations"] == 0
    r = ctl("run", p)
    assert r.returncode == 0, r.stderr
    assert ctl("wait", "--timeout", "30", p).returncode == 0
    assert os.path.exists(mount.path(*PRO2K, "f.png"))
    assert not os.path.exists(mount.path(*PRO2K, "f.error"))
    assert [l.get("reason") for l in ledger(mount.store) if l["outcome"] == "sent"][-1] == "bananactl run"


def test_cancel_a_waiting_and_a_running_job(mount_factory, emulator):
    # settle_s = 0: the second prompt arrives just after the first in one folder,
    # which would otherwise wait for quiet and could miss the slow one's slot.
    m = mount_factory(config_text="max_inflight = 1\nsettle_s = 0\n")
    emulator.fault("slow", 1, delay_ms=3000)
    slow, queued = m.path(*PRO2K, "slow.txt"), m.path(*PRO2K, "next.txt")
    write(slow, "the slow one")
    wait_for(lambda: status(slow) == "running", what="slow running")
    write(queued, "waits for a slot")
    # No 429 has happened: the prompt waits for a local slot, and says so.
    assert wait_for(lambda: status(queued) == "waiting-slot", what="waiting-slot")
    r = ctl("cancel", queued)
    assert r.returncode == 0, r.stderr
    assert status(queued) == "cancelled"
    assert ctl("wait", queued, timeout=10).returncode == 1
    r = ctl("cancel", queued)
    assert r.returncode == 1 and "nothing queued or running" in r.stderr
    r = ctl("cancel", slow)
    assert r.returncode == 0, r.stderr
    time.sleep(3.5)
    assert status(slow) == "cancelled" and status(queued) == "cancelled"
    assert not os.path.exists(m.path(*PRO2K, "slow.png"))
    assert not os.path.exists(m.path(*PRO2K, "next.png"))
    assert emulator.stats()["generations"] <= 1
    # A cancelled prompt runs again on request, from the cache when it was paid.
    assert ctl("run", slow).returncode == 0
    assert ctl("wait", "--timeout", "30", slow).returncode == 0


def test_waiting_quota_only_after_a_429(mount_factory, emulator):
    m = mount_factory(config_text="max_inflight = 1\n")
    emulator.fault("429-minute", 1, retry_delay="2s")
    p = m.path(*PRO2K, "q.txt")
    write(p, "meets a 429")
    assert wait_for(lambda: status(p) == "waiting-quota", what="waiting-quota")
    assert wait_done(p, timeout=30) == "done"


def test_control_file_is_write_only_and_checks_lines(mount, emulator):
    c = mount.path(".bananafs", "control")
    assert os.stat(c).st_mode & 0o777 == 0o222
    with pytest.raises(OSError) as e:
        open(c).read()
    assert e.value.errno == errno.EACCES
    for line, err in (("frob x\n", errno.EINVAL), ("run ../../etc/passwd\n", errno.EINVAL),
                      ("run gemini-3-pro-image/2K/none.txt\n", errno.ENOENT),
                      ("run .bananafs/stats\n", errno.ENOENT),
                      ("cancel gemini-3-pro-image/2K/none.txt\n", errno.ENOENT)):
        fd = os.open(c, os.O_WRONLY | os.O_TRUNC)
        try:
            with pytest.raises(OSError) as e:
                os.write(fd, line.encode())
            assert e.value.errno == err, line
        finally:
            os.close(fd)
    assert emulator.stats()["generations"] == 0


def xattr(path, name):
    try:
        return os.getxattr(path, "user.bananafs." + name).decode()
    except OSError:
        return None


def test_xattrs_survive_a_remount(mount_factory, emulator):
    m = mount_factory()
    p, bad = m.path(*PRO2K, "keep.txt"), m.path(*PRO2K, "bad.txt")
    write(p, "remember me")
    assert wait_done(p) == "done"
    emulator.fault("403", 1)
    write(bad, "refused once")
    assert wait_done(bad) == "failed"
    before = {n: xattr(p, n) for n in ("status", "key", "cost_usd", "model")}
    ok = [l for l in ledger(m.store) if l["outcome"] == "ok"]
    assert before["key"] and len(before["key"]) == 32 and before["cost_usd"] == "%.4f" % ok[0]["cost_usd"]
    bad_error = xattr(bad, "error")
    assert bad_error
    m.unmount()
    m = mount_factory()
    assert {n: xattr(p, n) for n in ("status", "key", "cost_usd", "model")} == before
    assert xattr(bad, "status") == "failed" and xattr(bad, "error") == bad_error
    names = os.listxattr(p)
    assert "user.bananafs.key" in names and "user.bananafs.cost_usd" in names
    assert emulator.stats()["generations"] == 1
