"""The inode frontend (libfuse's low-level API): what long kernel caches
must not break, and what the path API could not do (issue 15).

Each test mounts a real bananafs against the real emulator and uses real
tools (inotifywait, dd, ls) from outside.
"""
import errno
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import time

import pytest

from conftest import binary, ledger, png_size, wait_done, wait_for

PRO1K = ("gemini-3-pro-image", "1K")


def moved_to_events(folder, action):
    """Runs action() while inotifywait watches folder; returns the names moved in."""
    if not shutil.which("inotifywait"):
        pytest.skip("inotifywait is not installed")
    w = subprocess.Popen(["inotifywait", "-m", "-e", "moved_to", "--format", "%f", folder],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: "Watches established" in w.stderr.readline(), 10, "inotifywait")
        action()
    finally:
        time.sleep(0.3)
        w.terminate()
    return w.communicate()[0].split()


@pytest.mark.parametrize("via_mount", [True, False], ids=["publish-via-mount", "publish-in-store"])
def test_new_png_seen_after_folder_was_cached(mount_factory, via_mount):
    """The folder's listing and NAME.png's negative lookup are cached by the
    kernel first; NAME.png must still show up in the listing, by stat and
    (when published through the mount) as an inotify MOVED_TO."""
    m = mount_factory(config_text="" if via_mount else "publish_via_mount = no\n")
    d = m.path(*PRO1K)
    p = os.path.join(d, "cat.txt")
    for _ in range(2):
        os.listdir(d)
        assert not os.path.exists(os.path.join(d, "cat.png"))

    def write_and_wait():
        with open(p, "w") as f:
            f.write("a cat on a windowsill")
        assert wait_done(p) == "done"
        wait_for(lambda: "cat.png" in os.listdir(d), 5, "cat.png in the listing")

    events = moved_to_events(d, write_and_wait)
    assert os.path.getsize(os.path.join(d, "cat.png")) > 0
    if via_mount:
        assert "cat.png" in events


def test_cache_hit_png_seen_in_cached_folder(mount):
    """A cache hit publishes at once; the folder's cached listing still shows it."""
    a, b = mount.path(*PRO1K), mount.path("gemini-3-pro-image", "2K")
    with open(os.path.join(a, "x.txt"), "w") as f:
        f.write("one lighthouse")
    assert wait_done(os.path.join(a, "x.txt")) == "done"
    os.listdir(b)
    events = moved_to_events(a, lambda: (
        open(os.path.join(a, "y.txt"), "w").write("one lighthouse"),
        wait_done(os.path.join(a, "y.txt"))))
    assert "y.png" in events
    assert "y.png" in os.listdir(a)


def test_listing_follows_changes(mount):
    """Cached listings and attributes follow every change made through the mount."""
    d = mount.path(*PRO1K, "sub")
    os.mkdir(d)
    for i in range(3):
        assert sorted(os.listdir(d)) == [f"f{j}" for j in range(i)]
        with open(os.path.join(d, f"f{i}"), "w") as f:
            f.write("x" * i)
    os.rename(os.path.join(d, "f0"), os.path.join(d, "g0"))
    os.unlink(os.path.join(d, "f1"))
    assert sorted(os.listdir(d)) == ["f2", "g0"]
    with open(os.path.join(d, "f2"), "a") as f:
        f.write("yy")
    assert os.stat(os.path.join(d, "f2")).st_size == 4
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)	# changes through an open folder's handle
    try:
        os.fchmod(fd, 0o700)
        os.utime(fd, (1, 2))
    finally:
        os.close(fd)
    st = os.stat(d)
    assert (st.st_mode & 0o777, st.st_mtime) == (0o700, 2)


def test_hard_links_are_one_inode(mount):
    d = mount.path(*PRO1K)
    a, b = os.path.join(d, "a"), os.path.join(d, "b")
    with open(a, "w") as f:
        f.write("1")
    os.link(a, b)
    assert os.stat(a).st_ino == os.stat(b).st_ino
    assert os.stat(a).st_nlink == 2


