/*
 * budget.c - the local budget behind struct budget_ops: spending limits
 * with named, expiring reservations, all in memory behind one mutex.
 *
 * Invariant: under mu, expired reservations are dropped first, then
 * spent + reserved + the new request is compared with each limit before
 * the reservation is taken.  Settling removes the reservation (if still
 * there) and adds the actual spending.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache/budget.h"

/* Money compared with a little slack so 0.1 + 0.2 may equal a 0.3 limit. */
#define USD_EPS 1e-9
#define ID_MAX 128

struct resv {
	char id[ID_MAX];
	double usd;
	double expires;			/* wall seconds; 0 = never */
};

struct local_budget {
	pthread_mutex_t mu;		/* protects every field */
	const struct clock_ops *clk;
	double daily_limit;		/* USD; < 0 = none */
	double total_limit;		/* USD; < 0 = none */
	double spent_today;		/* USD settled since day_start */
	double spent_total;
	time_t day_start;		/* local midnight of the current day */
	struct resv *r;
	size_t nr, cap;
};

static time_t local_midnight(time_t now)
{
	struct tm tm;

	if (!localtime_r(&now, &tm))
		return now;
	tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
	tm.tm_isdst = -1;
	return mktime(&tm);
}

static double wall(const struct local_budget *b)
{
	return b->clk->wall(b->clk->ctx);
}

/* Day rollover and expiry; caller holds mu.  Returns the wall time used. */
static double refresh(struct local_budget *b)
{
	double now = wall(b);
	time_t m = local_midnight((time_t)now);
	size_t i = 0;

	if (m > b->day_start) {
		b->day_start = m;
		b->spent_today = 0;
	}
	while (i < b->nr) {
		if (b->r[i].expires > 0 && now >= b->r[i].expires)
			b->r[i] = b->r[--b->nr];	/* its owner is presumed dead */
		else
			i++;
	}
	return now;
}

static struct resv *find(struct local_budget *b, const char *id)
{
	size_t i;

	for (i = 0; i < b->nr; i++)
		if (strncmp(b->r[i].id, id ? id : "", ID_MAX - 1) == 0)
			return &b->r[i];
	return NULL;
}

static double reserved_sum(const struct local_budget *b)
{
	double s = 0;
	size_t i;

	for (i = 0; i < b->nr; i++)
		s += b->r[i].usd;
	return s;
}

/* "$0.30" for whole cents, "$0.125" otherwise. */
static void fmt_limit(char *buf, size_t len, double v)
{
	if (fabs(v * 100 - round(v * 100)) < 1e-6)
		snprintf(buf, len, "$%.2f", v);
	else
		snprintf(buf, len, "$%.3f", v);
}

