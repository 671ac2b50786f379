"""kill -9 during generations, then mount the same store again (DESIGN.md
sections 2 and 7): no prompt is lost, no published PNG is truncated or
corrupt, every in-flight job is resent with reason "resume after crash", and
no temp file is visible.  Short form: 20 prompts, 3 kills; --long: 100 prompts."""
import os
import random
import sqlite3
import subprocess
import time

import pytest

from conftest import BUILD, Emulator, ledger, ledger_matches_bill, status, wait_for
from pngwalk import walk_file

DIRS = [("gemini-3.1-flash-image", "512"), ("gemini-3.1-flash-image", "1K"), ("gemini-3-pro-image", "1K")]
PIXELS = {"512": 512, "1K": 1024}
CONFIG = ("[bananafs]\nmax_inflight = 4\ntimeout_s = 20\nretries = 3\nbackoff_base_s = 0.05\n"
          "backoff_cap_s = 0.2\n")
TEMP_MARKS = (".bananafs-pub.", ".bananafs-cow.", ".tmp-")
FINAL = ("done", "cached", "failed")


@pytest.fixture
def slow_emulator():
    """An emulator whose every answer takes 300 ms, so jobs queue and stay in flight."""
    emu = Emulator(extra=("--latency", "300"))
    yield emu
    emu.stop()


def prompt_paths(m, count):
    out = []
    for i in range(count):
        model, size = DIRS[i % len(DIRS)]
        out.append((m.path(model, size, f"crash{i:03d}.txt"), size))
    return out


def write_prompt(path, i):
    with open(path, "w") as f:
        f.write(f"crash test scene number {i}, a lighthouse at dusk\n")


def journaled(store):
    """Paths (relative to STORE/tree) of the jobs in the journal (STORE/state.db)."""
    db = sqlite3.connect(f"file:{os.path.join(store, 'state.db')}?mode=ro", uri=True, timeout=5)
    try:
        return {row[0] for row in db.execute("SELECT relpath FROM jobs")}
    finally:
        db.close()


def accepted(m, batch):
    """True when every prompt of batch is journaled or already finished."""
    paths = journaled(m.store)
    return all(status(p) in FINAL or os.path.relpath(p, m.mnt) in paths for p, _ in batch)


def in_flight(prompts):
    return [p for p, _ in prompts if status(p) == "running"]


