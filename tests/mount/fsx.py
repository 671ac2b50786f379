"""fsx-style exerciser: random operations on one file, mirrored in memory.

Each operation (read, write, truncate, mmap write, mmap read, fallocate,
punch hole, zero range, close and reopen, a write through a second
write-only open) is applied to the file and to a
bytearray model.  The size is checked after every operation, reads are
compared as they happen, and the whole file is compared every few
operations and at the end.  On a mismatch the seed, the operation number
and the tail of the operation log are reported, so `FSX_SEED=N` replays
the run exactly.

Usage: fsx.py PATH [NUM_OPS]        (seed from FSX_SEED, else random)
"""
import collections
import ctypes
import mmap
import os
import random
import sys

PAGE = mmap.ALLOCATIONGRANULARITY
FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
FALLOC_FL_ZERO_RANGE = 0x10

_libc = ctypes.CDLL(None, use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]


def fallocate(fd, mode, off, length):
    if _libc.fallocate(fd, mode, off, length) < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


class FsxError(AssertionError):
    pass


def seed_from_env():
    s = os.environ.get("FSX_SEED")
    return int(s) if s else random.SystemRandom().randrange(1, 2**31)


class Fsx:
    OPS = ("read", "write", "truncate", "mapwrite", "mapread", "fallocate", "punch", "zero",
           "reopen", "stat", "wronly_write")
    WEIGHTS = (20, 20, 6, 10, 10, 6, 8, 6, 2, 4, 8)

    def __init__(self, path, seed, maxlen=256 * 1024, maxop=64 * 1024, check_every=50,
                 log_tail=40, out=None):
        self.path, self.seed = path, seed
        self.maxlen, self.maxop, self.check_every = maxlen, maxop, check_every
        self.rng = random.Random(seed)
        self.model = bytearray()
        self.log = collections.deque(maxlen=log_tail)
        self.counts = collections.Counter()
        self.out = out	# None: whatever sys.stdout is at the time (pytest swaps it)
        self.n = 0
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)

    # -- reporting ---------------------------------------------------

    def fail(self, what):
        lines = [f"fsx: MISMATCH at op {self.n} (seed {self.seed}; replay with FSX_SEED={self.seed})",
                 f"fsx: {what}", f"fsx: last {len(self.log)} ops:"]
        lines += [f"  {entry}" for entry in self.log]
        text = "\n".join(lines)
        print(text, file=self.out or sys.stdout, flush=True)
        raise FsxError(text)

    def compare(self, got, off, what):
        want = bytes(self.model[off:off + len(got)])
        if len(got) != len(want) or got != want:
            bad = next((i for i in range(min(len(got), len(want))) if got[i] != want[i]),
                       min(len(got), len(want)))
            self.fail(f"{what}: {len(got)} bytes at {off}, expected {len(want)}; first "
                      f"difference at file offset {off + bad}: got "
                      f"{got[bad:bad + 16].hex()} want {want[bad:bad + 16].hex()}")

    # -- helpers -----------------------------------------------------

    def span(self, within_size=False):
        limit = len(self.model) if within_size else self.maxlen
        if limit == 0:
            return 0, 0
        off = self.rng.randrange(limit)
        # Bias towards page edges, where caches and holes meet.
        if self.rng.random() < 0.25:
            off = max(0, min(limit - 1, off - off % PAGE + self.rng.choice((-1, 0, 1))))
        length = self.rng.randrange(1, self.maxop + 1)
        return off, min(length, limit - off)

    def data(self, n):
        return self.rng.randbytes(n)

    def resize_model(self, size):
        if size < len(self.model):
            del self.model[size:]
        else:
            self.model.extend(bytes(size - len(self.model)))

    # -- operations --------------------------------------------------

    def op_read(self):
        off, n = self.span()
        self.log.append(f"{self.n} read {off} {n}")
        got = os.pread(self.fd, n, off)
        self.compare(got, off, "read")

    def op_write(self):
        off, n = self.span()
        buf = self.data(n)
        self.log.append(f"{self.n} write {off} {n}")
        if os.pwrite(self.fd, buf, off) != n:
            self.fail("short write")
        if off + n > len(self.model):
            self.resize_model(off + n)
        self.model[off:off + n] = buf

    def op_wronly_write(self):
        """A write through a second, write-only open (bananafs writes those
        past the page cache) while the first one keeps its cached pages."""
        off, n = self.span()
        buf = self.data(n)
        self.log.append(f"{self.n} write-only open: write {off} {n}")
        fd = os.open(self.path, os.O_WRONLY)
        try:
            if os.pwrite(fd, buf, off) != n:
                self.fail("short write")
        finally:
            os.close(fd)
        if off + n > len(self.model):
            self.resize_model(off + n)
        self.model[off:off + n] = buf

    def op_truncate(self):
        size = self.rng.randrange(self.maxlen + 1)
        self.log.append(f"{self.n} truncate {len(self.model)} -> {size}")
        os.ftruncate(self.fd, size)
        self.resize_model(size)

    def op_mapwrite(self):
        off, n = self.span()
        if n == 0:
            return
        buf = self.data(n)
        self.log.append(f"{self.n} mapwrite {off} {n}")
        if off + n > len(self.model):
            # A map cannot grow the file: extend it first, as fsx does.
            os.ftruncate(self.fd, off + n)
            self.resize_model(off + n)
        base = off - off % PAGE
        m = mmap.mmap(self.fd, off + n - base, mmap.MAP_SHARED,
                      mmap.PROT_READ | mmap.PROT_WRITE, offset=base)
        try:
            m[off - base:off - base + n] = buf
            m.flush()
        finally:
            m.close()
        self.model[off:off + n] = buf

    def op_mapread(self):
        off, n = self.span(within_size=True)
        if n == 0:
            return
        self.log.append(f"{self.n} mapread {off} {n}")
        base = off - off % PAGE
        m = mmap.mmap(self.fd, off + n - base, mmap.MAP_SHARED, mmap.PROT_READ, offset=base)
        try:
            got = m[off - base:off - base + n]
        finally:
            m.close()
        self.compare(got, off, "mapread")

    def op_fallocate(self):
        off, n = self.span()
        if n == 0:
            return
        keep = self.rng.random() < 0.5
        self.log.append(f"{self.n} fallocate {off} {n}{' keep_size' if keep else ''}")
        fallocate(self.fd, FALLOC_FL_KEEP_SIZE if keep else 0, off, n)
        if not keep and off + n > len(self.model):
            self.resize_model(off + n)

    def op_punch(self):
        off, n = self.span()
        if n == 0:
            return
        self.log.append(f"{self.n} punch {off} {n}")
        fallocate(self.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, n)
        end = min(off + n, len(self.model))
        if off < end:
            self.model[off:end] = bytes(end - off)

    def op_zero(self):
        off, n = self.span()
        if n == 0:
            return
        keep = self.rng.random() < 0.5
        self.log.append(f"{self.n} zero {off} {n}{' keep_size' if keep else ''}")
        fallocate(self.fd, FALLOC_FL_ZERO_RANGE | (FALLOC_FL_KEEP_SIZE if keep else 0), off, n)
        if not keep and off + n > len(self.model):
            self.resize_model(off + n)
        end = min(off + n, len(self.model))
        if off < end:
            self.model[off:end] = bytes(end - off)

    def op_reopen(self):
        self.log.append(f"{self.n} close/open")
        os.close(self.fd)
        self.fd = os.open(self.path, os.O_RDWR)

    def op_stat(self):
        self.log.append(f"{self.n} stat")
        size = os.stat(self.path).st_size
        if size != len(self.model):
            self.fail(f"stat(path) size {size}, expected {len(self.model)}")

    # -- checks and the loop ----------------------------------------

    def check_size(self):
        size = os.fstat(self.fd).st_size
        if size != len(self.model):
            self.fail(f"fstat size {size}, expected {len(self.model)}")

    def check_all(self, path=None):
        """The whole file (or another path to the same data) against the model."""
        if path is None:
            got = os.pread(self.fd, len(self.model) + 1, 0)
        else:
            with open(path, "rb") as f:
                got = f.read()
        self.compare(got, 0, f"whole file{' ' + path if path else ''}")

    def step(self):
        self.n += 1
        name = self.rng.choices(self.OPS, self.WEIGHTS)[0]
        self.counts[name] += 1
        try:
            getattr(self, "op_" + name)()
        except OSError as e:
            self.fail(f"{name} raised {e!r}")
        self.check_size()
        if self.n % self.check_every == 0:
            self.check_all()

    def run(self, nops):
        print(f"fsx: seed {self.seed}, {nops} ops on {self.path}", file=self.out or sys.stdout,
              flush=True)
        for _ in range(nops):
            self.step()
        self.check_all()
        return self.counts

    def close(self):
        os.close(self.fd)


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    nops = int(argv[2]) if len(argv) > 2 else 10000
    fsx = Fsx(argv[1], seed_from_env())
    try:
        counts = fsx.run(nops)
    except FsxError:
        return 1
    finally:
        fsx.close()
    print("fsx: ok " + " ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
