/*
 * test_jobplan.c - the plan of a job as a pure function: which settings
 * win (header > folder > config), which combinations are refused before
 * anything is paid, and the candidates (requests, keys, output names).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/key.h"
#include "fs/jobplan.h"

struct fx {
	struct config cfg;
	struct folder_conf fc;
	struct prompt p;
	struct jobplan_in in;
	struct jobplan plan;
	struct failure why;
};

static int setup(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));

	assert_non_null(x);
	assert_int_equal(config_defaults(&x->cfg), 0);
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	struct fx *x = *state;

	prompt_free(&x->p);
	config_free(&x->cfg);
	free(x);
	return 0;
}

static void set(struct fx *x, const char *key, const char *value)
{
	char err[256];

	assert_int_equal(config_set(&x->cfg, key, value, err, sizeof(err)), 0);
}

/* Parses text as the prompt stem.txt in folder dir below model/size; returns jobplan_make's answer. */
static int plan(struct fx *x, const char *model, const char *size, const char *dir, const char *stem,
		const char *text)
{
	char err[256];

	prompt_free(&x->p);
	memset(&x->p, 0, sizeof(x->p));
	assert_int_equal(prompt_parse(text, strlen(text), &x->p, err, sizeof(err)), PROMPT_OK);
	x->in = (struct jobplan_in){
		.prompt = &x->p, .folder = &x->fc, .cfg = &x->cfg, .model = model, .size = size,
		.dir = dir, .stem = stem, .mount_len = strlen("/home/u/banana"),
	};
	return jobplan_make(&x->in, &x->plan, &x->why);
}

#define PRO "gemini-3-pro-image"
#define FLASH "gemini-3.1-flash-image"

/* Aspect and route: the prompt's header, else the folders' .bananafs.conf, else the config. */
static void test_precedence(void **state)
{
	struct fx *x = *state;

	set(x, "default_aspect", "4:3");
	set(x, "route", "flex");
	assert_int_equal(plan(x, PRO, "2K", "pro/2K", "fox", "a fox"), 0);
	assert_string_equal(x->plan.aspect, "4:3");
	assert_int_equal(x->plan.route, ROUTE_FLEX);

	snprintf(x->fc.aspect, sizeof(x->fc.aspect), "16:9");
	x->fc.route = ROUTE_BATCH;
	x->fc.route_set = true;
	assert_int_equal(plan(x, PRO, "2K", "pro/2K", "fox", "a fox"), 0);
	assert_string_equal(x->plan.aspect, "16:9");
	assert_int_equal(x->plan.route, ROUTE_BATCH);

	assert_int_equal(plan(x, PRO, "2K", "pro/2K", "fox", "---\naspect: 3:2\nroute: standard\n---\na fox"), 0);
	assert_string_equal(x->plan.aspect, "3:2");
	assert_int_equal(x->plan.route, ROUTE_STANDARD);

	/* one from each place */
	x->fc.route_set = false;
	x->fc.aspect[0] = '\0';
	assert_int_equal(plan(x, PRO, "2K", "pro/2K", "fox", "---\naspect: 9:16\n---\na fox"), 0);
	assert_string_equal(x->plan.aspect, "9:16");
	assert_int_equal(x->plan.route, ROUTE_FLEX);
}

/* Combinations the model or route cannot take are refused before any request, as the user's move. */
static void test_invalid_combinations_refused(void **state)
{
	static const struct { const char *model, *size, *text, *word; } bad[] = {
		{ PRO, "2K", "---\naspect: 1:4\n---\na tall fox", "1:4" },			/* wide aspects: Flash only */
		{ PRO, "2K", "---\nroute: batch\nsearch: yes\n---\ntoday's news", "batch" },
		{ "gemini-3.1-flash-lite-image", "1K", "---\nsearch: yes\n---\nnews", "search" },
	};
	struct fx *x = *state;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *text;

		assert_int_equal(plan(x, bad[i].model, bad[i].size, "d", "p", bad[i].text), -1);
		assert_int_equal(x->why.whose, WHOSE_USER);
		assert_false(x->why.exchanged);
		assert_string_equal(x->why.headline, "the prompt was not sent");
		assert_non_null(strstr(x->why.what, bad[i].word));
		text = failure_render(&x->why, FAILURE_FILE);
		assert_non_null(strstr(text, "next move: fix the prompt file"));
		free(text);
	}
	/* a system instruction through a gateway's images API */
	set(x, "gateway_api", "images");
	assert_int_equal(plan(x, PRO, "2K", "d", "p", "---\nroute: gateway\nsystem: be terse\n---\na fox"), -1);
	assert_non_null(strstr(x->why.what, "system"));
	/* the same on the native API is fine */
	set(x, "gateway_api", "native");
	assert_int_equal(plan(x, PRO, "2K", "d", "p", "---\nroute: gateway\nsystem: be terse\n---\na fox"), 0);
	/* the folder's route counts too: search on a folder of batch prompts */
	x->fc.route = ROUTE_BATCH;
	x->fc.route_set = true;
	assert_int_equal(plan(x, FLASH, "1K", "d", "p", "---\nsearch: yes\n---\nnews"), -1);
}

