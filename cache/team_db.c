/*
 * team_db.c - team mode's connections, schema and background thread.
 *
 * Invariants:
 *   - only this file calls PQconnect*, PQreset and PQfinish;
 *   - the request connection is used under t->mu only, the background
 *     connection by the background thread only;
 *   - a statement is retried after a reconnect only because every caller's
 *     statement is idempotent (keyed by a request id or cache key);
 *   - a failed reconnect is not tried again within TEAM_RETRY_S, so a dead
 *     server costs each request one quick error, not a connect timeout;
 *   - no text written here contains a password (libpq never puts one in
 *     its messages; the conninfo has none).
 */
#include "cache/team_db.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "api/errbuf.h"
#include "cache/ledger.h"
#include "cache/log.h"
#include "cache/store.h"

#define TEAM_RETRY_S 1.0		/* least time between two reconnect attempts */
#define TEAM_CHANNEL "bananafs_claims"

/* Version 1.  Each table's comment says which backend owns it. */
static const char schema_v1[] =
	/* cache/team_index.c: the shared cache index, bytes here or in team_objects */
	"CREATE TABLE bananafs.objects ("
	"  key text PRIMARY KEY, orig_ext text NOT NULL, pub_ext text NOT NULL,"
	"  width integer NOT NULL, height integer NOT NULL, bytes bigint NOT NULL,"
	"  orig bytea, pub bytea, mount text NOT NULL,"
	"  created timestamptz NOT NULL DEFAULT now());"
	/* cache/team_inflight.c: one live claim per key, with a lease */
	"CREATE TABLE bananafs.claims ("
	"  key text PRIMARY KEY, owner text NOT NULL, mount text NOT NULL,"
	"  expires timestamptz NOT NULL, taken_from text);"
	"CREATE TABLE bananafs.claim_done ("
	"  key text PRIMARY KEY, ok boolean NOT NULL, at timestamptz NOT NULL DEFAULT now());"
	/* cache/team_budget.c: reservations, settled ones are the spending */
	"CREATE TABLE bananafs.reservations ("
	"  id text PRIMARY KEY, mount text NOT NULL, usd double precision NOT NULL,"
	"  day date NOT NULL, expires timestamptz NOT NULL,"
	"  settled boolean NOT NULL DEFAULT false, actual_usd double precision NOT NULL DEFAULT 0,"
	"  created timestamptz NOT NULL DEFAULT now());"
	/* cache/team_limiter.c: slots on the wire, the start window, the team's pause */
	"CREATE TABLE bananafs.slots ("
	"  owner text PRIMARY KEY, mount text NOT NULL, expires timestamptz NOT NULL);"
	"CREATE TABLE bananafs.starts (t timestamptz NOT NULL);"
	"CREATE INDEX ON bananafs.starts (t);"
	"CREATE TABLE bananafs.pause (id integer PRIMARY KEY CHECK (id = 1), until timestamptz NOT NULL);"
	"INSERT INTO bananafs.pause VALUES (1, '-infinity');"
	"CREATE TABLE bananafs.model_pause (model text PRIMARY KEY, until timestamptz NOT NULL);"
	/* cache/team_ledger.c: every ledger line, once */
	"CREATE TABLE bananafs.ledger ("
	"  request_id text NOT NULL, outcome text NOT NULL, attempt integer NOT NULL,"
	"  time timestamptz NOT NULL, mount text NOT NULL, key text, model text, route text,"
	"  size text, cost_usd double precision, billed boolean NOT NULL, line jsonb NOT NULL,"
	"  PRIMARY KEY (request_id, outcome, attempt));";

/*
 * Version 2: a claim keeps the background interaction its request became
 * (cache/team_inflight.c: a machine taking the claim over from a dead one
 * polls it instead of paying again), and a takeover finds the dead
 * owner's "sent" rows by mount and key.  Run on a version 1 database too.
 */
static const char upgrade_v2[] =
	"ALTER TABLE bananafs.claims ADD COLUMN IF NOT EXISTS interaction text;"
	"CREATE INDEX IF NOT EXISTS ledger_mount_key ON bananafs.ledger (mount, key);"
	"DELETE FROM bananafs.schema_version;"
	"INSERT INTO bananafs.schema_version VALUES (2);";

/*
 * Version 3: every ledger line is its own event (cache/team_ledger.c), so
 * a row is unique by (request_id, outcome, attempt, event_id): two runs of
 * one store that repeat a line are two rows, one line written twice is
 * one.  Rows from before have event_id ''.  day is the local day of the
 * line at the mount that wrote it: the team's spending is the sum of the
 * billed rows (bananafs.spent()), what `bananactl cost --team` sums too.
 * Run on a version 1 or 2 database too (after upgrade_v2).
 */
static const char upgrade_v3[] =
	"ALTER TABLE bananafs.ledger ADD COLUMN IF NOT EXISTS event_id text NOT NULL DEFAULT '';"
	"ALTER TABLE bananafs.ledger ADD COLUMN IF NOT EXISTS day date;"
	"UPDATE bananafs.ledger SET day = time::date WHERE day IS NULL;"
	/* the defaults let a mount of version 2 that is still running write its rows */
	"ALTER TABLE bananafs.ledger ALTER COLUMN day SET DEFAULT CURRENT_DATE,"
	"  ALTER COLUMN day SET NOT NULL;"
	"ALTER TABLE bananafs.ledger DROP CONSTRAINT IF EXISTS ledger_pkey;"
	"ALTER TABLE bananafs.ledger ADD PRIMARY KEY (request_id, outcome, attempt, event_id);"
	"CREATE INDEX IF NOT EXISTS ledger_billed_day ON bananafs.ledger (day) INCLUDE (cost_usd) "
	"  WHERE billed;"
	"DELETE FROM bananafs.schema_version;"
	"INSERT INTO bananafs.schema_version VALUES (3);";

/*
 * The functions of version 3, replaced at every mount (under the schema
 * lock), so a fix to one reaches a database made by an earlier build of
 * the same schema version.
 */
