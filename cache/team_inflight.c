/*
 * team_inflight.c - the in-flight seam (cache/inflight.h) on the team
 * database: one live claim per cache key across every mount of the team.
 *
 * Leases.  A claim row lives team_lease_s (the caller's lease is replaced
 * by it) and team_db.c's background thread renews each claim this mount's
 * requests hold (from claim() to done(), team_db_hold) each third of that
 * time; a claim whose end was lost lapses as a dead mount's would.  So a mount that dies (kill -9, power, network)
 * loses its claims after at most team_lease_s, and the next claim() takes
 * the key over (the mount's own next run takes its earlier run's claims at
 * once: same store id, another run).  When the dead owner's request had
 * become a background interaction, its id is in the claim row (note(),
 * written as soon as the create call returned): the new owner polls it
 * instead of paying again; an owner that is alive but lost its claim
 * (renewals that did not arrive in time) sees it at its next poll and
 * leaves the interaction to the new owner.  Otherwise bananafs.reserve() records the dead
 * owner's request as an "unknown" ledger row and counts its reservation as
 * spent when it may have reached Google (a "sent" row with no outcome);
 * when nobody takes the claim over, every live mount's bananafs.reap()
 * (team_db.c) records the same row once the lease has ended.
 * While the database is unreachable nobody renews, but nobody can take a
 * claim over either: the clock that decides is the database's.
 *
 * Waiting.  wait() looks at the claim, then sleeps until a notification
 * (bananafs.claim_done() notifies) or a bounded poll, because
 * notifications sent while our listener was disconnected are lost.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache/inflight.h"
#include "cache/team.h"
#include "cache/team_db.h"

struct team_inflight {
	struct team_db *db;
};

/* Seconds between two looks at a claim we wait for. */
static double
poll_s(const struct team_db *db)
{
	double s = db->lease_s / 4;

	return s < 0.2 ? 0.2 : s > 2 ? 2 : s;
}

/* How long a claim waits for an unreachable server before giving up. */
static double
claim_patience(const struct team_db *db)
{
	return db->lease_s * 3 > 10 ? db->lease_s * 3 : 10;
}

static int
ti_claim(void *st, const struct cache_key *k, const char *owner, double lease_s)
{
	struct team_inflight *f = st;
	char hex[KEY_HEX_LEN], gid[TEAM_ID_LEN], lease[32], err[256];
	const char *p[4] = { hex, gid, f->db->owner, lease };
	PGresult *r;
	int rc;

	(void)lease_s;
	key_hex(k, hex);
	team_db_id(f->db, owner, gid);
	snprintf(lease, sizeof(lease), "%g", f->db->lease_s);
	/* A short outage (a restarted server) is waited out: owning the key alone could pay twice. */
	for (double away = 0;; away += 0.5) {
		r = team_db_exec(f->db, "SELECT bananafs.claim($1, $2, $3, $4::float8)", 4, p, err,
				 sizeof(err));
		if (r != NULL || team_db_online(f->db) || away >= claim_patience(f->db))
			break;
		usleep(500 * 1000);
	}
	if (r == NULL) {
		team_db_mark_unclaimed(f->db, owner);
		return INFLIGHT_ERR;
	}
	rc = atoi(PQgetvalue(r, 0, 0)) == 1 ? INFLIGHT_OWNER : INFLIGHT_HELD;
	PQclear(r);
	if (rc == INFLIGHT_OWNER)
		team_db_hold(f->db, TEAM_CLAIMS, gid);
	return rc;
}

static int
ti_renew(void *st, const struct cache_key *k, const char *owner, double lease_s)
{
	struct team_inflight *f = st;
	char hex[KEY_HEX_LEN], gid[TEAM_ID_LEN], lease[32], err[256];
	const char *p[3] = { hex, gid, lease };
	PGresult *r;
	int rc;

	(void)lease_s;
	key_hex(k, hex);
	team_db_id(f->db, owner, gid);
	snprintf(lease, sizeof(lease), "%g", f->db->lease_s);
	r = team_db_exec(f->db, "UPDATE bananafs.claims SET expires = now() + make_interval(secs => "
			 "$3::float8) WHERE key = $1 AND owner = $2", 3, p, err, sizeof(err));
	if (r == NULL)
		return INFLIGHT_OWNER;	/* unreachable: nobody can take it over meanwhile */
	rc = atoi(PQcmdTuples(r)) > 0 ? INFLIGHT_OWNER : INFLIGHT_HELD;
	PQclear(r);
	if (rc == INFLIGHT_HELD)
		team_db_unhold(f->db, TEAM_CLAIMS, gid);	/* taken over: not ours to renew */
	return rc;
}

