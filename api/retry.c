/*
 * retry.c - the resend policy: which failures are resent, and after how long.
 */
#include "api/retry.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

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

/* ---- 429: which pauses to believe ----------------------------------- */

double retry_quota_pause(const struct retry_policy *p, const struct gen_result *res,
			 int unnamed_before, const struct clock_ops *clk, char *why, size_t whylen)
{
	double window = p->quota_window_s > 0 ? p->quota_window_s : QUOTA_WINDOW_S;
	double jitter = clk->random(clk->ctx) * QUOTA_JITTER_S;

	if (why && whylen)
		why[0] = '\0';
	if (res->retry_after_s > window) {
		if (why)
			snprintf(why, whylen, "the server asked to wait %.0f s, longer than a per-minute "
				 "quota can need (%.0f s): the prompt ends here instead of pausing the mount",
				 res->retry_after_s, window);
		return -1;
	}
	if (res->retry_after_s >= 0)
		return res->retry_after_s + jitter;
	if (unnamed_before > 0) {
		if (why)
			snprintf(why, whylen, "the server refused again without saying how long to wait: "
				 "the prompt ends here instead of pausing the mount");
		return -1;
	}
	double d = p->base_s > 0 ? p->base_s : 1;
	if (d > window)
		d = window;
	return d + jitter;
}

bool retry_quota_project_wide(const struct gen_result *res)
{
	return res->quota_id[0] && strstr(res->quota_id, "PerProject") &&
	       !strstr(res->quota_id, "PerModel");
}

void quota_pauses_init(struct quota_pauses *q)
{
	memset(q, 0, sizeof(*q));
	pthread_mutex_init(&q->mu, NULL);
}

void quota_pauses_destroy(struct quota_pauses *q)
{
	pthread_mutex_destroy(&q->mu);
}

void quota_pause_model(struct quota_pauses *q, const char *model, double until)
{
	int free_i = -1, oldest = 0;

	if (!model)
		return;
	pthread_mutex_lock(&q->mu);
	for (int i = 0; i < QUOTA_PAUSE_MODELS; i++) {
		if (strcmp(q->p[i].model, model) == 0) {
			if (until > q->p[i].until)
				q->p[i].until = until;
			pthread_mutex_unlock(&q->mu);
			if (q->share)
				q->share->pause(q->share->arg, model, until);
			return;
		}
		if (!q->p[i].model[0] && free_i < 0)
			free_i = i;
		if (q->p[i].until < q->p[oldest].until)
			oldest = i;
	}
	int i = free_i >= 0 ? free_i : oldest;	/* the soonest-ending pause gives way */
	snprintf(q->p[i].model, sizeof(q->p[i].model), "%s", model);
	q->p[i].until = until;
	pthread_mutex_unlock(&q->mu);
	if (q->share)
		q->share->pause(q->share->arg, model, until);
}

double quota_paused_until(struct quota_pauses *q, const char *model, double now)
{
	double until = 0;

	if (!model)
		return 0;
	pthread_mutex_lock(&q->mu);
	for (int i = 0; i < QUOTA_PAUSE_MODELS; i++)
		if (strcmp(q->p[i].model, model) == 0 && q->p[i].until > now)
			until = q->p[i].until;
	pthread_mutex_unlock(&q->mu);
	if (q->share) {
		double shared = q->share->until(q->share->arg, model, now);

		if (shared > until)
			until = shared;
	}
	return until;
}
