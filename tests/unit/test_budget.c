/* test_budget.c - reservations, concurrency, settle, day rollover, unknown price. */
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

/* A fixed local noon, so "+ 1 day" crosses exactly one midnight. */
static time_t noon(void)
{
	struct tm tm = { .tm_year = 126, .tm_mon = 10, .tm_mday = 25, .tm_hour = 12, .tm_isdst = -1 };
	return mktime(&tm);
}

static void test_message_daily(void **state)
{
	struct budget b;
	char why[256] = "";
	time_t now = noon();

	(void)state;
	budget_init(&b, 0.30, -1, 0.268, 0.268, now);
	assert_int_equal(budget_reserve(&b, 0.0, now, why, sizeof(why)), 0);
	/* 0.268 + 0.134 > 0.30 */
	assert_int_equal(budget_reserve(&b, 0.134, now, why, sizeof(why)), -1);
	assert_string_equal(why, "budget: spent $0.268 today + reserved $0.000 + this request $0.134"
			    " would pass budget_daily_usd $0.30");
	budget_destroy(&b);
}

static void test_reserved_counts(void **state)
{
	struct budget b;
	char why[256] = "";
	time_t now = noon();
	double today, total, reserved;

	(void)state;
	budget_init(&b, 0.30, -1, 0, 0, now);
	assert_int_equal(budget_reserve(&b, 0.134, now, why, sizeof(why)), 0);
	assert_int_equal(budget_reserve(&b, 0.134, now, why, sizeof(why)), 0);
	assert_int_equal(budget_reserve(&b, 0.134, now, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "reserved $0.268"));
	/* one fails: released */
	budget_settle(&b, 0.134, 0, now);
	budget_snapshot(&b, &today, &total, &reserved);
	assert_true(fabs(reserved - 0.134) < 1e-9);
	assert_true(today == 0 && total == 0);
	/* the other is billed */
	budget_settle(&b, 0.134, 0.134, now);
	budget_snapshot(&b, &today, &total, &reserved);
	assert_true(reserved == 0);
	assert_true(fabs(today - 0.134) < 1e-9 && fabs(total - 0.134) < 1e-9);
	assert_int_equal(budget_reserve(&b, 0.134, now, why, sizeof(why)), 0);
	assert_int_equal(budget_reserve(&b, 0.05, now, why, sizeof(why)), -1);
	budget_destroy(&b);
}

static void test_total_limit(void **state)
{
	struct budget b;
	char why[256] = "";
	time_t now = noon();

	(void)state;
	budget_init(&b, -1, 1.00, 0, 0.90, now);
	assert_int_equal(budget_reserve(&b, 0.134, now, why, sizeof(why)), -1);
	assert_string_equal(why, "budget: spent $0.900 in total + reserved $0.000 + this request $0.134"
			    " would pass budget_total_usd $1.00");
	assert_int_equal(budget_reserve(&b, 0.10, now, why, sizeof(why)), 0);
	budget_destroy(&b);
}

static void test_day_rollover(void **state)
{
	struct budget b;
	char why[256] = "";
	time_t now = noon();
	double today, total;

	(void)state;
	budget_init(&b, 0.30, -1, 0.25, 5.0, now);
	assert_int_equal(budget_reserve(&b, 0.134, now + 3600, why, sizeof(why)), -1);
	/* tomorrow: spent_today starts at zero, the total stays */
	assert_int_equal(budget_reserve(&b, 0.134, now + 86400, why, sizeof(why)), 0);
	budget_settle(&b, 0.134, 0.134, now + 86400);
	budget_snapshot(&b, &today, &total, NULL);
	assert_true(fabs(today - 0.134) < 1e-9);
	assert_true(fabs(total - 5.134) < 1e-9);
	budget_destroy(&b);
}

static void test_unknown_price(void **state)
{
	struct budget b;
	char why[256] = "";
	time_t now = noon();
	double reserved;

	(void)state;
	budget_init(&b, -1, -1, 0, 0, now);
	assert_int_equal(budget_reserve(&b, -1, now, why, sizeof(why)), 0);
	budget_settle(&b, -1, -1, now);
	budget_snapshot(&b, NULL, NULL, &reserved);
	assert_true(reserved == 0);
	budget_destroy(&b);

	budget_init(&b, 10, -1, 0, 0, now);
	assert_int_equal(budget_reserve(&b, -1, now, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "price unknown"));
	budget_destroy(&b);
}

#define NTHREADS 8
#define PER_THREAD 200

struct race {
	struct budget *b;
	time_t now;
	int granted;
	double max_seen;
};

static void *racer(void *arg)
{
	struct race *r = arg;
	char why[256];
	double today, total, reserved;
	int i;

	for (i = 0; i < PER_THREAD; i++) {
		if (budget_reserve(r->b, 0.134, r->now, why, sizeof(why)) == 0) {
			r->granted++;
			budget_snapshot(r->b, &today, &total, &reserved);
			if (today + reserved > r->max_seen)
				r->max_seen = today + reserved;
			/* every other one is billed, the rest released */
			budget_settle(r->b, 0.134, (i & 1) ? 0.134 : 0, r->now);
		}
	}
	return NULL;
}

static void test_concurrency_never_passes(void **state)
{
	struct budget b;
	struct race r[NTHREADS];
	pthread_t th[NTHREADS];
	time_t now = noon();
	double today, total, reserved;
	int i, granted = 0;

	(void)state;
	budget_init(&b, 5.00, 6.00, 0, 0, now);
	for (i = 0; i < NTHREADS; i++) {
		r[i] = (struct race){ .b = &b, .now = now };
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
	budget_destroy(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_message_daily),
		cmocka_unit_test(test_reserved_counts),
		cmocka_unit_test(test_total_limit),
		cmocka_unit_test(test_day_rollover),
		cmocka_unit_test(test_unknown_price),
		cmocka_unit_test(test_concurrency_never_passes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
