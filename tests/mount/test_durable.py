"""Crash-proof requests (DESIGN.md 2): standard and flex go out as background
interactions whose id is journaled; after kill -9 the id is polled again,
never resent; a model that refuses background mode gets plain requests."""
import os
import sqlite3

from conftest import Emulator, ledger, ledger_matches_bill, png_size, status, wait_done, wait_for

FLASH512 = ("gemini-3.1-flash-image", "512")
CONFIG = "[bananafs]\nmax_inflight = 4\nretries = 3\nbackoff_base_s = 0.05\nbackoff_cap_s = 0.2\n"


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def journaled_interactions(store):
    db = sqlite3.connect(f"file:{os.path.join(store, 'state.db')}?mode=ro", uri=True, timeout=5)
    try:
        return db.execute("SELECT key, id FROM interactions").fetchall()
    finally:
        db.close()


def billed(rows):
    return round(sum(r.get("cost_usd", 0) for r in rows if r.get("billed")), 9)


def creates(emu):
    return emu.stats()["by_endpoint"].get("interactions", 0)


def test_kill9_with_three_background_requests_in_flight(mount_factory, workdir):
    emu = Emulator(extra=("--latency", "1500"))
    try:
        m = mount_factory(config_text=CONFIG, endpoint=emu.url)
        prompts = [m.path(*FLASH512, f"bg{i}.txt") for i in range(3)]
        for i, p in enumerate(prompts):
            write(p, f"a background scene {i}\n")
        wait_for(lambda: len(journaled_interactions(m.store)) == 3, 10, "three journaled interactions")
        assert creates(emu) == 3
        m.kill9()
        m = mount_factory(config_text=CONFIG, endpoint=emu.url)
        for p in prompts:
            assert wait_done(p, 30) == "done"
            assert png_size(p[:-4] + ".png") == (512, 512)
        st = emu.stats()
        assert creates(emu) == 3, "a journaled request was sent again"
        assert st["generations"] == 3
        rows = ledger(m.store)
        assert [r["outcome"] for r in rows].count("sent") == 3
        assert [r["outcome"] for r in rows].count("polled") == 3
        assert not [r for r in rows if r["outcome"] == "unknown"]
        assert billed(rows) == st["billed_usd"]
        # stored, then deleted at the server and forgotten by the journal
        assert st["by_endpoint"].get("interactions.delete") == 3
        assert journaled_interactions(m.store) == []
        m.unmount()
    finally:
        emu.stop()


def test_requests_are_background_and_deleted(mount, emulator):
    p = mount.path(*FLASH512, "one.txt")
    write(p, "a lighthouse\n")
    assert wait_done(p) == "done"
    reqs = [r for r in emulator.requests() if r.get("endpoint") == "interactions"]
    assert len(reqs) == 1 and reqs[0].get("background")
    assert emulator.stats()["by_endpoint"].get("interactions.delete") == 1
    assert journaled_interactions(mount.store) == []


def test_a_model_that_refuses_background_gets_plain_requests(mount, emulator):
    emulator.fault("no-background", 1)
    a, b = mount.path(*FLASH512, "a.txt"), mount.path(*FLASH512, "b.txt")
    write(a, "first\n")
    assert wait_done(a) == "done"
    write(b, "second\n")
    assert wait_done(b) == "done"
    reqs = [r for r in emulator.requests() if r.get("endpoint") == "interactions"]
    # a: refused background, then plain; b: plain at once (remembered for the mount)
    assert [bool(r.get("background")) for r in reqs] == [True, False, False]
    assert billed(ledger(mount.store)) == emulator.stats()["billed_usd"]
    assert "refuses background" in mount.log()


def test_durable_requests_no_sends_plain_requests(mount_factory, emulator):
    m = mount_factory(config_text="[bananafs]\ndurable_requests = no\n")
    p = m.path(*FLASH512, "plain.txt")
    write(p, "plain\n")
    assert wait_done(p) == "done"
    reqs = [r for r in emulator.requests() if r.get("endpoint") == "interactions"]
    assert len(reqs) == 1 and not reqs[0].get("background")
    assert "interactions.get" not in emulator.stats()["by_endpoint"]


def test_a_broken_poll_answer_is_billed_and_not_resent(mount, emulator):
    emulator.fault("malformed-json", 1)
    p = mount.path(*FLASH512, "broken.txt")
    write(p, "a broken answer\n")
    assert wait_done(p) == "failed"
    assert creates(emulator) == 1
    # billed per image: the broken answer's usage could not be read
    rows = ledger(mount.store)
    assert [r["cost_basis"] for r in rows if r.get("billed")] == ["per-image"]
    assert emulator.stats()["billed_usd"] > 0 and ledger_matches_bill(rows, emulator.stats()["billed_usd"])
    assert journaled_interactions(mount.store) == []
    assert status(p) == "failed"
