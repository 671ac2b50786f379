"""POSIX battery for the user space below a size folder (DESIGN.md section 1).

Below MOUNT/<model>/<size>/ every operation must behave exactly as on the
local disk.  Each case is a function that performs some operations in a
fresh folder and returns an observation: a dict of errno names and values
that do not depend on where the folder lives.  Every case runs twice, once
in a folder inside the mount and once in a folder of the store itself
(STORE/tree/<model>/<size>/...), and

  - both runs must give the POSIX values written next to the case, and
  - the mount's observation must equal the store's (the local disk's).

The categories follow pjdfstest's.  A known difference would be a strict
xfail on the mount side only, with the reason (the one today: O_TMPFILE when
bananafs is built against libfuse 3.14, which has no tmpfile operation).
"""
import collections
import ctypes
import errno
import mmap
import os
import stat
import tempfile
import time

import pytest

from conftest import Emulator, Mount

PRO2K = ("gemini-3-pro-image", "2K")

# ------------------------------------------------------------------ #
# libc pieces Python's os module does not expose

libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD = -100
AT_SYMLINK_FOLLOW = 0x400
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2
FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
FALLOC_FL_ZERO_RANGE = 0x10
XATTR_CREATE = 1
XATTR_REPLACE = 2


class Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                           ctypes.c_uint]
libc.linkat.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
libc.utimensat.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(Timespec), ctypes.c_int]
libc.getxattr.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t]
libc.getxattr.restype = ctypes.c_ssize_t
libc.listxattr.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t]
libc.listxattr.restype = ctypes.c_ssize_t
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]


def _check(rc):
    if rc < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return rc


def renameat2(old, new, flags):
    _check(libc.renameat2(AT_FDCWD, old.encode(), AT_FDCWD, new.encode(), flags))


def utimensat(path, atime, mtime, nofollow=False):
    ts = (Timespec * 2)(Timespec(*atime), Timespec(*mtime))
    _check(libc.utimensat(AT_FDCWD, path.encode(), ts, 0x100 if nofollow else 0))


def c_getxattr(path, name, size):
    buf = ctypes.create_string_buffer(max(size, 1))
    n = _check(libc.getxattr(path.encode(), name.encode(), buf if size else None, size))
    return buf.raw[:n] if size else n


def c_listxattr(path, size):
    buf = ctypes.create_string_buffer(max(size, 1))
    return _check(libc.listxattr(path.encode(), buf if size else None, size))


def fallocate(fd, mode, off, length):
    _check(libc.fallocate(fd, mode, off, length))


# ------------------------------------------------------------------ #
# Observation helpers

def ename(e):
    if e.errno == errno.EOPNOTSUPP:	# the same number as ENOTSUP on Linux
        return "EOPNOTSUPP"
    return errno.errorcode.get(e.errno, str(e.errno))


def err(fn, *a, **kw):
    """'ok' or the errno name of what fn raised."""
    try:
        fn(*a, **kw)
        return "ok"
    except OSError as e:
        return ename(e)


def val(fn, *a, **kw):
    """fn's value or the errno name of what it raised."""
    try:
        return fn(*a, **kw)
    except OSError as e:
        return ename(e)


def put(path, data=b"", mode=0o644):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def get(path):
    with open(path, "rb") as f:
        return f.read()


def kind(path):
    """'file', 'dir', 'link', 'fifo', ... of lstat, or the errno name."""
    try:
        m = os.lstat(path).st_mode
    except OSError as e:
        return ename(e)
    for name, test in (("file", stat.S_ISREG), ("dir", stat.S_ISDIR), ("link", stat.S_ISLNK),
                       ("fifo", stat.S_ISFIFO), ("sock", stat.S_ISSOCK), ("chr", stat.S_ISCHR),
                       ("blk", stat.S_ISBLK)):
        if test(m):
            return name
    return "?"


def mode(path, follow=False):
    st = os.stat(path) if follow else os.lstat(path)
    return oct(stat.S_IMODE(st.st_mode))


def nlink(path):
    return os.lstat(path).st_nlink


def tick():
    """Long enough for ext4's coarse clock to move on."""
    time.sleep(0.02)


def listdir(path):
    return sorted(os.listdir(path))


class Ctx:
    """A fresh folder and the way to its backing file in the store."""

    def __init__(self, d, mirror):
        self.d = d
        self._mirror = mirror

    def p(self, *parts):
        return os.path.join(self.d, *parts)

    def backing(self, path):
        return self._mirror(path)


Case = collections.namedtuple("Case", "cat name fn expect ignore xfail root")
CASES = []


def case(cat, expect, ignore=(), xfail=None, root=False):
    """Registers fn as a case: expect is a subset of its observation that
    must hold on both sides; ignore names keys not compared between the
    sides; xfail is a reason when the mount is known to differ; root says
    the case needs euid 0 (chown, trusted.*)."""
    def deco(fn):
        CASES.append(Case(cat, fn.__name__.removeprefix("c_"), fn, expect, tuple(ignore), xfail,
                          root))
        return fn
    return deco


# ------------------------------------------------------------------ #
# open

@case("open", {"enoent": "ENOENT", "enoent_parent": "ENOENT"})
def c_open_enoent(c):
    return {"enoent": err(os.open, c.p("nope"), os.O_RDONLY),
            "enoent_parent": err(os.open, c.p("nodir", "f.dat"), os.O_WRONLY | os.O_CREAT, 0o644)}


@case("open", {"wronly": "EISDIR", "rdwr": "EISDIR", "rdonly": "ok"})
def c_open_dir_for_writing(c):
    os.mkdir(c.p("dir"))

    def opn(flags):
        os.close(os.open(c.p("dir"), flags))
    return {"wronly": err(opn, os.O_WRONLY), "rdwr": err(opn, os.O_RDWR),
            "rdonly": err(opn, os.O_RDONLY)}


@case("open", {"o_directory": "ENOTDIR", "component": "ENOTDIR", "trailing_slash": "ENOTDIR",
               "creat_trailing_slash": "EISDIR"})
def c_open_enotdir(c):
    put(c.p("f.dat"), b"x")
    return {"o_directory": err(os.open, c.p("f.dat"), os.O_RDONLY | os.O_DIRECTORY),
            "component": err(os.open, c.p("f.dat", "x"), os.O_RDONLY),
            "trailing_slash": err(os.open, c.p("f.dat") + "/", os.O_RDONLY),
            "creat_trailing_slash": err(os.open, c.p("new.dat") + "/",
                                        os.O_WRONLY | os.O_CREAT, 0o644)}


@case("open", {"n255": "ok", "n256": "ENAMETOOLONG", "n256_creat": "ENAMETOOLONG",
               "path_max": "ENAMETOOLONG", "listed": ["x" * 255]})
def c_open_enametoolong(c):
    def creat(name):
        os.close(os.open(c.p(name), os.O_WRONLY | os.O_CREAT, 0o644))
    return {"n255": err(creat, "x" * 255),
            "n256": err(os.open, c.p("y" * 256), os.O_RDONLY),
            "n256_creat": err(creat, "y" * 256),
            "path_max": err(os.open, c.p("/".join(["z" * 200] * 21)), os.O_RDONLY),
            "listed": listdir(c.d)}


@case("open", {"self_loop": "ELOOP", "nofollow": "ELOOP", "chain40": "ok", "chain41": "ELOOP"})
def c_open_eloop(c):
    os.symlink("loop", c.p("loop"))
    put(c.p("t.dat"), b"t")
    os.symlink("t.dat", c.p("l0"))
    for i in range(1, 42):
        os.symlink(f"l{i - 1}", c.p(f"l{i}"))

    def rd(name, flags=0):
        os.close(os.open(c.p(name), os.O_RDONLY | flags))
    return {"self_loop": err(rd, "loop"), "nofollow": err(rd, "l0", os.O_NOFOLLOW),
            "chain40": err(rd, "l39"), "chain41": err(rd, "l40")}


@case("open", {"mode": "0o644", "mode_0": "0o0", "read_back": b"abc"})
def c_open_creat_mode(c):
    fd = os.open(c.p("a.dat"), os.O_RDWR | os.O_CREAT, 0o666)
    os.write(fd, b"abc")
    os.close(fd)
    fd = os.open(c.p("zero.dat"), os.O_WRONLY | os.O_CREAT, 0)
    os.close(fd)
    return {"mode": mode(c.p("a.dat")), "mode_0": mode(c.p("zero.dat")),
            "read_back": get(c.p("a.dat"))}


@case("open", {"u002": "0o664", "u077": "0o600", "u000": "0o666", "dir_u002": "0o775"})
def c_open_umask(c):
    out = {}
    for tag, m in (("u002", 0o002), ("u077", 0o077), ("u000", 0)):
        old = os.umask(m)
        try:
            os.close(os.open(c.p(tag + ".dat"), os.O_WRONLY | os.O_CREAT, 0o666))
        finally:
            os.umask(old)
        out[tag] = mode(c.p(tag + ".dat"))
    old = os.umask(0o002)
    try:
        os.mkdir(c.p("d"), 0o777)
    finally:
        os.umask(old)
    out["dir_u002"] = mode(c.p("d"))
    return out


@case("open", {"content": b"keep", "size": 4})
def c_open_creat_existing_keeps(c):
    put(c.p("f.dat"), b"keep")
    os.close(os.open(c.p("f.dat"), os.O_WRONLY | os.O_CREAT, 0o600))
    return {"content": get(c.p("f.dat")), "size": os.stat(c.p("f.dat")).st_size}


@case("open", {"fifo": "fifo", "mode": "0o640", "open_nonblock": "ok", "backing": "fifo"})
def c_open_fifo(c):
    os.mkfifo(c.p("pipe"), 0o640)

    def opn():
        os.close(os.open(c.p("pipe"), os.O_RDONLY | os.O_NONBLOCK))
    return {"fifo": kind(c.p("pipe")), "mode": mode(c.p("pipe")), "open_nonblock": err(opn),
            "backing": kind(c.backing(c.p("pipe")))}


@case("open", {"wr_on_rdonly": "EBADF", "rd_on_wronly": "EBADF"})
def c_open_access_mode(c):
    put(c.p("f.dat"), b"data")
    fd = os.open(c.p("f.dat"), os.O_RDONLY)
    a = err(os.write, fd, b"x")
    os.close(fd)
    fd = os.open(c.p("f.dat"), os.O_WRONLY)
    b = err(os.read, fd, 1)
    os.close(fd)
    return {"wr_on_rdonly": a, "rd_on_wronly": b}


# ------------------------------------------------------------------ #
# creat / O_EXCL / O_TRUNC / O_APPEND

CREAT = os.O_WRONLY | os.O_CREAT | os.O_TRUNC


@case("creat", {"new": "ok", "kind": "file", "size": 0, "again_truncates": 0,
                "parent_file": "ENOTDIR", "backing": "file"})