static const char functions_v3[] =
	/*
	 * claim: one statement.  A new claim, or a takeover of a claim whose
	 * lease ended (its owner's mount stopped renewing), or of a claim of an
	 * earlier run of the caller's own store (same store id before the '/',
	 * another run in mount: that run is dead, a store is mounted once), or
	 * the caller's own claim again.  A restart of the server gives every
	 * lease a full term from the restart: nobody could renew while it was
	 * down.  A takeover remembers the dead owner in taken_from (reserve()
	 * settles its reservation) and keeps the interaction it noted, for the
	 * new owner to poll.
	 */
	"CREATE OR REPLACE FUNCTION bananafs.claim(p_key text, p_owner text, p_mount text,"
	"  p_lease float8) RETURNS integer LANGUAGE plpgsql AS $$\n"
	"DECLARE got text;\n"
	"BEGIN\n"
	"  INSERT INTO bananafs.claims AS c (key, owner, mount, expires)\n"
	"    VALUES (p_key, p_owner, p_mount, now() + make_interval(secs => p_lease))\n"
	"  ON CONFLICT (key) DO UPDATE SET owner = EXCLUDED.owner, mount = EXCLUDED.mount,\n"
	"    expires = EXCLUDED.expires,\n"
	"    taken_from = CASE WHEN c.owner = EXCLUDED.owner THEN c.taken_from ELSE c.owner END\n"
	"    WHERE greatest(c.expires, pg_postmaster_start_time() + make_interval(secs => p_lease))\n"
	"      < now() OR c.owner = EXCLUDED.owner\n"
	"      OR (split_part(c.owner, '/', 1) = split_part(EXCLUDED.owner, '/', 1)\n"
	"          AND c.mount <> EXCLUDED.mount)\n"
	"  RETURNING owner INTO got;\n"
	"  IF got IS NULL THEN RETURN 0; END IF;\n"
	"  DELETE FROM bananafs.claim_done WHERE key = p_key;\n"
	"  RETURN 1;\n"
	"END $$;"

	"CREATE OR REPLACE FUNCTION bananafs.claim_done(p_key text, p_owner text, p_ok boolean)"
	" RETURNS void LANGUAGE plpgsql AS $$\n"
	"BEGIN\n"
	"  DELETE FROM bananafs.claims WHERE key = p_key AND owner = p_owner;\n"
	"  IF FOUND THEN\n"
	"    INSERT INTO bananafs.claim_done (key, ok) VALUES (p_key, p_ok)\n"
	"      ON CONFLICT (key) DO UPDATE SET ok = EXCLUDED.ok, at = now();\n"
	"    PERFORM pg_notify('" TEAM_CHANNEL "', p_key);\n"
	"  END IF;\n"
	"END $$;"

	/*
	 * spent: the team's spending, today (p_day, the caller's local day) and
	 * in all: the billed ledger rows, each counted once (its row is unique),
	 * the sum `bananactl cost --team` shows.
	 */
	"CREATE OR REPLACE FUNCTION bananafs.spent(p_day date, OUT today float8, OUT total float8)"
	" LANGUAGE sql STABLE AS $$\n"
	"  SELECT coalesce(sum(cost_usd) FILTER (WHERE day = p_day), 0), coalesce(sum(cost_usd), 0)\n"
	"    FROM bananafs.ledger WHERE billed\n"
	"$$;"

	/*
	 * settle_dead: ends the reservation p_res of a dead owner that held the
	 * key p_key, under reserve()'s lock (7242001), which every caller holds;
	 * true when it recorded an "unknown" row.  A reservation settled before
	 * (by another mount, or by the dead store's next run) is left alone, so
	 * any number of mounts may call it for one reservation:
	 *   - the claim names the interaction the dead owner created (p_ia): the
	 *     mount that took the claim over polls it and pays its price under
	 *     its own reservation, so the dead one is released (0);
	 *   - else, when the dead owner's mount has a "sent" row for the key with
	 *     no row of that request after it (an outcome, or the "unknown" the
	 *     dead store's next run writes), the request may have reached Google:
	 *     an "unknown" ledger row, billed, counted by spent().  Its event id
	 *     is the "sent" row's with "-unknown", as the dead store's own next
	 *     run writes it from its local ledger: one row, counted once;
	 *   - else nothing was sent, or it is counted already: released.
	 */
	"CREATE OR REPLACE FUNCTION bananafs.settle_dead(p_res text, p_key text, p_ia text, p_day date)"
	"  RETURNS boolean LANGUAGE plpgsql AS $$\n"
	"DECLARE r record; s record; ev text; paid boolean := false;\n"
	"BEGIN\n"
	"  SELECT * INTO r FROM bananafs.reservations WHERE id = p_res AND NOT settled;\n"
	"  IF NOT FOUND THEN RETURN false; END IF;\n"
	"  IF p_ia IS NULL THEN\n"
	"    SELECT * INTO s FROM bananafs.ledger WHERE mount = r.mount AND key = p_key\n"
	"      AND outcome = 'sent' ORDER BY time DESC LIMIT 1;\n"
	"    paid := FOUND AND NOT EXISTS (SELECT 1 FROM bananafs.ledger t\n"
	"      WHERE t.request_id = s.request_id AND t.outcome <> 'sent' AND t.time >= s.time);\n"
	"  END IF;\n"
	"  UPDATE bananafs.reservations SET settled = true,\n"
	"    actual_usd = CASE WHEN paid THEN usd ELSE 0 END WHERE id = p_res;\n"
	"  IF NOT paid THEN RETURN false; END IF;\n"
	"  ev := CASE WHEN s.event_id = '' THEN '' ELSE s.event_id || '" LEDGER_UNKNOWN_SUFFIX "' END;\n"
	"  INSERT INTO bananafs.ledger (request_id, outcome, attempt, event_id, day, time, mount,\n"
	"    key, model, route, size, cost_usd, billed, line)\n"
	"  VALUES (s.request_id, 'unknown', s.attempt, ev, p_day, now(), s.mount, p_key, s.model,\n"
	"    s.route, s.size, r.usd, true, (s.line - 'reason' - 'latency_s' - 'event_id')\n"
	"    || jsonb_build_object('time', to_char(now() AT TIME ZONE 'UTC',\n"
	"      'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), 'outcome', 'unknown',\n"
	"      'reason', 'the mount holding this request stopped renewing its claim; '\n"
	"      || 'it may have been billed', 'cost_usd', r.usd, 'billed', true,\n"
	"      'cost_basis', 'per-image')\n"
	"    || CASE WHEN ev = '' THEN '{}'::jsonb ELSE jsonb_build_object('event_id', ev) END)\n"
	"  ON CONFLICT DO NOTHING;\n"
	"  RETURN true;\n"
	"END $$;"

	/*
	 * reserve: one statement, atomic and idempotent.  The advisory lock
	 * serialises the team's reservations; an id already held is a no-op
	 * success (now renewed by the caller's mount); reservations whose lease
	 * ended no longer count.  An id settled earlier (a batch key asked for
	 * again) is kept under another id and reserved afresh.  Returns '' when
	 * allowed, else why not.  What counts: bananafs.spent() plus the live
	 * reservations (a settled reservation is counted by its ledger row).
	 * When the caller's claim was taken over from a dead owner whose
	 * reservation was never settled, settle_dead() settles it now.
	 */
	"CREATE OR REPLACE FUNCTION bananafs.reserve(p_id text, p_mount text, p_usd float8, p_day date,"
	"  p_lease float8, p_daily float8, p_total float8) RETURNS text LANGUAGE plpgsql AS $$\n"
	"DECLARE today float8; total float8; prev text; k text; ia text;\n"
	"  grace interval := greatest(pg_postmaster_start_time() + make_interval(secs => p_lease)\n"
	"    - now(), '0'::interval);\n"
	"BEGIN\n"
	"  PERFORM pg_advisory_xact_lock(7242001);\n"
	"  UPDATE bananafs.reservations SET mount = p_mount,\n"
	"    expires = now() + make_interval(secs => p_lease) WHERE id = p_id AND NOT settled;\n"
	"  IF FOUND THEN RETURN ''; END IF;\n"
	"  UPDATE bananafs.reservations SET id = id || '~' || extract(epoch FROM clock_timestamp())\n"
	"    WHERE id = p_id;\n"
	"  SELECT taken_from, key, interaction INTO prev, k, ia FROM bananafs.claims WHERE owner = p_id;\n"
	"  IF prev IS NOT NULL THEN\n"
	"    UPDATE bananafs.claims SET taken_from = NULL WHERE owner = p_id;\n"
	"    PERFORM bananafs.settle_dead(prev, k, ia, p_day);\n"
	"  END IF;\n"
	"  SELECT sp.today, sp.total INTO today, total FROM bananafs.spent(p_day) sp;\n"
	"  SELECT today + coalesce(sum(usd) FILTER (WHERE day = p_day), 0), total + coalesce(sum(usd), 0)\n"
	"    INTO today, total FROM bananafs.reservations\n"
	"    WHERE NOT settled AND expires > now() - grace;\n"
	"  IF p_daily >= 0 AND today + p_usd > p_daily + 1e-9 THEN\n"
	"    RETURN format('the team spent and reserved $%s today + this $%s > daily limit $%s',\n"
	"      round(today::numeric, 3), round(p_usd::numeric, 3), round(p_daily::numeric, 2));\n"
	"  END IF;\n"
	"  IF p_total >= 0 AND total + p_usd > p_total + 1e-9 THEN\n"
	"    RETURN format('the team spent and reserved $%s in all + this $%s > total limit $%s',\n"
	"      round(total::numeric, 3), round(p_usd::numeric, 3), round(p_total::numeric, 2));\n"
	"  END IF;\n"
	"  INSERT INTO bananafs.reservations (id, mount, usd, day, expires)\n"
	"    VALUES (p_id, p_mount, p_usd, p_day, now() + make_interval(secs => p_lease));\n"
	"  RETURN '';\n"
	"END $$;"

	/*
	 * reap: what a dead mount's request may have cost, when nobody takes
	 * its claim over (its prompt was removed, no other machine wants the
	 * key).  Every live mount calls it every third of a lease; it finds the
	 * reservations whose lease ended with their claim, the claim's too, or
	 * whose claim was taken over by a mount that has not reserved yet, and
	 * settles each with settle_dead(): an "unknown" row for a request that
	 * was on the wire, the row the taker or the dead store's next run
	 * would write.  A claim naming an interaction is left to the mount that
	 * takes it over, which polls it; batch items to their batch.  The
	 * lock is reserve()'s, so mounts reaping at once and a taker agree.
	 * Returns the number of "unknown" rows recorded.
	 */
	"CREATE OR REPLACE FUNCTION bananafs.reap(p_lease float8, p_day date)"
	"  RETURNS integer LANGUAGE plpgsql AS $$\n"
	"DECLARE d record; n integer := 0;\n"
	"  since timestamptz := pg_postmaster_start_time() + make_interval(secs => p_lease);\n"
	"BEGIN\n"
	/* claims is small (live claims and dead ones); reservations are found by id */
	"  FOR d IN SELECT r.id, c.key FROM bananafs.claims c JOIN bananafs.reservations r\n"
	"      ON r.id = ANY (ARRAY[c.owner, c.taken_from])\n"
	"    WHERE (r.id = c.taken_from OR greatest(c.expires, since) < now())\n"
	"      AND NOT r.settled AND greatest(r.expires, since) < now() AND c.interaction IS NULL\n"
	"      AND split_part(r.id, '/', 2) NOT LIKE 'batch.%' LOOP\n"
	/* settle_dead looks again under the lock: another mount may have been first */
	"    PERFORM pg_advisory_xact_lock(7242001);\n"
	"    IF bananafs.settle_dead(d.id, d.key, NULL, p_day) THEN n := n + 1; END IF;\n"
	"  END LOOP;\n"
