/* test_journal.c - jobs survive a reopen; one job per path; batch state. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache/journal.h"

static char dir[64];

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb; (void)flag; (void)ftw;
	return remove(p);
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/bananafs-journal-XXXXXX");
	assert_non_null(mkdtemp(dir));
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}

static void open_store(struct store *s)
{
	char err[256], p[128];

	snprintf(p, sizeof(p), "%s/store", dir);
	assert_int_equal(store_open(s, p, err, sizeof(err)), 0);
	assert_int_equal(journal_init(s), 0);
}

struct seen {
	int n;
	int64_t id[8];
	char path[8][64];
	int regen[8], attempts[8];
	struct writer w[8];
};

static int collect(int64_t id, const char *relpath, int regen, int attempts, const struct writer *w,
		   void *arg)
{
	struct seen *s = arg;
	s->w[s->n] = *w;

	assert_true(s->n < 8);
	s->id[s->n] = id;
	snprintf(s->path[s->n], sizeof(s->path[0]), "%s", relpath);
	s->regen[s->n] = regen;
	s->attempts[s->n] = attempts;
	s->n++;
	return 0;
}

static void test_add_replace_pending_finish(void **state)
{
	struct store s;
	struct seen seen = { 0 };
	int64_t a, b, a2;

	(void)state;
	open_store(&s);
	a = journal_add(&s, "gemini-3-pro-image/2K/fox.txt", 0, NULL);
	b = journal_add(&s, "gemini-3-pro-image/2K/owl.txt", 1, NULL);
	assert_true(a > 0 && b > 0 && a != b);
	assert_int_equal(journal_start(&s, a), 0);
	assert_int_equal(journal_start(&s, a), 0);

	/* rewriting fox.txt while queued replaces its job: still one job for it */
	a2 = journal_add(&s, "gemini-3-pro-image/2K/fox.txt", 1, NULL);
	assert_true(a2 == a);
	assert_int_equal(journal_pending(&s, collect, &seen), 0);
	assert_int_equal(seen.n, 2);
	for (int i = 0; i < seen.n; i++) {
		if (seen.id[i] == a) {
			assert_string_equal(seen.path[i], "gemini-3-pro-image/2K/fox.txt");
			assert_int_equal(seen.regen[i], 1);
			assert_int_equal(seen.attempts[i], 0);
		} else {
			assert_true(seen.id[i] == b);
			assert_string_equal(seen.path[i], "gemini-3-pro-image/2K/owl.txt");
		}
	}

	assert_int_equal(journal_finish(&s, b), 0);
	assert_int_equal(journal_finish(&s, b), -1);	/* already gone */
	memset(&seen, 0, sizeof(seen));
	assert_int_equal(journal_pending(&s, collect, &seen), 0);
	assert_int_equal(seen.n, 1);
	assert_true(seen.id[0] == a);
	store_close(&s);
}

static void test_survives_reopen(void **state)
{
	struct store s;
	struct seen seen = { 0 };
	int64_t a;

	(void)state;
	open_store(&s);
	struct writer w = { .set = true, .uid = 65534, .gid = 65533, .ngroups = 3,
			    .groups = { 10, 20, 4000000000u } };
	a = journal_add(&s, "p/1K/x.txt", 0, &w);
	assert_true(a > 0);
	assert_int_equal(journal_start(&s, a), 0);
	assert_true(journal_add(&s, "p/1K/daemon.txt", 0, NULL) > 0);
	store_close(&s);

	/* The writer's rights come back with the job; a row without one is the daemon's. */
	open_store(&s);
	assert_int_equal(journal_pending(&s, collect, &seen), 0);
	assert_int_equal(seen.n, 2);
	assert_true(seen.id[0] == a);
	assert_string_equal(seen.path[0], "p/1K/x.txt");
	assert_int_equal(seen.attempts[0], 1);
	assert_true(seen.w[0].set);
	assert_int_equal(seen.w[0].uid, 65534);
	assert_int_equal(seen.w[0].gid, 65533);
	assert_int_equal(seen.w[0].ngroups, 3);
	assert_int_equal(seen.w[0].groups[2], 4000000000u);
	assert_false(seen.w[1].set);
	store_close(&s);
}

/* A state.db of an older bananafs: the columns added since come in one upgrade, the rows stay. */
static void test_upgrade_older_schema(void **state)
{
	struct store s;
	struct seen seen = { 0 };
	char err[256], p[128];

	(void)state;
	snprintf(p, sizeof(p), "%s/store", dir);
	assert_int_equal(store_open(&s, p, err, sizeof(err)), 0);
	assert_int_equal(store_sql(&s, "CREATE TABLE jobs(id INTEGER PRIMARY KEY, relpath TEXT UNIQUE NOT NULL,"
				   " regen INTEGER NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0,"
				   " created INTEGER NOT NULL);", NULL, 0, NULL, NULL, NULL), 0);
	assert_int_equal(store_sql(&s, "INSERT INTO jobs(relpath, created) VALUES('p/1K/old.txt', 1);",
				   NULL, 0, NULL, NULL, NULL), 0);
	assert_int_equal(journal_init(&s), 0);
	struct writer w = { .set = true, .uid = 65534, .gid = 65533, .ngroups = 1, .groups = { 10 } };
	assert_true(journal_add(&s, "p/1K/new.txt", 0, &w) > 0);
	assert_int_equal(journal_pending(&s, collect, &seen), 0);
	assert_int_equal(seen.n, 2);
	assert_string_equal(seen.path[0], "p/1K/old.txt");
	assert_false(seen.w[0].set);
	assert_true(seen.w[1].set);
	assert_int_equal(seen.w[1].uid, 65534);

	/* A statement that must succeed and fails keeps nothing of the others. */
	const char *const must[] = { "CREATE TABLE kept_not(x INTEGER);", "CREATE TABLE jobs(x INTEGER);" };
	assert_int_equal(store_schema(&s, must, 2, NULL, 0), -1);
	assert_int_equal(store_sql(&s, "SELECT x FROM kept_not;", NULL, 0, NULL, NULL, NULL), -1);
	store_close(&s);
}

