/*
 * team_ledger.c - every ledger line also a row of bananafs.ledger, so the
 * team's spending can be summed in one place: `bananactl cost --team` and
 * the team budget (bananafs.spent(), cache/team_db.c) both sum its billed
 * rows, so they agree.
 *
 * The local STORE/ledger.jsonl stays the file users read, and it is
 * written first (fsynced) by cache/ledger.c; this mirror runs after.  A
 * row is unique by (request id, outcome, attempt, event id).  The request
 * id is this store's team id, the job id and the cache key, the same in
 * every run of the mount; the event id is the line's own (cache/ledger.h).
 * So one line written twice (a deferred statement run again, the lines of
 * the mount's start told again) is one row, and so is the "unknown" line a
 * crash leaves in the local ledger and the row bananafs.reserve() writes
 * when another machine takes the crashed request's claim over (both derive
 * their event id from the "sent" line's); but two runs of one store that
 * repeat a line (a resumed job's attempt 1 again) are two rows, as they are
 * two lines.  Lines written before lines had event ids have "" and keep the
 * old key.  The mount column is the run's (owner); day is the local day of
 * the line's time, the day the budget counts it toward.  When the database
 * is away the row is deferred (team_db_defer) and written when it is back.
 */
#include <stdio.h>
#include <time.h>

#include "cache/ledger.h"
#include "cache/team.h"
#include "cache/team_db.h"

/*
 * The row, and the end of a presumption: an "unknown" row another mount
 * wrote for a "sent" row of this run (it took this run for dead: its leases
 * lapsed, see bananafs.settle_dead()) goes when this run writes another row
 * of that request (the outcome, or the next attempt): this run was alive,
 * and its own rows say what was spent.  One statement, so a deferred row
 * does the same when it reaches the server.
 */
static const char row_sql[] =
	"WITH presumed AS (DELETE FROM bananafs.ledger u USING bananafs.ledger s "
	"WHERE u.request_id = $1 AND u.outcome = 'unknown' AND u.mount = $6 AND s.request_id = $1 "
	"AND s.outcome = 'sent' AND s.attempt = u.attempt AND s.mount = $6 AND s.event_id <> '' "
	"AND s.event_id <> $4 AND u.event_id = s.event_id || '" LEDGER_UNKNOWN_SUFFIX "') "
	"INSERT INTO bananafs.ledger (request_id, outcome, attempt, event_id, day, time, mount, key, "
	"model, route, size, cost_usd, billed, line) VALUES ($1, $2, $3::integer, $4, $5::date, now(), "
	"$6, $7, $8, $9, $10, $11::float8, $12::boolean, $13::jsonb) ON CONFLICT DO NOTHING";

void
team_ledger_mirror(void *arg, const struct ledger_rec *r, const char *json_line)
{
	struct team_db *db = arg;
	char rid[512], attempt[16], cost[32], day[16];
	const char *p[13];
	struct tm tm;

	snprintf(rid, sizeof(rid), "%s/%s/%s", db->store_id[0] ? db->store_id : db->owner,
		 r->job ? r->job : "", r->key ? r->key : "");
	snprintf(attempt, sizeof(attempt), "%d", r->attempt);
	snprintf(cost, sizeof(cost), "%.9f", r->cost_usd);
	if (localtime_r(&r->time, &tm) == NULL || strftime(day, sizeof(day), "%Y-%m-%d", &tm) == 0)
		snprintf(day, sizeof(day), "today");	/* PostgreSQL's word for its own date */
	p[0] = rid;
	p[1] = r->outcome ? r->outcome : "";
	p[2] = attempt;
	p[3] = r->event_id ? r->event_id : "";
	p[4] = day;
	p[5] = db->owner;
	p[6] = r->key;
	p[7] = r->model;
	p[8] = r->route;
	p[9] = r->size;
	p[10] = r->cost_usd >= 0 ? cost : NULL;
	p[11] = r->billed ? "true" : "false";
	p[12] = json_line;
	team_db_exec_in_order(db, row_sql, 13, p);
}
