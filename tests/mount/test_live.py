"""Live updates: inotify watchers on the mount see results appear (issue 6)."""
import os
import shutil
import subprocess
import time

import pytest

from conftest import wait_done

PRO2K = ("gemini-3-pro-image", "2K")


@pytest.mark.smoke
def test_inotifywait_sees_png_appear(mount, emulator):
    if not shutil.which("inotifywait"):
        pytest.skip("inotifywait (inotify-tools) not installed")
    d = mount.path(*PRO2K)
    w = subprocess.Popen(["inotifywait", "-m", "-e", "close_write,moved_to,create", d],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "Watches established" in w.stderr.readline() + w.stderr.readline()
        with open(os.path.join(d, "live.txt"), "w") as f:
            f.write("seen without a refresh")
        assert wait_done(os.path.join(d, "live.txt")) == "done"
        done_at = time.time()
        deadline = done_at + 1.0
        seen = []
        os.set_blocking(w.stdout.fileno(), False)
        while time.time() < deadline:
            line = w.stdout.readline()
            if line:
                seen.append(line.strip())
                if "live.png" in line:
                    break
            else:
                time.sleep(0.02)
        assert any("live.png" in l and ("MOVED_TO" in l or "CLOSE_WRITE" in l) for l in seen), seen
    finally:
        w.terminate()
        w.wait()


def test_inotifywait_sees_error_file(mount, emulator):
    d = mount.path(*PRO2K)
    w = subprocess.Popen(["inotifywait", "-m", "-e", "moved_to,close_write", d],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        w.stderr.readline(); w.stderr.readline()
        with open(os.path.join(d, "nothing.txt"), "w") as f:
            f.write("")
        assert wait_done(os.path.join(d, "nothing.txt")) == "failed"
        os.set_blocking(w.stdout.fileno(), False)
        seen = ""
        deadline = time.time() + 1.0
        while time.time() < deadline and "nothing.error" not in seen:
            seen += w.stdout.readline() or ""
            time.sleep(0.02)
        assert "nothing.error" in seen
    finally:
        w.terminate()
        w.wait()
