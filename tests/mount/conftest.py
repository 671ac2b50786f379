"""Fixtures for mount-level tests: a real emulator process and a real FUSE mount.

`emulator` starts build/bananafs-emulator on a free loopback port; `mount`
starts `bananafs -f` against it with a fresh store, waits for the mount,
and on teardown unmounts with fusermount3 and checks the daemon's stderr
for sanitizer reports.  Nothing here imitates our own code.
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(ROOT, os.environ.get("BANANAFS_BUILD", "build"))
KEY = "emulator-key-0123456789abcdef"


def pytest_addoption(parser):
    parser.addoption("--long", action="store_true", help="run the long forms")


def pytest_configure(config):
    config.addinivalue_line("markers", "smoke: short mount tests also run with sanitizer builds")


def binary(name):
    path = os.path.join(BUILD, name)
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} is missing: run make")
    return path


class Emulator:
    def __init__(self, extra=()):
        self.proc = subprocess.Popen(
            [binary("bananafs-emulator"), "--listen", "127.0.0.1:0", "--key", KEY, *extra],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline().strip()
        if not line.startswith("listening on "):
            self.proc.kill()
            raise RuntimeError(f"emulator did not start: {line!r}")
        self.url = line.split()[-1]

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            text = r.read()
        return json.loads(text) if text else None

    def stats(self):
        return self.call("GET", "/_emulator/stats")

    def requests(self):
        return self.call("GET", "/_emulator/requests")

    def fault(self, kind, count=1, **kw):
        return self.call("POST", "/_emulator/fault", {"kind": kind, "count": count, **kw})

    def reset(self):
        return self.call("POST", "/_emulator/reset", {})

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def is_mounted(path):
    with open("/proc/self/mounts") as f:
        return any(line.split()[1] == path for line in f)


class Mount:
    """A running `bananafs -f` on a temp folder."""

    def __init__(self, endpoint, store, mnt, config_text="", opts=(), env=None, prefix=()):
        self.endpoint, self.store, self.mnt = endpoint, store, mnt
        self.config = os.path.join(os.path.dirname(store), "config")
        with open(self.config, "w") as f:
            f.write(config_text)
        self.stderr_path = os.path.join(os.path.dirname(store), "bananafs.stderr")
        e = dict(os.environ)
        e.pop("GOOGLE_API_KEY", None)
        e["GEMINI_API_KEY"] = KEY
        e.setdefault("ASAN_OPTIONS", "detect_leaks=0:abort_on_error=0")
        if env:
            e.update(env)
        self.err = open(self.stderr_path, "ab")
        # The settle wait for copy tools (bananafs.conf(5) settle_s) is off unless a test
        # asks for it: most tests write a prompt and want the request at once.
        if "settle_s" not in config_text and not any("settle_s" in o for o in opts):
            opts = ("-o", "settle_s=0", *opts)
        # prefix: a command the daemon runs under (setpriv for a daemon that is not root)
        args = [*prefix, binary("bananafs"), "-f", "--store", store, "--endpoint", endpoint,
                "--config", self.config, *opts, mnt]
        self.proc = subprocess.Popen(args, stdout=self.err, stderr=self.err, env=e)
        deadline = time.time() + 10
        while not is_mounted(mnt):
            if self.proc.poll() is not None:
                raise RuntimeError("bananafs exited: " + self.log())
            if time.time() > deadline:
                self.proc.kill()
                raise RuntimeError("bananafs did not mount: " + self.log())
            time.sleep(0.05)

    def log(self):
        if not self.err.closed:
            self.err.flush()
        with open(self.stderr_path, errors="replace") as f:
            return f.read()

    def path(self, *parts):
        return os.path.join(self.mnt, *parts)

    def unmount(self, check=True):
        if self.proc.poll() is None:
            rc = subprocess.run(["fusermount3", "-u", self.mnt]).returncode
            if rc != 0:
                subprocess.run(["fusermount3", "-uz", self.mnt])
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                if check:
                    pytest.fail("bananafs did not exit after unmount")
            if check and rc != 0:
                pytest.fail("fusermount3 -u failed")
        self.err.close()
        log = self.log()
        if check and ("ERROR: AddressSanitizer" in log or "runtime error:" in log):
            pytest.fail("sanitizer report in bananafs stderr:\n" + log[-4000:])
        if check and self.proc.returncode not in (0, None):
            pytest.fail(f"bananafs exited with {self.proc.returncode}:\n{log[-2000:]}")

    def kill9(self):
        self.proc.kill()
        self.proc.wait()
        subprocess.run(["fusermount3", "-uz", self.mnt])
        self.err.close()


@pytest.fixture
def emulator():
    emu = Emulator()
    yield emu
    emu.stop()


@pytest.fixture
def workdir():
    with tempfile.TemporaryDirectory(prefix="bananafs-test-") as d:
        os.makedirs(os.path.join(d, "mnt"))
        yield d


@pytest.fixture
def mount_factory(emulator, workdir):
    """mount_factory(config_text="", opts=()) -> Mount; unmounted at teardown."""
    mounts = []

    def make(config_text="", opts=(), env=None, endpoint=None, prefix=()):
        m = Mount(endpoint or emulator.url, os.path.join(workdir, "store"),
                  os.path.join(workdir, "mnt"), config_text, opts, env, prefix)
        mounts.append(m)
        return m

    yield make
    for m in mounts:
        if m.proc.poll() is None or not m.err.closed:
            m.unmount()


@pytest.fixture
def mount(mount_factory):
    return mount_factory()


def wait_for(pred, timeout=20, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def status(path):
    try:
        return os.getxattr(path, "user.bananafs.status").decode()
    except OSError:
        return None


def wait_done(prompt, timeout=20):
    """Waits until the prompt's status is final and returns it."""
    return wait_for(lambda: (s := status(prompt)) in ("done", "cached", "failed", "dry-run") and s,
                    timeout, f"{prompt} to finish")


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def ledger(store):
    p = os.path.join(store, "ledger.jsonl")
    if not os.path.exists(p):
        return []
    with open(p) as f:
        return [json.loads(line) for line in f if line.strip()]


def ledger_matches_bill(rows, billed_usd):
    """The ledger's billed total is the bill.  Exactly for the lines settled from the usage
    their answer reported; a line priced per image (an answer too broken to read its usage,
    a request whose answer a crash hid) holds the estimate, off by the tokens nobody could
    see (prompt, thinking): within 5 % of it, far less than one more image."""
    total = sum(r.get("cost_usd") or 0 for r in rows if r.get("billed"))
    slack = sum(0.05 * (r.get("cost_usd") or 0) for r in rows
                if r.get("billed") and r.get("cost_basis") != "usage")
    return abs(total - billed_usd) <= slack + 1e-9
