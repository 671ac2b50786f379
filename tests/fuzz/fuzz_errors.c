/*
 * fuzz_errors.c - errors_parse on a non-2xx answer.  The first input byte
 * picks the HTTP status (from a list of the ones Google sends) and whether a
 * Retry-After header was present; the rest is the body.
 */
#include <stdlib.h>
#include <string.h>
#include "api/errors.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static const long statuses[] = { 400, 401, 402, 403, 404, 413, 429, 500, 502, 503, 504, 0, 418, 499 };

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	struct http_resp resp;
	struct gen_result res;
	unsigned char pick = size ? data[0] : 0;

	if (size) {
		data++;
		size--;
	}
	memset(&resp, 0, sizeof(resp));
	resp.status = statuses[pick % (sizeof(statuses) / sizeof(statuses[0]))];
	resp.retry_after_s = (pick & 0x80) ? (double)(pick & 0x3f) : -1;
	resp.body = malloc(size + 1);
	if (!resp.body)
		return 0;
	memcpy(resp.body, data, size);
	resp.body[size] = '\0';
	resp.len = size;

	memset(&res, 0, sizeof(res));
	res.quota_value = -1;
	res.retry_after_s = -1;
	errors_parse(&resp, &res);
	(void)errors_classify(&res);
	(void)errors_whose(res.cls);
	(void)errors_next_move(res.cls);
	(void)err_class_name(res.cls);

	/* the duration parser also sees raw strings straight from the server */
	(void)errors_parse_duration(resp.body);

	gen_result_free(&res);
	free(resp.body);
	return 0;
}