"  RETURN n;\n"
	"END $$;"

	/*
	 * slot_take: 0 when a slot was taken for p_owner (or it already holds
	 * one), > 0 seconds to wait (pause or rpm window), -1 when every slot is
	 * taken (wait for a release, which notifies).
	 */
	"CREATE OR REPLACE FUNCTION bananafs.slot_take(p_owner text, p_mount text, p_max integer, p_rpm integer,"
	"  p_lease float8, p_take boolean) RETURNS float8 LANGUAGE plpgsql AS $$\n"
	"DECLARE u timestamptz; n integer; first timestamptz;\n"
	"BEGIN\n"
	"  PERFORM pg_advisory_xact_lock(7242002);\n"
	"  DELETE FROM bananafs.slots WHERE expires < now();\n"
	"  IF p_take AND EXISTS (SELECT 1 FROM bananafs.slots WHERE owner = p_owner) THEN\n"
	"    RETURN 0;\n"
	"  END IF;\n"
	"  SELECT until INTO u FROM bananafs.pause WHERE id = 1;\n"
	"  IF u > now() THEN RETURN extract(epoch FROM u - now()); END IF;\n"
	"  IF p_max > 0 AND (SELECT count(*) FROM bananafs.slots) >= p_max THEN RETURN -1; END IF;\n"
	"  IF p_rpm > 0 THEN\n"
	"    DELETE FROM bananafs.starts WHERE t < now() - interval '60 seconds';\n"
	"    SELECT count(*), min(t) INTO n, first FROM bananafs.starts;\n"
	"    IF n >= p_rpm THEN\n"
	"      RETURN greatest(extract(epoch FROM first + interval '60 seconds' - now()), 0.01);\n"
	"    END IF;\n"
	"  END IF;\n"
	"  IF p_take THEN\n"
	"    INSERT INTO bananafs.slots VALUES (p_owner, p_mount, now() + make_interval(secs => p_lease));\n"
	"    INSERT INTO bananafs.starts VALUES (now());\n"
	"  END IF;\n"
	"  RETURN 0;\n"
	"END $$;";

