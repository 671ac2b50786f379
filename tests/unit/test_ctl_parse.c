/*
 * test_ctl_parse.c - bananactl's pure helpers: sizes, dates, numbers, word
 * matching and the regen header rewrite.  parse.c is compiled in directly:
 * unit programs link only libbanana.a.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "tools/bananactl/parse.c"

static void
test_size(void **state)
{
	long long v;

	(void)state;
	assert_int_equal(parse_size("500M", &v), 0);
	assert_int_equal(v, 500LL << 20);
	assert_int_equal(parse_size("2G", &v), 0);
	assert_int_equal(v, 2LL << 30);
	assert_int_equal(parse_size("10K", &v), 0);
	assert_int_equal(v, 10240);
	assert_int_equal(parse_size("10k", &v), 0);
	assert_int_equal(v, 10240);
	assert_int_equal(parse_size("1MiB", &v), 0);
	assert_int_equal(v, 1 << 20);
	assert_int_equal(parse_size("123", &v), 0);
	assert_int_equal(v, 123);
	assert_int_equal(parse_size("0", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(parse_size("", &v), -1);
	assert_int_equal(parse_size("M", &v), -1);
	assert_int_equal(parse_size("-5M", &v), -1);
	assert_int_equal(parse_size("5Q", &v), -1);
	assert_int_equal(parse_size("5MM", &v), -1);
	assert_int_equal(parse_size("1.5G", &v), -1);
	assert_int_equal(parse_size("99999999999999999999", &v), -1);
	assert_int_equal(parse_size("9999999999T", &v), -1);
}

static void
test_date(void **state)
{
	(void)state;
	assert_int_equal(parse_date("2026-11-25"), 0);
	assert_int_equal(parse_date("2024-02-29"), 0);
	assert_int_equal(parse_date("2000-02-29"), 0);
	assert_int_equal(parse_date("2026-02-29"), -1);
	assert_int_equal(parse_date("1900-02-29"), -1);
	assert_int_equal(parse_date("2026-13-01"), -1);
	assert_int_equal(parse_date("2026-04-31"), -1);
	assert_int_equal(parse_date("2026-1-01"), -1);
	assert_int_equal(parse_date("2026/11/25"), -1);
	assert_int_equal(parse_date("2026-11-25T"), -1);
	assert_int_equal(parse_date("yesterday"), -1);
}

static void
test_num_seconds(void **state)
{
	long long v;
	const char *e;
	double d;

	(void)state;
	assert_int_equal(parse_num("30", 0, 100, &v, &e), 0);
	assert_int_equal(v, 30);
	assert_int_equal(parse_num("101", 0, 100, &v, &e), -1);
	assert_string_equal(e, "too large");
	assert_int_equal(parse_num("-1", 0, 100, &v, &e), -1);
	assert_string_equal(e, "too small");
	assert_int_equal(parse_num("3x", 0, 100, &v, &e), -1);
	assert_string_equal(e, "invalid");
	assert_int_equal(parse_num(" 3", 0, 100, &v, &e), -1);
	assert_int_equal(parse_seconds("0.5", &d), 0);
	assert_true(d > 0.49 && d < 0.51);
	assert_int_equal(parse_seconds("inf", &d), -1);
	assert_int_equal(parse_seconds("-1", &d), -1);
	assert_int_equal(parse_seconds("1e3", &d), -1);
	assert_int_equal(parse_seconds("", &d), -1);
}

static void
test_words(void **state)
{
	static const char *const w[] = { "status", "wait", "cost", "cache", "stats" };

	(void)state;
	assert_int_equal(word_match("wait", w, 5), 1);
	assert_int_equal(word_match("w", w, 5), 1);
	assert_int_equal(word_match("co", w, 5), 2);
	assert_int_equal(word_match("c", w, 5), -2);
	assert_int_equal(word_match("stat", w, 5), -2);
	assert_int_equal(word_match("stats", w, 5), 4);	/* exact beats prefix */
	assert_int_equal(word_match("status", w, 5), 0);
	assert_int_equal(word_match("x", w, 5), -1);
	assert_int_equal(word_match("", w, 5), -1);
	assert_int_equal(word_match("waiting", w, 5), -1);
}

/* Runs regen_rewrite on in and checks the result and variant. */
static void
rewrite_ok(const char *in, const char *want, int want_variant)
{
	char err[128] = "";
	size_t n;
	int v = -1;
	char *out = regen_rewrite(in, strlen(in), &n, &v, err, sizeof(err));

	assert_non_null(out);
	assert_int_equal(n, strlen(want));
	assert_memory_equal(out, want, n);
	assert_int_equal(v, want_variant);
	free(out);
}

static void
rewrite_fails(const char *in, const char *why)
{
	char err[128] = "";
	size_t n;
	int v;
	char *out = regen_rewrite(in, strlen(in), &n, &v, err, sizeof(err));

	assert_null(out);
	assert_non_null(strstr(err, why));
}

static void
test_regen(void **state)
{
	(void)state;
	rewrite_ok("a fox\n", "---\nvariant: 1\n---\na fox\n", 1);
	rewrite_ok("", "---\nvariant: 1\n---\n", 1);
	rewrite_ok("  lead and trail  ", "---\nvariant: 1\n---\n  lead and trail  ", 1);
	rewrite_ok("---\nvariant: 2\n---\nfox", "---\nvariant: 3\n---\nfox", 3);
	rewrite_ok("---\nvariant: 9  # again\n---\nfox", "---\nvariant: 10  # again\n---\nfox", 10);
	rewrite_ok("---\naspect: 16:9\nn: 2\n---\nfox\n", "---\naspect: 16:9\nn: 2\nvariant: 1\n---\nfox\n", 1);
	rewrite_ok("---\r\naspect: 4:3\r\n---\r\nfox\r\n", "---\r\naspect: 4:3\r\nvariant: 1\r\n---\r\nfox\r\n", 1);
	rewrite_ok("---\n  variant:0\n---\nx", "---\n  variant:1\n---\nx", 1);
	/* A comment mentioning variant is not the key. */
	rewrite_ok("---\n# variant: 5\n---\nx", "---\n# variant: 5\nvariant: 1\n---\nx", 1);
	/* The text below the header is never touched, even when it looks like a key. */
	rewrite_ok("---\nvariant: 1\n---\nvariant: 7\n", "---\nvariant: 2\n---\nvariant: 7\n", 2);
	/* A byte order mark stays first. */
	rewrite_ok("\xEF\xBB\xBFhi", "\xEF\xBB\xBF---\nvariant: 1\n---\nhi", 1);
	/* "---" without a newline is text, not a header. */
	rewrite_ok("---", "---\nvariant: 1\n---\n---", 1);
	rewrite_fails("---\naspect: 1:1\nfox\n", "closing");
	rewrite_fails("---\nvariant: two\n---\nx", "whole number");
	rewrite_fails("---\nvariant: 1\nvariant: 2\n---\nx", "twice");
	rewrite_fails("---\nvariant: 99999999999\n---\nx", "too large");
}

static void
test_fmt_bytes(void **state)
{
	char b[32];

	(void)state;
	fmt_bytes(512, b, sizeof(b));
	assert_string_equal(b, "512B");
	fmt_bytes(1536, b, sizeof(b));
	assert_string_equal(b, "1.5K");
	fmt_bytes(3LL << 30, b, sizeof(b));
	assert_string_equal(b, "3.0G");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_size),
		cmocka_unit_test(test_date),
		cmocka_unit_test(test_num_seconds),
		cmocka_unit_test(test_words),
		cmocka_unit_test(test_regen),
		cmocka_unit_test(test_fmt_bytes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
