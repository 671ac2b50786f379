/*
 * journal.c - accepted jobs (and batch state) in STORE/state.db.
 *
 * These tables are this mount's own crash state, so they live in the
 * local state.db beside the object index (see cache/store.h for why), and
 * every statement goes through store_sql(): the store owns the connection
 * and its lock, this file owns the schema and the SQL.  WAL +
 * synchronous=FULL (set by store_open) make each committed row survive
 * kill -9 and power loss.  Readers collect rows first and call the
 * caller's function afterwards, with no lock held, so it may write.
 */
#include <stdlib.h>
#include <string.h>

#include "cache/jobid.h"
#include "cache/journal.h"

static long long wall_now(struct store *s)
{
	return (long long)s->clk->wall(s->clk->ctx);
}

/* Columns added after the first release: added to an older state.db at open. */
static const char *const added_columns[] = {
	"ALTER TABLE jobs ADD COLUMN uid INTEGER;",
	"ALTER TABLE jobs ADD COLUMN gid INTEGER;",
	"ALTER TABLE jobs ADD COLUMN groups TEXT;",
	"ALTER TABLE jobs ADD COLUMN job_id TEXT;",	/* the ledger's job id, a ULID */
};

int journal_init(struct store *s)
{
	static const char *const tables[] = {
		"CREATE TABLE IF NOT EXISTS jobs("
		" id INTEGER PRIMARY KEY, relpath TEXT UNIQUE NOT NULL,"
		" regen INTEGER NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0,"
		" created INTEGER NOT NULL);",
		"CREATE TABLE IF NOT EXISTS batches("
		" name TEXT PRIMARY KEY, state TEXT, created INTEGER NOT NULL, body TEXT);",
		"CREATE TABLE IF NOT EXISTS batch_items("
		" key TEXT NOT NULL, job_ref TEXT NOT NULL, job_id TEXT, model TEXT NOT NULL,"
		" size TEXT NOT NULL, aspect TEXT NOT NULL, request_json TEXT NOT NULL,"
		" batch_name TEXT, state TEXT NOT NULL, created REAL NOT NULL,"
		" PRIMARY KEY(key, job_ref));",
		"CREATE TABLE IF NOT EXISTS interactions("
		" key TEXT PRIMARY KEY, id TEXT NOT NULL, job TEXT, model TEXT, created INTEGER NOT NULL);",
		"CREATE TABLE IF NOT EXISTS outcomes("
		" relpath TEXT PRIMARY KEY, status TEXT NOT NULL, key TEXT, cost_usd REAL,"
		" model TEXT, error TEXT, updated INTEGER NOT NULL);",
	};
	/* An added column fails with "duplicate column" when it is there already. */
	return store_schema(s, tables, sizeof(tables) / sizeof(tables[0]), added_columns,
			    sizeof(added_columns) / sizeof(added_columns[0]));
}

static int get_id(const struct store_val *c, int n, void *arg)
{
	if (n >= 1 && c[0].t == SVT_INT)
		*(int64_t *)arg = c[0].i;
	return 0;
}

int64_t journal_add(struct store *s, const char *relpath, int regen, const struct writer *w)
{
	struct store_val v[7];
	int64_t id = -1;
	char groups[WRITER_MAX_GROUPS * 11 + 1], job_id[JOBID_LEN];

	if (!relpath || !*relpath || jobid_make(s->clk, job_id) < 0)
		return -1;
	v[0] = SV_TXT(relpath);
	v[1] = SV_INT(regen ? 1 : 0);
	v[2] = SV_INT(wall_now(s));
	v[3] = v[4] = v[5] = SV_TXT(NULL);
	if (w && w->set) {
		writer_groups_format(w, groups, sizeof(groups));
		v[3] = SV_INT((long long)w->uid);
		v[4] = SV_INT((long long)w->gid);
		v[5] = (struct store_val){ .t = SVT_TEXT, .s = groups };
	}
	v[6] = (struct store_val){ .t = SVT_TEXT, .s = job_id };
	/* One job per path: a rewrite replaces the queued job, keeping its ids. */
	if (store_sql(s, "INSERT INTO jobs(relpath, regen, attempts, created, uid, gid, groups, job_id)"
		      " VALUES(?, ?, 0, ?, ?, ?, ?, ?)"
		      " ON CONFLICT(relpath) DO UPDATE SET regen = excluded.regen,"
		      " attempts = 0, created = excluded.created, uid = excluded.uid,"
		      " gid = excluded.gid, groups = excluded.groups,"
		      " job_id = COALESCE(jobs.job_id, excluded.job_id) RETURNING id;",
		      v, 7, get_id, &id, NULL) != 0)
		return -1;
	return id;
}