static double
mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The first line of libpq's message: enough to say what failed. */
static void
pq_message(PGconn *c, char *buf, size_t len)
{
	const char *m = c != NULL ? PQerrorMessage(c) : "out of memory";

	snprintf(buf, len, "%.*s", (int)strcspn(m, "\n"), m);
}

/* Server notices (and the "terminating connection" of a restart) go to the debug log. */
static void
quiet_notice(void *arg, const char *message)
{
	(void)arg;
	log_debug("team_db: server says: %.*s", (int)strcspn(message, "\n"), message);
}

/*
 * Our defaults come first and the user's conninfo last (expand_dbname), so
 * a keyword the user set overrides ours: a bounded connect time (libpq's
 * own is unbounded), a name in pg_stat_activity, and TCP keepalives and
 * tcp_user_timeout tied to the lease, so a remote server that went away
 * without a word (a cut link, a dead host) fails the connection within
 * about a lease instead of the kernel's many minutes, while a statement
 * or the renewals wait on it.  libpq ignores them on a Unix socket.
 */
void
team_db_conn_params(struct team_conn_params *p, const char *conninfo, double lease_s)
{
	static const char *const keys[] = { "connect_timeout", "application_name", "keepalives",
					    "keepalives_idle", "keepalives_interval", "keepalives_count",
					    "tcp_user_timeout", "dbname", NULL };
	double lease = lease_s > 0 ? lease_s : 30;
	int i;

	/* silent for lease/3, then 3 probes lease/9 apart: dead by about 2/3 of a lease */
	snprintf(p->buf[0], sizeof(p->buf[0]), "%d", (int)fmax(1, lease / 3));
	snprintf(p->buf[1], sizeof(p->buf[1]), "%d", (int)fmax(1, lease / 9));
	/* data unacknowledged for a lease: the link is dead (milliseconds) */
	snprintf(p->buf[2], sizeof(p->buf[2]), "%ld", (long)(fmax(1, lease) * 1000));
	for (i = 0; keys[i] != NULL; i++)
		p->keys[i] = keys[i];
	p->keys[i] = NULL;
	p->vals[0] = "5";
	p->vals[1] = "bananafs";
	p->vals[2] = "1";
	p->vals[3] = p->buf[0];
	p->vals[4] = p->buf[1];
	p->vals[5] = "3";
	p->vals[6] = p->buf[2];
	p->vals[7] = conninfo;
	p->vals[8] = NULL;
}

static PGconn *
connect_db(const char *conninfo, double lease_s)
{
	struct team_conn_params p;
	PGconn *c;

	team_db_conn_params(&p, conninfo, lease_s);
	c = PQconnectdbParams(p.keys, p.vals, 1);
	if (c != NULL)
		PQsetNoticeProcessor(c, quiet_notice, NULL);
	return c;
}

/* A clear error for a failed connect: the password case named apart. */
static void
connect_error(PGconn *c, char *err, size_t errlen)
{
	char m[256];

	pq_message(c, m, sizeof(m));
	if (c != NULL && PQconnectionNeedsPassword(c))
		errbuf_set(err, errlen, "team_db: the server wants a password and none was found: "
			   "put it in ~/.pgpass or the file PGPASSFILE names (mode 600) (%s)", m);
	else if (strstr(m, "password authentication failed") != NULL ||
		 (c != NULL && PQconnectionUsedPassword(c)))
		errbuf_set(err, errlen, "team_db: the server refused the password: check the line "
			   "for this server in ~/.pgpass or PGPASSFILE (%s)", m);
	else
		errbuf_set(err, errlen, "team_db: cannot connect to the team database: %s", m);
}

static int
exec_simple(PGconn *c, const char *sql, char *err, size_t errlen)
{
	PGresult *r = PQexec(c, sql);
	ExecStatusType st = PQresultStatus(r);
	char m[256];

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		pq_message(c, m, sizeof(m));
		errbuf_set(err, errlen, "team_db: %s", m);
		PQclear(r);
		return -1;
	}
	PQclear(r);
	return 0;
}

/* The schema version on c: 0 when there is none yet, -1 on error. */
static int
schema_version(PGconn *c, char *err, size_t errlen)
{
	PGresult *r;
	int v = 0;

	r = PQexec(c, "SELECT to_regclass('bananafs.schema_version') IS NOT NULL");
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		PQclear(r);
		errbuf_set(err, errlen, "team_db: cannot read the schema version");
		return -1;
	}
	if (strcmp(PQgetvalue(r, 0, 0), "t") != 0) {
		PQclear(r);
		return 0;
	}
	PQclear(r);
	r = PQexec(c, "SELECT max(version) FROM bananafs.schema_version");
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		PQclear(r);
		errbuf_set(err, errlen, "team_db: cannot read the schema version");
		return -1;
	}
	if (!PQgetisnull(r, 0, 0))
		v = atoi(PQgetvalue(r, 0, 0));
	PQclear(r);
	if (v < 1) {
		errbuf_set(err, errlen, "team_db: the team database's bananafs.schema_version holds no "
			   "version bananafs made (%d): restore it, or drop the schema bananafs", v);
		return -1;
	}
	return v;
}

static int
version_error(int v, char *err, size_t errlen)
{
	if (v > TEAM_SCHEMA_VERSION)
		errbuf_set(err, errlen, "team_db: the team database has schema version %d, newer than "
			   "this bananafs knows (%d): upgrade bananafs on this machine", v,
			   TEAM_SCHEMA_VERSION);
	else
		errbuf_set(err, errlen, "team_db: the team database has schema version %d, older than "
			   "this bananafs's (%d): mount it once with this bananafs, which upgrades it", v,
			   TEAM_SCHEMA_VERSION);
	return -1;
}

/*
 * Creates the schema when missing, under an advisory lock so two mounts
 * starting at once do not both create it; checks the version otherwise.
 */
