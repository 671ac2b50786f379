/*
 * limiter.h - the seam for the quota limiter: who may start a request now.
 *
 * What it guarantees.  Quota belongs to the project, not to a thread: at
 * most max_inflight requests are on the wire at once, at most rpm start
 * per 60 s window (0 = no limit), and a per-minute 429 pauses every start
 * of everyone sharing the limiter (pause never shortens a pause already
 * set).  acquire blocks until a start is allowed and takes a slot; release
 * gives the slot back.  next_wait never blocks: it says how long the next
 * acquire would wait, so the caller can say "waiting-slot" first, or
 * "waiting-quota" when paused_for says a 429's pause is the reason.
 *
 * Who calls it.  Only cache/fetch.c's exchange (one request on the wire,
 * every route), around each HTTP attempt, and the batch route's submit and
 * poll calls through the same exchange.  Nothing else sends.
 *
 * What a shared backend must do.  Several mounts (machines) sharing one
 * API project share one limiter: the slots, the start window and the pause
 * live in the shared store (e.g. a PostgreSQL row per project, updated in
 * one transaction with SELECT ... FOR UPDATE).  A slot is taken for an
 * owner id (the request's job id) with a lease: a slot whose owner died is
 * freed when its lease ends, so a crashed machine cannot starve the others
 * forever.  Waiting may poll (LISTEN/NOTIFY is a nicety).  The pause is an
 * absolute wall time, so every machine honours the same end.  The local
 * backend below keeps all of it in memory behind one mutex; its owner ids
 * are only informative, as a process that dies takes its slots with it.
 */
#ifndef BANANAFS_API_LIMITER_H
#define BANANAFS_API_LIMITER_H

#include <stdbool.h>
#include "api/clock.h"

struct limiter_ops {
	const char *name;				/* "local", ... */
	double (*next_wait)(void *st);			/* seconds; 0 = a start may happen now */
	void (*acquire)(void *st, const char *owner, bool *waited);
	void (*release)(void *st, const char *owner);
	void (*pause)(void *st, double s);		/* every start waits s seconds from now */
	double (*paused_for)(void *st);			/* seconds left of that pause; 0 when none */
	void (*destroy)(void *st);
};

struct limiter {
	const struct limiter_ops *ops;
	void *state;
};

/* The in-process limiter.  0, or -1 (bad arguments, out of memory). */
int limiter_local_open(struct limiter *l, int max_inflight, int rpm, const struct clock_ops *clk);

static inline double limiter_next_wait(struct limiter *l)
{
	return l->ops->next_wait(l->state);
}

/* Blocks until a start is allowed, then takes a slot for owner.  *waited set true if it had to wait. */
static inline void limiter_acquire(struct limiter *l, const char *owner, bool *waited)
{
	l->ops->acquire(l->state, owner, waited);
}

static inline void limiter_release(struct limiter *l, const char *owner)
{
	l->ops->release(l->state, owner);
}

/* Pause every start for s seconds from now (extends, never shortens). */
static inline void limiter_pause(struct limiter *l, double s)
{
	l->ops->pause(l->state, s);
}

/*
 * Seconds left of the pause a 429 set; 0 when none, so a wait is for a
 * local slot ("waiting-slot", not "waiting-quota").  A backend without
 * paused_for answers 0.
 */
static inline double limiter_paused_for(struct limiter *l)
{
	return l->ops->paused_for ? l->ops->paused_for(l->state) : 0;
}

/* Frees the limiter; no thread may be inside it.  Safe on a zeroed struct. */
static inline void limiter_close(struct limiter *l)
{
	if (l->ops)
		l->ops->destroy(l->state);
	l->ops = NULL;
	l->state = NULL;
}

#endif