def c_creat_basic(c):
    out = {"new": err(lambda: os.close(os.open(c.p("n.dat"), CREAT, 0o644)))}
    out["kind"] = kind(c.p("n.dat"))
    out["size"] = os.stat(c.p("n.dat")).st_size
    put(c.p("n.dat"), b"12345")
    os.close(os.open(c.p("n.dat"), CREAT, 0o644))
    out["again_truncates"] = os.stat(c.p("n.dat")).st_size
    put(c.p("file.dat"))
    out["parent_file"] = err(os.open, c.p("file.dat", "x.dat"), CREAT, 0o644)
    out["backing"] = kind(c.backing(c.p("n.dat")))
    return out


@case("o_excl", {"new": "ok", "existing": "EEXIST", "dangling_link": "EEXIST",
                 "dir": "EEXIST", "link_target_created": "ENOENT"})
def c_o_excl(c):
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL

    def opn(name):
        os.close(os.open(c.p(name), flags, 0o644))
    os.symlink("target.dat", c.p("dangling"))
    os.mkdir(c.p("dir"))
    return {"new": err(opn, "a.dat"), "existing": err(opn, "a.dat"),
            "dangling_link": err(opn, "dangling"), "dir": err(opn, "dir"),
            "link_target_created": kind(c.p("target.dat"))}


@case("o_trunc", {"size": 0, "content": b"", "mtime_changed": True, "ctime_changed": True,
                  "empty_mtime_changed": True})
def c_o_trunc(c):
    put(c.p("f.dat"), b"x" * 10000)
    put(c.p("e.dat"), b"")
    s0, e0 = os.stat(c.p("f.dat")), os.stat(c.p("e.dat"))
    tick()
    os.close(os.open(c.p("f.dat"), os.O_WRONLY | os.O_TRUNC))
    os.close(os.open(c.p("e.dat"), os.O_WRONLY | os.O_TRUNC))
    s1, e1 = os.stat(c.p("f.dat")), os.stat(c.p("e.dat"))
    return {"size": s1.st_size, "content": get(c.p("f.dat")),
            "mtime_changed": s1.st_mtime_ns > s0.st_mtime_ns,
            "ctime_changed": s1.st_ctime_ns > s0.st_ctime_ns,
            # POSIX: O_TRUNC marks the times for update even when the file was empty.
            "empty_mtime_changed": e1.st_mtime_ns > e0.st_mtime_ns}


def fuse_built_with():
    """(major, minor) of the libfuse bananafs was built against (--version)."""
    import re
    import subprocess
    from conftest import binary
    out = subprocess.run([binary("bananafs"), "--version"], capture_output=True, text=True).stdout
    m = re.search(r"\(FUSE (\d+)\.(\d+)\)", out)
    return (int(m[1]), int(m[2])) if m else (0, 0)


@case("o_tmpfile", {"unlisted": [], "named": b"unnamed", "mode": "0o600", "nlink": [0, 1],
                    "listed": ["named.dat"], "backing": b"unnamed"},
      xfail=None if fuse_built_with() >= (3, 17) else
      "O_TMPFILE needs libfuse's tmpfile operation (3.17): EOPNOTSUPP, programs fall back")
def c_o_tmpfile(c):
    """An O_TMPFILE file lives unnamed until linkat(2) names it."""
    fd = os.open(c.d, os.O_TMPFILE | os.O_RDWR, 0o600)
    try:
        os.write(fd, b"unnamed")
        out = {"unlisted": listdir(c.d), "nlink": [os.fstat(fd).st_nlink]}
        _check(libc.linkat(AT_FDCWD, f"/proc/self/fd/{fd}".encode(), AT_FDCWD,
                           c.p("named.dat").encode(), AT_SYMLINK_FOLLOW))
        out["nlink"].append(os.fstat(fd).st_nlink)
    finally:
        os.close(fd)
    return {**out, "named": get(c.p("named.dat")), "mode": mode(c.p("named.dat")),
            "listed": listdir(c.d), "backing": get(c.backing(c.p("named.dat")))}


@case("o_append", {"content": b"startAAAB", "pos": 9, "backing": b"startAAAB"})
def c_o_append(c):
    put(c.p("f.dat"), b"start")
    fd = os.open(c.p("f.dat"), os.O_WRONLY | os.O_APPEND)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, b"AAA")
    os.lseek(fd, 1, os.SEEK_SET)
    os.write(fd, b"B")
    pos = os.lseek(fd, 0, os.SEEK_CUR)
    os.close(fd)
    return {"content": get(c.p("f.dat")), "pos": pos, "backing": get(c.backing(c.p("f.dat")))}


@case("o_append", {"content": b"0123ab", "pwrite": b"0123abZ"})
def c_o_append_two_fds(c):
    put(c.p("f.dat"), b"0123")
    a = os.open(c.p("f.dat"), os.O_WRONLY | os.O_APPEND)
    b = os.open(c.p("f.dat"), os.O_WRONLY | os.O_APPEND)
    os.write(a, b"a")
    os.write(b, b"b")
    content = get(c.p("f.dat"))
    # Linux: pwrite on an O_APPEND fd appends, whatever the offset.
    os.pwrite(a, b"Z", 0)
    os.close(a)
    os.close(b)
    return {"content": content, "pwrite": get(c.p("f.dat"))}


@case("o_append", {"rdwr_read": b"hello", "after": b"helloXY"})
def c_o_append_rdwr(c):
    put(c.p("f.dat"), b"hello")
    fd = os.open(c.p("f.dat"), os.O_RDWR | os.O_APPEND)
    r = os.read(fd, 100)
    os.write(fd, b"XY")
    os.close(fd)
    return {"rdwr_read": r, "after": get(c.p("f.dat"))}


# ------------------------------------------------------------------ #
# truncate / ftruncate

@case("truncate", {"grow": 10, "grow_content": b"abc" + b"\0" * 7, "shrink": 2,
                   "shrink_content": b"ab", "zero": 0, "backing": b""})
def c_truncate_sizes(c):
    f = c.p("f.dat")
    put(f, b"abc")
    os.truncate(f, 10)
    out = {"grow": os.stat(f).st_size, "grow_content": get(f)}
    os.truncate(f, 2)
    out.update(shrink=os.stat(f).st_size, shrink_content=get(f))
    os.truncate(f, 0)
    out.update(zero=os.stat(f).st_size, backing=get(c.backing(f)))
    return out


@case("truncate", {"negative": "EINVAL", "dir": "EISDIR", "missing": "ENOENT",
                   "component": "ENOTDIR", "long_name": "ENAMETOOLONG", "loop": "ELOOP"})
def c_truncate_errors(c):
    os.mkdir(c.p("dir"))
    put(c.p("f.dat"), b"x")
    os.symlink("loop", c.p("loop"))
    return {"negative": err(os.truncate, c.p("f.dat"), -1),
            "dir": err(os.truncate, c.p("dir"), 0),
            "missing": err(os.truncate, c.p("nope"), 0),
            "component": err(os.truncate, c.p("f.dat", "x"), 0),
            "long_name": err(os.truncate, c.p("n" * 256), 0),
            "loop": err(os.truncate, c.p("loop"), 0)}


@case("truncate", {"mtime_changed": True, "ctime_changed": True, "via_link_size": 3,
                   "link_kind": "link"})
def c_truncate_times_and_symlink(c):
    f = c.p("f.dat")
    put(f, b"abcdef")
    s0 = os.stat(f)
    tick()
    os.truncate(f, 4)
    s1 = os.stat(f)
    os.symlink("f.dat", c.p("l"))
    os.truncate(c.p("l"), 3)
    return {"mtime_changed": s1.st_mtime_ns > s0.st_mtime_ns,
            "ctime_changed": s1.st_ctime_ns > s0.st_ctime_ns,
            "via_link_size": os.stat(f).st_size, "link_kind": kind(c.p("l"))}


@case("ftruncate", {"rdonly": "EINVAL", "grow": 8192, "shrink_read": b"ab", "negative": "EINVAL",
                    "fstat_size": 2})
def c_ftruncate(c):
    f = c.p("f.dat")
    put(f, b"abcd")
    fd = os.open(f, os.O_RDONLY)
    rdonly = err(os.ftruncate, fd, 0)
    os.close(fd)
    fd = os.open(f, os.O_RDWR)
    os.ftruncate(fd, 8192)
    grow = os.fstat(fd).st_size
    os.ftruncate(fd, 2)
    shrink = os.pread(fd, 100, 0)
    neg = err(os.ftruncate, fd, -5)
    size = os.fstat(fd).st_size
    os.close(fd)
    return {"rdonly": rdonly, "grow": grow, "shrink_read": shrink, "negative": neg,
            "fstat_size": size}


@case("ftruncate", {"unlinked_then_truncated": 3, "read": b"abc"})
def c_ftruncate_after_unlink(c):
    f = c.p("f.dat")
    put(f, b"abcdef")
    fd = os.open(f, os.O_RDWR)
    os.unlink(f)
    os.ftruncate(fd, 3)
    size = os.fstat(fd).st_size
    data = os.pread(fd, 100, 0)
    os.close(fd)
    return {"unlinked_then_truncated": size, "read": data}


# ------------------------------------------------------------------ #
# rename

@case("rename", {"old": "ENOENT", "new": b"one", "over_file": b"two",
                 "listing": ["b.dat", "c.dat"], "backing": b"two"})
def c_rename_files(c):
    put(c.p("a.dat"), b"one")
    os.rename(c.p("a.dat"), c.p("b.dat"))
    out = {"old": kind(c.p("a.dat")), "new": get(c.p("b.dat"))}
    put(c.p("x.dat"), b"two")
    put(c.p("c.dat"), b"old")
    os.rename(c.p("x.dat"), c.p("c.dat"))
    out["over_file"] = get(c.p("c.dat"))
    out["listing"] = listdir(c.d)
    out["backing"] = get(c.backing(c.p("c.dat")))
    return out


@case("rename", {"dir_over_nonempty": "ENOTEMPTY", "dir_over_empty": "ok",
                 "file_over_dir": "EISDIR", "dir_over_file": "ENOTDIR", "into_self": "EINVAL",
                 "missing": "ENOENT", "long": "ENAMETOOLONG", "dst_parent_missing": "ENOENT",
                 "dst_parent_file": "ENOTDIR", "dot": "EBUSY"})
def c_rename_errors(c):
    for d in ("d1", "d2", "d3", "d3/sub", "e"):
        os.mkdir(c.p(d))
    put(c.p("d2", "inner.dat"))
    put(c.p("f.dat"))
    return {"dir_over_nonempty": err(os.rename, c.p("d1"), c.p("d2")),
            "dir_over_empty": err(os.rename, c.p("d1"), c.p("e")),
            "file_over_dir": err(os.rename, c.p("f.dat"), c.p("d2")),
            "dir_over_file": err(os.rename, c.p("e"), c.p("f.dat")),
            "into_self": err(os.rename, c.p("d3"), c.p("d3", "sub", "x")),
            "missing": err(os.rename, c.p("nope"), c.p("x")),
            "long": err(os.rename, c.p("f.dat"), c.p("l" * 256)),
            "dst_parent_missing": err(os.rename, c.p("f.dat"), c.p("nodir", "x")),
            "dst_parent_file": err(os.rename, c.p("f.dat"), c.p("f.dat", "x")),
            "dot": err(os.rename, c.p("d3", "."), c.p("q"))}


