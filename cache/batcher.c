/*
 * batcher.c - the Batch route: gather, submit, poll.
 *
 * The gates are not here.  fetch_image_batch (cache/fetch.c) runs the
 * same cache -> in flight -> dry run -> budget walk as every route, then
 * hands the item to batcher_gather; the result goes back through
 * fetch_batch_finish (store, settle, ledger, end of the in-flight claim)
 * and the "sent" lines through fetch_batch_sent.  What stays here:
 *  - one paid request per cache key: a key already gathered or submitted
 *    only gains a job_ref; the key holds one in-flight claim and one budget
 *    reservation, both named "batch.<key>" and renewed while the batch
 *    lives, so a standard request for the same key waits for this one;
 *  - the store is looked at again just before each submission: an item
 *    another route or mount made meanwhile ends as a cache hit, unpaid;
 *  - a "sent" line is fsynced for every key before the create request
 *    leaves; if it cannot be written nothing is sent;
 *  - the state.db row exists before fetch_image_batch returns, and the
 *    batch name is on the rows as soon as the create answer arrives, so a
 *    restart polls the same job instead of paying for a new one.
 *  (A crash between the create answer and that update loses the name: the
 *   rows are still "submitting" and are sent again, ledgered as "resume
 *   after crash".)
 *
 * Locking: b->mu protects the in-memory lists and orders every decision
 * about a key (join, create, finish) against the others.  No HTTP call and
 * no callback runs under it.  Every HTTP call is api_exchange, the one
 * exchange of every route.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cJSON.h>

#include "api/batch.h"
#include "api/errors.h"
#include "api/image.h"
#include "api/models.h"
#include "api/prices.h"
#include "cache/batcher.h"
#include "cache/journal.h"
#include "cache/upgrade.h"

#define BATCH_MAX_ITEMS 1000		/* submit at once when this many are gathered */
#define BATCH_TICK_S 0.2
#define BATCH_POLL_CAP_S 60.0
#define BATCH_RENEW_S 60.0		/* well inside FETCH_BATCH_LEASE_S */

enum bk_state { BK_GATHERED, BK_SUBMITTING, BK_SUBMITTED };

struct bref {
	char *job_ref, *job_id;
	struct bref *next;
};

/* One cache key waiting for a batch result, and every job that wants it. */
struct bkey {
	char key[KEY_HEX_LEN];
	char prompt_hash[KEY_HEX_LEN];
	char *model, *size, *aspect, *request_json, *prompt;
	char batch_name[128];
	enum bk_state state;
	double created;			/* wall seconds */
	double est;			/* batch price; < 0 unknown */
	int attempts;			/* create requests that carried it */
	char reason[96];		/* reason for the next "sent" line, or "" */
	char refused[512];		/* set on resume when the budget refuses it */
	struct bref *refs;
	struct bkey *next;
};

struct bpoll {
	char name[128];
	double next_at, interval;
	struct bpoll *next;
};

struct batcher {
	struct fetch_ctx *f;
	batch_done_fn done;
	void *arg;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop;
	pthread_t th;
	struct bkey *keys;		/* oldest first */
	struct bpoll *polls;
	double submit_at;		/* no create before this (back-off after a transient failure) */
	double renewed_at;		/* last renewal of the keys' claims and reservations */
};

/* The mount's one clock (wall time: rows and windows survive a restart). */
static double wall_now(const struct fetch_ctx *f)
{
	return f->clk->wall(f->clk->ctx);
}

/* The in-flight owner and budget reservation id of a key: one per key, whoever asked for it. */
#define RESV_ID_LEN (KEY_HEX_LEN + 8)
static const char *resv_id(const char *key, char *buf)
{
	fetch_batch_owner(key, buf, RESV_ID_LEN);
	return buf;
}

/* The path part of a job_ref "gen/i/n:path" (the prompt's path for the ledger), or NULL. */
static const char *ref_path(const char *job_ref)
{
	const char *colon = job_ref ? strchr(job_ref, ':') : NULL;
	return colon ? colon + 1 : NULL;
}

/* The prompt text inside a stored request (contents[0].parts[0].text), malloc'd. */
static char *prompt_of(const char *request_json)
{
	cJSON *j = cJSON_Parse(request_json);
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(
		cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(
			cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "contents"), 0), "parts"), 0),
		"text");
	char *p = strdup(cJSON_IsString(t) ? t->valuestring : "");

	cJSON_Delete(j);
	return p;
}

static void bkey_free(struct bkey *k)
{
	struct bref *r, *n;

	for (r = k->refs; r; r = n) {
		n = r->next;
		free(r->job_ref);
		free(r->job_id);
		free(r);
	}
	free(k->model);
	free(k->size);
	free(k->aspect);
	free(k->request_json);
	free(k->prompt);
	free(k);
}

