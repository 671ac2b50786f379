/* test_errors.c - every error body shape of gemini-wire.md 4.1, and classification. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "api/errors.h"

/* Parses body as an answer with status st; res is returned for inspection. */
static void parse(long st, const char *body, double retry_hdr, struct gen_result *res)
{
	struct http_resp r;
	memset(&r, 0, sizeof(r));
	memset(res, 0, sizeof(*res));
	r.status = st;
	r.body = (char *)body;
	r.len = body ? strlen(body) : 0;
	r.retry_after_s = retry_hdr;
	snprintf(r.request_id, sizeof(r.request_id), "hdr-req-1");
	errors_parse(&r, res);
}

static const char quota_day[] =
	"{\"error\":{\"code\":429,"
	"\"message\":\"You exceeded your current quota, ... Please retry in 25.904293532s.\","
	"\"status\":\"RESOURCE_EXHAUSTED\",\"details\":["
	"{\"@type\":\"type.googleapis.com/google.rpc.Help\",\"links\":[{\"description\":\"d\",\"url\":\"u\"}]},"
	"{\"@type\":\"type.googleapis.com/google.rpc.QuotaFailure\",\"violations\":[{"
	"\"quotaMetric\":\"generativelanguage.googleapis.com/generate_content_free_tier_requests\","
	"\"quotaId\":\"GenerateRequestsPerDayPerProjectPerModel-FreeTier\","
	"\"quotaDimensions\":{\"location\":\"global\",\"model\":\"gemini-3.8-flash\"},"
	"\"quotaValue\":\"20\"}]},"
	"{\"@type\":\"type.googleapis.com/google.rpc.RetryInfo\",\"retryDelay\":\"18073s\"}]}}";

static void test_quota_day(void **state)
{
	(void)state;
	struct gen_result res;
	parse(429, quota_day, -1, &res);
	assert_int_equal(res.http_status, 429);
	assert_string_equal(res.api_status, "RESOURCE_EXHAUSTED");
	assert_string_equal(res.quota_id, "GenerateRequestsPerDayPerProjectPerModel-FreeTier");
	assert_int_equal(res.quota_value, 20);
	assert_true(res.retry_after_s > 18072.9 && res.retry_after_s < 18073.1);
	assert_int_equal(res.cls, ERR_QUOTA_DAY);
	assert_non_null(strstr(res.message, "exceeded your current quota"));
	assert_string_equal(res.request_id, "hdr-req-1");
	assert_false(err_class_transient(res.cls));
	gen_result_free(&res);
}

static void test_quota_minute_and_zero(void **state)
{
	(void)state;
	struct gen_result res;
	/* bare per-minute 429, delay only from the Retry-After header */
	parse(429, "{\"error\":{\"code\":429,\"message\":\"Resource has been exhausted (e.g. check quota).\","
		   "\"status\":\"RESOURCE_EXHAUSTED\"}}", 7, &res);
	assert_int_equal(res.cls, ERR_QUOTA_MINUTE);
	assert_int_equal(res.quota_value, -1);
	assert_true(res.retry_after_s == 7);
	assert_true(err_class_transient(res.cls));
	gen_result_free(&res);

	/* RetryInfo wins over the header */
	parse(429, "{\"error\":{\"code\":429,\"message\":\"m\",\"status\":\"RESOURCE_EXHAUSTED\","
		   "\"details\":[{\"@type\":\"type.googleapis.com/google.rpc.RetryInfo\",\"retryDelay\":\"0.5s\"}]}}",
	      30, &res);
	assert_true(res.retry_after_s == 0.5);
	gen_result_free(&res);

	/* quotaValue "0": the project has no quota for this model */
	parse(429, "{\"error\":{\"code\":429,\"message\":\"m\",\"status\":\"RESOURCE_EXHAUSTED\","
		   "\"details\":[{\"@type\":\"type.googleapis.com/google.rpc.QuotaFailure\",\"violations\":"
		   "[{\"quotaId\":\"GenerateRequestsPerMinutePerProjectPerModel-FreeTier\",\"quotaValue\":\"0\"}]}]}}",
	      -1, &res);
	assert_int_equal(res.quota_value, 0);
	assert_int_equal(res.cls, ERR_QUOTA_ZERO);
	assert_int_equal(res.retry_after_s, -1);
	gen_result_free(&res);

	/* a per-minute quotaId is still per-minute */
	parse(429, "{\"error\":{\"code\":429,\"message\":\"m\",\"status\":\"RESOURCE_EXHAUSTED\","
		   "\"details\":[{\"@type\":\"type.googleapis.com/google.rpc.QuotaFailure\",\"violations\":"
		   "[{\"quotaId\":\"GenerateRequestsPerMinutePerProjectPerModel\",\"quotaValue\":\"10\"}]}]}}",
	      -1, &res);
	assert_int_equal(res.cls, ERR_QUOTA_MINUTE);
	assert_int_equal(res.quota_value, 10);
	gen_result_free(&res);
}

