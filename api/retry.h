/*
 * retry.h - when to resend (the limiter is in api/limiter.h).
 *
 * The clock is injected so tests drive back-off and pauses without sleeping.
 */
#ifndef BANANAFS_API_RETRY_H
#define BANANAFS_API_RETRY_H

#include "api/clock.h"
#include "api/request.h"

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

#endif
