/* test_inflight.c - one owner per key; waiters learn the outcome. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "cache/inflight.h"

#define N 16

struct shared {
	struct inflight f;
	struct cache_key k;
	atomic_int owners, waiters_ok, waiters_fail, arrived;
	bool owner_succeeds;
	int rounds;		/* owners that fail before one succeeds */
	atomic_int failures;
};

static void *worker(void *arg)
{
	struct shared *s = arg;
	bool ok = false;

	atomic_fetch_add(&s->arrived, 1);
	for (;;) {
		if (inflight_begin(&s->f, &s->k, &ok)) {
			int failed_before = atomic_fetch_add(&s->owners, 1);
			bool succeed;

			/* let the others pile up behind us */
			while (atomic_load(&s->arrived) < N)
				usleep(100);
			usleep(20000);
			succeed = s->owner_succeeds && failed_before >= s->rounds;
			if (!succeed)
				atomic_fetch_add(&s->failures, 1);
			inflight_done(&s->f, &s->k, succeed);
			return NULL;
		}
		if (ok) {
			atomic_fetch_add(&s->waiters_ok, 1);
			return NULL;
		}
		atomic_fetch_add(&s->waiters_fail, 1);
		if (!s->owner_succeeds)
			return NULL;	/* this caller gives up */
		/* owner failed: loop and try to become the owner (the fetch retry) */
	}
}

static void run(struct shared *s)
{
	pthread_t th[N];
	int i;

	for (i = 0; i < N; i++)
		assert_int_equal(pthread_create(&th[i], NULL, worker, s), 0);
	for (i = 0; i < N; i++)
		pthread_join(th[i], NULL);
}

static void test_one_owner(void **state)
{
	static struct shared s;

	(void)state;
	memset(&s, 0, sizeof(s));
	inflight_init(&s.f);
	memset(s.k.b, 7, sizeof(s.k.b));
	s.owner_succeeds = true;
	run(&s);
	assert_int_equal(atomic_load(&s.owners), 1);
	assert_int_equal(atomic_load(&s.waiters_ok), N - 1);
	assert_int_equal(atomic_load(&s.waiters_fail), 0);
	assert_int_equal(inflight_count(&s.f), 0);
	inflight_destroy(&s.f);
}

static void test_owner_failure_lets_waiter_retry(void **state)
{
	static struct shared s;

	(void)state;
	memset(&s, 0, sizeof(s));
	inflight_init(&s.f);
	memset(s.k.b, 9, sizeof(s.k.b));
	s.owner_succeeds = true;
	s.rounds = 1;		/* the first owner fails, the next one succeeds */
	run(&s);
	assert_int_equal(atomic_load(&s.owners), 2);
	assert_int_equal(atomic_load(&s.failures), 1);
	assert_true(atomic_load(&s.waiters_fail) >= 1);
	assert_int_equal(atomic_load(&s.waiters_ok), N - 2);
	assert_int_equal(inflight_count(&s.f), 0);
	inflight_destroy(&s.f);
}

static void test_distinct_keys_independent(void **state)
{
	struct inflight f;
	struct cache_key a, b;
	bool ok;

	(void)state;
	inflight_init(&f);
	memset(a.b, 1, sizeof(a.b));
	memset(b.b, 2, sizeof(b.b));
	assert_true(inflight_begin(&f, &a, &ok));
	assert_true(inflight_begin(&f, &b, &ok));
	assert_int_equal(inflight_count(&f), 2);
	inflight_done(&f, &a, true);
	assert_int_equal(inflight_count(&f), 1);
	/* a finished: a later begin owns it afresh */
	assert_true(inflight_begin(&f, &a, &ok));
	inflight_done(&f, &a, false);
	inflight_done(&f, &b, false);
	assert_int_equal(inflight_count(&f), 0);
	inflight_destroy(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_one_owner),
		cmocka_unit_test(test_owner_failure_lets_waiter_retry),
		cmocka_unit_test(test_distinct_keys_independent),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
