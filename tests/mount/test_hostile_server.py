"""A hostile or broken server (DESIGN.md sections 4 and 6): every emulator fault
ends in a clear NAME.error naming the problem and the HTTP status, never a PNG,
never a crash, with bounded memory and a mount that keeps answering `ls`."""
import os
import subprocess
import threading
import time

import pytest

from conftest import ledger, ledger_matches_bill, status, wait_done, wait_for

DIR = ("gemini-3.1-flash-image", "1K")
RETRIES = 2
# Plain requests: these cases test how one HTTP exchange fails (test_durable.py has
# the background interactions).
CONFIG = (f"[bananafs]\ndurable_requests = no\ntimeout_s = 2\nretries = {RETRIES}\nbackoff_base_s = 0.05\n"
          "backoff_cap_s = 0.2\nmax_response_mb = 8\nconnect_timeout_s = 2\n")


def stop(m):
    """Unmounts and checks the daemon's stderr for sanitizer reports and its exit status."""
    assert m.proc.poll() is None, "bananafs died:\n" + m.log()[-3000:]
    subprocess.run(["fusermount3", "-u", m.mnt], check=False)
    try:
        m.proc.wait(20)
    except subprocess.TimeoutExpired:
        m.proc.kill()
        m.proc.wait()
        pytest.fail("bananafs did not exit after unmount")
    log = m.log()
    m.err.close()
    assert "ERROR: AddressSanitizer" not in log and "runtime error:" not in log, log[-4000:]
    assert m.proc.returncode == 0, f"bananafs exited with {m.proc.returncode}:\n{log[-2000:]}"


def vm_hwm_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


class LsProbe(threading.Thread):
    """Times os.listdir on a folder of the mount until stopped."""

    def __init__(self, folder):
        super().__init__(daemon=True)
        self.folder, self.times, self.errors = folder, [], []
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            t = time.monotonic()
            try:
                os.listdir(self.folder)
            except OSError as e:
                self.errors.append(e)
            self.times.append(time.monotonic() - t)
            time.sleep(0.05)

    def finish(self):
        self.halt.set()
        self.join(10)
        assert not self.errors, f"ls failed: {self.errors[:3]}"
        assert self.times, "ls never ran"
        assert max(self.times) < 1.0, f"ls took {max(self.times):.2f}s while a request ran"


# kind, fault args, count, words the .error must hold (each: any of the
# alternatives, case-insensitive), HTTP status shown, expected attempts
CASES = [
    ("malformed-json", {}, RETRIES, [("json",)], "200", None),
    ("truncated-base64", {}, RETRIES, [("base64", "truncated", "runs past the end")], "200", None),
    ("wrong-size", {}, RETRIES, [("size", "pixel", "expected")], "200", None),
    ("huge-body", {}, RETRIES, [("too big",), ("billed",), ("max_response_mb",)], "200", 1),
    ("slow", {"delay_ms": 4000}, RETRIES, [("timed out", "timeout")], None, RETRIES),
    ("drop", {}, RETRIES, [("network", "transfer", "connection", "partial")], None, RETRIES),
    ("502", {}, RETRIES, [("502",), ("capacity", "gateway")], "502", RETRIES),
    ("429-minute", {"retry_delay": "1s"}, RETRIES, [("quota",), ("resource_exhausted", "rate_limit")], "429", RETRIES),
    ("429-day", {}, 1, [("quota",), ("per day", "perday", "daily", "stop retrying")], "429", 1),
    ("429-zero", {}, 1, [("quota",), ("billing",), ("limit: 0",)], "429", 1),
    ("503", {}, 20, [("unavailable", "overloaded"), ("capacity",)], "503", RETRIES),
    ("500", {}, 20, [("internal",), ("capacity",)], "500", RETRIES),
    ("504", {}, 20, [("deadline",), ("capacity", "gateway")], "504", RETRIES),
    ("401", {}, 1, [("credentials", "key")], "401", 1),
    ("403", {}, 1, [("permission",)], "403", 1),
    ("safety", {}, 1, [("safety", "blocked")], "200", 1),
    ("text-only", {}, 1, [("no image", "model said")], "200", 1),
    # the right cause: a redirect is the endpoint's problem and names its target
    ("redirect", {"location": "https://moved.example/v9/x"}, 1,
     [("redirected",), ("moved.example/v9/x",), ("endpoint (configuration)",)], "302", 1),
    # a whole base64 text of half a PNG: the server's answer, not our store
    ("truncated-image", {}, 1, [("damaged or cut short",), ("server's answer",)], "200", 1),
]