static void test_invalid_key(void **state)
{
	(void)state;
	struct gen_result res;
	parse(400, "{\"error\":{\"code\":400,\"message\":\"API key not valid. Please pass a valid API key.\","
		   "\"status\":\"INVALID_ARGUMENT\",\"details\":[{\"@type\":\"type.googleapis.com/google.rpc.ErrorInfo\","
		   "\"reason\":\"API_KEY_INVALID\",\"domain\":\"googleapis.com\",\"metadata\":{\"service\":\"x\"}},"
		   "{\"@type\":\"type.googleapis.com/google.rpc.LocalizedMessage\",\"locale\":\"en-US\",\"message\":\"x\"}]}}",
	      -1, &res);
	assert_int_equal(res.cls, ERR_CREDENTIALS);
	assert_string_equal(res.api_status, "INVALID_ARGUMENT");
	gen_result_free(&res);

	/* reason alone (message worded otherwise) still means credentials */
	parse(400, "{\"error\":{\"code\":400,\"message\":\"Bad.\",\"status\":\"INVALID_ARGUMENT\","
		   "\"details\":[{\"@type\":\"type.googleapis.com/google.rpc.ErrorInfo\",\"reason\":\"API_KEY_INVALID\"}]}}",
	      -1, &res);
	assert_int_equal(res.cls, ERR_CREDENTIALS);
	gen_result_free(&res);

	/* expired key: message only */
	parse(400, "{\"error\":{\"code\":400,\"message\":\"API key expired. Please renew the API key.\","
		   "\"status\":\"INVALID_ARGUMENT\"}}", -1, &res);
	assert_int_equal(res.cls, ERR_CREDENTIALS);
	gen_result_free(&res);

	/* an ordinary bad request is the request's problem */
	parse(400, "{\"error\":{\"code\":400,\"message\":\"Image size 8K is not supported for this model\","
		   "\"status\":\"INVALID_ARGUMENT\"}}", -1, &res);
	assert_int_equal(res.cls, ERR_REQUEST);
	gen_result_free(&res);
}

