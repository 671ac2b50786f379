/*
 * fuzz_route.h - shared body of the route harnesses: the input is one 2xx
 * answer body; it goes through a route's parse and, like api_attempt(),
 * any image it yields through image_check().
 */
#ifndef BANANAFS_FUZZ_ROUTE_H
#define BANANAFS_FUZZ_ROUTE_H

#include <stdlib.h>
#include <string.h>
#include "api/http.h"
#include "api/image.h"
#include "api/request.h"

typedef void (*fuzz_parse_fn)(const struct http_resp *resp, struct gen_result *res);

/* Parses data as a 200 body with parse; every byte of the input is untrusted. */
static inline void fuzz_route_one(fuzz_parse_fn parse, const unsigned char *data, size_t size)
{
	struct http_resp resp;
	struct gen_result res;

	memset(&resp, 0, sizeof(resp));
	resp.status = 200;
	resp.retry_after_s = -1;
	resp.body = malloc(size + 1);	/* exact size so ASan sees any overread */
	if (!resp.body)
		return;
	memcpy(resp.body, data, size);
	resp.body[size] = '\0';
	resp.len = size;

	memset(&res, 0, sizeof(res));
	res.quota_value = -1;
	res.retry_after_s = -1;
	res.in_tokens = res.out_tokens = res.thought_tokens = -1;
	parse(&resp, &res);
	if (res.cls == ERR_NONE && res.image) {
		char why[128];
		int w = 0, h = 0;
		(void)image_check(res.image, res.image_len, &w, &h, why, sizeof(why));
		(void)image_sniff(res.image, res.image_len);
	}
	gen_result_free(&res);
	free(resp.body);
}

#endif