# Whose move each fault leaves it to, as NAME.error's "whose move:" line says.
WHOSE_MOVE = {
    "malformed-json": "Google's", "truncated-base64": "Google's", "wrong-size": "Google's",
    "huge-body": "Google's", "truncated-image": "Google's",
    "502": "Google's", "503": "Google's", "500": "Google's", "504": "Google's",
    "slow": "the network's", "drop": "the network's",
    "429-minute": "yours", "429-day": "yours", "429-zero": "yours", "401": "yours", "403": "yours",
    "safety": "yours", "text-only": "yours", "redirect": "yours",
}
assert set(WHOSE_MOVE) == {c[0] for c in CASES}

@pytest.mark.parametrize("kind,args,count,words,http,attempts", CASES, ids=[c[0] for c in CASES])
def test_fault_gives_clear_error(mount_factory, emulator, kind, args, count, words, http, attempts):
    m = mount_factory(config_text=CONFIG)
    d = m.path(*DIR)
    emulator.fault(kind, count, **args)
    prompt = os.path.join(d, f"hostile-{kind}.txt")
    probe = LsProbe(d)
    probe.start()
    hwm_during = []
    sampler_stop = threading.Event()

    def sample():
        while not sampler_stop.is_set():
            try:
                hwm_during.append(vm_hwm_kb(m.proc.pid))
            except (OSError, AssertionError):
                pass
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    write(prompt, f"a scene for the {kind} fault\n")
    try:
        final = wait_done(prompt, 40)
    finally:
        probe.finish()
        sampler_stop.set()
        sampler.join()
    assert m.proc.poll() is None, "bananafs died:\n" + m.log()[-3000:]
    assert final == "failed", f"status {final}"
    base = prompt[:-4]
    assert not os.path.exists(base + ".png"), "a PNG was published for a bad answer"
    assert not [n for n in os.listdir(d) if n.startswith("hostile-" + kind) and n.endswith(".png")]
    with open(base + ".error") as f:
        text = f.read()
    low = text.lower()
    for alts in words:
        assert any(a in low for a in alts), f"{kind}: none of {alts} in:\n{text}"
    if http:
        assert f"HTTP status: {http}" in text, f"{kind}: HTTP {http} not named in:\n{text}"
    else:
        assert "HTTP status:" in text, f"{kind}: no HTTP status line in:\n{text}"
    assert "whose problem:" in text and "next move:" in text, text
    assert f"\nwhose move: {WHOSE_MOVE[kind]}\n" in text, text
    if attempts is not None:
        got = emulator.stats()["requests"]
        assert got == attempts, f"{kind}: {got} requests sent, expected {attempts}"
    assert os.getxattr(prompt, "user.bananafs.error")
    # the ledger equals the bill: an answer the server billed but we could not use is billed
    # (a timed-out request is counted as billed; the server finishes it a moment later)
    rows = ledger(m.store)
    wait_for(lambda: ledger_matches_bill(rows, emulator.stats()["billed_usd"]), 10,
             f"{kind}: the server's bill to equal the ledger's billed lines {rows}")
    if kind == "huge-body":
        # it arrived with a 200: the server made and billed it, and the ledger says so
        failed = [r for r in ledger(m.store) if r.get("outcome") == "failed"]
        assert failed and failed[-1].get("billed") is True, failed
        peak = max(hwm_during + [vm_hwm_kb(m.proc.pid)])
        assert peak < 200 * 1024, f"daemon peak memory {peak // 1024} MiB while a huge body arrived"
    # the daemon still works: a good prompt after the fault succeeds
    emulator.reset()
    ok = os.path.join(d, f"after-{kind}.txt")
    write(ok, f"a calm scene after {kind}\n")
    assert wait_done(ok, 20) == "done", open(ok[:-4] + ".error").read() \
        if os.path.exists(ok[:-4] + ".error") else status(ok)
    stop(m)


def test_ls_stays_fast_while_requests_stall(mount_factory, emulator):
    """Four requests stall in the server at once; listing folders stays quick."""
    m = mount_factory(config_text=CONFIG)
    d = m.path(*DIR)
    emulator.fault("slow", 4, delay_ms=1500)
    probe = LsProbe(d)
    probe.start()
    probe_root = LsProbe(m.mnt)
    probe_root.start()
    prompts = [os.path.join(d, f"stall{i}.txt") for i in range(4)]
    for i, p in enumerate(prompts):
        write(p, f"stalled scene {i}\n")
    try:
        for p in prompts:
            assert wait_done(p, 30) == "done"
    finally:
        probe.finish()
        probe_root.finish()
    assert len(probe.times) >= 5
    stop(m)


