/*
 * inflight.h - the seam for the in-flight table: while one owner pays for a
 * key, everyone else who wants the same key waits for its outcome.
 *
 * What it guarantees.  For one cache key at most one live claim exists at
 * a time, whatever the route: a standard request, a flex request and a
 * batch item for the same key share one table, so they are one payment.
 * claim() either makes the caller the owner (INFLIGHT_OWNER) or says
 * another owner's live claim holds the key (INFLIGHT_HELD).  wait() blocks
 * until that claim ends: 1 with the owner's ok when the owner called
 * done(), 0 when the claim vanished without a word (its lease ran out, or
 * it was done before we looked) - the caller then looks in the store and
 * claims again.  done() ends the claim and wakes the waiters; it is a no-op
 * for anyone but the current owner, so an owner whose lease ran out and
 * was taken over cannot end its successor's claim.  Claiming a key one
 * already owns succeeds (a restarted batcher claims its items again).
 *
 * Leases.  A claim carries an owner id (unique per request walk and
 * never reused by a later run of the daemon: "<job id>.<life>.<n>"; or
 * "batch.<key>", the same for every run, so a restarted batcher owns its
 * items again) and a lease in seconds (<= 0: until done).  A claim whose lease ended is dead: the next claim takes it over.
 * Owners that run long (a batch job waits for hours) renew() their lease.
 *
 * Who calls it.  cache/fetch.c's gate 2 (inflight_begin: claim, else wait,
 * else claim again), its done at the outcome, and cache/batcher.c, which
 * claims every gathered item's key for the time the batch may take and is
 * done with it when the result is stored or failed.
 *
 * What a shared backend must do.  Implement claim as one atomic statement
 * against shared state (e.g. PostgreSQL: INSERT ... ON CONFLICT (key) DO
 * UPDATE ... WHERE claims.expires < now() OR claims.owner = $owner
 * RETURNING owner), with the lease measured by the database's clock, so
 * skewed machines agree.  wait may poll the row (or LISTEN/NOTIFY) until it
 * is gone or expired, then report the outcome done() left behind (a done
 * row kept for a short while, ok or not) or 0 when there is none.  done
 * deletes the claim only WHERE owner = $owner.  count is the number of
 * live claims.  The local backend keeps everything in memory behind one
 * mutex; its leases are measured by the injected clock (clock_ops.wall).
 */
#ifndef BANANAFS_CACHE_INFLIGHT_H
#define BANANAFS_CACHE_INFLIGHT_H

#include <stdbool.h>
#include <stddef.h>
#include "api/clock.h"
#include "cache/key.h"

enum { INFLIGHT_ERR = -1, INFLIGHT_HELD = 0, INFLIGHT_OWNER = 1 };

struct inflight_ops {
	const char *name;		/* "local", ... */
	int (*claim)(void *st, const struct cache_key *k, const char *owner, double lease_s);
	int (*renew)(void *st, const struct cache_key *k, const char *owner, double lease_s);
	int (*wait)(void *st, const struct cache_key *k, bool *ok);
	void (*done)(void *st, const struct cache_key *k, const char *owner, bool ok);
	int (*count)(void *st);
	void (*destroy)(void *st);
	/*
	 * Optional (NULL in the local table, whose owners die with the process):
	 * note keeps with owner's claim the background interaction its request
	 * became, as soon as the create call returned; noted gives it back (1)
	 * to whoever owns the claim now, e.g. the owner that took it over from
	 * a dead machine, which then polls it instead of paying again; else 0.
	 * note with NULL forgets it (it ended without an image: a retry sends).
	 */
	void (*note)(void *st, const struct cache_key *k, const char *owner, const char *interaction);
	int (*noted)(void *st, const struct cache_key *k, const char *owner, char *interaction, size_t len);
};

struct inflight {
	const struct inflight_ops *ops;
	void *state;
};

/* The in-process table, leases measured by clk.  0 or -1 (out of memory). */
int inflight_local_open(struct inflight *f, const struct clock_ops *clk);
/* Frees the table; no thread may be inside.  Safe on a zeroed struct. */
void inflight_close(struct inflight *f);

/*
 * Gate 2 of the pipeline: true when the caller now owns k (it must call
 * inflight_done later).  false when another owner held it: this call then
 * blocked until that owner was done, and *owner_ok says whether it
 * produced the object.  A backend error makes the caller owner alone
 * (paying twice is better than never answering; the store is re-checked).
 */
bool inflight_begin(struct inflight *f, const struct cache_key *k, const char *owner, double lease_s,
		    bool *owner_ok);

static inline int inflight_claim(struct inflight *f, const struct cache_key *k, const char *owner,
				 double lease_s)
{
	return f->ops->claim(f->state, k, owner, lease_s);
}

static inline int inflight_renew(struct inflight *f, const struct cache_key *k, const char *owner,
				 double lease_s)
{
	return f->ops->renew(f->state, k, owner, lease_s);
}

static inline void inflight_done(struct inflight *f, const struct cache_key *k, const char *owner, bool ok)
{
	f->ops->done(f->state, k, owner, ok);
}

static inline void inflight_note(struct inflight *f, const struct cache_key *k, const char *owner,
				 const char *interaction)
{
	if (f->ops->note)
		f->ops->note(f->state, k, owner, interaction);
}

static inline int inflight_noted(struct inflight *f, const struct cache_key *k, const char *owner,
				 char *interaction, size_t len)
{
	return f->ops->noted ? f->ops->noted(f->state, k, owner, interaction, len) : 0;
}

/* Number of live claims now. */
static inline int inflight_count(struct inflight *f)
{
	return f->ops->count(f->state);
}

#endif