/* Caller holds b->mu. */
static struct bkey *find_key(struct batcher *b, const char *key)
{
	for (struct bkey *k = b->keys; k; k = k->next)
		if (strcmp(k->key, key) == 0)
			return k;
	return NULL;
}

/* Caller holds b->mu.  Appends so the list stays oldest first. */
static void add_key(struct batcher *b, struct bkey *k)
{
	struct bkey **pp = &b->keys;

	while (*pp)
		pp = &(*pp)->next;
	k->next = NULL;
	*pp = k;
}

/* Caller holds b->mu.  0, 1 when already there, -1 OOM. */
static int add_ref(struct bkey *k, const char *job_ref, const char *job_id)
{
	struct bref *r, **pp = &k->refs;

	for (r = k->refs; r; r = r->next)
		if (strcmp(r->job_ref, job_ref) == 0)
			return 1;
	if (!(r = calloc(1, sizeof(*r))) || !(r->job_ref = strdup(job_ref)) ||
	    !(r->job_id = strdup(job_id ? job_id : ""))) {
		if (r)
			free(r->job_ref);
		free(r);
		return -1;
	}
	while (*pp)
		pp = &(*pp)->next;
	*pp = r;
	return 0;
}

static struct bkey *bkey_new(const char *key, const char *model, const char *size, const char *aspect,
			     const char *request_json)
{
	struct bkey *k = calloc(1, sizeof(*k));
	struct cache_key ph;

	if (!k)
		return NULL;
	snprintf(k->key, sizeof(k->key), "%s", key);
	k->model = strdup(model);
	k->size = strdup(size);
	k->aspect = strdup(aspect);
	k->request_json = strdup(request_json);
	k->prompt = prompt_of(request_json);
	if (!k->model || !k->size || !k->aspect || !k->request_json || !k->prompt) {
		bkey_free(k);
		return NULL;
	}
	key_hash_bytes(k->prompt, strlen(k->prompt), ph.b);
	key_hex(&ph, k->prompt_hash);
	k->est = price_usd(model, size, ROUTE_BATCH);
	return k;
}

/* Caller holds b->mu. */
static void add_poll(struct batcher *b, const char *name, double at)
{
	struct bpoll *p;

	for (p = b->polls; p; p = p->next)
		if (strcmp(p->name, name) == 0)
			return;
	if (!(p = calloc(1, sizeof(*p))))
		return;		/* the rows keep the name: the next start polls it */
	snprintf(p->name, sizeof(p->name), "%s", name);
	p->interval = b->f->cfg->batch_poll_s > 0 ? b->f->cfg->batch_poll_s : 10;
	p->next_at = at;
	p->next = b->polls;
	b->polls = p;
}

/* Caller holds b->mu. */
static void drop_poll(struct batcher *b, const char *name)
{
	for (struct bpoll **pp = &b->polls; *pp; pp = &(*pp)->next)
		if (strcmp((*pp)->name, name) == 0) {
			struct bpoll *p = *pp;
			*pp = p->next;
			free(p);
			return;
		}
}

/* --- gathering (the gates ran in fetch_image_batch) -------------------------- */

static const char *state_name(enum bk_state st)
{
	return st == BK_SUBMITTED ? "submitted" : st == BK_SUBMITTING ? "submitting" : "gathered";
}

/* Caller holds b->mu.  Adds job_ref to k (row first).  1, or -1 with out->res set. */
static int join_locked(struct batcher *b, struct bkey *k, const char *job_ref, const char *job_id,
		       struct fetch_outcome *out)
{
	struct journal_bitem it = {
		.key = k->key, .job_ref = job_ref, .job_id = job_id, .model = k->model,
		.size = k->size, .aspect = k->aspect, .request_json = k->request_json,
		.batch_name = k->batch_name[0] ? k->batch_name : NULL,
		.state = state_name(k->state), .created = k->created,
	};
	int rc = add_ref(k, job_ref, job_id);

	if (rc == 0 && journal_bitem_put(b->f->store, &it) < 0)
		rc = -1;
	snprintf(out->batch_name, sizeof(out->batch_name), "%s", k->batch_name);
	if (rc < 0) {
		gen_result_fail(&out->res, ERR_NONE, "cannot record the batch item in state.db");
		return -1;
	}
	return 1;
}

int batcher_join(struct batcher *b, const char *key_hex, const char *job_ref, const char *job_id,
		 struct fetch_outcome *out)
{
	struct bkey *k;
	int rc = 0;

	pthread_mutex_lock(&b->mu);
	k = find_key(b, key_hex);
	if (k)
		rc = join_locked(b, k, job_ref, job_id, out);
	pthread_mutex_unlock(&b->mu);
	return rc;
}

