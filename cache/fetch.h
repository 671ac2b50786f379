/*
 * fetch.h - the never-pay-twice pipeline for one image request:
 *   (1) cached object -> done, free;
 *   (2) same key in flight -> wait for it;
 *   (3) budget reserve -> ledger "sent" line (fsynced) -> request,
 *       with the retry policy and the mount-wide limiter;
 *   then the object is stored under its key and the outcome is ledgered.
 * Fallback model/size after capacity failures; dry run prices only.
 * FUSE-free: fs/ publishes the object and turns failures into NAME.error.
 */
#ifndef BANANAFS_CACHE_FETCH_H
#define BANANAFS_CACHE_FETCH_H

#include <pthread.h>
#include <stdbool.h>
#include "api/http.h"
#include "api/limiter.h"
#include "api/request.h"
#include "api/retry.h"
#include "api/route.h"
#include "cache/durable.h"
#include "cache/failure.h"
#include "cache/budget.h"
#include "cache/config.h"
#include "cache/held.h"
#include "cache/inflight.h"
#include "cache/key.h"
#include "cache/ledger.h"
#include "cache/prompt_state.h"
#include "cache/store.h"

struct batcher;		/* cache/batcher.h */

struct fetch_stats {
	long hits, misses, coalesced, sent, ok, failed, refused, dry_run;
};

struct fetch_ctx {
	const struct config *cfg;
	struct store *store;
	struct ledger ledger;
	struct budget budget;
	struct inflight inflight;
	struct held held;		/* paid answers the store could not take yet */
	struct limiter limiter;
	struct quota_pauses pauses;	/* one model's 429 holds that model only */
	struct retry_policy policy;
	const struct clock_ops *clk;
	struct http_opts http;
	struct api_endpoint google;	/* endpoint + api key */
	struct api_endpoint gateway;	/* gateway_url + gateway key, bearer, gateway_api */
	struct gateway_model_map *gateway_models; /* cfg->gateway_models parsed; owned; may be NULL */
	pthread_mutex_t stats_mu;
	struct fetch_stats stats;	/* protected by stats_mu */
	struct batcher *batcher;	/* set by batcher_start for the batch route; NULL otherwise */
	struct durable durable;		/* background interactions: models that refused them */
};

/* Opens ledger (summing it into the budget), limiter, inflight.  0 or -1 with err. */
int fetch_open(struct fetch_ctx *f, const struct config *cfg, struct store *s,
	       const struct clock_ops *clk, char *err, size_t errlen);
void fetch_close(struct fetch_ctx *f);

enum fetch_result { FETCH_OK, FETCH_FAILED, FETCH_REFUSED_BUDGET, FETCH_DRY_RUN,
		   FETCH_BATCH_PENDING	/* recorded for the Batch route; batcher's done callback follows */ };
enum fetch_source { SRC_NONE, SRC_CACHE, SRC_COALESCED, SRC_GENERATED };

struct fetch_outcome {
	enum fetch_result result;
	enum fetch_source source;
	struct cache_key key;		/* key of what was made (the fallback's key after fallback) */
	char key_hex[KEY_HEX_LEN];
	struct object_info obj;		/* valid when result == FETCH_OK */
	double cost_usd;		/* estimated price (dry run, refused) or settled; < 0 unknown */
	char model_used[64];
	char size_used[8];
	bool fallback;			/* true when model_used/size_used are the fallback */
	int attempts;			/* HTTP attempts made */
	struct gen_result res;		/* last attempt's details on failure */
	char why[512];			/* budget refusal text */
	char limit_from[360];		/* on a budget refusal: which limit, and where it was set */
	char batch_name[128];		/* "batches/<id>" once the batch route submitted it; else "" */
};

/*
 * Called when the request changes state: PS_WAITING_SLOT (a local
 * max_inflight/rpm slot), PS_WAITING_QUOTA (after a 429, with retry_at the
 * wall time, seconds since the epoch, its pause ends; 0 with any other
 * state), and PS_RUNNING just before each attempt is sent.  Non-zero means the job was rewritten
 * or cancelled ("bananactl cancel") since: from PS_RUNNING it abandons the
 * request before it is sent (nothing is ledgered as sent, nothing is paid,
 * and the outcome is FETCH_FAILED with res.message saying so).  A loop
 * that polls a background request asks again between polls and cancels
 * the remote request on non-zero: that is the job's cancel hook.
 */
