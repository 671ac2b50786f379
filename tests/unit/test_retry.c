/* test_retry.c - back-off policy and the limiter, driven by a fake clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "api/limiter.h"
#include "api/retry.h"

struct fake {
	double t;		/* seconds */
	double rnd;		/* what random() returns */
	double slept;		/* total time slept */
	int sleeps;
};

static double fake_now(void *ctx) { return ((struct fake *)ctx)->t; }
static double fake_random(void *ctx) { return ((struct fake *)ctx)->rnd; }
static void fake_sleep(void *ctx, double s)
{
	struct fake *f = ctx;
	f->t += s;
	f->slept += s;
	f->sleeps++;
}

static struct fake fk;
static double fake_wall(void *ctx) { return 1.7e9 + ((struct fake *)ctx)->t; }
static const struct clock_ops fake_clock = {
	.now = fake_now, .sleep = fake_sleep, .random = fake_random, .wall = fake_wall, .ctx = &fk,
};

static int reset(void **state)
{
	(void)state;
	memset(&fk, 0, sizeof(fk));
	fk.t = 1000;
	return 0;
}

static struct gen_result failed(enum err_class c, double server_delay)
{
	struct gen_result r;
	memset(&r, 0, sizeof(r));
	r.cls = c;
	r.retry_after_s = server_delay;
	r.quota_value = -1;
	return r;
}

static void test_backoff_bounds(void **state)
{
	(void)state;
	struct retry_policy p = { .max_attempts = 8, .base_s = 1, .cap_s = 60 };
	struct gen_result r = failed(ERR_CAPACITY, -1);

	/* random() close to 1 gives the upper bound: 1, 2, 4, 8, 16, 32, then the cap */
	fk.rnd = 0.999999;
	double expect[] = { 1, 2, 4, 8, 16, 32, 60 };
	for (int a = 2; a <= 8; a++) {
		double d = retry_delay(&p, &r, a, &fake_clock);
		assert_true(d <= expect[a - 2]);
		assert_true(d > expect[a - 2] * 0.999);
	}
	/* full jitter: random() scales the whole window */
	fk.rnd = 0.25;
	assert_true(retry_delay(&p, &r, 4, &fake_clock) == 1.0);
	fk.rnd = 0;
	assert_true(retry_delay(&p, &r, 5, &fake_clock) == 0);
	/* attempts used up */
	fk.rnd = 0.5;
	assert_true(retry_delay(&p, &r, 9, &fake_clock) < 0);
	/* attempt 1 is the first send, not a resend */
	assert_true(retry_delay(&p, &r, 1, &fake_clock) < 0);
	/* the real clock's random stays in [0, 1) */
	for (int i = 0; i < 1000; i++) {
		double x = clock_real.random(clock_real.ctx);
		assert_true(x >= 0 && x < 1);
	}
}

static void test_server_delay_wins(void **state)
{
	(void)state;
	struct retry_policy p = { .max_attempts = 5, .base_s = 1, .cap_s = 60 };
	struct gen_result r = failed(ERR_QUOTA_MINUTE, 25.9);
	fk.rnd = 0.5;
	assert_true(retry_delay(&p, &r, 2, &fake_clock) == 25.9);
	assert_true(retry_delay(&p, &r, 5, &fake_clock) == 25.9);
	assert_true(retry_delay(&p, &r, 6, &fake_clock) < 0);
	r.retry_after_s = 0;	/* "retry now" is a real answer too */
	assert_true(retry_delay(&p, &r, 2, &fake_clock) == 0);
	r = failed(ERR_NETWORK, -1);
	assert_true(retry_delay(&p, &r, 2, &fake_clock) == 0.5);
}

static void test_permanent_never_retried(void **state)
{
	(void)state;
	struct retry_policy p = { .max_attempts = 10, .base_s = 1, .cap_s = 60 };
	enum err_class permanent[] = {
		ERR_NONE, ERR_CREDENTIALS, ERR_PERMISSION, ERR_QUOTA_DAY, ERR_QUOTA_ZERO, ERR_BILLING,
		ERR_REQUEST, ERR_SAFETY, ERR_NO_IMAGE, ERR_MALFORMED,
	};
	for (size_t i = 0; i < sizeof(permanent) / sizeof(permanent[0]); i++) {
		struct gen_result r = failed(permanent[i], 5);	/* even with a server delay */
		if (retry_delay(&p, &r, 2, &fake_clock) >= 0)
			fail_msg("class %s was retried", err_class_name(permanent[i]));
	}
}

