/*
 * team_limiter.c - the limiter seam (api/limiter.h) on the team database:
 * max_inflight and rpm hold for the team, and a per-minute 429 seen by one
 * mount pauses every mount until the time the server named.
 *
 * A start takes this mount's local limiter first (it bounds the mount's
 * own threads and keeps working while the database is away), then a team
 * slot: bananafs.slot_take() checks the team's pause, its live slots and
 * its 60 s start window under one advisory lock and inserts the slot.
 * Slots carry the team lease and are renewed by team_db.c's background
 * thread while a request holds them (team_db_hold), so a dead mount's
 * slots, and one whose release was lost, free themselves.  When the database
 * cannot be reached the local limiter alone decides: no request is paid
 * without a budget reservation anyway (team_budget.c), so an outage can
 * at worst bend the team's rpm, never its money.
 *
 * A 429 for one model (not the project) pauses that model only
 * (api/retry.h's quota_pauses); its share hook writes the pause into
 * bananafs.model_pause, and every mount's check of that model reads it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/limiter.h"
#include "api/retry.h"
#include "cache/team.h"
#include "cache/team_db.h"

struct team_limiter {
	struct team_db *db;
	struct limiter local;		/* this mount's own slots, window and pause */
	int max_inflight, rpm;
	const struct clock_ops *clk;
	struct quota_share share;	/* one model's 429 (api/retry.h), spread to the team */
};

/* bananafs.slot_take: 0 taken (or free when !take), > 0 seconds, -1 all taken, -2 unreachable. */
static double
slot_take(struct team_limiter *l, const char *gid, bool take)
{
	char max[16], rpm[16], lease[32], err[256];
	const char *p[6] = { gid, l->db->owner, max, rpm, lease, take ? "true" : "false" };
	PGresult *r;
	double v;

	snprintf(max, sizeof(max), "%d", l->max_inflight);
	snprintf(rpm, sizeof(rpm), "%d", l->rpm);
	snprintf(lease, sizeof(lease), "%g", l->db->lease_s);
	r = team_db_exec(l->db, "SELECT bananafs.slot_take($1, $2, $3::integer, $4::integer, $5::float8, "
			 "$6::boolean)", 6, p, err, sizeof(err));
	if (r == NULL)
		return -2;
	v = atof(PQgetvalue(r, 0, 0));
	PQclear(r);
	return v;
}

static double
tl_next_wait(void *st)
{
	struct team_limiter *l = st;
	double local = limiter_next_wait(&l->local), team = slot_take(l, "", false);

	if (team == -1)
		team = 1;	/* every slot is taken: at least until one is released */
	if (team < 0)
		team = 0;
	return local > team ? local : team;
}

static void
tl_acquire(void *st, const char *owner, bool *waited)
{
	struct team_limiter *l = st;
	char gid[TEAM_ID_LEN];
	double w;
	unsigned long gen;

	limiter_acquire(&l->local, owner, waited);
	team_db_id(l->db, owner, gid);
	for (;;) {
		gen = team_db_wake_gen(l->db);
		w = slot_take(l, gid, true);
		if (w == 0)
			team_db_hold(l->db, TEAM_SLOTS, gid);
		if (w == 0 || w == -2)
			return;		/* taken, or the database is away: the local limiter decided */
		*waited = true;
		/* A release notifies; the rpm window and the pause are waited out, a second at a time. */
		team_db_wait(l->db, gen, w > 0 && w < 1 ? w : 1);
	}
}

static const char release_sql[] =
	"WITH d AS (DELETE FROM bananafs.slots WHERE owner = $1 RETURNING 1) "
	"SELECT pg_notify('bananafs_claims', '') FROM d";

static void
tl_release(void *st, const char *owner)
{
	struct team_limiter *l = st;
	char gid[TEAM_ID_LEN], err[256];
	const char *p[1] = { gid };
	PGresult *r;

	team_db_id(l->db, owner, gid);
	team_db_unhold(l->db, TEAM_SLOTS, gid);
	r = team_db_exec(l->db, release_sql, 1, p, err, sizeof(err));
	if (r == NULL)
		team_db_defer(l->db, release_sql, 1, p);
	PQclear(r);
	limiter_release(&l->local, owner);
}