static int
ti_wait(void *st, const struct cache_key *k, bool *ok)
{
	struct team_inflight *f = st;
	char hex[KEY_HEX_LEN], lease[32], err[256];
	const char *p[2] = { hex, lease };
	double away = 0;
	unsigned long gen;
	PGresult *r;
	int live, done;

	key_hex(k, hex);
	snprintf(lease, sizeof(lease), "%g", f->db->lease_s);
	for (;;) {
		gen = team_db_wake_gen(f->db);
		r = team_db_exec(f->db, "SELECT EXISTS (SELECT 1 FROM bananafs.claims WHERE key = $1 AND "
				 "greatest(expires, pg_postmaster_start_time() + make_interval(secs => "
				 "$2::float8)) > now()), (SELECT ok FROM bananafs.claim_done WHERE key = $1)",
				 2, p, err, sizeof(err));
		if (r == NULL) {
			/* Unreachable: nobody can pay meanwhile (no reservation); look again later. */
			if ((away += poll_s(f->db)) > 2 * f->db->lease_s)
				return 0;
			team_db_wait(f->db, gen, poll_s(f->db));
			continue;
		}
		away = 0;
		live = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
		done = !PQgetisnull(r, 0, 1);
		if (!live) {
			*ok = done && strcmp(PQgetvalue(r, 0, 1), "t") == 0;
			PQclear(r);
			return done ? 1 : 0;
		}
		PQclear(r);
		team_db_wait(f->db, gen, poll_s(f->db));
	}
}

static const char done_sql[] = "SELECT bananafs.claim_done($1, $2, $3::boolean)";

static void
ti_done(void *st, const struct cache_key *k, const char *owner, bool ok)
{
	struct team_inflight *f = st;
	char hex[KEY_HEX_LEN], gid[TEAM_ID_LEN], err[256];
	const char *p[3] = { hex, gid, ok ? "true" : "false" };
	PGresult *r;

	key_hex(k, hex);
	team_db_id(f->db, owner, gid);
	/* Ended: from now on the background thread leaves it alone, written or not. */
	team_db_unhold(f->db, TEAM_CLAIMS, gid);
	r = team_db_exec(f->db, done_sql, 3, p, err, sizeof(err));
	if (r == NULL)
		team_db_defer(f->db, done_sql, 3, p);
	PQclear(r);
}

static const char note_sql[] =
	"UPDATE bananafs.claims SET interaction = $3 WHERE key = $1 AND owner = $2";

static void
ti_note(void *st, const struct cache_key *k, const char *owner, const char *interaction)
{
	struct team_inflight *f = st;
	char hex[KEY_HEX_LEN], gid[TEAM_ID_LEN], err[256];
	const char *p[3] = { hex, gid, interaction };
	PGresult *r;

	key_hex(k, hex);
	team_db_id(f->db, owner, gid);
	r = team_db_exec(f->db, note_sql, 3, p, err, sizeof(err));
	if (r == NULL)
		team_db_defer(f->db, note_sql, 3, p);
	PQclear(r);
}

static int
ti_noted(void *st, const struct cache_key *k, const char *owner, char *interaction, size_t len)
{
	struct team_inflight *f = st;
	char hex[KEY_HEX_LEN], gid[TEAM_ID_LEN], err[256];
	const char *p[2] = { hex, gid };
	PGresult *r;
	int rc = 0;

	key_hex(k, hex);
	team_db_id(f->db, owner, gid);
	r = team_db_exec(f->db, "SELECT interaction FROM bananafs.claims WHERE key = $1 AND owner = $2 "
			 "AND interaction IS NOT NULL", 2, p, err, sizeof(err));
	if (r != NULL && PQntuples(r) == 1 && strlen(PQgetvalue(r, 0, 0)) < len) {
		memcpy(interaction, PQgetvalue(r, 0, 0), strlen(PQgetvalue(r, 0, 0)) + 1);
		rc = 1;
	}
	PQclear(r);
	return rc;
}

static int
ti_count(void *st)
{
	struct team_inflight *f = st;
	const char *p[1] = { f->db->owner };
	char err[256];
	PGresult *r;
	int n = 0;

	r = team_db_exec(f->db, "SELECT count(*) FROM bananafs.claims WHERE mount = $1 AND "
			 "expires > now()", 1, p, err, sizeof(err));
	if (r != NULL)
		n = atoi(PQgetvalue(r, 0, 0));
	PQclear(r);
	return n;
}

static void
ti_destroy(void *st)
{
	free(st);
}

static const struct inflight_ops team_inflight_ops = {
	.name = "team",
	.claim = ti_claim,
	.renew = ti_renew,
	.wait = ti_wait,
	.done = ti_done,
	.count = ti_count,
	.destroy = ti_destroy,
	.note = ti_note,
	.noted = ti_noted,
};

int
inflight_team_open(struct inflight *f, struct team_db *db)
{
	struct team_inflight *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return -1;
	t->db = db;
	f->ops = &team_inflight_ops;
	f->state = t;
	return 0;
}
