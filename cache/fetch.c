/*
 * fetch.c - the never-pay-twice pipeline.
 *
 * Why this order.  An image costs up to a quarter of a dollar, and the
 * same request can arrive many times: an editor saves twice, a user copies
 * a prompt into another folder, the daemon restarts while a job runs, four
 * threads pick up four copies of one prompt.  Each of them must end with
 * the one image, and only one of them may pay.  So every request walks the
 * same gates, cheapest first, and each gate is re-checked at the point
 * where the state it guards could have changed:
 *
 *   1. The cache.  key_compute() hashes everything that changes the image
 *      (not the route); an object under that key is the answer, free.
 *   2. In flight.  If another thread owns the key we wait for it, then look
 *      in the cache again.  A hit is "coalesced"; a miss means the owner
 *      failed, and one waiter becomes the next owner (a bounded number of
 *      times, so a run of failures cannot spin forever).
 *   3. The cache again, as owner: another owner may have finished between
 *      our first lookup and our inflight_begin.
 *   4. Dry run: price it, ledger it, send nothing.
 *   5. The budget.  The estimated price is reserved under one lock, so
 *      concurrent owners can never pass a limit together.  An unknown price
 *      (a gateway nobody priced) passes only when no limit is set.
 *   6. The ledger, then the wire.  A "sent" line is fsynced BEFORE each
 *      attempt: after a crash the ledger may show a request that never left,
 *      never the other way round.  If that line cannot be written we do not
 *      send.  The mount-wide limiter spaces the attempts; a per-minute 429
 *      pauses every thread of the mount (quota is per project, not per
 *      request).  Resends follow the retry policy only, and each carries its
 *      reason on its own "sent" line.  Standard and flex go out as
 *      background interactions whose id is journaled the moment the server
 *      accepts them (cache/durable.c): after a crash that id is polled (a
 *      "polled" line), never sent again.
 *   7. Fallback, after capacity failures only: the same request with the
 *      configured model/size has another key, so it walks gates 1-6 again
 *      (it may be cached, or in flight for someone else).
 *   8. The outcome.  A made image is stored under its key (temp, fsync,
 *      rename) before anyone is told; the reservation is settled into
 *      spending; an "ok" line records the money.  A failure releases the
 *      reservation, except where the route bills failures (a gateway that
 *      charges every HTTP 200).  inflight_done() wakes the waiters last, so
 *      they find the object already in the store.
 *
 * Money on failure paths: a request we could not store after a 200 with an
 * image was still paid, so it is settled and ledgered as billed.
 *
 * Nothing here holds a lock across the network.  No key (API key) ever
 * enters a ledger line, an outcome or an error text.
 */
#include <ctype.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "api/errbuf.h"
#include "api/cost.h"
#include "api/errors.h"
#include "api/image.h"
#include "api/models.h"
#include "api/prices.h"
#include "api/redact.h"
#include "cache/batcher.h"
#include "cache/fetch.h"
#include "cache/provenance.h"
#include "cache/upgrade.h"

/* Paid answers kept in memory while the store cannot take them (held.h). */
#define FETCH_HELD_CAP ((size_t)512 << 20)

static void budget_origin(const struct config *cfg, const char *why, char *buf, size_t len);

/* How many times a waiter may become owner after owners before it failed. */
#define FETCH_MAX_TAKEOVERS 4

/* A request whose background interaction is journaled is polled on resume: not unknown. */
static bool interaction_journaled(const char *job, const char *key, void *arg)
{
	char id[BG_ID_MAX];

	(void)job;
	return key && durable_journaled(arg, key, id) == 1;
}

int fetch_open(struct fetch_ctx *f, const struct config *cfg, struct store *s,
	       const struct clock_ops *clk, char *err, size_t errlen)
{
	struct ledger_totals t;
	char *path = NULL;
	time_t now;

	memset(f, 0, sizeof(*f));
	f->cfg = cfg;
	f->store = s;
	f->clk = clk ? clk : &clock_real;
	s->clk = f->clk;	/* the index rows' times come from the mount's one clock */
	now = (time_t)f->clk->wall(f->clk->ctx);
	f->ledger.fd = -1;
	if (asprintf(&path, "%s/ledger.jsonl", s->dir) < 0) {
		errbuf_set(err, errlen, "fetch: out of memory");
		return -1;
	}
	if (ledger_open(&f->ledger, path, f->clk, err, errlen) < 0)
		goto out_free_path;
	/* Requests a crash left without an outcome count as billed until shown otherwise. */
	if (ledger_settle_hidden(&f->ledger, interaction_journaled, s) < 0) {
		errbuf_set(err, errlen, "fetch: cannot settle the ledger %s", path);
		goto out_close_ledger;
	}
	if (ledger_totals(path, now, &t) < 0) {
		errbuf_set(err, errlen, "fetch: cannot read the ledger %s", path);
		goto out_close_ledger;
	}
	/* Today's backends are the local ones; a shared backend is chosen here. */
	if (limiter_local_open(&f->limiter, cfg->max_inflight > 0 ? cfg->max_inflight : 1,
			       cfg->rpm > 0 ? cfg->rpm : 0, f->clk) < 0 ||
	    budget_local_open(&f->budget, cfg->budget_daily_usd, cfg->budget_total_usd,
			      t.spent_today_usd, t.spent_total_usd, f->clk) < 0 ||
	    inflight_local_open(&f->inflight, f->clk) < 0) {
		errbuf_set(err, errlen, "fetch: cannot set up the limiter, budget and in-flight table");
		goto out_close_seams;
	}
	pthread_mutex_init(&f->stats_mu, NULL);
	held_init(&f->held, FETCH_HELD_CAP);
	quota_pauses_init(&f->pauses);
	durable_init(&f->durable);

	f->policy.max_attempts = cfg->retries > 0 ? cfg->retries : 1;
	f->policy.base_s = cfg->backoff_base_s;
	f->policy.cap_s = cfg->backoff_cap_s;
	f->http.connect_timeout_s = cfg->connect_timeout_s;
	f->http.timeout_s = cfg->timeout_s;
	f->http.max_body = cfg->max_response_bytes;
	f->http.low_speed_bps = cfg->low_speed_limit;
	f->http.low_speed_time_s = cfg->low_speed_time_s;
	f->http.clk = f->clk;
	http_set_answer_memory((size_t)cfg->answer_memory_mb << 20);
	f->google.base_url = cfg->endpoint;
	f->google.api_version = cfg->api_version;
	f->google.api_key = cfg->api_key;
	f->google.bearer = 0;
	f->gateway.base_url = cfg->gateway_url;
	f->gateway.api_version = "v1";
	f->gateway.api_key = cfg->gateway_key;
	f->gateway.bearer = 1;
	f->gateway.gateway_api = cfg->gateway_api;
	if (gateway_map_parse(cfg->gateway_models, &f->gateway_models, err, errlen) < 0)
		goto out_destroy_stats;
	f->gateway.models = f->gateway_models;
	redact_register_key(cfg->api_key);
	redact_register_key(cfg->gateway_key);
	free(path);
	return 0;

out_destroy_stats:
	held_destroy(&f->held);
	durable_destroy(&f->durable);
	quota_pauses_destroy(&f->pauses);
	pthread_mutex_destroy(&f->stats_mu);
out_close_seams:
	inflight_close(&f->inflight);
	budget_close(&f->budget);
	limiter_close(&f->limiter);
out_close_ledger:
	ledger_close(&f->ledger);
out_free_path:
	free(path);
	f->cfg = NULL;		/* fetch_close on a failed open is a no-op */
	return -1;
}

