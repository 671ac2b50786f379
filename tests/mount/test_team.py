"""Team mode: several mounts ("machines") share one PostgreSQL (DESIGN.md 8b).

Each machine is a real bananafs daemon with its own store and mount point;
they share one emulator (one Google project) and one throwaway PostgreSQL
cluster (tests/mount/pg.py).  Leases are short (team_lease_s) so a dead
machine's work is taken over quickly.
"""
import os
import subprocess

import pytest

from conftest import KEY, Mount, binary, is_mounted
from pg import pg, pg_cluster  # noqa: F401 (fixtures)

LEASE = 2


def team_config(pg, extra=""):
    return f"[bananafs]\nteam_db = {pg.conninfo}\nteam_lease_s = {LEASE}\n{extra}"


@pytest.fixture
def machines(emulator, workdir, pg):
    """machines(name, extra="", env=None) -> Mount: one more machine of the team."""
    made = []

    def make(name, extra="", env=None):
        d = os.path.join(workdir, name)
        os.makedirs(os.path.join(d, "mnt"))
        e = pg.env()
        e.update(env or {})
        m = Mount(emulator.url, os.path.join(d, "store"), os.path.join(d, "mnt"),
                  team_config(pg, extra), env=e)
        made.append(m)
        return m

    yield make
    for m in made:
        if m.proc.poll() is None or not m.err.closed:
            m.unmount()


def start_fails(workdir, emulator, config_text, env):
    """Runs bananafs that must refuse to mount; returns its stderr."""
    mnt = os.path.join(workdir, "mnt")
    cfg = os.path.join(workdir, "config")
    with open(cfg, "w") as f:
        f.write(config_text)
    e = dict(os.environ, GEMINI_API_KEY=KEY)
    e.pop("GOOGLE_API_KEY", None)
    e.update(env)
    r = subprocess.run([binary("bananafs"), "-f", "--store", os.path.join(workdir, "store"),
                        "--endpoint", emulator.url, "--config", cfg, mnt],
                       capture_output=True, text=True, env=e, timeout=30)
    assert r.returncode != 0
    assert not is_mounted(mnt)
    return r.stderr


def test_schema_is_created_and_versioned_on_first_mount(machines, pg):
    machines("a")
    assert pg.psql("SELECT version FROM bananafs.schema_version") == "1"
    machines("b")		# the second machine finds it and agrees
    assert pg.psql("SELECT count(*) FROM bananafs.schema_version") == "1"


def test_unreachable_database_at_mount_is_a_clear_error(workdir, emulator, pg, tmp_path):
    cfg = f"[bananafs]\nteam_db = host={tmp_path} dbname=nothing user=team\n"
    err = start_fails(workdir, emulator, cfg, pg.env())
    assert "cannot connect to the team database" in err


def test_wrong_password_is_a_clear_error(workdir, emulator, pg, tmp_path):
    bad = tmp_path / "pgpass"
    bad.write_text("*:*:*:team:not-the-password\n")
    bad.chmod(0o600)
    err = start_fails(workdir, emulator, team_config(pg), {"PGPASSFILE": str(bad)})
    assert "refused the password" in err and "pgpass" in err.lower()
    err = start_fails(workdir, emulator, team_config(pg), {"PGPASSFILE": str(tmp_path / "none")})
    assert "password" in err and "pgpass" in err.lower()


def test_password_in_team_db_is_refused(workdir, emulator, pg):
    cfg = f"[bananafs]\nteam_db = {pg.conninfo} password=sekrit-value\n"
    err = start_fails(workdir, emulator, cfg, pg.env())
    assert "pgpass" in err.lower() and "sekrit-value" not in err


def test_unknown_schema_version_is_refused(machines, workdir, emulator, pg):
    a = machines("a")
    a.unmount()
    pg.psql("UPDATE bananafs.schema_version SET version = 99")
    err = start_fails(workdir, emulator, team_config(pg), pg.env())
    assert "schema version 99" in err and "upgrade bananafs" in err


def test_cache_only_mounts_without_the_database(machines, tmp_path):
    m = machines("a", f"team_db = host={tmp_path} dbname=nothing user=team\n"
                      "team_offline = cache-only\n")
    assert "cache-only" in m.log()


def ctl(*args, env=None):
    e = dict(os.environ, GEMINI_API_KEY=KEY)
    e.update(env or {})
    return subprocess.run([binary("bananactl"), *args], capture_output=True, text=True, env=e,
                          timeout=60)


def test_doctor_checks_the_team_database(machines, pg, tmp_path):
    a = machines("a")
    r = ctl("-m", a.mnt, "doctor", env=pg.env())
    assert "ok   team database reachable, password accepted, schema version 1" in r.stdout
    bad = tmp_path / "pgpass"
    bad.write_text("*:*:*:team:not-the-password\n")
    bad.chmod(0o600)
    r = ctl("-m", a.mnt, "doctor", env={"PGPASSFILE": str(bad)})
    assert r.returncode == 1
    assert "FAIL team_db: the server refused the password" in r.stdout
