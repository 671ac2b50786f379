"""allow_other: a root daemon serving other users (DESIGN.md 6 and 9)."""
import os
import pwd
import subprocess

import pytest

from conftest import wait_done


def as_nobody(cmd):
    return subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                           "sh", "-c", cmd], capture_output=True, text=True, timeout=30)


@pytest.fixture
def shared(mount_factory, workdir):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    try:
        pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user nobody")
    os.chmod(workdir, 0o755)
    return mount_factory(opts=("-o", "allow_other"))


def test_private_unless_allow_other(mount, workdir):
    os.chmod(workdir, 0o755)
    r = as_nobody(f"ls {workdir}")
    assert r.returncode == 0, "the test folder itself must be open to nobody"
    r = as_nobody(f"ls {mount.mnt}")
    assert r.returncode != 0


def test_other_users_create_as_themselves(shared):
    d = shared.path("gemini-3.1-flash-image", "512")
    os.chmod(d, 0o1777)
    r = as_nobody(f"echo 'a shared fox' > {d}/shared.txt && mkdir {d}/nobodys")
    assert r.returncode == 0, r.stderr
    nobody = pwd.getpwnam("nobody").pw_uid
    assert os.stat(os.path.join(d, "shared.txt")).st_uid == nobody
    assert os.stat(os.path.join(d, "nobodys")).st_uid == nobody
    assert wait_done(os.path.join(d, "shared.txt")) == "done"


def test_permissions_are_checked(shared):
    d = shared.path("gemini-3.1-flash-image", "512")
    with open(os.path.join(d, "secret.dat"), "w") as f:
        f.write("root only")
    os.chmod(os.path.join(d, "secret.dat"), 0o600)
    r = as_nobody(f"cat {d}/secret.dat")
    assert r.returncode != 0 and "Permission denied" in r.stderr
    r = as_nobody(f"touch {d}/not-allowed.dat")
    assert r.returncode != 0


def test_run_and_cancel_only_for_who_may_write_the_prompt(shared):
    from conftest import BUILD
    ctl = os.path.join(BUILD, "bananactl")
    d = shared.path("gemini-3.1-flash-image", "512")
    os.chmod(d, 0o1777)
    mine = os.path.join(d, "roots.txt")
    with open(mine, "w") as f:
        f.write("root's prompt")
    os.chmod(mine, 0o644)
    assert wait_done(mine) == "done"
    os.unlink(os.path.join(d, "roots.png"))
    r = as_nobody(f"{ctl} run {mine}")
    assert r.returncode == 1 and "may not write this prompt" in r.stderr, r.stderr
    r = as_nobody(f"{ctl} cancel {mine}")
    assert r.returncode == 1 and "may not write" in r.stderr, r.stderr
    r = as_nobody(f"echo 'a fox of nobody' > {d}/theirs.txt")
    assert r.returncode == 0, r.stderr
    assert wait_done(os.path.join(d, "theirs.txt")) == "done"
    os.unlink(os.path.join(d, "theirs.png"))
    r = as_nobody(f"{ctl} run {d}/theirs.txt")
    assert r.returncode == 0, r.stderr
    assert wait_done(os.path.join(d, "theirs.txt")) in ("done", "cached")
