/*
 * journal.h - accepted jobs, in STORE/state.db (SQLite, WAL,
 * synchronous=FULL), so that killing the daemon loses none: on mount the
 * pending ones are resumed.
 */
#ifndef BANANAFS_CACHE_JOURNAL_H
#define BANANAFS_CACHE_JOURNAL_H

#include <stdint.h>
#include "cache/store.h"

/* Creates the tables if missing. 0 or -1. */
int journal_init(struct store *s);
/*
 * Records that the prompt at relpath (relative to STORE/tree) must be
 * generated.  A pending job for the same path is replaced (one job per
 * path).  Returns the job id (> 0) or -1.
 */
int64_t journal_add(struct store *s, const char *relpath, int regen);
/* Marks it started (attempts + 1). */
int journal_start(struct store *s, int64_t id);
/* Removes the job: done or failed for good. */
int journal_finish(struct store *s, int64_t id);
/* Calls fn for every pending job, oldest first. */
int journal_pending(struct store *s, int (*fn)(int64_t id, const char *relpath, int regen, int attempts, void *arg), void *arg);

#endif
