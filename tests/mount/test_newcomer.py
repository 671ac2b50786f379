"""The newcomer's first hour (issue 14): simulated spend, recovering mounts, the dated
model catalogue, the served model, provenance that other tools read, and the words."""
import errno
import os
import subprocess

import pytest

from conftest import ROOT, binary, is_mounted, ledger, wait_done, wait_for

PRO2K = ("gemini-3-pro-image", "2K")
FAST = "[bananafs]\nbackoff_base_s = 0.05\nbackoff_cap_s = 0.2\nretries = 3\n"


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def ctl(m, *args):
    return subprocess.run([binary("bananactl"), "-m", m.mnt, *args], capture_output=True,
                          text=True, timeout=30)


def test_emulator_spend_is_labelled_simulated(mount_factory, emulator):
    m = mount_factory(FAST)
    p = m.path(*PRO2K, "sim.txt")
    write(p, "a simulated banana")
    assert wait_done(p) == "done"
    ok = [l for l in ledger(m.store) if l["outcome"] == "ok"]
    assert ok and all(l["billed"] and l["simulated"] is True for l in ok)
    r = ctl(m, "cost")
    assert r.returncode == 0, r.stderr
    assert "simulated" in r.stdout and "nobody bills it" in r.stdout, r.stdout
    assert "simulated spend" in m.log()


def dead(mnt):
    try:
        os.stat(mnt)
    except OSError as e:
        return e.errno == errno.ENOTCONN
    return False


def test_mounts_again_over_a_dead_mount_point(mount_factory, emulator):
    m = mount_factory(FAST)
    m.proc.kill()		# kill -9, and nobody unmounts
    m.proc.wait()
    m.err.close()
    assert dead(m.mnt)
    m2 = mount_factory(FAST)
    wait_for(lambda: os.path.isdir(m2.path(*PRO2K)), what="the new mount to answer")
    assert "dead bananafs mount" in m2.log() and "detaching it lazily" in m2.log()
    p = m2.path(*PRO2K, "again.txt")
    write(p, "after the crash")
    assert wait_done(p) == "done"


def test_auto_unmount_leaves_no_dead_mount_after_kill9(mount_factory, emulator):
    m = mount_factory(FAST, opts=("-o", "auto_unmount"))
    m.proc.kill()
    m.proc.wait()
    m.err.close()
    wait_for(lambda: not is_mounted(m.mnt), what="auto_unmount to remove the mount")
    assert not dead(m.mnt)


def test_systemd_unit_recovers_after_kill9():
    with open(os.path.join(ROOT, "contrib", "bananafs.service")) as f:
        unit = f.read()
    start = [l for l in unit.splitlines() if l.startswith("ExecStart=")][0]
    assert "auto_unmount" in start
    assert "Restart=on-failure" in unit