void fetch_close(struct fetch_ctx *f)
{
	if (!f->cfg)
		return;
	redact_forget_keys();	/* they point into cfg, which the caller frees next */
	limiter_close(&f->limiter);
	inflight_close(&f->inflight);
	budget_close(&f->budget);
	held_destroy(&f->held);
	ledger_close(&f->ledger);
	quota_pauses_destroy(&f->pauses);
	durable_destroy(&f->durable);
	pthread_mutex_destroy(&f->stats_mu);
	gateway_map_free(f->gateway_models);
	f->gateway_models = NULL;
	f->gateway.models = NULL;
	f->cfg = NULL;
}

void fetch_outcome_free(struct fetch_outcome *out)
{
	gen_result_free(&out->res);
}

void fetch_stats_get(struct fetch_ctx *f, struct fetch_stats *st)
{
	pthread_mutex_lock(&f->stats_mu);
	*st = f->stats;
	pthread_mutex_unlock(&f->stats_mu);
}

#define STAT_INC(f, field)                          \
	do {                                        \
		pthread_mutex_lock(&(f)->stats_mu); \
		(f)->stats.field++;                 \
		pthread_mutex_unlock(&(f)->stats_mu); \
	} while (0)

/* --- one request's walk through the gates --------------------------------- */

/* What every ledger line of one walk shares. */
struct walk {
	struct fetch_ctx *f;
	const struct gen_request *rq;
	const char *job_id;
	const char *reason;		/* caller's reason for attempt 1 */
	fetch_status_fn status;
	void *arg;
	char key_hex[KEY_HEX_LEN];
	char prompt_hash[KEY_HEX_LEN];
	const char *fallback;		/* "MODEL SIZE" on a fallback walk, else NULL */
	const char *end_reason;		/* reason on the outcome line ("batch NAME"), or NULL */
	char owner[96];			/* "<job id>.<life>.<n>": in-flight owner and budget reservation id */
	double lease_s;			/* in-flight claim and reservation lifetime, renewed per attempt */
};

/* Walk numbers: with the job id they name a walk's claim and reservation. */
static atomic_ulong walk_seq;
/*
 * This process's mark in every walk name: a resumed job's walks after a
 * restart never take the name of a walk of the run before, whose claim and
 * reservation may still be in a shared backend.
 */
static unsigned int walk_life;
static pthread_once_t walk_life_once = PTHREAD_ONCE_INIT;

static void walk_life_init(void)
{
	struct timespec ts;

	if (getrandom(&walk_life, sizeof(walk_life), 0) != (ssize_t)sizeof(walk_life)) {
		clock_gettime(CLOCK_MONOTONIC, &ts);	/* no randomness: the pid and the boot clock */
		walk_life = (unsigned int)getpid() ^ (unsigned int)ts.tv_nsec ^ (unsigned int)ts.tv_sec;
	}
}

/* Names the walk for the in-flight table and the budget ("<job>.<life>.<n>"); sets its lease. */
static void walk_name(struct walk *w)
{
	const struct config *cfg = w->f->cfg;

	pthread_once(&walk_life_once, walk_life_init);
	snprintf(w->owner, sizeof(w->owner), "%s.%08x.%lu", w->job_id && *w->job_id ? w->job_id : "walk",
		 walk_life, (unsigned long)atomic_fetch_add(&walk_seq, 1) + 1);
	/* one attempt and its back-off, with room: renewed before every attempt */
	w->lease_s = cfg->connect_timeout_s + cfg->timeout_s + cfg->backoff_cap_s + 120;
}

static int status_say(const struct walk *w, enum prompt_state st)
{
	return w->status ? w->status(w->arg, st, 0) : 0;
}

/* PS_WAITING_QUOTA, with the wall time the pause ends (clock `now` seconds until). */
static void say_quota_wait(const struct walk *w, double until)
{
	const struct clock_ops *c = w->f->clk;
	double at = c->wall(c->ctx) + (until - c->now(c->ctx));

	if (w->status)
		w->status(w->arg, PS_WAITING_QUOTA, at > 0 ? (time_t)(at + 0.5) : 0);
}

static void rec_init(const struct walk *w, struct ledger_rec *r, const char *outcome)
{
	memset(r, 0, sizeof(*r));
	r->job = w->job_id;
	r->path = w->rq->origin;
	r->key = w->key_hex;
	r->model = w->rq->model;
	r->route = route_name(w->rq->route);
	r->size = w->rq->size;
	r->aspect = w->rq->aspect;
	r->prompt_hash = w->prompt_hash;
	r->prompt = w->f->cfg->ledger_prompts_full ? w->rq->prompt : NULL;
	r->outcome = outcome;
	r->http_status = -1;
	r->latency_s = -1;
	r->cost_usd = -1;
	r->fallback = w->fallback;
	r->in_tokens = r->out_tokens = -1;
	r->time = (time_t)w->f->clk->wall(w->f->clk->ctx);
}