static int
schema_ensure(PGconn *c, char *err, size_t errlen)
{
	int v;

	if (exec_simple(c, "BEGIN", err, errlen) < 0)
		return -1;
	if (exec_simple(c, "SELECT pg_advisory_xact_lock(7242000)", err, errlen) < 0)
		goto out_rollback;
	if ((v = schema_version(c, err, errlen)) < 0)
		goto out_rollback;
	if (v == 0) {
		if (exec_simple(c, "CREATE SCHEMA IF NOT EXISTS bananafs;"
				"CREATE TABLE bananafs.schema_version (version integer NOT NULL);",
				err, errlen) < 0 ||
		    exec_simple(c, schema_v1, err, errlen) < 0 ||
		    exec_simple(c, upgrade_v2, err, errlen) < 0 ||
		    exec_simple(c, upgrade_v3, err, errlen) < 0 ||
		    exec_simple(c, functions_v3, err, errlen) < 0) {
			char m[400];

			snprintf(m, sizeof(m), "%s", err);
			errbuf_set(err, errlen, "%s (while creating the team schema: the user needs "
				   "CREATE on the database)", m);
			goto out_rollback;
		}
	} else if (v < TEAM_SCHEMA_VERSION) {
		/* Made by an earlier bananafs: upgraded in place; that bananafs then asks for an upgrade. */
		if ((v < 2 && exec_simple(c, upgrade_v2, err, errlen) < 0) ||
		    exec_simple(c, upgrade_v3, err, errlen) < 0 ||
		    exec_simple(c, functions_v3, err, errlen) < 0) {
			char m[400];

			snprintf(m, sizeof(m), "%s", err);
			errbuf_set(err, errlen, "%s (while upgrading the team schema from version %d to %d: "
				   "the user who created it must mount once with this bananafs)", m, v,
				   TEAM_SCHEMA_VERSION);
			goto out_rollback;
		}
		log_info("team_db: the team schema was upgraded from version %d to %d", v, TEAM_SCHEMA_VERSION);
	} else if (v != TEAM_SCHEMA_VERSION) {
		version_error(v, err, errlen);
		goto out_rollback;
	} else if (exec_simple(c, "SAVEPOINT functions", err, errlen) < 0) {
		goto out_rollback;
	} else if (exec_simple(c, functions_v3, err, errlen) < 0) {
		/* Another team member's role owns them: theirs are as good as ours. */
		log_debug("%s", err);
		if (exec_simple(c, "ROLLBACK TO SAVEPOINT functions", err, errlen) < 0)
			goto out_rollback;
	}
	return exec_simple(c, "COMMIT", err, errlen);

out_rollback:
	PQclear(PQexec(c, "ROLLBACK"));
	return -1;
}

int
team_db_probe(const char *conninfo, int *version, char *err, size_t errlen)
{
	PGconn *c = connect_db(conninfo, 0);
	int v;

	if (c == NULL || PQstatus(c) != CONNECTION_OK) {
		connect_error(c, err, errlen);
		PQfinish(c);
		return -1;
	}
	v = schema_version(c, err, errlen);
	PQfinish(c);
	if (v < 0)
		return -1;
	*version = v;
	return 0;
}

PGresult *
team_db_query_once(const char *conninfo, const char *sql, int nparams, const char *const *params,
		   char *err, size_t errlen)
{
	PGconn *c = connect_db(conninfo, 0);
	PGresult *r = NULL;
	ExecStatusType st;
	char m[256];
	int v;

	if (c == NULL || PQstatus(c) != CONNECTION_OK) {
		connect_error(c, err, errlen);
		goto out;
	}
	if ((v = schema_version(c, err, errlen)) < 0)
		goto out;
	if (v != TEAM_SCHEMA_VERSION) {
		if (v == 0)
			errbuf_set(err, errlen, "team_db: no bananafs schema in the team database yet "
				   "(the first mount creates it)");
		else
			version_error(v, err, errlen);
		goto out;
	}
	r = PQexecParams(c, sql, nparams, NULL, params, NULL, NULL, 0);
	st = PQresultStatus(r);
	if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
		pq_message(c, m, sizeof(m));
		errbuf_set(err, errlen, "team database: %s", m);
		PQclear(r);
		r = NULL;
	}
out:
	PQfinish(c);
	return r;
}

/* ---- the request connection --------------------------------------------- */

/* Under t->mu: a working connection, or false (offline) without waiting long. */
static bool
ensure_conn(struct team_db *t)
{
	if (t->conn != NULL && PQstatus(t->conn) == CONNECTION_OK)
		return true;
	if (t->last_try > 0 && mono_now() - t->last_try < TEAM_RETRY_S)
		return false;
	if (t->conn != NULL)
		PQreset(t->conn);
	else
		t->conn = connect_db(t->conninfo, t->lease_s);
	if (t->conn != NULL && PQstatus(t->conn) == CONNECTION_OK) {
		char err[512];

		if (!t->schema_ok && schema_ensure(t->conn, err, sizeof(err)) < 0) {
			log_warnx("%s", err);
			PQfinish(t->conn);
			t->conn = NULL;
			t->last_try = mono_now();
			return false;
		}
		t->schema_ok = true;
		t->last_try = 0;
		log_info("team_db: connected to the team database");
		return true;
	}
	t->last_try = mono_now();
	return false;
}

PGresult *
team_db_execb(struct team_db *t, const char *sql, int nparams, const char *const *params,
	      const int *lengths, const int *formats, int result_binary, char *err, size_t errlen)
{
	PGresult *r = NULL;
	ExecStatusType st;
	char m[256];
	int tries;

	pthread_mutex_lock(&t->mu);
	for (tries = 0; tries < 2; tries++) {
		if (!ensure_conn(t)) {
			t->online = false;
			errbuf_set(err, errlen, "the team database is unreachable");
			break;
		}
		r = PQexecParams(t->conn, sql, nparams, NULL, params, lengths, formats, result_binary);
		st = PQresultStatus(r);
		if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
			t->online = true;
			pthread_mutex_unlock(&t->mu);
			return r;
		}
		pq_message(t->conn, m, sizeof(m));
		PQclear(r);
		r = NULL;
		if (PQstatus(t->conn) == CONNECTION_OK) {
			/* The server answered with an error: a bug or a constraint, not an outage. */
			t->online = true;
			errbuf_set(err, errlen, "team database: %s", m);
			break;
		}
		t->online = false;
		t->last_try = 0;	/* lost just now: one immediate reconnect */
		errbuf_set(err, errlen, "the team database is unreachable: %s", m);
	}
	pthread_mutex_unlock(&t->mu);
	return NULL;
}

PGresult *
team_db_exec(struct team_db *t, const char *sql, int nparams, const char *const *params,
	     char *err, size_t errlen)
{
	return team_db_execb(t, sql, nparams, params, NULL, NULL, 0, err, errlen);
}

void
team_db_id(const struct team_db *t, const char *name, char out[TEAM_ID_LEN])
{
	snprintf(out, TEAM_ID_LEN, "%s/%s", t->store_id[0] ? t->store_id : t->owner, name ? name : "");
}

bool
team_db_online(struct team_db *t)
{
	bool on;

	pthread_mutex_lock(&t->mu);
	on = t->online;
	pthread_mutex_unlock(&t->mu);
	return on;
}

