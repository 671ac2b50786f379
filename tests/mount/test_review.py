"""Mount tests from a review: races between FUSE calls and job workers,
and corners of the contract (DESIGN.md 1, 2, 7) found by reading the code."""
import os
import struct
import time

from conftest import status, wait_done, wait_for

PRO2K = ("gemini-3-pro-image", "2K")


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def png_text(path, keyword):
    """The text of an iTXt/tEXt chunk of a PNG, or None."""
    with open(path, "rb") as f:
        data = f.read()
    pos = 8
    while pos + 12 <= len(data):
        n, ctype = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if ctype == b"tEXt":
            k, v = body.split(b"\0", 1)
            if k.decode("latin-1") == keyword:
                return v.decode("latin-1")
        elif ctype == b"iTXt":
            k, rest = body.split(b"\0", 1)
            if k.decode("latin-1") == keyword:
                # flag, method, language NUL, translated keyword NUL, text
                rest = rest[2:]
                _lang, rest = rest.split(b"\0", 1)
                _tr, text = rest.split(b"\0", 1)
                return text.decode("utf-8")
        if ctype == b"IEND":
            break
        pos += 12 + n
    return None


def test_deleted_and_recreated_prompt_is_not_overwritten_by_the_old_job(mount, emulator):
    """A job still running for a prompt that was deleted and written again
    must not publish the old text's image over the new one, nor finish the
    new job's journal row (its generation must not be reused)."""
    d = mount.path(*PRO2K)
    p = os.path.join(d, "a.txt")
    emulator.fault("slow", 1, delay_ms=3000)
    write(p, "the old text")
    wait_for(lambda: status(p) == "running", 10, "the first job to run")
    time.sleep(0.3)  # inside the slow request
    os.unlink(p)
    write(p, "the new text")
    assert wait_done(p, 30) in ("done", "cached")
    # let the old, slow request come back
    time.sleep(3.5)
    assert png_text(os.path.join(d, "a.png"), "prompt") == "the new text"
    assert status(p) in ("done", "cached")


def test_status_after_remount_of_a_prompt_with_candidates(mount_factory, emulator):
    """After a remount the status table is empty and a prompt's status is
    read from its outputs; a prompt with n: 2 has NAME-1.png, not NAME.png,
    and must still read as done (bananactl wait would otherwise hang)."""
    m = mount_factory()
    d = m.path(*PRO2K)
    p = os.path.join(d, "two.txt")
    write(p, "---\nn: 2\n---\ntwo candidates\n")
    assert wait_done(p) == "done"
    assert os.path.exists(os.path.join(d, "two-1.png"))
    m.unmount()
    m = mount_factory()
    assert status(m.path(*PRO2K, "two.txt")) == "done"


def test_status_after_remount_of_a_prompt_that_failed_after_a_success(mount_factory, emulator):
    """A success removes NAME.error; a later failure leaves the older NAME.png
    beside a new NAME.error.  After a remount that prompt failed last."""
    m = mount_factory()
    p = m.path(*PRO2K, "f.txt")
    write(p, "a good prompt")
    assert wait_done(p) == "done"
    write(p, "---\nbogus: 1\n---\nnow a bad header\n")
    assert wait_done(p) == "failed"
    m.unmount()
    m = mount_factory()
    assert status(m.path(*PRO2K, "f.txt")) == "failed"


def test_listxattr_of_a_prompt_with_a_full_xattr_list(mount_factory, emulator, tmp_path):
    """Our user.bananafs.* names are added to whatever names the store holds;
    with a store list near the 64 KiB limit (tmpfs allows that) they must not
    run past the daemon's buffer: the answer is the list or E2BIG."""
    import errno
    import shutil
    import tempfile
    if not os.path.isdir("/dev/shm"):
        import pytest
        pytest.skip("no /dev/shm")
    shm = tempfile.mkdtemp(prefix="bananafs-review-", dir="/dev/shm")
    try:
        m = mount_factory(opts=("--store", os.path.join(shm, "store")))
        p = m.path(*PRO2K, "x.txt")
        write(p, "a prompt with many attributes")
        assert wait_done(p) == "done"
        back = os.path.join(shm, "store", "tree", *PRO2K, "x.txt")
        total, i = 0, 0
        name_len = 240
        try:
            while total < 65536 - 300:
                name = f"user.{i:05d}" + "n" * (name_len - 11)
                os.setxattr(back, name, b"")
                total += len(name) + 1
                i += 1
            # fill up to a few bytes short of 64 KiB
            rest = 65536 - total - 4 - 1
            name = "user.z" + "z" * (rest - 6)
            os.setxattr(back, name, b"")
            total += len(name) + 1
        except OSError as e:
            import pytest
            pytest.skip(f"the store's file system does not take that many xattrs: {e}")
        assert total > 65536 - 16
        try:
            names = os.listxattr(p)
        except OSError as e:
            assert e.errno == errno.E2BIG, e
        else:
            assert "user.bananafs.status" in names
        assert m.proc.poll() is None
        assert status(p) == "done"
        m.unmount()
    finally:
        shutil.rmtree(shm, ignore_errors=True)


def test_results_are_never_published_through_a_symlinked_folder(mount, emulator, tmp_path):
    """A prompt's folder replaced by a symlink to a folder outside the mount
    while its request runs: the image must not be written there (a root
    daemon with allow_other would otherwise create and replace files as root
    wherever a user points it)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    d = mount.path(*PRO2K)
    proj = os.path.join(d, "proj")
    os.mkdir(proj)
    p = os.path.join(proj, "x.txt")
    emulator.fault("slow", 1, delay_ms=2000)
    write(p, "a prompt whose folder moves")
    wait_for(lambda: status(p) == "running", 10, "the job to run")
    time.sleep(0.3)
    os.rename(proj, os.path.join(d, "proj2"))
    os.symlink(str(outside), proj)
    time.sleep(3)
    assert sorted(os.listdir(outside)) == []