static void test_outcomes_survive_reopen(void **state)
{
	struct store s;
	struct journal_outcome o = { .relpath = "p/1K/x.txt", .state = PS_DONE, .key = "0123abcd",
				     .model = "gemini-3-pro-image", .error = NULL, .cost_usd = 0.134 };
	struct journal_outcome got;

	(void)state;
	open_store(&s);
	assert_int_equal(journal_outcome_get(&s, "p/1K/x.txt", &got), 0);
	assert_int_equal(journal_outcome_put(&s, &o), 0);
	o.relpath = "p/1K/y.txt";
	o.state = PS_FAILED;
	o.key = "";
	o.error = "quota";
	o.cost_usd = -1;
	assert_int_equal(journal_outcome_put(&s, &o), 0);
	store_close(&s);

	open_store(&s);
	assert_int_equal(journal_outcome_get(&s, "p/1K/x.txt", &got), 1);
	assert_int_equal(got.state, PS_DONE);
	assert_string_equal(got.key, "0123abcd");
	assert_string_equal(got.model, "gemini-3-pro-image");
	assert_null(got.error);
	assert_true(got.cost_usd > 0.1339 && got.cost_usd < 0.1341);
	journal_outcome_free(&got);
	assert_int_equal(journal_outcome_get(&s, "p/1K/y.txt", &got), 1);
	assert_int_equal(got.state, PS_FAILED);
	assert_null(got.key);
	assert_string_equal(got.error, "quota");
	assert_true(got.cost_usd < 0);
	journal_outcome_free(&got);
	/* put replaces; delete removes */
	o.state = PS_DONE;
	o.error = NULL;
	assert_int_equal(journal_outcome_put(&s, &o), 0);
	assert_int_equal(journal_outcome_get(&s, "p/1K/y.txt", &got), 1);
	assert_int_equal(got.state, PS_DONE);
	assert_null(got.error);
	journal_outcome_free(&got);
	assert_int_equal(journal_outcome_delete(&s, "p/1K/y.txt"), 0);
	assert_int_equal(journal_outcome_get(&s, "p/1K/y.txt", &got), 0);
	/* the state is kept as its word; a word this version does not know reads as no outcome */
	{
		struct store_val v = SV_TXT("p/1K/x.txt");

		assert_int_equal(store_sql(&s, "UPDATE outcomes SET status = 'refused' WHERE relpath = ?;", &v, 1,
					   NULL, NULL, NULL), 0);
		assert_int_equal(journal_outcome_get(&s, "p/1K/x.txt", &got), 0);
	}
	store_close(&s);
}

static int count_batches(const char *name, const char *st, const char *body, void *arg)
{
	(void)st; (void)body;
	assert_non_null(name);
	(*(int *)arg)++;
	return 0;
}

static void test_batch_state(void **state)
{
	struct store s;
	char *st = NULL, *body = NULL;
	int n = 0;

	(void)state;
	open_store(&s);
	assert_int_equal(journal_batch_get(&s, "batches/1", &st, &body), 0);
	assert_int_equal(journal_batch_put(&s, "batches/1", "JOB_STATE_PENDING", "{\"jobs\":[1]}"), 0);
	assert_int_equal(journal_batch_put(&s, "batches/2", "JOB_STATE_RUNNING", NULL), 0);
	/* state changes, body kept when NULL */
	assert_int_equal(journal_batch_put(&s, "batches/1", "JOB_STATE_SUCCEEDED", NULL), 0);
	store_close(&s);

	open_store(&s);
	assert_int_equal(journal_batch_get(&s, "batches/1", &st, &body), 1);
	assert_string_equal(st, "JOB_STATE_SUCCEEDED");
	assert_string_equal(body, "{\"jobs\":[1]}");
	free(st);
	free(body);
	assert_int_equal(journal_batch_foreach(&s, count_batches, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(journal_batch_delete(&s, "batches/1"), 0);
	assert_int_equal(journal_batch_get(&s, "batches/1", &st, &body), 0);
	assert_null(st);
	store_close(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_add_replace_pending_finish, setup, teardown),
		cmocka_unit_test_setup_teardown(test_survives_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch_state, setup, teardown),
		cmocka_unit_test_setup_teardown(test_outcomes_survive_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_upgrade_older_schema, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