static void test_array_wrapped_and_string_codes(void **state)
{
	(void)state;
	struct gen_result res;
	parse(400, "[{\"error\":{\"code\":400,\"message\":\"API key not valid. Please pass a valid API key.\","
		   "\"status\":\"INVALID_ARGUMENT\"}}]", -1, &res);
	assert_int_equal(res.cls, ERR_CREDENTIALS);
	assert_string_equal(res.message, "API key not valid. Please pass a valid API key.");
	gen_result_free(&res);

	parse(400, "{\"error\":{\"code\":\"invalid_request\",\"message\":\"The value 'x' is not supported for 'type' at 'tools[0]'.\"}}",
	      -1, &res);
	assert_string_equal(res.api_status, "invalid_request");
	assert_int_equal(res.cls, ERR_REQUEST);
	gen_result_free(&res);

	parse(429, "{\"error\":{\"code\":\"quota_exceeded\",\"message\":\"daily\"}}", -1, &res);
	assert_int_equal(res.cls, ERR_QUOTA_DAY);
	gen_result_free(&res);

	parse(429, "{\"error\":{\"code\":\"rate_limit_exceeded\",\"message\":\"slow down\"}}", -1, &res);
	assert_int_equal(res.cls, ERR_QUOTA_MINUTE);
	gen_result_free(&res);

	parse(401, "{\"error\":{\"code\":\"authentication\",\"message\":\"bad key\"}}", -1, &res);
	assert_int_equal(res.cls, ERR_CREDENTIALS);
	gen_result_free(&res);

	parse(402, "{\"error\":{\"code\":\"payment_required\",\"message\":\"no credit\"}}", -1, &res);
	assert_int_equal(res.cls, ERR_BILLING);
	gen_result_free(&res);
}

static void test_status_table(void **state)
{
	(void)state;
	struct gen_result res;
	static const struct { long st; const char *status; enum err_class cls; } rows[] = {
		{ 403, "PERMISSION_DENIED", ERR_PERMISSION },
		{ 404, "NOT_FOUND", ERR_REQUEST },
		{ 400, "FAILED_PRECONDITION", ERR_BILLING },
		{ 402, "RESOURCE_EXHAUSTED", ERR_BILLING },
		{ 401, "UNAUTHENTICATED", ERR_CREDENTIALS },
		{ 500, "INTERNAL", ERR_CAPACITY },
		{ 502, "BAD_GATEWAY", ERR_CAPACITY },
		{ 503, "UNAVAILABLE", ERR_CAPACITY },
		{ 504, "DEADLINE_EXCEEDED", ERR_CAPACITY },
		{ 413, "", ERR_REQUEST },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char body[256];
		snprintf(body, sizeof(body), "{\"error\":{\"code\":%ld,\"message\":\"m\",\"status\":\"%s\"}}",
			 rows[i].st, rows[i].status);
		parse(rows[i].st, body, -1, &res);
		if (res.cls != rows[i].cls)
			fail_msg("HTTP %ld %s: got %s", rows[i].st, rows[i].status, err_class_name(res.cls));
		gen_result_free(&res);
	}
}

static void test_non_json(void **state)
{
	(void)state;
	struct gen_result res;
	char html[600];
	snprintf(html, sizeof(html), "<html>\r\n<head><title>502 Bad Gateway</title></head>\n<body>%0400d</body></html>", 7);
	parse(502, html, -1, &res);
	assert_int_equal(res.cls, ERR_CAPACITY);
	assert_non_null(res.message);
	assert_int_equal(strlen(res.message), 200);
	assert_non_null(strstr(res.message, "502 Bad Gateway"));
	assert_null(strchr(res.message, '\n'));	/* control characters flattened */
	assert_string_equal(res.api_status, "");
	gen_result_free(&res);

	parse(503, "", 3, &res);
	assert_int_equal(res.cls, ERR_CAPACITY);
	assert_non_null(res.message);
	assert_true(res.retry_after_s == 3);
	gen_result_free(&res);

	parse(500, "{\"error\":", -1, &res);	/* broken JSON: kept as text */
	assert_string_equal(res.message, "{\"error\":");
	gen_result_free(&res);
}