static int get_job_id(const struct store_val *c, int n, void *arg)
{
	char *out = arg;

	if (n >= 1 && c[0].t == SVT_TEXT && c[0].s && strlen(c[0].s) < JOBID_LEN)
		memcpy(out, c[0].s, strlen(c[0].s) + 1);
	return 0;
}

int journal_job_uid(struct store *s, int64_t id, char out[JOBID_LEN])
{
	struct store_val v[2];
	char fresh[JOBID_LEN];

	if (jobid_make(s->clk, fresh) < 0)
		return -1;
	v[0] = (struct store_val){ .t = SVT_TEXT, .s = fresh };
	v[1] = SV_INT(id);
	out[0] = '\0';
	/* A row journaled by an older bananafs has no job id yet: it gets one now, once. */
	if (store_sql(s, "UPDATE jobs SET job_id = COALESCE(job_id, ?) WHERE id = ? RETURNING job_id;",
		      v, 2, get_job_id, out, NULL) != 0)
		return -1;
	return out[0] ? 0 : -1;
}

/* Runs one statement binding a single int64; 0 when it changed a row, -1 otherwise. */
static int exec_id(struct store *s, const char *sql, int64_t id)
{
	struct store_val v = SV_INT(id);
	long long changes = 0;

	if (store_sql(s, sql, &v, 1, NULL, NULL, &changes) != 0)
		return -1;
	return changes > 0 ? 0 : -1;
}

int journal_start(struct store *s, int64_t id)
{
	return exec_id(s, "UPDATE jobs SET attempts = attempts + 1 WHERE id = ?;", id);
}

int journal_finish(struct store *s, int64_t id)
{
	return exec_id(s, "DELETE FROM jobs WHERE id = ?;", id);
}

/* --- collecting rows ------------------------------------------------------------ */

#define MAX_COLS 10

/* One result row kept after the statement: text columns strdup'ed. */
struct crow {
	char *txt[MAX_COLS];
	long long i[MAX_COLS];
	double d[MAX_COLS];
};

struct crows {
	struct crow *r;
	size_t n, cap;
	int ncols;
};

static int collect(const struct store_val *c, int n, void *arg)
{
	struct crows *rs = arg;
	struct crow *row, *grown;
	int k;

	if (rs->n == rs->cap) {
		size_t cap = rs->cap ? rs->cap * 2 : 16;

		grown = realloc(rs->r, cap * sizeof(*rs->r));
		if (!grown)
			return -1;
		rs->r = grown;
		rs->cap = cap;
	}
	row = &rs->r[rs->n++];
	memset(row, 0, sizeof(*row));
	for (k = 0; k < n && k < rs->ncols; k++) {
		row->i[k] = c[k].i;
		row->d[k] = c[k].d;
		if (c[k].t == SVT_TEXT && c[k].s && !(row->txt[k] = strdup(c[k].s)))
			return -1;
	}
	return 0;
}

static void crows_free(struct crows *rs)
{
	size_t i;
	int k;

	for (i = 0; i < rs->n; i++)
		for (k = 0; k < MAX_COLS; k++)
			free(rs->r[i].txt[k]);
	free(rs->r);
	memset(rs, 0, sizeof(*rs));
}

/* Runs a SELECT of ncols columns and keeps its rows.  0 or -1 (rows freed). */
static int select_rows(struct store *s, const char *sql, const struct store_val *binds, int nbinds,
		       int ncols, struct crows *rs)
{
	memset(rs, 0, sizeof(*rs));
	rs->ncols = ncols;
	if (store_sql(s, sql, binds, nbinds, collect, rs, NULL) != 0) {
		crows_free(rs);
		return -1;
	}
	return 0;
}

int journal_pending(struct store *s, journal_job_fn fn, void *arg)
{
	struct crows rs;
	size_t i;
	int ret = 0;

	/* Collected first so fn may call journal_finish/journal_add. */
	if (select_rows(s, "SELECT id, relpath, regen, attempts, COALESCE(uid, -1), COALESCE(gid, -1),"
			" groups FROM jobs ORDER BY created, id;", NULL, 0, 7, &rs) < 0)
		return -1;
	for (i = 0; i < rs.n && ret == 0; i++) {
		struct writer w = { 0 };
		if (rs.r[i].i[4] >= 0 && rs.r[i].i[5] >= 0) {
			w.set = true;
			w.uid = (uid_t)rs.r[i].i[4];
			w.gid = (gid_t)rs.r[i].i[5];
			/* Unreadable groups: none, so the job has fewer rights, never more. */
			if (writer_groups_parse(&w, rs.r[i].txt[6] ? rs.r[i].txt[6] : "") < 0)
				w.ngroups = 0;
		}
		if (rs.r[i].txt[1])
			ret = fn(rs.r[i].i[0], rs.r[i].txt[1], (int)rs.r[i].i[2], (int)rs.r[i].i[3], &w, arg);
	}
	crows_free(&rs);
	return ret;
}