def test_o_direct_reads_and_writes(mount, tmp_path):
    src = tmp_path / "src"
    src.write_bytes(os.urandom(1 << 20))
    dst = mount.path(*PRO1K, "direct.bin")
    r = subprocess.run(["dd", f"if={src}", f"of={dst}", "bs=64k", "oflag=direct"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run(["dd", f"if={dst}", "of=/dev/null", "bs=64k", "iflag=direct"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    with open(dst, "rb") as f:
        assert f.read() == src.read_bytes()


def test_write_only_open_leaves_no_stale_pages(mount):
    """A write-only open writes past the page cache (fs/ll.c
    write_only_uncached): pages another open cached before (kept across
    opens) must not show the old bytes afterwards, neither through that
    open nor through a new one."""
    p = mount.path(*PRO1K, "pages.bin")
    with open(p, "wb") as f:
        f.write(b"a" * 65536)
    with open(p, "rb") as r:
        assert r.read() == b"a" * 65536       # the pages are cached now
        fd = os.open(p, os.O_WRONLY)
        try:
            assert os.pwrite(fd, b"b" * 4096, 8192) == 4096
            os.lseek(fd, 0, os.SEEK_END)
            assert os.write(fd, b"c" * 100) == 100
        finally:
            os.close(fd)
        want = b"a" * 8192 + b"b" * 4096 + b"a" * (65536 - 12288) + b"c" * 100
        assert os.pread(r.fileno(), len(want) + 10, 0) == want
    with open(p, "rb") as f:
        assert f.read() == want
    assert os.stat(p).st_size == len(want)


def test_path_longer_than_path_max_from_the_callers_folder(mount):
    """Each component is sent on its own: only the store's limits apply."""
    script = r"""
import os, sys
os.chdir(sys.argv[1])
depth = 0
while len(sys.argv[1]) + 201 * depth < 4300:
    os.mkdir("d" * 200)
    os.chdir("d" * 200)
    depth += 1
with open("deep.txt", "w") as f:
    f.write("deep")
os.chdir(sys.argv[1])
rel = "/".join(["d" * 200] * depth) + "/deep.txt"
try:
    open(rel)
except OSError as e:
    assert e.errno == 36, e                     # ENAMETOOLONG: the caller's own limit
os.chdir("/".join(["d" * 200] * (depth - 2)))
print(open("/".join(["d" * 200] * 2) + "/deep.txt").read())
"""
    r = subprocess.run([sys.executable, "-c", script, mount.path(*PRO1K)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "deep"


@pytest.mark.parametrize("name", ["security.selinux", "system.posix_acl_access"])
def test_xattrs_the_drive_does_not_carry(mount, name):
    """ls -l asks these per file; EOPNOTSUPP makes GNU ls stop asking."""
    p = mount.path(*PRO1K, "f")
    open(p, "w").close()
    with pytest.raises(OSError) as e:
        os.getxattr(p, name)
    assert e.value.errno == errno.EOPNOTSUPP


def test_listxattr_where_nothing_can_carry_one(mount):
    """Newer GNU ls -l (Debian 13) lists every name's xattrs until one says
    EOPNOTSUPP: the fixed folders and the size folders, which cannot carry
    any, say so; below them the lists are the store's, empty or not, and a
    prompt lists ours."""
    for folder in (mount.path(), mount.path("gemini-3-pro-image"), mount.path(*PRO1K)):
        with pytest.raises(OSError) as e:
            os.listxattr(folder)
        assert e.value.errno == errno.EOPNOTSUPP, folder
    bare, sub = mount.path(*PRO1K, "bare.bin"), mount.path(*PRO1K, "sub")
    open(bare, "w").close()
    os.mkdir(sub)
    assert os.listxattr(bare) == [] and os.listxattr(sub) == []
    os.setxattr(bare, "user.note", b"mine")
    assert os.listxattr(bare) == ["user.note"]
    p = mount.path(*PRO1K, "fox.txt")
    with open(p, "w") as f:
        f.write("a fox in the snow")
    assert wait_done(p) == "done"
    names = os.listxattr(p)
    assert {"user.bananafs.status", "user.bananafs.key", "user.bananafs.cost_usd"} <= set(names)
    assert "user.bananafs.error" not in names
    assert os.getxattr(p, "user.bananafs.status") == b"done"


def test_write_to_an_image_open_for_reading(mount):
    """A made image is a second link of its cache object: opened for writing
    while a reader has it open, it is copied first (copy-on-write); the
    writer's bytes land in the copy and the cache object stays as it was.
    Under FUSE passthrough the kernel keeps one backing file per inode, and
    this open failed with EIO."""
    d = mount.path(*PRO1K)
    for name in ("fox", "fox2"):
        with open(os.path.join(d, name + ".txt"), "w") as f:
            f.write("a fox in the snow")
        assert wait_done(os.path.join(d, name + ".txt")) in ("done", "cached")
    png = os.path.join(d, "fox.png")
    with open(png, "rb") as f:
        original = f.read()
    with open(png, "rb") as r:
        assert r.read(8) == original[:8]
        with open(png, "r+b") as w:
            w.write(b"XXXX")
        assert r.read() == original[8:]
    with open(png, "rb") as f:
        assert f.read() == b"XXXX" + original[4:]
    with open(os.path.join(mount.store, "tree", *PRO1K, "fox2.png"), "rb") as f:
        assert f.read() == original, "the cache object changed"


def one_image_twice(d, names, text):
    """Prompts with one text in folder d: their PNGs are links of one cache object; its bytes."""
    for name in names:
        with open(os.path.join(d, name + ".txt"), "w") as f:
            f.write(text)
        assert wait_done(os.path.join(d, name + ".txt")) in ("done", "cached")
    with open(os.path.join(d, names[0] + ".png"), "rb") as f:
        return f.read()


def test_other_names_of_an_edited_image_keep_it(mount):
    """Two prompts made one image (a cache hit): both PNGs are links of one
    cache object.  Editing one in place must leave the other as it was."""
    d = mount.path(*PRO1K)
    original = one_image_twice(d, ("owl", "owl2"), "an owl at night")
    with open(os.path.join(d, "owl.png"), "r+b") as w:
        w.write(b"XXXX")
    with open(os.path.join(d, "owl2.png"), "rb") as f:
        assert f.read() == original


def test_renamed_and_linked_names_of_an_image_keep_their_own(mount):
    """A made PNG renamed, and hard-linked by the user: writing one name
    changes that name only, and each name reads what the store holds."""
    d = mount.path(*PRO1K)
    original = one_image_twice(d, ("elk", "elk2"), "an elk in fog")
    os.rename(os.path.join(d, "elk2.png"), os.path.join(d, "moved.png"))
    os.link(os.path.join(d, "elk.png"), os.path.join(d, "linked.png"))
    with open(os.path.join(d, "moved.png"), "r+b") as w:
        w.write(b"MOVD")
    with open(os.path.join(d, "linked.png"), "r+b") as w:
        w.write(b"LINK")
    want = {"elk.png": original, "moved.png": b"MOVD" + original[4:], "linked.png": b"LINK" + original[4:]}
    for name, data in want.items():
        with open(os.path.join(d, name), "rb") as f:
            assert f.read() == data, name
        with open(os.path.join(mount.store, "tree", *PRO1K, name), "rb") as f:
            assert f.read() == data, name + " in the store"


def test_prompt_runs_when_a_reader_closes_last(mount):
    """A read-only open is closed without a FLUSH (the kernel skips it):
    a prompt rewritten and closed while a reader still has it open is
    generated again, for the writer's text, once the reader closes."""
    p = mount.path(*PRO1K, "late.txt")
    with open(p, "w") as f:
        f.write("a heron at dawn")
    assert wait_done(p) == "done"
    reader = open(p, "rb")
    with open(p, "w") as f:
        f.write("a heron at dusk")
    assert reader.read() == b"a heron at dusk"
    reader.close()
    def keys_sent():
        return {e["key"] for e in ledger(mount.store)
                if e["path"].endswith("/late.txt") and e["outcome"] == "sent"}
    wait_for(lambda: len(keys_sent()) == 2, 10, "the rewritten prompt sent")
    assert wait_done(p) == "done"


def sent_prompts(emulator):
    return [r["prompt"] for r in emulator.requests() if r.get("status") == 200]


def test_file_renamed_to_a_prompt_while_open_runs_at_close(mount, emulator):
    """A close asks for the file's path only when some name it had could
    be a prompt's (fs/ll_inode.h lli_may_be_prompt): x.dat renamed to
    fox.txt while still open and written again must run, at its close,
    for the final text (the rename's own job is done by then)."""
    d = mount.path(*PRO1K)
    x, fox = os.path.join(d, "x.dat"), os.path.join(d, "fox.txt")
    with open(x, "w") as f:
        f.write("a red fox")
        f.flush()
        os.rename(x, fox)
        assert wait_done(fox) == "done"
        assert sent_prompts(emulator) == ["a red fox"]
        f.write(" in the snow")
    wait_for(lambda: "a red fox in the snow" in sent_prompts(emulator), 20,
             "the final text sent")
    assert wait_done(fox) == "done"
    assert png_size(os.path.join(d, "fox.png"))


def test_prompt_renamed_away_while_open_is_not_sent(mount, emulator):
    """The reverse: fox.txt renamed to x.dat while open is no prompt at its close."""
    d = mount.path(*PRO1K)
    fox, x = os.path.join(d, "fox.txt"), os.path.join(d, "x.dat")
    with open(fox, "w") as f:
        f.write("a grey wolf")
        f.flush()
        os.rename(fox, x)
        f.write(" at night")
    # A prompt written the same way afterwards is sent: the one above, had it been, came first.
    last = os.path.join(d, "last.txt")
    with open(last, "w") as f:
        f.write("a last owl")
    assert wait_done(last) == "done"
    assert sent_prompts(emulator) == ["a last owl"]
    assert sorted(n for n in os.listdir(d) if n.endswith(".png")) == ["last.png"]


def test_prompt_named_by_a_link_runs_when_its_first_name_is_gone(mount, emulator):
    """x.dat hard-linked to fox.txt while open, then x.dat unlinked: the
    close finds the file by the name it was last seen under, a prompt's."""
    d = mount.path(*PRO1K)
    x, fox = os.path.join(d, "x.dat"), os.path.join(d, "fox.txt")
    with open(x, "w") as f:
        f.write("a fox behind a link")
        f.flush()
        os.link(x, fox)
        os.unlink(x)
    wait_for(lambda: "a fox behind a link" in sent_prompts(emulator), 20, "the prompt sent")
    assert wait_done(fox) == "done"


def test_prompt_linked_before_the_mount_saw_it_runs(mount, emulator):
    """a.dat and b.txt are one file in the store before the mount looked
    either up: written through a.dat, which is then removed, it is the
    prompt b.txt at its close (its folder is searched for its other name)."""
    d = mount.path(*PRO1K)
    store = os.path.join(mount.store, "tree", *PRO1K)
    with open(os.path.join(store, "a.dat"), "w") as f:
        f.write("old")
    os.link(os.path.join(store, "a.dat"), os.path.join(store, "b.txt"))
    with open(os.path.join(d, "a.dat"), "w") as f:
        f.write("a whale under a linked name")
        f.flush()
        os.unlink(os.path.join(d, "a.dat"))
    wait_for(lambda: "a whale under a linked name" in sent_prompts(emulator), 20, "the prompt sent")
    assert wait_done(os.path.join(d, "b.txt")) == "done"


def built_fuse_version():
    """(major, minor) of the libfuse bananafs was built against, from --version."""
    out = subprocess.run([binary("bananafs"), "--version"], capture_output=True,
                         text=True, check=True).stdout
    m = re.search(r"\(FUSE (\d+)\.(\d+)\)", out)
    assert m, out
    return int(m[1]), int(m[2])


def kernel_has_fuse_passthrough():
    """CONFIG_FUSE_PASSTHROUGH of the running kernel; None when its config is not readable."""
    for path in ("/proc/config.gz", "/boot/config-" + os.uname().release):
        try:
            with (gzip.open(path, "rt") if path.endswith(".gz") else open(path)) as f:
                return any(line.strip() == "CONFIG_FUSE_PASSTHROUGH=y" for line in f)
        except OSError:
            continue
    return None


def test_passthrough_when_available(mount):
    """Built against libfuse >= 3.17 (Debian 13) on a kernel with FUSE
    passthrough, an open ordinary file is handed to the kernel (a backing
    file, reads and writes skip the daemon) and a prompt is not; on
    libfuse 3.14 (Debian 12) the daemon says why it is off."""
    def stats():
        with open(mount.path(".bananafs", "stats")) as f:
            return json.load(f)
    mode = stats()["fuse_passthrough"]
    version = built_fuse_version()
    if version < (3, 17):
        assert mode.startswith("off: built against libfuse %d.%d" % version), mode
        pytest.skip("built against libfuse %d.%d: FUSE passthrough needs 3.17 (Debian 13)" % version)
    kernel = kernel_has_fuse_passthrough()
    if kernel is False:
        pytest.skip(f"kernel {os.uname().release} is built without CONFIG_FUSE_PASSTHROUGH ({mode})")
    if kernel is None and mode != "on":
        pytest.skip(f"kernel {os.uname().release}: config not readable, the daemon says {mode!r}")
    if os.geteuid() != 0:
        pytest.skip("FUSE passthrough needs the daemon to run as root (CAP_SYS_ADMIN)")
    assert mode == "on"

    d = mount.path(*PRO1K)
    data = os.urandom(1024 * 1024 + 5)
    with open(os.path.join(d, "data.bin"), "wb") as f:
        f.write(data)
        assert stats()["passthrough_files"] == 1
    wait_for(lambda: stats()["passthrough_files"] == 0, 5, "the backing file closed")
    with open(os.path.join(d, "data.bin"), "rb") as f, open(os.path.join(d, "data.bin"), "rb") as g:
        assert stats()["passthrough_files"] == 1, "two opens of one inode share one backing file"
        assert f.read() == data and g.read(5) == data[:5]
    with open(os.path.join(mount.store, "tree", *PRO1K, "data.bin"), "rb") as f:
        assert f.read() == data
    wait_for(lambda: stats()["passthrough_files"] == 0, 5, "the backing files closed")
    # A made image is a second link of its cache object: served by the daemon.
    with open(os.path.join(d, "cat.txt"), "w") as f:
        f.write("a cat")
    assert wait_done(os.path.join(d, "cat.txt")) == "done"
    with open(os.path.join(d, "cat.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n" and stats()["passthrough_files"] == 0
    # A prompt's writes must reach the daemon (the trigger): never passed through.
    with open(os.path.join(d, "dog.txt"), "w") as f:
        f.write("a dog")
        assert stats()["passthrough_files"] == 0
    assert wait_done(os.path.join(d, "dog.txt")) == "done"