/* ---- statements run later ------------------------------------------------ */

#define TEAM_MAX_PARAMS 16

/*
 * The deferred statements live in the store's state.db, not in memory: a
 * mount killed while the database is away still writes its settlements,
 * ledger rows and claim ends when it (or its next run) is back.  Each row
 * is one statement and its parameters as a JSON array (null = SQL NULL).
 */
static const char deferred_table[] =
	"CREATE TABLE IF NOT EXISTS team_deferred(seq INTEGER PRIMARY KEY AUTOINCREMENT,"
	" sql TEXT NOT NULL, params TEXT NOT NULL);";

static int
count_row(const struct store_val *cols, int ncols, void *arg)
{
	if (ncols >= 1 && cols[0].t == SVT_INT)
		*(int *)arg = (int)cols[0].i;
	return 0;
}

int
team_db_set_store(struct team_db *t, struct store *s, const char *store_id)
{
	int n = 0;

	snprintf(t->store_id, sizeof(t->store_id), "%s", store_id);
	if (store_sql(s, deferred_table, NULL, 0, NULL, NULL, NULL) != 0 ||
	    store_sql(s, "SELECT count(*) FROM team_deferred;", NULL, 0, count_row, &n, NULL) != 0)
		return -1;
	pthread_mutex_lock(&t->defer_mu);
	t->store = s;
	t->ndeferred = n;
	pthread_mutex_unlock(&t->defer_mu);
	if (n > 0)
		log_info("team_db: %d statement(s) an earlier run could not write wait for the team database", n);
	return 0;
}

void
team_db_defer(struct team_db *t, const char *sql, int nparams, const char *const *params)
{
	cJSON *a = cJSON_CreateArray();
	char *js = NULL;
	struct store_val v[2];
	bool kept = false;

	for (int i = 0; a != NULL && i < nparams; i++)
		if (!cJSON_AddItemToArray(a, params[i] ? cJSON_CreateString(params[i]) : cJSON_CreateNull()))
			break;
	if (a != NULL && cJSON_GetArraySize(a) == nparams && nparams <= TEAM_MAX_PARAMS)
		js = cJSON_PrintUnformatted(a);
	cJSON_Delete(a);
	v[0] = SV_TXT(sql);
	v[1] = SV_TXT(js);
	pthread_mutex_lock(&t->defer_mu);
	if (js != NULL && t->store != NULL &&
	    store_sql(t->store, "INSERT INTO team_deferred(sql, params) VALUES(?, ?);", v, 2, NULL, NULL,
		      NULL) == 0) {
		t->ndeferred++;
		kept = true;
	}
	pthread_mutex_unlock(&t->defer_mu);
	cJSON_free(js);
	if (!kept)
		log_warnx("team_db: a statement for the team database could not be kept for later and "
			  "is lost (the local ledger has the line)");
}

void
team_db_exec_in_order(struct team_db *t, const char *sql, int nparams, const char *const *params)
{
	char err[256];
	PGresult *r = NULL;

	if (team_db_deferred(t) == 0)
		r = team_db_exec(t, sql, nparams, params, err, sizeof(err));
	if (r == NULL)
		team_db_defer(t, sql, nparams, params);
	PQclear(r);
}

int
team_db_deferred(struct team_db *t)
{
	int n;

	pthread_mutex_lock(&t->defer_mu);
	n = t->ndeferred;
	pthread_mutex_unlock(&t->defer_mu);
	return n;
}

struct deferred_row {
	long long seq;
	char *sql, *params;
};

static int
oldest_row(const struct store_val *cols, int ncols, void *arg)
{
	struct deferred_row *d = arg;

	if (ncols < 3 || cols[0].t != SVT_INT || cols[1].t != SVT_TEXT || cols[2].t != SVT_TEXT)
		return 0;
	d->seq = cols[0].i;
	d->sql = strdup(cols[1].s);
	d->params = strdup(cols[2].s);
	return 0;
}

/*
 * Runs the queue on c, oldest first, until one fails with the connection
 * lost or the monotonic time until has come (the background thread's next
 * renewal: a long backlog after an outage must not let this mount's leases
 * lapse while it replays).  One consumer at a time: the background thread,
 * or team_db_close after it stopped.
 */
static void
run_deferred(struct team_db *t, PGconn *c, double until)
{
	struct deferred_row d;
	const char *p[TEAM_MAX_PARAMS];
	struct store_val v;
	struct store *s;
	cJSON *a;
	PGresult *r;
	ExecStatusType st;
	int n;

	for (;;) {
		if (mono_now() >= until)
			return;
		pthread_mutex_lock(&t->defer_mu);
		s = t->ndeferred > 0 ? t->store : NULL;
		pthread_mutex_unlock(&t->defer_mu);
		if (s == NULL)
			return;
		memset(&d, 0, sizeof(d));
		if (store_sql(s, "SELECT seq, sql, params FROM team_deferred ORDER BY seq LIMIT 1;", NULL, 0,
			      oldest_row, &d, NULL) != 0 || d.sql == NULL || d.params == NULL) {
			free(d.sql);
			free(d.params);
			if (d.seq == 0) {	/* none left (or unreadable): recount next time */
				pthread_mutex_lock(&t->defer_mu);
				t->ndeferred = 0;
				pthread_mutex_unlock(&t->defer_mu);
			}
			return;
		}
		a = cJSON_Parse(d.params);
		n = cJSON_IsArray(a) ? cJSON_GetArraySize(a) : -1;
		for (int i = 0; i < n && i < TEAM_MAX_PARAMS; i++) {
			const cJSON *e = cJSON_GetArrayItem(a, i);

			p[i] = cJSON_IsString(e) ? e->valuestring : NULL;
		}
		if (n < 0 || n > TEAM_MAX_PARAMS) {
			log_warnx("team_db: a deferred statement is damaged and is dropped");
		} else {
			r = PQexecParams(c, d.sql, n, NULL, p, NULL, NULL, 0);
			st = PQresultStatus(r);
			PQclear(r);
			if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
				if (PQstatus(c) != CONNECTION_OK) {
					cJSON_Delete(a);
					free(d.sql);
					free(d.params);
					return;		/* still away: keep it for the next turn */
				}
				log_warnx("team_db: a deferred statement failed and is dropped: %s",
					  PQerrorMessage(c));
			}
		}
		cJSON_Delete(a);
		free(d.sql);
		free(d.params);
		v = SV_INT(d.seq);
		store_sql(s, "DELETE FROM team_deferred WHERE seq = ?;", &v, 1, NULL, NULL, NULL);
		pthread_mutex_lock(&t->defer_mu);
		t->ndeferred--;
		pthread_mutex_unlock(&t->defer_mu);
	}
}

