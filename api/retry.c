/*
 * retry.c - the resend policy: which failures are resent, and after how long.
 */
#include "api/retry.h"

#include <math.h>

/* ---- resend policy ---------------------------------------------------- */

double retry_delay(const struct retry_policy *p, const struct gen_result *res,
		   int attempt, const struct clock_ops *clk)
{
	if (!err_class_transient(res->cls))
		return -1;
	if (attempt < 2 || attempt > p->max_attempts)
		return -1;
	if (res->retry_after_s >= 0)
		return res->retry_after_s;	/* the server knows its own quota window */
	double d = p->base_s * ldexp(1.0, attempt - 2);
	if (d > p->cap_s)
		d = p->cap_s;
	return clk->random(clk->ctx) * d;	/* full jitter */
}
