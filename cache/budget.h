/*
 * budget.h - budget_daily_usd / budget_total_usd with reservations: the
 * estimated cost is reserved before a request is sent and settled (or
 * released) after, so concurrent requests can never pass a limit together.
 */
#ifndef BANANAFS_CACHE_BUDGET_H
#define BANANAFS_CACHE_BUDGET_H

#include <pthread.h>
#include <stddef.h>
#include <time.h>

struct budget {
	pthread_mutex_t mu;		/* protects every field */
	double daily_limit;		/* USD; < 0 = none */
	double total_limit;		/* USD; < 0 = none */
	double spent_today;		/* USD settled since day_start */
	double spent_total;
	double reserved;		/* USD reserved and not yet settled */
	time_t day_start;		/* local midnight of the current day */
};

void budget_init(struct budget *b, double daily_limit, double total_limit,
		 double spent_today, double spent_total, time_t now);
void budget_destroy(struct budget *b);

/*
 * Reserves usd.  0 when allowed.  -1 when it would pass a limit; then why
 * holds "spent $X today + reserved $Y + this $Z > daily limit $L".
 * An unknown price (usd < 0) is refused only when a limit is set.
 */
int budget_reserve(struct budget *b, double usd, time_t now, char *why, size_t whylen);
/* Turns a reservation into spending of actual usd (may differ), or releases it (actual 0, billed false). */
void budget_settle(struct budget *b, double reserved, double actual, time_t now);
void budget_snapshot(struct budget *b, double *spent_today, double *spent_total, double *reserved);

#endif
