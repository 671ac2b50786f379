/*
 * journal.c - accepted jobs (and batch state) in STORE/state.db.
 *
 * The store owns the connection and its lock (db_mu); every function here
 * takes db_mu for the whole statement, so journal and object index share
 * one serialised SQLite handle.  WAL + synchronous=FULL (set by store_open)
 * make each committed row survive kill -9 and power loss.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache/journal.h"

int journal_init(struct store *s)
{
	int rc;

	pthread_mutex_lock(&s->db_mu);
	rc = sqlite3_exec(s->db,
			  "CREATE TABLE IF NOT EXISTS jobs("
			  " id INTEGER PRIMARY KEY, relpath TEXT UNIQUE NOT NULL,"
			  " regen INTEGER NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0,"
			  " created INTEGER NOT NULL);"
			  "CREATE TABLE IF NOT EXISTS batches("
			  " name TEXT PRIMARY KEY, state TEXT, created INTEGER NOT NULL, body TEXT);"
			  "CREATE TABLE IF NOT EXISTS batch_items("
			  " key TEXT NOT NULL, job_ref TEXT NOT NULL, job_id TEXT, model TEXT NOT NULL,"
			  " size TEXT NOT NULL, aspect TEXT NOT NULL, request_json TEXT NOT NULL,"
			  " batch_name TEXT, state TEXT NOT NULL, created REAL NOT NULL,"
			  " PRIMARY KEY(key, job_ref));",
			  NULL, NULL, NULL);
	pthread_mutex_unlock(&s->db_mu);
	return rc == SQLITE_OK ? 0 : -1;
}

int64_t journal_add(struct store *s, const char *relpath, int regen)
{
	sqlite3_stmt *st = NULL;
	int64_t id = -1;

	if (!relpath || !*relpath)
		return -1;
	pthread_mutex_lock(&s->db_mu);
	/* One job per path: a rewrite replaces the queued job, keeping its id. */
	if (sqlite3_prepare_v2(s->db,
			       "INSERT INTO jobs(relpath, regen, attempts, created) VALUES(?, ?, 0, ?)"
			       " ON CONFLICT(relpath) DO UPDATE SET regen = excluded.regen,"
			       " attempts = 0, created = excluded.created RETURNING id;",
			       -1, &st, NULL) != SQLITE_OK)
		goto out_unlock;
	sqlite3_bind_text(st, 1, relpath, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, regen ? 1 : 0);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)time(NULL));
	if (sqlite3_step(st) == SQLITE_ROW)
		id = sqlite3_column_int64(st, 0);
	/* RETURNING commits when the statement is finished */
	if (sqlite3_step(st) != SQLITE_DONE)
		id = -1;
	sqlite3_finalize(st);
out_unlock:
	pthread_mutex_unlock(&s->db_mu);
	return id;
}

/* Runs one statement binding a single int64; 0 when it ran, -1 otherwise. */
static int exec_id(struct store *s, const char *sql, int64_t id)
{
	sqlite3_stmt *st = NULL;
	int rc = -1;

	pthread_mutex_lock(&s->db_mu);
	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, id);
		if (sqlite3_step(st) == SQLITE_DONE)
			rc = sqlite3_changes(s->db) > 0 ? 0 : -1;
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->db_mu);
	return rc;
}

int journal_start(struct store *s, int64_t id)
{
	return exec_id(s, "UPDATE jobs SET attempts = attempts + 1 WHERE id = ?;", id);
}

int journal_finish(struct store *s, int64_t id)
{
	return exec_id(s, "DELETE FROM jobs WHERE id = ?;", id);
}

struct job_row {
	int64_t id;
	char *relpath;
	int regen, attempts;
};

int journal_pending(struct store *s, int (*fn)(int64_t id, const char *relpath, int regen, int attempts, void *arg), void *arg)
{
	sqlite3_stmt *st = NULL;
	struct job_row *rows = NULL, *grown;
	size_t n = 0, cap = 0, i;
	int rc, ret = -1;

	/* Collected first so fn may call journal_finish/journal_add. */
	pthread_mutex_lock(&s->db_mu);
	if (sqlite3_prepare_v2(s->db, "SELECT id, relpath, regen, attempts FROM jobs ORDER BY created, id;",
			       -1, &st, NULL) != SQLITE_OK) {
		pthread_mutex_unlock(&s->db_mu);
		return -1;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? cap * 2 : 32;
			grown = realloc(rows, cap * sizeof(*rows));
			if (!grown)
				goto out_finalize;
			rows = grown;
		}
		rows[n].id = sqlite3_column_int64(st, 0);
		rows[n].relpath = strdup((const char *)sqlite3_column_text(st, 1));
		rows[n].regen = sqlite3_column_int(st, 2);
		rows[n].attempts = sqlite3_column_int(st, 3);
		if (!rows[n].relpath)
			goto out_finalize;
		n++;
	}
	if (rc == SQLITE_DONE)
		ret = 0;
