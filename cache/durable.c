/*
 * durable.c - crash-proof requests in the fetch pipeline.
 *
 * The pipeline (cache/fetch.c) calls durable_attempt where it would send a
 * request.  For standard and flex this creates a background interaction
 * and journals its id in state.db (synchronous=FULL) before polling; the
 * row lives until the answer has been taken in.  After kill -9 the resumed
 * job reaches the same place, finds the row for its key and polls that id:
 * the request is never sent twice.
 *
 * A model that refuses background mode (a 400 naming it) is remembered for
 * the mount and gets plain requests from then on.
 */
#include "cache/durable.h"

#include <string.h>

#include "cache/journal.h"
#include "cache/log.h"

void durable_init(struct durable *d)
{
	memset(d, 0, sizeof(*d));
	pthread_mutex_init(&d->mu, NULL);
}

void durable_destroy(struct durable *d)
{
	pthread_mutex_destroy(&d->mu);
}

static bool refused(struct durable *d, const char *model)
{
	bool r = false;

	pthread_mutex_lock(&d->mu);
	for (int i = 0; i < d->nrefused && !r; i++)
		r = strcmp(d->refused[i], model) == 0;
	pthread_mutex_unlock(&d->mu);
	return r;
}

static void remember_refusal(struct durable *d, const char *model)
{
	pthread_mutex_lock(&d->mu);
	if (d->nrefused < DURABLE_MAX_REFUSED && strlen(model) < sizeof(d->refused[0]))
		strcpy(d->refused[d->nrefused++], model);
	pthread_mutex_unlock(&d->mu);
	log_warnx("model %s refuses background requests: plain requests for it until unmount", model);
}

int durable_journaled(struct store *s, const char *key_hex, char id[BG_ID_MAX])
{
	_Static_assert(BG_ID_MAX == JOURNAL_IA_ID_MAX, "one interaction id size");
	return journal_ia_get(s, key_hex, id) == 1 ? 1 : 0;
}

int durable_resume(struct store *s, const struct durable_claim *c, const char *key_hex,
		   const char *job_id, const char *model, char id[BG_ID_MAX])
{
	if (durable_journaled(s, key_hex, id) == 1)
		return 1;
	if (inflight_noted(c->inflight, c->key, c->owner, id, BG_ID_MAX) != 1)
		return 0;
	/* A dead machine's interaction, ours to poll now: journaled like our own. */
	log_info("interaction %s: taken over from a machine that stopped; polling it, not sending", id);
	if (journal_ia_put(s, key_hex, id, job_id, model) < 0)
		log_warnx("cannot journal interaction %s: a crash now would send the request again", id);
	return 1;
}

void durable_forget(struct store *s, const char *key_hex)
{
	char id[BG_ID_MAX];

	if (durable_journaled(s, key_hex, id) == 1)
		journal_ia_delete(s, key_hex);
}

struct journal_arg {
	struct store *s;
	const struct durable_claim *c;
	const char *key_hex, *job_id, *model;
};

static int journal_id(void *varg, const char *id)
{
	struct journal_arg *a = varg;
	int rc = 0;

	if (journal_ia_put(a->s, a->key_hex, id, a->job_id, a->model) < 0) {
		log_warnx("cannot journal interaction %s: a crash now would send the request again", id);
		rc = -1;
	}
	/* With the claim too: whoever takes the key over from a dead us polls it. */
	inflight_note(a->c->inflight, a->c->key, a->c->owner, id);
	return rc;
}

/* Before each poll: the claim is still ours (and renewed), or another owner follows it now. */
static bool still_ours(void *varg)
{
	struct journal_arg *a = varg;

	return inflight_renew(a->c->inflight, a->c->key, a->c->owner, a->c->lease_s) == INFLIGHT_OWNER;
}

int durable_attempt(struct durable *d, const struct config *cfg, struct store *s,
		     const struct http_opts *ho, const struct api_endpoint *ep,
		     const struct gen_request *rq, const struct clock_ops *clk,
		     const struct durable_claim *c, const char *key_hex, const char *job_id,
		     struct gen_result *res, char id_out[BG_ID_MAX])
{
	struct journal_arg ja = { .s = s, .c = c, .key_hex = key_hex, .job_id = job_id, .model = rq->model };
	char resume[BG_ID_MAX] = "";
	bool journaled = durable_journaled(s, key_hex, resume) == 1;
	enum bg_state st;

	id_out[0] = '\0';
	if (journaled)
		inflight_note(c->inflight, c->key, c->owner, resume);
	if (!journaled && (!cfg->durable_requests || (rq->route != ROUTE_STANDARD && rq->route != ROUTE_FLEX) ||
			   refused(d, rq->model))) {
		api_attempt(ho, ep, rq, res);
		return 0;
	}
	st = api_background(ho, ep, rq, clk, journaled ? resume : NULL, journal_id, still_ours, &ja, res,
			    id_out);
	if (st == BG_LEFT) {
		/* Not deleted at the server: its new owner polls it and takes the answer in. */
		log_info("interaction %s: the claim passed to another owner, who polls it now", id_out);
		journal_ia_delete(s, key_hex);
		id_out[0] = '\0';
		return DURABLE_LEFT;
	}
	if (st == BG_PLAIN) {
		remember_refusal(d, rq->model);
		api_attempt(ho, ep, rq, res);
	} else if (st == BG_LOST || res->cls != ERR_NONE || !res->image) {
		/* Ended without an image: forgotten now, so a retry creates a new one.  A lost
		 * one is counted as billed by the caller (outcome_unknown). */
		if (st == BG_LOST)
			log_warnx("interaction %s: %s", id_out, res->message ? res->message : "lost");
		durable_end(s, ho, ep, key_hex, id_out);
		if (id_out[0])
			inflight_note(c->inflight, c->key, c->owner, NULL);	/* nor polled by a taker */
		id_out[0] = '\0';
	}
	return 0;
}

void durable_end(struct store *s, const struct http_opts *ho, const struct api_endpoint *ep,
		 const char *key_hex, const char *id)
{
	if (!id || !*id)
		return;
	/* The server forgets it first: a crash in between leaves a row that polls a 404 (lost). */
	if (api_background_delete(ho, ep, id) < 0)
		log_debug("interaction %s: delete failed (it expires on its own)", id);
	journal_ia_delete(s, key_hex);
}
