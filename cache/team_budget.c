/*
 * team_budget.c - the budget seam (cache/budget.h) on the team database:
 * budget_daily_usd and budget_total_usd hold for the whole team.
 *
 * A reservation is one statement, bananafs.reserve() (cache/team_db.c):
 * under an advisory lock it checks spent + live reservations + this one
 * against each limit and inserts the row keyed by the reservation id.  A
 * retried statement finds its row and succeeds without counting twice.
 * Spent is the team's billed ledger rows (bananafs.spent()), each line's
 * own row, what `bananactl cost --team` sums: an "unknown" charge counts
 * once whichever mount recorded it.  A settlement ends the reservation;
 * it runs after the outcome's ledger row (team_db_exec_in_order), so the
 * money counts as reserved until it counts as spent.
 * Reservation ids are the pipeline's walk ids prefixed with this store's
 * id (team_db_id), so two machines' names never meet.  Leases: the row lives
 * team_lease_s and the background thread of team_db.c renews it from
 * reserve to settle (team_db_hold): a reservation whose settlement was
 * dropped lapses like a dead mount's instead of holding budget; a mount that dies stops renewing and its reservations stop
 * counting: what its requests may have cost becomes "unknown" rows, written
 * by the mount that takes its claim over (reserve()), or by any live mount
 * once the lease has ended (reap()), or by the dead store's next run.
 *
 * No paid request starts without a reservation: while the database cannot
 * be reached, reserve waits up to team_lease_s for it and then refuses with
 * a clear reason.  A settlement that cannot reach the database is deferred
 * (team_db_defer) and written when it is back.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api/errbuf.h"
#include "cache/budget.h"
#include "cache/team.h"
#include "cache/team_db.h"

struct team_budget {
	struct team_db *db;
	double daily, total;		/* USD, < 0 = none */
	const struct clock_ops *clk;	/* the local day a reservation counts toward */
	pthread_mutex_t mu;		/* protects last_* */
	double last_today, last_total, last_reserved;	/* the last snapshot that reached the server */
};

static int
tb_reserve(void *st, const char *id, double usd, double ttl_s, char *why, size_t whylen)
{
	struct team_budget *b = st;
	char gid[TEAM_ID_LEN], usd_s[32], day[16], lease[32], daily[32], total[32], err[256];
	const char *p[7] = { gid, b->db->owner, usd_s, day, lease, daily, total };
	double waited = 0;
	struct tm tm;
	time_t now = (time_t)b->clk->wall(b->clk->ctx);
	PGresult *r;
	int rc;

	(void)ttl_s;	/* the team's lease (team_lease_s), renewed by team_db.c, replaces it */
	if (usd < 0) {
		if (b->daily < 0 && b->total < 0)
			return 0;
		errbuf_set(why, whylen, "the price is unknown and a team budget is set");
		return -1;
	}
	if (team_db_take_unclaimed(b->db, id)) {
		errbuf_set(why, whylen, "the team database could not be reached to claim this request "
			   "for the team, so it may be running on another machine; nothing was sent: "
			   "save the prompt again when the team database is back");
		return -1;
	}
	team_db_id(b->db, id, gid);
	snprintf(usd_s, sizeof(usd_s), "%.6f", usd);
	localtime_r(&now, &tm);
	strftime(day, sizeof(day), "%Y-%m-%d", &tm);
	snprintf(lease, sizeof(lease), "%g", b->db->lease_s);
	snprintf(daily, sizeof(daily), "%.6f", b->daily);
	snprintf(total, sizeof(total), "%.6f", b->total);
	for (;;) {
		r = team_db_exec(b->db, "SELECT bananafs.reserve($1, $2, $3::float8, $4::date, $5::float8, "
				 "$6::float8, $7::float8)", 7, p, err, sizeof(err));
		if (r != NULL)
			break;
		if (team_db_online(b->db) || waited >= b->db->lease_s) {
			errbuf_set(why, whylen, "no team budget reservation could be made (%s); nothing "
				   "was sent: paid requests wait for the team database", err);
			return -1;
		}
		usleep(500 * 1000);
		waited += 0.5;
	}
	rc = PQgetvalue(r, 0, 0)[0] == '\0' ? 0 : -1;
	if (rc < 0)
		errbuf_set(why, whylen, "%s", PQgetvalue(r, 0, 0));
	else
		team_db_hold(b->db, TEAM_RESERVATIONS, gid);
	PQclear(r);
	return rc;
}

