/*
 * team.h - team mode's backends behind the pipeline's seams.
 *
 * One pipeline (cache/fetch.c), two backends: with team_db set, the budget,
 * the in-flight table, the limiter and the cache index are the team's
 * (cache/team_budget.c, team_inflight.c, team_limiter.c, team_index.c), and
 * every ledger line is mirrored as a row (team_ledger.c).  All of them run
 * their statements through one struct team_db (cache/team_db.h).
 */
#ifndef BANANAFS_CACHE_TEAM_H
#define BANANAFS_CACHE_TEAM_H

#include <stddef.h>
#include "api/clock.h"
#include "api/limiter.h"
#include "cache/budget.h"
#include "cache/index.h"
#include "cache/inflight.h"
#include "cache/ledger.h"

struct team_db;
struct fetch_ctx;

/*
 * Each: 0, or -1 (out of memory).  db must outlive the backend.  clk (NULL:
 * clock_real) gives the budget its local day, the limiter its waits.
 */
int budget_team_open(struct budget *b, struct team_db *db, double daily_limit, double total_limit,
		     const struct clock_ops *clk);
int inflight_team_open(struct inflight *f, struct team_db *db);
int limiter_team_open(struct limiter *l, struct team_db *db, int max_inflight, int rpm,
		      const struct clock_ops *clk);
/* The hook that spreads one model's 429 pause to the team (api/retry.h); lives as long as l. */
const struct quota_share *limiter_team_share(struct limiter *l);
/*
 * Puts the team index in front of the local one (*ops, *state), which it
 * then owns.  folder: team_objects, or NULL for bytes in the database.
 * 0, or -1 with err.
 */
int index_team_wrap(const struct index_ops **ops, void **state, struct team_db *db,
		    const char *objects_dir, const char *folder, char *err, size_t errlen);
/* A ledger mirror (struct ledger's mirror) with arg = the struct team_db. */
void team_ledger_mirror(void *arg, const struct ledger_rec *r, const char *json_line);

/*
 * Replaces the local budget, in-flight table and limiter of an open
 * fetch_ctx with the team's, puts the team index in front of the store's,
 * and mirrors the ledger.  Call once, before any request.  0 or -1 with err.
 */
int team_attach(struct fetch_ctx *f, struct team_db *db, char *err, size_t errlen);

#endif
