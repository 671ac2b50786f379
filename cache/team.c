/*
 * team.c - switches an open pipeline to the team's backends (team.h).
 */
#include "cache/team.h"

#include "api/errbuf.h"
#include "cache/fetch.h"
#include "cache/team_db.h"

int
team_attach(struct fetch_ctx *f, struct team_db *db, char *err, size_t errlen)
{
	const struct config *cfg = f->cfg;
	struct budget b = { 0 };
	struct inflight fl = { 0 };
	struct limiter l = { 0 };

	if (budget_team_open(&b, db, cfg->budget_daily_usd, cfg->budget_total_usd) < 0 ||
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
	f->ledger.mirror = team_ledger_mirror;
	f->ledger.mirror_arg = db;
	return 0;
}