def test_ledger_records_every_attempt_of_a_503_storm(mount_factory, emulator):
    m = mount_factory(config_text=CONFIG)
    emulator.fault("503", 50)
    prompts = [m.path(*DIR, f"storm{i}.txt") for i in range(3)]
    for i, p in enumerate(prompts):
        write(p, f"storm scene {i}\n")
    for p in prompts:
        assert wait_done(p, 40) == "failed"
    assert emulator.stats()["requests"] == 3 * RETRIES, "the retry bound was not kept"
    rows = ledger(m.store)
    sent = [r for r in rows if r.get("outcome") == "sent"]
    failed = [r for r in rows if r.get("outcome") == "failed"]
    assert len(sent) == 3 * RETRIES, rows
    assert len(failed) == 3, rows
    assert all(r.get("http_status") == 503 for r in failed), failed
    stop(m)


# ---- issue 13: a broken or hostile server can't freeze, bloat or mislead the mount

def all_xattrs(path):
    return {n: os.getxattr(path, n) for n in os.listxattr(path) if n.startswith("user.bananafs.")}


def files_holding(root, needle):
    """Every file under root whose bytes hold needle."""
    hits = []
    for d, _, names in os.walk(root):
        for n in names:
            p = os.path.join(d, n)
            try:
                with open(p, "rb") as f:
                    if needle in f.read():
                        hits.append(p)
            except OSError:
                pass
    return hits


@pytest.mark.parametrize("status_code", [400, 200], ids=["error-400", "text-200"])
def test_server_echoing_the_key_never_shows_it(mount_factory, emulator, status_code):
    """A server that quotes the key (message, model text, x-request-id header):
    the key is in no file of the mount or the store, no xattr, no jobs line."""
    from conftest import KEY
    m = mount_factory(config_text=CONFIG)
    emulator.fault("echo-key", 1, status=status_code)
    prompt = m.path(*DIR, "echo.txt")
    write(prompt, "a scene the server will not draw\n")
    assert wait_done(prompt, 20) == "failed"
    key = KEY.encode()
    with open(prompt[:-4] + ".error", "rb") as f:
        text = f.read()
    assert key not in text and b"[key]" in text, text.decode()
    for name, val in all_xattrs(prompt).items():
        assert key not in val, f"{name} holds the key: {val!r}"
    with open(m.path(".bananafs", "jobs"), "rb") as f:
        assert key not in f.read()
    assert files_holding(m.mnt, key) == []
    assert files_holding(m.store, key) == []
    stop(m)
    assert KEY not in m.log()


def test_unknown_price_says_so_and_how_to_set_it(mount_factory, emulator):
    """A budget with a gateway nobody priced: the error names the unknown
    price and the [prices] line to add, not a budget overrun."""
    cfg = (f"[bananafs]\ngateway_url = {emulator.url}\nbudget_daily_usd = 5\n")
    m = mount_factory(config_text=cfg, env={"BANANAFS_GATEWAY_KEY": "gw-key-unused-0000"})
    prompt = m.path(*DIR, "unpriced.txt")
    write(prompt, "---\nroute: gateway\n---\na scene nobody priced\n")
    assert wait_done(prompt, 20) == "failed"
    text = open(prompt[:-4] + ".error").read()
    assert "price is unknown" in text, text
    assert "[prices]" in text and f"{DIR[0]}.{DIR[1]}.gateway = " in text, text
    assert "budget would be passed" not in text, text
    assert emulator.stats()["requests"] == 0
    stop(m)


def test_server_text_chunk_is_capped_ours_kept(mount_factory, emulator):
    """The server's PNG carries a 1 MiB text chunk: the published PNG keeps
    at most 64 KiB of the server's text, and our provenance chunks whole."""
    import pngwalk
    m = mount_factory(config_text=CONFIG)
    emulator.fault("big-text", 1, bytes=1 << 20)
    prompt = m.path(*DIR, "bigtext.txt")
    long_prompt = "a lighthouse " * 1500     # ~19 KiB of our own text, kept whole
    write(prompt, long_prompt)
    assert wait_done(prompt, 20) == "done"
    data = open(prompt[:-4] + ".png", "rb").read()
    w, h, chunks, keys = pngwalk.walk(data)
    assert "prompt" in keys and "key" in keys, keys
    assert long_prompt.strip().encode() in data
    assert len(data) < 512 * 1024, f"published PNG is {len(data)} bytes: the server's text came along"
    stop(m)