@case("rename", {"same_inode": "ok", "both_exist": ["a.dat", "b.dat"], "nlink": 2,
                 "self": "ok"})
def c_rename_hardlinks_same_inode(c):
    put(c.p("a.dat"), b"z")
    os.link(c.p("a.dat"), c.p("b.dat"))
    r = err(os.rename, c.p("a.dat"), c.p("b.dat"))
    return {"same_inode": r, "both_exist": listdir(c.d), "nlink": nlink(c.p("a.dat")),
            "self": err(os.rename, c.p("a.dat"), c.p("a.dat"))}


@case("rename", {"moved": ["x.dat"], "src_left": [], "content": b"deep", "dir_nlink_src": 2,
                 "dir_nlink_dst": 3, "dir_moved_kids": ["k.dat"]})
def c_rename_across_dirs(c):
    for d in ("a", "b", "a/sub"):
        os.mkdir(c.p(d))
    put(c.p("a", "x.dat"), b"deep")
    put(c.p("a", "sub", "k.dat"))
    os.rename(c.p("a", "x.dat"), c.p("b", "x.dat"))
    os.rename(c.p("a", "sub"), c.p("b", "sub"))
    return {"moved": [n for n in listdir(c.p("b")) if n.endswith(".dat")],
            "src_left": listdir(c.p("a")), "content": get(c.p("b", "x.dat")),
            "dir_nlink_src": nlink(c.p("a")), "dir_nlink_dst": nlink(c.p("b")),
            "dir_moved_kids": listdir(c.p("b", "sub"))}


@case("rename", {"ctime_changed": True, "mtime_same": True, "parent_mtime_changed": True})
def c_rename_times(c):
    put(c.p("a.dat"), b"1")
    s0, p0 = os.stat(c.p("a.dat")), os.stat(c.d)
    tick()
    os.rename(c.p("a.dat"), c.p("b.dat"))
    s1, p1 = os.stat(c.p("b.dat")), os.stat(c.d)
    return {"ctime_changed": s1.st_ctime_ns > s0.st_ctime_ns,
            "mtime_same": s1.st_mtime_ns == s0.st_mtime_ns,
            "parent_mtime_changed": p1.st_mtime_ns > p0.st_mtime_ns}


@case("rename", {"link_moved": "link", "target": "t.dat", "target_kind": "file"})
def c_rename_symlink(c):
    put(c.p("t.dat"))
    os.symlink("t.dat", c.p("l1"))
    os.rename(c.p("l1"), c.p("l2"))
    return {"link_moved": kind(c.p("l2")), "target": os.readlink(c.p("l2")),
            "target_kind": kind(c.p("t.dat"))}


@case("rename", {"opened_read": b"old", "path_read": b"new"})
def c_rename_over_open_file(c):
    put(c.p("a.dat"), b"old")
    put(c.p("b.dat"), b"new")
    fd = os.open(c.p("a.dat"), os.O_RDONLY)
    os.rename(c.p("b.dat"), c.p("a.dat"))
    r = os.read(fd, 10)
    os.close(fd)
    return {"opened_read": r, "path_read": get(c.p("a.dat"))}


@case("rename_noreplace", {"existing": "EEXIST", "kept": b"B", "src_kept": b"A", "free": "ok",
                           "moved": b"A", "src_gone": "ENOENT"})
def c_rename_noreplace(c):
    put(c.p("a.dat"), b"A")
    put(c.p("b.dat"), b"B")
    out = {"existing": err(renameat2, c.p("a.dat"), c.p("b.dat"), RENAME_NOREPLACE),
           "kept": get(c.p("b.dat")), "src_kept": get(c.p("a.dat"))}
    out["free"] = err(renameat2, c.p("a.dat"), c.p("c.dat"), RENAME_NOREPLACE)
    out.update(moved=get(c.p("c.dat")), src_gone=kind(c.p("a.dat")))
    return out


@case("rename_exchange", {"a": b"B", "b": b"A", "missing": "ENOENT", "file_dir": "ok",
                          "x_kind": "file", "y_kind": "dir", "both_flags": "EINVAL",
                          "backing_a": b"B"})
def c_rename_exchange(c):
    put(c.p("a.dat"), b"A")
    put(c.p("b.dat"), b"B")
    renameat2(c.p("a.dat"), c.p("b.dat"), RENAME_EXCHANGE)
    out = {"a": get(c.p("a.dat")), "b": get(c.p("b.dat")),
           "missing": err(renameat2, c.p("a.dat"), c.p("nope"), RENAME_EXCHANGE)}
    os.mkdir(c.p("x"))
    put(c.p("y"), b"f")
    out["file_dir"] = err(renameat2, c.p("x"), c.p("y"), RENAME_EXCHANGE)
    out.update(x_kind=kind(c.p("x")), y_kind=kind(c.p("y")))
    out["both_flags"] = err(renameat2, c.p("a.dat"), c.p("b.dat"),
                            RENAME_EXCHANGE | RENAME_NOREPLACE)
    out["backing_a"] = get(c.backing(c.p("a.dat")))
    return out


# ------------------------------------------------------------------ #
# link

# Hard links are one inode through the mount too (its inode frontend): a
# change made through one name shows through the others at once.
@case("link", {"new_nlink": 2, "existing": "EEXIST", "dir": "EPERM", "missing": "ENOENT",
               "dst_parent_missing": "ENOENT", "content": b"orig", "backing_nlink": 2,
               "after_unlink_backing": 1, "content_after_unlink": b"orig"})
def c_link_basic(c):
    put(c.p("a.dat"), b"orig")
    os.link(c.p("a.dat"), c.p("b.dat"))
    os.mkdir(c.p("dir"))
    out = {"new_nlink": nlink(c.p("b.dat")), "content": get(c.p("b.dat")),
           "existing": err(os.link, c.p("a.dat"), c.p("b.dat")),
           "dir": err(os.link, c.p("dir"), c.p("dir2")),
           "missing": err(os.link, c.p("nope"), c.p("x")),
           "dst_parent_missing": err(os.link, c.p("a.dat"), c.p("nodir", "x")),
           "backing_nlink": os.lstat(c.backing(c.p("b.dat"))).st_nlink}
    os.unlink(c.p("a.dat"))
    os.link(c.p("b.dat"), c.p("c.dat"))
    os.unlink(c.p("b.dat"))
    out.update(after_unlink_backing=os.lstat(c.backing(c.p("c.dat"))).st_nlink,
               content_after_unlink=get(c.p("c.dat")))
    return out


@case("link", {"follow": "file", "nofollow": "link", "plain_link": "link",
               "nlink_links": 3})
def c_link_symlink(c):
    put(c.p("t.dat"))
    os.symlink("t.dat", c.p("sl"))
    # os.link() without flags calls link(2), which does not follow on Linux.
    _check(libc.linkat(AT_FDCWD, c.p("sl").encode(), AT_FDCWD, c.p("hard_follow").encode(),
                       AT_SYMLINK_FOLLOW))
    os.link(c.p("sl"), c.p("hard_nofollow"), follow_symlinks=False)
    os.link(c.p("sl"), c.p("hard_plain"))
    return {"follow": kind(c.p("hard_follow")), "nofollow": kind(c.p("hard_nofollow")),
            "plain_link": kind(c.p("hard_plain")), "nlink_links": nlink(c.p("hard_plain"))}


@case("link", {"dir_nlink": [2, 3, 4, 3]})
def c_link_dir_counts(c):
    os.mkdir(c.p("d"))
    dn = [nlink(c.p("d"))]
    os.mkdir(c.p("d", "a"))
    dn.append(nlink(c.p("d")))
    os.mkdir(c.p("d", "b"))
    dn.append(nlink(c.p("d")))
    os.rmdir(c.p("d", "a"))
    dn.append(nlink(c.p("d")))
    return {"dir_nlink": dn}


def link_coherence(c, settle):
    """Changes through one name, observed at once (settle=0) or later
    through names whose attributes were cached before the change."""
    put(c.p("a.dat"), b"orig")
    put(c.p("t.dat"))
    a0 = os.stat(c.p("a.dat"))
    get(c.p("a.dat"))
    tick()
    os.link(c.p("a.dat"), c.p("b.dat"))
    for i in range(4):
        os.link(c.p("t.dat"), c.p(f"h{i}"))
    time.sleep(settle)
    out = {"src_nlink_after_link": nlink(c.p("a.dat")),
           "src_ctime_after_link": os.stat(c.p("a.dat")).st_ctime_ns > a0.st_ctime_ns,
           "t_nlink": nlink(c.p("t.dat"))}
    with open(c.p("b.dat"), "r+b") as f:
        f.write(b"changed")
    time.sleep(settle)
    out["content_other_name"] = get(c.p("a.dat"))
    os.unlink(c.p("b.dat"))
    os.unlink(c.p("h0"))
    time.sleep(settle)
    out["nlink_after_unlink"] = [nlink(c.p("a.dat")), nlink(c.p("h1"))]
    put(c.p("x.dat"), b"x")
    os.rename(c.p("x.dat"), c.p("h1"))
    time.sleep(settle)
    out["nlink_after_rename_over"] = nlink(c.p("h2"))
    return out


LINK_COHERENT = {"src_nlink_after_link": 2, "src_ctime_after_link": True, "t_nlink": 5,
                 "content_other_name": b"changed", "nlink_after_unlink": [1, 4],
                 "nlink_after_rename_over": 3}


@case("link", LINK_COHERENT)
def c_link_coherence_at_once(c):
    return link_coherence(c, 0)


@case("link", LINK_COHERENT)
def c_link_coherence_after_attr_timeout(c):
    return link_coherence(c, 1.1)


# ------------------------------------------------------------------ #
# unlink

@case("unlink", {"gone": "ENOENT", "missing": "ENOENT", "dir": "EISDIR", "component": "ENOTDIR",
                 "symlink_only": ["t.dat"], "long": "ENAMETOOLONG", "backing_gone": "ENOENT"})
def c_unlink_basic(c):
    put(c.p("a.dat"))
    os.unlink(c.p("a.dat"))
    put(c.p("t.dat"))
    os.symlink("t.dat", c.p("sl"))
    os.unlink(c.p("sl"))
    os.mkdir(c.p("dir"))
    put(c.p("f.dat"))
    out = {"gone": kind(c.p("a.dat")), "missing": err(os.unlink, c.p("nope")),
           "dir": err(os.unlink, c.p("dir")), "component": err(os.unlink, c.p("f.dat", "x")),
           "long": err(os.unlink, c.p("u" * 256)),
           "backing_gone": kind(c.backing(c.p("a.dat")))}
    os.rmdir(c.p("dir"))
    os.unlink(c.p("f.dat"))
    out["symlink_only"] = listdir(c.d)
    return out


