/*
 * team.c - switches an open pipeline to the team's backends (team.h).
 */
#include "cache/team.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <unistd.h>

#include "api/errbuf.h"
#include "cache/fetch.h"
#include "cache/log.h"
#include "cache/team_db.h"

static int
first_text(const struct store_val *cols, int ncols, void *arg)
{
	char *out = arg;

	if (ncols >= 1 && cols[0].t == SVT_TEXT && strlen(cols[0].s) < TEAM_OWNER_LEN)
		memcpy(out, cols[0].s, strlen(cols[0].s) + 1);
	return 0;
}

/*
 * This store's id in the team, made once and kept in its state.db:
 * "<host>-<random>".  Every claim, reservation and slot of the mount is
 * named under it, so the mount's next run recognises them (team_db_id).
 */
static int
store_team_id(struct store *s, char out[TEAM_OWNER_LEN], char *err, size_t errlen)
{
	char host[25] = "host";
	unsigned char rnd[6];
	struct store_val v;

	out[0] = '\0';
	if (store_sql(s, "CREATE TABLE IF NOT EXISTS team_store(id TEXT NOT NULL);", NULL, 0, NULL, NULL,
		      NULL) != 0 ||
	    store_sql(s, "SELECT id FROM team_store LIMIT 1;", NULL, 0, first_text, out, NULL) != 0)
		goto out_err;
	if (out[0] != '\0')
		return 0;
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
		errbuf_set(err, errlen, "team: no randomness for the store's team id");
		return -1;
	}
	gethostname(host, sizeof(host) - 1);
	host[sizeof(host) - 1] = '\0';
	for (char *c = host; *c; c++)
		if (*c == '/')
			*c = '_';
	snprintf(out, TEAM_OWNER_LEN, "%s-%02x%02x%02x%02x%02x%02x", host, rnd[0], rnd[1], rnd[2], rnd[3],
		 rnd[4], rnd[5]);
	v = SV_TXT(out);
	if (store_sql(s, "INSERT INTO team_store(id) VALUES(?);", &v, 1, NULL, NULL, NULL) == 0)
		return 0;
out_err:
	errbuf_set(err, errlen, "team: cannot keep the store's team id in state.db");
	return -1;
}

/*
 * One bananafs per store: the team takes over claims of the store's
 * earlier runs at once, which is right only when that run is dead.  The
 * lock dies with the process (kill -9 included).
 */
static int
lock_store(struct team_db *db, struct store *s, char *err, size_t errlen)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/team.lock", s->dir);
	db->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (db->lock_fd < 0 || flock(db->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		errbuf_set(err, errlen, "team: the store %s is in use by another bananafs", s->dir);
		return -1;
	}
	return 0;
}

/* Limiter slots of the store's earlier runs (dead: see lock_store) stop counting now. */
static void
release_earlier_runs(struct team_db *db)
{
	const char *p[2] = { db->store_id, db->owner };
	char err[256];

	PQclear(team_db_exec(db, "DELETE FROM bananafs.slots WHERE split_part(owner, '/', 1) = $1 "
			     "AND mount <> $2", 2, p, err, sizeof(err)));
}

/*
 * The reservations of the store's earlier runs (dead) end now, after the
 * rows of the lines fetch_open wrote (in order): what those runs may have
 * spent is in their ledger lines ("unknown" for a request a crash hid),
 * and the team counts rows, so the reservation would count it twice until
 * its lease ended.  A journaled request is polled under a new reservation.
 * Batch items keep theirs: the batch is polled again under the same id.
 */
static void
release_earlier_reservations(struct team_db *db)
{
	const char *p[2] = { db->store_id, db->owner };

	team_db_exec_in_order(db, "UPDATE bananafs.reservations SET settled = true, actual_usd = 0 "
			      "WHERE split_part(id, '/', 1) = $1 AND mount <> $2 AND NOT settled "
			      "AND split_part(id, '/', 2) NOT LIKE 'batch.%'", 2, p);
}

int
team_attach(struct fetch_ctx *f, struct team_db *db, char *err, size_t errlen)
{
	const struct config *cfg = f->cfg;
	struct budget b = { 0 };
	struct inflight fl = { 0 };
	struct limiter l = { 0 };
	char sid[TEAM_OWNER_LEN];

	if (lock_store(db, f->store, err, errlen) < 0 || store_team_id(f->store, sid, err, errlen) < 0)
		return -1;
	if (team_db_set_store(db, f->store, sid) < 0) {
		errbuf_set(err, errlen, "team: cannot keep deferred team statements in state.db");
		return -1;
	}
	if (budget_team_open(&b, db, cfg->budget_daily_usd, cfg->budget_total_usd, f->clk) < 0 ||
	    inflight_team_open(&fl, db) < 0 ||
	    limiter_team_open(&l, db, cfg->max_inflight > 0 ? cfg->max_inflight : 1,
			      cfg->rpm > 0 ? cfg->rpm : 0, f->clk) < 0 ||
	    index_team_wrap(&f->store->index, &f->store->index_state, db, f->store->objects_dir,
			    cfg->team_objects, err, errlen) < 0) {
		if (err[0] == '\0')
			errbuf_set(err, errlen, "team: out of memory");
		budget_close(&b);
		inflight_close(&fl);
		limiter_close(&l);
		return -1;
	}
	budget_close(&f->budget);
	inflight_close(&f->inflight);
	limiter_close(&f->limiter);
	f->budget = b;
	f->inflight = fl;
	f->limiter = l;
	f->pauses.share = limiter_team_share(&f->limiter);
	release_earlier_runs(db);
	/* The "unknown" lines fetch_open wrote for requests a crash hid become rows too. */
	if (ledger_set_mirror(&f->ledger, team_ledger_mirror, db) < 0)
		log_warnx("team: the ledger lines written at mount could not all be read for the team");
	release_earlier_reservations(db);
	return 0;
}
