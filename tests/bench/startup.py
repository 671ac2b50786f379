"""Row group 5: start-up.  Exec to mounted, and the first listing of the
root, for bananafs on a fresh store and for libfuse's passthrough_ll."""
import os

from procs import Bananafs, Libfuse, libfuse_available, median, now
from table import Row


def run(work, emu, reps):
    mount, lst, base_mount, base_list = [], [], [], []
    src = os.path.join(work, "startup-src")
    os.makedirs(src, exist_ok=True)
    for i in range(reps):
        m = Bananafs(work, emu.url, tag=f"start{i}")
        try:
            mount.append(m.mounted - m.started)
            t0 = now()
            names = os.listdir(m.mnt)
            lst.append(now() - t0)
            assert ".bananafs" in names and "gemini-3-pro-image" in names, names
        finally:
            m.stop()
        if libfuse_available("passthrough_ll"):
            b = Libfuse("passthrough_ll", work, src)
            try:
                base_mount.append(b.mounted - b.started)
                t0 = now()
                os.listdir(b.mnt)
                base_list.append(now() - t0)
            finally:
                b.stop()
    bn = "libfuse passthrough_ll" if base_mount else None
    return [
        Row("5", f"exec → mounted (fresh store, n={reps})", median(mount), "s", bn,
            median(base_mount) if base_mount else None, "", "mount seen in /proc/self/mounts, 1 ms poll"),
        Row("5", "first listing of the root", median(lst), "s", bn,
            median(base_list) if base_list else None, ""),
    ]