@case("unlink", {"read_after": b"still here", "fstat_nlink": 0, "write_after": "ok",
                 "read_more": b"still heremore", "gone": "ENOENT"})
def c_unlink_open_file(c):
    f = c.p("a.dat")
    put(f, b"still here")
    fd = os.open(f, os.O_RDWR)
    os.unlink(f)
    out = {"read_after": os.pread(fd, 100, 0), "fstat_nlink": os.fstat(fd).st_nlink,
           "write_after": err(os.pwrite, fd, b"more", 10), "gone": kind(f)}
    out["read_more"] = os.pread(fd, 100, 0)
    os.close(fd)
    return out


@case("unlink", {"listing": [], "rmdir_parent": "ok"})
def c_unlink_open_file_folder(c):
    os.mkdir(c.p("sub"))
    f = c.p("sub", "a.dat")
    put(f, b"x")
    fd = os.open(f, os.O_RDONLY)
    os.unlink(f)
    out = {"listing": listdir(c.p("sub")), "rmdir_parent": err(os.rmdir, c.p("sub"))}
    os.close(fd)
    return out


@case("rename", {"listing": ["a.dat"]})
def c_rename_over_open_file_folder(c):
    put(c.p("a.dat"), b"old")
    put(c.p("b.dat"), b"new")
    fd = os.open(c.p("a.dat"), os.O_RDONLY)
    os.rename(c.p("b.dat"), c.p("a.dat"))
    out = {"listing": listdir(c.d)}
    os.close(fd)
    return out


@case("unlink", {"parent_mtime_changed": True, "parent_ctime_changed": True})
def c_unlink_times(c):
    put(c.p("a.dat"))
    p0 = os.stat(c.d)
    tick()
    os.unlink(c.p("a.dat"))
    p1 = os.stat(c.d)
    return {"parent_mtime_changed": p1.st_mtime_ns > p0.st_mtime_ns,
            "parent_ctime_changed": p1.st_ctime_ns > p0.st_ctime_ns}


@case("unlink", {"other_link_ctime_changed": True})
def c_unlink_other_link_ctime(c):
    put(c.p("a.dat"))
    os.link(c.p("a.dat"), c.p("b.dat"))
    b0 = os.stat(c.p("b.dat"))
    tick()
    os.unlink(c.p("a.dat"))
    return {"other_link_ctime_changed": os.stat(c.p("b.dat")).st_ctime_ns > b0.st_ctime_ns}


# ------------------------------------------------------------------ #
# symlink / readlink

@case("symlink", {"kind": "link", "readlink": "target/../x.dat", "size": 15,
                  "existing": "EEXIST", "over_dir": "EEXIST", "dangling_stat": "ENOENT",
                  "dangling_lstat": "link", "backing": "target/../x.dat"})
def c_symlink_basic(c):
    os.symlink("target/../x.dat", c.p("l"))
    os.mkdir(c.p("dir"))
    return {"kind": kind(c.p("l")), "readlink": os.readlink(c.p("l")),
            "size": os.lstat(c.p("l")).st_size,
            "existing": err(os.symlink, "x", c.p("l")), "over_dir": err(os.symlink, "x", c.p("dir")),
            "dangling_stat": err(os.stat, c.p("l")), "dangling_lstat": kind(c.p("l")),
            "backing": os.readlink(c.backing(c.p("l")))}


@case("symlink", {"t1000": 1000, "t4095": 4095, "t4096": "ENAMETOOLONG", "empty": "ENOENT",
                  "name256": "ENAMETOOLONG", "abs": "/nonexistent/abs/path"})