out_finalize:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->db_mu);
	for (i = 0; i < n; i++) {
		if (ret == 0) {
			rc = fn(rows[i].id, rows[i].relpath, rows[i].regen, rows[i].attempts, arg);
			if (rc != 0)
				ret = rc;
		}
		free(rows[i].relpath);
	}
	free(rows);
	return ret;
}

/* --- batch state ---------------------------------------------------------- */

int journal_batch_put(struct store *s, const char *name, const char *state, const char *body)
{
	sqlite3_stmt *st = NULL;
	int rc = -1;

	pthread_mutex_lock(&s->db_mu);
	if (sqlite3_prepare_v2(s->db,
			       "INSERT INTO batches(name, state, created, body) VALUES(?, ?, ?, ?)"
			       " ON CONFLICT(name) DO UPDATE SET state = excluded.state,"
			       " body = COALESCE(excluded.body, batches.body);",
			       -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, state, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, (sqlite3_int64)time(NULL));
		sqlite3_bind_text(st, 4, body, -1, SQLITE_STATIC);
		rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->db_mu);
	return rc;
}

static char *dup_col(sqlite3_stmt *st, int i, int *oom)
{
	const char *v = (const char *)sqlite3_column_text(st, i);
	char *d;

	if (!v)
		return NULL;
	d = strdup(v);
	if (!d)
		*oom = 1;
	return d;
}

int journal_batch_get(struct store *s, const char *name, char **state, char **body)
{
	sqlite3_stmt *st = NULL;
	int rc = -1, oom = 0;
	char *a = NULL, *b = NULL;

	pthread_mutex_lock(&s->db_mu);
	if (sqlite3_prepare_v2(s->db, "SELECT state, body FROM batches WHERE name = ?;", -1, &st,
			       NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		switch (sqlite3_step(st)) {
		case SQLITE_ROW:
			a = dup_col(st, 0, &oom);
			b = dup_col(st, 1, &oom);
			rc = oom ? -1 : 1;
			break;
		case SQLITE_DONE:
			rc = 0;
			break;
		default:
			break;
		}
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->db_mu);
	if (rc != 1) {
		free(a);
		free(b);
		a = b = NULL;
	}
	if (state)
		*state = a;
	else
		free(a);
	if (body)
		*body = b;
	else
		free(b);
	return rc;
}

int journal_batch_delete(struct store *s, const char *name)
{
	sqlite3_stmt *st = NULL;
	int rc = -1;

	pthread_mutex_lock(&s->db_mu);
	if (sqlite3_prepare_v2(s->db, "DELETE FROM batches WHERE name = ?;", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->db_mu);
	return rc;
}

struct batch_row {
	char *name, *state, *body;
};

int journal_batch_foreach(struct store *s, int (*fn)(const char *name, const char *state, const char *body,
						     void *arg), void *arg)
{
	sqlite3_stmt *st = NULL;
	struct batch_row *rows = NULL, *grown;
	size_t n = 0, cap = 0, i;
	int rc, ret = -1, oom = 0;

	pthread_mutex_lock(&s->db_mu);
	if (sqlite3_prepare_v2(s->db, "SELECT name, state, body FROM batches ORDER BY created, name;",
			       -1, &st, NULL) != SQLITE_OK) {
		pthread_mutex_unlock(&s->db_mu);
		return -1;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			grown = realloc(rows, cap * sizeof(*rows));
			if (!grown)
				goto out_finalize;
			rows = grown;
		}
		rows[n].name = dup_col(st, 0, &oom);
		rows[n].state = dup_col(st, 1, &oom);
		rows[n].body = dup_col(st, 2, &oom);
		n++;
		if (oom)
			goto out_finalize;
	}
	if (rc == SQLITE_DONE)
		ret = 0;
out_finalize:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->db_mu);
	for (i = 0; i < n; i++) {
		if (ret == 0 && rows[i].name) {
			rc = fn(rows[i].name, rows[i].state, rows[i].body, arg);
			if (rc != 0)
				ret = rc;
		}
		free(rows[i].name);
		free(rows[i].state);
		free(rows[i].body);
	}
	free(rows);
	return ret;
}