static void
tl_pause(void *st, double s)
{
	struct team_limiter *l = st;
	char secs[32], err[256];
	const char *p[1] = { secs };
	PGresult *r;

	limiter_pause(&l->local, s);
	snprintf(secs, sizeof(secs), "%.3f", s > 0 ? s : 0);
	r = team_db_exec(l->db, "UPDATE bananafs.pause SET until = greatest(until, now() + "
			 "make_interval(secs => $1::float8)) WHERE id = 1", 1, p, err, sizeof(err));
	PQclear(r);
}

/* The team's 429 pause left (a machine of the team met it), or this mount's own. */
static double
tl_paused_for(void *st)
{
	struct team_limiter *l = st;
	double local = limiter_paused_for(&l->local), team = 0;
	char err[256];
	PGresult *r;

	r = team_db_exec(l->db, "SELECT CASE WHEN until > now() THEN extract(epoch FROM until - now()) "
			 "ELSE 0 END FROM bananafs.pause WHERE id = 1", 0, NULL, err, sizeof(err));
	if (r != NULL && PQntuples(r) == 1)
		team = atof(PQgetvalue(r, 0, 0));
	PQclear(r);
	return local > team ? local : team;
}

/* A model's pause, as an absolute time in the database, so every machine ends it together. */
static void
share_pause(void *arg, const char *model, double until)
{
	struct team_limiter *l = arg;
	char secs[32], err[256];
	const char *p[2] = { model, secs };
	double s = until - l->clk->now(l->clk->ctx);
	PGresult *r;

	snprintf(secs, sizeof(secs), "%.3f", s > 0 ? s : 0);
	r = team_db_exec(l->db, "INSERT INTO bananafs.model_pause VALUES ($1, now() + make_interval(secs => "
			 "$2::float8)) ON CONFLICT (model) DO UPDATE SET until = greatest("
			 "bananafs.model_pause.until, EXCLUDED.until)", 2, p, err, sizeof(err));
	PQclear(r);
}

static double
share_until(void *arg, const char *model, double now)
{
	struct team_limiter *l = arg;
	const char *p[1] = { model };
	char err[256];
	double left = 0;
	PGresult *r;

	r = team_db_exec(l->db, "SELECT extract(epoch FROM until - now()) FROM bananafs.model_pause "
			 "WHERE model = $1 AND until > now()", 1, p, err, sizeof(err));
	if (r != NULL && PQntuples(r) == 1)
		left = atof(PQgetvalue(r, 0, 0));
	PQclear(r);
	return left > 0 ? now + left : 0;
}

const struct quota_share *
limiter_team_share(struct limiter *l)
{
	struct team_limiter *t = l->state;

	return &t->share;
}

static void
tl_destroy(void *st)
{
	struct team_limiter *l = st;

	limiter_close(&l->local);
	free(l);
}

static const struct limiter_ops team_limiter_ops = {
	.name = "team",
	.next_wait = tl_next_wait,
	.acquire = tl_acquire,
	.release = tl_release,
	.pause = tl_pause,
	.paused_for = tl_paused_for,
	.destroy = tl_destroy,
};

int
limiter_team_open(struct limiter *l, struct team_db *db, int max_inflight, int rpm,
		  const struct clock_ops *clk)
{
	struct team_limiter *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return -1;
	if (limiter_local_open(&t->local, max_inflight, rpm, clk) < 0) {
		free(t);
		return -1;
	}
	t->db = db;
	t->max_inflight = max_inflight;
	t->rpm = rpm;
	t->clk = clk;
	t->share = (struct quota_share){ share_pause, share_until, t };
	l->ops = &team_limiter_ops;
	l->state = t;
	return 0;
}
