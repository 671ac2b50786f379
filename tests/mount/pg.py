"""A throwaway PostgreSQL cluster for team-mode tests.

`PgCluster` runs Debian's own `initdb` and `pg_ctl` as an unprivileged user
(the tests run as root, and PostgreSQL refuses to run as root), with the
socket in a temp folder and no TCP at all.  Local connections need a
password (scram-sha-256), so the daemons under test read it from a
PGPASSFILE, as a team's machines would from ~/.pgpass.
"""
import glob
import os
import pwd
import shutil
import subprocess
import tempfile

import pytest

USER = "team"
PASSWORD = "pg-test-password-not-a-secret"
RUN_AS = "nobody"


def pg_bin(name):
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        pytest.skip(f"{name} not installed (make test-deps installs postgresql)")
    return found[-1]


class PgCluster:
    def __init__(self):
        self.top = tempfile.mkdtemp(prefix="bananafs-pg-")
        os.chmod(self.top, 0o755)
        self.data = os.path.join(self.top, "data")
        self.sock = os.path.join(self.top, "sock")
        self.log = os.path.join(self.top, "pg.log")
        pw = pwd.getpwnam(RUN_AS)
        for d in (self.data, self.sock):
            os.makedirs(d, mode=0o700)
            os.chown(d, pw.pw_uid, pw.pw_gid)
        open(self.log, "w").close()
        os.chown(self.log, pw.pw_uid, pw.pw_gid)
        pwfile = os.path.join(self.sock, "pw")
        with open(pwfile, "w") as f:
            f.write(PASSWORD + "\n")
        os.chown(pwfile, pw.pw_uid, pw.pw_gid)
        self.as_user([pg_bin("initdb"), "-D", self.data, "-U", USER, "--pwfile", pwfile,
                      "--auth-local=scram-sha-256", "--auth-host=reject", "-E", "UTF8",
                      "--no-sync"], quiet=True)
        os.unlink(pwfile)
        # Where the daemons under test find the password: never in team_db.
        self.passfile = os.path.join(self.top, "pgpass")
        with open(self.passfile, "w") as f:
            f.write(f"*:*:*:{USER}:{PASSWORD}\n")
        os.chmod(self.passfile, 0o600)
        self.conninfo = f"host={self.sock} dbname=postgres user={USER}"
        self.start()
        self.admin = self.conninfo

    def as_user(self, args, quiet=False):
        r = subprocess.run(["runuser", "-u", RUN_AS, "--", *args], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {r.stdout}{r.stderr}")
        return r

    def start(self):
        self.as_user([pg_bin("pg_ctl"), "-D", self.data, "-l", self.log, "-w", "-o",
                      f"-c listen_addresses='' -c unix_socket_directories='{self.sock}' "
                      "-c fsync=off -c max_connections=60", "start"])

    def stop(self, mode="fast"):
        self.as_user([pg_bin("pg_ctl"), "-D", self.data, "-m", mode, "-w", "stop"])

    def psql(self, sql, db=None):
        """Runs sql as the team user; returns stdout (unaligned, tuples only)."""
        env = dict(os.environ, PGPASSFILE=self.passfile)
        r = subprocess.run(["psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", db or self.conninfo,
                            "-c", sql], capture_output=True, text=True, env=env)
        if r.returncode != 0:
            raise RuntimeError(f"psql failed: {r.stderr}")
        return r.stdout.strip()

    def running(self):
        r = subprocess.run(["runuser", "-u", RUN_AS, "--", pg_bin("pg_ctl"), "-D", self.data, "status"],
                           capture_output=True)
        return r.returncode == 0

    def env(self):
        return {"PGPASSFILE": self.passfile}

    def destroy(self):
        try:
            self.stop("immediate")
        except RuntimeError:
            pass
        shutil.rmtree(self.top, ignore_errors=True)


@pytest.fixture(scope="module")
def pg_cluster():
    c = PgCluster()
    yield c
    c.destroy()


_dbs = [0]


@pytest.fixture
def pg(pg_cluster):
    """The module's cluster with a fresh, empty database as pg.conninfo."""
    _dbs[0] += 1
    name = f"team{_dbs[0]}"
    pg_cluster.psql(f"CREATE DATABASE {name}", db=pg_cluster.admin)
    pg_cluster.conninfo = f"host={pg_cluster.sock} dbname={name} user={USER}"
    if not pg_cluster.running():
        pg_cluster.start()
    yield pg_cluster
    if not pg_cluster.running():
        pg_cluster.start()
