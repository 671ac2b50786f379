"""Row group 1: file system overhead.  One backing folder, seen natively,
through bananafs and through libfuse's passthrough examples; every target
does the same sequential write/read and the same ls -l / lstat of every
name in a folder, cold (caches dropped) and warm."""
import os
import subprocess
import sys

from procs import drop_caches, median, now
from table import Row

CHUNK = 1 << 20


def write_file(path, size):
    buf = os.urandom(CHUNK)
    t0 = now()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    left = size
    while left > 0:
        left -= os.write(fd, buf[:min(CHUNK, left)])
    os.close(fd)
    return now() - t0


def read_file(path):
    buf = bytearray(CHUNK)
    t0 = now()
    total = 0
    with open(path, "rb", buffering=0) as f:
        while (n := f.readinto(buf)) > 0:
            total += n
    return now() - t0, total


def ls_l(path):
    t0 = now()
    subprocess.run(["ls", "-l", "--color=never", path], stdout=subprocess.DEVNULL, check=True)
    return now() - t0


def spawn_cost(empty, reps=5):
    """`ls -l` of an empty native folder: the process start every ls row
    pays, taken off so the rows compare the file systems."""
    return median([ls_l(empty) for _ in range(reps)])


def stat_all(path):
    t0 = now()
    for name in os.listdir(path):
        os.lstat(os.path.join(path, name))
    return now() - t0


SMALL_CHUNK = 100


def small_files(dirs, n, start):
    """Create (100 bytes each), lstat and unlink n small files in each
    target's folder, dirs [(name, folder)]: the work of a folder of prompts
    and images, one round trip per step.  In chunks of SMALL_CHUNK names
    (created, then lstat'ed, then unlinked), the targets taking turns chunk
    by chunk, each chunk starting at the next target (the first at start).
    A store on ext4 without a journal skips the inodes deleted in the last
    minutes at every create, so creates cost more as the row goes on (a
    native create 50, then 100, then 120 us within a minute here): one
    target after another handed that to the later ones, and three
    repetitions cannot give every target every place.  Whole steps in turns
    would not do: a target's files would wait for the others' between their
    create and their lstat, longer than passthrough_ll's 1 s entry timeout.
    Returns {name: [seconds of each chunk]}, chunks in the same order for
    every target, so that a chunk's times can be paired."""
    data = b"x" * 100
    spent = {}
    for name, d in dirs:
        os.makedirs(d, exist_ok=True)
        spent[name] = []
    for c, first in enumerate(range(0, n, SMALL_CHUNK)):
        k = (start + c) % len(dirs)
        for name, d in dirs[k:] + dirs[:k]:
            last = min(n, first + SMALL_CHUNK)
            names = [os.path.join(d, f"s{i:05d}.dat") for i in range(first, last)]
            t0 = now()
            for p in names:
                fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                os.write(fd, data)
                os.close(fd)
            for p in names:
                os.lstat(p)
            for p in names:
                os.unlink(p)
            spent[name].append(now() - t0)
    for _, d in dirs:
        os.rmdir(d)
    return spent