static int
tb_renew(void *st, const char *id, double ttl_s)
{
	struct team_budget *b = st;
	char gid[TEAM_ID_LEN], lease[32], err[256];
	const char *p[2] = { gid, lease };
	PGresult *r;
	int rc;

	(void)ttl_s;
	team_db_id(b->db, id, gid);
	snprintf(lease, sizeof(lease), "%g", b->db->lease_s);
	r = team_db_exec(b->db, "UPDATE bananafs.reservations SET expires = now() + make_interval(secs "
			 "=> $2::float8) WHERE id = $1 AND NOT settled", 2, p, err, sizeof(err));
	if (r == NULL)
		return 0;	/* unreachable: the reservation stands until we can say more */
	rc = atoi(PQcmdTuples(r)) > 0 ? 0 : -1;
	PQclear(r);
	if (rc == 0)
		team_db_hold(b->db, TEAM_RESERVATIONS, gid);
	else
		team_db_unhold(b->db, TEAM_RESERVATIONS, gid);
	return rc;
}

/* actual_usd is what the walk paid, for reading; the spending is the ledger rows. */
static const char settle_sql[] =
	"UPDATE bananafs.reservations SET settled = true, actual_usd = $2::float8 WHERE id = $1";

static void
tb_settle(void *st, const char *id, double actual)
{
	struct team_budget *b = st;
	char gid[TEAM_ID_LEN], usd[32];
	const char *p[2] = { gid, usd };

	team_db_id(b->db, id, gid);
	team_db_unhold(b->db, TEAM_RESERVATIONS, gid);
	snprintf(usd, sizeof(usd), "%.6f", actual > 0 ? actual : 0);
	team_db_exec_in_order(b->db, settle_sql, 2, p);
}

static void
tb_snapshot(void *st, double *spent_today, double *spent_total, double *reserved)
{
	struct team_budget *b = st;
	char day[16], err[256];
	const char *p[1] = { day };
	struct tm tm;
	time_t now = (time_t)b->clk->wall(b->clk->ctx);
	PGresult *r;

	localtime_r(&now, &tm);
	strftime(day, sizeof(day), "%Y-%m-%d", &tm);
	r = team_db_exec(b->db, "SELECT sp.today, sp.total, (SELECT coalesce(sum(usd), 0) FROM "
			 "bananafs.reservations WHERE NOT settled AND expires > now()) "
			 "FROM bananafs.spent($1::date) sp", 1, p, err, sizeof(err));
	pthread_mutex_lock(&b->mu);
	if (r != NULL) {
		b->last_today = atof(PQgetvalue(r, 0, 0));
		b->last_total = atof(PQgetvalue(r, 0, 1));
		b->last_reserved = atof(PQgetvalue(r, 0, 2));
	}
	*spent_today = b->last_today;
	*spent_total = b->last_total;
	*reserved = b->last_reserved;
	pthread_mutex_unlock(&b->mu);
	PQclear(r);
}

static void
tb_destroy(void *st)
{
	struct team_budget *b = st;

	pthread_mutex_destroy(&b->mu);
	free(b);
}

static const struct budget_ops team_budget_ops = {
	.name = "team",
	.reserve = tb_reserve,
	.renew = tb_renew,
	.settle = tb_settle,
	.snapshot = tb_snapshot,
	.destroy = tb_destroy,
};

int
budget_team_open(struct budget *b, struct team_db *db, double daily_limit, double total_limit,
		 const struct clock_ops *clk)
{
	struct team_budget *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return -1;
	t->db = db;
	t->daily = daily_limit;
	t->total = total_limit;
	t->clk = clk ? clk : &clock_real;
	pthread_mutex_init(&t->mu, NULL);
	b->ops = &team_budget_ops;
	b->state = t;
	return 0;
}