/* --- batch route items ---------------------------------------------------- */

int journal_bitem_put(struct store *s, const struct journal_bitem *it)
{
	sqlite3_stmt *st = NULL;
	int rc = -1;

	pthread_mutex_lock(&s->db_mu);
	if (sqlite3_prepare_v2(s->db,
			       "INSERT OR IGNORE INTO batch_items(key, job_ref, job_id, model, size, aspect,"
			       " request_json, batch_name, state, created) VALUES(?,?,?,?,?,?,?,?,?,?);",
			       -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, it->key, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, it->job_ref, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, it->job_id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, it->model, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 5, it->size, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 6, it->aspect, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 7, it->request_json, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 8, it->batch_name, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 9, it->state, -1, SQLITE_STATIC);
		sqlite3_bind_double(st, 10, it->created);
		if (sqlite3_step(st) == SQLITE_DONE)
			rc = sqlite3_changes(s->db) > 0 ? 1 : 0;
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->db_mu);
	return rc;
}

int journal_bitem_set(struct store *s, const char *key, const char *batch_name, const char *state)
{
	sqlite3_stmt *st = NULL;
	int rc = -1;

	pthread_mutex_lock(&s->db_mu);
	if (sqlite3_prepare_v2(s->db, "UPDATE batch_items SET batch_name = ?, state = ? WHERE key = ?;",
			       -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, batch_name, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, state, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, key, -1, SQLITE_STATIC);
		rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->db_mu);
	return rc;
}

int journal_bitem_delete(struct store *s, const char *key, const char *job_ref)
{
	sqlite3_stmt *st = NULL;
	int rc = -1;

	pthread_mutex_lock(&s->db_mu);
	if (sqlite3_prepare_v2(s->db, job_ref ? "DELETE FROM batch_items WHERE key = ? AND job_ref = ?;"
					      : "DELETE FROM batch_items WHERE key = ?;",
			       -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
		if (job_ref)
			sqlite3_bind_text(st, 2, job_ref, -1, SQLITE_STATIC);
		rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->db_mu);
	return rc;
}

struct bitem_row {
	char *col[9];
	double created;
};

int journal_bitem_foreach(struct store *s, int (*fn)(const struct journal_bitem *it, void *arg), void *arg)
{
	sqlite3_stmt *st = NULL;
	struct bitem_row *rows = NULL, *grown;
	size_t n = 0, cap = 0, i;
	int rc, ret = -1, oom = 0, c;

	pthread_mutex_lock(&s->db_mu);
	if (sqlite3_prepare_v2(s->db,
			       "SELECT key, job_ref, job_id, model, size, aspect, request_json, batch_name,"
			       " state, created FROM batch_items ORDER BY created, key, job_ref;",
			       -1, &st, NULL) != SQLITE_OK) {
		pthread_mutex_unlock(&s->db_mu);
		return -1;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			grown = realloc(rows, cap * sizeof(*rows));
			if (!grown)
				goto out_finalize;
			rows = grown;
		}
		for (c = 0; c < 9; c++)
			rows[n].col[c] = dup_col(st, c, &oom);
		rows[n].created = sqlite3_column_double(st, 9);
		n++;
		if (oom)
			goto out_finalize;
	}
	if (rc == SQLITE_DONE)
		ret = 0;
out_finalize:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->db_mu);
	for (i = 0; i < n; i++) {
		struct bitem_row *r = &rows[i];
		struct journal_bitem it = {
			.key = r->col[0], .job_ref = r->col[1], .job_id = r->col[2], .model = r->col[3],
			.size = r->col[4], .aspect = r->col[5], .request_json = r->col[6],
			.batch_name = r->col[7], .state = r->col[8], .created = r->created,
		};
		if (ret == 0 && it.key && it.job_ref && it.model && it.size && it.aspect &&
		    it.request_json && it.state) {
			rc = fn(&it, arg);
			if (rc != 0)
				ret = rc;
		}
		for (c = 0; c < 9; c++)
			free(r->col[c]);
	}
	free(rows);
	return ret;
}
