"""Upgrades never pay (DESIGN.md 2): a store made by the release before key
format 2 (fixtures/store-v1.tar.gz, see fixtures/make_store_v1.py) keeps
serving its images after the upgrade, with zero requests to the server."""
import os
import subprocess

from conftest import ledger, png_size, wait_done

HERE = os.path.dirname(os.path.abspath(__file__))
FLASH512 = ("gemini-3.1-flash-image", "512")


def unpack_v1_store(workdir):
    # tar itself: it keeps the hard links between the tree and the objects.
    subprocess.run(["tar", "-xzf", os.path.join(HERE, "fixtures", "store-v1.tar.gz"), "-C", workdir],
                   check=True)


def write(path, text):
    with open(path, "w", newline="") as f:
        f.write(text)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def test_a_store_of_the_previous_release_serves_without_requests(mount_factory, emulator, workdir):
    unpack_v1_store(workdir)
    m = mount_factory()
    d = m.path(*FLASH512)
    old = {name: read(os.path.join(d, name)) for name in ("fox.png", "pair-1.png", "pair-2.png", "wide.png")}

    # The same prompts under new names: every image comes from the old store.
    write(os.path.join(d, "fox-again.txt"), "a red fox in the snow\n")
    write(os.path.join(d, "pair-again.txt"), "---\r\nn: 2\r\n---\r\nline one\r\nline two\r\n")
    write(os.path.join(d, "wide-again.txt"), "---\naspect: 16:9\n---\na lighthouse at dusk\n")
    for name in ("fox-again", "pair-again", "wide-again"):
        assert wait_done(os.path.join(d, name + ".txt")) == "cached"
    # Line endings no longer matter: the LF form of the CRLF prompt is the same request.
    write(os.path.join(d, "pair-lf.txt"), "---\nn: 2\n---\nline one\nline two\n")
    assert wait_done(os.path.join(d, "pair-lf.txt")) == "cached"
    assert emulator.stats()["requests"] == 0

    assert read(os.path.join(d, "fox-again.png")) == old["fox.png"]
    assert read(os.path.join(d, "wide-again.png")) == old["wide.png"]
    for i in (1, 2):
        assert read(os.path.join(d, f"pair-again-{i}.png")) == old[f"pair-{i}.png"]
        assert read(os.path.join(d, f"pair-lf-{i}.png")) == old[f"pair-{i}.png"]

    # Raising n of an old prompt pays for the new candidate only.
    write(os.path.join(d, "pair.txt"), "---\r\nn: 3\r\n---\r\nline one\r\nline two\r\n")
    assert wait_done(os.path.join(d, "pair.txt")) == "done"
    assert emulator.stats()["requests"] == 1
    assert png_size(os.path.join(d, "pair-3.png")) == (512, 512)
    assert read(os.path.join(d, "pair-1.png")) == old["pair-1.png"]
    sent = [l for l in ledger(m.store) if l["outcome"] == "sent"]
    assert len(sent) == 4 + 1, "four requests of the old release and one new"
