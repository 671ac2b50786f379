/*
 * budget.h - the seam for the budget: budget_daily_usd / budget_total_usd
 * with reservations, so concurrent requests can never pass a limit together.
 *
 * What it guarantees.  reserve(id, usd, ttl) compares spent + reserved +
 * usd with each limit and takes the reservation in one step: any number
 * of callers reserving at once can never together pass a limit.  A
 * reservation is named by its id (the request's walk id, or "batch.<key>"
 * for a batch item) and reserving an id that is already held succeeds
 * without counting it twice, so a caller that retries or restarts cannot
 * double-reserve.  Each reservation expires ttl seconds after it was taken
 * or last renewed: a reservation whose owner died (a crashed process, a
 * batch nobody polls) stops blocking the budget.  settle(id, actual) turns
 * the reservation into spending of actual USD (0 = released, nothing was
 * billed); money that was really spent is always counted, even when the
 * reservation had already expired.  An unknown price (usd < 0) is refused
 * only when a limit is set, and reserves nothing.  "Today" starts at local
 * midnight of the injected clock's wall time; crossing it zeroes the
 * day's spending, reservations stay (they are still outstanding money).
 *
 * Who calls it.  cache/fetch.c's gate 5 (reserve before the ledger's
 * "sent" line, renew before each attempt, settle at the outcome) for every
 * route; the batch route reserves through the same gate when it gathers an
 * item and settles when its result arrives.  fs/ctlfiles.c and bananactl
 * read snapshot.
 *
 * What a shared backend must do.  Keep spending and reservations in the
 * shared store (e.g. PostgreSQL tables spend(day, usd) and
 * reservations(id PRIMARY KEY, usd, expires)), check-and-insert in one
 * SERIALIZABLE transaction (or under a row lock on the limits row), expire
 * with the database's clock (DELETE ... WHERE expires < now() before each
 * check), settle by deleting the reservation and adding the spend in one
 * transaction.  The limits come from the caller's config at open.  The
 * local backend keeps all of it in memory behind one mutex, started from
 * the ledger's sums at mount.
 */
#ifndef BANANAFS_CACHE_BUDGET_H
#define BANANAFS_CACHE_BUDGET_H

#include <stddef.h>
#include "api/clock.h"

struct budget_ops {
	const char *name;		/* "local", ... */
	/* 0 when allowed (or id already held); -1 when it would pass a limit, why says which. */
	int (*reserve)(void *st, const char *id, double usd, double ttl_s, char *why, size_t whylen);
	/* 0, or -1 when id holds no reservation (expired or never taken). */
	int (*renew)(void *st, const char *id, double ttl_s);
	void (*settle)(void *st, const char *id, double actual);
	void (*snapshot)(void *st, double *spent_today, double *spent_total, double *reserved);
	void (*destroy)(void *st);
};

struct budget {
	const struct budget_ops *ops;
	void *state;
};

/* Limits in USD (< 0 = none); spent_* from the ledger.  0 or -1 (out of memory). */
int budget_local_open(struct budget *b, double daily_limit, double total_limit,
		      double spent_today, double spent_total, const struct clock_ops *clk);
/* Frees the budget; no thread may be inside.  Safe on a zeroed struct. */
void budget_close(struct budget *b);

static inline int budget_reserve(struct budget *b, const char *id, double usd, double ttl_s,
				 char *why, size_t whylen)
{
	return b->ops->reserve(b->state, id, usd, ttl_s, why, whylen);
}

static inline int budget_renew(struct budget *b, const char *id, double ttl_s)
{
	return b->ops->renew(b->state, id, ttl_s);
}

static inline void budget_settle(struct budget *b, const char *id, double actual)
{
	b->ops->settle(b->state, id, actual);
}

static inline void budget_snapshot(struct budget *b, double *spent_today, double *spent_total,
				   double *reserved)
{
	b->ops->snapshot(b->state, spent_today, spent_total, reserved);
}

#endif
