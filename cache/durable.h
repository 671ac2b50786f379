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

/*
 * One attempt of rq: as a background interaction when cfg->durable_requests
 * is on, the route is standard or flex and the model has not refused it this
 * mount; else plain (api_attempt).  A journaled interaction of key_hex is
 * polled instead of sending.  id_out: the interaction followed ("" if none).
 */
void durable_attempt(struct durable *d, const struct config *cfg, struct store *s,
		     const struct http_opts *ho, const struct api_endpoint *ep,
		     const struct gen_request *rq, const struct clock_ops *clk,
		     const char *key_hex, const char *job_id, struct gen_result *res,
		     char id_out[BG_ID_MAX]);

/* After the answer of key_hex is taken in: deletes interaction id at the server and its journal row. */
void durable_end(struct store *s, const struct http_opts *ho, const struct api_endpoint *ep,
		 const char *key_hex, const char *id);

#endif
