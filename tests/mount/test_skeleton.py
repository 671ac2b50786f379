"""The walking skeleton, end to end: DESIGN.md sections 1, 2, 6, 7.

Each test mounts a real bananafs on /dev/fuse against a real emulator process.
"""
import errno
import hashlib
import os
import shutil
import subprocess
import threading
import time

import pytest

from conftest import png_size, status, wait_done, wait_for, ledger

PRO2K = ("gemini-3-pro-image", "2K")


def write(path, text, mode="w"):
    with open(path, mode) as f:
        f.write(text)


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def gen_requests(emulator):
    s = emulator.stats()
    return s["generations"]


@pytest.mark.smoke
def test_echo_prompt_makes_png_of_requested_size(mount, emulator):
    p = mount.path(*PRO2K, "fox.txt")
    write(p, "a red fox in snow\n")
    assert wait_done(p) == "done", open(mount.path(*PRO2K, "fox.error")).read() \
        if os.path.exists(mount.path(*PRO2K, "fox.error")) else status(p)
    png = mount.path(*PRO2K, "fox.png")
    assert png_size(png) == (2048, 2048)
    assert emulator.stats()["requests"] >= 1
    assert len(os.getxattr(p, "user.bananafs.key").decode()) == 32
    ok = [l for l in ledger(mount.store) if l["outcome"] == "ok"]
    assert os.getxattr(p, "user.bananafs.cost_usd").decode() == "%.4f" % ok[0]["cost_usd"]
    assert ok[0]["cost_usd"] == pytest.approx(0.134, rel=0.05)     # Pro's image, plus its tokens
    req = emulator.requests()[-1]
    assert req["prompt"] == "a red fox in snow"
    assert req["model"] == "gemini-3-pro-image" and req["size"] == "2K"


@pytest.mark.smoke
def test_echo_and_printf_are_the_same_request(mount, emulator):
    a = mount.path(*PRO2K, "a.txt")
    b = mount.path(*PRO2K, "b.txt")
    write(a, "same words\n")
    assert wait_done(a) == "done"
    write(b, "  same words")
    assert wait_done(b) == "cached"
    assert gen_requests(emulator) == 1
    assert sha(mount.path(*PRO2K, "a.png")) == sha(mount.path(*PRO2K, "b.png"))


