/* test_jobid.c - job ids: ULIDs, unique, sortable by time, kept in the journal row. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache/jobid.h"
#include "cache/journal.h"

/* Bit layout: all zero, all one, and the time part of the ULID spec's example. */
static void test_format_known_values(void **state)
{
	unsigned char zero[10] = { 0 }, ones[10];
	char out[JOBID_LEN];

	(void)state;
	memset(ones, 0xff, sizeof(ones));
	jobid_format(0, zero, out);
	assert_string_equal(out, "00000000000000000000000000");
	jobid_format(0xFFFFFFFFFFFFULL, ones, out);
	assert_string_equal(out, "7ZZZZZZZZZZZZZZZZZZZZZZZZZ");
	/* ulid/spec: 01ARYZ6S41 is the time part of 1469918176385 */
	jobid_format(1469918176385ULL, zero, out);
	assert_memory_equal(out, "01ARYZ6S41", 10);
}

static void test_unique_and_sorted(void **state)
{
	char a[JOBID_LEN], b[JOBID_LEN];

	(void)state;
	assert_int_equal(jobid_make(&clock_real, a), 0);
	usleep(2000);
	assert_int_equal(jobid_make(&clock_real, b), 0);
	assert_int_equal(strlen(a), 26);
	assert_string_not_equal(a, b);
	assert_true(strcmp(a, b) < 0);
}

/* The id is made with the journal row and kept by a rewrite of the queued job. */
static void test_journal_keeps_the_id(void **state)
{
	char dir[] = "/tmp/bananafs-jobid-XXXXXX", err[256], u1[JOBID_LEN], u2[JOBID_LEN], u3[JOBID_LEN];
	char cmd[128];
	struct store s;
	int64_t id, id2, id3;

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_int_equal(store_open(&s, dir, err, sizeof(err)), 0);
	assert_int_equal(journal_init(&s), 0);
	id = journal_add(&s, "m/1K/a.txt", 0, NULL);
	assert_true(id > 0);
	assert_int_equal(journal_job_uid(&s, id, u1), 0);
	id2 = journal_add(&s, "m/1K/a.txt", 0, NULL);
	assert_int_equal(journal_job_uid(&s, id2, u2), 0);
	assert_string_equal(u1, u2);
	/* finished, then written again: a new job, a new id (row numbers restart, ids do not) */
	assert_int_equal(journal_finish(&s, id), 0);
	id3 = journal_add(&s, "m/1K/a.txt", 0, NULL);
	assert_int_equal(journal_job_uid(&s, id3, u3), 0);
	assert_string_not_equal(u1, u3);
	assert_int_equal(journal_job_uid(&s, 999, u3), -1);
	store_close(&s);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

static double wall_ulid_example(void *ctx)
{
	(void)ctx;
	return 1469918176.385;	/* the ULID spec's example time */
}

/* The time part comes from the injected clock. */
static void test_time_from_clock(void **state)
{
	const struct clock_ops fake = { .wall = wall_ulid_example };
	char id[JOBID_LEN];

	(void)state;
	assert_int_equal(jobid_make(&fake, id), 0);
	assert_memory_equal(id, "01ARYZ6S41", 10);
	assert_int_equal(strlen(id), 26);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_format_known_values),
		cmocka_unit_test(test_time_from_clock),
		cmocka_unit_test(test_unique_and_sorted),
		cmocka_unit_test(test_journal_keeps_the_id),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
