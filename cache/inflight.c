/*
 * inflight.c - the local in-flight table behind struct inflight_ops, and
 * inflight_begin, the claim-else-wait loop every route uses.
 *
 * An entry lives in the list while its owner works.  done unlinks it at
 * once (a later claim for the same key starts fresh, as a new owner) but
 * the memory stays until the last waiter has read `ok` and left: the
 * waiters hold the entry, not the list.  A claim whose lease ended (by the
 * injected clock's wall time) is taken over in place by the next claimant;
 * its waiters notice and go back to claiming.  All fields are protected by
 * the one mutex.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache/inflight.h"

#define OWNER_MAX 128
#define WAIT_SLICE_S 0.05	/* real-time re-check of a lease while a fake clock runs */

struct entry {
	struct entry *next;
	struct cache_key key;
	char owner[OWNER_MAX];
	double expires;			/* wall seconds; 0 = until done */
	bool done, ok;
	int waiters;			/* threads blocked in wait on this entry */
	pthread_cond_t cond;		/* broadcast by done and by a takeover */
};

struct local_table {
	pthread_mutex_t mu;
	struct entry *head;
	const struct clock_ops *clk;
};

static double wall(const struct local_table *t)
{
	return t->clk->wall(t->clk->ctx);
}

static double expiry(const struct local_table *t, double lease_s)
{
	return lease_s > 0 ? wall(t) + lease_s : 0;
}

static bool expired(const struct local_table *t, const struct entry *e)
{
	return e->expires > 0 && wall(t) >= e->expires;
}

static struct entry *find(struct local_table *t, const struct cache_key *k)
{
	struct entry *e;

	for (e = t->head; e; e = e->next)
		if (memcmp(e->key.b, k->b, sizeof(k->b)) == 0)
			return e;
	return NULL;
}

static void set_owner(struct entry *e, const char *owner)
{
	snprintf(e->owner, sizeof(e->owner), "%s", owner ? owner : "");
}

static bool same_owner(const struct entry *e, const char *owner)
{
	return strncmp(e->owner, owner ? owner : "", OWNER_MAX - 1) == 0;
}

static int local_claim(void *st, const struct cache_key *k, const char *owner, double lease_s)
{
	struct local_table *t = st;
	pthread_condattr_t ca;
	struct entry *e;
	int rc = INFLIGHT_OWNER;

	pthread_mutex_lock(&t->mu);
	e = find(t, k);
	if (e) {
		if (!same_owner(e, owner) && !expired(t, e)) {
			rc = INFLIGHT_HELD;
		} else {
			/* ours already, or a dead owner's: take it over in place */
			set_owner(e, owner);
			e->expires = expiry(t, lease_s);
			pthread_cond_broadcast(&e->cond);
		}
		goto out_unlock;
	}
	e = calloc(1, sizeof(*e));
	if (!e) {
		rc = INFLIGHT_ERR;
		goto out_unlock;
	}
	e->key = *k;
	set_owner(e, owner);
	e->expires = expiry(t, lease_s);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);	/* clock_real's now */
	pthread_cond_init(&e->cond, &ca);
	pthread_condattr_destroy(&ca);
	e->next = t->head;
	t->head = e;
out_unlock:
	pthread_mutex_unlock(&t->mu);
	return rc;
}

static int local_renew(void *st, const struct cache_key *k, const char *owner, double lease_s)
{
	struct local_table *t = st;
	struct entry *e;
	int rc = INFLIGHT_HELD;

	pthread_mutex_lock(&t->mu);
	e = find(t, k);
	if (e && same_owner(e, owner)) {
		e->expires = expiry(t, lease_s);
		rc = INFLIGHT_OWNER;
	}
	pthread_mutex_unlock(&t->mu);
	return rc;
}

/* Blocks on e->cond for a while: until woken, or a slice passed (finite lease). */
static void block(struct local_table *t, struct entry *e)
{
	struct timespec ts;
	double slice, d;

	if (e->expires <= 0) {
		pthread_cond_wait(&e->cond, &t->mu);
		return;
	}
	slice = WAIT_SLICE_S;
	if (t->clk == &clock_real) {
		slice = e->expires - wall(t);
		if (slice > 1.0)
			slice = 1.0;	/* re-read the lease: it may be renewed */
		if (slice < 0.001)
			slice = 0.001;
	}
	/* the condvar runs on the monotonic clock, which is clock_real's now */
	d = clock_real.now(NULL) + slice;
	ts.tv_sec = (time_t)d;
	ts.tv_nsec = (long)((d - (double)ts.tv_sec) * 1e9);
	pthread_cond_timedwait(&e->cond, &t->mu, &ts);
}

