/*
 * batcher.h - the Batch route: one background thread per mount gathers
 * batch items for batch_window_s, submits one Gemini Batch job per model,
 * polls each job with a growing interval (batch_poll_s first, capped at
 * 60 s) and stores the results like any other image.
 *
 * Items live in state.db (table batch_items, see journal.h) from the moment
 * fetch_image_batch() accepts them: after an unmount or kill -9,
 * batcher_start() resumes polling submitted jobs (nothing is resubmitted,
 * nothing new is ledgered) and gathers unsubmitted ones again.
 */
#ifndef BANANAFS_CACHE_BATCHER_H
#define BANANAFS_CACHE_BATCHER_H

#include <stddef.h>
#include "cache/fetch.h"

/*
 * Called from the batcher thread when an item ends (image stored, or
 * failed, or refused by the budget on resume).  job_ref is what the caller
 * gave fetch_image_batch.  out is valid only during the call.
 */
typedef void (*batch_done_fn)(void *arg, const char *job_ref, const struct fetch_outcome *out);

/*
 * Starts the thread for f (sets f->batcher) and loads pending items from
 * state.db.  done may be NULL.  0, or -1 with err.
 */
int batcher_start(struct fetch_ctx *f, batch_done_fn done, void *arg, char *err, size_t errlen);

/* Joins the thread and frees it (f->batcher = NULL); pending state stays in state.db. */
void batcher_stop(struct fetch_ctx *f);

#endif
