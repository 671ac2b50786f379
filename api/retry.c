/*
 * retry.c - the resend policy and the mount-wide quota limiter.
 *
 * Quota belongs to the project, not to a thread: one limiter holds the slots
 * (max_inflight), the start times of the last minute (rpm) and the pause a
 * 429 sets for everybody.  The clock is injected (struct clock_ops) so tests
 * drive time by hand; with the real clock waits use a condition variable, so
 * a release or a pause wakes the waiters at once.
 */
#include "api/retry.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LIMITER_WINDOW_S 60.0
#define LIMITER_POLL_S 0.05	/* re-check interval while only max_inflight blocks */

/* ---- the real clock --------------------------------------------------- */

static double real_now(void *ctx)
{
	struct timespec ts;
	(void)ctx;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void real_sleep(void *ctx, double s)
{
	(void)ctx;
	if (!(s > 0))
		return;
	struct timespec ts;
	ts.tv_sec = (time_t)s;
	ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
	nanosleep(&ts, NULL);	/* an early return (signal) is allowed by the contract */
}

/* Per-thread xorshift64*, seeded from the clock and the thread's own address. */
static double real_random(void *ctx)
{
	static __thread uint64_t state;
	(void)ctx;
	if (state == 0) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		state = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^
			(uint64_t)(uintptr_t)&state;
		if (state == 0)
			state = 0x9E3779B97F4A7C15ull;
	}
	state ^= state >> 12;
	state ^= state << 25;
	state ^= state >> 27;
	uint64_t r = state * 0x2545F4914F6CDD1Dull;
	return (double)(r >> 11) / 9007199254740992.0;	/* 53 bits -> [0,1) */
}

const struct clock_ops clock_real = { real_now, real_sleep, real_random, NULL };

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

/* ---- limiter ---------------------------------------------------------- */

int limiter_init(struct limiter *l, int max_inflight, int rpm, const struct clock_ops *clk)
{
	pthread_condattr_t ca;

	memset(l, 0, sizeof(*l));
	if (max_inflight < 1 || rpm < 0 || !clk)
		return -1;
	l->max_inflight = max_inflight;
	l->rpm = rpm;
	l->clk = clk;
	if (rpm > 0 && !(l->starts = calloc((size_t)rpm, sizeof(double))))
		return -1;
	if (pthread_mutex_init(&l->mu, NULL))
		goto out_free_starts;
	if (pthread_condattr_init(&ca))
		goto out_destroy_mutex;
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);	/* matches real_now */
	int rc = pthread_cond_init(&l->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (rc)
		goto out_destroy_mutex;
	return 0;
out_destroy_mutex:
	pthread_mutex_destroy(&l->mu);
out_free_starts:
	free(l->starts);
	l->starts = NULL;
	return -1;
}

void limiter_destroy(struct limiter *l)
{
	pthread_cond_destroy(&l->cv);
	pthread_mutex_destroy(&l->mu);
	free(l->starts);
	l->starts = NULL;
}

/* Time-based wait (pause, rpm window); *slots_full when max_inflight blocks.  Hold l->mu. */
static double wait_locked(struct limiter *l, double now, bool *slots_full)
{
	double w = 0;

	if (l->paused_until > now)
		w = l->paused_until - now;
	if (l->rpm > 0 && l->nstarts >= l->rpm) {
		double oldest = l->starts[l->head];	/* ring full: head is the oldest */
		double free_at = oldest + LIMITER_WINDOW_S - now;
		if (free_at > w)
			w = free_at;
	}
	*slots_full = l->inflight >= l->max_inflight;
	return w;
}

double limiter_next_wait(struct limiter *l)
{
	bool full;
	pthread_mutex_lock(&l->mu);
	double w = wait_locked(l, l->clk->now(l->clk->ctx), &full);
	pthread_mutex_unlock(&l->mu);
	if (full && w < LIMITER_POLL_S)
		w = LIMITER_POLL_S;
	return w;
}

static void take_locked(struct limiter *l, double now)
{
	l->inflight++;
	if (l->rpm > 0) {
		l->starts[l->head] = now;
		l->head = (l->head + 1) % l->rpm;
		if (l->nstarts < l->rpm)
			l->nstarts++;
	}
}

void limiter_acquire(struct limiter *l, bool *waited)
{
	bool full;

	if (waited)
		*waited = false;
	pthread_mutex_lock(&l->mu);
	for (;;) {
		double now = l->clk->now(l->clk->ctx);
		double w = wait_locked(l, now, &full);
		if (w <= 0 && !full) {
			take_locked(l, now);
			break;
		}
		if (waited)
			*waited = true;
		if (l->clk == &clock_real) {
			if (w <= 0) {
				pthread_cond_wait(&l->cv, &l->mu);	/* a release wakes us */
			} else {
				struct timespec ts;
				clock_gettime(CLOCK_MONOTONIC, &ts);
				double t = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9 + w;
				ts.tv_sec = (time_t)t;
				ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
				pthread_cond_timedwait(&l->cv, &l->mu, &ts);
			}
		} else {
			/* injected clock: sleep through it, outside the lock */
			pthread_mutex_unlock(&l->mu);
			l->clk->sleep(l->clk->ctx, w > 0 ? w : LIMITER_POLL_S);
			pthread_mutex_lock(&l->mu);
		}
	}
	pthread_mutex_unlock(&l->mu);
}

void limiter_release(struct limiter *l)
{
	pthread_mutex_lock(&l->mu);
	if (l->inflight > 0)
		l->inflight--;
	pthread_cond_broadcast(&l->cv);
	pthread_mutex_unlock(&l->mu);
}

void limiter_pause(struct limiter *l, double s)
{
	if (!(s > 0))
		return;
	pthread_mutex_lock(&l->mu);
	double until = l->clk->now(l->clk->ctx) + s;
	if (until > l->paused_until)
		l->paused_until = until;
	pthread_cond_broadcast(&l->cv);
	pthread_mutex_unlock(&l->mu);
}