def test_kill9_during_generations(mount_factory, slow_emulator, workdir, request):
    rng = random.Random(int(os.environ.get("BANANAFS_CRASH_SEED", "0")) or None)
    total, kills = (100, 6) if request.config.getoption("--long") else (20, 3)
    m = mount_factory(config_text=CONFIG, endpoint=slow_emulator.url)
    prompts = prompt_paths(m, total)
    batches = [prompts[k::kills + 1] for k in range(kills + 1)]
    written = 0
    inflight_at_kill = 0
    for k in range(kills):
        for p, _ in batches[k]:
            write_prompt(p, prompts.index((p, _)))
            written += 1
        # accepted = journaled (or finished); see the close-then-kill test
        # below for prompts killed before that point
        wait_for(lambda: accepted(m, batches[k]), 10, "the prompts to be accepted")
        # wait until a request is really in flight, then kill at a random moment of it
        wait_for(lambda: in_flight(prompts[:written]), 20, "a job in flight")
        time.sleep(rng.uniform(0.0, 0.25))
        inflight_at_kill += len(in_flight(prompts[:written]))
        m.kill9()
        m = mount_factory(config_text=CONFIG, endpoint=slow_emulator.url)
    for p, _ in batches[kills]:
        write_prompt(p, prompts.index((p, _)))
    assert inflight_at_kill > 0

    # every prompt ends with a PNG or an .error
    def settled():
        return all(status(p) in FINAL for p, _ in prompts)
    try:
        wait_for(settled, 20 + total // 2, "every prompt to settle after the crashes")
    except AssertionError:
        stuck = [(os.path.basename(p), status(p), sorted(n for n in os.listdir(os.path.dirname(p))
                                                        if n.startswith(os.path.basename(p)[:-4])))
                 for p, _ in prompts if status(p) not in FINAL]
        names = [n for n, _, _ in stuck]
        log = [ln for ln in m.log().splitlines() if any(n[:-4] in ln for n in names)]
        raise AssertionError(f"{len(stuck)} prompts never settled (lost?): {stuck[:6]}\n"
                             "daemon log about them:\n" + "\n".join(log[-30:]))
    assert m.proc.poll() is None, m.log()[-3000:]

    for p, size in prompts:
        base = p[:-4]
        st = status(p)
        assert st in ("done", "cached"), f"{p}: {st}: " + (
            open(base + ".error").read() if os.path.exists(base + ".error") else "")
        w, h, chunks, keys = walk_file(base + ".png")
        assert (w, h) == (PIXELS[size], PIXELS[size]), f"{base}.png is {w}x{h}"
        assert "prompt" in keys, f"{base}.png lacks its prompt text chunk: {keys}"

    # no temp file visible in the mount, nor left behind in the store's tree
    for root, dirs, files in os.walk(m.mnt):
        if ".bananafs" in dirs:
            dirs.remove(".bananafs")
        for n in files:
            assert not any(t in n for t in TEMP_MARKS), f"temp file visible: {root}/{n}"
    leftovers = []
    for root, _dirs, files in os.walk(os.path.join(m.store, "tree")):
        leftovers += [os.path.join(root, n) for n in files if any(t in n for t in TEMP_MARKS)]
    assert not leftovers, f"temp files left in the store tree: {leftovers[:5]}"

    # the ledger: every resend has a reason, crash resends say so, nothing paid twice silently
    rows = ledger(m.store)
    sent = [r for r in rows if r.get("outcome") == "sent"]
    # a job killed in flight resumes: its journaled interaction is polled ("polled"), or,
    # when the kill came before the create returned, it is sent again
    resumed = [r for r in rows if (r.get("reason") or "").startswith("resume after crash")]
    assert resumed, "no line with reason 'resume after crash' although jobs were in flight at a kill"
    first_sends = {}
    for r in sent:
        if not r.get("reason"):
            assert r["key"] not in first_sends, f"key {r['key']} sent twice without a reason"
            first_sends[r["key"]] = r
    assert len({r["key"] for r in sent}) == total
    # a "sent" line is written before the request: a kill can fall between them
    creates = sum(v for k, v in slow_emulator.stats()["by_endpoint"].items() if "." not in k)
    assert creates <= len(sent), "a request was sent without a ledger line"
    assert len(sent) <= total + inflight_at_kill + kills * 4, "more resends than jobs could be in flight"
    m.unmount()


def test_kill9_right_after_close(mount_factory, slow_emulator):
    """A prompt whose close() returned is on disk and must be generated even
    when the daemon dies a moment later (DESIGN.md section 7)."""
    m = mount_factory(config_text=CONFIG, endpoint=slow_emulator.url)
    prompts = [m.path("gemini-3.1-flash-image", "512", f"closed{i}.txt") for i in range(8)]
    for i, p in enumerate(prompts):
        write_prompt(p, 1000 + i)
    m.kill9()
    m = mount_factory(config_text=CONFIG, endpoint=slow_emulator.url)
    try:
        wait_for(lambda: all(status(p) in FINAL for p in prompts), 5, "prompts closed before the kill")
    finally:
        lost = [os.path.basename(p) for p in prompts if status(p) is None]
        m.unmount()
    assert not lost, f"lost after kill -9: {lost}"


def test_kill9_with_a_request_on_the_wire_is_counted_as_billed(mount_factory, emulator):
    """A request the crash hid is `unknown`, billed, in the ledger; the resumed
    job keeps its job id; the ledger's total equals the server's bill."""
    plain = CONFIG + "durable_requests = no\n"   # background ones are polled again (test_durable.py)
    m = mount_factory(config_text=plain)
    emulator.fault("slow", 1, delay_ms=1500)
    p = m.path("gemini-3.1-flash-image", "512", "hidden.txt")
    write_prompt(p, 7)
    wait_for(lambda: emulator.stats()["requests"] >= 1, 10, "the request to reach the server")
    m.kill9()
    m = mount_factory(config_text=plain)
    wait_for(lambda: status(p) in FINAL, 20, "the resumed prompt")
    assert status(p) == "done"
    rows = ledger(m.store)
    unknown = [r for r in rows if r["outcome"] == "unknown"]
    assert len(unknown) == 1 and unknown[0]["billed"], rows
    assert len({r["job"] for r in rows}) == 1, "the resumed job has another job id"
    assert len(unknown[0]["job"]) == 26, "job ids are ULIDs"
    billed = round(sum(r.get("cost_usd", 0) for r in rows if r.get("billed")), 9)
    assert unknown[0]["cost_basis"] == "per-image"      # the crash hid the answer and its usage
    wait_for(lambda: ledger_matches_bill(rows, emulator.stats()["billed_usd"]), 10,
             f"the bill to equal the ledger's {billed}")
    out = subprocess.run([os.path.join(BUILD, "bananactl"), "-m", m.mnt, "cost"], capture_output=True,
                         text=True, check=True).stdout
    total = [ln.split() for ln in out.splitlines() if ln.startswith("total")][0]
    assert float(total[1]) == pytest.approx(billed, abs=5e-5)   # printed to 1/100 cent
    m.unmount()