static void test_limiter_inflight(void **state)
{
	(void)state;
	struct limiter l;
	bool waited = true;
	assert_int_equal(limiter_local_open(&l, 2, 0, &fake_clock), 0);
	assert_true(limiter_next_wait(&l) == 0);
	limiter_acquire(&l, "job", &waited);
	assert_false(waited);
	limiter_acquire(&l, "job", &waited);
	assert_false(waited);
	assert_true(limiter_next_wait(&l) > 0);	/* both slots taken */
	assert_true(limiter_paused_for(&l) == 0);	/* a local slot, not a 429: "waiting-slot" */
	limiter_release(&l, "job");
	assert_true(limiter_next_wait(&l) == 0);
	limiter_acquire(&l, "job", &waited);
	assert_false(waited);
	assert_true(limiter_next_wait(&l) > 0);	/* two slots taken again */
	limiter_release(&l, "job");
	limiter_release(&l, "job");
	limiter_release(&l, "job");	/* one too many: harmless */
	assert_true(limiter_next_wait(&l) == 0);
	limiter_close(&l);
	assert_int_equal(limiter_local_open(&l, 0, 0, &fake_clock), -1);
}

static void test_limiter_rpm_window(void **state)
{
	(void)state;
	struct limiter l;
	bool waited;
	assert_int_equal(limiter_local_open(&l, 100, 3, &fake_clock), 0);
	/* three starts at t=1000, 1010, 1020 */
	for (int i = 0; i < 3; i++) {
		limiter_acquire(&l, "job", &waited);
		assert_false(waited);
		limiter_release(&l, "job");
		fk.t += 10;
	}
	/* t=1030: the 4th must wait until 1000+60 */
	double w = limiter_next_wait(&l);
	assert_true(w > 29.999 && w < 30.001);
	limiter_acquire(&l, "job", &waited);
	assert_true(waited);
	assert_true(fk.t >= 1060 && fk.t < 1060.01);	/* slept through the fake clock */
	limiter_release(&l, "job");
	/* next one waits for the 1010 start to leave the window */
	w = limiter_next_wait(&l);
	assert_true(w > 9.999 && w < 10.001);
	fk.t += 61;
	assert_true(limiter_next_wait(&l) == 0);
	limiter_close(&l);
}

static void test_limiter_pause(void **state)
{
	(void)state;
	struct limiter l;
	bool waited;
	assert_int_equal(limiter_local_open(&l, 4, 0, &fake_clock), 0);
	limiter_pause(&l, 25);
	assert_true(limiter_next_wait(&l) == 25);
	assert_true(limiter_paused_for(&l) == 25);	/* after a 429: "waiting-quota" */
	limiter_pause(&l, 5);	/* never shortens */
	assert_true(limiter_next_wait(&l) == 25);
	limiter_pause(&l, 40);	/* extends */
	assert_true(limiter_next_wait(&l) == 40);
	fk.t += 15;
	assert_true(limiter_next_wait(&l) == 25);
	limiter_acquire(&l, "job", &waited);
	assert_true(waited);
	assert_true(fk.t >= 1040);
	assert_true(limiter_next_wait(&l) == 0);
	limiter_release(&l, "job");
	limiter_close(&l);
}

/* The real clock: a release from another thread wakes a blocked acquire. */
struct waker { struct limiter *l; };
static void *release_later(void *arg)
{
	struct waker *w = arg;
	clock_real.sleep(NULL, 0.05);
	limiter_release(w->l, "job");
	return NULL;
}

