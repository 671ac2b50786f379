/* test_failure.c - one failure struct, one renderer: each field's line is there exactly when the field is set. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/failure.h"

/* A failure with every field set. */
static void full(struct failure *f)
{
	failure_init(f, "generation failed for %s %s %s", "gemini-3-pro-image", "2K", "1:1");
	f->what = "the model is overloaded";
	f->whose = WHOSE_GOOGLE;
	failure_problem(f, "%s", "capacity or gateway");
	f->next_move = "run it again later";
	f->exchanged = true;
	f->http_status = 503;
	f->api_status = "UNAVAILABLE";
	f->request_id = "req-42";
	f->finish_reason = "OTHER";
	failure_note(f, "attempts: %d (the ledger shows each)", 3);
	f->model_said = "too busy";
}

static bool has(const char *text, const char *line)
{
	return strstr(text, line) != NULL;
}

static void test_every_field_in_order(void **state)
{
	struct failure f;
	char *t;

	(void)state;
	full(&f);
	t = failure_render(&f, FAILURE_FILE);
	assert_non_null(t);
	assert_string_equal(t,
		"bananafs: generation failed for gemini-3-pro-image 2K 1:1\n"
		"what happened: the model is overloaded\n"
		"HTTP status: 503   API status: UNAVAILABLE\n"
		"finish reason: OTHER\n"
		"request id: req-42\n"
		"whose problem: capacity or gateway\n"
		"whose move: Google's\n"
		"next move: run it again later\n"
		"attempts: 3 (the ledger shows each)\n"
		"model said: too busy\n");
	free(t);
	/* the line for the xattr and the jobs file: what happened */
	t = failure_render(&f, FAILURE_LINE);
	assert_string_equal(t, "the model is overloaded");
	free(t);
}

/* Only the headline: one line, and the xattr shows the headline. */
static void test_headline_only(void **state)
{
	struct failure f;
	char *t;

	(void)state;
	failure_init(&f, "empty prompt: nothing was sent and nothing was billed");
	t = failure_render(&f, FAILURE_FILE);
	assert_string_equal(t, "bananafs: empty prompt: nothing was sent and nothing was billed\n");
	free(t);
	t = failure_render(&f, FAILURE_LINE);
	assert_string_equal(t, "empty prompt: nothing was sent and nothing was billed");
	free(t);
}

/* Each optional field removed alone takes its line, and only its line, away. */
static void test_each_field_absent(void **state)
{
	static const struct { const char *gone; } cases[] = {
		{ "what happened: " }, { "finish reason: " }, { "whose problem: " }, { "whose move: " },
		{ "next move: " }, { "attempts: " }, { "model said: " },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct failure f;
		char *t;

		full(&f);
		switch (i) {
		case 0: f.what = NULL; break;
		case 1: f.finish_reason = ""; break;
		case 2: f.problem[0] = '\0'; break;
		case 3: f.whose = WHOSE_UNSAID; break;
		case 4: f.next_move = NULL; break;
		case 5: f.notes[0][0] = '\0'; break;
		case 6: f.model_said = ""; break;
		}
		t = failure_render(&f, FAILURE_FILE);
		assert_non_null(t);
		assert_false(has(t, cases[i].gone));
		for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++)
			if (k != i)
				assert_true(has(t, cases[k].gone));
		assert_true(has(t, "HTTP status: 503") && has(t, "request id: req-42"));
		free(t);
	}
}

