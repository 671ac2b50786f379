/*
 * budget.c - spending limits with reservations.
 *
 * Invariant: under b->mu, spent + reserved + the new request is compared
 * with each limit before the reservation is taken, so any number of
 * threads reserving at once can never together pass a limit.  Settling
 * moves a reservation into spending (or just drops it).  "Today" starts at
 * local midnight; crossing it zeroes spent_today (reservations stay: they
 * are still outstanding money).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cache/budget.h"

/* Money compared with a little slack so 0.1 + 0.2 may equal a 0.3 limit. */
#define USD_EPS 1e-9

static time_t local_midnight(time_t now)
{
	struct tm tm;

	if (!localtime_r(&now, &tm))
		return now;
	tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
	tm.tm_isdst = -1;
	return mktime(&tm);
}

/* Caller holds b->mu. */
static void rollover(struct budget *b, time_t now)
{
	time_t m = local_midnight(now);

	if (m > b->day_start) {
		b->day_start = m;
		b->spent_today = 0;
	}
}

void budget_init(struct budget *b, double daily_limit, double total_limit,
		 double spent_today, double spent_total, time_t now)
{
	pthread_mutex_init(&b->mu, NULL);
	b->daily_limit = daily_limit;
	b->total_limit = total_limit;
	b->spent_today = spent_today > 0 ? spent_today : 0;
	b->spent_total = spent_total > 0 ? spent_total : 0;
	b->reserved = 0;
	b->day_start = local_midnight(now);
}

void budget_destroy(struct budget *b)
{
	pthread_mutex_destroy(&b->mu);
}

/* "$0.30" for whole cents, "$0.125" otherwise. */
static void fmt_limit(char *buf, size_t len, double v)
{
	if (fabs(v * 100 - round(v * 100)) < 1e-6)
		snprintf(buf, len, "$%.2f", v);
	else
		snprintf(buf, len, "$%.3f", v);
}

int budget_reserve(struct budget *b, double usd, time_t now, char *why, size_t whylen)
{
	char lim[32];
	int rc = 0;

	pthread_mutex_lock(&b->mu);
	rollover(b, now);
	if (usd < 0) {
		if (b->daily_limit >= 0 || b->total_limit >= 0) {
			if (why && whylen)
				snprintf(why, whylen, "budget: price unknown; set it in [prices] or remove the budget");
			rc = -1;
		}
		/* no limit: nothing to reserve, settle(-1, ...) is a no-op */
		goto out_unlock;
	}
	if (b->daily_limit >= 0 && b->spent_today + b->reserved + usd > b->daily_limit + USD_EPS) {
		fmt_limit(lim, sizeof(lim), b->daily_limit);
		if (why && whylen)
			snprintf(why, whylen, "budget: spent $%.3f today + reserved $%.3f + this request $%.3f"
				 " would pass budget_daily_usd %s", b->spent_today, b->reserved, usd, lim);
		rc = -1;
		goto out_unlock;
	}
	if (b->total_limit >= 0 && b->spent_total + b->reserved + usd > b->total_limit + USD_EPS) {
		fmt_limit(lim, sizeof(lim), b->total_limit);
		if (why && whylen)
			snprintf(why, whylen, "budget: spent $%.3f in total + reserved $%.3f + this request $%.3f"
				 " would pass budget_total_usd %s", b->spent_total, b->reserved, usd, lim);
		rc = -1;
		goto out_unlock;
	}
	b->reserved += usd;
out_unlock:
	pthread_mutex_unlock(&b->mu);
	return rc;
}

void budget_settle(struct budget *b, double reserved, double actual, time_t now)
{
	pthread_mutex_lock(&b->mu);
	rollover(b, now);
	if (reserved > 0) {
		b->reserved -= reserved;
		if (b->reserved < USD_EPS)
			b->reserved = 0;
	}
	if (actual > 0) {
		b->spent_today += actual;
		b->spent_total += actual;
	}
	pthread_mutex_unlock(&b->mu);
}

void budget_snapshot(struct budget *b, double *spent_today, double *spent_total, double *reserved)
{
	pthread_mutex_lock(&b->mu);
	if (spent_today)
		*spent_today = b->spent_today;
	if (spent_total)
		*spent_total = b->spent_total;
	if (reserved)
		*reserved = b->reserved;
	pthread_mutex_unlock(&b->mu);
}
