/*
 * retry.h - when to resend, and the mount-wide quota limiter.
 *
 * The clock is injected so tests drive back-off and pauses without sleeping.
 */
#ifndef BANANAFS_API_RETRY_H
#define BANANAFS_API_RETRY_H

#include <pthread.h>
#include <stdbool.h>
#include "api/request.h"

struct clock_ops {
	double (*now)(void *ctx);		/* seconds, monotonic */
	void (*sleep)(void *ctx, double s);	/* may return early */
	double (*random)(void *ctx);		/* uniform in [0,1) */
	void *ctx;
};
extern const struct clock_ops clock_real;

struct retry_policy {
	int max_attempts;	/* total attempts for transient failures, >= 1 */
	double base_s;		/* first back-off, seconds */
	double cap_s;		/* largest back-off, seconds */
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
 * One limiter for the whole mount: at most max_inflight requests at once,
 * at most rpm starts per 60 s (0 = no limit), and a pause that a 429 sets
 * for everyone.
 */
struct limiter {
	pthread_mutex_t mu;		/* protects every field below */
	pthread_cond_t cv;
	int max_inflight;
	int inflight;
	int rpm;
	double *starts;			/* ring of the last rpm start times */
	int nstarts, head;
	double paused_until;		/* clock seconds */
	const struct clock_ops *clk;
};

int limiter_init(struct limiter *l, int max_inflight, int rpm, const struct clock_ops *clk);
void limiter_destroy(struct limiter *l);
/* Seconds to wait before a start may happen now; 0 when a start may happen. Does not block. */
double limiter_next_wait(struct limiter *l);
/* Blocks until a start is allowed, then takes a slot.  *waited set true if it had to wait. */
void limiter_acquire(struct limiter *l, bool *waited);
void limiter_release(struct limiter *l);
/* Pause every start for s seconds from now (extends, never shortens). */
void limiter_pause(struct limiter *l, double s);

#endif
