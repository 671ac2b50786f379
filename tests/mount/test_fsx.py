"""fsx-style exerciser on one file below a size folder (see fsx.py).

Short runs by default; `--long` runs 100,000 operations.  The seed comes
from FSX_SEED or is random, and is printed: a failing run names the seed
that replays it.  At the end the file is compared through the mount, and
its backing copy in the store is compared too (passthrough).
"""
import os

import pytest

from fsx import Fsx, seed_from_env

PRO2K = ("gemini-3-pro-image", "2K")

SHAPES = {
    # name: (ops short, ops long, max file length, max op length, full check every)
    "default": (2000, 100_000, 256 * 1024, 64 * 1024, 50),
    # A small file: every op lands near the page edges and the end of file.
    "small": (1500, 50_000, 3 * 4096 + 17, 5000, 20),
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_fsx(mount, request, shape):
    short, long_, maxlen, maxop, every = SHAPES[shape]
    nops = long_ if request.config.getoption("--long") else short
    path = mount.path(*PRO2K, f"fsx-{shape}.bin")
    seed = seed_from_env()
    fsx = Fsx(path, seed, maxlen=maxlen, maxop=maxop, check_every=every)
    try:
        counts = fsx.run(nops)
    finally:
        fsx.close()
    # Every kind of operation ran, so a pass means something.
    assert set(counts) == set(Fsx.OPS), counts
    fsx.check_all(os.path.join(mount.store, "tree", *PRO2K, f"fsx-{shape}.bin"))
    fsx.check_all(path)


def test_fsx_reports_a_mismatch(tmp_path, capsys):
    """The checker can fail: a byte changed behind its back is found and
    the report names the seed and the last operations."""
    path = str(tmp_path / "f.bin")
    fsx = Fsx(path, 12345, maxlen=8192, maxop=1000)
    try:
        fsx.run(50)
        fd = os.open(path, os.O_WRONLY)
        os.pwrite(fd, b"\xa5" * max(1, len(fsx.model)), 0)
        os.close(fd)
        fsx.model.extend(b"" if fsx.model else b"\0")
        with pytest.raises(AssertionError) as e:
            fsx.check_all()
    finally:
        fsx.close()
    assert "FSX_SEED=12345" in str(e.value)
    assert "last" in str(e.value) and " ops:" in str(e.value)
    assert "FSX_SEED=12345" in capsys.readouterr().out