OTHER = ("gemini-3-pro-image", "1K")     # another model than DIR's


def jobs_line(m, prompt):
    import json
    rel = os.path.relpath(prompt, m.mnt)
    with open(m.path(".bananafs", "jobs")) as f:
        for line in f:
            j = json.loads(line)
            if j["path"] == rel:
                return j
    return None


def test_endless_429_ends_that_prompt_not_the_mount(mount_factory, emulator):
    """retryDelay 999999s (and Retry-After 999999): that prompt fails at once
    with a quota error naming the delay; another model's prompt gets its PNG."""
    m = mount_factory(config_text=CONFIG)
    emulator.fault("429-minute", 5, retry_delay="999999s", model=DIR[0])
    a = m.path(*DIR, "endless.txt")
    b = m.path(*OTHER, "meanwhile.txt")
    write(a, "a scene behind an endless quota\n")
    write(b, "a scene of another model\n")
    assert wait_done(b, 30) == "done"
    assert wait_done(a, 70) == "failed"
    text = open(a[:-4] + ".error").read()
    assert "quota" in text and "999999" in text and "per-minute" in text, text
    assert "HTTP status: 429" in text, text
    assert emulator.stats()["requests"] == 2, "the endless 429 was resent"
    stop(m)


def test_429_pauses_its_model_only_and_shows_the_end(mount_factory, emulator):
    """A 6 s 429 for one model: its prompt shows waiting-quota with the end
    time (xattr, jobs line, bananactl status); another model's prompt runs."""
    import datetime
    from conftest import binary
    m = mount_factory(config_text=CONFIG)
    emulator.fault("429-minute", 1, retry_delay="6s", model=DIR[0])
    a = m.path(*DIR, "paused.txt")
    write(a, "a scene that must wait for quota\n")
    wait_for(lambda: status(a) == "waiting-quota", 10, "waiting-quota")
    at = os.getxattr(a, "user.bananafs.retry_at").decode()
    end = datetime.datetime.strptime(at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    now = datetime.datetime.now(datetime.timezone.utc)
    assert now - datetime.timedelta(seconds=2) < end < now + datetime.timedelta(seconds=70), at
    assert jobs_line(m, a)["retry_at"] == at
    out = subprocess.run([binary("bananactl"), "-m", m.mnt, "status"], capture_output=True,
                         text=True, timeout=20).stdout
    assert f"waiting-quota until {at}" in out, out
    b = m.path(*OTHER, "other-model.txt")
    write(b, "a scene of a model with quota left\n")
    assert wait_done(b, 20) == "done"
    assert status(a) == "waiting-quota", "the other model's prompt waited for this pause"
    assert wait_done(a, 30) == "done"
    assert jobs_line(m, a)["retry_at"] is None
    stop(m)


def test_project_wide_429_pauses_every_model(mount_factory, emulator):
    """The server says the quota is the project's (a QuotaFailure without a
    model, as generateContent sends it): other models wait too."""
    m = mount_factory(config_text=CONFIG)
    emulator.fault("429-minute", 1, retry_delay="3s", model=DIR[0],
                   quota_id="GenerateRequestsPerMinutePerProject")
    a = m.path(*DIR, "project.txt")
    write(a, "---\nroute: generate\n---\na scene over the project's quota\n")
    wait_for(lambda: status(a) == "waiting-quota", 10, "waiting-quota")
    b = m.path(*OTHER, "held.txt")
    write(b, "a scene held by the project's pause\n")
    wait_for(lambda: status(b) == "waiting-quota", 10, "the other model to wait")
    assert wait_done(b, 20) == "done" and wait_done(a, 20) == "done"
    stop(m)


def test_stalled_answers_free_their_slots(mount_factory, emulator):
    """Four answers trickle one byte every 5 s into all four slots; a short
    low-speed limit ends them, and a fresh prompt gets its PNG meanwhile
    (a resend queues behind it)."""
    cfg = CONFIG.replace("timeout_s = 2\n", "timeout_s = 120\n") + \
        "max_inflight = 4\nlow_speed_limit = 1024\nlow_speed_time_s = 2\n"
    m = mount_factory(config_text=cfg)
    emulator.fault("trickle", 4 * RETRIES, delay_ms=5000, model=DIR[0])
    stalled = [m.path(*DIR, f"stall{i}.txt") for i in range(4)]
    for i, p in enumerate(stalled):
        write(p, f"a scene the server trickles {i}\n")
    wait_for(lambda: emulator.stats()["requests"] >= 4, 10, "four stalled answers")
    fresh = m.path(*OTHER, "fresh.txt")
    write(fresh, "a fresh scene behind the stalled ones\n")
    assert wait_done(fresh, 60) == "done"
    for p in stalled:
        assert wait_done(p, 60) == "failed"
        text = open(p[:-4] + ".error").read()
        assert "stalled" in text and "low_speed_limit" in text, text
    stop(m)


@pytest.mark.parametrize("durable", ["no", "yes"], ids=["plain", "background"])
def test_maximal_answers_do_not_multiply_memory(mount_factory, emulator, durable):
    """Six incompressible 2K answers (16 MiB of base64 each, near the cap)
    arrive at once into six slots: the mount-wide answer memory keeps the
    daemon's peak under a stated bound, whatever max_inflight is, for plain
    answers and for polled background interactions alike."""
    answer_mb, cap_mb = 40, 20
    cfg = CONFIG.replace("durable_requests = no\n", f"durable_requests = {durable}\n").replace(
        "timeout_s = 2\n", "timeout_s = 60\n").replace(
        "max_response_mb = 8\n", f"max_response_mb = {cap_mb}\n") + \
        f"max_inflight = 6\nanswer_memory_mb = {answer_mb}\n"
    # under ASan freed memory waits in a quarantine: without one the peak means the same
    asan = os.environ.get("ASAN_OPTIONS", "detect_leaks=0:abort_on_error=0")
    m = mount_factory(config_text=cfg, env={"ASAN_OPTIONS": asan + ":quarantine_size_mb=0"})
    d = m.path("gemini-3.1-flash-image", "2K")
    base = vm_hwm_kb(m.proc.pid)
    emulator.fault("noise", 6)
    prompts = [os.path.join(d, f"noise{i}.txt") for i in range(6)]
    for i, p in enumerate(prompts):
        write(p, f"a photograph full of grain {i}\n")
    for p in prompts:
        assert wait_done(p, 60) == "done", open(p[:-4] + ".error").read() \
            if os.path.exists(p[:-4] + ".error") else status(p)
    peak = vm_hwm_kb(m.proc.pid)
    size = os.path.getsize(prompts[0][:-4] + ".png")
    assert size > 12 << 20, f"the noise PNG is only {size} bytes"
    # the budget (40 MiB: two answers, each decoded in place into its own
    # buffer), one PNG being written and allocator slack (ASan's shadow);
    # six unbounded answers need 6 x 16 MiB (measured: 110 MiB peak)
    bound = base + (answer_mb + 32) * 1024
    print(f"\nVmHWM: {base // 1024} MiB at mount, {peak // 1024} MiB after six 2K noise "
          f"answers ({size / 2**20:.1f} MiB PNG each); bound {bound // 1024} MiB")
    assert peak < bound, f"daemon peak {peak // 1024} MiB over the bound {bound // 1024} MiB"
    stop(m)


def test_a_slow_drawing_is_not_a_stall(mount_factory, emulator):
    """The wait before the answer starts is the model drawing (tens of
    seconds for 4K): only the answer itself is held to the low-speed limit."""
    cfg = CONFIG.replace("timeout_s = 2\n", "timeout_s = 30\n") + \
        "low_speed_limit = 1024\nlow_speed_time_s = 1\n"
    m = mount_factory(config_text=cfg)
    emulator.fault("slow", 1, delay_ms=3500)
    p = m.path(*DIR, "patient.txt")
    write(p, "a scene that takes its time to draw\n")
    assert wait_done(p, 30) == "done"
    assert emulator.stats()["requests"] == 1
    stop(m)


def test_doctor_never_shows_a_key_the_server_quotes(mount_factory):
    """bananactl doctor prints the endpoint's error words (status, reason):
    a server that puts the key there gets "[key]" printed instead."""
    import http.server
    import json
    from conftest import KEY, binary

    class Quoting(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({"error": {"code": 400, "message": "bad", "status": f"BAD_{KEY}",
                                         "details": [{"reason": f"KEY_{KEY}"}]}}).encode()
            self.send_response(400)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quoting)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        m = mount_factory(config_text=CONFIG, endpoint=f"http://127.0.0.1:{srv.server_port}")
        r = subprocess.run([binary("bananactl"), "doctor", "-m", m.mnt], capture_output=True,
                           text=True, timeout=60)
        out = r.stdout + r.stderr
        assert r.returncode == 1 and "FAIL" in out, out
        assert "[key]" in out and KEY not in out, out
        stop(m)
    finally:
        srv.shutdown()