struct team_unclaimed {
	struct team_unclaimed *next;
	char owner[];
};

void
team_db_mark_unclaimed(struct team_db *t, const char *owner)
{
	size_t n = strlen(owner) + 1;
	struct team_unclaimed *u = malloc(sizeof(*u) + n);

	if (u == NULL)
		return;		/* out of memory: this one guard is lost, the claim wait above still held */
	memcpy(u->owner, owner, n);
	pthread_mutex_lock(&t->defer_mu);
	u->next = t->unclaimed;
	t->unclaimed = u;
	pthread_mutex_unlock(&t->defer_mu);
}

bool
team_db_take_unclaimed(struct team_db *t, const char *owner)
{
	struct team_unclaimed **pp, *u;
	bool found = false;

	pthread_mutex_lock(&t->defer_mu);
	for (pp = &t->unclaimed; (u = *pp) != NULL; pp = &u->next)
		if (strcmp(u->owner, owner) == 0) {
			*pp = u->next;
			free(u);
			found = true;
			break;
		}
	pthread_mutex_unlock(&t->defer_mu);
	return found;
}

/* ---- rows this run holds ------------------------------------------------- */

struct team_held {
	struct team_held *next;
	char id[];
};

void
team_db_hold(struct team_db *t, enum team_rows which, const char *id)
{
	size_t n = strlen(id) + 1;
	struct team_held *h;

	pthread_mutex_lock(&t->held_mu);
	for (h = t->held[which]; h != NULL; h = h->next)
		if (strcmp(h->id, id) == 0)
			break;
	if (h == NULL && (h = malloc(sizeof(*h) + n)) != NULL) {
		memcpy(h->id, id, n);
		h->next = t->held[which];
		t->held[which] = h;
	}
	pthread_mutex_unlock(&t->held_mu);
	if (h == NULL)
		log_warnx("team: out of memory: a row of this mount is not renewed and may lapse");
}

void
team_db_unhold(struct team_db *t, enum team_rows which, const char *id)
{
	struct team_held **pp, *h;

	pthread_mutex_lock(&t->held_mu);
	for (pp = &t->held[which]; (h = *pp) != NULL; pp = &h->next)
		if (strcmp(h->id, id) == 0) {
			*pp = h->next;
			free(h);
			break;
		}
	pthread_mutex_unlock(&t->held_mu);
}

/*
 * The ids held in which as one PostgreSQL array literal ("{"a","b"}"),
 * malloc'd; NULL when none is held (or out of memory: this round renews
 * nothing of which, the next tries again).
 */
static char *
held_array(struct team_db *t, enum team_rows which)
{
	const struct team_held *h;
	size_t len = 3;
	char *a = NULL, *o;

	pthread_mutex_lock(&t->held_mu);
	for (h = t->held[which]; h != NULL; h = h->next)
		len += 2 * strlen(h->id) + 3;
	if (t->held[which] != NULL && (a = malloc(len)) != NULL) {
		o = a;
		*o++ = '{';
		for (h = t->held[which]; h != NULL; h = h->next) {
			if (h != t->held[which])
				*o++ = ',';
			*o++ = '"';
			for (const char *c = h->id; *c; c++) {
				if (*c == '"' || *c == '\\')
					*o++ = '\\';
				*o++ = *c;
			}
			*o++ = '"';
		}
		*o++ = '}';
		*o = '\0';
	}
	pthread_mutex_unlock(&t->held_mu);
	return a;
}

static void
held_free(struct team_db *t)
{
	for (int i = 0; i < TEAM_NROWS; i++)
		while (t->held[i] != NULL) {
			struct team_held *h = t->held[i];

			t->held[i] = h->next;
			free(h);
		}
}

/* ---- waking waiters ----------------------------------------------------- */

static void
wake_all(struct team_db *t)
{
	pthread_mutex_lock(&t->wake_mu);
	t->wake_gen++;
	pthread_cond_broadcast(&t->wake_cv);
	pthread_mutex_unlock(&t->wake_mu);
}

unsigned long
team_db_wake_gen(struct team_db *t)
{
	unsigned long g;

	pthread_mutex_lock(&t->wake_mu);
	g = t->wake_gen;
	pthread_mutex_unlock(&t->wake_mu);
	return g;
}

void
team_db_wait(struct team_db *t, unsigned long gen, double timeout_s)
{
	struct timespec ts;
	double s;

	clock_gettime(CLOCK_REALTIME, &ts);
	s = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9 + (timeout_s > 0 ? timeout_s : 0);
	ts.tv_sec = (time_t)s;
	ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
	pthread_mutex_lock(&t->wake_mu);
	while (t->wake_gen == gen && !atomic_load(&t->stopping))
		if (pthread_cond_timedwait(&t->wake_cv, &t->wake_mu, &ts) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&t->wake_mu);
}

/* ---- the background thread ---------------------------------------------- */

/*
 * Extends the lease of the rows this mount holds: the claims, slots and
 * reservations its requests hold (team_db_hold).  Errors: the next round
 * tries again.
 */
static void
renew_leases(struct team_db *t, PGconn *c)
{
	static const char *const table[TEAM_NROWS] = { "claims", "slots", "reservations" };
	static const char *const column[TEAM_NROWS] = { "owner", "owner", "id" };
	const char *p[3];
	char lease[32], sql[200];

	snprintf(lease, sizeof(lease), "%g", t->lease_s);
	p[0] = t->owner;
	p[1] = lease;
	for (int i = 0; i < TEAM_NROWS; i++) {
		char *ids = held_array(t, (enum team_rows)i);

		if (ids == NULL)
			continue;
		p[2] = ids;
		snprintf(sql, sizeof(sql), "UPDATE bananafs.%s SET expires = now() + make_interval(secs => "
			 "$2::float8) WHERE mount = $1 AND %s = ANY ($3::text[])", table[i], column[i]);
		PQclear(PQexecParams(c, sql, 3, NULL, p, NULL, NULL, 0));
		free(ids);
	}
}

/*
 * Settles what dead mounts left (bananafs.reap()): a request a dead mount
 * had on the wire becomes an "unknown" row even when nobody takes its claim
 * over.  Every mount runs it; the function's lock makes that safe.  Errors
 * (a database whose functions an older bananafs made) wait for the next round.
 */