static void test_limiter_real_clock(void **state)
{
	(void)state;
	struct limiter l;
	bool waited;
	pthread_t th;
	assert_int_equal(limiter_local_open(&l, 1, 0, &clock_real), 0);
	limiter_acquire(&l, "job", &waited);
	struct waker w = { &l };
	double t0 = clock_real.now(NULL);	/* before the waker starts its 50 ms sleep */
	assert_int_equal(pthread_create(&th, NULL, release_later, &w), 0);
	limiter_acquire(&l, "job", &waited);
	double dt = clock_real.now(NULL) - t0;
	assert_true(waited);
	assert_true(dt >= 0.04 && dt < 5);
	pthread_join(th, NULL);
	limiter_release(&l, "job");
	/* a short pause blocks for about its length */
	t0 = clock_real.now(NULL);
	limiter_pause(&l, 0.05);
	limiter_acquire(&l, "job", &waited);
	assert_true(waited);
	assert_true(clock_real.now(NULL) - t0 >= 0.04);
	limiter_release(&l, "job");
	limiter_close(&l);
}

/* A 429's delay is believed within its quota's window only. */
static void test_quota_pause_bounded(void **state)
{
	(void)state;
	struct retry_policy p = { .max_attempts = 4, .base_s = 1, .cap_s = 60 };
	struct gen_result r = failed(ERR_QUOTA_MINUTE, 25);
	char why[256];

	fk.rnd = 0.5;
	assert_true(retry_quota_pause(&p, &r, 0, &fake_clock, why, sizeof(why)) == 25 + 0.5 * QUOTA_JITTER_S);
	r.retry_after_s = 999999;
	assert_true(retry_quota_pause(&p, &r, 0, &fake_clock, why, sizeof(why)) < 0);
	assert_non_null(strstr(why, "999999"));
	r.retry_after_s = QUOTA_WINDOW_S + 1;
	assert_true(retry_quota_pause(&p, &r, 0, &fake_clock, why, sizeof(why)) < 0);
	p.quota_window_s = 120;	/* a setting can widen it */
	assert_true(retry_quota_pause(&p, &r, 0, &fake_clock, NULL, 0) > 0);
	/* no delay named: back off once; named nowhere again, the prompt ends */
	r.retry_after_s = -1;
	assert_true(retry_quota_pause(&p, &r, 0, &fake_clock, why, sizeof(why)) > 0);
	assert_true(retry_quota_pause(&p, &r, 1, &fake_clock, why, sizeof(why)) < 0);
	assert_non_null(strstr(why, "without saying"));
}

static void test_quota_scope_and_model_pauses(void **state)
{
	(void)state;
	struct gen_result r = failed(ERR_QUOTA_MINUTE, 5);
	struct quota_pauses q;

	assert_false(retry_quota_project_wide(&r));	/* nothing said: the model's own */
	snprintf(r.quota_id, sizeof(r.quota_id), "GenerateRequestsPerMinutePerProjectPerModel");
	assert_false(retry_quota_project_wide(&r));
	snprintf(r.quota_id, sizeof(r.quota_id), "GenerateRequestsPerMinutePerProject");
	assert_true(retry_quota_project_wide(&r));

	quota_pauses_init(&q);
	quota_pause_model(&q, "a", 1010);
	quota_pause_model(&q, "a", 1005);	/* never shortens */
	assert_true(quota_paused_until(&q, "a", 1000) == 1010);
	assert_true(quota_paused_until(&q, "b", 1000) == 0);
	assert_true(quota_paused_until(&q, "a", 1011) == 0);
	for (int i = 0; i < QUOTA_PAUSE_MODELS + 4; i++) {	/* more models than entries: no overflow */
		char m[16];
		snprintf(m, sizeof(m), "m%d", i);
		quota_pause_model(&q, m, 2000 + i);
	}
	assert_true(quota_paused_until(&q, "m19", 1000) == 2019);
	quota_pauses_destroy(&q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_backoff_bounds, reset),
		cmocka_unit_test_setup(test_quota_pause_bounded, reset),
		cmocka_unit_test_setup(test_quota_scope_and_model_pauses, reset),
		cmocka_unit_test_setup(test_server_delay_wins, reset),
		cmocka_unit_test_setup(test_permanent_never_retried, reset),
		cmocka_unit_test_setup(test_limiter_inflight, reset),
		cmocka_unit_test_setup(test_limiter_rpm_window, reset),
		cmocka_unit_test_setup(test_limiter_pause, reset),
		cmocka_unit_test_setup(test_limiter_real_clock, reset),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
