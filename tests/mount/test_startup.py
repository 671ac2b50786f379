"""Start-up: every option and the store are checked before mounting; failures say why."""
import os
import subprocess

import pytest

from conftest import KEY, binary, is_mounted


def run(args, env_extra=None, key=KEY):
    env = dict(os.environ)
    env.pop("GOOGLE_API_KEY", None)
    env.pop("GEMINI_API_KEY", None)
    if key:
        env["GEMINI_API_KEY"] = key
    if env_extra:
        env.update(env_extra)
    return subprocess.run([binary("bananafs"), *args], capture_output=True, text=True,
                          env=env, timeout=30)


@pytest.fixture
def dirs(tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    cfg = tmp_path / "config"
    cfg.write_text("")
    return str(tmp_path / "store"), str(mnt), str(cfg)


def test_help_and_version():
    r = run(["--help"])
    assert r.returncode == 0 and "usage: bananafs" in r.stdout and "--endpoint" in r.stdout
    r = run(["--version"])
    assert r.returncode == 0 and r.stdout.startswith("bananafs ")


@pytest.mark.parametrize("args,words", [
    (["--endpoint", "http://example.com"], "loopback"),
    (["-o", "max_inflight=lots"], "max_inflight"),
    (["-o", "no_such_key=1"], "no_such_key"),
    (["--bogus"], "--bogus"),
])
def test_bad_options_fail_before_mounting(dirs, args, words):
    store, mnt, cfg = dirs
    r = run(["-f", "--store", store, "--config", cfg, *args, mnt])
    assert r.returncode != 0
    assert words in r.stderr
    assert not is_mounted(mnt)


def test_no_key_says_how_to_get_one(dirs):
    store, mnt, cfg = dirs
    r = run(["-f", "--store", store, "--config", cfg, mnt], key=None)
    assert r.returncode != 0
    assert "GEMINI_API_KEY" in r.stderr and "make demo" in r.stderr
    assert not is_mounted(mnt)


def test_key_on_command_line_is_refused(dirs):
    store, mnt, cfg = dirs
    r = run(["-f", "--store", store, "--config", cfg, "-o", "api_key=AIzaSyTHISISNOTAKEY", mnt])
    assert r.returncode != 0
    assert "AIzaSyTHISISNOTAKEY" not in r.stderr
    assert not is_mounted(mnt)


def test_bad_config_line_names_file_and_line(dirs):
    store, mnt, cfg = dirs
    with open(cfg, "w") as f:
        f.write("[bananafs]\nmax_inflight = 2\nrpm = -5\n")
    r = run(["-f", "--store", store, "--config", cfg, mnt])
    assert r.returncode != 0
    assert f"{cfg}:3" in r.stderr
    assert not is_mounted(mnt)


def test_key_file_readable_by_others_is_refused(dirs, tmp_path):
    store, mnt, cfg = dirs
    keyfile = tmp_path / "key"
    keyfile.write_text("emulator-key-from-file-0123\n")
    keyfile.chmod(0o644)
    with open(cfg, "w") as f:
        f.write(f"[bananafs]\napi_key_file = {keyfile}\n")
    r = run(["-f", "--store", store, "--config", cfg, mnt], key=None)
    assert r.returncode != 0
    assert "600" in r.stderr
    assert "emulator-key-from-file" not in r.stderr


def test_missing_mountpoint(dirs):
    store, mnt, cfg = dirs
    r = run(["-f", "--store", store, "--config", cfg, mnt + "/nope"])
    assert r.returncode != 0 and "nope" in r.stderr


def test_unusable_store(dirs, tmp_path):
    _, mnt, cfg = dirs
    store = tmp_path / "shared-store"
    store.mkdir()
    store.chmod(0o777)
    r = run(["-f", "--store", str(store), "--config", cfg, mnt])
    assert r.returncode != 0 and "store" in r.stderr
    assert not is_mounted(mnt)


def test_store_is_private(mount):
    assert os.stat(mount.store).st_mode & 0o777 == 0o700
