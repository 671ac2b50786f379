/*
 * route.h - one struct of operations per route file (standard.c,
 * generate.c, gateway.c, ...), picked in one place: route_ops_for().
 */
#ifndef BANANAFS_API_ROUTE_H
#define BANANAFS_API_ROUTE_H

#include "api/http.h"
#include "api/request.h"

struct api_endpoint {
	const char *base_url;		/* "https://generativelanguage.googleapis.com" */
	const char *api_version;	/* "v1beta" or "v1" */
	const char *api_key;		/* secret: never logged */
	int bearer;			/* 1: Authorization: Bearer instead of x-goog-api-key */
};

struct route_ops {
	const char *name;
	/* Fills *out (url, headers, body).  Returns 0, or -1 with a message in err. */
	int (*build)(const struct api_endpoint *ep, const struct gen_request *rq,
		     struct http_req *out, char *err, size_t errlen);
	/*
	 * Parses a 2xx answer into *res: image bytes, mime, text, usage, ids.
	 * A 200 without an image sets res->cls (SAFETY / NO_IMAGE / MALFORMED).
	 * Non-2xx answers go to errors_parse() instead.
	 */
	void (*parse)(const struct http_resp *resp, struct gen_result *res);
};

extern const struct route_ops route_standard;	/* standard.c (flex: same with service_tier) */
extern const struct route_ops route_generate;	/* generate.c */
extern const struct route_ops route_gateway;	/* gateway.c */

/*
 * Parses an OpenAI-compatible chat-completions answer (gemini-wire.md 6.2):
 * a Markdown data URL in choices[0].message.content, content parts of type
 * image_url, or message.images[].image_url.url.  A hosted https:// image
 * only is ERR_MALFORMED (inline images only).  Additive to the lead's header.
 */
void gateway_parse_chat(const struct http_resp *resp, struct gen_result *res);

/* The ops for a route; NULL when the route has no synchronous ops (batch). */
const struct route_ops *route_ops_for(enum route r);

/*
 * One whole exchange: build, perform, then parse (2xx) or errors_parse
 * (other statuses / transport failures).  Fills *res, including width and
 * height after image_check().  Never retries: see api/retry.h.
 */
void api_attempt(const struct http_opts *ho, const struct api_endpoint *ep,
		 const struct gen_request *rq, struct gen_result *res);

#endif
