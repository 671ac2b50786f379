/*
 * durable.h - the fetch pipeline's exchange for one attempt: a background
 * interaction whose id is journaled (api/background.c), or a plain request.
 */
#ifndef BANANAFS_CACHE_DURABLE_H
#define BANANAFS_CACHE_DURABLE_H

#include <pthread.h>
#include <stdbool.h>
#include "api/background.h"
#include "cache/config.h"
#include "cache/inflight.h"
#include "cache/store.h"

#define DURABLE_MAX_REFUSED 32

/* Per mount: which models refused background mode (then: plain requests). */
struct durable {
	pthread_mutex_t mu;
	char refused[DURABLE_MAX_REFUSED][96];	/* model ids; protected by mu */
	int nrefused;				/* protected by mu */
};

void durable_init(struct durable *d);
void durable_destroy(struct durable *d);

/* 1 and id when key_hex has a journaled interaction (poll it: never resend), else 0. */
int durable_journaled(struct store *s, const char *key_hex, char id[BG_ID_MAX]);

/* The in-flight claim a request runs under: its interaction is noted there (inflight_note). */
struct durable_claim {
	struct inflight *inflight;
	const struct cache_key *key;
	const char *owner;
	double lease_s;			/* renewed with each poll (inflight_renew) */
};

/*
 * 1 and id when key_hex's request must be polled, not sent: its interaction
 * is journaled here, or the claim c took over from a dead machine names the
 * interaction that machine created (journaled here now, so a crash of ours
 * polls it too).  0 when the request is to be sent.
 */
int durable_resume(struct store *s, const struct durable_claim *c, const char *key_hex,
		   const char *job_id, const char *model, char id[BG_ID_MAX]);

/* Forgets key_hex's journaled interaction: another owner took its answer in (a coalesced walk). */
void durable_forget(struct store *s, const char *key_hex);

/*
 * One attempt of rq: as a background interaction when cfg->durable_requests
 * is on, the route is standard or flex and the model has not refused it this
 * mount; else plain (api_attempt).  A journaled interaction of key_hex is
 * polled instead of sending.  The interaction followed is noted with the
 * claim c, which is renewed before each poll: when another owner took it
 * over (a team mount that missed its renewals), polling stops and the
 * interaction is left to that owner.  id_out: the interaction followed
 * ("" if none).  0, or DURABLE_LEFT (nothing in res: wait for the new owner).
 */
#define DURABLE_LEFT 1
int durable_attempt(struct durable *d, const struct config *cfg, struct store *s,
		     const struct http_opts *ho, const struct api_endpoint *ep,
		     const struct gen_request *rq, const struct clock_ops *clk,
		     const struct durable_claim *c, const char *key_hex, const char *job_id,
		     struct gen_result *res, char id_out[BG_ID_MAX]);

/* After the answer of key_hex is taken in: deletes interaction id at the server and its journal row. */
void durable_end(struct store *s, const struct http_opts *ho, const struct api_endpoint *ep,
		 const char *key_hex, const char *id);

#endif
