/*
 * test_budget.c - the local budget through its ops struct: reservations by
 * id (idempotent), expiry with the fake clock, concurrency, settle, day
 * rollover, unknown price.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cache/budget.h"

/* The fake clock: wall time only, moved by hand. */
static double fake_t;
static double fake_wall(void *ctx) { (void)ctx; return fake_t; }
static double fake_now(void *ctx) { (void)ctx; return fake_t; }
static void fake_sleep(void *ctx, double s) { (void)ctx; fake_t += s; }
static double fake_random(void *ctx) { (void)ctx; return 0.5; }
static const struct clock_ops fake_clock = {
	.now = fake_now, .sleep = fake_sleep, .random = fake_random, .wall = fake_wall, .ctx = NULL,
};

/* A fixed local noon, so "+ 1 day" crosses exactly one midnight. */
static int at_noon(void **state)
{
	struct tm tm = { .tm_year = 126, .tm_mon = 10, .tm_mday = 25, .tm_hour = 12, .tm_isdst = -1 };

	(void)state;
	fake_t = (double)mktime(&tm);
	return 0;
}

static void open_budget(struct budget *b, double daily, double total, double today, double spent)
{
	assert_int_equal(budget_local_open(b, daily, total, today, spent, &fake_clock), 0);
	assert_string_equal(b->ops->name, "local");
}

static void test_message_daily(void **state)
{
	struct budget b;
	char why[256] = "";

	(void)state;
	open_budget(&b, 0.30, -1, 0.268, 0.268);
	assert_int_equal(budget_reserve(&b, "free", 0.0, 60, why, sizeof(why)), 0);
	/* 0.268 + 0.134 > 0.30 */
	assert_int_equal(budget_reserve(&b, "a", 0.134, 60, why, sizeof(why)), -1);
	assert_string_equal(why, "budget: spent $0.268 today + reserved $0.000 + this request $0.134"
			    " would pass budget_daily_usd $0.30");
	budget_close(&b);
}

static void test_reserved_counts(void **state)
{
	struct budget b;
	char why[256] = "";
	double today, total, reserved;

	(void)state;
	open_budget(&b, 0.30, -1, 0, 0);
	assert_int_equal(budget_reserve(&b, "a", 0.134, 60, why, sizeof(why)), 0);
	assert_int_equal(budget_reserve(&b, "b", 0.134, 60, why, sizeof(why)), 0);
	assert_int_equal(budget_reserve(&b, "c", 0.134, 60, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "reserved $0.268"));
	/* one fails: released */
	budget_settle(&b, "a", 0);
	budget_snapshot(&b, &today, &total, &reserved);
	assert_true(fabs(reserved - 0.134) < 1e-9);
	assert_true(today == 0 && total == 0);
	/* the other is billed */
	budget_settle(&b, "b", 0.134);
	budget_snapshot(&b, &today, &total, &reserved);
	assert_true(reserved == 0);
	assert_true(fabs(today - 0.134) < 1e-9 && fabs(total - 0.134) < 1e-9);
	assert_int_equal(budget_reserve(&b, "c", 0.134, 60, why, sizeof(why)), 0);
	assert_int_equal(budget_reserve(&b, "d", 0.05, 60, why, sizeof(why)), -1);
	budget_close(&b);
}

/* Reserving an id that is held is the same reservation, not a second one. */
static void test_reserve_by_id_is_idempotent(void **state)
{
	struct budget b;
	char why[256] = "";
	double reserved;

	(void)state;
	open_budget(&b, 0.30, -1, 0, 0);
	assert_int_equal(budget_reserve(&b, "job1.1", 0.134, 60, why, sizeof(why)), 0);
	assert_int_equal(budget_reserve(&b, "job1.1", 0.134, 60, why, sizeof(why)), 0);
	assert_int_equal(budget_reserve(&b, "job1.1", 0.134, 60, why, sizeof(why)), 0);
	budget_snapshot(&b, NULL, NULL, &reserved);
	assert_true(fabs(reserved - 0.134) < 1e-9);
	/* room for exactly one more distinct request */
	assert_int_equal(budget_reserve(&b, "job2.1", 0.134, 60, why, sizeof(why)), 0);
	assert_int_equal(budget_reserve(&b, "job3.1", 0.134, 60, why, sizeof(why)), -1);
	budget_settle(&b, "job1.1", 0.134);
	budget_settle(&b, "job1.1", 0);		/* settled twice: nothing more happens */
	budget_snapshot(&b, NULL, NULL, &reserved);
	assert_true(fabs(reserved - 0.134) < 1e-9);
	budget_close(&b);
}

