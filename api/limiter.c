/*
 * limiter.c - the local (in-process) quota limiter behind struct limiter_ops.
 *
 * One mutex holds the slots (max_inflight), the ring of the start times of
 * the last minute (rpm) and the pause a 429 sets for everybody.  The clock
 * is injected: with the real clock waits use a condition variable on the
 * monotonic clock, so a release or a pause wakes the waiters at once; with a
 * fake clock the waiter sleeps through the clock (tests never block).
 *
 * Slots go first come, first served: each acquire draws a ticket and only
 * the oldest waiting ticket may take a slot.  A resend draws a new ticket,
 * so a prompt whose answer stalled goes to the back of the line and never
 * starves the fresh prompts that queued meanwhile.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/limiter.h"

#define LIMITER_WINDOW_S 60.0
#define LIMITER_POLL_S 0.05	/* re-check interval while only max_inflight blocks */

struct local_limiter {
	pthread_mutex_t mu;		/* protects every field below */
	pthread_cond_t cv;
	int max_inflight;
	int inflight;
	int rpm;
	double *starts;			/* ring of the last rpm start times */
	int nstarts, head;
	double paused_until;		/* clock seconds */
	unsigned long next_ticket;	/* drawn by each acquire */
	unsigned long serving;		/* the ticket whose turn it is */
	const struct clock_ops *clk;
};

/* Time-based wait (pause, rpm window); *slots_full when max_inflight blocks.  Hold l->mu. */
static double wait_locked(struct local_limiter *l, double now, bool *slots_full)
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

static double local_next_wait(void *st)
{
	struct local_limiter *l = st;
	bool full;

	pthread_mutex_lock(&l->mu);
	double w = wait_locked(l, l->clk->now(l->clk->ctx), &full);
	pthread_mutex_unlock(&l->mu);
	if (full && w < LIMITER_POLL_S)
		w = LIMITER_POLL_S;
	return w;
}

static void take_locked(struct local_limiter *l, double now)
{
	l->inflight++;
	if (l->rpm > 0) {
		l->starts[l->head] = now;
		l->head = (l->head + 1) % l->rpm;
		if (l->nstarts < l->rpm)
			l->nstarts++;
	}
}

static void local_acquire(void *st, const char *owner, bool *waited)
{
	struct local_limiter *l = st;
	bool full;

	(void)owner;		/* a dying process takes its slots with it */
	if (waited)
		*waited = false;
	pthread_mutex_lock(&l->mu);
	unsigned long ticket = l->next_ticket++;
	for (;;) {
		double now = l->clk->now(l->clk->ctx);
		double w = wait_locked(l, now, &full);
		bool turn = ticket == l->serving;
		if (turn && w <= 0 && !full) {
			take_locked(l, now);
			l->serving++;
			pthread_cond_broadcast(&l->cv);	/* the next ticket may go too */
			break;
		}
		if (waited)
			*waited = true;
		if (l->clk == &clock_real) {
			if (w <= 0 || !turn) {
				pthread_cond_wait(&l->cv, &l->mu);	/* a release or a take wakes us */
			} else {
				/* clock_real's now is CLOCK_MONOTONIC, the condvar's clock */
				double t = now + w;
				struct timespec ts;

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

static void local_release(void *st, const char *owner)
{
	struct local_limiter *l = st;

	(void)owner;
	pthread_mutex_lock(&l->mu);
	if (l->inflight > 0)
		l->inflight--;
	pthread_cond_broadcast(&l->cv);
	pthread_mutex_unlock(&l->mu);
}

static void local_pause(void *st, double s)
{
	struct local_limiter *l = st;

	if (!(s > 0))
		return;
	pthread_mutex_lock(&l->mu);
	double until = l->clk->now(l->clk->ctx) + s;
	if (until > l->paused_until)
		l->paused_until = until;
	pthread_cond_broadcast(&l->cv);
	pthread_mutex_unlock(&l->mu);
}

static double local_paused_for(void *st)
{
	struct local_limiter *l = st;

	pthread_mutex_lock(&l->mu);
	double left = l->paused_until - l->clk->now(l->clk->ctx);
	pthread_mutex_unlock(&l->mu);
	return left > 0 ? left : 0;
}

static void local_destroy(void *st)
{
	struct local_limiter *l = st;

	if (!l)
		return;
	pthread_cond_destroy(&l->cv);
	pthread_mutex_destroy(&l->mu);
	free(l->starts);
	free(l);
}

static const struct limiter_ops local_ops = {
	.name = "local",
	.next_wait = local_next_wait,
	.acquire = local_acquire,
	.release = local_release,
	.pause = local_pause,
	.paused_for = local_paused_for,
	.destroy = local_destroy,
};

int limiter_local_open(struct limiter *lim, int max_inflight, int rpm, const struct clock_ops *clk)
{
	struct local_limiter *l;
	pthread_condattr_t ca;
	int rc;

	lim->ops = NULL;
	lim->state = NULL;
	if (max_inflight < 1 || rpm < 0 || !clk)
		return -1;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -1;
	l->max_inflight = max_inflight;
	l->rpm = rpm;
	l->clk = clk;
	if (rpm > 0 && !(l->starts = calloc((size_t)rpm, sizeof(double))))
		goto out_free;
	if (pthread_mutex_init(&l->mu, NULL))
		goto out_free;
	if (pthread_condattr_init(&ca))
		goto out_destroy_mutex;
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);	/* matches clock_real's now */
	rc = pthread_cond_init(&l->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (rc)
		goto out_destroy_mutex;
	lim->ops = &local_ops;
	lim->state = l;
	return 0;
out_destroy_mutex:
	pthread_mutex_destroy(&l->mu);
out_free:
	free(l->starts);
	free(l);
	return -1;
}
