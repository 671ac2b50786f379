"""The Batch route through the mount: gathered, submitted once, polled, published; survives kill -9."""
import os
import time

import pytest

from conftest import Emulator, Mount, ledger, png_size, status, wait_done, wait_for

PRO1K = ("gemini-3-pro-image", "1K")
BATCH = "[bananafs]\nroute = batch\nbatch_window_s = 1\nbatch_poll_s = 0.2\n"


@pytest.fixture
def slow_batch_emulator():
    emu = Emulator(("--batch-delay", "3"))
    yield emu
    emu.stop()


def submitted_rows(store):
    """Batch items whose batch name is durable in state.db (read only)."""
    import sqlite3
    db = sqlite3.connect(f"file:{os.path.join(store, 'state.db')}?mode=ro", uri=True, timeout=5)
    try:
        return db.execute("SELECT count(*) FROM batch_items WHERE state = 'submitted'").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        db.close()


def make_mount(emu, workdir, config=BATCH):
    return Mount(emu.url, os.path.join(workdir, "store"), os.path.join(workdir, "mnt"), config)


def test_ten_prompts_one_batch(slow_batch_emulator, workdir):
    emu = slow_batch_emulator
    m = make_mount(emu, workdir)
    try:
        prompts = [m.path(*PRO1K, f"b{i}.txt") for i in range(10)]
        for i, p in enumerate(prompts):
            with open(p, "w") as f:
                f.write(f"batch prompt {i}")
        wait_for(lambda: status(prompts[0]) == "batch-pending", 10, "batch-pending")
        for p in prompts:
            assert wait_done(p, 60) == "done"
            assert png_size(p[:-4] + ".png") == (1024, 1024)
        st = emu.stats()
        assert st["by_endpoint"].get("batchGenerateContent") == 1
        assert st["generations"] == 10
        ok = [l for l in ledger(m.store) if l["outcome"] == "ok"]
        assert len(ok) == 10 and all(l["route"] == "batch" for l in ok)
        # half price: each answer's tokens at half the rates, about half of Pro's $0.134 an image
        assert sum(l["cost_usd"] for l in ok) == pytest.approx(st["billed_usd"], abs=1e-9)
        assert all(l["cost_basis"] == "usage" and 0.067 < l["cost_usd"] < 0.067 * 1.05 for l in ok)
    finally:
        m.unmount()


def test_kill9_while_pending_then_remount(slow_batch_emulator, workdir):
    emu = slow_batch_emulator
    m = make_mount(emu, workdir)
    prompts = [m.path(*PRO1K, f"k{i}.txt") for i in range(4)]
    for i, p in enumerate(prompts):
        with open(p, "w") as f:
            f.write(f"survive the crash {i}")
    # wait until the batch was created and its name is on the rows, then kill the daemon
    # (a kill between the create answer and that row update resends, by design: batcher.c)
    wait_for(lambda: emu.stats()["by_endpoint"].get("batchGenerateContent") == 1, 15, "batch create")
    wait_for(lambda: submitted_rows(m.store) == 4, 15, "batch name journaled")
    m.kill9()
    time.sleep(0.5)
    m2 = make_mount(emu, workdir)
    try:
        for p in prompts:
            assert wait_done(p, 60) == "done"
            assert png_size(p[:-4] + ".png") == (1024, 1024)
        assert emu.stats()["by_endpoint"].get("batchGenerateContent") == 1, "resubmitted"
        sent = [l for l in ledger(m2.store) if l["outcome"] == "sent"]
        assert len(sent) == 4
    finally:
        m2.unmount()


def test_batch_header_and_cache(slow_batch_emulator, workdir):
    emu = slow_batch_emulator
    m = make_mount(emu, workdir, "[bananafs]\nbatch_window_s = 0.5\nbatch_poll_s = 0.2\n")
    try:
        p = m.path(*PRO1K, "hdr.txt")
        with open(p, "w") as f:
            f.write("---\nroute: batch\n---\nvia the header")
        assert wait_done(p, 60) == "done"
        # an image made by Batch serves a later standard request
        q = m.path(*PRO1K, "std.txt")
        with open(q, "w") as f:
            f.write("via the header")
        assert wait_done(q) == "cached"
        assert emu.stats()["generations"] == 1
    finally:
        m.unmount()


def test_rewrite_while_batch_pending_publishes_only_the_new_text(slow_batch_emulator, workdir):
    import subprocess
    emu = slow_batch_emulator
    m = make_mount(emu, workdir, "[bananafs]\nroute = batch\nbatch_window_s = 0.3\nbatch_poll_s = 0.2\n")
    try:
        p = m.path(*PRO1K, "re.txt")
        png = p[:-4] + ".png"
        with open(p, "w") as f:
            f.write("the first text")
        wait_for(lambda: emu.stats()["by_endpoint"].get("batchGenerateContent") == 1, 15, "first batch")
        watch = subprocess.Popen(["inotifywait", "-m", "-e", "moved_to", m.path(*PRO1K)],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        time.sleep(0.5)
        with open(p, "w") as f:
            f.write("the second text")
        assert wait_done(p, 60) == "done"
        time.sleep(4)  # the first batch's answer has come and gone by now
        watch.terminate()
        events = [l for l in watch.communicate()[0].splitlines() if "re.png" in l]
        assert len(events) == 1, events
        with open(png, "rb") as f:
            data = f.read()
        assert b"the second text" in data and b"the first text" not in data
        assert status(p) == "done"
    finally:
        m.unmount()


def billed_requests(emu):
    return sum(b["count"] for b in emu.stats()["billed"])


def ledger_billed_usd(store):
    return sum(l.get("cost_usd") or 0 for l in ledger(store) if l.get("billed"))


@pytest.mark.parametrize("first", ["standard", "batch"])
def test_standard_and_batch_same_text_pay_once(slow_batch_emulator, workdir, first):
    """One key, two routes at the same moment: one in-flight table, one payment, both PNGs."""
    emu = slow_batch_emulator
    m = make_mount(emu, workdir, "[bananafs]\nbatch_window_s = 0.3\nbatch_poll_s = 0.2\n")
    try:
        std, bat = m.path(*PRO1K, "a.txt"), m.path(*PRO1K, "b.txt")
        texts = {std: "one fox, two routes", bat: "---\nroute: batch\n---\none fox, two routes"}
        for p in ([std, bat] if first == "standard" else [bat, std]):
            with open(p, "w") as f:
                f.write(texts[p])
        assert wait_done(std, 60) in ("done", "cached")
        assert wait_done(bat, 60) in ("done", "cached")
        assert png_size(std[:-4] + ".png") == (1024, 1024)
        assert png_size(bat[:-4] + ".png") == (1024, 1024)
        assert billed_requests(emu) == 1, emu.stats()
        assert ledger_billed_usd(m.store) == pytest.approx(emu.stats()["billed_usd"], abs=1e-6)
        sent = [l for l in ledger(m.store) if l["outcome"] == "sent"]
        assert len(sent) == 1, sent
    finally:
        m.unmount()