int batcher_gather(struct batcher *b, const struct gen_request *rq, const char *job_id, const char *job_ref,
		   double est, struct fetch_outcome *out)
{
	struct fetch_ctx *f = b->f;
	char err[256] = "";
	struct bkey *k;
	int rc;

	pthread_mutex_lock(&b->mu);
	k = find_key(b, out->key_hex);
	if (k) {
		rc = join_locked(b, k, job_ref, job_id, out);
		pthread_mutex_unlock(&b->mu);
		return rc;
	}
	char *rj = batch_request_json(rq, err, sizeof(err));
	k = rj ? bkey_new(out->key_hex, rq->model, rq->size, rq->aspect, rj) : NULL;
	free(rj);
	if (k) {
		struct journal_bitem it = {
			.key = k->key, .job_ref = job_ref, .job_id = job_id, .model = k->model,
			.size = k->size, .aspect = k->aspect, .request_json = k->request_json,
			.state = "gathered", .created = wall_now(f),
		};
		k->created = it.created;
		k->est = est;
		if (add_ref(k, job_ref, job_id) != 0 || journal_bitem_put(f->store, &it) < 0) {
			bkey_free(k);
			k = NULL;
			snprintf(err, sizeof(err), "cannot record the batch item in state.db");
		}
	}
	if (!k) {
		pthread_mutex_unlock(&b->mu);
		gen_result_fail(&out->res, ERR_REQUEST, "%s; nothing was sent", err[0] ? err : "out of memory");
		return -1;
	}
	add_key(b, k);
	pthread_cond_signal(&b->cv);
	pthread_mutex_unlock(&b->mu);
	return 0;
}

/* --- ending a key ---------------------------------------------------------- */

/*
 * Ends key with res (an image to store, or a failure), or with a budget
 * refusal (END_REFUSED), or with the object the store had before the batch
 * was sent (END_CACHED).  fetch.c stores, settles and ledgers; then the rows
 * go and every job that waited for the key is told.
 */
enum end { END_RESULT, END_REFUSED, END_CACHED };

static void finish_key(struct batcher *b, const char *key, const char *batch_name, struct gen_result *res,
		       enum end how, const struct object_info *cached)
{
	struct fetch_ctx *f = b->f;
	struct fetch_outcome out;
	struct bkey *k, **pp;
	char reason[160];

	/* Take the key out of the lists first: no new job joins a key that is ending. */
	pthread_mutex_lock(&b->mu);
	for (pp = &b->keys; *pp && strcmp((*pp)->key, key) != 0; pp = &(*pp)->next)
		;
	k = *pp;
	if (k)
		*pp = k->next;
	pthread_mutex_unlock(&b->mu);
	if (!k)
		return;

	struct gen_request rq = {
		.model = k->model, .size = k->size, .aspect = k->aspect, .prompt = k->prompt,
		.prompt_len = strlen(k->prompt), .n = 1, .index = 1, .route = ROUTE_BATCH,
		.origin = k->refs ? ref_path(k->refs->job_ref) : NULL,
	};

	fetch_outcome_init(&out);
	key_from_hex(k->key, &out.key);
	memcpy(out.key_hex, k->key, KEY_HEX_LEN);
	snprintf(out.model_used, sizeof(out.model_used), "%s", k->model);
	snprintf(out.size_used, sizeof(out.size_used), "%s", k->size);
	snprintf(out.batch_name, sizeof(out.batch_name), "%s", batch_name ? batch_name : "");
	snprintf(reason, sizeof(reason), "batch %s", batch_name && *batch_name ? batch_name : "(not created)");
	if (res) {
		out.res = *res;		/* moved: the caller's copy is zeroed below */
		memset(res, 0, sizeof(*res));
	}
	if (how == END_REFUSED) {
		snprintf(out.why, sizeof(out.why), "%s", k->refused);
		out.result = FETCH_REFUSED_BUDGET;
	} else if (how == END_CACHED) {
		out.result = FETCH_OK;
		out.source = SRC_CACHE;
		out.obj = *cached;
	} else if (out.res.cls == ERR_NONE && out.res.image && api_check_image(&rq, &out.res) < 0) {
		/* the same checks as every route: the batch made it, but not the image asked for */
		out.res.paid_unusable = true;
	}
	/* gate 8, as for every route: store, settle, ledger, end the claim */
	fetch_batch_finish(f, &rq, k->refs ? k->refs->job_id : NULL, reason, k->est, k->attempts, &out);

	/* The object (if any) is stored: the rows may go before anyone is told. */
	journal_bitem_delete(f->store, k->key, NULL);
	for (struct bref *ref = k->refs; ref; ref = ref->next) {
		if (b->done)
			b->done(b->arg, ref->job_ref, &out);
		/* later jobs of the same key paid nothing themselves */
		if (out.result == FETCH_OK)
			out.source = SRC_COALESCED;
		if (out.result != FETCH_REFUSED_BUDGET)
			out.cost_usd = 0;
	}
	fetch_outcome_free(&out);
	bkey_free(k);
}

