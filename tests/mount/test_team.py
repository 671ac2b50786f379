"""Team mode: several mounts ("machines") share one PostgreSQL (DESIGN.md 8b).

Each machine is a real bananafs daemon with its own store and mount point;
they share one emulator (one Google project) and one throwaway PostgreSQL
cluster (tests/mount/pg.py).  Leases are short (team_lease_s) so a dead
machine's work is taken over quickly.
"""
import os
import shutil
import subprocess
import threading
import time

import pytest

from conftest import KEY, Emulator, Mount, binary, is_mounted, ledger, png_size, status, wait_done, wait_for
from pg import pg, pg_cluster  # noqa: F401 (fixtures)

LEASE = 2
PRO2K = ("gemini-3-pro-image", "2K")
FLASH512 = ("gemini-3.1-flash-image", "512")


@pytest.fixture
def emulator():
    """Answers take 1.5 s, so requests of two machines overlap; a batch takes 8 s, several leases."""
    emu = Emulator(["--latency", "1500", "--batch-delay", "8"])
    yield emu
    emu.stop()


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def write_at_once(paths, text):
    ts = [threading.Thread(target=write, args=(p, text)) for p in paths]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


def team_config(pg, extra=""):
    return f"[bananafs]\nteam_db = {pg.conninfo}\nteam_lease_s = {LEASE}\n{extra}"


@pytest.fixture
def machines(emulator, workdir, pg):
    """machines(name, extra="", env=None) -> Mount: one more machine of the team (or the same
    machine mounted again, after kill9)."""
    made = []

    def make(name, extra="", env=None):
        d = os.path.join(workdir, name)
        os.makedirs(os.path.join(d, "mnt"), exist_ok=True)
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


SCHEMA = "3"


def test_schema_is_created_and_versioned_on_first_mount(machines, pg):
    machines("a")
    assert pg.psql("SELECT version FROM bananafs.schema_version") == SCHEMA
    machines("b")		# the second machine finds it and agrees
    assert pg.psql("SELECT count(*) FROM bananafs.schema_version") == "1"


def as_version_2(pg):
    """Turns the schema back into what bananafs made at version 2: ledger rows unique by
    (request_id, outcome, attempt), without event_id or day."""
    pg.psql("ALTER TABLE bananafs.ledger DROP CONSTRAINT ledger_pkey; "
            "ALTER TABLE bananafs.ledger DROP COLUMN event_id, DROP COLUMN day; "
            "ALTER TABLE bananafs.ledger ADD PRIMARY KEY (request_id, outcome, attempt); "
            "UPDATE bananafs.schema_version SET version = 2")


def column_exists(pg, table, column):
    return pg.psql("SELECT count(*) FROM information_schema.columns WHERE table_schema = 'bananafs' "
                   f"AND table_name = '{table}' AND column_name = '{column}'") == "1"


def test_schema_version_1_is_upgraded(machines, pg):
    a = machines("a")
    a.unmount()
    as_version_2(pg)
    pg.psql("ALTER TABLE bananafs.claims DROP COLUMN interaction; UPDATE bananafs.schema_version "
            "SET version = 1")
    machines("b")
    assert pg.psql("SELECT version FROM bananafs.schema_version") == SCHEMA
    assert column_exists(pg, "claims", "interaction") and column_exists(pg, "ledger", "event_id")


def test_schema_version_2_is_upgraded_keeping_its_rows(machines, emulator, pg):
    """A team database of version 2 with rows in it: bananactl says what to do, the next
    mount upgrades it, and the rows written before count as they did."""
    a, b = machines("a"), machines("b")
    pa = a.path(*PRO2K, "old.txt")
    write(pa, "made while the schema was version 2")
    assert wait_done(pa) == "done"
    a.unmount()
    as_version_2(pg)
    r = ctl("-m", b.mnt, "cost", "--team", env=pg.env())
    assert r.returncode == 1 and "schema version 2, older than this bananafs's (3)" in r.stderr \
        and "mount it once" in r.stderr
    r = ctl("-m", b.mnt, "doctor", env=pg.env())
    assert "schema version 2: the next mount of this bananafs upgrades it to 3" in r.stdout
    a = machines("a")
    assert pg.psql("SELECT version FROM bananafs.schema_version") == SCHEMA
    assert pg.psql("SELECT count(*) FROM bananafs.ledger WHERE event_id = '' AND day IS NOT NULL") \
        == pg.psql("SELECT count(*) FROM bananafs.ledger") == "2"	# its sent and ok rows
    total, rows = team_cost_total(a, pg)
    assert rows == 1 and total == pytest.approx(emulator.stats()["billed_usd"], abs=5e-5)
    assert team_spent(a, pg) == total
    # b, a mount that started at version 2 and still runs, writes its rows as it did, and
    # they count (its later mounts are refused: see test_unknown_schema_version_is_refused)
    pg.psql("INSERT INTO bananafs.ledger (request_id, outcome, attempt, time, mount, key, model, "
            "route, size, cost_usd, billed, line) VALUES ('b-old/job/key', 'ok', 1, now(), 'b-old', "
            "'key', 'gemini-3-pro-image', 'standard', '2K', 0.134, true, '{}') ON CONFLICT DO NOTHING")
    assert team_cost_total(a, pg)[1] == 2 and team_spent(a, pg) == team_cost_total(a, pg)[0]


def readme_team_config():
    """The README's settings for a team, as a user copies them."""
    with open(os.path.join(os.path.dirname(__file__), "..", "..", "README.md")) as f:
        text = f.read()
    section = text[text.index("## A team on one Google project"):]
    start = section.index("```ini\n") + 7
    return section[start:section.index("\n```", start)] + "\n"


