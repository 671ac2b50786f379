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

/*
 * For fetch_image_batch (cache/fetch.c), which runs the gates; the batcher
 * only gathers, submits and polls.  batcher_join adds job_ref to the item
 * of key_hex when there is one: 1 joined (out->batch_name set when
 * submitted), 0 no such item, -1 could not record it (out->res says so).
 * batcher_gather records a new item for rq (reserved est under the key's
 * owner): 0 added, 1 joined an item that appeared meanwhile, -1 failed.
 */
int batcher_join(struct batcher *b, const char *key_hex, const char *job_ref, const char *job_id,
		 struct fetch_outcome *out);
int batcher_gather(struct batcher *b, const struct gen_request *rq, const char *job_id, const char *job_ref,
		   double est, struct fetch_outcome *out);

#endif