typedef int (*fetch_status_fn)(void *arg, enum prompt_state st, time_t retry_at);

/*
 * The reason of a send asked for with "bananactl run": deliberate and
 * ledgered, and the one send a dry-run mount makes.
 */
#define FETCH_REASON_RUN "bananactl run"

/*
 * Runs the pipeline for rq.  prompt_hash is the hex hash of rq->prompt for
 * the ledger; reason is NULL or why this is a deliberate resend ("resume
 * after crash", "regen").  Always fills *out (free with fetch_outcome_free)
 * and returns out->result.
 */
enum fetch_result fetch_image(struct fetch_ctx *f, const struct gen_request *rq, const char *job_id,
			      const char *reason, fetch_status_fn status, void *arg,
			      struct fetch_outcome *out);
/* Empties *out, with every "unknown" field at -1: the start of every route's outcome. */
void fetch_outcome_init(struct fetch_outcome *out);
void fetch_outcome_free(struct fetch_outcome *out);

/*
 * The Batch route's entry: the same gates as fetch_image, in fetch.c -
 * cache, in flight (one table for every route: the batch item claims its
 * key as owner "batch.<key>", so a standard request for the same key waits
 * for the batch result, and a batch item for a key a standard request is
 * making waits for that one), dry run, budget at the batch price - then the
 * batcher gathers the item (state.db row) and FETCH_BATCH_PENDING is
 * returned with out->key_hex (and out->batch_name when already submitted).
 * A key already gathered or submitted only gains this job_ref: one paid
 * request per key.  status (may be NULL) hears PS_RUNNING just before a new
 * item is gathered, as fetch_image's before each send; non-zero abandons
 * it (FETCH_FAILED, nothing gathered or reserved).  The batcher later calls its done callback once per
 * job_ref.
 */
enum fetch_result fetch_image_batch(struct fetch_ctx *f, const struct gen_request *rq, const char *job_id,
				    const char *job_ref, fetch_status_fn status, void *arg,
				    struct fetch_outcome *out);

/*
 * The batch route's other calls into the pipeline (cache/batcher.c only):
 * the batcher gathers, submits and polls; the ledger, the budget, the
 * store and the in-flight table are handled here, as for every route.
 *   fetch_batch_owner: the in-flight owner and reservation id of a batch key;
 *   fetch_batch_sent: the fsynced "sent" line before a create carries the
 *     item (-1: not written, do not send);
 *   fetch_batch_finish: gate 8 for an item whose batch ended - out->res is
 *     the result (an image, or a failure; res->paid_unusable when the batch
 *     made something unusable), or out->result is preset to FETCH_OK with
 *     SRC_CACHE (the store had it before submission: nothing is paid) or to
 *     FETCH_REFUSED_BUDGET (out->why).  Stores, settles the reservation,
 *     ledgers the outcome with reason, and ends the in-flight claim.
 */
#define FETCH_BATCH_LEASE_S 900.0	/* claim and reservation lifetime; the batcher renews them */
void fetch_batch_owner(const char *key_hex, char *owner, size_t len);
int fetch_batch_sent(struct fetch_ctx *f, const struct gen_request *rq, const char *key_hex,
		     const char *job_id, const char *reason, int attempt, double est);
void fetch_batch_finish(struct fetch_ctx *f, const struct gen_request *rq, const char *job_id,
			const char *reason, double est, int attempts, struct fetch_outcome *out);

/*
 * Writes the published PNG with the text chunks that say where it came
 * from (prompt, model, size, aspect, route, key, text): a store_put
 * write_pub callback taking a struct fetch_pub.  Shared with the batcher.
 */
struct fetch_pub {
	const struct gen_request *rq;
	const char *key_hex;
	const struct gen_result *res;
	char err[256];
	bool bad_image;			/* set when the server's image itself did not decode */
};
int fetch_write_pub_png(const char *tmp_path, void *arg);

/*
 * The failure of a failed or refused outcome (cache/failure.h), for
 * failure_render: what happened, HTTP and API status, request id, whose
 * problem and move, the next move, the model's own text.  *f borrows
 * strings of out and rq: render it before fetch_outcome_free(out).
 */
void fetch_failure(const struct fetch_outcome *out, const struct gen_request *rq, struct failure *f);

void fetch_stats_get(struct fetch_ctx *f, struct fetch_stats *st);

#endif