static void
reap_dead(struct team_db *t, PGconn *c)
{
	char lease[32], day[16];
	const char *p[2] = { lease, day };
	time_t now = time(NULL);
	struct tm tm;
	PGresult *r;

	snprintf(lease, sizeof(lease), "%g", t->lease_s);
	if (localtime_r(&now, &tm) == NULL || strftime(day, sizeof(day), "%Y-%m-%d", &tm) == 0)
		return;
	r = PQexecParams(c, "SELECT bananafs.reap($1::float8, $2::date)", 2, NULL, p, NULL, NULL, 0);
	if (PQresultStatus(r) == PGRES_TUPLES_OK && atoi(PQgetvalue(r, 0, 0)) > 0)
		log_info("team_db: %s request(s) of a dead mount recorded as unknown, counted as billed",
			 PQgetvalue(r, 0, 0));
	else if (PQresultStatus(r) != PGRES_TUPLES_OK)
		log_debug("team_db: reap: %s", PQerrorMessage(c));
	PQclear(r);
}

static PGconn *
bg_connect(struct team_db *t)
{
	PGconn *c = connect_db(t->conninfo, t->lease_s);
	char err[256];

	if (c == NULL || PQstatus(c) != CONNECTION_OK ||
	    exec_simple(c, "LISTEN " TEAM_CHANNEL, err, sizeof(err)) < 0) {
		PQfinish(c);
		return NULL;
	}
	return c;
}

/*
 * Listens and renews.  Notifications wake every waiter; so does a
 * reconnect (notifications were lost while we were away, so waiters must
 * look again).
 */
static void *
bg_main(void *arg)
{
	struct team_db *t = arg;
	PGconn *c = NULL;
	double renew_every = t->lease_s / 3, next_renew = 0, now;
	struct pollfd pfd;
	PGnotify *n;

	while (!atomic_load(&t->stopping)) {
		if (c == NULL || PQstatus(c) != CONNECTION_OK) {
			PQfinish(c);
			c = bg_connect(t);
			if (c == NULL) {
				usleep(500 * 1000);
				continue;
			}
			wake_all(t);
			next_renew = 0;
		}
		now = mono_now();
		if (now >= next_renew) {
			renew_leases(t, c);
			reap_dead(t, c);
			next_renew = now + renew_every;
		}
		run_deferred(t, c, next_renew);
		pfd.fd = PQsocket(c);
		pfd.events = POLLIN;
		pfd.revents = 0;
		if (pfd.fd < 0 || poll(&pfd, 1, 200) < 0) {
			if (errno != EINTR)
				usleep(200 * 1000);
			continue;
		}
		if (pfd.revents != 0 && PQconsumeInput(c) == 0)
			continue;	/* lost: reconnect on the next turn */
		while ((n = PQnotifies(c)) != NULL) {
			PQfreemem(n);
			wake_all(t);
		}
	}
	PQfinish(c);
	return NULL;
}

/* ---- open and close ----------------------------------------------------- */

static void
make_owner(struct team_db *t)
{
	char host[40] = "host";
	unsigned int rnd = 0;
	FILE *f = fopen("/dev/urandom", "re");

	if (f != NULL) {
		if (fread(&rnd, sizeof(rnd), 1, f) != 1)
			rnd = (unsigned int)time(NULL);
		fclose(f);
	}
	gethostname(host, sizeof(host) - 1);
	host[sizeof(host) - 1] = '\0';
	snprintf(t->owner, sizeof(t->owner), "%s.%ld.%08x", host, (long)getpid(), rnd);
}

int
team_db_open(struct team_db *t, const char *conninfo, double lease_s, bool allow_offline,
	     char *err, size_t errlen)
{
	memset(t, 0, sizeof(*t));
	t->lock_fd = -1;
	t->lease_s = lease_s > 0 ? lease_s : 30;
	make_owner(t);
	t->conninfo = strdup(conninfo);
	if (t->conninfo == NULL) {
		errbuf_set(err, errlen, "team_db: out of memory");
		return -1;
	}
	t->conn = connect_db(conninfo, t->lease_s);
	if (t->conn == NULL || PQstatus(t->conn) != CONNECTION_OK) {
		connect_error(t->conn, err, errlen);
		/* A refused password is a mistake to fix now, not an outage to ride out. */
		if (!allow_offline || (t->conn != NULL && (PQconnectionNeedsPassword(t->conn) ||
							  PQconnectionUsedPassword(t->conn))))
			goto out_free;
		t->last_try = mono_now();
		PQfinish(t->conn);
		t->conn = NULL;
		goto out_init;
	}
	if (schema_ensure(t->conn, err, errlen) < 0)
		goto out_free;
	t->schema_ok = true;
	t->online = true;
out_init:
	pthread_mutex_init(&t->defer_mu, NULL);
	pthread_mutex_init(&t->held_mu, NULL);
	pthread_mutex_init(&t->mu, NULL);
	pthread_mutex_init(&t->wake_mu, NULL);
	pthread_cond_init(&t->wake_cv, NULL);
	return t->online ? 0 : 1;

out_free:
	PQfinish(t->conn);
	t->conn = NULL;
	free(t->conninfo);
	t->conninfo = NULL;
	return -1;
}

int
team_db_start(struct team_db *t, char *err, size_t errlen)
{
	if (pthread_create(&t->bg, NULL, bg_main, t) != 0) {
		errbuf_set(err, errlen, "team_db: cannot start the background thread");
		return -1;
	}
	t->bg_started = true;
	return 0;
}

void
team_db_close(struct team_db *t)
{
	if (t->conninfo == NULL)
		return;
	atomic_store(&t->stopping, 1);
	if (t->bg_started) {
		wake_all(t);
		pthread_join(t->bg, NULL);
		t->bg_started = false;
	}
	if (t->ndeferred > 0) {
		/* One last try on the request connection; what is left waits in state.db. */
		pthread_mutex_lock(&t->mu);
		if (ensure_conn(t))
			run_deferred(t, t->conn, INFINITY);
		pthread_mutex_unlock(&t->mu);
		if (t->ndeferred > 0)
			log_warnx("team_db: %d statement(s) could not reach the team database before "
				  "unmount; they are kept in the store and written at the next mount",
				  t->ndeferred);
	}
	while (t->unclaimed != NULL) {
		struct team_unclaimed *u = t->unclaimed;

		t->unclaimed = u->next;
		free(u);
	}
	pthread_cond_destroy(&t->wake_cv);
	pthread_mutex_destroy(&t->wake_mu);
	pthread_mutex_destroy(&t->mu);
	held_free(t);
	pthread_mutex_destroy(&t->held_mu);
	pthread_mutex_destroy(&t->defer_mu);
	PQfinish(t->conn);
	t->conn = NULL;
	free(t->conninfo);
	t->conninfo = NULL;
	if (t->lock_fd >= 0)
		close(t->lock_fd);
	t->lock_fd = -1;
}
