"""make bench: bananafs against native, libfuse's passthrough examples,
curl and the official SDK.  Prints one table; every row has its baseline
and the ratio, all measured in this run.  Exits non-zero only when a
correctness check fails (a prompt paid twice, a wrong image), never on time.

Sizes come from the environment (BENCH_QUICK=1 shrinks them all):
BENCH_FILE_MIB, BENCH_FILES, BENCH_REPS, BENCH_COLD_REPS, BENCH_HITS, BENCH_UNCACHED,
BENCH_CONCURRENT, BENCH_PROMPTS, BENCH_INFLIGHT, BENCH_LATENCY_MS,
BENCH_STARTUPS; BENCH_ONLY=1,2,... runs some groups; BENCH_MD=FILE also
writes the table as Markdown."""
import os
import platform
import subprocess
import sys
import tempfile
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import client  # noqa: E402
import fsbench  # noqa: E402
import pipeline  # noqa: E402
import startup  # noqa: E402
from procs import Bananafs, Emulator, Libfuse, can_drop_caches, libfuse_available  # noqa: E402
from table import Row, markdown, text  # noqa: E402

QUICK = os.environ.get("BENCH_QUICK") == "1"


class Cfg:
    def __init__(self):
        def env(name, full, quick):
            return int(os.environ.get("BENCH_" + name, quick if QUICK else full))
        self.file_mib = env("FILE_MIB", 64, 16)
        self.files = env("FILES", 10000, 1000)
        self.small = env("SMALL", 2000, 200)
        self.reps = env("REPS", 3, 2)
        self.cold_reps = env("COLD_REPS", 9, 4)
        self.hits = env("HITS", 1000, 100)
        self.uncached = env("UNCACHED", 50, 10)
        self.concurrent = env("CONCURRENT", 100, 20)
        self.prompts = env("PROMPTS", 200, 40)
        self.inflight = env("INFLIGHT", 4, 4)
        self.latency = env("LATENCY_MS", 200, 100)
        self.startups = env("STARTUPS", 5, 2)
        only = os.environ.get("BENCH_ONLY", "")
        self.only = {s.strip() for s in only.split(",") if s.strip()}

    def wants(self, group):
        return not self.only or group in self.only


def machine():
    mem = "?"
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1048576:.1f} GiB"
    fuse = subprocess.run(["pkg-config", "--modversion", "fuse3"], capture_output=True,
                          text=True).stdout.strip() or "?"
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (f"nproc {os.cpu_count()}, {cpu}, memory {mem}, kernel {platform.release()}, "
            f"libfuse {fuse}, python {platform.python_version()}")


def group1(cfg, work, emu, notes):
    cold_ok = can_drop_caches()
    if not cold_ok:
        notes.append("1: not root, caches not dropped: 'cold' rows are warm")
    bfs = Bananafs(work, emu.url, tag="fs")
    lib = []
    try:
        native = bfs.backing("gemini-3-pro-image", "1K", "bench")
        os.makedirs(native)
        targets = [("native", native), ("bananafs", bfs.path("gemini-3-pro-image", "1K", "bench"))]
        for kind, opts in (("passthrough", ()), ("passthrough_ll", ()),
                           ("passthrough_ll", ("cache=always",))):
            if libfuse_available(kind):
                lf = Libfuse(kind, work, os.path.join(bfs.store, "tree"), opts, tag=len(lib))
                lib.append(lf)
                label = " ".join([f"libfuse {kind}", *opts])
                targets.append((label, lf.path("gemini-3-pro-image", "1K", "bench")))
            else:
                notes.append(f"1: libfuse {kind} example not built (run.sh builds it from "
                             "/usr/share/doc/libfuse3-dev/examples): compared to native only")
        return fsbench.run(targets, native, cfg, cold_ok), True
    finally:
        for lf in lib:
            lf.stop()
        bfs.stop()


def group23(cfg, work, emu0, notes):
    ok = True
    conf = f"max_inflight = {cfg.inflight}\n"
    emul = Emulator(cfg.latency)
    # Cache hits and lone uncached prompts as a user meets them (the default
    # settle_s); bursts without the copy wait (pipeline.BURST_CONF).
    m0 = Bananafs(work, emu0.url, conf, tag="pipe0")
    mb = Bananafs(work, emu0.url, conf + pipeline.BURST_CONF, tag="pipe0b")
    ml = Bananafs(work, emul.url, conf + pipeline.BURST_CONF, tag="pipeL")
    rows = []
    try:
        if cfg.wants("2"):
            r, good = pipeline.cache_hits(m0, emu0, cfg)
            rows += r
            ok &= good
            r, good = pipeline.coalesce(ml, emul, cfg, cfg.latency)
            rows += r
            ok &= good
        if cfg.wants("3"):
            rows += pipeline.throughput(ml, mb, emu0, cfg, cfg.latency)
    finally:
        m0.stop()
        mb.stop()
        ml.stop()
        emul.stop()
    return rows, ok


def group4(cfg, work, emu0, notes):
    # photo-like noise: a 4K answer has a real image's size (~48 MiB PNG, ~64 MiB base64)
    en = Emulator(0, ["--noise"])
    try:
        m = Bananafs(work, en.url, tag="client")
        try:
            rows = client.run(m, en, work)
        finally:
            m.stop()
    finally:
        en.stop()
    ej = Emulator(0, ["--jpeg"])
    try:
        m = Bananafs(work, ej.url, tag="clientjpeg")
        try:
            rows += client.run_jpeg(m)
        finally:
            m.stop()
    finally:
        ej.stop()
    return rows, True


def group5(cfg, work, emu0, notes):
    return startup.run(work, emu0, cfg.startups), True


def main():
    cfg = Cfg()
    print("bench:", machine(), flush=True)
    print("bench: quick mode" if QUICK else "bench: full sizes", flush=True)
    rows, notes, ok = [], [], True
    with tempfile.TemporaryDirectory(prefix="bananafs-bench-") as work:
        emu0 = Emulator(0)
        try:
            groups = [("1", group1), ("2", group23), ("4", group4), ("5", group5)]
            for name, fn in groups:
                if name == "2" and not (cfg.wants("2") or cfg.wants("3")):
                    continue
                if name != "2" and not cfg.wants(name):
                    continue
                print(f"bench: group {name}…", file=sys.stderr, flush=True)
                try:
                    r, good = fn(cfg, work, emu0, notes)
                    rows += r
                    ok &= good
                except Exception as e:  # one broken group still leaves the others' rows
                    traceback.print_exc()
                    notes.append(f"{name}: FAILED: {e}")
                    ok = False
        finally:
            emu0.stop()
    print()
    print(text(rows))
    for n in notes:
        print("note:", n)
    if os.environ.get("BENCH_MD"):
        with open(os.environ["BENCH_MD"], "w") as f:
            f.write(f"Machine: {machine()}\n\n" + markdown(rows) + "\n")
            for n in notes:
                f.write(f"\n- {n}")
            f.write("\n")
    print("bench: all correctness checks passed" if ok else "bench: A CHECK FAILED", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
