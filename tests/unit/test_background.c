/* test_background.c - the background-interaction state machine on a fake
 * clock (time is an argument: no sleeps). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "api/background.h"

#define NEAR(a, b) assert_true(fabs((a) - (b)) < 1e-9)

static void test_create_poll_done(void **state)
{
	struct bg_machine m;
	double now = 100;

	(void)state;
	bg_start(&m, NULL, 60, now);
	assert_int_equal(m.state, BG_CREATE);
	NEAR(bg_wait(&m, now), 0);
	bg_event(&m, BGE_CREATED, "v1_abc", now);
	assert_int_equal(m.state, BG_POLL);
	assert_string_equal(m.id, "v1_abc");
	NEAR(bg_wait(&m, now), 0);			/* the first poll at once */
	bg_event(&m, BGE_PENDING, NULL, now);
	NEAR(bg_wait(&m, now), 0.25);			/* then 0.25 s, doubling */
	now += 0.25;
	bg_event(&m, BGE_PENDING, NULL, now);
	NEAR(bg_wait(&m, now), 0.5);
	for (int i = 0; i < 6; i++) {
		now += bg_wait(&m, now);
		bg_event(&m, BGE_PENDING, NULL, now);
	}
	NEAR(bg_wait(&m, now), BG_POLL_MAX_S);		/* capped */
	NEAR(bg_wait(&m, now + 1), BG_POLL_MAX_S - 1);
	bg_event(&m, BGE_FINISHED, NULL, now + 5);
	assert_int_equal(m.state, BG_DONE);
	NEAR(bg_wait(&m, now), 0);
	/* final: later events change nothing */
	bg_event(&m, BGE_GONE, NULL, now + 6);
	assert_int_equal(m.state, BG_DONE);
}

static void test_resume_polls_without_creating(void **state)
{
	struct bg_machine m;

	(void)state;
	bg_start(&m, "v1_journaled", 60, 5);
	assert_int_equal(m.state, BG_POLL);
	assert_string_equal(m.id, "v1_journaled");
	NEAR(bg_wait(&m, 5), 0);
	bg_event(&m, BGE_FINISHED, NULL, 5);
	assert_int_equal(m.state, BG_DONE);
}

static void test_refused_and_failed_creates(void **state)
{
	struct bg_machine m;

	(void)state;
	bg_start(&m, NULL, 60, 0);
	bg_event(&m, BGE_REFUSED, NULL, 0);
	assert_int_equal(m.state, BG_PLAIN);
	bg_start(&m, NULL, 60, 0);
	bg_event(&m, BGE_FAILED, NULL, 0);
	assert_int_equal(m.state, BG_DONE);
	assert_string_equal(m.id, "");
	/* answered at once: done, with the id kept for the delete */
	bg_start(&m, NULL, 60, 0);
	bg_event(&m, BGE_FINISHED, "v1_fast", 0);
	assert_int_equal(m.state, BG_DONE);
	assert_string_equal(m.id, "v1_fast");
	/* in progress without an id cannot be followed: done with what we have */
	bg_start(&m, NULL, 60, 0);
	bg_event(&m, BGE_CREATED, "", 0);
	assert_int_equal(m.state, BG_DONE);
}

static void test_poll_errors_and_gone(void **state)
{
	struct bg_machine m;
	double now = 0;

	(void)state;
	bg_start(&m, "v1_x", 600, now);
	for (int i = 1; i < BG_POLL_ERRORS_MAX; i++) {
		bg_event(&m, BGE_POLL_ERROR, NULL, now);
		assert_int_equal(m.state, BG_POLL);
		now += bg_wait(&m, now);
	}
	/* a good poll resets the count */
	bg_event(&m, BGE_PENDING, NULL, now);
	for (int i = 1; i < BG_POLL_ERRORS_MAX; i++) {
		now += bg_wait(&m, now);
		bg_event(&m, BGE_POLL_ERROR, NULL, now);
	}
	assert_int_equal(m.state, BG_POLL);
	bg_event(&m, BGE_POLL_ERROR, NULL, now);
	assert_int_equal(m.state, BG_LOST);

	bg_start(&m, "v1_y", 600, 0);
	bg_event(&m, BGE_GONE, NULL, 1);
	assert_int_equal(m.state, BG_LOST);
}

static void test_gives_up_after_its_time(void **state)
{
	struct bg_machine m;
	double now = 1000;

	(void)state;
	bg_start(&m, NULL, 30, now);
	bg_event(&m, BGE_CREATED, "v1_slow", now);
	while (m.state == BG_POLL && now < 1000 + 100) {
		now += bg_wait(&m, now);
		bg_event(&m, BGE_PENDING, NULL, now);
	}
	assert_int_equal(m.state, BG_LOST);
	assert_true(now >= 1030 && now < 1030 + BG_POLL_MAX_S + 1e-9);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_poll_done),
		cmocka_unit_test(test_resume_polls_without_creating),
		cmocka_unit_test(test_refused_and_failed_creates),
		cmocka_unit_test(test_poll_errors_and_gone),
		cmocka_unit_test(test_gives_up_after_its_time),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