/* A line whose failure would not change what we do (nothing is sent after it). */
static void ledger_note(const struct walk *w, const char *outcome, double cost)
{
	struct ledger_rec r;

	rec_init(w, &r, outcome);
	r.cost_usd = cost;
	ledger_append(&w->f->ledger, &r);
}

static const struct api_endpoint *endpoint_for(struct fetch_ctx *f, enum route r)
{
	return r == ROUTE_GATEWAY ? &f->gateway : &f->google;
}

/* "retry after 429", "retry after 503", "retry after network error". */
static void resend_reason(const struct gen_result *res, char *buf, size_t len)
{
	if (res->http_status > 0)
		snprintf(buf, len, "retry after %ld", res->http_status);
	else if (res->cls == ERR_NETWORK)
		snprintf(buf, len, "retry after network error");
	else
		snprintf(buf, len, "retry after %s", err_class_name(res->cls));
}

/*
 * Whether the server billed an answer we could not use.  Google bills an
 * image it made and sent: a whole 2xx answer whose JSON, base64 or image
 * was broken was still paid for (ledger = bill).  A gateway bills by its
 * own rule: gateway_bills_failures (some providers charge every HTTP 200).
 */
static bool failure_billed(const struct config *cfg, const struct gen_request *rq,
			   const struct gen_result *res)
{
	if (res->paid_unusable)
		return true;		/* made and sent (over the cap): the server billed it */
	if (rq->route == ROUTE_GATEWAY)
		return cfg->gateway_bills_failures && res->http_status == 200;
	return res->http_status >= 200 && res->http_status < 300 && res->cls == ERR_MALFORMED;
}

int fetch_write_pub_png(const char *tmp_path, void *varg)
{
	struct fetch_pub *a = varg;
	struct provenance pv;

	if (provenance_build(&pv, a->rq, a->res, a->key_hex) < 0) {
		snprintf(a->err, sizeof(a->err), "out of memory");
		return -1;
	}
	int rc = image_write_png(a->res->image, a->res->image_len, pv.t, pv.n, tmp_path, a->err,
				 sizeof(a->err));
	provenance_free(&pv);
	a->bad_image = rc == IMAGE_BAD_INPUT;
	return rc < 0 ? -1 : 0;
}

/*
 * The store refused a verified, paid answer (err names why: ENOSPC, EROFS,
 * EIO): it is kept in memory (held.h) and the failure says so, as "store",
 * never "malformed".  The next walk for the key stores it at gate 3.
 */
static void hold_answer(struct walk *w, struct fetch_outcome *out, const char *ext, const char *err)
{
	struct fetch_ctx *f = w->f;
	const struct config *cfg = f->cfg;
	struct gen_result *res = &out->res;
	struct fetch_pub pa = { .rq = w->rq, .key_hex = w->key_hex, .res = res };
	char why[256];

	if (held_put(&f->held, &out->key, res->image, res->image_len, ext, cfg->output_original ? ext : "png",
		     cfg->output_original ? NULL : fetch_write_pub_png, &pa, res->width, res->height,
		     why, sizeof(why)) == 0)
		gen_result_fail(res, ERR_STORE, "the image was made and paid for, but the store could "
				"not take it (%s); it is kept in memory and is stored and published without "
				"a new request when the prompt is saved again or the store has room", err);
	else
		gen_result_fail(res, ERR_STORE, "the image was made and paid for, but the store could "
				"not take it (%s), and it could not be kept in memory either (%s)", err, why);
}

/*
 * Gate 3's second half, for a key we own: an answer paid earlier and held
 * because the store refused it is stored now.  1 stored (out->obj), 0 none
 * held, -1 the store still refuses it (out->res says why; nothing is paid).
 */
static int store_held(struct fetch_ctx *f, struct fetch_outcome *out)
{
	char err[512];
	int rc = held_store(&f->held, f->store, &out->key, &out->obj, err, sizeof(err));

	if (rc < 0)
		gen_result_fail(&out->res, ERR_STORE, "the image was paid for earlier and is kept in memory, "
				"but the store still cannot take it (%s); nothing was sent", err);
	return rc;
}

/*
 * Gate 8 for every route: the answer in out->res of the one paid request
 * for out->key (est reserved under w->owner).  A made image is stored under
 * its key before anyone is told; the reservation becomes spending (or is
 * released when nothing was billed); the outcome line records the money.
 * Returns true when the object is stored.
 */
