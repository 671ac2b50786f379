/*
 * test_inflight.c - the local in-flight table through its ops struct: one
 * owner per key, waiters learn the outcome, leases end with the fake clock.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cache/inflight.h"

#define N 16

/* The fake clock: moved by hand. */
static _Atomic double fake_t = 1.7e9;
static double fake_wall(void *ctx) { (void)ctx; return atomic_load(&fake_t); }
static double fake_random(void *ctx) { (void)ctx; return 0.5; }
static void fake_sleep(void *ctx, double s) { (void)ctx; atomic_store(&fake_t, atomic_load(&fake_t) + s); }
static const struct clock_ops fake_clock = {
	.now = fake_wall, .sleep = fake_sleep, .random = fake_random, .wall = fake_wall, .ctx = NULL,
};

struct shared {
	struct inflight f;
	struct cache_key k;
	atomic_int owners, waiters_ok, waiters_fail, arrived;
	bool owner_succeeds;
	int rounds;		/* owners that fail before one succeeds */
	atomic_int failures;
	atomic_int next_id;
};

static void *worker(void *arg)
{
	struct shared *s = arg;
	bool ok = false;
	char owner[32];

	snprintf(owner, sizeof(owner), "w%d", atomic_fetch_add(&s->next_id, 1));

	atomic_fetch_add(&s->arrived, 1);
	for (;;) {
		if (inflight_begin(&s->f, &s->k, owner, 0, &ok)) {
			int failed_before = atomic_fetch_add(&s->owners, 1);
			bool succeed;

			/* let the others pile up behind us */
			while (atomic_load(&s->arrived) < N)
				usleep(100);
			usleep(20000);
			succeed = s->owner_succeeds && failed_before >= s->rounds;
			if (!succeed)
				atomic_fetch_add(&s->failures, 1);
			inflight_done(&s->f, &s->k, owner, succeed);
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
	assert_int_equal(inflight_local_open(&s.f, &fake_clock), 0);
	memset(s.k.b, 7, sizeof(s.k.b));
	s.owner_succeeds = true;
	run(&s);
	assert_int_equal(atomic_load(&s.owners), 1);
	assert_int_equal(atomic_load(&s.waiters_ok), N - 1);
	assert_int_equal(atomic_load(&s.waiters_fail), 0);
	assert_int_equal(inflight_count(&s.f), 0);
	inflight_close(&s.f);
}

static void test_owner_failure_lets_waiter_retry(void **state)
{
	static struct shared s;

	(void)state;
	memset(&s, 0, sizeof(s));
	assert_int_equal(inflight_local_open(&s.f, &fake_clock), 0);
	memset(s.k.b, 9, sizeof(s.k.b));
	s.owner_succeeds = true;
	s.rounds = 1;		/* the first owner fails, the next one succeeds */
	run(&s);
	assert_int_equal(atomic_load(&s.owners), 2);
	assert_int_equal(atomic_load(&s.failures), 1);
	assert_true(atomic_load(&s.waiters_fail) >= 1);
	assert_int_equal(atomic_load(&s.waiters_ok), N - 2);
	assert_int_equal(inflight_count(&s.f), 0);
	inflight_close(&s.f);
}

static void test_distinct_keys_independent(void **state)
{
	struct inflight f;
	struct cache_key a, b;
	bool ok;

	(void)state;
	assert_int_equal(inflight_local_open(&f, &fake_clock), 0);
	memset(a.b, 1, sizeof(a.b));
	memset(b.b, 2, sizeof(b.b));
	assert_true(inflight_begin(&f, &a, "o1", 0, &ok));
	assert_true(inflight_begin(&f, &b, "o2", 0, &ok));
	assert_int_equal(inflight_count(&f), 2);
	inflight_done(&f, &a, "o1", true);
	assert_int_equal(inflight_count(&f), 1);
	/* a finished: a later begin owns it afresh */
	assert_true(inflight_begin(&f, &a, "o3", 0, &ok));
	inflight_done(&f, &a, "o3", false);
	inflight_done(&f, &b, "o2", false);
	assert_int_equal(inflight_count(&f), 0);
	inflight_close(&f);
}

/* A claim is the owner's: others are held, the owner may claim again, only it ends it. */
static void test_claim_owner_and_done(void **state)
{
	struct inflight f;
	struct cache_key k;
	bool ok = true;

	(void)state;
	assert_int_equal(inflight_local_open(&f, &fake_clock), 0);
	assert_string_equal(f.ops->name, "local");
	memset(k.b, 3, sizeof(k.b));
	assert_int_equal(f.ops->wait(f.state, &k, &ok), 0);	/* nobody holds it */
	assert_int_equal(inflight_claim(&f, &k, "job-a.1", 60), INFLIGHT_OWNER);
	assert_int_equal(inflight_claim(&f, &k, "job-b.1", 60), INFLIGHT_HELD);
	assert_int_equal(inflight_claim(&f, &k, "job-a.1", 60), INFLIGHT_OWNER);	/* a restart claims again */
	assert_int_equal(inflight_renew(&f, &k, "job-b.1", 60), INFLIGHT_HELD);
	assert_int_equal(inflight_renew(&f, &k, "job-a.1", 60), INFLIGHT_OWNER);
	inflight_done(&f, &k, "job-b.1", true);		/* not the owner: no effect */
	assert_int_equal(inflight_count(&f), 1);
	inflight_done(&f, &k, "job-a.1", true);
	assert_int_equal(inflight_count(&f), 0);
	assert_int_equal(inflight_claim(&f, &k, "job-b.1", 60), INFLIGHT_OWNER);
	inflight_done(&f, &k, "job-b.1", false);
	inflight_close(&f);
}

/* An owner that died (lease ended) is taken over; its late done cannot end the successor's claim. */
static void test_lease_expiry_takeover(void **state)
{
	struct inflight f;
	struct cache_key k;
	bool ok = true;

	(void)state;
	assert_int_equal(inflight_local_open(&f, &fake_clock), 0);
	memset(k.b, 4, sizeof(k.b));
	assert_int_equal(inflight_claim(&f, &k, "dead", 30), INFLIGHT_OWNER);
	atomic_store(&fake_t, atomic_load(&fake_t) + 29);
	assert_int_equal(inflight_claim(&f, &k, "next", 30), INFLIGHT_HELD);
	atomic_store(&fake_t, atomic_load(&fake_t) + 2);
	assert_int_equal(inflight_count(&f), 0);		/* a dead claim is not in flight */
	assert_int_equal(f.ops->wait(f.state, &k, &ok), 0);	/* no outcome: claim it yourself */
	assert_true(inflight_begin(&f, &k, "next", 30, &ok));
	assert_int_equal(inflight_count(&f), 1);
	assert_int_equal(inflight_renew(&f, &k, "dead", 30), INFLIGHT_HELD);
	inflight_done(&f, &k, "dead", false);			/* too late: ignored */
	assert_int_equal(inflight_count(&f), 1);
	inflight_done(&f, &k, "next", true);
	assert_int_equal(inflight_count(&f), 0);
	inflight_close(&f);
}

/* A waiter blocked on an owner that dies gets the key when the lease ends. */
struct lease_waiter {
	struct inflight *f;
	struct cache_key k;
	bool owner;
};

static void *wait_for_dead(void *arg)
{
	struct lease_waiter *w = arg;
	bool ok = false;

	w->owner = inflight_begin(w->f, &w->k, "survivor", 30, &ok);
	return NULL;
}

static void test_waiter_takes_over_dead_owner(void **state)
{
	struct inflight f;
	struct lease_waiter w;
	pthread_t th;

	(void)state;
	assert_int_equal(inflight_local_open(&f, &fake_clock), 0);
	memset(w.k.b, 5, sizeof(w.k.b));
	w.f = &f;
	w.owner = false;
	assert_int_equal(inflight_claim(&f, &w.k, "dies", 30), INFLIGHT_OWNER);
	assert_int_equal(pthread_create(&th, NULL, wait_for_dead, &w), 0);
	usleep(20000);
	atomic_store(&fake_t, atomic_load(&fake_t) + 31);	/* "dies" never calls done */
	pthread_join(th, NULL);
	assert_true(w.owner);
	inflight_done(&f, &w.k, "survivor", true);
	assert_int_equal(inflight_count(&f), 0);
	inflight_close(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_one_owner),
		cmocka_unit_test(test_owner_failure_lets_waiter_retry),
		cmocka_unit_test(test_distinct_keys_independent),
		cmocka_unit_test(test_claim_owner_and_done),
		cmocka_unit_test(test_lease_expiry_takeover),
		cmocka_unit_test(test_waiter_takes_over_dead_owner),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
