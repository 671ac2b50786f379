"""Row groups 2 and 3: the prompt-to-PNG path.  Cache hits (close() to
NAME.png visible), coalescing of identical prompts, and the queue's
overhead against the emulator's latency and a direct HTTP client."""
import json
import math
import os
import threading
import urllib.request

from procs import KEY, median, now, pct
import time

MODEL, SIZE = "gemini-3.1-flash-image", "512"
POLL = 0.0001
# The burst rows run on mounts with settle_s = 0: many prompts arriving in
# one folder at once look like a copy, which waits settle_s by design; these
# rows measure the queue, the cache and the limiter instead.
BURST_CONF = "settle_s = 0\n"
BURST_NOTE = "settle_s = 0"


class PromptFailed(Exception):
    pass


def write_prompt(path, text):
    with open(path, "w") as f:
        f.write(text)
    return now()


def check_error(txt):
    err = txt[:-4] + ".error"
    if os.path.exists(err):
        with open(err, errors="replace") as f:
            raise PromptFailed(f"{err}: {f.read()[:300]}")


def wait_png(txt, timeout=60):
    """Seconds until NAME.png is visible, polled every POLL seconds."""
    png = txt[:-4] + ".png"
    deadline = now() + timeout
    while True:
        if os.path.exists(png):
            return now()
        if now() > deadline:
            check_error(txt)
            raise PromptFailed(f"{png}: not there after {timeout}s")
        time.sleep(POLL)


def wait_all(txts, timeout=300):
    pending = [t[:-4] + ".png" for t in txts]
    deadline = now() + timeout
    while pending:
        pending = [p for p in pending if not os.path.exists(p)]
        if not pending:
            break
        if now() > deadline:
            check_error(pending[0][:-4] + ".txt")
            raise PromptFailed(f"{len(pending)} PNGs missing after {timeout}s")
        time.sleep(0.002)
    return now()


def gens(emu):
    return emu.stats()["generations"]


def uncached(mount, d, n, tag):
    """close()→PNG for n distinct prompts, one at a time, each alone in a
    folder of its own: a lone prompt, which the settle wait for copy tools
    (bananafs.conf(5) settle_s) does not delay; prompts following each
    other into one folder look like a copy and wait settle_s."""
    out = []
    for i in range(n):
        sub = os.path.join(d, f"{tag}{i}")
        os.mkdir(sub)
        p = os.path.join(sub, "prompt.txt")
        t0 = write_prompt(p, f"{tag} uncached prompt number {i}")
        out.append(wait_png(p) - t0)
    return out


def cache_hits(mount, emu, cfg):
    from table import Row
    d = mount.path(MODEL, SIZE, "hits")
    os.makedirs(d)
    g0 = gens(emu)
    base = uncached(mount, d, cfg.uncached, "u")
    fill = os.path.join(d, "fill.txt")
    write_prompt(fill, "one fox, cached once")
    wait_png(fill)
    lat = []
    for i in range(cfg.hits):
        p = os.path.join(d, f"h{i:04d}.txt")
        t0 = write_prompt(p, "one fox, cached once")
        lat.append(wait_png(p) - t0)
    paid = gens(emu) - g0
    expect = cfg.uncached + 1
    ok = paid == expect
    note = f"{paid} requests for {cfg.hits} hits + {expect} misses" + ("" if ok else " — PAID TWICE")
    base_name = f"uncached, L=0 (n={cfg.uncached})"
    rows = [
        Row("2", f"cache hit close→PNG, median (n={cfg.hits})", median(lat), "s",
            base_name + " median", median(base), "≪ 1", note),
        Row("2", f"cache hit close→PNG, p99 (n={cfg.hits})", pct(lat, 99), "s",
            base_name + " p99", pct(base, 99), "≪ 1", f"poll every {POLL * 1e6:.0f} µs"),
    ]
    return rows, ok


def coalesce(mount, emu, cfg, latency_ms):
    from table import Row
    d = mount.path(MODEL, SIZE, "same")
    os.makedirs(d)
    one = uncached(mount, d, 1, "single")[0]
    g0 = gens(emu)
    n = cfg.concurrent
    names = [os.path.join(d, f"c{i:03d}.txt") for i in range(n)]
    gate = threading.Barrier(n + 1)

    def go(p):
        gate.wait()
        write_prompt(p, "a hundred identical foxes")

    threads = [threading.Thread(target=go, args=(p,)) for p in names]
    for t in threads:
        t.start()
    gate.wait()
    t0 = now()
    for t in threads:
        t.join()
    t1 = wait_all(names)
    paid = gens(emu) - g0
    ok = paid == 1
    return [Row("2", f"{n} identical prompts at once → all PNGs", t1 - t0, "s",
                f"1 uncached, L={latency_ms} ms", one, "≈ 1",
                f"{paid} request(s); {BURST_NOTE}" + ("" if ok else " — EXPECTED EXACTLY 1"))], ok


def distinct_batch(mount, tag, n):
    d = mount.path(MODEL, SIZE, tag)
    os.makedirs(d)
    names = [os.path.join(d, f"p{i:03d}.txt") for i in range(n)]
    t0 = now()
    for i, p in enumerate(names):
        write_prompt(p, f"{tag}: distinct prompt {i}")
    return wait_all(names) - t0


def throughput(mount_l, mount_0, emu0, cfg, latency_ms):
    from table import Row
    n, k = cfg.prompts, cfg.inflight
    t = distinct_batch(mount_l, "lat", n)
    ideal = math.ceil(n / k) * latency_ms / 1000
    rows = [Row("3", f"{n} distinct prompts, L={latency_ms} ms, max_inflight={k}", t, "s",
                f"ideal ⌈{n}/{k}⌉×L", ideal, "≈ 1", BURST_NOTE)]
    t0 = distinct_batch(mount_0, "zero", n)
    direct = direct_rate(emu0, n, k)
    rows.append(Row("3", f"prompts/s, L=0, max_inflight={k} (n={n})", n / t0, "/s",
                    f"direct HTTP, {k} threads", direct, "≈ 1",
                    "higher is better; " + BURST_NOTE, lower_is_better=False))
    return rows


def direct_rate(emu, n, k):
    """The same n requests straight to the emulator from k threads: the
    rate with no file system, queue, cache or PNG writing in the way."""
    lock = threading.Lock()
    todo = list(range(n))

    def worker():
        while True:
            with lock:
                if not todo:
                    return
                i = todo.pop()
            body = json.dumps({"model": MODEL,
                               "input": [{"type": "text", "text": f"direct prompt {i}"}],
                               "response_format": {"type": "image", "aspect_ratio": "1:1",
                                                   "image_size": SIZE},
                               "store": False}).encode()
            req = urllib.request.Request(emu.url + "/v1beta/interactions", data=body,
                                         headers={"Content-Type": "application/json",
                                                  "x-goog-api-key": KEY})
            with urllib.request.urlopen(req, timeout=60) as r:
                ans = json.loads(r.read())
            assert ans.get("status") == "completed", ans.get("status")

    threads = [threading.Thread(target=worker) for _ in range(k)]
    t0 = now()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return n / (now() - t0)
