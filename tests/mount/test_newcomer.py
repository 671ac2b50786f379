"""The newcomer's first hour (issue 14): simulated spend, recovering mounts, the dated
model catalogue, the served model, provenance that other tools read, and the words."""
import errno
import os
import re
import shutil
import struct
import subprocess
import time
import zlib

import pytest

from conftest import ROOT, binary, is_mounted, ledger, wait_done, wait_for

PRO2K = ("gemini-3-pro-image", "2K")
# a 1x1 PNG, for a reference image
TINY_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c6360f8cfc0f01f0005000201a0a4f2f40000000049454e44ae426082")
FAST = "[bananafs]\nbackoff_base_s = 0.05\nbackoff_cap_s = 0.2\nretries = 3\n"


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def ctl(m, *args):
    return subprocess.run([binary("bananactl"), "-m", m.mnt, *args], capture_output=True,
                          text=True, timeout=30)


def test_emulator_spend_is_labelled_simulated(mount_factory, emulator):
    m = mount_factory(FAST)
    p = m.path(*PRO2K, "sim.txt")
    write(p, "a simulated banana")
    assert wait_done(p) == "done"
    ok = [l for l in ledger(m.store) if l["outcome"] == "ok"]
    assert ok and all(l["billed"] and l["simulated"] is True for l in ok)
    r = ctl(m, "cost")
    assert r.returncode == 0, r.stderr
    assert "simulated" in r.stdout and "nobody bills it" in r.stdout, r.stdout
    assert "simulated spend" in m.log()


def dead(mnt):
    try:
        os.stat(mnt)
    except OSError as e:
        return e.errno == errno.ENOTCONN
    return False


def test_mounts_again_over_a_dead_mount_point(mount_factory, emulator):
    m = mount_factory(FAST)
    m.proc.kill()		# kill -9, and nobody unmounts
    m.proc.wait()
    m.err.close()
    assert dead(m.mnt)
    m2 = mount_factory(FAST)
    wait_for(lambda: os.path.isdir(m2.path(*PRO2K)), what="the new mount to answer")
    assert "dead bananafs mount" in m2.log() and "detaching it lazily" in m2.log()
    p = m2.path(*PRO2K, "again.txt")
    write(p, "after the crash")
    assert wait_done(p) == "done"


@pytest.mark.xfail(strict=False, reason="libfuse's auto_unmount watchdog left the mount in full-suite "
                   "runs (check-fresh, bookworm and trixie, 2026-12-02) though it passes alone; bananafs "
                   "recovers anyway: test_mounts_again_over_a_dead_mount_point")
def test_auto_unmount_leaves_no_dead_mount_after_kill9(mount_factory, emulator):
    m = mount_factory(FAST, opts=("-o", "auto_unmount"))
    m.proc.kill()
    m.proc.wait()
    m.err.close()
    try:
        wait_for(lambda: not is_mounted(m.mnt), 60, "auto_unmount to remove the mount")
    finally:
        if is_mounted(m.mnt):		# leave no dead mount for the folder's removal
            subprocess.run(["fusermount3", "-uz", m.mnt])
    assert not dead(m.mnt)


def test_systemd_unit_recovers_after_kill9():
    with open(os.path.join(ROOT, "contrib", "bananafs.service")) as f:
        unit = f.read()
    start = [l for l in unit.splitlines() if l.startswith("ExecStart=")][0]
    assert "auto_unmount" in start
    assert "Restart=on-failure" in unit


def png_chunks(path):
    """[(type, keyword, text)] of a PNG's tEXt and iTXt chunks, read here (no code of ours)."""
    with open(path, "rb") as f:
        data = f.read()
    pos, out = 8, []
    while pos + 8 <= len(data):
        n, ctype = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if ctype == b"tEXt":
            k, v = body.split(b"\0", 1)
            out.append(("tEXt", k.decode("latin-1"), v.decode("latin-1")))
        elif ctype == b"iTXt":
            k, rest = body.split(b"\0", 1)
            comp, rest = rest[0], rest[2:]
            _lang, _tk, v = rest.split(b"\0", 2)
            out.append(("iTXt", k.decode("latin-1"), zlib.decompress(v).decode() if comp else v.decode()))
        pos += 12 + n
    return out