static void test_duration(void **state)
{
	(void)state;
	assert_true(errors_parse_duration("25s") == 25);
	assert_true(errors_parse_duration("0.5s") == 0.5);
	assert_true(errors_parse_duration("18073s") == 18073);
	assert_true(errors_parse_duration("25.904293532s") > 25.9);
	assert_true(errors_parse_duration("25") < 0);
	assert_true(errors_parse_duration("s") < 0);
	assert_true(errors_parse_duration("") < 0);
	assert_true(errors_parse_duration("-3s") < 0);
	assert_true(errors_parse_duration("abc") < 0);
	assert_true(errors_parse_duration("5ss") < 0);
	assert_true(errors_parse_duration("5 s") < 0);
	assert_true(errors_parse_duration(NULL) < 0);

	/* garbage retryDelay is ignored: falls back to the header */
	struct gen_result res;
	parse(429, "{\"error\":{\"code\":429,\"message\":\"m\",\"status\":\"RESOURCE_EXHAUSTED\","
		   "\"details\":[{\"@type\":\"type.googleapis.com/google.rpc.RetryInfo\",\"retryDelay\":\"soon\"}]}}",
	      4, &res);
	assert_true(res.retry_after_s == 4);
	gen_result_free(&res);
}

static void test_words(void **state)
{
	(void)state;
	assert_string_equal(errors_next_move(ERR_CREDENTIALS),
			    "create or migrate the key, then retry the same request");
	assert_string_equal(errors_next_move(ERR_QUOTA_MINUTE),
			    "wait as told, lower max_inflight/rpm, or use route: batch");
	assert_string_equal(errors_next_move(ERR_QUOTA_DAY),
			    "stop retrying; raise the quota or wait for the daily reset");
	assert_non_null(strstr(errors_next_move(ERR_BILLING), "prepaid credit is used up"));
	assert_non_null(strstr(errors_next_move(ERR_BILLING), "does not reset daily"));
	assert_non_null(strstr(errors_next_move(ERR_QUOTA_ZERO), "enable billing"));
	assert_string_equal(errors_next_move(ERR_SAFETY), "rephrase the prompt; nothing was billed twice");
	assert_string_equal(errors_next_move(ERR_NO_IMAGE), errors_next_move(ERR_SAFETY));
	assert_non_null(strstr(errors_next_move(ERR_CAPACITY), "'bananactl run PATH' sends it again"));
	assert_string_equal(errors_next_move(ERR_MALFORMED),
			    "the server's answer was not a valid image; retry later");
	assert_string_equal(errors_whose(ERR_CREDENTIALS), "credentials");
	assert_string_equal(errors_whose(ERR_PERMISSION), "project or policy");
	for (int c = 0; c < ERR_COUNT; c++) {
		assert_non_null(errors_whose((enum err_class)c));
		assert_non_null(errors_next_move((enum err_class)c));
		assert_string_not_equal(err_class_name((enum err_class)c), "unknown");
	}
}

static void test_names(void **state)
{
	(void)state;
	enum route r;
	for (int i = 0; i < ROUTE_COUNT; i++) {
		assert_int_equal(route_parse(route_name((enum route)i), &r), 0);
		assert_int_equal(r, i);
	}
	assert_int_equal(route_parse("Standard", &r), -1);
	assert_int_equal(route_parse("", &r), -1);
	assert_null(route_name(ROUTE_COUNT));
	assert_true(err_class_transient(ERR_CAPACITY));
	assert_true(err_class_transient(ERR_NETWORK));
	assert_false(err_class_transient(ERR_SAFETY));
	assert_false(err_class_transient(ERR_QUOTA_ZERO));

	struct gen_result res;
	memset(&res, 0, sizeof(res));
	gen_result_fail(&res, ERR_NETWORK, "first %d", 1);
	gen_result_fail(&res, ERR_MALFORMED, "second %s", "x");
	assert_int_equal(res.cls, ERR_MALFORMED);
	assert_string_equal(res.message, "second x");
	gen_result_free(&res);
	gen_result_free(&res);	/* twice is safe */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_quota_day),
		cmocka_unit_test(test_quota_minute_and_zero),
		cmocka_unit_test(test_invalid_key),
		cmocka_unit_test(test_array_wrapped_and_string_codes),
		cmocka_unit_test(test_status_table),
		cmocka_unit_test(test_non_json),
		cmocka_unit_test(test_duration),
		cmocka_unit_test(test_words),
		cmocka_unit_test(test_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