static void drop_waiter(struct entry *e)
{
	if (--e->waiters == 0 && e->done) {
		pthread_cond_destroy(&e->cond);
		free(e);
	}
}

static int local_wait(void *st, const struct cache_key *k, bool *ok)
{
	struct local_table *t = st;
	struct entry *e;
	int rc;

	pthread_mutex_lock(&t->mu);
	e = find(t, k);
	if (!e) {
		pthread_mutex_unlock(&t->mu);
		return 0;
	}
	e->waiters++;
	for (;;) {
		if (e->done) {
			if (ok)
				*ok = e->ok;
			rc = 1;
			break;
		}
		if (expired(t, e)) {
			rc = 0;		/* its owner is presumed dead: claim it */
			break;
		}
		block(t, e);
	}
	drop_waiter(e);
	pthread_mutex_unlock(&t->mu);
	return rc;
}

static void local_done(void *st, const struct cache_key *k, const char *owner, bool ok)
{
	struct local_table *t = st;
	struct entry **pp, *e;

	pthread_mutex_lock(&t->mu);
	for (pp = &t->head; (e = *pp) != NULL; pp = &e->next)
		if (memcmp(e->key.b, k->b, sizeof(k->b)) == 0)
			break;
	if (!e || !same_owner(e, owner)) {
		pthread_mutex_unlock(&t->mu);
		return;		/* not ours (any more): leave the new owner alone */
	}
	*pp = e->next;
	e->next = NULL;
	e->done = true;
	e->ok = ok;
	if (e->waiters > 0) {
		pthread_cond_broadcast(&e->cond);
	} else {
		pthread_cond_destroy(&e->cond);
		free(e);
	}
	pthread_mutex_unlock(&t->mu);
}

static int local_count(void *st)
{
	struct local_table *t = st;
	struct entry *e;
	int n = 0;

	pthread_mutex_lock(&t->mu);
	for (e = t->head; e; e = e->next)
		if (!expired(t, e))
			n++;
	pthread_mutex_unlock(&t->mu);
	return n;
}

static void local_destroy(void *st)
{
	struct local_table *t = st;
	struct entry *e, *next;

	if (!t)
		return;
	/* Only called when no thread is inside: entries left are abandoned owners. */
	for (e = t->head; e; e = next) {
		next = e->next;
		pthread_cond_destroy(&e->cond);
		free(e);
	}
	pthread_mutex_destroy(&t->mu);
	free(t);
}

static const struct inflight_ops local_ops = {
	.name = "local",
	.claim = local_claim,
	.renew = local_renew,
	.wait = local_wait,
	.done = local_done,
	.count = local_count,
	.destroy = local_destroy,
};

int inflight_local_open(struct inflight *f, const struct clock_ops *clk)
{
	struct local_table *t = calloc(1, sizeof(*t));

	f->ops = NULL;
	f->state = NULL;
	if (!t)
		return -1;
	pthread_mutex_init(&t->mu, NULL);
	t->clk = clk ? clk : &clock_real;
	f->ops = &local_ops;
	f->state = t;
	return 0;
}

void inflight_close(struct inflight *f)
{
	if (f->ops)
		f->ops->destroy(f->state);
	f->ops = NULL;
	f->state = NULL;
}

bool inflight_begin(struct inflight *f, const struct cache_key *k, const char *owner, double lease_s,
		    bool *owner_ok)
{
	bool ok = false;

	for (;;) {
		switch (inflight_claim(f, k, owner, lease_s)) {
		case INFLIGHT_HELD:
			break;
		default:	/* owner, or the table failed: own it alone */
			return true;
		}
		if (f->ops->wait(f->state, k, &ok) == 1) {
			if (owner_ok)
				*owner_ok = ok;
			return false;
		}
		/* the claim ended without a word (lease ran out, or done before we looked): claim again */
	}
}
