/*
 * journal.h - accepted jobs, in STORE/state.db (SQLite, WAL,
 * synchronous=FULL), so that killing the daemon loses none: on mount the
 * pending ones are resumed.
 */
#ifndef BANANAFS_CACHE_JOURNAL_H
#define BANANAFS_CACHE_JOURNAL_H

#include <stdint.h>
#include "cache/jobid.h"
#include "cache/prompt_state.h"
#include "cache/store.h"
#include "cache/writer.h"

/* Creates the tables if missing. 0 or -1. */
int journal_init(struct store *s);
/*
 * Records that the prompt at relpath (relative to STORE/tree) must be
 * generated.  A pending job for the same path is replaced (one job per
 * path).  w is who wrote it (NULL or unset: the daemon itself); a resumed
 * job runs with those rights.  Returns the job id (> 0) or -1.
 */
int64_t journal_add(struct store *s, const char *relpath, int regen, const struct writer *w);
/*
 * The job's id for the ledger: a ULID (cache/jobid.h) made when the row was
 * added and kept across rewrites and resumes.  0, or -1 when the row is gone.
 */
int journal_job_uid(struct store *s, int64_t id, char out[JOBID_LEN]);
/* Marks it started (attempts + 1). */
int journal_start(struct store *s, int64_t id);
/* Removes the job: done or failed for good. */
int journal_finish(struct store *s, int64_t id);
/* Calls fn for every pending job, oldest first.  w->set is false for rows without a writer. */
typedef int (*journal_job_fn)(int64_t id, const char *relpath, int regen, int attempts,
			      const struct writer *w, void *arg);
int journal_pending(struct store *s, journal_job_fn fn, void *arg);

/*
 * Batch state for the Batch route (additive): one row per remote batch
 * name ("batches/123"), its last known state and an opaque body (e.g. the
 * JSON of the jobs it carries).  put replaces state, and body unless body
 * is NULL.  get: 1 and malloc'd *state and *body (either may be NULL), 0 when
 * absent, -1 on error.  foreach walks oldest first.
 */
int journal_batch_put(struct store *s, const char *name, const char *state, const char *body);
int journal_batch_get(struct store *s, const char *name, char **state, char **body);
int journal_batch_delete(struct store *s, const char *name);
int journal_batch_foreach(struct store *s, int (*fn)(const char *name, const char *state, const char *body,
						     void *arg), void *arg);

/*
 * Batch route items (additive), table batch_items: one row per (cache key,
 * job_ref) that waits for a Batch result.  Rows of one key share model,
 * size, aspect, request_json and batch_name (NULL until submitted).  state
 * is "gathered", "submitting" or "submitted"; created is wall time in
 * seconds (fractional, for short gathering windows).
 */
struct journal_bitem {
	const char *key, *job_ref, *job_id;
	const char *model, *size, *aspect;
	const char *request_json;
	const char *batch_name;		/* NULL until submitted */
	const char *state;
	double created;
};
/* Inserts the row; an existing (key, job_ref) is left alone.  1 inserted, 0 existed, -1 error. */
int journal_bitem_put(struct store *s, const struct journal_bitem *it);
/* Sets batch_name (may be NULL) and state on every row of key.  0 or -1. */
int journal_bitem_set(struct store *s, const char *key, const char *batch_name, const char *state);
/* Deletes the row (key, job_ref), or every row of key when job_ref is NULL.  0 or -1. */
int journal_bitem_delete(struct store *s, const char *key, const char *job_ref);
/* Calls fn for every row, oldest first (collected first: fn may write). */
int journal_bitem_foreach(struct store *s, int (*fn)(const struct journal_bitem *it, void *arg), void *arg);

/*
 * How each prompt's last job ended (table outcomes, one row per path), so
 * its xattrs still show status, key, cost, model and error after a
 * remount, when the in-memory job table starts empty.  put replaces the
 * row; relpath must be set, the rest may be NULL/"" (cost < 0:
 * unknown).  The state is kept as its word (prompt_state.h).  get: 1 and
 * *o filled with malloc'd strings (free with journal_outcome_free), 0 when
 * absent or its word is unknown, -1 on error.
 */
struct journal_outcome {
	const char *relpath, *key, *model, *error;
	enum prompt_state state;
	double cost_usd;
};
int journal_outcome_put(struct store *s, const struct journal_outcome *o);
int journal_outcome_get(struct store *s, const char *relpath, struct journal_outcome *o);
void journal_outcome_free(struct journal_outcome *o);
int journal_outcome_delete(struct store *s, const char *relpath);

/*
 * Background interactions in flight (table interactions): one row per
 * cache key whose request was created as a background interaction, written
 * (fsynced) as soon as the create call returned its id and deleted once the
 * image is stored or the interaction has ended.  After a crash the row
 * says: poll this id, do not send the request again.
 */
#define JOURNAL_IA_ID_MAX 128
int journal_ia_put(struct store *s, const char *key, const char *id, const char *job, const char *model);
/* 1 and id when key has a row, 0 when not, -1 on error. */
int journal_ia_get(struct store *s, const char *key, char id[JOURNAL_IA_ID_MAX]);
int journal_ia_delete(struct store *s, const char *key);

#endif
