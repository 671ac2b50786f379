"""The newcomer's first hour (issue 14): simulated spend, recovering mounts, the dated
model catalogue, the served model, provenance that other tools read, and the words."""
import os
import subprocess

import pytest

from conftest import binary, ledger, wait_done

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