def c_symlink_lengths(c):
    def mk(n):
        t = ("a/" * (n // 2) + "b")[:n]
        os.symlink(t, c.p(f"l{n}"))
        return len(os.readlink(c.p(f"l{n}")))
    os.symlink("/nonexistent/abs/path", c.p("abs"))
    return {"t1000": val(mk, 1000), "t4095": val(mk, 4095), "t4096": val(mk, 4096),
            "empty": err(os.symlink, "", c.p("empty")),
            "name256": err(os.symlink, "x", c.p("s" * 256)), "abs": os.readlink(c.p("abs"))}


@case("readlink", {"file": "EINVAL", "dir": "EINVAL", "missing": "ENOENT", "component": "ENOTDIR",
                   "through_link_dir": "t.dat"})
def c_readlink_errors(c):
    put(c.p("f.dat"))
    os.mkdir(c.p("d"))
    os.symlink("t.dat", c.p("d", "inner"))
    os.symlink("d", c.p("dl"))
    return {"file": err(os.readlink, c.p("f.dat")), "dir": err(os.readlink, c.p("d")),
            "missing": err(os.readlink, c.p("nope")),
            "component": err(os.readlink, c.p("f.dat", "x")),
            "through_link_dir": os.readlink(c.p("dl", "inner"))}


@case("symlink", {"loop_stat": "ELOOP", "loop_lstat": "link", "pair_open": "ELOOP",
                  "through_dir_link": b"inside", "relative_up": b"inside"})
def c_symlink_resolution(c):
    os.symlink("a", c.p("b"))
    os.symlink("b", c.p("a"))
    os.mkdir(c.p("real"))
    put(c.p("real", "f.dat"), b"inside")
    os.symlink("real", c.p("dl"))
    os.mkdir(c.p("other"))
    os.symlink("../real/f.dat", c.p("other", "up"))
    return {"loop_stat": err(os.stat, c.p("a")), "loop_lstat": kind(c.p("a")),
            "pair_open": err(os.open, c.p("b"), os.O_RDONLY),
            "through_dir_link": get(c.p("dl", "f.dat")),
            "relative_up": get(c.p("other", "up"))}


@case("readlink", {"small": b"abcd", "exact": b"abcdefgh", "ret_small": 4})
def c_readlink_small_buffer(c):
    os.symlink("abcdefgh", c.p("l"))
    buf = ctypes.create_string_buffer(16)
    libc.readlink.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t]
    libc.readlink.restype = ctypes.c_ssize_t
    n = _check(libc.readlink(c.p("l").encode(), buf, 4))
    small = buf.raw[:n]
    m = _check(libc.readlink(c.p("l").encode(), buf, 16))
    return {"small": small, "ret_small": n, "exact": buf.raw[:m]}


# ------------------------------------------------------------------ #
# chmod

@case("chmod", {"modes": ["0o0", "0o777", "0o4755", "0o2750", "0o1777", "0o7777", "0o600"],
                "missing": "ENOENT", "ctime_changed": True, "mtime_same": True,
                "backing": "0o600"})
def c_chmod_file(c):
    f = c.p("f.dat")
    put(f, b"x")
    modes = []
    for m in (0, 0o777, 0o4755, 0o2750, 0o1777, 0o7777, 0o600):
        os.chmod(f, m)
        modes.append(mode(f))
    s0 = os.stat(f)
    tick()
    os.chmod(f, 0o600)
    s1 = os.stat(f)
    return {"modes": modes, "missing": err(os.chmod, c.p("nope"), 0o644),
            "ctime_changed": s1.st_ctime_ns > s0.st_ctime_ns,
            "mtime_same": s1.st_mtime_ns == s0.st_mtime_ns, "backing": mode(c.backing(f))}


@case("chmod", {"target": "0o640", "link_kind": "link", "dir": "0o1750", "fchmod": "0o604",
                "component": "ENOTDIR"})
def c_chmod_follow_dir_fchmod(c):
    put(c.p("t.dat"))
    os.symlink("t.dat", c.p("l"))
    os.chmod(c.p("l"), 0o640)
    os.mkdir(c.p("d"))
    os.chmod(c.p("d"), 0o1750)
    put(c.p("g.dat"))
    fd = os.open(c.p("g.dat"), os.O_RDONLY)
    os.fchmod(fd, 0o604)
    os.close(fd)
    return {"target": mode(c.p("t.dat")), "link_kind": kind(c.p("l")), "dir": mode(c.p("d")),
            "fchmod": mode(c.p("g.dat")), "component": err(os.chmod, c.p("t.dat", "x"), 0o644)}


# ------------------------------------------------------------------ #
# chown (the tests run as root)

def owner(path, follow=False):
    st = os.stat(path) if follow else os.lstat(path)
    return [st.st_uid, st.st_gid]


@case("chown", {"set": [1000, 1001], "keep": [1000, 1001], "uid_only": [1002, 1001],
                "gid_only": [1002, 0], "missing": "ENOENT", "backing": [1002, 0],
                "ctime_changed": True}, root=True)
def c_chown_file(c):
    f = c.p("f.dat")
    put(f)
    os.chown(f, 1000, 1001)
    out = {"set": owner(f)}
    os.chown(f, -1, -1)
    out["keep"] = owner(f)
    os.chown(f, 1002, -1)
    out["uid_only"] = owner(f)
    s0 = os.stat(f)
    tick()
    os.chown(f, -1, 0)
    out.update(gid_only=owner(f), missing=err(os.chown, c.p("nope"), 1, 1),
               backing=owner(c.backing(f)), ctime_changed=os.stat(f).st_ctime_ns > s0.st_ctime_ns)
    return out


@case("chown", {"file": True, "dir": True, "link": True, "owner": [1000, 1001]}, root=True)
def c_chown_minus_one_touches_ctime(c):
    """chown(-1, -1) changes nothing but ctime: POSIX lets it leave ctime alone,
    Linux's local disks move it (pjdfstest's chown/00 notes the difference), and
    the mount gives what the store gives."""
    put(c.p("f.dat"))
    os.mkdir(c.p("d"))
    os.symlink("f.dat", c.p("l"))
    for name in ("f.dat", "d", "l"):
        os.lchown(c.p(name), 1000, 1001)
    before = {name: os.lstat(c.p(name)).st_ctime_ns for name in ("f.dat", "d", "l")}
    tick()
    os.chown(c.p("f.dat"), -1, -1)
    os.chown(c.p("d"), -1, -1)
    os.lchown(c.p("l"), -1, -1)
    moved = {name: os.lstat(c.p(name)).st_ctime_ns > t for name, t in before.items()}
    return {"file": moved["f.dat"], "dir": moved["d"], "link": moved["l"],
            "owner": owner(c.p("f.dat"))}


@case("chown", {"link": [1003, 1003], "target": [0, 0], "follow_target": [1004, 1004],
                "link_after_follow": [1003, 1003], "fchown": [7, 8], "dir": [5, 6]}, root=True)
def c_chown_symlink_fd_dir(c):
    put(c.p("t.dat"))
    os.symlink("t.dat", c.p("l"))
    os.lchown(c.p("l"), 1003, 1003)
    out = {"link": owner(c.p("l")), "target": owner(c.p("t.dat"))}
    os.chown(c.p("l"), 1004, 1004)
    out.update(follow_target=owner(c.p("t.dat")), link_after_follow=owner(c.p("l")))
    put(c.p("g.dat"))
    fd = os.open(c.p("g.dat"), os.O_RDONLY)
    os.fchown(fd, 7, 8)
    os.close(fd)
    os.mkdir(c.p("d"))
    os.chown(c.p("d"), 5, 6)
    out.update(fchown=owner(c.p("g.dat")), dir=owner(c.p("d")))
    return out


@case("chown", {"suid_exec": "0o755", "sgid_exec": "0o755", "sgid_noexec": "0o2640",
                "minus_one_still_clears": "0o755"}, root=True)
def c_chown_clears_suid(c):
    out = {}
    for tag, m in (("suid_exec", 0o4755), ("sgid_exec", 0o2755), ("sgid_noexec", 0o2640)):
        put(c.p(tag))
        os.chmod(c.p(tag), m)
        os.chown(c.p(tag), 1000, 1000)
        out[tag] = mode(c.p(tag))
    put(c.p("nc"))
    os.chmod(c.p("nc"), 0o4755)
    os.chown(c.p("nc"), -1, -1)
    # Linux kills the set-user-ID bit on every chown(2), even chown(-1, -1).
    out["minus_one_still_clears"] = mode(c.p("nc"))
    return out


# ------------------------------------------------------------------ #
# utimensat

@case("utimensat", {"atime": 1_000_000_123, "mtime": 2_000_000_456, "ctime_changed": True,
                    "backing_mtime": 2_000_000_456})
def c_utime_exact_ns(c):
    f = c.p("f.dat")
    put(f, b"x")
    s0 = os.stat(f)
    tick()
    os.utime(f, ns=(1_000_000_123, 2_000_000_456))
    s1 = os.stat(f)
    return {"atime": s1.st_atime_ns, "mtime": s1.st_mtime_ns,
            "ctime_changed": s1.st_ctime_ns > s0.st_ctime_ns,
            "backing_mtime": os.stat(c.backing(f)).st_mtime_ns}


@case("utimensat", {"omit_atime_kept": True, "mtime_set": 3_000_000_000,
                    "omit_mtime_kept": True, "atime_set": 4_000_000_000,
                    "now_mtime_recent": True, "now_atime_kept": True, "both_omit_ok": True})
def c_utime_now_omit(c):
    f = c.p("f.dat")
    put(f, b"x")
    os.utime(f, ns=(5_000_000_000, 6_000_000_000))
    utimensat(f, (0, UTIME_OMIT), (3, 0))
    s1 = os.stat(f)
    out = {"omit_atime_kept": s1.st_atime_ns == 5_000_000_000, "mtime_set": s1.st_mtime_ns}
    utimensat(f, (4, 0), (0, UTIME_OMIT))
    s2 = os.stat(f)
    out.update(omit_mtime_kept=s2.st_mtime_ns == 3_000_000_000, atime_set=s2.st_atime_ns)
    before = time.time_ns()
    utimensat(f, (0, UTIME_OMIT), (0, UTIME_NOW))
    s3 = os.stat(f)
    # ext4 stamps with the coarse clock: allow one tick before `before`.
    out["now_mtime_recent"] = before - 20_000_000 <= s3.st_mtime_ns <= time.time_ns()
    out["now_atime_kept"] = s3.st_atime_ns == 4_000_000_000
    s4 = os.stat(f)
    tick()
    utimensat(f, (0, UTIME_OMIT), (0, UTIME_OMIT))
    s5 = os.stat(f)
    out["both_omit_ok"] = (s5.st_mtime_ns, s5.st_atime_ns) == (s4.st_mtime_ns, s4.st_atime_ns)
    return out


@case("utimensat", {"none_recent": True, "missing": "ENOENT", "bad_nsec": "EINVAL",
                    "link_mtime": 7_000_000_000, "target_mtime_kept": True,
                    "fd_mtime": 8_000_000_000, "dir_mtime": 9_000_000_000})
def c_utime_misc(c):
    f = c.p("f.dat")
    put(f)
    os.utime(f, ns=(1, 1))
    before = time.time_ns()
    os.utime(f)
    s = os.stat(f)
    out = {"none_recent": before - 20_000_000 <= s.st_mtime_ns <= time.time_ns(),
           "missing": err(os.utime, c.p("nope"), ns=(1, 1)),
           "bad_nsec": err(utimensat, f, (0, 1_000_000_000), (0, 0))}
    os.symlink("f.dat", c.p("l"))
    t0 = os.stat(f).st_mtime_ns
    os.utime(c.p("l"), ns=(7_000_000_000, 7_000_000_000), follow_symlinks=False)
    out.update(link_mtime=os.lstat(c.p("l")).st_mtime_ns,
               target_mtime_kept=os.stat(f).st_mtime_ns == t0)
    fd = os.open(f, os.O_RDONLY)
    os.utime(fd, ns=(8_000_000_000, 8_000_000_000))
    os.close(fd)
    out["fd_mtime"] = os.stat(f).st_mtime_ns
    os.mkdir(c.p("d"))
    os.utime(c.p("d"), ns=(9_000_000_000, 9_000_000_000))
    out["dir_mtime"] = os.stat(c.p("d")).st_mtime_ns
    return out


@case("utimensat", {"write_mtime_changed": True, "write_ctime_changed": True,
                    "read_mtime_same": True})
def c_times_on_write(c):
    f = c.p("f.dat")
    put(f, b"abc")
    s0 = os.stat(f)
    tick()
    get(f)
    s1 = os.stat(f)
    with open(f, "ab") as fh:
        fh.write(b"d")
    s2 = os.stat(f)
    return {"read_mtime_same": s1.st_mtime_ns == s0.st_mtime_ns,
            "write_mtime_changed": s2.st_mtime_ns > s0.st_mtime_ns,
            "write_ctime_changed": s2.st_ctime_ns > s0.st_ctime_ns}


# ------------------------------------------------------------------ #
# mkdir / rmdir

@case("mkdir", {"kind": "dir", "mode": "0o755", "nlink": 2, "existing": "EEXIST",
                "over_file": "EEXIST", "over_link": "EEXIST", "missing_parent": "ENOENT",
                "under_file": "ENOTDIR", "long": "ENAMETOOLONG", "parent_nlink": 5,
                "mode_700": "0o700", "sticky": "0o1755", "backing": "dir"})
def c_mkdir_basic(c):
    os.mkdir(c.p("d"))
    put(c.p("f.dat"))
    os.symlink("elsewhere", c.p("l"))
    os.mkdir(c.p("p"), 0o700)
    os.mkdir(c.p("s"), 0o1777)
    return {"kind": kind(c.p("d")), "mode": mode(c.p("d")), "nlink": nlink(c.p("d")),
            "existing": err(os.mkdir, c.p("d")), "over_file": err(os.mkdir, c.p("f.dat")),
            "over_link": err(os.mkdir, c.p("l")),
            "missing_parent": err(os.mkdir, c.p("no", "sub")),
            "under_file": err(os.mkdir, c.p("f.dat", "sub")),
            "long": err(os.mkdir, c.p("m" * 256)), "parent_nlink": nlink(c.d),
            "mode_700": mode(c.p("p")), "sticky": mode(c.p("s")),
            "backing": kind(c.backing(c.p("d")))}


@case("mkdir", {"inherit_gid": 4242, "inherit_sgid": True, "file_gid": 4242,
                "parent_mtime_changed": True, "deep": "ok"}, root=True)
def c_mkdir_sgid_and_times(c):
    os.mkdir(c.p("g"))
    os.chown(c.p("g"), -1, 4242)
    os.chmod(c.p("g"), 0o2775)
    os.mkdir(c.p("g", "child"))
    put(c.p("g", "f.dat"))
    p0 = os.stat(c.d)
    tick()
    os.mkdir(c.p("x"))
    p1 = os.stat(c.d)
    deep = c.p(*["deep"] * 30)
    return {"inherit_gid": os.stat(c.p("g", "child")).st_gid,
            "inherit_sgid": bool(os.stat(c.p("g", "child")).st_mode & stat.S_ISGID),
            "file_gid": os.stat(c.p("g", "f.dat")).st_gid,
            "parent_mtime_changed": p1.st_mtime_ns > p0.st_mtime_ns,
            "deep": err(os.makedirs, deep)}


@case("rmdir", {"empty": "ok", "gone": "ENOENT", "nonempty": "ENOTEMPTY", "file": "ENOTDIR",
                "missing": "ENOENT", "dot": "EINVAL", "dotdot": "ENOTEMPTY",
                "symlink_to_dir": "ENOTDIR", "long": "ENAMETOOLONG", "parent_nlink": 2,
                "backing_gone": "ENOENT"})
def c_rmdir(c):
    for d in ("e", "n", "t"):
        os.mkdir(c.p(d))
    put(c.p("n", "x.dat"))
    put(c.p("f.dat"))
    os.symlink("t", c.p("tl"))
    out = {"empty": err(os.rmdir, c.p("e"))}
    out.update(gone=kind(c.p("e")), nonempty=err(os.rmdir, c.p("n")),
               file=err(os.rmdir, c.p("f.dat")), missing=err(os.rmdir, c.p("nope")),
               dot=err(os.rmdir, c.p("t", ".")), dotdot=err(os.rmdir, c.p("t", "..")),
               symlink_to_dir=err(os.rmdir, c.p("tl")), long=err(os.rmdir, c.p("r" * 256)),
               backing_gone=kind(c.backing(c.p("e"))))
    os.unlink(c.p("n", "x.dat"))
    os.rmdir(c.p("n"))
    os.rmdir(c.p("t"))
    os.mkdir(c.p("q"))
    os.mkdir(c.p("q", "r"))
    os.rmdir(c.p("q", "r"))
    out["parent_nlink"] = nlink(c.p("q"))
    return out


@case("rmdir", {"cwd_removed": "ok", "listing_of_removed": "ENOENT", "creat_in_removed": "ENOENT"})
def c_rmdir_open_dir(c):
    os.mkdir(c.p("d"))
    fd = os.open(c.p("d"), os.O_RDONLY | os.O_DIRECTORY)
    r = err(os.rmdir, c.p("d"))
    out = {"cwd_removed": r, "listing_of_removed": err(os.listdir, c.p("d")),
           "creat_in_removed": err(os.open, "x.dat", os.O_WRONLY | os.O_CREAT, 0o644,
                                   dir_fd=fd)}
    os.close(fd)
    return out


# ------------------------------------------------------------------ #
# readdir

@case("readdir", {"names": ["a.dat", "b", "c.dat", "link", "pipe"], "types":
                  {"a.dat": "file", "b": "dir", "c.dat": "file", "link": "link", "pipe": "fifo"},
                  "many": 300, "after_unlink": 150})
def c_readdir(c):
    put(c.p("a.dat"))
    os.mkdir(c.p("b"))
    put(c.p("c.dat"))
    os.symlink("a.dat", c.p("link"))
    os.mkfifo(c.p("pipe"))
    out = {"names": listdir(c.d)}
    with os.scandir(c.d) as it:
        out["types"] = {e.name: ("link" if e.is_symlink() else "dir" if e.is_dir()
                                 else "file" if e.is_file() else "fifo") for e in it}
    os.mkdir(c.p("many"))
    for i in range(300):
        put(c.p("many", f"f{i:04d}.dat"))
    out["many"] = len(os.listdir(c.p("many")))
    for i in range(0, 300, 2):
        os.unlink(c.p("many", f"f{i:04d}.dat"))
    out["after_unlink"] = len(os.listdir(c.p("many")))
    return out


# ------------------------------------------------------------------ #
# xattr

@case("xattr", {"get": b"value", "list": ["user.a", "user.b"], "empty": b"",
                "replaced": b"v2", "removed_list": ["user.b"], "dir": b"dv",
                "backing": b"v2"})
def c_xattr_roundtrip(c):
    f = c.p("f.dat")
    put(f)
    os.setxattr(f, "user.a", b"value")
    out = {"get": os.getxattr(f, "user.a")}
    os.setxattr(f, "user.b", b"")
    out["list"] = sorted(n for n in os.listxattr(f) if n.startswith("user."))
    out["empty"] = os.getxattr(f, "user.b")
    os.setxattr(f, "user.a", b"v2")
    out["replaced"] = os.getxattr(f, "user.a")
    out["backing"] = os.getxattr(c.backing(f), "user.a")
    os.removexattr(f, "user.a")
    out["removed_list"] = sorted(n for n in os.listxattr(f) if n.startswith("user."))
    os.mkdir(c.p("d"))
    os.setxattr(c.p("d"), "user.d", b"dv")
    out["dir"] = os.getxattr(c.p("d"), "user.d")
    return out


@case("xattr", {"get_missing": "ENODATA", "remove_missing": "ENODATA", "create_existing": "EEXIST",
                "replace_missing": "ENODATA", "create_new": "ok", "replace_existing": "ok",
                "missing_file": "ENOENT", "bad_namespace": "EOPNOTSUPP", "long_name": "ERANGE",
                "symlink_user": "EPERM", "symlink_get": "ENODATA"})
def c_xattr_errors(c):
    f = c.p("f.dat")
    put(f)
    os.setxattr(f, "user.x", b"1")
    os.symlink("f.dat", c.p("l"))
    return {"get_missing": err(os.getxattr, f, "user.nope"),
            "remove_missing": err(os.removexattr, f, "user.nope"),
            "create_existing": err(os.setxattr, f, "user.x", b"2", XATTR_CREATE),
            "replace_missing": err(os.setxattr, f, "user.y", b"2", XATTR_REPLACE),
            "create_new": err(os.setxattr, f, "user.z", b"3", XATTR_CREATE),
            "replace_existing": err(os.setxattr, f, "user.x", b"4", XATTR_REPLACE),
            "missing_file": err(os.getxattr, c.p("nope"), "user.x"),
            "bad_namespace": err(os.setxattr, f, "bogus.x", b"1"),
            "long_name": err(os.setxattr, f, "user." + "n" * 300, b"1"),
            "symlink_user": err(os.setxattr, c.p("l"), "user.x", b"1", follow_symlinks=False),
            "symlink_get": err(os.getxattr, c.p("l"), "user.x", follow_symlinks=False)}


@case("xattr", {"size_query": 10, "small": "ERANGE", "exact": b"0123456789",
                "list_size": len(b"user.k\0user.kk\0user.big\0"),
                "list_small": "ERANGE", "big": 3000})
def c_xattr_erange(c):
    f = c.p("f.dat")
    put(f)
    os.setxattr(f, "user.k", b"0123456789")
    os.setxattr(f, "user.kk", b"1")
    os.setxattr(f, "user.big", b"B" * 3000)
    os.removexattr(f, "user.big")
    os.setxattr(f, "user.big", b"B" * 3000)
    return {"size_query": c_getxattr(f, "user.k", 0), "small": val(c_getxattr, f, "user.k", 4),
            "exact": c_getxattr(f, "user.k", 10),
            "list_size": c_listxattr(f, 0),
            "list_small": val(c_listxattr, f, 3), "big": len(os.getxattr(f, "user.big"))}


@case("xattr", {"trusted": b"t", "trusted_listed": True}, root=True)
def c_xattr_trusted_as_root(c):
    f = c.p("f.dat")
    put(f)
    os.setxattr(f, "trusted.bananatest", b"t")
    return {"trusted": os.getxattr(f, "trusted.bananatest"),
            "trusted_listed": "trusted.bananatest" in os.listxattr(f)}


# ------------------------------------------------------------------ #
# holes / sparse files

MiB = 1 << 20


@case("sparse", {"size": MiB + 4, "blocks_small": True, "data_at": MiB - MiB % 4096,
                 "hole_at": 0, "data_past_eof": "ENXIO", "hole_in_data": MiB + 4,
                 "hole_past_eof": "ENXIO", "read_hole": b"\0" * 16, "read_data": b"tail"})
def c_sparse_seek(c):
    f = c.p("s.bin")
    fd = os.open(f, os.O_RDWR | os.O_CREAT, 0o644)
    os.pwrite(fd, b"tail", MiB)
    os.fsync(fd)
    st = os.fstat(fd)
    out = {"size": st.st_size, "blocks_small": st.st_blocks * 512 < 64 * 1024,
           "data_at": os.lseek(fd, 0, os.SEEK_DATA), "hole_at": os.lseek(fd, 0, os.SEEK_HOLE),
           "data_past_eof": err(os.lseek, fd, MiB + 100, os.SEEK_DATA),
           "hole_in_data": os.lseek(fd, MiB, os.SEEK_HOLE),
           "hole_past_eof": err(os.lseek, fd, MiB + 100, os.SEEK_HOLE),
           "read_hole": os.pread(fd, 16, 4096), "read_data": os.pread(fd, 4, MiB)}
    os.close(fd)
    return out


@case("sparse", {"falloc_size": 65536, "falloc_blocks": 128, "keep_size": 65536,
                 "keep_blocks_grew": True, "punch_size": 65536, "punch_zeroes": True,
                 "punch_blocks_drop": True, "punch_hole_seek": 4096, "zero_range": True,
                 "punch_no_keep": "EOPNOTSUPP", "backing_blocks_match": True})
def c_sparse_fallocate(c):
    f = c.p("fa.bin")
    fd = os.open(f, os.O_RDWR | os.O_CREAT, 0o644)
    fallocate(fd, 0, 0, 65536)
    st = os.fstat(fd)
    out = {"falloc_size": st.st_size, "falloc_blocks": st.st_blocks}
    fallocate(fd, FALLOC_FL_KEEP_SIZE, 65536, 65536)
    st2 = os.fstat(fd)
    out.update(keep_size=st2.st_size, keep_blocks_grew=st2.st_blocks > st.st_blocks)
    os.pwrite(fd, b"\xff" * 65536, 0)
    os.fsync(fd)
    b0 = os.fstat(fd).st_blocks
    fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4096, 8192)
    st3 = os.fstat(fd)
    out.update(punch_size=st3.st_size,
               punch_zeroes=os.pread(fd, 8192 + 2, 4095) == b"\xff" + b"\0" * 8192 + b"\xff",
               punch_blocks_drop=st3.st_blocks < b0,
               punch_hole_seek=os.lseek(fd, 0, os.SEEK_HOLE))
    fallocate(fd, FALLOC_FL_ZERO_RANGE, 20000, 100)
    out["zero_range"] = os.pread(fd, 102, 19999) == b"\xff" + b"\0" * 100 + b"\xff"
    out["punch_no_keep"] = err(fallocate, fd, FALLOC_FL_PUNCH_HOLE, 0, 4096)
    out["backing_blocks_match"] = os.stat(c.backing(f)).st_blocks == os.fstat(fd).st_blocks
    os.close(fd)
    return out


