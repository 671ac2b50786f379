"""Paid bytes are never lost: a store that runs out of space after the answer was paid.

The store is a small tmpfs, filled so the prompt, the journal and the ledger
still fit but the image does not.  The answer is kept in memory; the prompt
says "store"; after space is freed, saving the prompt again stores and
publishes it without a second request; the ledger's billed total equals the
emulator's bill.
"""
import os
import subprocess

import pytest

from conftest import Mount, ledger, png_size, status, wait_done, wait_for

PRO4K = ("gemini-3-pro-image", "4K")
FREE_KB = 256      # room left for the prompt, state.db and the ledger; the 4K image needs more


@pytest.fixture
def tmpfs_store(workdir):
    store = os.path.join(workdir, "store")
    os.makedirs(store, mode=0o700)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", store]).returncode:
        pytest.skip("cannot mount a tmpfs (needs root)")
    yield store
    subprocess.run(["umount", "-l", store])


def fill(path, leave_kb):
    """Fills the filesystem of path with one file, leaving about leave_kb free."""
    st = os.statvfs(path)
    free = st.f_bavail * st.f_frsize
    filler = os.path.join(path, "filler")
    with open(filler, "wb") as f:
        f.write(b"\0" * max(0, free - leave_kb * 1024))
    return filler


def billed_requests(emu):
    return sum(b["count"] for b in emu.stats()["billed"])


def test_enospc_after_payment_keeps_the_image(emulator, workdir, tmpfs_store):
    m = Mount(emulator.url, tmpfs_store, os.path.join(workdir, "mnt"), "[bananafs]\nretries = 1\n")
    try:
        p = m.path(*PRO4K, "full.txt")
        png = p[:-4] + ".png"
        filler = fill(tmpfs_store, FREE_KB)
        with open(p, "w") as f:
            f.write("a fox on a full disk")
        assert wait_done(p, 60) == "failed"
        err = os.getxattr(p, "user.bananafs.error").decode()
        assert "store" in err and "No space left" in err and "kept in memory" in err, err
        assert not os.path.exists(png)
        assert billed_requests(emulator) == 1
        failed = [l for l in ledger(tmpfs_store) if l["outcome"] == "failed"]
        assert failed and failed[-1]["error_class"] == "store" and failed[-1]["billed"], failed

        os.unlink(filler)
        with open(p, "w") as f:          # the next save of the prompt
            f.write("a fox on a full disk")
        assert wait_done(p, 60) in ("done", "cached")
        assert png_size(png) == (5632, 3072) or png_size(png)[0] >= 4096
        assert billed_requests(emulator) == 1, "paid twice"
        billed = sum(l.get("cost_usd") or 0 for l in ledger(tmpfs_store) if l.get("billed"))
        assert billed == pytest.approx(emulator.stats()["billed_usd"], abs=1e-6)
    finally:
        m.unmount()


def test_enospc_image_appears_when_space_returns(emulator, workdir, tmpfs_store):
    """No save needed: once the store has room, the held image is stored and published."""
    m = Mount(emulator.url, tmpfs_store, os.path.join(workdir, "mnt"), "[bananafs]\nretries = 1\n")
    try:
        p = m.path(*PRO4K, "wait.txt")
        png = p[:-4] + ".png"
        filler = fill(tmpfs_store, FREE_KB)
        with open(p, "w") as f:
            f.write("a fox waiting for room")
        assert wait_done(p, 60) == "failed"
        assert "kept in memory" in os.getxattr(p, "user.bananafs.error").decode()
        os.unlink(filler)
        wait_for(lambda: os.path.exists(png), 30, "the held image to be published")
        assert wait_done(p, 30) in ("done", "cached")
        assert billed_requests(emulator) == 1, "paid twice"
        billed = sum(l.get("cost_usd") or 0 for l in ledger(tmpfs_store) if l.get("billed"))
        assert billed == pytest.approx(emulator.stats()["billed_usd"], abs=1e-6)
    finally:
        m.unmount()
