/*
 * retry.h - when to resend (the limiter is in api/limiter.h).
 *
 * The clock is injected so tests drive back-off and pauses without sleeping.
 */
#ifndef BANANAFS_API_RETRY_H
#define BANANAFS_API_RETRY_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include "api/clock.h"
#include "api/request.h"

/* The window of a per-minute quota: no 429 of such a quota needs a longer wait. */
#define QUOTA_WINDOW_S 60.0
/* Added to a believed 429 delay, at most: the waiters of one pause do not all start at once. */
#define QUOTA_JITTER_S 2.0

struct retry_policy {
	int max_attempts;	/* total attempts for transient failures, >= 1 */
	double base_s;		/* first back-off, seconds */
	double cap_s;		/* largest back-off, seconds */
	double quota_window_s;	/* longest 429 delay believed; 0 = QUOTA_WINDOW_S */
};

/*
 * Delay before attempt number `attempt` (2 = first resend) after result res,
 * or < 0 when it must not be resent (permanent class, or attempts used up).
 * A server-named delay (res->retry_after_s) wins; else full jitter:
 * random() * min(cap, base * 2^(attempt-2)).
 */
double retry_delay(const struct retry_policy *p, const struct gen_result *res,
		   int attempt, const struct clock_ops *clk);

/*
 * A per-minute 429 (ERR_QUOTA_MINUTE): how long to pause, or < 0 when the
 * prompt must end now with a quota error instead of pausing anyone.
 *  - a delay the server names is believed up to the quota's window (a
 *    per-minute quota never needs more): then delay + jitter; beyond it,
 *    the prompt ends ("999999s" is a broken or hostile server);
 *  - no delay named: back-off with jitter the first time; absent again
 *    (unnamed_before > 0) the prompt ends.
 * why (may be NULL) says why it ends.  The attempt bound of retry_delay
 * applies as well.
 */
double retry_quota_pause(const struct retry_policy *p, const struct gen_result *res,
			 int unnamed_before, const struct clock_ops *clk, char *why, size_t whylen);

/*
 * True when the 429 is for the whole project: its quota id names no model
 * ("...PerProject" without "PerModel").  Without a quota id it is taken as
 * the model's own (a model's 429 does not pause the other models).
 */
bool retry_quota_project_wide(const struct gen_result *res);

/*
 * Quota pauses per model: a 429 for one model holds that model's prompts
 * until its end, not the others'.  (A project-wide 429 pauses the limiter,
 * which holds everyone.)  Times are clock `now` seconds.
 */
#define QUOTA_PAUSE_MODELS 16

/*
 * Where other mounts sharing the project learn of a model's pause (team
 * mode: cache/team_limiter.c).  Times are clock `now` seconds of this mount.
 */
struct quota_share {
	void (*pause)(void *arg, const char *model, double until);
	double (*until)(void *arg, const char *model, double now);	/* 0 when not paused */
	void *arg;
};

struct quota_pauses {
	pthread_mutex_t mu;			/* protects p */
	struct {
		char model[64];			/* "" = free entry */
		double until;
	} p[QUOTA_PAUSE_MODELS];
	const struct quota_share *share;	/* set once before use; NULL = this mount only */
};
void quota_pauses_init(struct quota_pauses *q);
void quota_pauses_destroy(struct quota_pauses *q);
/* Pauses model until `until` (extends, never shortens). */
void quota_pause_model(struct quota_pauses *q, const char *model, double until);
/* The end of model's pause, or 0 when it is not paused at `now`. */
double quota_paused_until(struct quota_pauses *q, const char *model, double now);

#endif