@case("sparse", {"trunc_grow_blocks": 0, "size": 10 * MiB, "posix_fallocate": 20 * MiB})
def c_sparse_truncate(c):
    f = c.p("t.bin")
    put(f)
    os.truncate(f, 10 * MiB)
    out = {"trunc_grow_blocks": os.stat(f).st_blocks, "size": os.stat(f).st_size}
    fd = os.open(f, os.O_RDWR)
    os.posix_fallocate(fd, 10 * MiB, 10 * MiB)
    out["posix_fallocate"] = os.fstat(fd).st_size
    os.close(fd)
    return out


# ------------------------------------------------------------------ #
# mmap

@case("mmap", {"read": b"hello world", "store_after_msync": b"HELLO world",
               "read_after_close": b"HELLO wXXld", "pwrite_seen": b"HELLO wXXld"})
def c_mmap_shared(c):
    f = c.p("m.bin")
    put(f, b"hello world")
    fd = os.open(f, os.O_RDWR)
    m = mmap.mmap(fd, 11, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    out = {"read": m[:11]}
    m[0:5] = b"HELLO"
    m.flush()
    out["store_after_msync"] = get(c.backing(f))
    os.pwrite(fd, b"XX", 7)
    out["pwrite_seen"] = m[:11]
    m.close()
    os.close(fd)
    out["read_after_close"] = get(f)[:11]
    return out


@case("mmap", {"write_no_msync_seen_by_read": b"AB", "after_unmap": b"AB" + b"\0" * 4094,
               "private_not_written": b"AB", "rdonly_shared_write": "EACCES",
               "rdonly_shared_read": b"AB", "big": True})
def c_mmap_misc(c):
    f = c.p("m.bin")
    put(f, b"\0" * 4096)
    fd = os.open(f, os.O_RDWR)
    m = mmap.mmap(fd, 4096)
    m[0:2] = b"AB"
    out = {"write_no_msync_seen_by_read": get(f)[:2]}
    m.close()
    os.close(fd)
    out["after_unmap"] = get(f)
    fd = os.open(f, os.O_RDWR)
    p = mmap.mmap(fd, 4096, mmap.MAP_PRIVATE, mmap.PROT_READ | mmap.PROT_WRITE)
    p[0:2] = b"zz"
    p.close()
    os.close(fd)
    out["private_not_written"] = get(f)[:2]
    fd = os.open(f, os.O_RDONLY)
    out["rdonly_shared_write"] = err(mmap.mmap, fd, 4096, mmap.MAP_SHARED,
                                     mmap.PROT_READ | mmap.PROT_WRITE)
    r = mmap.mmap(fd, 4096, mmap.MAP_SHARED, mmap.PROT_READ)
    out["rdonly_shared_read"] = r[:2]
    r.close()
    os.close(fd)
    # Several pages, written through the map, read back through read().
    g = c.p("big.bin")
    put(g)
    os.truncate(g, 5 * 4096 + 123)
    fd = os.open(g, os.O_RDWR)
    m = mmap.mmap(fd, 5 * 4096 + 123)
    pattern = bytes(i % 251 for i in range(5 * 4096 + 123))
    m[:] = pattern
    m.flush()
    m.close()
    os.close(fd)
    out["big"] = get(g) == pattern
    return out


# ------------------------------------------------------------------ #
# I/O basics: reads and writes at offsets, fsync, dup

@case("io", {"past_eof": b"", "gap": b"ab\0\0\0cd", "partial": b"cd", "fsync": "ok",
             "fdatasync": "ok", "dir_read": "EISDIR", "dup_shared_offset": b"12",
             "copy_file_range": b"ab\0\0\0cd"})
def c_io_basics(c):
    f = c.p("io.bin")
    fd = os.open(f, os.O_RDWR | os.O_CREAT, 0o644)
    os.pwrite(fd, b"ab", 0)
    os.pwrite(fd, b"cd", 5)
    out = {"past_eof": os.pread(fd, 10, 100), "gap": os.pread(fd, 100, 0),
           "partial": os.pread(fd, 100, 5), "fsync": err(os.fsync, fd),
           "fdatasync": err(os.fdatasync, fd)}
    os.close(fd)
    os.mkdir(c.p("d"))
    dfd = os.open(c.p("d"), os.O_RDONLY)
    out["dir_read"] = err(os.read, dfd, 10)
    os.close(dfd)
    fd = os.open(c.p("dup.bin"), os.O_RDWR | os.O_CREAT, 0o644)
    fd2 = os.dup(fd)
    os.write(fd, b"1")
    os.write(fd2, b"2")
    os.close(fd2)
    out["dup_shared_offset"] = os.pread(fd, 10, 0)
    os.close(fd)
    src = os.open(f, os.O_RDONLY)
    dst = os.open(c.p("copy.bin"), os.O_WRONLY | os.O_CREAT, 0o644)
    os.copy_file_range(src, dst, 7)
    os.close(src)
    os.close(dst)
    out["copy_file_range"] = get(c.p("copy.bin"))
    return out


# ------------------------------------------------------------------ #
# The harness: one mount for the module, fresh folders per case and side

SIDES = ("store", "mount")


class Sides:
    def __init__(self, mnt):
        self.mnt = mnt
        self.roots = {"mount": mnt.path(*PRO2K),
                      "store": os.path.join(mnt.store, "tree", *PRO2K)}
        self.n = 0
        self.obs = {}

    def mirror(self, path):
        mroot = self.roots["mount"]
        if path == mroot or path.startswith(mroot + "/"):
            return self.roots["store"] + path[len(mroot):]
        return path

    def fresh(self, side):
        self.n += 1
        d = os.path.join(self.roots[side], f"posix-{self.n:04d}-{side}")
        os.mkdir(d, 0o755)
        return Ctx(d, self.mirror)

    def observe(self, c, side):
        """Runs case c on side once; later calls give the same observation."""
        key = (c.cat, c.name, side)
        if key not in self.obs:
            ctx = self.fresh(side)
            try:
                self.obs[key] = c.fn(ctx)
            except Exception as e:  # an unexpected error is an observation too
                self.obs[key] = {"exception": f"{type(e).__name__}: {e}"}
        return self.obs[key]


@pytest.fixture(scope="module")
def sides():
    old = os.umask(0o022)
    with tempfile.TemporaryDirectory(prefix="bananafs-posix-") as work:
        os.makedirs(os.path.join(work, "mnt"))
        emu = Emulator()
        try:
            mnt = Mount(emu.url, os.path.join(work, "store"), os.path.join(work, "mnt"))
            try:
                yield Sides(mnt)
            finally:
                mnt.unmount()
        finally:
            emu.stop()
            os.umask(old)


def params():
    out = []
    for c in CASES:
        for side in SIDES:
            marks = []
            if side == "mount" and c.xfail:
                marks.append(pytest.mark.xfail(reason=c.xfail, strict=True))
            if c.root:
                marks.append(pytest.mark.skipif(os.geteuid() != 0, reason="needs root"))
            out.append(pytest.param(c, side, marks=marks, id=f"{c.cat}-{c.name}-{side}"))
    return out


def picked(obs, keys):
    return {k: obs.get(k, "<missing>") for k in keys}


@pytest.mark.parametrize("c,side", params())
def test_posix(sides, c, side):
    obs = sides.observe(c, side)
    assert "exception" not in obs, obs["exception"]
    assert picked(obs, c.expect) == c.expect
    if side == "mount":
        # The store is the local disk: the mount must show the same.
        ref = sides.observe(c, "store")
        keys = [k for k in set(obs) | set(ref) if k not in c.ignore]
        assert picked(obs, keys) == picked(ref, keys)


def test_every_category_has_cases():
    """The battery keeps the pjdfstest categories the brief names."""
    cats = {c.cat for c in CASES}
    for want in ("open", "creat", "truncate", "ftruncate", "rename", "rename_noreplace",
                 "rename_exchange", "link", "unlink", "symlink", "readlink", "chmod", "chown",
                 "utimensat", "mkdir", "rmdir", "xattr", "sparse", "mmap", "o_append",
                 "o_excl", "o_trunc"):
        assert want in cats, want
    names = [(c.cat, c.name) for c in CASES]
    assert len(names) == len(set(names))


# ------------------------------------------------------------------ #
# Another uid (pjdfstest runs many cases as uid 65534): on a mount shared with
# allow_other, files made by another user are owned by that user, with the group a
# local disk gives them, and that user meets the same EACCES/EPERM as on a local disk.
# Each case runs as root in a fresh folder of each side; `other` runs a snippet as
# uid/gid 65534 (setpriv) and returns its observation.

OTHER = 65534
OTHER_CASES = []


def other_case(cat, expect, xfail=None):
    def deco(fn):
        OTHER_CASES.append(Case(cat, fn.__name__.removeprefix("o_"), fn, expect, (), xfail, True))
        return fn
    return deco


OTHER_PRELUDE = """
import errno, json, os, sys
d = sys.argv[1]
os.umask(0o022)
out = {}
def p(*parts):
    return os.path.join(d, *parts)
def err(fn, *a, **kw):
    try:
        fn(*a, **kw)
        return "ok"
    except OSError as e:
        return errno.errorcode[e.errno]
def put(path, mode=0o666):
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode))
"""


def other(c, body, groups=()):
    import json
    import subprocess
    grp = ["--groups=" + ",".join(map(str, groups))] if groups else ["--clear-groups"]
    r = subprocess.run(["setpriv", f"--reuid={OTHER}", f"--regid={OTHER}", *grp,
                        "/usr/bin/python3", "-c", OTHER_PRELUDE + body + "\nprint(json.dumps(out))",
                        c.d], capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise RuntimeError(f"uid {OTHER}: {r.stderr.strip()}")
    return json.loads(r.stdout)


def attrs(path):
    st = os.lstat(path)
    return [st.st_uid, st.st_gid, oct(st.st_mode)]


@other_case("other_uid", {"f": [OTHER, OTHER, "0o100644"], "d": [OTHER, OTHER, "0o40755"],
                          "p": [OTHER, OTHER, "0o10644"], "l": [OTHER, OTHER, "0o120777"],
                          "h": [OTHER, OTHER, "0o100644"], "h_nlink": 2})
def o_creates_as_the_caller(c):
    os.chmod(c.d, 0o1777)
    other(c, "put(p('f')); os.mkdir(p('d')); os.mkfifo(p('p')); os.symlink('f', p('l'));"
             " os.link(p('f'), p('h'))")
    out = {n: attrs(c.p(n)) for n in ("f", "d", "p", "l", "h")}
    out["h_nlink"] = nlink(c.p("f"))
    return out


@other_case("other_uid", {"f": [OTHER, 100, "0o100644"], "d": [OTHER, 100, "0o42755"],
                          "chmod_sgid_not_member": "0o100755"})
def o_setgid_folder_gives_its_group(c):
    os.chown(c.d, 0, 100)
    os.chmod(c.d, 0o2777)
    other(c, "put(p('f')); os.mkdir(p('d')); put(p('x')); os.chmod(p('x'), 0o2755)")
    # chmod g+s by a user outside the file's group: the kernel drops the bit
    return {"f": attrs(c.p("f")), "d": attrs(c.p("d")), "chmod_sgid_not_member": attrs(c.p("x"))[2]}


@other_case("other_uid", {"suid": "0o104755", "sgid": "0o102755", "fifo_suid": "0o14644",
                          "in_sgid_folder_member": "0o102755", "in_sgid_folder_not_member": "0o100755",
                          "in_sgid_folder_noexec": "0o102644"})
def o_creates_with_the_setid_bits_it_asks_for(c):
    """A user's own new file keeps the set-id bits its mode asks for, as on a
    local disk; only S_ISGID with group execute in a set-group-ID folder of a
    group the user is not in is dropped (the disk's rule for new files)."""
    os.chmod(c.d, 0o1777)
    for name, gid in (("member", OTHER), ("stranger", 100)):
        os.mkdir(c.p(name))
        os.chown(c.p(name), 0, gid)
        os.chmod(c.p(name), 0o2777)
    other(c, "os.umask(0)\n"
             "put(p('suid'), 0o4755); put(p('sgid'), 0o2755); os.mknod(p('fifo'), 0o14644)\n"
             "put(p('member', 'f'), 0o2755); put(p('stranger', 'f'), 0o2755)\n"
             "put(p('stranger', 'n'), 0o2644)")
    return {"suid": attrs(c.p("suid"))[2], "sgid": attrs(c.p("sgid"))[2],
            "fifo_suid": attrs(c.p("fifo"))[2],
            "in_sgid_folder_member": attrs(c.p("member", "f"))[2],
            "in_sgid_folder_not_member": attrs(c.p("stranger", "f"))[2],
            "in_sgid_folder_noexec": attrs(c.p("stranger", "n"))[2]}


@other_case("other_uid", {"f": [OTHER, 140, "0o100644"], "d": [OTHER, 140, "0o42755"]})
def o_creates_through_its_41st_group(c):
    """A user in more groups than the daemon reads per request (32) still
    creates where only a late group lets them: the kernel allowed it."""
    os.mkdir(c.p("g"))
    os.chown(c.p("g"), 0, 140)
    os.chmod(c.p("g"), 0o2770)
    other(c, "put(p('g', 'f'), 0o644); os.mkdir(p('g', 'd'), 0o755)", groups=range(100, 141))
    return {"f": attrs(c.p("g", "f")), "d": attrs(c.p("g", "d"))}


@other_case("other_uid", {"read_0600": "EACCES", "write_0644": "EACCES", "create_in_0755": "EACCES",
                          "mkdir_in_0755": "EACCES", "chmod_not_owner": "EPERM",
                          "chown_own_to_root": "EPERM", "chgrp_not_member": "EPERM",
                          "utime_set_not_owner": "EPERM", "utime_now_not_writable": "EACCES",
                          "utime_now_writable": "ok", "utime_set_writable": "EPERM",
                          "truncate_0644": "EACCES", "xattr_not_owner": "EACCES"})
def o_meets_the_same_refusals(c):
    os.chmod(c.d, 0o1777)
    put(c.p("secret"), b"root's", 0o600)
    put(c.p("ro"), b"root's", 0o644)
    put(c.p("rw"), b"root's", 0o666)
    os.chmod(c.p("rw"), 0o666)
    os.mkdir(c.p("closed"), 0o755)
    return other(c, """
out["read_0600"] = err(os.open, p("secret"), os.O_RDONLY)
out["write_0644"] = err(os.open, p("ro"), os.O_WRONLY)
out["create_in_0755"] = err(put, p("closed", "n"))
out["mkdir_in_0755"] = err(os.mkdir, p("closed", "n"))
out["chmod_not_owner"] = err(os.chmod, p("ro"), 0o666)
put(p("mine"))
out["chown_own_to_root"] = err(os.chown, p("mine"), 0, -1)
out["chgrp_not_member"] = err(os.chown, p("mine"), -1, 0)
out["utime_set_not_owner"] = err(os.utime, p("ro"), (1, 1))
out["utime_now_not_writable"] = err(os.utime, p("ro"))
out["utime_now_writable"] = err(os.utime, p("rw"))
out["utime_set_writable"] = err(os.utime, p("rw"), (1, 1))
out["truncate_0644"] = err(os.truncate, p("ro"), 0)
out["xattr_not_owner"] = err(os.setxattr, p("ro"), "user.x", b"1")
""")


@other_case("other_uid", {"unlink_roots": "EPERM", "rename_roots": "EPERM", "rename_over_roots": "EPERM",
                          "unlink_own": "ok", "rename_own": "ok", "root_unlinks_theirs": True,
                          "roots_kept": True})
def o_sticky_folder(c):
    os.chmod(c.d, 0o1777)
    put(c.p("roots"), b"root's")
    out = other(c, """
put(p("own"))
put(p("own2"))
out["unlink_roots"] = err(os.unlink, p("roots"))
out["rename_roots"] = err(os.rename, p("roots"), p("moved"))
out["rename_over_roots"] = err(os.rename, p("own2"), p("roots"))
out["unlink_own"] = err(os.unlink, p("own"))
out["rename_own"] = err(os.rename, p("own2"), p("own3"))
""")
    os.unlink(c.p("own3"))
    out["root_unlinks_theirs"] = not os.path.exists(c.p("own3"))
    out["roots_kept"] = get(c.p("roots")) == b"root's"
    return out


def written_by_other(c, modes):
    os.chmod(c.d, 0o1777)
    for name, m in modes.items():
        put(c.p(name), b"root's")
        os.chmod(c.p(name), m)
    other(c, f"""
for name in {sorted(modes)!r}:
    fd = os.open(p(name), os.O_WRONLY)
    os.write(fd, b"x")
    os.close(fd)
""")
    out = {name: attrs(c.p(name))[2] for name in modes}
    out["data"] = get(c.p(sorted(modes)[0])).hex()
    return out


@other_case("other_uid", {"suid": "0o100777", "sgid": "0o100777", "data": b"xoot's".hex()})
def o_write_by_another_clears_setid(c):
    return written_by_other(c, {"suid": 0o4777, "sgid": 0o2777})


@other_case("other_uid", {"sgid_noexec": "0o100666", "data": b"xoot's".hex()})
def o_write_by_non_member_clears_sgid_without_group_exec(c):
    return written_by_other(c, {"sgid_noexec": 0o2666})


@other_case("other_uid", {"truncate": "0o100666", "ftruncate": "0o100666", "o_trunc": "0o100666",
                          "suid_truncate": "0o100777", "sizes": [0, 1, 0, 0]})
def o_truncate_by_non_member_clears_setid(c):
    os.chmod(c.d, 0o1777)
    for name, m in (("truncate", 0o2666), ("ftruncate", 0o2666), ("o_trunc", 0o2666),
                    ("suid_truncate", 0o4777)):
        put(c.p(name), b"root's")
        os.chmod(c.p(name), m)
    other(c, """
os.truncate(p("truncate"), 0)
fd = os.open(p("ftruncate"), os.O_WRONLY)
os.ftruncate(fd, 1)
os.close(fd)
os.close(os.open(p("o_trunc"), os.O_WRONLY | os.O_TRUNC))
os.truncate(p("suid_truncate"), 0)
""")
    names = ("truncate", "ftruncate", "o_trunc", "suid_truncate")
    out = {name: attrs(c.p(name))[2] for name in names}
    out["sizes"] = [os.stat(c.p(name)).st_size for name in names]
    return out


@other_case("other_uid", {"fallocate": "0o100666", "copy_file_range": "0o100666",
                          "pwritev": "0o100666", "member_write": "0o102666",
                          "opened_only": "0o102666", "suid_fallocate": "0o100777",
                          "sizes": [8192, 6, 7, 7, 6, 8192]})
def o_other_changes_by_non_member_clear_setid(c):
    """Every way of changing a file's bytes drops set-id bits as a write does; a member
    of the file's group keeps set-group-ID on a file the group may not execute, and an
    open for writing that writes nothing changes nothing (under FUSE passthrough too)."""
    os.chmod(c.d, 0o1777)
    names = ("fallocate", "copy_file_range", "pwritev", "member_write", "opened_only",
             "suid_fallocate")
    for name in names:
        put(c.p(name), b"root's")
        os.chmod(c.p(name), 0o4777 if name.startswith("suid") else 0o2666)
    os.chown(c.p("member_write"), 0, OTHER)
    os.chmod(c.p("member_write"), 0o2666)
    other(c, """
fd = os.open(p("fallocate"), os.O_WRONLY)
os.posix_fallocate(fd, 0, 8192)
os.close(fd)
src = os.open(p("src"), os.O_RDWR | os.O_CREAT, 0o644)
os.write(src, b"x")
fd = os.open(p("copy_file_range"), os.O_WRONLY)
os.copy_file_range(src, fd, 1, 0, 0)
os.close(fd)
os.close(src)
fd = os.open(p("pwritev"), os.O_WRONLY)
os.pwritev(fd, [b"a", b"b"], 5)
os.close(fd)
fd = os.open(p("member_write"), os.O_WRONLY)
os.pwrite(fd, b"x", 6)
os.close(fd)
os.close(os.open(p("opened_only"), os.O_WRONLY))
fd = os.open(p("suid_fallocate"), os.O_WRONLY)
os.posix_fallocate(fd, 0, 8192)
os.close(fd)
""")
    out = {name: attrs(c.p(name))[2] for name in names}
    out["sizes"] = [os.stat(c.p(name)).st_size for name in names]
    return out


@other_case("other_uid", {"chmod_gs_member": "0o102755", "chmod_gs_non_member": "0o100755",
                          "write_own_6755": "0o100755", "truncate_own_2744": "0o102744",
                          "chown_own_4755": "0o100755", "o_trunc_own_4755": "0o100755",
                          "member_write_2777": "0o100777"})
def o_setid_on_own_files(c):
    """The owner's own files: set-group-ID by chmod only for a member of the file's
    group; the owner's write, truncation and chown drop what a local disk drops."""
    os.chmod(c.d, 0o1777)
    put(c.p("chmod_gs_non_member"), b"x")
    os.chown(c.p("chmod_gs_non_member"), OTHER, 0)
    put(c.p("member_write_2777"), b"x")
    os.chown(c.p("member_write_2777"), 0, OTHER)
    os.chmod(c.p("member_write_2777"), 0o2777)
    other(c, """
def own(name, mode):
    put(p(name), 0o644)
    os.chmod(p(name), mode)
own("chmod_gs_member", 0o755)
os.chmod(p("chmod_gs_member"), 0o2755)
os.chmod(p("chmod_gs_non_member"), 0o2755)
own("write_own_6755", 0o6755)
fd = os.open(p("write_own_6755"), os.O_WRONLY)
os.write(fd, b"x")
os.close(fd)
own("truncate_own_2744", 0o2744)
os.truncate(p("truncate_own_2744"), 1)
own("chown_own_4755", 0o4755)
os.chown(p("chown_own_4755"), -1, -1)
own("o_trunc_own_4755", 0o4755)
os.close(os.open(p("o_trunc_own_4755"), os.O_WRONLY | os.O_TRUNC))
fd = os.open(p("member_write_2777"), os.O_WRONLY)
os.write(fd, b"y")
os.close(fd)
""")
    names = ("chmod_gs_member", "chmod_gs_non_member", "write_own_6755", "truncate_own_2744",
             "chown_own_4755", "o_trunc_own_4755", "member_write_2777")
    return {name: attrs(c.p(name))[2] for name in names}


class OtherSides(Sides):
    """A mount shared with allow_other, and a folder of the local disk beside it (the
    store is the daemon's and closed to other users, as it should be)."""

    def __init__(self, mnt, local):
        super().__init__(mnt)
        self.roots["store"] = local


@pytest.fixture(scope="module")
def other_sides():
    import pwd
    if os.geteuid() != 0:
        pytest.skip("needs root")
    try:
        pwd.getpwuid(OTHER)
    except KeyError:
        pytest.skip(f"no uid {OTHER}")
    old = os.umask(0o022)
    with tempfile.TemporaryDirectory(prefix="bananafs-posix-other-") as work:
        os.chmod(work, 0o755)
        os.makedirs(os.path.join(work, "mnt"))
        local = os.path.join(work, "local")
        os.makedirs(local)
        emu = Emulator()
        try:
            mnt = Mount(emu.url, os.path.join(work, "store"), os.path.join(work, "mnt"),
                        opts=("-o", "allow_other"))
            try:
                os.chmod(mnt.path(*PRO2K), 0o755)
                yield OtherSides(mnt, local)
            finally:
                mnt.unmount()
        finally:
            emu.stop()
            os.umask(old)


@pytest.mark.parametrize("c,side", [
    pytest.param(c, s, id=f"{c.cat}-{c.name}-{s}",
                 marks=[pytest.mark.xfail(reason=c.xfail, strict=True)] if c.xfail and s == "mount" else [])
    for c in OTHER_CASES for s in SIDES])
def test_posix_other_uid(other_sides, c, side):
    obs = other_sides.observe(c, side)
    assert "exception" not in obs, obs["exception"]
    assert picked(obs, c.expect) == c.expect
    if side == "mount":
        ref = other_sides.observe(c, "store")
        assert obs == ref