/* A request that went out shows its status and id, "none" when missing; one that did not, neither line. */
static void test_exchange_lines(void **state)
{
	struct failure f;
	char *t;

	(void)state;
	full(&f);
	f.http_status = 0;
	f.api_status = NULL;
	f.request_id = "";
	t = failure_render(&f, FAILURE_FILE);
	assert_true(has(t, "HTTP status: none (no answer arrived)\n"));
	assert_true(has(t, "request id: none (the server gave none)\n"));
	free(t);

	full(&f);
	f.api_status = "";
	t = failure_render(&f, FAILURE_FILE);
	assert_true(has(t, "HTTP status: 503   API status: none\n"));
	free(t);

	full(&f);
	f.exchanged = false;
	t = failure_render(&f, FAILURE_FILE);
	assert_false(has(t, "HTTP status"));
	assert_false(has(t, "API status"));
	assert_false(has(t, "request id"));
	free(t);
}

/* Whose move, in words; and which request failures are whose. */
static void test_whose(void **state)
{
	static const struct { enum failure_whose w; const char *line; } words[] = {
		{ WHOSE_USER, "whose move: yours\n" }, { WHOSE_BANANAFS, "whose move: bananafs's\n" },
		{ WHOSE_GOOGLE, "whose move: Google's\n" }, { WHOSE_NETWORK, "whose move: the network's\n" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		struct failure f;
		char *t;

		failure_init(&f, "x");
		f.whose = words[i].w;
		t = failure_render(&f, FAILURE_FILE);
		assert_true(has(t, words[i].line));
		free(t);
	}
	assert_int_equal(failure_whose_of(ERR_NONE), WHOSE_UNSAID);
	assert_int_equal(failure_whose_of(ERR_CREDENTIALS), WHOSE_USER);
	assert_int_equal(failure_whose_of(ERR_QUOTA_DAY), WHOSE_USER);
	assert_int_equal(failure_whose_of(ERR_STORE), WHOSE_USER);
	assert_int_equal(failure_whose_of(ERR_CAPACITY), WHOSE_GOOGLE);
	assert_int_equal(failure_whose_of(ERR_MALFORMED), WHOSE_GOOGLE);
	assert_int_equal(failure_whose_of(ERR_NETWORK), WHOSE_NETWORK);
	for (int c = ERR_NONE + 1; c < ERR_COUNT; c++)
		assert_int_not_equal(failure_whose_of((enum err_class)c), WHOSE_UNSAID);
}

/* A key quoted by the server never reaches the file or the line; a newline never ends the line early. */
static void test_redacted_and_one_line(void **state)
{
	static const char key[] = "AIza" "SyA0123456789abcdefghijklmnopqrstuv";
	char what[256];
	struct failure f;
	char *t;

	(void)state;
	snprintf(what, sizeof(what), "API key %s not valid\nsecond line", key);
	failure_init(&f, "generation failed");
	f.what = what;
	f.model_said = key;
	t = failure_render(&f, FAILURE_FILE);
	assert_null(strstr(t, key));
	free(t);
	t = failure_render(&f, FAILURE_LINE);
	assert_null(strstr(t, key));
	assert_null(strchr(t, '\n'));
	assert_non_null(strstr(t, "not valid"));
	free(t);
}

/* Notes past the room are dropped; formatted what and next move live in the struct. */
static void test_notes_and_own_text(void **state)
{
	struct failure f;
	char *t;

	(void)state;
	failure_init(&f, "x");
	for (int i = 0; i < FAILURE_NOTES + 2; i++)
		failure_note(&f, "note %d", i);
	failure_what(&f, "no price for %s", "m");
	failure_next_move(&f, "set %s", "prices");
	t = failure_render(&f, FAILURE_FILE);
	assert_true(has(t, "note 0\n"));
	assert_true(has(t, "note 5\n"));
	assert_false(has(t, "note 6"));
	assert_true(has(t, "what happened: no price for m\n"));
	assert_true(has(t, "next move: set prices\n"));
	free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_field_in_order),
		cmocka_unit_test(test_headline_only),
		cmocka_unit_test(test_each_field_absent),
		cmocka_unit_test(test_exchange_lines),
		cmocka_unit_test(test_whose),
		cmocka_unit_test(test_redacted_and_one_line),
		cmocka_unit_test(test_notes_and_own_text),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
