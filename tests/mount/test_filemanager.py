"""A real file manager (pcmanfm under Xvfb) shows a new PNG without a refresh (issue 6).

Skipped where Xvfb, pcmanfm or ImageMagick's import are not installed
(`apt-get install xvfb pcmanfm imagemagick`); the screenshots are kept in
the test's temp folder and their paths printed, for a person to look at.
"""
import os
import shutil
import subprocess
import time

import pytest

from conftest import wait_done

NEEDED = ("Xvfb", "pcmanfm", "import", "compare")


def screenshot(display, path):
    subprocess.run(["import", "-display", display, "-window", "root", path], check=True,
                   timeout=30)


def differing_pixels(a, b):
    r = subprocess.run(["compare", "-metric", "AE", a, b, "null:"], capture_output=True,
                       text=True, timeout=30)
    return int(float(r.stderr.split()[0]))


def test_pcmanfm_shows_new_png_without_refresh(mount, emulator, tmp_path):
    missing = [n for n in NEEDED if not shutil.which(n)]
    if missing:
        pytest.skip("not installed: " + " ".join(missing))
    display = ":%d" % (90 + os.getpid() % 9)
    xvfb = subprocess.Popen(["Xvfb", display, "-screen", "0", "1024x700x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    fm = None
    try:
        time.sleep(1.0)
        d = mount.path("gemini-3-pro-image", "1K")
        env = dict(os.environ, DISPLAY=display, HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path))
        fm = subprocess.Popen(["pcmanfm", "--no-desktop", d], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(3.0)
        before = str(tmp_path / "before.png")
        still = str(tmp_path / "still.png")
        after = str(tmp_path / "after.png")
        screenshot(display, before)
        time.sleep(1.0)
        screenshot(display, still)
        quiet = differing_pixels(before, still)
        with open(os.path.join(d, "shown.txt"), "w") as f:
            f.write("a lighthouse at night")
        assert wait_done(os.path.join(d, "shown.txt")) == "done"
        time.sleep(3.0)
        screenshot(display, after)
        changed = differing_pixels(still, after)
        print(f"screenshots: {before} {after}; idle change {quiet} px, after generation {changed} px")
        assert quiet < 50, "the window changes by itself; the comparison would mean nothing"
        assert changed > 500, "pcmanfm did not show the new files without a refresh"
    finally:
        if fm:
            fm.terminate()
            fm.wait()
        xvfb.terminate()
        xvfb.wait()
