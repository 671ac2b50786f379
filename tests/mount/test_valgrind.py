"""valgrind memcheck on a short mount session: mount, generate, cached hit, error, unmount."""
import os
import shutil
import subprocess
import time

import pytest

from conftest import KEY, binary, is_mounted, wait_done


def test_memcheck_short_session(emulator, workdir):
    if not shutil.which("valgrind"):
        pytest.skip("valgrind not installed")
    if "san" in os.path.basename(os.path.dirname(binary("bananafs"))):
        pytest.skip("valgrind does not run sanitizer builds")
    store, mnt = os.path.join(workdir, "store"), os.path.join(workdir, "mnt")
    cfg = os.path.join(workdir, "config")
    with open(cfg, "w") as f:
        # valgrind runs one thread at a time and holds its lock across rename(2):
        # a rename into our own mount could never be answered.
        f.write("[bananafs]\npublish_via_mount = no\n")
    log = os.path.join(workdir, "memcheck.log")
    env = dict(os.environ, GEMINI_API_KEY=KEY)
    env.pop("GOOGLE_API_KEY", None)
    proc = subprocess.Popen(
        ["valgrind", "--tool=memcheck", "--error-exitcode=99", "--leak-check=no",
         "--track-fds=no", f"--log-file={log}", binary("bananafs"), "-f", "--store", store,
         "--endpoint", emulator.url, "--config", cfg, mnt],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.time() + 60
        while not is_mounted(mnt):
            assert proc.poll() is None, open(log).read()[-3000:]
            assert time.time() < deadline, "not mounted under valgrind"
            time.sleep(0.1)
        d = os.path.join(mnt, "gemini-3.1-flash-image", "512")
        for name, text in (("a.txt", "under valgrind"), ("b.txt", "under valgrind"), ("c.txt", "")):
            with open(os.path.join(d, name), "w") as f:
                f.write(text)
        # same text: whichever runs first pays, the other is served from the cache
        states = {wait_done(os.path.join(d, n), 120) for n in ("a.txt", "b.txt")}
        assert states == {"done", "cached"}
        assert wait_done(os.path.join(d, "c.txt"), 120) == "failed"
        os.listdir(os.path.join(mnt, ".bananafs"))
        open(os.path.join(mnt, ".bananafs", "stats")).read()
    finally:
        subprocess.run(["fusermount3", "-u", mnt])
        try:
            rc = proc.wait(120)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
    text = open(log).read()
    assert "ERROR SUMMARY: 0 errors" in text, text[-4000:]
    assert rc == 0
