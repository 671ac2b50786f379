/* test_redact.c - server text never carries a key further (api/redact.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "api/redact.h"
#include "api/request.h"

static void expect(const char *in, const char *const *keys, const char *want)
{
	char *got = redact(in, keys);
	assert_non_null(got);
	assert_string_equal(got, want);
	free(got);
}

static void test_exact_key(void **state)
{
	(void)state;
	const char *keys[] = { "s3cret-key-123456", NULL };
	expect("bad key s3cret-key-123456, again s3cret-key-123456.", keys, "bad key [key], again [key].");
	const char *shorty[] = { "abc", NULL };	/* too short to replace blindly */
	expect("abcabc", shorty, "abcabc");
}

static void test_labels(void **state)
{
	(void)state;
	expect("Authorization: Bearer eyJhbGciOi.x-y_z", NULL, "Authorization: Bearer [key]");
	expect("header x-goog-api-key: abcdef0123 was sent", NULL, "header x-goog-api-key: [key] was sent");
	expect("{\"x-goog-api-key\":\"zz99zz99\"}", NULL, "{\"x-goog-api-key\":\"[key]\"}");
	expect("GET /v1beta/models?key=ABCDEF&alt=json", NULL, "GET /v1beta/models?key=[key]&alt=json");
	expect("a monkey=3 stays", NULL, "a monkey=3 stays");
	expect("the Bearer of news", NULL, "the Bearer [key] news");	/* over-redacting is safe */
}

static void test_google_shape(void **state)
{
	(void)state;
	/* split so that secret scanners find no key-shaped string in the source */
	expect("key AIza" "SyA1234567890abcdefghijklmnopqrstu is invalid", NULL, "key [key] is invalid");
	expect("AIzaShort stays", NULL, "AIzaShort stays");
}

static void test_registered_and_result(void **state)
{
	(void)state;
	static const char key[] = "registered-key-0000";
	struct gen_result r;
	memset(&r, 0, sizeof(r));
	redact_register_key(key);
	r.message = strdup("echo registered-key-0000");
	r.text = strdup("model says registered-key-0000");
	snprintf(r.request_id, sizeof(r.request_id), "req-registered-key-0000");
	redact_result(&r, NULL);
	assert_string_equal(r.message, "echo [key]");
	assert_string_equal(r.text, "model says [key]");
	assert_string_equal(r.request_id, "req-[key]");
	gen_result_free(&r);
	redact_forget_keys();
	expect("registered-key-0000", NULL, "registered-key-0000");
}

static void test_buf_truncates(void **state)
{
	(void)state;
	char b[12];
	snprintf(b, sizeof(b), "Bearer abcd");
	redact_buf(b, sizeof(b), NULL);
	assert_string_equal(b, "Bearer [key");	/* cut, never longer than the buffer */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exact_key),
		cmocka_unit_test(test_labels),
		cmocka_unit_test(test_google_shape),
		cmocka_unit_test(test_registered_and_result),
		cmocka_unit_test(test_buf_truncates),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