/* A reservation whose owner died stops blocking the budget when it expires. */
static void test_reservation_expiry(void **state)
{
	struct budget b;
	char why[256] = "";
	double today, reserved;

	(void)state;
	open_budget(&b, 0.30, -1, 0, 0);
	assert_int_equal(budget_reserve(&b, "dead", 0.134, 60, why, sizeof(why)), 0);
	assert_int_equal(budget_reserve(&b, "alive", 0.134, 600, why, sizeof(why)), 0);
	assert_int_equal(budget_reserve(&b, "new", 0.134, 60, why, sizeof(why)), -1);
	fake_t += 59;
	assert_int_equal(budget_reserve(&b, "new", 0.134, 60, why, sizeof(why)), -1);
	assert_int_equal(budget_renew(&b, "alive", 600), 0);
	fake_t += 2;		/* "dead" is 61 s old: released */
	budget_snapshot(&b, NULL, NULL, &reserved);
	assert_true(fabs(reserved - 0.134) < 1e-9);
	assert_int_equal(budget_renew(&b, "dead", 60), -1);
	assert_int_equal(budget_reserve(&b, "new", 0.134, 60, why, sizeof(why)), 0);
	/* the dead owner's answer arrives after all: spent is spent */
	budget_settle(&b, "dead", 0.134);
	budget_snapshot(&b, &today, NULL, &reserved);
	assert_true(fabs(today - 0.134) < 1e-9);
	assert_true(fabs(reserved - 0.268) < 1e-9);
	/* ttl <= 0: held until settled, whatever the clock says */
	budget_settle(&b, "alive", 0);
	budget_settle(&b, "new", 0);
	assert_int_equal(budget_reserve(&b, "forever", 0.134, 0, why, sizeof(why)), 0);
	fake_t += 1e6;
	budget_snapshot(&b, NULL, NULL, &reserved);
	assert_true(fabs(reserved - 0.134) < 1e-9);
	budget_close(&b);
}

static void test_total_limit(void **state)
{
	struct budget b;
	char why[256] = "";

	(void)state;
	open_budget(&b, -1, 1.00, 0, 0.90);
	assert_int_equal(budget_reserve(&b, "a", 0.134, 60, why, sizeof(why)), -1);
	assert_string_equal(why, "budget: spent $0.900 in total + reserved $0.000 + this request $0.134"
			    " would pass budget_total_usd $1.00");
	assert_int_equal(budget_reserve(&b, "b", 0.10, 60, why, sizeof(why)), 0);
	budget_close(&b);
}

static void test_day_rollover(void **state)
{
	struct budget b;
	char why[256] = "";
	double today, total;

	(void)state;
	open_budget(&b, 0.30, -1, 0.25, 5.0);
	fake_t += 3600;
	assert_int_equal(budget_reserve(&b, "a", 0.134, 0, why, sizeof(why)), -1);
	/* tomorrow: spent_today starts at zero, the total stays */
	fake_t += 86400;
	assert_int_equal(budget_reserve(&b, "a", 0.134, 0, why, sizeof(why)), 0);
	budget_settle(&b, "a", 0.134);
	budget_snapshot(&b, &today, &total, NULL);
	assert_true(fabs(today - 0.134) < 1e-9);
	assert_true(fabs(total - 5.134) < 1e-9);
	budget_close(&b);
}

static void test_unknown_price(void **state)
{
	struct budget b;
	char why[256] = "";
	double reserved;

	(void)state;
	open_budget(&b, -1, -1, 0, 0);
	assert_int_equal(budget_reserve(&b, "a", -1, 60, why, sizeof(why)), 0);
	budget_settle(&b, "a", -1);
	budget_snapshot(&b, NULL, NULL, &reserved);
	assert_true(reserved == 0);
	budget_close(&b);

	open_budget(&b, 10, -1, 0, 0);
	assert_int_equal(budget_reserve(&b, "a", -1, 60, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "price unknown"));
	budget_close(&b);
}

#define NTHREADS 8
#define PER_THREAD 200

struct race {
	struct budget *b;
	int n;
	int granted;
	double max_seen;
};

static void *racer(void *arg)
{
	struct race *r = arg;
	char why[256], id[32];
	double today, total, reserved;
	int i;

	for (i = 0; i < PER_THREAD; i++) {
		snprintf(id, sizeof(id), "t%d.%d", r->n, i);
		if (budget_reserve(r->b, id, 0.134, 0, why, sizeof(why)) == 0) {
			r->granted++;
			budget_snapshot(r->b, &today, &total, &reserved);
			if (today + reserved > r->max_seen)
				r->max_seen = today + reserved;
			/* every other one is billed, the rest released */
			budget_settle(r->b, id, (i & 1) ? 0.134 : 0);
		}
	}
	return NULL;
}

static void test_concurrency_never_passes(void **state)
{
	struct budget b;
	struct race r[NTHREADS];
	pthread_t th[NTHREADS];
	double today, total, reserved;
	int i, granted = 0;

	(void)state;
	open_budget(&b, 5.00, 6.00, 0, 0);
	for (i = 0; i < NTHREADS; i++) {
		r[i] = (struct race){ .b = &b, .n = i };
		assert_int_equal(pthread_create(&th[i], NULL, racer, &r[i]), 0);
	}
	for (i = 0; i < NTHREADS; i++) {
		pthread_join(th[i], NULL);
		granted += r[i].granted;
		assert_true(r[i].max_seen <= 5.00 + 1e-9);
	}
	budget_snapshot(&b, &today, &total, &reserved);
	assert_true(reserved < 1e-9);
	assert_true(today <= 5.00 + 1e-9);
	/* the limit was reached: spending stopped within one price of it */
	assert_true(today > 5.00 - 0.134 - 1e-9);
	assert_true(granted > 0 && granted < NTHREADS * PER_THREAD);
	budget_close(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_message_daily, at_noon),
		cmocka_unit_test_setup(test_reserved_counts, at_noon),
		cmocka_unit_test_setup(test_reserve_by_id_is_idempotent, at_noon),
		cmocka_unit_test_setup(test_reservation_expiry, at_noon),
		cmocka_unit_test_setup(test_total_limit, at_noon),
		cmocka_unit_test_setup(test_day_rollover, at_noon),
		cmocka_unit_test_setup(test_unknown_price, at_noon),
		cmocka_unit_test_setup(test_concurrency_never_passes, at_noon),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