static bool settle_answer(struct walk *w, double est, struct fetch_outcome *out, double latency,
			  double unknown_usd, const char *ia_id)
{
	struct fetch_ctx *f = w->f;
	const struct config *cfg = f->cfg;
	const struct gen_request *rq = w->rq;
	struct gen_result *res = &out->res;
	struct ledger_rec r;
	bool ok = res->cls == ERR_NONE && res->image && res->image_len > 0, billed = false;

	if (res->cls == ERR_NONE && !ok && !res->message)	/* an answer without image or reason */
		gen_result_fail(res, ERR_NO_IMAGE, "the answer held no image");
	if (ok) {
		struct fetch_pub pa = { .rq = rq, .key_hex = w->key_hex, .res = res };
		const char *mime = res->mime[0] ? res->mime : image_sniff(res->image, res->image_len);
		const char *ext = image_ext(mime);
		char err[512];

		if (store_put(f->store, &out->key, res->image, res->image_len, ext,
			      cfg->output_original ? ext : "png",
			      cfg->output_original ? NULL : fetch_write_pub_png, &pa,
			      res->width, res->height, &out->obj, err, sizeof(err)) < 0) {
			/* Paid for, but unusable or unstorable: billed, failed. */
			if (pa.bad_image)
				gen_result_fail(res, ERR_MALFORMED, "the server's image is damaged or cut "
						"short (%s): the fault is in the server's answer, not in "
						"the store; it was billed", pa.err);
			else
				hold_answer(w, out, ext, err);
			ok = false;
			billed = true;
		}
		free(res->image);	/* the store has it now; keep text and ids */
		res->image = NULL;
		res->image_len = 0;
	} else if (failure_billed(cfg, rq, res)) {
		billed = true;
	}
	/* The interaction has served its answer (a store failure holds it in memory). */
	durable_end(f->store, &f->http, endpoint_for(f, rq->route), w->key_hex, ia_id);

	/* What Google bills: the answer's tokens at the served model's rates, else the per-image price. */
	struct answer_cost cost;
	answer_cost(rq, res, ok || billed, est, &cost);
	double settled = cost.usd;
	if (res->model_served[0] && strcmp(res->model_served, rq->model) != 0)
		snprintf(out->model_used, sizeof(out->model_used), "%s", res->model_served);
	/* unknown_usd: earlier attempts of this walk that may have been billed (ledgered "unknown") */
	out->cost_usd = ((ok || billed) ? settled : 0) + unknown_usd;

	rec_init(w, &r, ok ? "ok" : "failed");
	r.billed = ok || billed;
	r.cost_usd = (ok || billed) ? settled : 0;
	r.search_queries = (ok || billed) ? res->search_queries : 0;
	r.model_served = res->model_served[0] ? res->model_served : NULL;
	r.simulated = res->simulated;
	r.http_status = res->http_status > 0 ? res->http_status : -1;
	r.api_status = res->api_status;
	r.request_id = res->request_id;
	r.error_class = ok ? NULL : err_class_name(res->cls);
	r.attempt = out->attempts;
	r.latency_s = latency;
	r.in_tokens = res->in_tokens;
	r.out_tokens = res->out_tokens;
	r.usage = cost.from_usage ? &cost.usage : NULL;
	r.cost_basis = !r.billed ? NULL : cost.from_usage ? "usage" : "per-image";
	r.reason = w->end_reason;
	ledger_append(&f->ledger, &r);
	/* After the line: a team budget counts the line's row, and the reservation until then. */
	budget_settle(&f->budget, w->owner, out->cost_usd);
	return ok;
}


enum sent {
	SENT_FAILED, SENT_STORED,
	SENT_LOST,	/* another owner took the key over; nothing sent */
	SENT_FOUND,	/* the polled interaction was gone, its image stored by its other owner */
};

/*
 * The attempt loop (gate 6) and the outcome (gate 8) for a key we own with
 * est reserved.  Fills out.
 */
static enum sent send_and_store(struct walk *w, double est, struct fetch_outcome *out)
{
	struct fetch_ctx *f = w->f;
	const struct gen_request *rq = w->rq;
	struct gen_result *res = &out->res;
	struct ledger_rec r;
	char why[64];
	const char *reason = w->reason;
	double t0 = 0, latency = -1, d, unknown_usd = 0;
	bool waited, abandoned = false, lost = false, resuming;
	char ia_id[BG_ID_MAX] = "";
	const struct durable_claim claim = { .inflight = &f->inflight, .key = &out->key, .owner = w->owner,
					     .lease_s = w->lease_s };
	int attempt, unnamed_429s = 0;
	double until;

	for (attempt = 1;; attempt++) {
		gen_result_free(res);
		memset(res, 0, sizeof(*res));
		res->quota_value = -1;
		res->retry_after_s = -1;
		res->in_tokens = res->out_tokens = res->thought_tokens = -1;

		/* another prompt's 429 for this model: wait for its end (other models go on) */
		while ((until = quota_paused_until(&f->pauses, rq->model, f->clk->now(f->clk->ctx))) > 0) {
			say_quota_wait(w, until);
			f->clk->sleep(f->clk->ctx, until - f->clk->now(f->clk->ctx));
		}
		/* The true word: a 429's pause, or only a local max_inflight/rpm slot. */
		if (limiter_next_wait(&f->limiter) > 0) {
			double paused = limiter_paused_for(&f->limiter);
			if (paused > 0)
				say_quota_wait(w, f->clk->now(f->clk->ctx) + paused);
			else
				status_say(w, PS_WAITING_SLOT);
		}
		waited = false;
		limiter_acquire(&f->limiter, w->owner, &waited);
		if (status_say(w, PS_RUNNING) != 0) {
			limiter_release(&f->limiter, w->owner);
			gen_result_fail(res, ERR_NONE, "superseded by a newer version of the prompt; "
					"nothing was sent");
			abandoned = true;
			break;
		}
		/* The quota wait and the caller's settle wait (in status_say) may have been long:
		 * still the owner, last thing before sending?  Then hold on for one more attempt. */
		if (inflight_renew(&f->inflight, &out->key, w->owner, w->lease_s) != INFLIGHT_OWNER) {
			limiter_release(&f->limiter, w->owner);
			lost = abandoned = true;
			break;
		}
		budget_renew(&f->budget, w->owner, w->lease_s);

		/* The intent is on disk before the request leaves, or it does not leave.
		 * A journaled interaction (a crash hid its answer), or one a dead machine
		 * left with the claim we took over, is polled, not sent. */
		resuming = durable_resume(f->store, &claim, w->key_hex, w->job_id, rq->model, ia_id) == 1;
		rec_init(w, &r, resuming ? "polled" : "sent");
		r.attempt = attempt;
		r.reason = resuming ? "resume after crash: polling the journaled interaction, not sending"
				    : reason;
		r.cost_usd = est;
		if (ledger_append(&f->ledger, &r) < 0) {
			limiter_release(&f->limiter, w->owner);
			gen_result_fail(res, ERR_NONE, "could not write the ledger %s; nothing was sent",
					f->ledger.path ? f->ledger.path : "");
			break;
		}
		out->attempts = attempt;
		STAT_INC(f, sent);
		t0 = f->clk->now(f->clk->ctx);
		if (durable_attempt(&f->durable, f->cfg, f->store, &f->http, endpoint_for(f, rq->route), rq,
				    f->clk, &claim, w->key_hex, w->job_id, res, ia_id) == DURABLE_LEFT) {
			/* Our claim ran out while we polled; its new owner polls the interaction. */
			limiter_release(&f->limiter, w->owner);
			lost = abandoned = true;
			break;
		}
		latency = f->clk->now(f->clk->ctx) - t0;
		limiter_release(&f->limiter, w->owner);
		if (resuming && res->outcome_unknown && res->http_status == 404 &&
		    store_lookup(f->store, &out->key, &out->obj) == 1) {
			/*
			 * The interaction we took over is gone because its other
			 * owner (a machine whose claim lapsed, or one that died after
			 * the delete) took its image in and deleted it: it was paid
			 * once, and the image is here.
			 */
			budget_settle(&f->budget, w->owner, unknown_usd);
			out->cost_usd = unknown_usd;
			return SENT_FOUND;
		}
		if (res->outcome_unknown) {
			/* It reached the server and may have been billed: counted so. */
			rec_init(w, &r, "unknown");
			r.attempt = attempt;
			r.cost_usd = est;
			r.billed = true;
			r.reason = "no answer in time: the server may have made and billed the image";
			r.latency_s = latency;
			ledger_append(&f->ledger, &r);
			unknown_usd += est;
		}

		if (res->cls == ERR_NONE && res->image && res->image_len > 0)
			break;
		if (res->cls == ERR_NONE)	/* 2xx without an image the route did not classify */
			gen_result_fail(res, ERR_NO_IMAGE, "the answer held no image");

		d = retry_delay(&f->policy, res, attempt + 1, f->clk);
		if (res->cls == ERR_QUOTA_MINUTE) {
			/* A 429's delay is believed within its quota's window only; it holds
			 * this model's prompts, or everyone's when the quota is the project's. */
			char qwhy[256];
			double pause = retry_quota_pause(&f->policy, res, unnamed_429s, f->clk, qwhy, sizeof(qwhy));
			if (res->retry_after_s < 0)
				unnamed_429s++;
			if (pause < 0) {
				gen_result_fail(res, ERR_QUOTA_MINUTE, "%s; %s", res->message ? res->message :
						"quota exceeded (HTTP 429)", qwhy);
				break;
			}
			until = f->clk->now(f->clk->ctx) + pause;
			if (retry_quota_project_wide(res))
				limiter_pause(&f->limiter, pause);
			else
				quota_pause_model(&f->pauses, rq->model, until);
			if (d >= 0) {
				d = pause;
				say_quota_wait(w, until);
			}
		}
		if (d < 0)
			break;
		resend_reason(res, why, sizeof(why));
		reason = why;
		f->clk->sleep(f->clk->ctx, d);
	}