def run(targets, native_dir, cfg, cold_ok):
    """targets: [(name, dir)] with the native folder first; those named
    "bananafs..." are measured, the others are baselines.  Returns rows
    comparing each bananafs frontend to each baseline."""
    size = cfg.file_mib << 20
    reps = cfg.reps
    cold_rounds = max(1, -(-cfg.cold_reps // reps))	# per repetition
    src = os.path.join(native_dir, "seq.bin")
    write_file(src, size)
    with open(src, "rb+") as f:
        os.fsync(f.fileno())
    meta = os.path.join(native_dir, "many")
    os.makedirs(meta, exist_ok=True)
    for i in range(cfg.files):
        open(os.path.join(meta, f"f{i:05d}.txt"), "w").close()

    empty = os.path.join(native_dir, "empty")
    os.makedirs(empty, exist_ok=True)
    spawn = spawn_cost(empty)
    res = {name: {k: [] for k in ("write", "cold", "warm", "ls_cold", "ls_warm", "stat_cold", "stat", "small")}
           for name, _ in targets}
    small_chunks = {name: [] for name, _ in targets}
    indexed = list(enumerate(targets))	# i names each target's own files: one backing folder
    for rep in range(reps):
        # Each repetition starts at another target: where a target's pages
        # land after a cache drop moves its warm read by ±10 % here, and a
        # fixed order would hand that to the same target every time.
        order = indexed[rep % len(indexed):] + indexed[:rep % len(indexed)]
        for i, (name, d) in order:
            if cold_ok:
                drop_caches()
            res[name]["write"].append(write_file(os.path.join(d, f"w-{i}.bin"), size))
        # Cold reads in rounds, each target once a round after its own cache
        # drop, each round starting at the next target; the ratio is the
        # median of the rounds' ratios.  A 64 MiB cold read here swings
        # ±20 % and more from one read to the next with the disk and the
        # other work on the machine, which three medians did not settle
        # (0.87-1.08x one run to the next); reads in the same round meet
        # the same moment.
        for k in range(cold_rounds):
            r = rep * cold_rounds + k
            for _, (name, d) in indexed[r % len(indexed):] + indexed[:r % len(indexed)]:
                if cold_ok:
                    drop_caches()
                t, n = read_file(os.path.join(d, "seq.bin"))
                assert n == size, f"{name}: read {n} of {size} bytes"
                res[name]["cold"].append(t)
        # Warm: each target alone after a cache drop, read twice first.  A
        # file's pages read faster once they are on the active list (its
        # second read, 15 % here), and pages filled first after a drop read
        # slower than those filled later: the same start for every target.
        for _, (name, d) in order:
            if cold_ok:
                drop_caches()
            read_file(os.path.join(d, "seq.bin"))
            read_file(os.path.join(d, "seq.bin"))
            res[name]["warm"].append(read_file(os.path.join(d, "seq.bin"))[0])
        for _, (name, d) in order:
            if cold_ok:
                drop_caches()
            res[name]["ls_cold"].append(ls_l(os.path.join(d, "many")) - spawn)
        for _, (name, d) in order:
            if cold_ok:
                drop_caches()
            res[name]["stat_cold"].append(stat_all(os.path.join(d, "many")))
        for _, (name, d) in order:
            ls_l(os.path.join(d, "many"))
            res[name]["ls_warm"].append(ls_l(os.path.join(d, "many")) - spawn)
            res[name]["stat"].append(stat_all(os.path.join(d, "many")))
        small = small_files([(name, os.path.join(d, f"small-{i}")) for i, (name, d) in indexed],
                            cfg.small, rep)
        for name, chunks in small.items():
            res[name]["small"].append(sum(chunks))
            small_chunks[name] += chunks
    for i, (name, d) in enumerate(targets):
        os.unlink(os.path.join(d, f"w-{i}.bin"))

    for name, _ in targets:	# the rounds behind the cold row's medians, in round order
        print(f"bench: cold reads, ms, {name}: " + " ".join(f"{t * 1e3:.0f}" for t in res[name]["cold"]),
              file=sys.stderr, flush=True)
        print(f"bench: small-file chunks, ms, {name}: " + " ".join(f"{t * 1e3:.0f}" for t in small_chunks[name]),
              file=sys.stderr, flush=True)
    mib = cfg.file_mib
    cold_note = "" if cold_ok else "not cold: no root to drop caches"
    paired_note = f"ratio: median of {reps * cold_rounds} paired rounds"
    ls_note = f"ls start-up ({spawn * 1e3:.1f} ms) taken off"
    tests = [
        ("write", f"seq write {mib} MiB (to close)", "≤ libfuse passthrough", ""),
        ("cold", f"seq read {mib} MiB, cold", "≤ libfuse passthrough", cold_note),
        ("warm", f"seq read {mib} MiB, warm", "≤ 1/0.95 × native", ""),
        ("ls_cold", f"ls -l {cfg.files} files, cold", "≤ 2× native", (cold_note + " " + ls_note).strip()),
        ("ls_warm", f"ls -l {cfg.files} files, warm", "≤ 2× native", ls_note),
        ("stat_cold", f"lstat {cfg.files} files, cold", "", cold_note),
        ("stat", f"lstat {cfg.files} files, warm", "≤ 1.5× native", ""),
        ("small", f"create+lstat+unlink {cfg.small} small files", "", ""),
    ]
    mine = [name for name, _ in targets if name.startswith("bananafs")]
    rows = []
    for bfs in mine:
        label = bfs[len("bananafs"):].strip()
        for key, what, goal, note in tests:
            value = median(res[bfs][key])
            for name, _ in targets:
                if name in mine:
                    continue
                goal_here = "≤ libfuse passthrough_ll" if name.startswith("libfuse passthrough_ll") \
                    else goal
                paired, note_here = None, note
                if key == "cold":
                    paired = median([a / b for a, b in zip(res[bfs][key], res[name][key])])
                    note_here = (paired_note + " " + note).strip()
                elif key == "small":
                    paired = median([a / b for a, b in zip(small_chunks[bfs], small_chunks[name])])
                    note_here = f"ratio: median of {len(small_chunks[bfs])} paired chunks of {SMALL_CHUNK}"
                rows.append(Row("1", f"{what} [{label} frontend]" if label else what, value, "s",
                                name, median(res[name][key]), goal_here, note_here,
                                paired_ratio=paired))
    return rows