/* n = 1..4: one request per candidate, each its own key, and a candidate's key does not depend on n. */
static void test_candidates(void **state)
{
	struct fx *x = *state;
	struct cache_key keys[5][5];

	for (int n = 1; n <= 4; n++) {
		char text[64];

		snprintf(text, sizeof(text), "---\nn: %d\n---\na fox in snow", n);
		assert_int_equal(plan(x, PRO, "2K", "pro/2K", "fox", text), 0);
		assert_int_equal(x->plan.n, n);
		assert_int_equal(x->plan.nnames, n);
		for (int i = 1; i <= n; i++) {
			struct gen_request rq;

			jobplan_request(&x->plan, i, NULL, 0, "pro/2K/fox.txt", &rq);
			assert_int_equal(rq.index, i);
			assert_int_equal(rq.n, n);
			assert_string_equal(rq.model, PRO);
			assert_string_equal(rq.size, "2K");
			assert_string_equal(rq.aspect, "1:1");
			assert_string_equal(rq.prompt, "a fox in snow");
			assert_string_equal(rq.origin, "pro/2K/fox.txt");
			key_compute(&rq, &keys[n][i]);
			for (int k = 1; k < i; k++)
				assert_memory_not_equal(&keys[n][i], &keys[n][k], sizeof(keys[n][i]));
			if (n > 1 && i < n)
				assert_memory_equal(&keys[n][i], &keys[n - 1][i], sizeof(keys[n][i]));
		}
	}
}

/* Output names: NAME.png alone, NAME-i.png for n > 1, and every extension with output_format = original. */
static void test_output_names(void **state)
{
	struct fx *x = *state;
	char name[JOBPLAN_NAME_LEN];

	assert_int_equal(plan(x, PRO, "2K", "pro/2K", "fox", "a fox"), 0);
	assert_int_equal(x->plan.nnames, 1);
	assert_string_equal(x->plan.names[0], "fox.png");

	assert_int_equal(plan(x, PRO, "2K", "pro/2K", "fox", "---\nn: 3\n---\na fox"), 0);
	assert_int_equal(x->plan.nnames, 3);
	assert_string_equal(x->plan.names[0], "fox-1.png");
	assert_string_equal(x->plan.names[2], "fox-3.png");

	set(x, "output_format", "original");
	assert_int_equal(plan(x, PRO, "2K", "pro/2K", "fox", "---\nn: 2\n---\na fox"), 0);
	assert_int_equal(x->plan.nnames, 6);
	assert_string_equal(x->plan.names[0], "fox-1.png");
	assert_string_equal(x->plan.names[1], "fox-1.jpg");
	assert_string_equal(x->plan.names[2], "fox-1.webp");
	assert_string_equal(x->plan.names[5], "fox-2.webp");

	jobplan_output_name(name, sizeof(name), "fox", 1, 1, "jpg");
	assert_string_equal(name, "fox.jpg");
	jobplan_output_name(name, sizeof(name), "fox", 4, 4, "png");
	assert_string_equal(name, "fox-4.png");
}

/* A name or path too long for an output is refused before paying; the longest that fits is not. */
static void test_too_long_names(void **state)
{
	struct fx *x = *state;
	char stem[NAME_MAX + 1], dir[PATH_MAX];

	memset(stem, 'n', 251);		/* n...n.png: 255 bytes, the most a name holds */
	stem[251] = '\0';
	assert_int_equal(plan(x, PRO, "2K", "d", stem, "a fox"), 0);
	stem[250] = '\0';		/* n...n-1.png with n: 2: 256 */
	memset(stem, 'm', 250);
	assert_int_equal(plan(x, PRO, "2K", "d", stem, "---\nn: 2\n---\na fox"), -1);
	assert_int_equal(x->why.whose, WHOSE_USER);
	assert_non_null(strstr(x->why.what, "name is too long"));
	assert_non_null(strstr(x->why.next_move, "shorten the name"));
	assert_int_equal(plan(x, PRO, "2K", "d", stem, "a fox"), 0);	/* m...m.png fits */

	/* the path as the mount shows it: mount point + folder + name */
	memset(dir, 'd', sizeof(dir) - 1);
	dir[PATH_MAX - strlen("/home/u/banana") - 2 - strlen("fox.png")] = '\0';
	assert_int_equal(plan(x, PRO, "2K", dir, "fox", "a fox"), -1);
	assert_non_null(strstr(x->why.what, "path would be"));
	dir[strlen(dir) - 1] = '\0';
	assert_int_equal(plan(x, PRO, "2K", dir, "fox", "a fox"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_precedence, setup, teardown),
		cmocka_unit_test_setup_teardown(test_invalid_combinations_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_candidates, setup, teardown),
		cmocka_unit_test_setup_teardown(test_output_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_too_long_names, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
