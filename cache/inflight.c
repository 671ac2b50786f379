/*
 * inflight.c - one owner per key; everyone else waits for its outcome.
 *
 * An entry lives in the list while its owner works.  inflight_done unlinks
 * it at once (a later begin for the same key starts fresh, as a new owner)
 * but the memory stays until the last waiter has read `ok` and left: the
 * waiters hold the entry, not the list.  All fields are protected by f->mu.
 */
#include <stdlib.h>
#include <string.h>

#include "cache/inflight.h"

struct inflight_entry {
	struct inflight_entry *next;
	struct cache_key key;
	bool done, ok;
	int waiters;			/* threads blocked in begin on this entry */
	pthread_cond_t cond;		/* broadcast by done */
};

void inflight_init(struct inflight *f)
{
	pthread_mutex_init(&f->mu, NULL);
	f->head = NULL;
}

void inflight_destroy(struct inflight *f)
{
	struct inflight_entry *e, *next;

	/* Only called when no thread is inside: entries left are abandoned owners. */
	for (e = f->head; e; e = next) {
		next = e->next;
		pthread_cond_destroy(&e->cond);
		free(e);
	}
	f->head = NULL;
	pthread_mutex_destroy(&f->mu);
}

static struct inflight_entry *find(struct inflight *f, const struct cache_key *k)
{
	struct inflight_entry *e;

	for (e = f->head; e; e = e->next)
		if (memcmp(e->key.b, k->b, sizeof(k->b)) == 0)
			return e;
	return NULL;
}

bool inflight_begin(struct inflight *f, const struct cache_key *k, bool *owner_ok)
{
	struct inflight_entry *e;
	bool ok;

	pthread_mutex_lock(&f->mu);
	e = find(f, k);
	if (e) {
		e->waiters++;
		while (!e->done)
			pthread_cond_wait(&e->cond, &f->mu);
		ok = e->ok;
		/* done already unlinked it; the last waiter out frees it */
		if (--e->waiters == 0) {
			pthread_cond_destroy(&e->cond);
			free(e);
		}
		pthread_mutex_unlock(&f->mu);
		if (owner_ok)
			*owner_ok = ok;
		return false;
	}
	e = calloc(1, sizeof(*e));
	if (!e) {
		/* Without memory we cannot coalesce; own it alone rather than fail. */
		pthread_mutex_unlock(&f->mu);
		return true;
	}
	e->key = *k;
	pthread_cond_init(&e->cond, NULL);
	e->next = f->head;
	f->head = e;
	pthread_mutex_unlock(&f->mu);
	return true;
}

void inflight_done(struct inflight *f, const struct cache_key *k, bool ok)
{
	struct inflight_entry **pp, *e;

	pthread_mutex_lock(&f->mu);
	for (pp = &f->head; (e = *pp) != NULL; pp = &e->next)
		if (memcmp(e->key.b, k->b, sizeof(k->b)) == 0)
			break;
	if (!e) {
		pthread_mutex_unlock(&f->mu);
		return;
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
	pthread_mutex_unlock(&f->mu);
}

int inflight_count(struct inflight *f)
{
	struct inflight_entry *e;
	int n = 0;

	pthread_mutex_lock(&f->mu);
	for (e = f->head; e; e = e->next)
		n++;
	pthread_mutex_unlock(&f->mu);
	return n;
}