def test_the_readme_team_settings_mount(workdir, emulator, pg):
    """The README's block, its example server replaced by the test's, mounts in team mode."""
    text = readme_team_config()
    assert "host=db.example.org dbname=bananafs user=alice" in text
    text = text.replace("host=db.example.org dbname=bananafs user=alice", pg.conninfo)
    d = os.path.join(workdir, "readme")
    os.makedirs(os.path.join(d, "mnt"))
    m = Mount(emulator.url, os.path.join(d, "store"), os.path.join(d, "mnt"), text, env=pg.env())
    try:
        assert pg.psql("SELECT version FROM bananafs.schema_version") == SCHEMA
    finally:
        m.unmount()


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
    assert "ok   team database reachable, password accepted, schema version " + SCHEMA in r.stdout
    bad = tmp_path / "pgpass"
    bad.write_text("*:*:*:team:not-the-password\n")
    bad.chmod(0o600)
    r = ctl("-m", a.mnt, "doctor", env={"PGPASSFILE": str(bad)})
    assert r.returncode == 1
    assert "FAIL team_db: the server refused the password" in r.stdout
    # a schema this bananafs does not know: what it is, and what to do
    pg.psql("UPDATE bananafs.schema_version SET version = 99")
    r = ctl("-m", a.mnt, "doctor", env=pg.env())
    assert r.returncode == 1
    assert f"FAIL team database has schema version 99, newer than this bananafs knows ({SCHEMA})" \
        in r.stdout and "next: upgrade bananafs on this machine" in r.stdout


def test_same_prompt_on_two_machines_is_paid_once(machines, emulator, pg):
    a, b = machines("a"), machines("b")
    pa, pb = a.path(*PRO2K, "fox.txt"), b.path(*PRO2K, "fox.txt")
    write_at_once([pa, pb], "a red fox in the snow")
    assert {wait_done(pa), wait_done(pb)} <= {"done", "cached"}
    assert emulator.stats()["requests"] == 1
    assert png_size(a.path(*PRO2K, "fox.png")) == (2048, 2048)
    with open(a.path(*PRO2K, "fox.png"), "rb") as fa, open(b.path(*PRO2K, "fox.png"), "rb") as fb:
        assert fa.read() == fb.read()
    # Later, a third machine with an empty store: a cache hit from the team, nothing sent.
    c = machines("c")
    pc = c.path(*PRO2K, "fox.txt")
    write(pc, "a red fox in the snow")
    assert wait_done(pc) in ("done", "cached")
    assert emulator.stats()["requests"] == 1
    assert png_size(c.path(*PRO2K, "fox.png")) == (2048, 2048)
    billed = float(pg.psql("SELECT coalesce(sum(cost_usd), 0) FROM bananafs.ledger WHERE billed"))
    assert round(billed, 9) == emulator.stats()["billed_usd"]
    # bananactl on any machine: the team's spending and the team's line in status.
    r = ctl("-m", c.mnt, "cost", "--team", env=pg.env())
    assert r.returncode == 0, r.stderr
    total = [l for l in r.stdout.splitlines() if l.startswith("total")][0].split()
    assert float(total[1]) == pytest.approx(emulator.stats()["billed_usd"], abs=5e-5) and total[2] == "1"
    assert "simulated: %s of it (1 rows)" % total[1] in r.stdout	# the emulator's spend, as locally
    # cost without --team: c's own lines (a cache hit, nothing billed), and the team's beside them
    r = ctl("-m", c.mnt, "cost", env=pg.env())
    assert r.returncode == 0, r.stderr
    assert [l for l in r.stdout.splitlines() if l.startswith("total")][0].split()[1:] == ["0.0000", "0"]
    assert "team: %s billed by every mount of the team (1 row)" % total[1] in r.stdout
    today = time.strftime("%Y-%m-%d", time.gmtime())
    for since, rows in ((today, "1"), ("2099-01-01", "0")):
        r = ctl("-m", c.mnt, "cost", "--team", "--since", since, env=pg.env())
        assert [l for l in r.stdout.splitlines() if l.startswith("total")][0].split()[2] == rows
    r = ctl("-m", c.mnt, "status", env=pg.env())
    assert r.returncode == 0, r.stderr
    assert "team budget" in r.stdout
    spent = "$%.4f today" % emulator.stats()["billed_usd"]     # the settled cost, tokens and all
    assert "team: 0 requests in flight on 0 mounts; spent " + spent in r.stdout


def test_team_objects_in_a_shared_folder(machines, emulator, pg, workdir):
    """team_objects = PATH: the bytes go to a folder both machines mount, the database keeps
    the row only; the other machine's hit is read from the folder."""
    shared = os.path.join(workdir, "shared-objects")
    os.makedirs(shared)
    a = machines("a", f"team_objects = {shared}\n")
    b = machines("b", f"team_objects = {shared}\n")
    pa, pb = a.path(*PRO2K, "owl.txt"), b.path(*PRO2K, "owl.txt")
    write(pa, "an owl on a fence post")
    assert wait_done(pa) == "done"
    key = pg.psql("SELECT key FROM bananafs.objects")
    assert pg.psql("SELECT count(*) FROM bananafs.objects WHERE orig IS NULL AND pub IS NULL") == "1"
    names = sorted(os.listdir(shared))
    assert names and all(n.startswith(key) for n in names), names
    write(pb, "an owl on a fence post")
    assert wait_done(pb) in ("done", "cached")
    assert emulator.stats()["requests"] == 1
    with open(pa[:-4] + ".png", "rb") as fa, open(pb[:-4] + ".png", "rb") as fb:
        assert fa.read() == fb.read()
    assert [r["outcome"] for r in ledger(b.store)] == ["cached"]
    # A folder the daemon cannot write is refused at mount, naming it.
    err = start_fails(workdir, emulator, team_config(pg, f"team_objects = {shared}/missing\n"), pg.env())
    assert f"team_objects {shared}/missing" in err