def test_twenty_concurrent_identical_prompts_pay_once(mount, emulator):
    d = mount.path("gemini-3.1-flash-image", "1K")
    names = [os.path.join(d, f"p{i}.txt") for i in range(20)]
    threads = [threading.Thread(target=write, args=(n, "twenty foxes\n")) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for n in names:
        assert wait_done(n, 30) in ("done", "cached")
    assert gen_requests(emulator) == 1
    digests = {sha(n[:-4] + ".png") for n in names}
    assert len(digests) == 1
    outcomes = [r["outcome"] for r in ledger(mount.store)]
    assert outcomes.count("ok") == 1


def test_remount_same_prompt_costs_nothing(mount_factory, emulator):
    m = mount_factory()
    p = m.path(*PRO2K, "fox.txt")
    write(p, "persisted fox")
    assert wait_done(p) == "done"
    m.unmount()
    before = gen_requests(emulator)
    m2 = mount_factory()
    q = m2.path(*PRO2K, "again.txt")
    write(q, "persisted fox")
    assert wait_done(q) == "cached"
    assert gen_requests(emulator) == before
    assert png_size(m2.path(*PRO2K, "again.png")) == (2048, 2048)
    # the first output is still there, byte for byte the cached object
    assert sha(m2.path(*PRO2K, "fox.png")) == sha(m2.path(*PRO2K, "again.png"))


def test_vim_save_is_one_request_with_final_text(mount, emulator):
    if not shutil.which("vim"):
        pytest.skip("vim not installed")
    p = mount.path(*PRO2K, "edit.txt")
    subprocess.run(["vim", "-u", "NONE", "-i", "NONE", "-n", "-es",
                    "-c", "normal! ifirst draft", "-c", "s/first draft/final text/",
                    "-c", "wq", p], check=True, timeout=30)
    assert wait_done(p) == "done"
    time.sleep(0.5)
    reqs = [r for r in emulator.requests() if r.get("status") == 200]
    assert [r["prompt"] for r in reqs] == ["final text"]


def test_editor_temp_and_rename_saves(mount, emulator):
    d = mount.path(*PRO2K)
    # gedit/VS Code style: write a temp name, rename onto the prompt
    write(os.path.join(d, ".goutputstream-ABC123"), "renamed into place")
    os.rename(os.path.join(d, ".goutputstream-ABC123"), os.path.join(d, "g.txt"))
    # backup, swap and temp names never trigger
    for name in ("x.txt~", ".x.txt.swp", "x.txt.tmp", "x.txt.part", ".hidden.txt", "4913"):
        write(os.path.join(d, name), "never sent")
    assert wait_done(os.path.join(d, "g.txt")) == "done"
    time.sleep(0.5)
    prompts = [r["prompt"] for r in emulator.requests()]
    assert prompts == ["renamed into place"]


def test_python_chunked_write_and_tee_and_cp(mount, emulator, tmp_path):
    d = mount.path("gemini-3.1-flash-image", "512")
    with open(os.path.join(d, "chunks.txt"), "w") as f:
        for word in ("a ", "prompt ", "written ", "in ", "chunks"):
            f.write(word)
            f.flush()
    subprocess.run(["tee", os.path.join(d, "tee.txt")], input=b"from tee\n",
                   stdout=subprocess.DEVNULL, check=True)
    src = tmp_path / "src.txt"
    src.write_text("copied prompt\n")
    subprocess.run(["cp", str(src), os.path.join(d, "cp.txt")], check=True)
    for n in ("chunks", "tee", "cp"):
        assert wait_done(os.path.join(d, n + ".txt")) == "done"
        assert png_size(os.path.join(d, n + ".png")) == (512, 512)
    prompts = sorted(r["prompt"] for r in emulator.requests())
    assert prompts == ["a prompt written in chunks", "copied prompt", "from tee"]


def test_reading_and_stat_never_trigger(mount, emulator):
    p = mount.path(*PRO2K, "quiet.txt")
    write(p, "only once")
    assert wait_done(p) == "done"
    for _ in range(3):
        with open(p) as f:
            f.read()
        os.stat(p)
        os.listdir(mount.path(*PRO2K))
    time.sleep(0.5)
    assert gen_requests(emulator) == 1


@pytest.mark.smoke
def test_empty_prompt_writes_error_and_sends_nothing(mount, emulator):
    p = mount.path(*PRO2K, "empty.txt")
    write(p, "   \n")
    assert wait_done(p) == "failed"
    err = open(mount.path(*PRO2K, "empty.error")).read()
    assert "empty prompt" in err
    assert "whose move: yours\n" in err and "next move: write the text" in err, err
    assert os.getxattr(p, "user.bananafs.error").decode().startswith("empty prompt"), err
    assert emulator.stats()["requests"] == 0
    assert not os.path.exists(mount.path(*PRO2K, "empty.png"))


def test_oversized_prompt_refused(mount, emulator):
    p = mount.path(*PRO2K, "big.txt")
    write(p, "x" * (33 * 1024))
    assert wait_done(p) == "failed"
    assert "32 KiB" in open(mount.path(*PRO2K, "big.error")).read()
    assert emulator.stats()["requests"] == 0


def test_later_success_removes_error(mount, emulator):
    p = mount.path(*PRO2K, "fix.txt")
    write(p, "")
    assert wait_done(p) == "failed"
    assert os.path.exists(mount.path(*PRO2K, "fix.error"))
    write(p, "now with words")
    assert wait_for(lambda: status(p) == "done")
    assert not os.path.exists(mount.path(*PRO2K, "fix.error"))


@pytest.mark.smoke
def test_fixed_tree(mount):
    root = os.listdir(mount.mnt)
    for m in ("gemini-3-pro-image", "gemini-3.1-flash-image", "gemini-3.1-flash-lite-image",
              "gemini-nano-banana-2.1", "pro", "flash", "lite", ".bananafs"):
        assert m in root
    # gemini-2.5-flash-image was shut down 2026-10-02: test_newcomer.py checks it by date
    assert not any(n.endswith("-preview") for n in root)
    assert sorted(os.listdir(mount.path("gemini-3-pro-image"))) == ["1K", "2K", "4K"]
    assert sorted(os.listdir(mount.path("gemini-3.1-flash-image"))) == ["1K", "2K", "4K", "512"]
    assert os.readlink(mount.path("pro")) == "gemini-3-pro-image"
    assert os.path.isdir(mount.path("pro", "2K"))
    assert sorted(os.listdir(mount.path(".bananafs"))) == \
        ["config", "control", "doctor", "jobs", "ledger.jsonl", "prices", "stats"]


@pytest.mark.smoke
@pytest.mark.parametrize("op,args,errs", [
    ("mkdir", ("newdir",), (errno.EPERM, errno.EROFS)),
    ("mkdir", ("gemini-3-pro-image/8K",), (errno.EPERM, errno.EROFS)),
    ("rmdir", ("gemini-3-pro-image/2K",), (errno.EPERM, errno.EROFS)),
    ("rmdir", ("gemini-3-pro-image",), (errno.EPERM, errno.EROFS)),
    ("unlink", ("pro",), (errno.EPERM, errno.EROFS)),
    ("rename", ("gemini-3-pro-image", "x"), (errno.EPERM, errno.EROFS)),
    ("rename", ("gemini-3-pro-image/2K", "gemini-3-pro-image/3K"), (errno.EPERM, errno.EROFS)),
    ("unlink", (".bananafs/stats",), (errno.EPERM, errno.EROFS)),
    ("unlink", (".bananafs/control",), (errno.EPERM, errno.EROFS)),
])
def test_fixed_folders_refuse_changes(mount, op, args, errs):
    paths = [mount.path(a) for a in args]
    with pytest.raises(OSError) as e:
        getattr(os, op)(*paths)
    assert e.value.errno in errs


def test_one_errno_per_fixed_node(mount):
    """Every change of the same fixed node fails with the same errno:
    EROFS inside .bananafs/, EPERM for the rest of the fixed tree."""
    dst = mount.path("gemini-3.1-flash-image", "1K", "copy")
    for node, want in ((".bananafs/stats", errno.EROFS), ("gemini-3-pro-image", errno.EPERM),
                       ("pro", errno.EPERM)):
        p = mount.path(node)
        tries = [lambda: os.rename(p, dst), lambda: os.utime(p, (1, 1), follow_symlinks=False)]
        if os.path.islink(p) or not os.path.isdir(p):	# the kernel answers EISDIR/EPERM for folders itself
            tries += [lambda: os.unlink(p), lambda: os.link(p, dst, follow_symlinks=False)]
        for t in tries:
            with pytest.raises(OSError) as e:
                t()
            assert e.value.errno == want, (node, e.value)


def test_fixed_files_refuse_writes(mount):
    with pytest.raises(OSError) as e:
        open(mount.path("root-file.txt"), "w")
    assert e.value.errno in (errno.EPERM, errno.EROFS)
    with pytest.raises(OSError) as e:
        open(mount.path(".bananafs", "stats"), "w")
    assert e.value.errno == errno.EROFS


@pytest.mark.smoke
def test_ordinary_files_round_trip(mount):
    d = mount.path(*PRO2K, "project", "deep", "er")
    os.makedirs(d)
    data = os.urandom(3 * 1024 * 1024 + 17)
    with open(os.path.join(d, "blob.bin"), "wb") as f:
        f.write(data)
    with open(os.path.join(d, "blob.bin"), "rb") as f:
        assert f.read() == data
    # also through the store directly: passthrough, nothing transformed
    with open(os.path.join(mount.store, "tree", *PRO2K, "project", "deep", "er", "blob.bin"), "rb") as f:
        assert f.read() == data
    os.rename(os.path.join(d, "blob.bin"), os.path.join(d, "moved.bin"))
    os.symlink("moved.bin", os.path.join(d, "link"))
    assert os.readlink(os.path.join(d, "link")) == "moved.bin"
    os.chmod(os.path.join(d, "moved.bin"), 0o600)
    assert os.stat(os.path.join(d, "moved.bin")).st_mode & 0o777 == 0o600
    os.unlink(os.path.join(d, "link"))
    os.unlink(os.path.join(d, "moved.bin"))
    assert os.listdir(d) == []


def test_control_files(mount, emulator):
    import json
    p = mount.path(*PRO2K, "ctl.txt")
    write(p, "control files")
    assert wait_done(p) == "done"
    stats = json.loads(open(mount.path(".bananafs", "stats")).read())
    assert stats["ok"] == 1 and stats["offline"] is True
    jobs = [json.loads(l) for l in open(mount.path(".bananafs", "jobs"))]
    assert any(j["path"] == "gemini-3-pro-image/2K/ctl.txt" and j["status"] == "done" for j in jobs)
    led = [json.loads(l) for l in open(mount.path(".bananafs", "ledger.jsonl"))]
    assert [l["outcome"] for l in led] == ["sent", "ok"]
    assert "gemini-3-pro-image" in open(mount.path(".bananafs", "prices")).read()
    assert "GEMINI" not in open(mount.path(".bananafs", "config")).read()


def test_published_png_is_copy_on_write(mount, emulator):
    p = mount.path(*PRO2K, "cow.txt")
    write(p, "copy on write")
    assert wait_done(p) == "done"
    png = mount.path(*PRO2K, "cow.png")
    before = sha(png)
    objects = os.path.join(mount.store, "cache", "objects")
    obj_digests = {sha(os.path.join(objects, n)) for n in os.listdir(objects)}
    assert before in obj_digests
    with open(png, "r+b") as f:
        f.seek(100)
        f.write(b"user edit")
    assert sha(png) != before
    assert before in {sha(os.path.join(objects, n)) for n in os.listdir(objects)}


def test_key_never_in_store_or_logs(mount, emulator):
    from conftest import KEY
    p = mount.path(*PRO2K, "k.txt")
    write(p, "no secrets")
    assert wait_done(p) == "done"
    for dirpath, _, files in os.walk(mount.store):
        for n in files:
            with open(os.path.join(dirpath, n), "rb") as f:
                assert KEY.encode() not in f.read(), n
    assert KEY not in mount.log()


def test_rewrite_while_queued_pays_only_the_final_text(mount_factory, emulator):
    m = mount_factory("[bananafs]\nmax_inflight = 1\n")
    emulator.fault("slow", 1, delay_ms=1500)
    d = m.path(*PRO2K)
    write(os.path.join(d, "first.txt"), "occupies the only slot")
    time.sleep(0.3)
    p = os.path.join(d, "second.txt")
    for text in ("draft one", "draft two", "the final text"):
        write(p, text)
        time.sleep(0.05)
    assert wait_done(p, 30) == "done"
    assert wait_done(os.path.join(d, "first.txt"), 30) == "done"
    time.sleep(0.3)
    prompts = [r["prompt"] for r in emulator.requests()]
    assert sorted(prompts) == ["occupies the only slot", "the final text"]


def test_rsync_and_mv_are_one_request_each(mount, emulator, tmp_path):
    if not shutil.which("rsync"):
        pytest.skip("rsync not installed")
    src = tmp_path / "r.txt"
    src.write_text("synced prompt\n")
    d = mount.path(*PRO2K)
    subprocess.run(["rsync", str(src), d + "/"], check=True, timeout=30)
    other = tmp_path / "m.txt"
    other.write_text("moved prompt\n")
    # mv across file systems: copy to a temp name in the folder, then rename
    subprocess.run(["mv", str(other), os.path.join(d, "m.txt")], check=True, timeout=30)
    assert wait_done(os.path.join(d, "r.txt")) == "done"
    assert wait_done(os.path.join(d, "m.txt")) == "done"
    time.sleep(0.5)
    assert sorted(r["prompt"] for r in emulator.requests()) == ["moved prompt", "synced prompt"]


def test_metadata_changes_do_not_reach_the_cache(mount, emulator):
    p = mount.path(*PRO2K, "meta.txt")
    write(p, "metadata stays mine")
    assert wait_done(p) == "done"
    png = mount.path(*PRO2K, "meta.png")
    objects = os.path.join(mount.store, "cache", "objects")
    obj = [os.path.join(objects, n) for n in os.listdir(objects)
           if os.path.samefile(os.path.join(objects, n), os.path.join(mount.store, "tree", *PRO2K, "meta.png"))][0]
    mode = os.stat(obj).st_mode
    os.chmod(png, 0o600)
    os.utime(png, (1, 1))
    os.setxattr(png, "user.note", b"mine")
    st = os.stat(obj)
    assert st.st_mode == mode and st.st_mtime != 1
    assert "user.note" not in os.listxattr(obj)
    assert os.stat(png).st_mode & 0o777 == 0o600


def test_renaming_a_folder_keeps_its_queued_prompts(mount_factory, emulator):
    m = mount_factory("[bananafs]\nmax_inflight = 1\n")
    emulator.fault("slow", 1, delay_ms=1500)
    d = m.path(*PRO2K)
    write(os.path.join(d, "blocker.txt"), "holds the only slot")
    os.makedirs(os.path.join(d, "proj"))
    time.sleep(0.3)
    write(os.path.join(d, "proj", "inside.txt"), "moved while queued")
    time.sleep(0.1)
    os.rename(os.path.join(d, "proj"), os.path.join(d, "renamed"))
    p = os.path.join(d, "renamed", "inside.txt")
    assert wait_done(p, 30) == "done"
    assert png_size(os.path.join(d, "renamed", "inside.png")) == (2048, 2048)