def png_text(path):
    return {k: v for _t, k, v in png_chunks(path)}


def test_catalogue_by_date_hides_a_shut_down_model(mount_factory, emulator):
    m = mount_factory(FAST, env={"BANANAFS_TODAY": "2026-10-01"})
    assert "gemini-2.5-flash-image" in os.listdir(m.mnt) and "legacy" in os.listdir(m.mnt)
    p = m.path("gemini-2.5-flash-image", "1K", "old.txt")
    write(p, "the day before the shutdown")
    assert wait_done(p) == "done"
    m.unmount()

    m = mount_factory(FAST, env={"BANANAFS_TODAY": "2026-10-02"})
    root = os.listdir(m.mnt)
    assert "gemini-2.5-flash-image" not in root and "legacy" not in root
    assert "gemini-3-pro-image" in root
    with pytest.raises(FileNotFoundError):
        os.stat(m.path("gemini-2.5-flash-image", "1K"))
    sent = len(emulator.requests())
    m.unmount()

    # a config naming it is refused before any request, with Google's date
    with pytest.raises(RuntimeError) as e:
        mount_factory(FAST + "fallback_model = gemini-2.5-flash-image\n",
                      env={"BANANAFS_TODAY": "2026-12-02"})
    assert "shut down by Google on 2026-10-02" in str(e.value)
    assert len(emulator.requests()) == sent


def test_served_model_is_recorded_and_priced(mount_factory, workdir):
    from conftest import Emulator
    emu = Emulator(extra=["--route-model", "gemini-3-pro-image=gemini-3.1-flash-image"])
    try:
        m = mount_factory(FAST, endpoint=emu.url)
        p = m.path(*PRO2K, "routed.txt")
        write(p, "routed to the successor")
        assert wait_done(p) == "done"
        ok = [l for l in ledger(m.store) if l["outcome"] == "ok"][0]
        assert ok["model"] == "gemini-3-pro-image"
        assert ok["model_served"] == "gemini-3.1-flash-image"
        # priced as Nano Banana 2 at 2K (about $0.101 and its tokens), not Pro's $0.134
        assert ok["cost_basis"] == "usage" and ok["cost_usd"] == pytest.approx(0.101, rel=0.02)
        assert emu.stats()["billed_usd"] == pytest.approx(ok["cost_usd"], abs=1e-9)
        assert os.getxattr(p, "user.bananafs.model").decode() == "gemini-3.1-flash-image"
        assert os.getxattr(p, "user.bananafs.cost_usd").decode() == "%.4f" % ok["cost_usd"]
        assert png_text(m.path(*PRO2K, "routed.png"))["model"] == "gemini-3.1-flash-image"
        m.unmount()
    finally:
        emu.stop()


def test_png_provenance_read_by_imagemagick_and_a1111_tools(mount_factory, emulator):
    if not shutil.which("identify"):
        pytest.skip("ImageMagick's identify is not installed")
    m = mount_factory(FAST)
    d = m.path("gemini-3.1-flash-image", "512")	# small: identify -verbose reads every pixel
    with open(os.path.join(d, "ref.png"), "wb") as f:
        f.write(TINY_PNG)
    p = os.path.join(d, "prov.txt")
    write(p, "---\naspect: 16:9\nvariant: 2\ninput: ref.png\n---\nA café at dawn, 日の出")
    assert wait_done(p) == "done"
    png = os.path.join(d, "prov.png")
    r = subprocess.run(["identify", "-verbose", png], capture_output=True, encoding="latin-1",
                       timeout=60)
    assert r.returncode == 0, r.stderr
    # ImageMagick 6 shows tEXt only: the prompt must be there (Latin-1, '?' for the rest)
    assert "prompt: A café at dawn, ???" in r.stdout, r.stdout[-3000:]
    assert "model: gemini-3.1-flash-image" in r.stdout
    key = os.getxattr(p, "user.bananafs.key").decode()
    chunks = png_chunks(png)
    exact = {k: v for t, k, v in chunks if t == "iTXt"}
    assert exact["prompt"] == "A café at dawn, 日の出"		# iTXt keeps the UTF-8
    assert {"tEXt", "iTXt"} == {t for t, k, _v in chunks if k == "prompt"}
    params = [v for t, k, v in chunks if k == "parameters"]
    assert len(params) == 1				# written once, as AUTOMATIC1111 does
    first, rest = params[0].split("\n", 1)
    assert first == "A café at dawn, 日の出"
    assert rest.startswith("Model: gemini-3.1-flash-image, Size: 512, Aspect: 16:9, Route: standard, "
                           "Variant: 2, Key: " + key + ", Inputs: xxh3-128:"), rest
    assert exact["inputs"].startswith("xxh3-128:") and len(exact["inputs"]) == 9 + 32
    assert exact["variant"] == "2"