def test_team_budget_holds_across_machines(machines, emulator, pg):
    a, b = machines("a", "budget_daily_usd = 0.30\n"), machines("b", "budget_daily_usd = 0.30\n")
    prompts = [(a if i % 2 else b).path(*PRO2K, f"p{i}.txt") for i in range(5)]
    ts = [threading.Thread(target=write, args=(p, f"budget prompt {i}")) for i, p in enumerate(prompts)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    states = [wait_done(p, 40) for p in prompts]
    assert states.count("done") == 2 and states.count("failed") == 3
    assert emulator.stats()["requests"] == 2
    for p in prompts:
        if os.path.exists(p[:-4] + ".error"):
            with open(p[:-4] + ".error") as f:
                assert "daily limit" in f.read()


def team_billed(pg):
    return round(float(pg.psql("SELECT coalesce(sum(cost_usd), 0) FROM bananafs.ledger WHERE billed")), 9)


def unknown_rows(pg):
    return int(pg.psql("SELECT count(*) FROM bananafs.ledger WHERE outcome = 'unknown'"))


def creates(emulator):
    return emulator.stats()["by_endpoint"].get("interactions", 0)


def team_cost_total(m, pg):
    """`bananactl cost --team`: (total USD, printed to 1/100 cent, and billed rows)."""
    r = ctl("-m", m.mnt, "cost", "--team", env=pg.env())
    assert r.returncode == 0, r.stderr
    total = [l for l in r.stdout.splitlines() if l.startswith("total")][0].split()
    return float(total[1]), int(total[2])


def test_dead_machine_plain_request_is_taken_over_and_recorded_unknown(machines, emulator, pg):
    """Without background requests a dead machine's request leaves nothing to poll: the
    other machine pays again after the lease, and the possible double charge is an
    "unknown" row."""
    a, b = machines("a", "durable_requests = no\n"), machines("b")
    emulator.fault("slow", 1, delay_ms=5000)	# a's request hangs until a dies
    pa, pb = a.path(*PRO2K, "job.txt"), b.path(*PRO2K, "job.txt")
    write(pa, "the job a dead machine held")
    wait_for(lambda: emulator.stats()["requests"] == 1, 10, "a's request")
    write(pb, "the job a dead machine held")
    time.sleep(0.5)
    assert emulator.stats()["requests"] == 1, "b paid while a's claim was alive"
    a.kill9()
    t0 = time.time()
    assert wait_done(pb, 30) == "done"
    assert time.time() - t0 >= LEASE * 0.5, "taken over before the lease could end"
    assert emulator.stats()["requests"] == 2
    assert png_size(b.path(*PRO2K, "job.png")) == (2048, 2048)
    # The dead machine's request may have been billed: the ledger says so.
    assert pg.psql("SELECT count(*) FROM bananafs.ledger WHERE outcome = 'unknown' AND billed") == "1"
    # It was (the emulator bills a request whose caller died): the team's rows say as much.
    wait_for(lambda: emulator.stats()["generations"] == 2, 15, "the dead machine's request billed")
    # the unknown row holds the per-image estimate (its answer's usage was never seen), and
    # says so as a local unknown line does; it is its own event, derived from the "sent" row's
    assert pg.psql("SELECT u.line->>'cost_basis', u.line->>'event_id' = s.event_id || '-unknown' "
                   "FROM bananafs.ledger u JOIN bananafs.ledger s USING (request_id, attempt) "
                   "WHERE u.outcome = 'unknown' AND s.outcome = 'sent'") == "per-image|t"
    assert team_cost_total(b, pg) == (pytest.approx(emulator.stats()["billed_usd"], abs=0.05 * 0.134), 2)
    # The dead machine mounted again writes the same "unknown" from its own ledger: still one
    # row, counted once by cost --team and by the team's budget alike.
    a = machines("a", "durable_requests = no\n")
    assert [r["outcome"] for r in ledger(a.store)].count("unknown") == 1
    assert unknown_rows(pg) == 1
    assert team_cost_total(a, pg) == (pytest.approx(emulator.stats()["billed_usd"], abs=0.05 * 0.134), 2)
    assert team_spent(a, pg) == team_cost_total(a, pg)[0]


def team_spent(m, pg):
    """The team's spending today as `bananactl status` shows it (what its budget counts)."""
    r = ctl("-m", m.mnt, "status", env=pg.env())
    assert r.returncode == 0, r.stderr
    line = [l for l in r.stdout.splitlines() if l.startswith("team: ")][0]
    return float(line.split("spent $")[1].split()[0])


def live_reservations(pg):
    return int(pg.psql("SELECT count(*) FROM bananafs.reservations WHERE NOT settled AND expires > now()"))


def test_an_unknown_charge_a_restart_records_counts_once_in_the_team_budget(machines, emulator, pg):
    """A plain request is on the wire when its machine dies, and its prompt is gone when the
    machine mounts again, so that machine does not take its claim back.  The "unknown" line
    the next run writes from its local ledger is counted by the team's budget exactly as
    `cost --team` counts it; a machine that takes the dead claim over later counts nothing
    more."""
    cfg = "durable_requests = no\nbudget_daily_usd = 0.30\n"
    a, b = machines("a", cfg), machines("b", cfg)
    emulator.fault("slow", 1, delay_ms=4000)
    text = "a prompt removed while its machine was down"
    pa = a.path(*PRO2K, "gone.txt")
    write(pa, text)
    wait_for(lambda: emulator.stats()["requests"] == 1, 10, "a's request")
    a.kill9()
    os.unlink(os.path.join(a.store, "tree", *PRO2K, "gone.txt"))
    a = machines("a", cfg)
    wait_for(lambda: unknown_rows(pg) == 1, 10, "the restart's unknown row")
    # the dead run's reservation no longer counts (released, or its lease ended)
    wait_for(lambda: live_reservations(pg) == 0, 10, "the dead run's reservation to end")
    total, rows = team_cost_total(a, pg)
    assert rows == 1 and total == pytest.approx(0.134, abs=1e-4)
    assert team_spent(a, pg) == total
    # b writes the same prompt: it takes the dead claim over and pays, recording nothing more.
    pb = b.path(*PRO2K, "gone.txt")
    write(pb, text)
    assert wait_done(pb, 30) == "done"
    assert emulator.stats()["requests"] == 2 and unknown_rows(pg) == 1
    total, rows = team_cost_total(a, pg)
    assert rows == 2 and team_spent(a, pg) == total
    # $0.30 - the unknown $0.134 - b's $0.137 leaves no room for another Pro 2K prompt.
    pn = a.path(*PRO2K, "next.txt")
    write(pn, "after the crash")
    assert wait_done(pn, 30) == "failed"
    with open(pn[:-4] + ".error") as f:
        assert "daily limit" in f.read()
    assert emulator.stats()["requests"] == 2


def test_a_dead_machine_nobody_takes_over_is_recorded_unknown_after_its_lease(machines, emulator, pg):
    """A plain request is on the wire when its machine dies, and nobody writes that prompt
    again: no machine takes its claim over.  When its lease ends, the other machine, doing
    nothing else, records the possibly billed request as one "unknown" row, which `cost
    --team` and the team budget both count.  The dead machine, mounted again later with its
    prompt removed, writes the same "unknown" from its own ledger: still one row."""
    cfg = "durable_requests = no\nbudget_daily_usd = 0.30\n"
    a, b = machines("a", cfg), machines("b", cfg)
    emulator.fault("slow", 1, delay_ms=4000)
    pa = a.path(*PRO2K, "lost.txt")
    write(pa, "a prompt its machine never finished")
    wait_for(lambda: pg.psql("SELECT count(*) FROM bananafs.ledger WHERE outcome = 'sent'") == "1",
             10, "a's request on the wire, its sent row written")
    a.kill9()
    assert unknown_rows(pg) == 0
    wait_for(lambda: unknown_rows(pg) == 1, 15, "b to record the dead machine's request")
    assert pg.psql("SELECT u.billed, u.line->>'event_id' = s.event_id || '-unknown' FROM "
                   "bananafs.ledger u JOIN bananafs.ledger s USING (request_id, attempt) "
                   "WHERE u.outcome = 'unknown' AND s.outcome = 'sent'") == "t|t"
    assert pg.psql("SELECT count(*) FROM bananafs.reservations WHERE NOT settled") == "0"
    total, rows = team_cost_total(b, pg)
    assert rows == 1 and total == pytest.approx(0.134, abs=1e-4)
    assert team_spent(b, pg) == total
    # The budget counts it: $0.30 - the unknown $0.134 leaves room for one Pro 2K prompt, not two.
    p1, p2 = b.path(*PRO2K, "one.txt"), b.path(*PRO2K, "two.txt")
    write(p1, "the first prompt after the crash")
    assert wait_done(p1, 30) == "done"
    write(p2, "the second prompt after the crash")
    assert wait_done(p2, 30) == "failed"
    with open(p2[:-4] + ".error") as f:
        assert "daily limit" in f.read()
    assert emulator.stats()["requests"] == 2
    # The dead machine comes back: its own "unknown" line is the same row.
    os.unlink(os.path.join(a.store, "tree", *PRO2K, "lost.txt"))
    a = machines("a", cfg)
    assert [r["outcome"] for r in ledger(a.store)].count("unknown") == 1
    wait_for(lambda: deferred(a.store) == 0, 10, "a's rows written")
    assert unknown_rows(pg) == 1
    total, rows = team_cost_total(a, pg)
    assert rows == 2 and team_spent(a, pg) == total
    assert emulator.stats()["requests"] == 2


def drop_renewals(pg, mount):
    """As if the renewals of one mount stopped reaching the database (a network partition):
    updates that extend the leases of its claims and reservations do nothing."""
    pg.psql("CREATE FUNCTION public.drop_renewals() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"IF NEW.mount = '{mount}' AND NEW.expires > OLD.expires THEN RETURN NULL; END IF; "
            "RETURN NEW; END $$; "
            "CREATE TRIGGER drop_renewals BEFORE UPDATE ON bananafs.claims FOR EACH ROW "
            "EXECUTE FUNCTION public.drop_renewals(); "
            "CREATE TRIGGER drop_renewals BEFORE UPDATE ON bananafs.reservations FOR EACH ROW "
            "EXECUTE FUNCTION public.drop_renewals()")


def test_a_machine_taken_for_dead_that_answers_after_all_is_counted_once(machines, emulator, pg):
    """A machine's renewals stop reaching the database while its plain request is on the wire:
    after its lease the other machine takes it for dead and records its request as "unknown".
    Then its answer comes and it writes its "ok": the presumed "unknown" row goes, so the team's
    rows, `cost --team` and the team budget count the one paid request once."""
    a, b = machines("a", "durable_requests = no\n"), machines("b")
    emulator.fault("slow", 1, delay_ms=8000)
    pa = a.path(*PRO2K, "alive.txt")
    write(pa, "a prompt whose machine was only cut off")
    wait_for(lambda: pg.psql("SELECT count(*) FROM bananafs.ledger WHERE outcome = 'sent'") == "1",
             10, "a's request on the wire, its sent row written")
    drop_renewals(pg, pg.psql("SELECT mount FROM bananafs.ledger WHERE outcome = 'sent'"))
    wait_for(lambda: unknown_rows(pg) == 1, 15, "b to take a for dead")
    assert wait_done(pa, 30) == "done"
    wait_for(lambda: unknown_rows(pg) == 0, 10, "a's ok to end the presumption")
    st = emulator.stats()
    assert st["requests"] == 1
    wait_for(lambda: team_billed(pg) == st["billed_usd"], 10, "the team's rows == the bill")
    total, rows = team_cost_total(b, pg)
    assert rows == 1 and team_spent(b, pg) == total


def test_two_runs_of_one_store_repeating_an_event_are_two_rows(machines, emulator, pg):
    """A job resumed after a crash repeats its attempts, under the same request id and attempt
    numbers: run 1's attempt 1 timed out (an "unknown" line, billed) and its attempt 2 was on
    the wire when the machine died; run 2 sends attempt 1 again, which times out again, and
    attempt 2 succeeds.  Each line of the local ledger is its own event and its own row, so
    the team's rows, `cost --team` and the team's spending hold every billed line."""
    # attempt 2 is on the wire for timeout_s: the kill lands in it even on a loaded machine
    cfg = ("durable_requests = no\ntimeout_s = 5\nretries = 3\nbackoff_base_s = 0.05\n"
           "backoff_cap_s = 0.2\n")
    a = machines("a", cfg)
    emulator.fault("slow", 3, delay_ms=15000)
    pa = a.path(*PRO2K, "twice.txt")
    write(pa, "a job that runs in two lives of its machine")
    wait_for(lambda: emulator.stats()["requests"] == 2, 20, "a's second attempt")
    a.kill9()
    a = machines("a", cfg)
    assert wait_done(pa, 40) == "done"
    lines = ledger(a.store)
    outcomes = [(r["outcome"], r.get("attempt")) for r in lines]
    assert outcomes.count(("unknown", 1)) == 2 and outcomes.count(("sent", 1)) == 2, outcomes
    assert len({r["event_id"] for r in lines}) == len(lines)
    wait_for(lambda: int(pg.psql("SELECT count(*) FROM bananafs.ledger")) == len(lines), 10,
             "a row for every line")
    local = round(sum(r["cost_usd"] for r in lines if r["billed"]), 9)
    assert team_billed(pg) == local
    total, rows = team_cost_total(a, pg)
    assert rows == sum(1 for r in lines if r["billed"]) == 4
    assert total == pytest.approx(local, abs=5e-5) and team_spent(a, pg) == total


def test_dead_machine_interaction_is_polled_by_the_next_owner(machines, emulator, pg):
    """A dead machine's background interaction id is kept with its claim: the machine that
    takes the claim over polls it, and pays nothing more."""
    a, b = machines("a"), machines("b")
    emulator.fault("slow", 1, delay_ms=6000)	# created at once, ready after 6 s
    pa, pb = a.path(*PRO2K, "job.txt"), b.path(*PRO2K, "job.txt")
    write(pa, "the job a dead machine created")
    wait_for(lambda: pg.psql("SELECT count(*) FROM bananafs.claims WHERE interaction IS NOT NULL")
             == "1", 10, "a's interaction noted with its claim")
    write(pb, "the job a dead machine created")
    time.sleep(0.5)
    a.kill9()
    assert wait_done(pb, 30) == "done"
    assert png_size(b.path(*PRO2K, "job.png")) == (2048, 2048)
    st = emulator.stats()
    assert creates(emulator) == 1 and st["generations"] == 1, "b paid again"
    assert st["by_endpoint"].get("interactions.get", 0) >= 1
    assert unknown_rows(pg) == 0
    assert team_cost_total(b, pg) == (pytest.approx(st["billed_usd"], abs=5e-5), 1)
    assert [r["outcome"] for r in ledger(b.store)].count("polled") == 1


def test_a_live_machine_that_lost_its_claim_leaves_the_interaction_to_the_new_owner(
        machines, emulator, pg):
    """A machine whose claim passed to another (it missed its renewals) stops polling at
    its next poll: the new owner polls the interaction alone, and the first machine waits
    for it.  One create, one billed row, nothing unknown."""
    a, b = machines("a"), machines("b")
    emulator.fault("slow", 1, delay_ms=6000)
    pa, pb = a.path(*PRO2K, "lost.txt"), b.path(*PRO2K, "lost.txt")
    write(pa, "a claim that passes to another machine")
    wait_for(lambda: pg.psql("SELECT count(*) FROM bananafs.claims WHERE interaction IS NOT NULL")
             == "1", 10, "a's interaction noted with its claim")
    write(pb, "a claim that passes to another machine")
    time.sleep(0.5)
    # As if a's renewals had stopped reaching the database: its lease ended, under another name.
    pg.psql("UPDATE bananafs.claims SET expires = now() - interval '1 hour', owner = 'a-lapsed', "
            "mount = 'a-lapsed'")
    # Whoever claims the lapsed key first (b, or a again) polls the one interaction.
    assert wait_done(pb, 30) in ("done", "cached") and wait_done(pa, 30) in ("done", "cached")
    st = emulator.stats()
    assert creates(emulator) == 1 and st["generations"] == 1
    assert unknown_rows(pg) == 0
    assert team_cost_total(b, pg) == (pytest.approx(st["billed_usd"], abs=1e-4), 1)
    outcomes = [r["outcome"] for m in (a, b) for r in ledger(m.store)]
    assert outcomes.count("ok") == 1 and "unknown" not in outcomes, outcomes
    assert png_size(pa[:-4] + ".png") == (2048, 2048) and png_size(pb[:-4] + ".png") == (2048, 2048)


def test_a_claim_that_lapses_while_its_holder_waits_to_send_is_not_paid_again(machines, emulator, pg):
    """A's job owns the key, then waits (here: the settle wait for a copy tool still running)
    just before sending, and its claim lapses meanwhile (its renewals stopped reaching the
    database); b takes the key over and pays for it.  When a's wait ends it looks again
    before sending: the key is no longer its own, so it takes b's image and pays nothing."""
    a, b = machines("a", "settle_s = 8\n"), machines("b")
    pa, pb = a.path(*PRO2K, "late.txt"), b.path(*PRO2K, "late.txt")
    text = "a claim that lapses while its holder waits to send"
    # A copy tool creates the prompt with O_EXCL and is still running: a's job waits for it.
    copier = subprocess.Popen(["/usr/bin/python3", "-c",
                               "import os, sys, time\n"
                               "fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)\n"
                               "os.write(fd, sys.argv[2].encode())\nos.close(fd)\ntime.sleep(60)",
                               pa, text])
    try:
        wait_for(lambda: pg.psql("SELECT count(*) FROM bananafs.slots") == "1", 10,
                 "a's job to own the key and hold a slot, about to send")
        time.sleep(0.5)
        # As if a's renewals had stopped reaching the database: its lease ended.
        pg.psql("UPDATE bananafs.claims SET expires = now() - interval '1 hour', owner = 'a-lapsed', "
                "mount = 'a-lapsed'")
        write(pb, text)
        assert wait_done(pb, 20) == "done"
        assert creates(emulator) == 1
    finally:
        copier.kill()
        copier.wait()
    assert wait_done(pa, 20) in ("done", "cached")
    assert creates(emulator) == 1, "a sent the request b had paid for"
    assert emulator.stats()["generations"] == 1
    assert png_size(pa[:-4] + ".png") == (2048, 2048)


def test_a_claim_whose_end_was_lost_lapses_though_its_machine_lives(machines, emulator, pg):
    """The statement that ends a's claim fails on the server (here the function is gone, as
    when a team member's other bananafs replaced it) and so does its deferred retry: it is
    dropped.  a lives on and renews its rows, but only those its requests still hold, so
    the orphaned claim lapses after the lease, as a dead machine's would, and b's prompt
    for the same key is sent instead of waiting for ever."""
    a, b = machines("a"), machines("b")
    text = "a claim whose end never reached the database"
    pg.psql("ALTER FUNCTION bananafs.claim_done(text, text, boolean) RENAME TO claim_done_gone")
    emulator.fault("403", 1)		# a's request fails: nothing is stored under the key
    pa, pb = a.path(*PRO2K, "orphan.txt"), b.path(*PRO2K, "orphan.txt")
    write(pa, text)
    assert wait_done(pa) == "failed"
    wait_for(lambda: "deferred statement failed and is dropped" in a.log(), 10,
             "a's claim end to be tried again and dropped")
    pg.psql("ALTER FUNCTION bananafs.claim_done_gone(text, text, boolean) RENAME TO claim_done")
    assert pg.psql("SELECT count(*) FROM bananafs.claims") == "1", "a's claim is not orphaned"
    write(pb, text)
    assert wait_done(pb, 6 * LEASE) == "done"
    assert emulator.stats()["generations"] == 1
    assert png_size(b.path(*PRO2K, "orphan.png")) == (2048, 2048)


def test_a_batch_holds_its_keys_for_the_team_while_it_runs(machines, emulator, pg):
    """A batch item's claim is renewed for as long as its batch runs (several leases): the
    same prompt on another machine waits for the batch's image and pays nothing."""
    a = machines("a", "route = batch\nbatch_window_s = 1\nbatch_poll_s = 0.5\n")
    b = machines("b")
    text = "a prompt that waits for another machine's batch"
    pa, pb = a.path(*PRO2K, "batched.txt"), b.path(*PRO2K, "batched.txt")
    write(pa, text)
    wait_for(lambda: emulator.stats()["by_endpoint"].get("batchGenerateContent") == 1, 15,
             "a's batch to be submitted")
    write(pb, text)
    time.sleep(3 * LEASE)		# past a lease not renewed
    assert status(pb) not in ("done", "cached"), "b did not wait for the batch"
    assert wait_done(pa, 30) == "done" and wait_done(pb, 30) in ("done", "cached")
    st = emulator.stats()
    assert st["generations"] == 1 and creates(emulator) == 0, "b paid for a key a's batch held"
    assert png_size(pb[:-4] + ".png") == (2048, 2048)



def test_a_reservation_whose_settlement_was_lost_lapses_though_its_machine_lives(machines, emulator,
                                                                               pg):
    """The settlement of a's reservation fails on the server (a trigger refuses it) and so
    does its deferred retry: it is dropped.  a lives on and renews only the reservations
    its requests still hold, so the orphaned one lapses after the lease and stops holding
    the team's budget (it was renewed for as long as a ran before)."""
    a = machines("a")
    pg.psql("CREATE FUNCTION bananafs.no_settle() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'settlement refused by the test'; END $$")
    pg.psql("CREATE TRIGGER no_settle BEFORE UPDATE ON bananafs.reservations FOR EACH ROW "
            "WHEN (NEW.settled AND NOT OLD.settled) EXECUTE FUNCTION bananafs.no_settle()")
    pa = a.path(*PRO2K, "unsettled.txt")
    write(pa, "a reservation whose settlement never reached the database")
    assert wait_done(pa) == "done"
    wait_for(lambda: "deferred statement failed and is dropped" in a.log(), 10,
             "a's settlement to be tried again and dropped")
    pg.psql("DROP TRIGGER no_settle ON bananafs.reservations")
    live = "SELECT count(*) FROM bananafs.reservations WHERE NOT settled AND expires > now()"
    assert pg.psql("SELECT count(*) FROM bananafs.reservations WHERE NOT settled") == "1"
    wait_for(lambda: pg.psql(live) == "0", 4 * LEASE, "the orphaned reservation to lapse")
    assert a.proc.poll() is None, "a must still be running"



def test_a_long_backlog_of_deferred_statements_does_not_let_live_claims_lapse(machines, emulator,
                                                                            pg):
    """a mounts again with a backlog of deferred statements that takes several leases to
    replay (here slow ones put in its queue).  Its background thread renews the claims its
    requests hold between them, so while it replays, its request keeps its claim: b, writing
    the same prompt, waits for it and pays nothing (b took the claim over and paid again
    when the whole backlog was replayed before the next renewal)."""
    cfg = "durable_requests = no\n"
    a = machines("a", cfg)
    a.unmount()
    import sqlite3
    db = sqlite3.connect(os.path.join(a.store, "state.db"), timeout=5)
    with db:
        db.executemany("INSERT INTO team_deferred(sql, params) VALUES (?, '[]')",
                       [("SELECT pg_sleep(0.5)",)] * 8 * LEASE)
    db.close()
    a, b = machines("a", cfg), machines("b", cfg)
    assert deferred(a.store) > 0, "the backlog is replayed while a works"
    emulator.fault("slow", 1, delay_ms=3 * LEASE * 1000)
    text = "a request made while its machine replays a long backlog"
    pa, pb = a.path(*PRO2K, "backlog.txt"), b.path(*PRO2K, "backlog.txt")
    write(pa, text)
    wait_for(lambda: emulator.stats()["requests"] == 1, 10, "a's request")
    write(pb, text)
    assert wait_done(pa, 30) == "done"
    assert wait_done(pb, 30) == "cached"		# a's image: b paid nothing
    assert emulator.stats()["generations"] == 1
    wait_for(lambda: deferred(a.store) == 0, 20, "a's backlog to be replayed")


def state_rows(store, table):
    """How many rows a table of the store's state.db holds (read-only)."""
    import sqlite3
    db = sqlite3.connect(f"file:{os.path.join(store, 'state.db')}?mode=ro", uri=True, timeout=5)
    try:
        return db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    finally:
        db.close()


def deferred(store):
    return state_rows(store, "team_deferred")


def journaled(store):
    return state_rows(store, "interactions")


def test_kill9_and_remount_records_no_unknown_and_cost_equals_the_bill(machines, emulator, pg):
    """kill -9 with three requests on the wire and a fourth prompt waiting for one of them on
    another machine, then the same machine mounted again: the journaled interactions are
    polled, nothing is paid twice, no row says "unknown", and cost --team == the bill."""
    a, b = machines("a"), machines("b")
    emulator.fault("slow", 3, delay_ms=3000)
    prompts = [a.path(*PRO2K, f"k{i}.txt") for i in range(3)]
    for i, p in enumerate(prompts):
        write(p, f"a scene the crash must not pay twice {i}")
    wait_for(lambda: journaled(a.store) == 3, 15, "three journaled interactions")
    pb = b.path(*PRO2K, "k0.txt")
    write(pb, "a scene the crash must not pay twice 0")
    time.sleep(0.3)
    a.kill9()
    a = machines("a")
    for p in prompts + [pb]:
        assert wait_done(p, 40) in ("done", "cached")	# k0: whichever machine took it over
    st = emulator.stats()
    assert creates(emulator) == 3 and st["generations"] == 3, "a request was paid twice"
    assert unknown_rows(pg) == 0
    wait_for(lambda: team_billed(pg) == st["billed_usd"], 10, "the team's rows == the bill")
    assert team_cost_total(a, pg) == (pytest.approx(st["billed_usd"], abs=5e-5), 3)
    # the dead run's reservations are settled once: spent == billed, nothing left reserved
    spent = float(pg.psql("SELECT coalesce(sum(actual_usd), 0) FROM bananafs.reservations WHERE settled"))
    assert round(spent, 6) == st["billed_usd"]
    assert pg.psql("SELECT count(*) FROM bananafs.reservations WHERE NOT settled") == "0"


def test_database_restart_mid_run_pays_nothing_twice(machines, emulator, pg):
    a, b = machines("a"), machines("b")
    prompts = [m.path(*PRO2K, f"r{i}.txt") for i in range(3) for m in (a, b)]
    ts = [threading.Thread(target=write, args=(p, f"restart prompt {i // 2}"))
          for i, p in enumerate(prompts)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    wait_for(lambda: emulator.stats()["requests"] >= 1, 10, "requests on the wire")
    pg.stop()
    time.sleep(1.0)
    pg.start()
    states = [wait_done(p, 60) for p in prompts]
    assert all(s in ("done", "cached") or os.path.exists(p[:-4] + ".error")
               for s, p in zip(states, prompts))
    assert emulator.stats()["requests"] <= 3, "a prompt was paid twice"
    # Every billed line reaches the team's rows once the database is back.
    wait_for(lambda: round(float(pg.psql("SELECT coalesce(sum(cost_usd), 0) FROM bananafs.ledger "
                                         "WHERE billed")), 9) == emulator.stats()["billed_usd"],
             20, "the ledger rows of the outage")


def test_rows_deferred_while_the_database_is_away_survive_kill9(machines, emulator, pg):
    """A request finishes while the database is down; the daemon is killed before it is
    back: its settlement and ledger rows wait in the store and are written by the next run."""
    a = machines("a")
    emulator.fault("slow", 1, delay_ms=2500)
    pa = a.path(*PRO2K, "late.txt")
    write(pa, "paid while the team database was away")
    wait_for(lambda: creates(emulator) == 1, 10, "a's request on the wire")
    pg.stop()
    try:
        assert wait_done(pa, 30) == "done"
        wait_for(lambda: deferred(a.store) > 0, 10, "statements kept for the database")
        a.kill9()
    finally:
        pg.start()
    assert team_billed(pg) == 0, "the rows were written before the kill"
    machines("a")
    wait_for(lambda: team_billed(pg) == emulator.stats()["billed_usd"], 20,
             "the killed run's rows written by the next run")
    wait_for(lambda: deferred(a.store) == 0, 10, "the queue emptied")
    assert pg.psql("SELECT count(*) FROM bananafs.reservations WHERE settled AND actual_usd > 0") == "1"
    assert pg.psql("SELECT count(*) FROM bananafs.claims") == "0"


def test_cache_only_serves_hits_and_refuses_paid_requests(machines, emulator, pg, tmp_path):
    a = machines("a")
    pa = a.path(*PRO2K, "old.txt")
    write(pa, "made while the database was up")
    assert wait_done(pa) == "done"
    a.unmount()
    # Mount the same store again with the database unreachable.
    m = Mount(emulator.url, a.store, a.mnt,
              f"[bananafs]\nteam_db = host={tmp_path} dbname=x user=team\nteam_offline = cache-only\n"
              f"team_lease_s = {LEASE}\n", env=pg.env())
    try:
        again = m.path(*PRO2K, "again.txt")
        write(again, "made while the database was up")
        assert wait_done(again) in ("done", "cached")
        new = m.path(*PRO2K, "new.txt")
        write(new, "a prompt nobody paid for yet")
        assert wait_done(new, 30) == "failed"
        with open(m.path(*PRO2K, "new.error")) as f:
            err = f.read()
        assert "team database" in err and "nothing was sent" in err
        assert emulator.stats()["requests"] == 1
    finally:
        m.unmount()


def test_max_inflight_holds_for_the_team(machines, emulator, pg):
    """max_inflight = 1 on two machines is one request on the wire for the team: the second
    machine's prompt waits for a slot (and says so) while the first machine's runs."""
    a, b = machines("a", "max_inflight = 1\n"), machines("b", "max_inflight = 1\n")
    emulator.fault("slow", 1, delay_ms=3000)
    pa, pb = a.path(*PRO2K, "first.txt"), b.path(*PRO2K, "second.txt")
    write(pa, "holds the team's only slot")
    wait_for(lambda: emulator.stats()["requests"] == 1, 10, "a's request on the wire")
    write(pb, "waits for the team's slot")
    wait_for(lambda: status(pb) == "waiting-slot", 10, "b to wait for the team's slot")
    assert emulator.stats()["requests"] == 1
    assert wait_done(pa, 30) == "done" and wait_done(pb, 30) == "done"
    assert emulator.stats()["requests"] == 2
    assert pg.psql("SELECT count(*) FROM bananafs.slots") == "0"


def test_rpm_holds_for_the_team(machines, emulator, pg):
    """rpm = 1 on two machines is one start a minute for the team: the second machine's
    prompt, the first on its own limiter, waits for a slot until the team's minute has passed
    (here: its window emptied, as a minute would)."""
    a, b = machines("a", "rpm = 1\n"), machines("b", "rpm = 1\n")
    pa, pb = a.path(*PRO2K, "first.txt"), b.path(*PRO2K, "second.txt")
    write(pa, "the team's one start this minute")
    assert wait_done(pa, 30) == "done"
    write(pb, "waits for the team's next minute")
    wait_for(lambda: status(pb) == "waiting-slot", 10, "b to wait for the team's rpm")
    assert emulator.stats()["requests"] == 1
    pg.psql("DELETE FROM bananafs.starts")
    assert wait_done(pb, 30) == "done"
    assert emulator.stats()["requests"] == 2


def test_a_429_on_one_machine_pauses_the_team(machines, emulator, pg):
    """A per-minute 429 for one model holds that model on every machine."""
    fast = "backoff_base_s = 0.05\nbackoff_cap_s = 0.2\nretries = 3\n"
    a, b = machines("a", fast), machines("b", fast)
    emulator.fault("429-minute", 1, retry_delay="4s")
    pa = a.path(*PRO2K, "q.txt")
    write(pa, "the prompt that met the 429")
    wait_for(lambda: pg.psql("SELECT count(*) FROM bananafs.model_pause WHERE until > now()") == "1",
             10, "the team's pause of the model")
    pb = b.path(*PRO2K, "q2.txt")
    write(pb, "a prompt on the other machine")
    wait_for(lambda: os.getxattr(pb, "user.bananafs.status") == b"waiting-quota", 10,
             "b to wait for the team's quota")
    # Another model is not held, on either machine: it is done while b's Pro prompt still waits.
    pf = b.path(*FLASH512, "other.txt")
    write(pf, "a prompt for another model")
    assert wait_done(pf) == "done"
    assert os.getxattr(pb, "user.bananafs.status") == b"waiting-quota"
    assert wait_done(pa) == "done" and wait_done(pb) == "done"
    assert emulator.stats()["requests"] == 4		# a's 429, a's resend, b's two requests


def test_a_project_429_on_one_machine_pauses_every_model_of_the_team(machines, emulator, pg):
    """A 429 whose quota is the project's (a QuotaFailure without a model, as generateContent
    sends it) holds every model on every machine."""
    fast = "backoff_base_s = 0.05\nbackoff_cap_s = 0.2\nretries = 3\n"
    a, b = machines("a", fast), machines("b", fast)
    emulator.fault("429-minute", 1, retry_delay="5s", quota_id="GenerateRequestsPerMinutePerProject")
    pa = a.path(*PRO2K, "q.txt")
    write(pa, "---\nroute: generate\n---\nthe prompt that met the project's 429")
    wait_for(lambda: pg.psql("SELECT until > now() FROM bananafs.pause") == "t", 10,
             "the team's pause")
    assert pg.psql("SELECT count(*) FROM bananafs.model_pause") == "0"
    pf = b.path(*FLASH512, "other.txt")
    write(pf, "a prompt for another model on the other machine")
    wait_for(lambda: os.getxattr(pf, "user.bananafs.status") == b"waiting-quota", 10,
             "b's other model to wait for the project's quota")
    assert wait_done(pa) == "done" and wait_done(pf) == "done"
    assert emulator.stats()["requests"] == 3		# a's 429, a's resend, b's one request


def print_stall(pg, ms, left):
    """What the team looked like when prompts stalled: claims, slots, the pause, what each
    database session waits for, each machine's unfinished jobs, the stalled machines' logs,
    the server's errors and (with gdb) where the stalled machines' threads are."""
    print(f"\n{len(left)} unfinished, e.g. {[(p, status(p)) for p in left[:5]]}")
    print(pg.psql("SELECT key, owner, mount, expires > now(), taken_from, interaction "
                  "FROM bananafs.claims"))
    print(pg.psql("SELECT owner, mount, expires > now() FROM bananafs.slots"))
    print(pg.psql("SELECT until > now() FROM bananafs.pause"))
    print(pg.psql("SELECT pid, state, wait_event_type, wait_event, now() - query_start, left(query, 60) "
                  "FROM pg_stat_activity WHERE datname = current_database()"))
    for m in ms:
        try:
            with open(m.path(".bananafs", "jobs")) as f:
                jobs = [j for j in f if '"done"' not in j and '"cached"' not in j]
        except OSError as e:
            jobs = [str(e)]
        print(m.mnt, f"{len(jobs)} unfinished jobs", "".join(jobs[:3]))
    stalled = [m for m in ms if any(p.startswith(m.mnt + "/") for p in left)]
    for m in stalled:
        print(m.mnt, m.log()[-1500:])
    with open(pg.log, errors="replace") as f:
        print("".join(line for line in f if "ERROR" in line)[-3000:])
    if shutil.which("gdb"):
        for m in stalled:
            r = subprocess.run(["gdb", "-p", str(m.proc.pid), "-batch", "-ex", "thread apply all bt"],
                               capture_output=True, text=True, timeout=120)
            print(m.mnt, "\n".join(l for l in r.stdout.splitlines()
                                   if l.startswith(("Thread", "#0 ", "#1 ", "#2 ")) or " in team_" in l or " in ti_" in l
                                   or " in tl_" in l or " in fetch" in l or " in walk_" in l
                                   or " in send_" in l or " in PQ" in l or " in limiter" in l))


def test_scale_eight_machines_random_kills(request, machines, emulator, pg):
    """check-long: 8 machines, 400 prompts (half of them written on two machines), kills.

    Billed requests == unique keys, plus the resends the crashes recorded (a
    dead machine's request taken over: an "unknown" row), and the team's billed rows (what
    `cost --team` sums) == the emulator's bill."""
    if not request.config.getoption("--long"):
        pytest.skip("long form: make check-long")
    import random
    rnd = random.Random(16)
    ms = [machines(f"m{i}") for i in range(8)]
    writes = [(i % 8, f"solo prompt {i}") for i in range(200)]
    for j in range(100):
        a, b = rnd.sample(range(8), 2)
        writes += [(a, f"shared prompt {j}"), (b, f"shared prompt {j}")]
    rnd.shuffle(writes)
    unique = len({t for _, t in writes})
    names = [f"s{n}.txt" for n in range(len(writes))]
    t0 = time.time()
    for n, (i, text) in enumerate(writes):
        write(ms[i].path(*PRO2K, names[n]), text)
        if n in (150, 300):	# kill -9 a machine with requests in flight, then mount it again
            k = rnd.randrange(8)
            ms[k].kill9()
            ms[k] = machines(f"m{k}")
    paths = [ms[i].path(*PRO2K, names[n]) for n, (i, _) in enumerate(writes)]
    deadline = time.time() + 300
    while (left := [p for p in paths if status(p) not in ("done", "cached", "failed")]) \
            and time.time() < deadline:
        time.sleep(1)
    if left:
        print_stall(pg, ms, left)
    assert not left, f"{len(left)} prompts did not finish"
    states = [status(p) for p in paths]
    took = time.time() - t0
    unknown = int(pg.psql("SELECT count(*) FROM bananafs.ledger WHERE outcome = 'unknown'"))
    st = emulator.stats()
    sent = st["requests"]
    wait_for(lambda: team_billed(pg) == emulator.stats()["billed_usd"], 30, "the team's rows")
    print(f"\nscale: 8 machines, {len(writes)} prompts, {unique} unique keys, 2 kills: "
          f"{sent} billed requests, {unknown} recorded crash resends, "
          f"{states.count('done')} done, {states.count('cached')} cached, "
          f"{states.count('failed')} failed, {took:.1f} s; team rows ${team_billed(pg):.3f} == "
          f"billed ${st['billed_usd']:.3f}")
    assert states.count("failed") == 0
    assert unique <= sent <= unique + unknown