	if (abandoned) {
		/* nothing left this machine after the attempts whose outcome is unknown */
		budget_settle(&f->budget, w->owner, unknown_usd);
		out->cost_usd = unknown_usd;
		return lost ? SENT_LOST : SENT_FAILED;	/* nothing left this machine: nothing to ledger */
	}
	return settle_answer(w, est, out, latency, unknown_usd, ia_id) ? SENT_STORED : SENT_FAILED;
}

/* Gates 1-6 and 8 for one request.  Fills out (key, result, source, ...). */
static enum fetch_result walk_one(struct walk *w, struct fetch_outcome *out)
{
	struct fetch_ctx *f = w->f;
	const struct gen_request *rq = w->rq;
	bool owner_ok = false;
	enum sent sent;
	double est;
	int takeovers = 0, rc;

	key_compute(rq, &out->key);
	key_hex(&out->key, out->key_hex);
	memcpy(w->key_hex, out->key_hex, KEY_HEX_LEN);
	snprintf(out->model_used, sizeof(out->model_used), "%s", rq->model);
	snprintf(out->size_used, sizeof(out->size_used), "%s", rq->size);

	/* 1. cached: free, always allowed (an object of an older key format too) */
	rc = store_lookup(f->store, &out->key, &out->obj);
	if (rc == 0)
		rc = upgrade_adopt(f->store, rq, &out->key, &out->obj);
	if (rc == 1) {
		out->source = SRC_CACHE;
		out->cost_usd = 0;
		ledger_note(w, "cached", 0);
		return out->result = FETCH_OK;
	}
	STAT_INC(f, misses);

	/* 2. in flight: wait for the owner, then look again */
	walk_name(w);
again:
	while (!inflight_begin(&f->inflight, &out->key, w->owner, w->lease_s, &owner_ok)) {
		if (store_lookup(f->store, &out->key, &out->obj) == 1) {
			/* An interaction our crashed run left for the key was polled by its taker. */
			durable_forget(f->store, w->key_hex);
			out->source = SRC_COALESCED;
			out->cost_usd = 0;
			ledger_note(w, "coalesced", 0);
			return out->result = FETCH_OK;
		}
		if (++takeovers > FETCH_MAX_TAKEOVERS) {
			gen_result_fail(&out->res, ERR_NONE, "the same request failed %d times for other "
					"prompts; not sending it again now", takeovers);
			ledger_note(w, "failed", 0);
			return out->result = FETCH_FAILED;
		}
	}

	/* 3. owner now: someone may have finished between 1 and 2, or an answer is held */
	rc = store_lookup(f->store, &out->key, &out->obj);
	if (rc != 1)
		rc = store_held(f, out);
	if (rc == 1) {
		inflight_done(&f->inflight, &out->key, w->owner, true);
		out->source = SRC_CACHE;
		out->cost_usd = 0;
		ledger_note(w, "cached", 0);
		return out->result = FETCH_OK;
	}
	if (rc < 0 && out->res.cls == ERR_STORE) {
		inflight_done(&f->inflight, &out->key, w->owner, false);
		out->cost_usd = 0;
		return out->result = FETCH_FAILED;
	}

	est = price_usd(rq->model, rq->size, rq->route);
	if (rq->search && est >= 0)
		est += price_search_query_usd();	/* one query reserved; settled by the count */

	/* 4. dry run: the price, nothing sent (unless this is the "bananactl run" that follows it) */
	if (f->cfg->dry_run && !(w->reason && strcmp(w->reason, FETCH_REASON_RUN) == 0)) {
		inflight_done(&f->inflight, &out->key, w->owner, false);
		out->cost_usd = est;
		ledger_note(w, "dry-run", est);
		return out->result = FETCH_DRY_RUN;
	}