/* --- batch state ---------------------------------------------------------- */

int journal_batch_put(struct store *s, const char *name, const char *state, const char *body)
{
	struct store_val v[4] = { SV_TXT(name), SV_TXT(state), SV_INT(wall_now(s)), SV_TXT(body) };

	return store_sql(s, "INSERT INTO batches(name, state, created, body) VALUES(?, ?, ?, ?)"
			 " ON CONFLICT(name) DO UPDATE SET state = excluded.state,"
			 " body = COALESCE(excluded.body, batches.body);",
			 v, 4, NULL, NULL, NULL) == 0 ? 0 : -1;
}

int journal_batch_get(struct store *s, const char *name, char **state, char **body)
{
	struct store_val v = SV_TXT(name);
	struct crows rs;
	int rc;

	if (state)
		*state = NULL;
	if (body)
		*body = NULL;
	if (select_rows(s, "SELECT state, body FROM batches WHERE name = ?;", &v, 1, 2, &rs) < 0)
		return -1;
	rc = rs.n > 0 ? 1 : 0;
	if (rc == 1) {
		if (state) {
			*state = rs.r[0].txt[0];
			rs.r[0].txt[0] = NULL;
		}
		if (body) {
			*body = rs.r[0].txt[1];
			rs.r[0].txt[1] = NULL;
		}
	}
	crows_free(&rs);
	return rc;
}

int journal_batch_delete(struct store *s, const char *name)
{
	struct store_val v = SV_TXT(name);

	return store_sql(s, "DELETE FROM batches WHERE name = ?;", &v, 1, NULL, NULL, NULL) == 0 ? 0 : -1;
}

int journal_batch_foreach(struct store *s, int (*fn)(const char *name, const char *state, const char *body,
						     void *arg), void *arg)
{
	struct crows rs;
	size_t i;
	int ret = 0;

	if (select_rows(s, "SELECT name, state, body FROM batches ORDER BY created, name;", NULL, 0, 3, &rs) < 0)
		return -1;
	for (i = 0; i < rs.n && ret == 0; i++)
		if (rs.r[i].txt[0])
			ret = fn(rs.r[i].txt[0], rs.r[i].txt[1], rs.r[i].txt[2], arg);
	crows_free(&rs);
	return ret;
}

/* --- batch route items ---------------------------------------------------- */

int journal_bitem_put(struct store *s, const struct journal_bitem *it)
{
	struct store_val v[10] = {
		SV_TXT(it->key), SV_TXT(it->job_ref), SV_TXT(it->job_id), SV_TXT(it->model),
		SV_TXT(it->size), SV_TXT(it->aspect), SV_TXT(it->request_json), SV_TXT(it->batch_name),
		SV_TXT(it->state), SV_REAL(it->created),
	};
	long long changes = 0;

	if (store_sql(s, "INSERT OR IGNORE INTO batch_items(key, job_ref, job_id, model, size, aspect,"
		      " request_json, batch_name, state, created) VALUES(?,?,?,?,?,?,?,?,?,?);",
		      v, 10, NULL, NULL, &changes) != 0)
		return -1;
	return changes > 0 ? 1 : 0;
}

int journal_bitem_set(struct store *s, const char *key, const char *batch_name, const char *state)
{
	struct store_val v[3] = { SV_TXT(batch_name), SV_TXT(state), SV_TXT(key) };

	return store_sql(s, "UPDATE batch_items SET batch_name = ?, state = ? WHERE key = ?;",
			 v, 3, NULL, NULL, NULL) == 0 ? 0 : -1;
}

int journal_bitem_delete(struct store *s, const char *key, const char *job_ref)
{
	struct store_val v[2] = { SV_TXT(key), SV_TXT(job_ref) };

	return store_sql(s, job_ref ? "DELETE FROM batch_items WHERE key = ? AND job_ref = ?;"
				    : "DELETE FROM batch_items WHERE key = ?;",
			 v, job_ref ? 2 : 1, NULL, NULL, NULL) == 0 ? 0 : -1;
}

int journal_bitem_foreach(struct store *s, int (*fn)(const struct journal_bitem *it, void *arg), void *arg)
{
	struct crows rs;
	size_t i;
	int ret = 0;

	if (select_rows(s, "SELECT key, job_ref, job_id, model, size, aspect, request_json, batch_name,"
			" state, created FROM batch_items ORDER BY created, key, job_ref;", NULL, 0, 10, &rs) < 0)
		return -1;
	for (i = 0; i < rs.n && ret == 0; i++) {
		struct crow *r = &rs.r[i];
		struct journal_bitem it = {
			.key = r->txt[0], .job_ref = r->txt[1], .job_id = r->txt[2], .model = r->txt[3],
			.size = r->txt[4], .aspect = r->txt[5], .request_json = r->txt[6],
			.batch_name = r->txt[7], .state = r->txt[8], .created = r->d[9],
		};
		if (it.key && it.job_ref && it.model && it.size && it.aspect && it.request_json && it.state)
			ret = fn(&it, arg);
	}
	crows_free(&rs);
	return ret;
}