/* Ends every key of batch name (or every key in list) with the same failure. */
static void fail_keys(struct batcher *b, char **keys, int n, const char *name, enum err_class cls,
		      long http_status, const char *msg)
{
	for (int i = 0; i < n; i++) {
		struct gen_result res;

		memset(&res, 0, sizeof(res));
		res.quota_value = -1;
		res.retry_after_s = -1;
		res.in_tokens = res.out_tokens = res.thought_tokens = -1;
		res.http_status = http_status;
		gen_result_fail(&res, cls, "%s", msg);
		finish_key(b, keys[i], name, &res, END_RESULT, NULL);
		gen_result_free(&res);
	}
}

static void free_strv(char **v, int n)
{
	for (int i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* Caller holds b->mu.  The keys submitted under name, malloc'd. */
static char **keys_of_batch(struct batcher *b, const char *name, int *n)
{
	char **v = NULL, **g;

	*n = 0;
	for (struct bkey *k = b->keys; k; k = k->next) {
		if (k->state != BK_SUBMITTED || strcmp(k->batch_name, name) != 0)
			continue;
		if (!(g = realloc(v, (size_t)(*n + 1) * sizeof(*v))))
			break;
		v = g;
		if (!(v[*n] = strdup(k->key)))
			break;
		(*n)++;
	}
	return v;
}

/* --- submitting ------------------------------------------------------------ */

/* The one exchange of every route (api/attempt.c), against Google. */
static bool exchange(struct fetch_ctx *f, struct http_req *req, struct http_resp *resp, struct gen_result *res)
{
	return api_exchange(&f->http, &f->google, req, resp, res);
}

struct sub_item {
	char key[KEY_HEX_LEN];
	char *request_json;
};

/* Sends one create for items (all of model).  On success fills name. */
static bool create_batch(struct batcher *b, const char *model, const char *display, struct sub_item *it, int n,
			 char *name, size_t namelen, struct gen_result *res)
{
	struct fetch_ctx *f = b->f;
	struct batch_line *lines = calloc((size_t)n, sizeof(*lines));
	struct http_req req;
	struct http_resp resp;
	struct batch_status st;
	char err[256] = "";
	bool ok = false;

	memset(&req, 0, sizeof(req));
	memset(&resp, 0, sizeof(resp));
	if (!lines) {
		gen_result_fail(res, ERR_NONE, "out of memory building the batch");
		return false;
	}
	for (int i = 0; i < n; i++) {
		lines[i].key = it[i].key;
		lines[i].request_json = it[i].request_json;
	}
	if (batch_build_create_inline(&f->google, model, display, lines, n, &req, err, sizeof(err)) < 0) {
		gen_result_fail(res, ERR_REQUEST, "%s", err);
		goto out_free;
	}
	if (req.body_len > BATCH_INLINE_MAX) {
		/* too big inline: upload a JSONL file, then create from it */
		size_t len = 0;
		char *jsonl = batch_jsonl(lines, n, &len), file[128];

		http_req_free(&req);
		if (!jsonl) {
			gen_result_fail(res, ERR_NONE, "out of memory building the batch file");
			goto out_free;
		}
		if (batch_build_upload_start(&f->google, display, len, &req, err, sizeof(err)) < 0 ||
		    !exchange(f, &req, &resp, res) || !resp.upload_url[0]) {
			if (res->cls == ERR_NONE)
				gen_result_fail(res, ERR_MALFORMED, "%s", err[0] ? err : "the upload answer has no upload URL");
			free(jsonl);
			goto out_free;
		}
		http_req_free(&req);
		if (batch_build_upload_finish(resp.upload_url, jsonl, len, &req, err, sizeof(err)) < 0) {
			free(jsonl);
			gen_result_fail(res, ERR_NONE, "%s", err);
			goto out_free;
		}
		free(jsonl);
		http_resp_free(&resp);
		if (!exchange(f, &req, &resp, res))
			goto out_free;
		if (batch_parse_upload(&resp, file, sizeof(file), err, sizeof(err)) < 0) {
			gen_result_fail(res, ERR_MALFORMED, "%s", err);
			goto out_free;
		}
		http_req_free(&req);
		http_resp_free(&resp);
		if (batch_build_create_file(&f->google, model, display, file, &req, err, sizeof(err)) < 0) {
			gen_result_fail(res, ERR_REQUEST, "%s", err);
			goto out_free;
		}
	}
	if (!exchange(f, &req, &resp, res))
		goto out_free;
	res->http_status = resp.status;
	if (batch_parse_status(&resp, &st, err, sizeof(err)) < 0) {
		/* A 2xx we cannot read: the job may exist, so this must not be resent blindly. */
		gen_result_fail(res, ERR_MALFORMED, "the batch create answer was unreadable: %s", err);
		goto out_free;
	}
	snprintf(name, namelen, "%s", st.name);
	batch_status_free(&st);
	ok = true;
out_free:
	http_req_free(&req);
	http_resp_free(&resp);
	free(lines);
	return ok;
}

/*
 * Caller holds b->mu.  Picks the model whose gathered items are due (the
 * window passed for its oldest, or BATCH_MAX_ITEMS are waiting), marks up
 * to BATCH_MAX_ITEMS of them submitting and copies them out.  0 when none.
 */
static int take_due(struct batcher *b, double now, char *model, size_t mlen, struct sub_item **out)
{
	double window = b->f->cfg->batch_window_s;
	struct bkey *k, *k2;
	int n = 0, cnt;

	*out = NULL;
	if (now < b->submit_at)
		return 0;
	for (k = b->keys; k; k = k->next) {
		if (k->state != BK_GATHERED || k->refused[0])
			continue;
		cnt = 0;
		for (k2 = k; k2; k2 = k2->next)
			if (k2->state == BK_GATHERED && !k2->refused[0] && strcmp(k2->model, k->model) == 0)
				cnt++;
		/* k is the oldest of its model: the list is oldest first */
		if (now - k->created >= window || cnt >= BATCH_MAX_ITEMS)
			break;
	}
	if (!k)
		return 0;
	snprintf(model, mlen, "%s", k->model);
	if (!(*out = calloc(BATCH_MAX_ITEMS, sizeof(**out))))
		return 0;
	for (k2 = k; k2 && n < BATCH_MAX_ITEMS; k2 = k2->next) {
		if (k2->state != BK_GATHERED || k2->refused[0] || strcmp(k2->model, model) != 0)
			continue;
		if (!((*out)[n].request_json = strdup(k2->request_json)))
			break;
		memcpy((*out)[n].key, k2->key, KEY_HEX_LEN);
		k2->state = BK_SUBMITTING;
		n++;
	}
	return n;
}

/* Writes the "sent" lines (fsynced) for the items; false when one could not be written. */
static bool ledger_sent(struct batcher *b, struct sub_item *it, int n, const char *display)
{
	struct fetch_ctx *f = b->f;
	char reason[200];
	bool ok = true;

	pthread_mutex_lock(&b->mu);
	for (int i = 0; i < n; i++) {
		struct bkey *k = find_key(b, it[i].key);

		if (!k)
			continue;
		struct gen_request rq = {
			.model = k->model, .size = k->size, .aspect = k->aspect, .prompt = k->prompt,
			.prompt_len = strlen(k->prompt), .n = 1, .index = 1, .route = ROUTE_BATCH,
			.origin = k->refs ? ref_path(k->refs->job_ref) : NULL,
		};
		k->attempts++;
		snprintf(reason, sizeof(reason), "%s%sbatch %s", k->reason, k->reason[0] ? ", " : "", display);
		if (fetch_batch_sent(f, &rq, k->key, k->refs ? k->refs->job_id : NULL, reason, k->attempts, k->est) < 0) {
			ok = false;
			break;
		}
		journal_bitem_set(f->store, k->key, NULL, "submitting");
	}
	pthread_mutex_unlock(&b->mu);
	return ok;
}

static void submit(struct batcher *b, const char *model, struct sub_item *it, int n)
{
	struct fetch_ctx *f = b->f;
	struct gen_result res;
	char display[96], name[128] = "";
	char **keys = calloc((size_t)n, sizeof(*keys));
	int i;

	memset(&res, 0, sizeof(res));
	res.quota_value = -1;
	res.retry_after_s = -1;
	snprintf(display, sizeof(display), "bananafs-%lld-%ld", (long long)wall_now(f), (long)getpid());
	if (!keys)
		goto out_free;
	/* The store again, just before paying: another route or mount may have made it since. */
	for (i = 0; i < n;) {
		struct object_info o;
		struct cache_key ck;

		if (key_from_hex(it[i].key, &ck) == 0 && store_lookup(f->store, &ck, &o) == 1) {
			struct sub_item t = it[i];

			finish_key(b, it[i].key, NULL, NULL, END_CACHED, &o);
			it[i] = it[n - 1];	/* the caller frees all of them: swap, do not drop */
			it[n - 1] = t;
			n--;
		} else {
			i++;
		}
	}
	if (n == 0)
		goto out_free;
	for (i = 0; i < n; i++)
		keys[i] = it[i].key;

	if (!ledger_sent(b, it, n, display)) {
		fail_keys(b, keys, n, NULL, ERR_NONE, 0, "could not write the ledger; nothing was sent");
		goto out_free;
	}
	if (create_batch(b, model, display, it, n, name, sizeof(name), &res)) {
		pthread_mutex_lock(&b->mu);
		for (i = 0; i < n; i++) {
			struct bkey *k = find_key(b, it[i].key);
			if (!k)
				continue;
			k->state = BK_SUBMITTED;
			k->reason[0] = '\0';
			snprintf(k->batch_name, sizeof(k->batch_name), "%s", name);
			journal_bitem_set(f->store, k->key, name, "submitted");
		}
		journal_batch_put(f->store, name, "pending", model);
		add_poll(b, name, wall_now(f) + (f->cfg->batch_poll_s > 0 ? f->cfg->batch_poll_s : 10));
		b->submit_at = 0;
		pthread_mutex_unlock(&b->mu);
		goto out_free;
	}

	/* Create failed.  Transient: gather again and retry later; else fail every item. */
	int attempts = 0;
	pthread_mutex_lock(&b->mu);
	for (i = 0; i < n; i++) {
		struct bkey *k = find_key(b, it[i].key);
		if (k && k->attempts > attempts)
			attempts = k->attempts;
	}
	pthread_mutex_unlock(&b->mu);
	double d = res.cls == ERR_MALFORMED ? -1 : retry_delay(&f->policy, &res, attempts + 1, f->clk);
	if (d >= 0) {
		char why[96];

		if (res.http_status > 0)
			snprintf(why, sizeof(why), "retry after %ld", res.http_status);
		else
			snprintf(why, sizeof(why), "retry after %s", err_class_name(res.cls));
		pthread_mutex_lock(&b->mu);
		for (i = 0; i < n; i++) {
			struct bkey *k = find_key(b, it[i].key);
			if (!k)
				continue;
			k->state = BK_GATHERED;
			snprintf(k->reason, sizeof(k->reason), "%s", why);
			journal_bitem_set(f->store, k->key, NULL, "gathered");
		}
		b->submit_at = wall_now(f) + (d > 0.05 ? d : 0.05);
		pthread_mutex_unlock(&b->mu);
	} else {
		for (i = 0; i < n; i++) {
			struct gen_result one;

			memset(&one, 0, sizeof(one));
			one.http_status = res.http_status;
			one.cls = res.cls;
			one.quota_value = res.quota_value;
			one.retry_after_s = res.retry_after_s;
			one.in_tokens = one.out_tokens = one.thought_tokens = -1;
			memcpy(one.api_status, res.api_status, sizeof(one.api_status));
			memcpy(one.request_id, res.request_id, sizeof(one.request_id));
			memcpy(one.quota_id, res.quota_id, sizeof(one.quota_id));
			one.message = res.message ? strdup(res.message) : NULL;
			finish_key(b, it[i].key, NULL, &one, END_RESULT, NULL);
			gen_result_free(&one);
		}
	}
out_free:
	gen_result_free(&res);
	free(keys);
}

/* --- polling --------------------------------------------------------------- */

/* Reschedules name with a growing interval. */
static void poll_later(struct batcher *b, const char *name, const char *state)
{
	pthread_mutex_lock(&b->mu);
	for (struct bpoll *p = b->polls; p; p = p->next)
		if (strcmp(p->name, name) == 0) {
			p->interval = fmin(p->interval * 1.5, BATCH_POLL_CAP_S);
			p->next_at = wall_now(b->f) + p->interval;
		}
	if (state)
		journal_batch_put(b->f->store, name, state, NULL);
	pthread_mutex_unlock(&b->mu);
}

static void batch_over(struct batcher *b, const char *name)
{
	pthread_mutex_lock(&b->mu);
	drop_poll(b, name);
	journal_batch_delete(b->f->store, name);
	pthread_mutex_unlock(&b->mu);
}

static void poll_one(struct batcher *b, const char *name)
{
	struct fetch_ctx *f = b->f;
	struct http_req req;
	struct http_resp resp;
	struct batch_status st;
	struct gen_result res;
	char err[256] = "", msg[700];
	char **keys;
	int n = 0, i;

	memset(&res, 0, sizeof(res));
	memset(&st, 0, sizeof(st));
	memset(&resp, 0, sizeof(resp));
	if (batch_build_get(&f->google, name, &req, err, sizeof(err)) < 0) {
		pthread_mutex_lock(&b->mu);
		keys = keys_of_batch(b, name, &n);
		pthread_mutex_unlock(&b->mu);
		fail_keys(b, keys, n, name, ERR_REQUEST, 0, err);
		free_strv(keys, n);
		batch_over(b, name);
		return;
	}
	bool got = exchange(f, &req, &resp, &res);
	http_req_free(&req);
	if (!got) {
		if (res.http_status == 404) {
			/* the job is gone: its results will never come */
			snprintf(msg, sizeof(msg), "the batch %s no longer exists on the server (HTTP 404)", name);
			pthread_mutex_lock(&b->mu);
			keys = keys_of_batch(b, name, &n);
			pthread_mutex_unlock(&b->mu);
			fail_keys(b, keys, n, name, ERR_REQUEST, 404, msg);
			free_strv(keys, n);
			batch_over(b, name);
		} else {
			poll_later(b, name, NULL);	/* network, 5xx, 429, key trouble: ask again later */
		}
		goto out_free;
	}
	if (batch_parse_status(&resp, &st, err, sizeof(err)) < 0) {
		poll_later(b, name, NULL);
		goto out_free;
	}
	if (batch_state_terminal_failure(st.state)) {
		pthread_mutex_lock(&b->mu);
		keys = keys_of_batch(b, name, &n);
		pthread_mutex_unlock(&b->mu);
		snprintf(msg, sizeof(msg), "%s (%s)", st.error, name);
		fail_keys(b, keys, n, name, ERR_NONE, resp.status, msg);
		free_strv(keys, n);
		batch_over(b, name);
		goto out_free;
	}
	if (!st.have_results && st.responses_file[0]) {
		struct http_resp dl;

		memset(&dl, 0, sizeof(dl));
		gen_result_free(&res);
		memset(&res, 0, sizeof(res));
		if (batch_build_download(&f->google, st.responses_file, &req, err, sizeof(err)) < 0) {
			poll_later(b, name, NULL);
			goto out_free;
		}
		got = exchange(f, &req, &dl, &res);
		http_req_free(&req);
		if (!got || batch_parse_results_jsonl(dl.body, dl.len, &st, err, sizeof(err)) < 0) {
			http_resp_free(&dl);
			poll_later(b, name, NULL);
			goto out_free;
		}
		http_resp_free(&dl);
	}
	if (!st.have_results) {
		/* still running, or SUCCEEDED before its results are there: ask again */
		poll_later(b, name, batch_state_name(st.state));
		goto out_free;
	}
	pthread_mutex_lock(&b->mu);
	keys = keys_of_batch(b, name, &n);
	pthread_mutex_unlock(&b->mu);
	for (i = 0; i < n; i++) {
		struct batch_result *r = batch_status_find(&st, keys[i]);

		if (r) {
			r->res.simulated = resp.simulated;
			finish_key(b, keys[i], name, &r->res, END_RESULT, NULL);
		} else {
			snprintf(msg, sizeof(msg), "the batch %s finished without a result for this request", name);
			fail_keys(b, &keys[i], 1, name, ERR_NO_IMAGE, 0, msg);
		}
	}
	free_strv(keys, n);
	batch_over(b, name);
out_free:
	batch_status_free(&st);
	http_resp_free(&resp);
	gen_result_free(&res);
}

/* --- the thread ------------------------------------------------------------ */

/* Caller holds b->mu.  Extends every key's claim and reservation by a lease. */
static void renew_locked(struct batcher *b)
{
	struct cache_key ck;
	char rid[RESV_ID_LEN];

	for (struct bkey *k = b->keys; k; k = k->next) {
		resv_id(k->key, rid);
		if (key_from_hex(k->key, &ck) == 0)
			inflight_renew(&b->f->inflight, &ck, rid, FETCH_BATCH_LEASE_S);
		budget_renew(&b->f->budget, rid, FETCH_BATCH_LEASE_S);
	}
}

static void *batcher_main(void *varg)
{
	struct batcher *b = varg;
	struct sub_item *items;
	char model[64], name[128];
	int n;

	pthread_mutex_lock(&b->mu);
	while (!b->stop) {
		double now = wall_now(b->f);
		struct bkey *k;
		struct bpoll *p;

		/* the keys' in-flight claims and reservations live while the batch does */
		if (now - b->renewed_at >= BATCH_RENEW_S) {
			renew_locked(b);
			b->renewed_at = now;
		}
		/* keys the budget refused on resume end first */
		for (k = b->keys; k && !k->refused[0]; k = k->next)
			;
		if (k) {
			char key[KEY_HEX_LEN];

			memcpy(key, k->key, KEY_HEX_LEN);
			pthread_mutex_unlock(&b->mu);
			finish_key(b, key, NULL, NULL, END_REFUSED, NULL);
			pthread_mutex_lock(&b->mu);
			continue;
		}
		n = take_due(b, now, model, sizeof(model), &items);
		if (n > 0) {
			pthread_mutex_unlock(&b->mu);
			submit(b, model, items, n);
			for (int i = 0; i < n; i++)
				free(items[i].request_json);
			free(items);
			pthread_mutex_lock(&b->mu);
			continue;
		}
		free(items);
		for (p = b->polls; p && p->next_at > now; p = p->next)
			;
		if (p) {
			snprintf(name, sizeof(name), "%s", p->name);
			p->next_at = now + p->interval;		/* poll_one may not reschedule on every path */
			pthread_mutex_unlock(&b->mu);
			poll_one(b, name);
			pthread_mutex_lock(&b->mu);
			continue;
		}
		/* a real-time tick on the condvar's monotonic clock; decisions use the mount's clock */
		struct timespec ts;
		double until = clock_real.now(NULL) + BATCH_TICK_S;

		ts.tv_sec = (time_t)until;
		ts.tv_nsec = (long)((until - (double)ts.tv_sec) * 1e9);
		pthread_cond_timedwait(&b->cv, &b->mu, &ts);
	}
	pthread_mutex_unlock(&b->mu);
	return NULL;
}

/* --- start / stop ---------------------------------------------------------- */

/* Loads one state.db row into the lists (start-up, before the thread runs). */
static int load_row(const struct journal_bitem *it, void *arg)
{
	struct batcher *b = arg;
	struct bkey *k = find_key(b, it->key);
	struct cache_key ck;
	char rid[RESV_ID_LEN];

	if (!k) {
		if (!(k = bkey_new(it->key, it->model, it->size, it->aspect, it->request_json)))
			return -1;
		k->created = it->created;
		/* the item owns its key in flight again: a standard request for it waits for the batch */
		if (key_from_hex(k->key, &ck) == 0)
			inflight_claim(&b->f->inflight, &ck, resv_id(k->key, rid), FETCH_BATCH_LEASE_S);
		if (strcmp(it->state, "submitted") == 0 && it->batch_name) {
			k->state = BK_SUBMITTED;
			snprintf(k->batch_name, sizeof(k->batch_name), "%s", it->batch_name);
			/* the money is committed: hold it whether or not the budget likes it now */
			budget_reserve(&b->f->budget, resv_id(k->key, rid), k->est, FETCH_BATCH_LEASE_S, NULL, 0);
			add_poll(b, k->batch_name, 0);
		} else {
			k->state = BK_GATHERED;
			if (strcmp(it->state, "submitting") == 0)
				snprintf(k->reason, sizeof(k->reason), "resume after crash");
			if (budget_reserve(&b->f->budget, resv_id(k->key, rid), k->est, FETCH_BATCH_LEASE_S,
					   k->refused, sizeof(k->refused)) < 0 && !k->refused[0])
				snprintf(k->refused, sizeof(k->refused), "the budget refuses it after the restart");
		}
		add_key(b, k);
	}
	return add_ref(k, it->job_ref, it->job_id) < 0 ? -1 : 0;
}

int batcher_start(struct fetch_ctx *f, batch_done_fn done, void *arg, char *err, size_t errlen)
{
	struct batcher *b;

	if (f->batcher) {
		snprintf(err, errlen, "batcher: already running");
		return -1;
	}
	if (journal_init(f->store) < 0) {
		snprintf(err, errlen, "batcher: cannot create the batch tables in state.db");
		return -1;
	}
	if (!(b = calloc(1, sizeof(*b)))) {
		snprintf(err, errlen, "batcher: out of memory");
		return -1;
	}
	b->f = f;
	b->done = done;
	b->arg = arg;
	pthread_mutex_init(&b->mu, NULL);
	pthread_condattr_t ca;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);	/* clock_real's now */
	pthread_cond_init(&b->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (journal_bitem_foreach(f->store, load_row, b) != 0) {
		snprintf(err, errlen, "batcher: cannot load pending batch items from state.db");
		goto out_free;
	}
	f->batcher = b;
	if (pthread_create(&b->th, NULL, batcher_main, b) != 0) {
		snprintf(err, errlen, "batcher: cannot start its thread");
		f->batcher = NULL;
		goto out_free;
	}
	return 0;
out_free:
	while (b->keys) {
		struct bkey *k = b->keys;
		b->keys = k->next;
		char rid[RESV_ID_LEN];

		budget_settle(&f->budget, resv_id(k->key, rid), 0);
		bkey_free(k);
	}
	while (b->polls) {
		struct bpoll *p = b->polls;
		b->polls = p->next;
		free(p);
	}
	pthread_cond_destroy(&b->cv);
	pthread_mutex_destroy(&b->mu);
	free(b);
	return -1;
}

void batcher_stop(struct fetch_ctx *f)
{
	struct batcher *b = f->batcher;

	if (!b)
		return;
	pthread_mutex_lock(&b->mu);
	b->stop = true;
	pthread_cond_signal(&b->cv);
	pthread_mutex_unlock(&b->mu);
	pthread_join(b->th, NULL);
	f->batcher = NULL;
	/* the rows stay in state.db; only the reservations of this run are let go */
	while (b->keys) {
		struct bkey *k = b->keys;
		b->keys = k->next;
		char rid[RESV_ID_LEN];

		budget_settle(&f->budget, resv_id(k->key, rid), 0);
		bkey_free(k);
	}
	while (b->polls) {
		struct bpoll *p = b->polls;
		b->polls = p->next;
		free(p);
	}
	pthread_cond_destroy(&b->cv);
	pthread_mutex_destroy(&b->mu);
	free(b);
}
