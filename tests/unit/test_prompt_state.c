/* test_prompt_state.c - the one name table of prompt states: words users see, and what each means. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "cache/prompt_state.h"

/* Every state has its own word, and the word names it again. */
static void test_every_name_round_trips(void **state)
{
	(void)state;
	for (int i = 0; i < PS_COUNT; i++) {
		enum prompt_state back = PS_COUNT;
		const char *name = prompt_state_name((enum prompt_state)i);

		assert_string_not_equal(name, "?");
		assert_int_equal(prompt_state_parse(name, &back), 0);
		assert_int_equal(back, i);
		for (int k = 0; k < i; k++)
			assert_string_not_equal(name, prompt_state_name((enum prompt_state)k));
	}
}

/* The words users already know (xattr, jobs file, bananactl) stay these. */
static void test_words_users_see(void **state)
{
	static const struct { enum prompt_state s; const char *word; } known[] = {
		{ PS_QUEUED, "queued" }, { PS_RUNNING, "running" }, { PS_WAITING_SLOT, "waiting-slot" },
		{ PS_WAITING_QUOTA, "waiting-quota" }, { PS_BATCH_PENDING, "batch-pending" },
		{ PS_DONE, "done" }, { PS_CACHED, "cached" }, { PS_DRY_RUN, "dry-run" },
		{ PS_FAILED, "failed" }, { PS_CANCELLED, "cancelled" },
	};

	(void)state;
	assert_int_equal(sizeof(known) / sizeof(known[0]), PS_COUNT);
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		assert_string_equal(prompt_state_name(known[i].s), known[i].word);
}

/* An unknown word is refused and leaves the out value alone; a value outside the enum has no word. */
static void test_unknown_word(void **state)
{
	static const char *const bad[] = { "", "Done", "done ", "refused", "waiting", "pending", "?" };
	enum prompt_state out = PS_CACHED;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(prompt_state_parse(bad[i], &out), -1);
		assert_int_equal(out, PS_CACHED);
	}
	assert_string_equal(prompt_state_name(PS_COUNT), "?");
	assert_string_equal(prompt_state_name((enum prompt_state)-1), "?");
	assert_false(prompt_state_unfinished(PS_COUNT));
	assert_int_equal(prompt_state_end(PS_COUNT), PS_END_NONE);
}

/* Unfinished while queued, running, waiting or pending; how the others end a bananactl wait. */
static void test_meanings(void **state)
{
	(void)state;
	for (int i = 0; i < PS_COUNT; i++) {
		enum prompt_state s = (enum prompt_state)i;
		bool unfinished = s == PS_QUEUED || s == PS_RUNNING || s == PS_WAITING_SLOT ||
				  s == PS_WAITING_QUOTA || s == PS_BATCH_PENDING;

		assert_int_equal(prompt_state_unfinished(s), unfinished);
		if (unfinished)
			assert_int_equal(prompt_state_end(s), PS_END_NONE);
	}
	assert_int_equal(prompt_state_end(PS_DONE), PS_END_OK);
	assert_int_equal(prompt_state_end(PS_CACHED), PS_END_OK);
	assert_int_equal(prompt_state_end(PS_DRY_RUN), PS_END_OK);
	assert_int_equal(prompt_state_end(PS_FAILED), PS_END_FAILED);
	assert_int_equal(prompt_state_end(PS_CANCELLED), PS_END_FAILED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_name_round_trips),
		cmocka_unit_test(test_words_users_see),
		cmocka_unit_test(test_unknown_word),
		cmocka_unit_test(test_meanings),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