static int local_reserve(void *st, const char *id, double usd, double ttl_s, char *why, size_t whylen)
{
	struct local_budget *b = st;
	struct resv *r, *grown;
	double now, reserved;
	char lim[32];
	int rc = 0;

	pthread_mutex_lock(&b->mu);
	now = refresh(b);
	if (usd < 0) {
		if (b->daily_limit >= 0 || b->total_limit >= 0) {
			if (why && whylen)
				snprintf(why, whylen, "budget: price unknown; set it in [prices] or remove the budget");
			rc = -1;
		}
		/* no limit: nothing to reserve, settling it is a no-op */
		goto out_unlock;
	}
	r = find(b, id);
	if (r) {		/* held already: the same reservation, not a second one */
		r->expires = ttl_s > 0 ? now + ttl_s : 0;
		goto out_unlock;
	}
	reserved = reserved_sum(b);
	if (b->daily_limit >= 0 && b->spent_today + reserved + usd > b->daily_limit + USD_EPS) {
		fmt_limit(lim, sizeof(lim), b->daily_limit);
		if (why && whylen)
			snprintf(why, whylen, "budget: spent $%.3f today + reserved $%.3f + this request $%.3f"
				 " would pass budget_daily_usd %s", b->spent_today, reserved, usd, lim);
		rc = -1;
		goto out_unlock;
	}
	if (b->total_limit >= 0 && b->spent_total + reserved + usd > b->total_limit + USD_EPS) {
		fmt_limit(lim, sizeof(lim), b->total_limit);
		if (why && whylen)
			snprintf(why, whylen, "budget: spent $%.3f in total + reserved $%.3f + this request $%.3f"
				 " would pass budget_total_usd %s", b->spent_total, reserved, usd, lim);
		rc = -1;
		goto out_unlock;
	}
	if (usd == 0)
		goto out_unlock;	/* free: nothing to hold */
	if (b->nr == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 16;

		grown = realloc(b->r, cap * sizeof(*b->r));
		if (!grown) {
			if (why && whylen)
				snprintf(why, whylen, "budget: out of memory");
			rc = -1;
			goto out_unlock;
		}
		b->r = grown;
		b->cap = cap;
	}
	r = &b->r[b->nr++];
	snprintf(r->id, sizeof(r->id), "%s", id ? id : "");
	r->usd = usd;
	r->expires = ttl_s > 0 ? now + ttl_s : 0;
out_unlock:
	pthread_mutex_unlock(&b->mu);
	return rc;
}

static int local_renew(void *st, const char *id, double ttl_s)
{
	struct local_budget *b = st;
	struct resv *r;
	double now;
	int rc = -1;

	pthread_mutex_lock(&b->mu);
	now = refresh(b);
	r = find(b, id);
	if (r) {
		r->expires = ttl_s > 0 ? now + ttl_s : 0;
		rc = 0;
	}
	pthread_mutex_unlock(&b->mu);
	return rc;
}

static void local_settle(void *st, const char *id, double actual)
{
	struct local_budget *b = st;
	struct resv *r;

	pthread_mutex_lock(&b->mu);
	refresh(b);
	r = find(b, id);
	if (r)
		*r = b->r[--b->nr];
	if (actual > 0) {	/* spent is spent, expired reservation or not */
		b->spent_today += actual;
		b->spent_total += actual;
	}
	pthread_mutex_unlock(&b->mu);
}

static void local_snapshot(void *st, double *spent_today, double *spent_total, double *reserved)
{
	struct local_budget *b = st;

	pthread_mutex_lock(&b->mu);
	refresh(b);
	if (spent_today)
		*spent_today = b->spent_today;
	if (spent_total)
		*spent_total = b->spent_total;
	if (reserved)
		*reserved = reserved_sum(b);
	pthread_mutex_unlock(&b->mu);
}

static void local_destroy(void *st)
{
	struct local_budget *b = st;

	if (!b)
		return;
	pthread_mutex_destroy(&b->mu);
	free(b->r);
	free(b);
}

static const struct budget_ops local_ops = {
	.name = "local",
	.reserve = local_reserve,
	.renew = local_renew,
	.settle = local_settle,
	.snapshot = local_snapshot,
	.destroy = local_destroy,
};

int budget_local_open(struct budget *bud, double daily_limit, double total_limit,
		      double spent_today, double spent_total, const struct clock_ops *clk)
{
	struct local_budget *b = calloc(1, sizeof(*b));

	bud->ops = NULL;
	bud->state = NULL;
	if (!b)
		return -1;
	pthread_mutex_init(&b->mu, NULL);
	b->clk = clk ? clk : &clock_real;
	b->daily_limit = daily_limit;
	b->total_limit = total_limit;
	b->spent_today = spent_today > 0 ? spent_today : 0;
	b->spent_total = spent_total > 0 ? spent_total : 0;
	b->day_start = local_midnight((time_t)wall(b));
	bud->ops = &local_ops;
	bud->state = b;
	return 0;
}

void budget_close(struct budget *b)
{
	if (b->ops)
		b->ops->destroy(b->state);
	b->ops = NULL;
	b->state = NULL;
}