def error_of(prompt):
    wait_done(prompt)
    with open(prompt[:-4] + ".error") as f:
        return f.read()


def test_folder_conf_error_names_its_own_line(mount_factory, emulator):
    m = mount_factory(FAST)
    d = m.path(*PRO2K, "proj")
    os.mkdir(d)
    write(os.path.join(d, ".bananafs.conf"), "route = batch\naspect = 1:8\n")
    write(os.path.join(d, "a.txt"), "x")
    e = error_of(os.path.join(d, "a.txt"))
    assert "proj/.bananafs.conf:2: model gemini-3-pro-image does not take aspect '1:8'" in e, e
    write(os.path.join(d, ".bananafs.conf"), "[bananafs]\nroute = batch\n")
    write(os.path.join(d, "b.txt"), "y")
    e = error_of(os.path.join(d, "b.txt"))
    assert "proj/.bananafs.conf:1: sections are not used here" in e, e
    assert emulator.requests() == []


def test_budget_error_names_where_the_limit_was_set(mount_factory, emulator):
    m = mount_factory(FAST + "budget_daily_usd = 0.10\n")
    p = m.path(*PRO2K, "dear.txt")
    write(p, "too dear for today")
    e = error_of(p)
    assert "budget_daily_usd, set in %s:5" % m.config in e, e
    assert "wait for tomorrow" in e and "raise budget_daily_usd where it was set" in e
    m.unmount()
    m = mount_factory(FAST, opts=("-o", "budget_total_usd=0.10"))
    p = m.path(*PRO2K, "dear2.txt")
    write(p, "too dear in total")
    e = error_of(p)
    assert "budget_total_usd, set with -o budget_total_usd=... when mounting" in e, e
    assert "never restarts" in e
    assert emulator.requests() == []


def test_402_and_503_say_what_to_do(mount_factory, emulator):
    m = mount_factory(FAST)
    emulator.fault("402", 1)
    p = m.path(*PRO2K, "credit.txt")
    write(p, "no credit left")
    e = error_of(p)
    assert "prepaid credit is used up" in e and "does not reset daily" in e, e
    emulator.fault("503", 10)
    p = m.path(*PRO2K, "busy.txt")
    write(p, "the server is busy")
    e = error_of(p)
    assert "'bananactl run PATH' sends it again" in e, e


def test_oversized_prompt_is_reported_at_its_real_size(mount_factory, emulator):
    m = mount_factory(FAST)
    p = m.path(*PRO2K, "huge.txt")
    write(p, "a" * 40001)
    e = error_of(p)
    assert "prompt is 40,001 bytes; the limit is 32 KiB (32,768 bytes)" in e, e


def test_prices_explain_marks_and_date_user_rows(mount_factory, emulator):
    m = mount_factory(FAST + "[prices]\ngemini-3-pro-image.2K.gateway = 0.15\n")
    day = time.strftime("%Y-%m-%d", time.localtime(os.stat(m.config).st_mtime))
    r = ctl(m, "prices")
    assert r.returncode == 0, r.stderr
    assert "[3P] = from third parties" in r.stdout and "[INF] = inferred" in r.stdout
    row = [l for l in r.stdout.splitlines()
           if l.startswith("gemini-3-pro-image ") and " 2K " in l and " gateway " in l][0]
    assert "0.1500" in row
    assert day in row and "2026-07-01" not in row, row	# the user's date, not the table's