	/* 5. budget */
	if (budget_reserve(&f->budget, w->owner, est, w->lease_s, out->why, sizeof(out->why)) < 0) {
		if (est < 0)
			snprintf(out->why, sizeof(out->why), "price unknown for %s %s %s; set it in [prices] "
				 "or remove the budget", rq->model, rq->size, route_name(rq->route));
		inflight_done(&f->inflight, &out->key, w->owner, false);
		budget_origin(f->cfg, out->why, out->limit_from, sizeof(out->limit_from));
		out->cost_usd = est;
		ledger_note(w, "refused-budget", est);
		return out->result = FETCH_REFUSED_BUDGET;
	}

	/* 6 and 8 */
	out->source = SRC_GENERATED;
	sent = send_and_store(w, est, out);
	if (sent == SENT_LOST) {
		/* our claim ran out while we waited for quota, and another owner has the key now */
		gen_result_free(&out->res);
		memset(&out->res, 0, sizeof(out->res));
		out->source = SRC_NONE;
		goto again;
	}
	if (sent == SENT_FOUND) {
		gen_result_free(&out->res);
		memset(&out->res, 0, sizeof(out->res));
		inflight_done(&f->inflight, &out->key, w->owner, true);
		out->source = SRC_COALESCED;
		ledger_note(w, "coalesced", 0);
		return out->result = FETCH_OK;
	}
	inflight_done(&f->inflight, &out->key, w->owner, sent == SENT_STORED);
	return out->result = sent == SENT_STORED ? FETCH_OK : FETCH_FAILED;
}

/* Rank of a size string for "nearest size": 512 < 1K < 2K < 4K. */
static int size_rank(const char *s)
{
	static const char *order[] = { "512", "1K", "2K", "4K" };
	size_t i;

	for (i = 0; i < sizeof(order) / sizeof(order[0]); i++)
		if (strcmp(s, order[i]) == 0)
			return (int)i;
	return -1;
}

/*
 * The fallback request for rq: model and size from the config, the size
 * moved to the model's nearest one.  false when there is none, or it is
 * the same request, or the model cannot draw this aspect.
 */
static bool fallback_request(const struct config *cfg, const struct gen_request *rq,
			     struct gen_request *fb)
{
	const struct model_info *m;
	const char *model = cfg->fallback_model ? cfg->fallback_model : rq->model;
	const char *size = cfg->fallback_size ? cfg->fallback_size : rq->size;
	int i, want, best = -1, bestd = 99, d;

	if (!cfg->fallback_model && !cfg->fallback_size)
		return false;
	m = models_find(model);
	if (m && model_retired(m))
		return false;	/* refused at start-up; the date may have passed since */
	if (m) {
		model = m->id;
		if (!model_has_size(m, size)) {
			want = size_rank(size);
			for (i = 0; i < m->nsizes; i++) {
				d = abs(size_rank(m->sizes[i]) - want);
				/* ties go to the smaller, cheaper size */
				if (d < bestd || (d == bestd && size_rank(m->sizes[i]) < size_rank(m->sizes[best]))) {
					best = i;
					bestd = d;
				}
			}
			if (best < 0)
				return false;
			size = m->sizes[best];
		}
		if (rq->aspect && !model_has_aspect(m, rq->aspect))
			return false;
	}
	if (strcmp(model, rq->model) == 0 && strcmp(size, rq->size) == 0)
		return false;
	*fb = *rq;
	fb->model = model;
	fb->size = size;
	return true;
}

enum fetch_result fetch_image(struct fetch_ctx *f, const struct gen_request *rq, const char *job_id,
			      const char *reason, fetch_status_fn status, void *arg,
			      struct fetch_outcome *out)
{
	struct walk w = { .f = f, .rq = rq, .job_id = job_id, .reason = reason,
			  .status = status, .arg = arg };
	struct cache_key ph;
	struct gen_request fb;
	char fb_label[96];

	memset(out, 0, sizeof(*out));
	out->cost_usd = -1;
	out->res.quota_value = -1;
	out->res.retry_after_s = -1;
	out->res.in_tokens = out->res.out_tokens = out->res.thought_tokens = -1;
	key_hash_bytes(rq->prompt ? rq->prompt : "", rq->prompt ? rq->prompt_len : 0, ph.b);
	key_hex(&ph, w.prompt_hash);

	walk_one(&w, out);

	/* 7. fallback, after capacity failures only */
	if (out->result == FETCH_FAILED && out->source == SRC_GENERATED && out->res.cls == ERR_CAPACITY &&
	    fallback_request(f->cfg, rq, &fb)) {
		int attempts = out->attempts;

		snprintf(fb_label, sizeof(fb_label), "%s %s", fb.model, fb.size);
		w.rq = &fb;
		w.fallback = fb_label;
		w.reason = "fallback after capacity failures";
		gen_result_free(&out->res);
		memset(out, 0, sizeof(*out));
		out->cost_usd = -1;
		walk_one(&w, out);
		out->fallback = true;
		out->attempts += attempts;
	}

	switch (out->result) {
	case FETCH_OK:
		if (out->source == SRC_CACHE)
			STAT_INC(f, hits);
		else if (out->source == SRC_COALESCED)
			STAT_INC(f, coalesced);
		else
			STAT_INC(f, ok);
		break;
	case FETCH_FAILED:
		STAT_INC(f, failed);
		break;
	case FETCH_REFUSED_BUDGET:
		STAT_INC(f, refused);
		break;
	case FETCH_DRY_RUN:
		STAT_INC(f, dry_run);
		break;
	case FETCH_BATCH_PENDING:	/* fetch_image never gathers: see batcher.c */
		break;
	}
	return out->result;
}

/* --- the batch route through the same gates ---------------------------------- */

void fetch_batch_owner(const char *key_hex, char *owner, size_t len)
{
	snprintf(owner, len, "batch.%s", key_hex);
}

