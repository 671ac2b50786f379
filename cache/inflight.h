/*
 * inflight.h - in-flight coalescing: while one request for a key runs,
 * other requests for the same key wait for its outcome instead of paying.
 */
#ifndef BANANAFS_CACHE_INFLIGHT_H
#define BANANAFS_CACHE_INFLIGHT_H

#include <pthread.h>
#include <stdbool.h>
#include "cache/key.h"

struct inflight_entry;

struct inflight {
	pthread_mutex_t mu;		/* protects the list and every entry's fields */
	struct inflight_entry *head;
};

void inflight_init(struct inflight *f);
void inflight_destroy(struct inflight *f);

/*
 * Returns true when the caller now owns key k (it must call inflight_done
 * later).  Returns false when another caller owned it: this call then
 * blocked until that owner finished, and *owner_ok says whether it
 * produced the object.
 */
bool inflight_begin(struct inflight *f, const struct cache_key *k, bool *owner_ok);
void inflight_done(struct inflight *f, const struct cache_key *k, bool ok);
/* Number of keys in flight now. */
int inflight_count(struct inflight *f);

#endif