/* --- how each prompt's last job ended --------------------------------------- */

int journal_outcome_put(struct store *s, const struct journal_outcome *o)
{
	struct store_val v[7] = {
		SV_TXT(o->relpath), SV_TXT(prompt_state_name(o->state)), SV_TXT(o->key && *o->key ? o->key : NULL),
		o->cost_usd >= 0 ? SV_REAL(o->cost_usd) : SV_TXT(NULL),
		SV_TXT(o->model && *o->model ? o->model : NULL), SV_TXT(o->error), SV_INT(wall_now(s)),
	};

	if (!o->relpath)
		return -1;
	return store_sql(s, "INSERT INTO outcomes(relpath, status, key, cost_usd, model, error, updated)"
			 " VALUES(?, ?, ?, ?, ?, ?, ?) ON CONFLICT(relpath) DO UPDATE SET"
			 " status = excluded.status, key = excluded.key, cost_usd = excluded.cost_usd,"
			 " model = excluded.model, error = excluded.error, updated = excluded.updated;",
			 v, 7, NULL, NULL, NULL) == 0 ? 0 : -1;
}

int journal_outcome_get(struct store *s, const char *relpath, struct journal_outcome *o)
{
	struct store_val v = SV_TXT(relpath);
	struct crows rs;
	int rc = 0;

	memset(o, 0, sizeof(*o));
	o->cost_usd = -1;
	if (select_rows(s, "SELECT status, key, typeof(cost_usd), cost_usd, model, error FROM outcomes"
			" WHERE relpath = ?;", &v, 1, 6, &rs) < 0)
		return -1;
	if (rs.n > 0 && rs.r[0].txt[0] && prompt_state_parse(rs.r[0].txt[0], &o->state) == 0) {
		struct crow *r = &rs.r[0];

		o->key = r->txt[1];
		if (r->txt[2] && strcmp(r->txt[2], "real") == 0)
			o->cost_usd = r->d[3];
		o->model = r->txt[4];
		o->error = r->txt[5];
		r->txt[1] = r->txt[4] = r->txt[5] = NULL;	/* now o's */
		rc = 1;
	}
	crows_free(&rs);
	return rc;
}

void journal_outcome_free(struct journal_outcome *o)
{
	free((char *)o->key);
	free((char *)o->model);
	free((char *)o->error);
	memset(o, 0, sizeof(*o));
}

int journal_outcome_delete(struct store *s, const char *relpath)
{
	struct store_val v = SV_TXT(relpath);

	return store_sql(s, "DELETE FROM outcomes WHERE relpath = ?;", &v, 1, NULL, NULL, NULL) == 0 ? 0 : -1;
}

/* --- background interactions ------------------------------------------------ */

int journal_ia_put(struct store *s, const char *key, const char *id, const char *job, const char *model)
{
	struct store_val v[5];

	if (!key || !id || !*id)
		return -1;
	v[0] = SV_TXT(key);
	v[1] = SV_TXT(id);
	v[2] = SV_TXT(job);
	v[3] = SV_TXT(model);
	v[4] = SV_INT(wall_now(s));
	return store_sql(s, "INSERT INTO interactions(key, id, job, model, created) VALUES(?, ?, ?, ?, ?)"
			 " ON CONFLICT(key) DO UPDATE SET id = excluded.id, job = excluded.job,"
			 " model = excluded.model, created = excluded.created;",
			 v, 5, NULL, NULL, NULL) == 0 ? 0 : -1;
}

static int get_text(const struct store_val *c, int n, void *arg)
{
	char *out = arg;

	if (n >= 1 && c[0].t == SVT_TEXT && c[0].s && strlen(c[0].s) < JOURNAL_IA_ID_MAX)
		memcpy(out, c[0].s, strlen(c[0].s) + 1);
	return 0;
}

int journal_ia_get(struct store *s, const char *key, char id[JOURNAL_IA_ID_MAX])
{
	struct store_val v = SV_TXT(key);

	id[0] = '\0';
	if (!key || store_sql(s, "SELECT id FROM interactions WHERE key = ?;", &v, 1, get_text, id, NULL) != 0)
		return -1;
	return id[0] ? 1 : 0;
}

int journal_ia_delete(struct store *s, const char *key)
{
	struct store_val v = SV_TXT(key);

	return key && store_sql(s, "DELETE FROM interactions WHERE key = ?;", &v, 1, NULL, NULL, NULL) == 0 ?
	       0 : -1;
}
