"""Processes the benchmark drives: the emulator, bananafs, libfuse's
passthrough examples; plus the clock and cache helpers every row uses."""
import json
import os
import signal
import subprocess
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(ROOT, os.environ.get("BANANAFS_BUILD", "build"))
BENCH_BIN = os.path.join(BUILD, "bench")
KEY = "bench-key-0123456789abcdef"


def now():
    return time.perf_counter()


def median(xs):
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def pct(xs, p):
    """Nearest-rank percentile."""
    s = sorted(xs)
    k = max(0, min(len(s) - 1, int(round(p / 100 * len(s) + 0.5)) - 1))
    return s[k]


def can_drop_caches():
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def drop_caches():
    """Page cache, dentries and inodes, kernel-wide (also the FUSE mounts' caches)."""
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def is_mounted(path):
    with open("/proc/self/mounts") as f:
        return any(line.split()[1] == path for line in f)


def wait_mounted(path, proc, timeout=10):
    deadline = now() + timeout
    while not is_mounted(path):
        if proc.poll() is not None:
            raise RuntimeError(f"{path}: daemon exited with {proc.returncode}")
        if now() > deadline:
            proc.kill()
            raise RuntimeError(f"{path}: not mounted after {timeout}s")
        time.sleep(0.001)


def unmount(path, proc):
    if proc.poll() is None:
        if subprocess.run(["fusermount3", "-u", path], stderr=subprocess.DEVNULL).returncode:
            subprocess.run(["fusermount3", "-uz", path], stderr=subprocess.DEVNULL)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Emulator:
    def __init__(self, latency_ms=0, extra=()):
        self.proc = subprocess.Popen(
            [os.path.join(BUILD, "bananafs-emulator"), "--listen", "127.0.0.1:0", "--key", KEY,
             "--latency", str(latency_ms), *extra],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline().strip()
        if not line.startswith("listening on "):
            self.proc.kill()
            raise RuntimeError(f"emulator did not start: {line!r}")
        self.url = line.split()[-1]

    def stats(self):
        with urllib.request.urlopen(self.url + "/_emulator/stats", timeout=10) as r:
            return json.loads(r.read())

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Bananafs:
    """`bananafs -f` on WORK/mnt with store WORK/store; `started` is the exec time."""

    def __init__(self, work, endpoint, config_text="", tag="bfs", opts=(), store=None):
        self.store = store or os.path.join(work, f"{tag}-store")
        self.mnt = os.path.join(work, f"{tag}-mnt")
        os.makedirs(self.mnt, exist_ok=True)
        self.config = os.path.join(work, f"{tag}.conf")
        with open(self.config, "w") as f:
            f.write("[bananafs]\n" + config_text)
        self.log = open(os.path.join(work, f"{tag}.stderr"), "ab")
        env = dict(os.environ)
        env.pop("GOOGLE_API_KEY", None)
        env["GEMINI_API_KEY"] = KEY
        self.started = now()
        self.proc = subprocess.Popen(
            [os.path.join(BUILD, "bananafs"), "-f", "--store", self.store, "--endpoint", endpoint,
             "--config", self.config, *opts, self.mnt], stdout=self.log, stderr=self.log, env=env)
        wait_mounted(self.mnt, self.proc)
        self.mounted = now()

    def path(self, *parts):
        return os.path.join(self.mnt, *parts)

    def backing(self, *parts):
        return os.path.join(self.store, "tree", *parts)

    def vm(self, field):
        """A /proc/PID/status field in KiB (VmHWM, VmRSS)."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        raise KeyError(field)

    def stop(self):
        unmount(self.mnt, self.proc)
        self.log.close()


class Libfuse:
    """One of libfuse's example passthrough file systems, exposing `source`.

    passthrough (high level) always mirrors /, so `path()` prefixes the
    source's absolute path; passthrough_ll takes -o source=."""

    def __init__(self, kind, work, source, opts=(), tag=""):
        self.kind, self.source = kind, source
        self.mnt = os.path.join(work, f"{kind}{tag}-mnt")
        os.makedirs(self.mnt, exist_ok=True)
        args = [os.path.join(BENCH_BIN, kind), "-f"]
        if kind == "passthrough_ll":
            args += ["-o", "source=" + source]
        for o in opts:
            args += ["-o", o]
        self.started = now()
        self.proc = subprocess.Popen(args + [self.mnt], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_mounted(self.mnt, self.proc)
        self.mounted = now()

    def path(self, *parts):
        if self.kind == "passthrough_ll":
            return os.path.join(self.mnt, *parts)
        return os.path.join(self.mnt + self.source, *parts)

    def stop(self):
        unmount(self.mnt, self.proc)


def libfuse_available(kind):
    return os.access(os.path.join(BENCH_BIN, kind), os.X_OK)
