/*
 * team_ledger.c - every ledger line also a row of bananafs.ledger, so the
 * team's spending can be summed in one place (`bananactl cost --team`).
 *
 * The local STORE/ledger.jsonl stays the file users read, and it is
 * written first (fsynced) by cache/ledger.c; this mirror runs after.  A
 * row is unique by (request id, outcome, attempt): the request id is this
 * store's team id, the job id and the cache key, the same in every run of
 * the mount, so a line mirrored twice (a deferred statement run again) is
 * one row, and so is the "unknown" line a crash leaves in the local ledger
 * and the row bananafs.reserve() writes when another machine takes the
 * crashed request's claim over.  The mount column is the run's (owner).  When the database is away the
 * row is deferred (team_db_defer) and written when it is back.
 */
#include <stdio.h>

#include "cache/ledger.h"
#include "cache/team.h"
#include "cache/team_db.h"

static const char row_sql[] =
	"INSERT INTO bananafs.ledger (request_id, outcome, attempt, time, mount, key, model, route, "
	"size, cost_usd, billed, line) VALUES ($1, $2, $3::integer, now(), $4, $5, $6, $7, $8, "
	"$9::float8, $10::boolean, $11::jsonb) ON CONFLICT DO NOTHING";

void
team_ledger_mirror(void *arg, const struct ledger_rec *r, const char *json_line)
{
	struct team_db *db = arg;
	char rid[512], attempt[16], cost[32], err[256];
	const char *p[11];
	PGresult *res;

	snprintf(rid, sizeof(rid), "%s/%s/%s", db->store_id[0] ? db->store_id : db->owner,
		 r->job ? r->job : "", r->key ? r->key : "");
	snprintf(attempt, sizeof(attempt), "%d", r->attempt);
	snprintf(cost, sizeof(cost), "%.9f", r->cost_usd);
	p[0] = rid;
	p[1] = r->outcome ? r->outcome : "";
	p[2] = attempt;
	p[3] = db->owner;
	p[4] = r->key;
	p[5] = r->model;
	p[6] = r->route;
	p[7] = r->size;
	p[8] = r->cost_usd >= 0 ? cost : NULL;
	p[9] = r->billed ? "true" : "false";
	p[10] = json_line;
	res = team_db_exec(db, row_sql, 11, p, err, sizeof(err));
	if (res == NULL)
		team_db_defer(db, row_sql, 11, p);
	PQclear(res);
}