/* A walk for one batch item: its owner is the key's, whoever asked for it. */
static void batch_walk(struct walk *w, struct fetch_ctx *f, const struct gen_request *rq, const char *job_id,
		       const struct cache_key *k)
{
	struct cache_key ph;

	memset(w, 0, sizeof(*w));
	w->f = f;
	w->rq = rq;
	w->job_id = job_id;
	key_hex(k, w->key_hex);
	key_hash_bytes(rq->prompt ? rq->prompt : "", rq->prompt ? rq->prompt_len : 0, ph.b);
	key_hex(&ph, w->prompt_hash);
	fetch_batch_owner(w->key_hex, w->owner, sizeof(w->owner));
	w->lease_s = FETCH_BATCH_LEASE_S;
}

void fetch_outcome_init(struct fetch_outcome *out)
{
	memset(out, 0, sizeof(*out));
	out->cost_usd = -1;
	out->res.quota_value = -1;
	out->res.retry_after_s = -1;
	out->res.in_tokens = out->res.out_tokens = out->res.thought_tokens = -1;
}

enum fetch_result fetch_image_batch(struct fetch_ctx *f, const struct gen_request *rq, const char *job_id,
				    const char *job_ref, fetch_status_fn status, void *arg,
				    struct fetch_outcome *out)
{
	struct walk w;
	struct gen_request named;
	bool owner_ok = false;
	double est;
	int takeovers = 0, rc;

	if (!rq->origin && job_ref && strchr(job_ref, ':')) {
		/* the ledger names the prompt: the path part of "gen/i/n:path" */
		named = *rq;
		named.origin = strchr(job_ref, ':') + 1;
		rq = &named;
	}
	fetch_outcome_init(out);
	key_compute(rq, &out->key);
	key_hex(&out->key, out->key_hex);
	snprintf(out->model_used, sizeof(out->model_used), "%s", rq->model);
	snprintf(out->size_used, sizeof(out->size_used), "%s", rq->size);
	batch_walk(&w, f, rq, job_id, &out->key);
	w.status = status;
	w.arg = arg;

	/* 1. cached: free, always allowed */
	rc = store_lookup(f->store, &out->key, &out->obj);
	if (rc == 0)
		rc = upgrade_adopt(f->store, rq, &out->key, &out->obj);
	if (rc == 1) {
		out->source = SRC_CACHE;
		goto out_free_ok;
	}
	STAT_INC(f, misses);

	/*
	 * 2. in flight, one table for every route: a standard request making this
	 * key is waited for; a batch item holding it is joined (same owner).
	 */
	while (!inflight_begin(&f->inflight, &out->key, w.owner, w.lease_s, &owner_ok)) {
		if (store_lookup(f->store, &out->key, &out->obj) == 1) {
			out->source = SRC_COALESCED;
			goto out_free_ok;
		}
		if (++takeovers > FETCH_MAX_TAKEOVERS) {
			gen_result_fail(&out->res, ERR_NONE, "the same request failed %d times for other "
					"prompts; not sending it again now", takeovers);
			ledger_note(&w, "failed", 0);
			STAT_INC(f, failed);
			return out->result = FETCH_FAILED;
		}
	}
	/* already gathered or submitted: one more job for the same paid request */
	rc = f->batcher && job_ref ? batcher_join(f->batcher, out->key_hex, job_ref, job_id, out) : 0;
	if (rc != 0)
		goto out_joined;

	/* 3. owner now: someone may have finished between 1 and 2, or an answer is held */
	rc = store_lookup(f->store, &out->key, &out->obj);
	if (rc != 1)
		rc = store_held(f, out);
	if (rc == 1) {
		inflight_done(&f->inflight, &out->key, w.owner, true);
		out->source = SRC_CACHE;
		goto out_free_ok;
	}
	if (rc < 0 && out->res.cls == ERR_STORE) {
		inflight_done(&f->inflight, &out->key, w.owner, false);
		STAT_INC(f, failed);
		return out->result = FETCH_FAILED;
	}

	est = price_usd(rq->model, rq->size, ROUTE_BATCH);
	/* 4. dry run: the batch price, nothing recorded */
	if (f->cfg->dry_run) {
		inflight_done(&f->inflight, &out->key, w.owner, false);
		out->cost_usd = est;
		ledger_note(&w, "dry-run", est);
		STAT_INC(f, dry_run);
		return out->result = FETCH_DRY_RUN;
	}
	/* 5. budget, once per key: the reservation is the key's */
	if (budget_reserve(&f->budget, w.owner, est, w.lease_s, out->why, sizeof(out->why)) < 0) {
		if (est < 0)
			snprintf(out->why, sizeof(out->why), "price unknown for %s %s batch; set it in [prices] "
				 "or remove the budget", rq->model, rq->size);
		inflight_done(&f->inflight, &out->key, w.owner, false);
		out->cost_usd = est;
		ledger_note(&w, "refused-budget", est);
		STAT_INC(f, refused);
		return out->result = FETCH_REFUSED_BUDGET;
	}
	/* 6. the job's last word before paying, as on every route; then gathered, durable before
	 * we say "pending" (the intent is ledgered at submission) */
	if (status_say(&w, PS_RUNNING) != 0) {
		gen_result_fail(&out->res, ERR_NONE, "superseded by a newer version of the prompt; "
				"nothing was sent");
		rc = -1;
	} else if (!f->batcher || !job_ref || !*job_ref) {
		gen_result_fail(&out->res, ERR_NONE, "the batch route is not running; nothing was sent");
		rc = -1;
	} else {
		rc = batcher_gather(f->batcher, rq, job_id, job_ref, est, out);
	}
	if (rc < 0) {
		budget_settle(&f->budget, w.owner, 0);
		inflight_done(&f->inflight, &out->key, w.owner, false);
		STAT_INC(f, failed);
		return out->result = FETCH_FAILED;
	}
	if (rc == 0) {
		out->source = SRC_GENERATED;
		out->cost_usd = est;
		return out->result = FETCH_BATCH_PENDING;
	}
out_joined:
	if (rc < 0) {
		STAT_INC(f, failed);
		return out->result = FETCH_FAILED;
	}
	out->source = SRC_COALESCED;
	out->cost_usd = 0;
	return out->result = FETCH_BATCH_PENDING;

out_free_ok:
	out->cost_usd = 0;
	ledger_note(&w, out->source == SRC_CACHE ? "cached" : "coalesced", 0);
	if (out->source == SRC_CACHE)
		STAT_INC(f, hits);
	else
		STAT_INC(f, coalesced);
	return out->result = FETCH_OK;
}

int fetch_batch_sent(struct fetch_ctx *f, const struct gen_request *rq, const char *key_hex,
		     const char *job_id, const char *reason, int attempt, double est)
{
	struct cache_key k;
	struct ledger_rec r;
	struct walk w;

	if (key_from_hex(key_hex, &k) < 0)
		return -1;
	batch_walk(&w, f, rq, job_id, &k);
	rec_init(&w, &r, "sent");
	r.reason = reason;
	r.cost_usd = est;
	r.attempt = attempt;
	if (ledger_append(&f->ledger, &r) < 0)
		return -1;
	STAT_INC(f, sent);
	return 0;
}

void fetch_batch_finish(struct fetch_ctx *f, const struct gen_request *rq, const char *job_id,
			const char *reason, double est, int attempts, struct fetch_outcome *out)
{
	struct walk w;
	bool ok;

	batch_walk(&w, f, rq, job_id, &out->key);
	w.end_reason = reason;
	out->attempts = attempts;
	if (out->result == FETCH_OK && out->source == SRC_CACHE) {
		/* the store had it before the batch was sent: nothing was paid */
		budget_settle(&f->budget, w.owner, 0);
		out->cost_usd = 0;
		ledger_note(&w, "cached", 0);
		STAT_INC(f, hits);
		inflight_done(&f->inflight, &out->key, w.owner, true);
		return;
	}
	if (out->result == FETCH_REFUSED_BUDGET) {
		budget_settle(&f->budget, w.owner, 0);
		out->cost_usd = est;
		ledger_note(&w, "refused-budget", est);
		STAT_INC(f, refused);
		inflight_done(&f->inflight, &out->key, w.owner, false);
		return;
	}
	out->source = SRC_GENERATED;
	ok = settle_answer(&w, est, out, -1, 0, NULL);
	out->result = ok ? FETCH_OK : FETCH_FAILED;
	if (ok)
		STAT_INC(f, ok);
	else
		STAT_INC(f, failed);
	inflight_done(&f->inflight, &out->key, w.owner, ok);
}

/* --- the failure NAME.error tells of ----------------------------------------- */

/* "budget_daily_usd, set in FILE:LINE" / "..., set with -o budget_daily_usd=": for why's limit. */
static void budget_origin(const struct config *cfg, const char *why, char *buf, size_t len)
{
	bool daily = strstr(why, "budget_daily_usd") != NULL;
	const char *key = daily ? "budget_daily_usd" : "budget_total_usd";
	const char *from = daily ? cfg->budget_daily_from : cfg->budget_total_from;

	if (!strstr(why, key))
		snprintf(buf, len, "budget_daily_usd or budget_total_usd");
	else if (strcmp(from, "-o") == 0)
		snprintf(buf, len, "%s, set with -o %s=... when mounting", key, key);
	else if (from[0])
		snprintf(buf, len, "%s, set in %s", key, from);
	else
		snprintf(buf, len, "%s", key);
}

void fetch_failure(const struct fetch_outcome *out, const struct gen_request *rq, struct failure *f)
{
	const struct gen_result *res = &out->res;
	const char *model = out->model_used[0] ? out->model_used : rq->model;
	const char *size = out->size_used[0] ? out->size_used : rq->size;
	const char *aspect = rq->aspect ? rq->aspect : "";

	if (out->result == FETCH_REFUSED_BUDGET && out->cost_usd < 0) {
		failure_init(f, "request not sent for %s %s %s: its price is unknown", model, size, aspect);
		failure_what(f, "no price is known for %s %s on route %s, and a budget is set, so bananafs "
			     "cannot tell whether it fits", model, size, route_name(rq->route));
		f->whose = WHOSE_USER;
		failure_problem(f, "the price table in your config");
		failure_next_move(f, "set the price in the config's [prices] section, e.g. %s.%s.%s = 0.134 "
				  "(US dollars per image), or remove budget_daily_usd/budget_total_usd",
				  model, size, route_name(rq->route));
		failure_note(f, "nothing was sent and nothing was billed");
	} else if (out->result == FETCH_REFUSED_BUDGET) {
		bool daily = strstr(out->why, "budget_daily_usd") != NULL;

		failure_init(f, "request not sent for %s %s %s: the budget would be passed", model, size, aspect);
		f->what = out->why[0] ? out->why : "the budget refused it";
		f->whose = WHOSE_USER;
		failure_problem(f, "your budget: %s",
				out->limit_from[0] ? out->limit_from : "budget_daily_usd or budget_total_usd");
		f->next_move = daily ?
			"wait for tomorrow (the daily budget restarts at local midnight), or raise "
			"budget_daily_usd where it was set and remount; then save the prompt again or run "
			"'bananactl run PATH'" :
			"raise budget_total_usd where it was set and remount (the total budget never "
			"restarts); then save the prompt again or run 'bananactl run PATH'";
		failure_note(f, "nothing was sent and nothing was billed");
	} else {
		if (res->cls == ERR_STORE)	/* made and paid for: the disk, not the generation, failed */
			failure_init(f, "the image for %s %s %s was made but could not be stored", model, size,
				     aspect);
		else
			failure_init(f, "generation failed for %s %s %s", model, size, aspect);
		f->what = res->message && *res->message ? res->message : err_class_name(res->cls);
		f->exchanged = true;
		f->http_status = res->http_status > 0 ? res->http_status : 0;
		f->api_status = res->api_status;
		f->request_id = res->request_id;
		f->finish_reason = res->finish_reason;
		if (res->cls != ERR_NONE) {
			f->whose = failure_whose_of(res->cls);
			failure_problem(f, "%s", errors_whose(res->cls));
			f->next_move = errors_next_move(res->cls);
		}
		failure_note(f, "attempts: %d (the ledger shows each)", out->attempts);
		if (out->fallback)
			failure_note(f, "fallback: tried %s %s after capacity failures", model, size);
		if (out->cost_usd > 0)
			failure_note(f, "billed: $%.3f (the route bills failed answers)", out->cost_usd);
		f->model_said = res->text;
	}
}
