/*
 * route.h - one struct of operations per route file (standard.c,
 * generate.c, gateway.c, ...), picked in one place: route_ops_for().
 */
#ifndef BANANAFS_API_ROUTE_H
#define BANANAFS_API_ROUTE_H

#include <stdbool.h>

#include "api/http.h"
#include "api/request.h"

/* How a gateway is spoken to (config gateway_api; gemini-wire.md section 6). */
enum gateway_api {
	GATEWAY_API_NATIVE = 0,	/* {base}/v1beta/models/{m}:generateContent, Bearer */
	GATEWAY_API_IMAGES,	/* /v1/images/generations, /v1/images/edits with references */
	GATEWAY_API_CHAT,	/* /v1/chat/completions, modalities image+text */
};

/* "native", "images", "chat"; NULL for an out-of-range value.  Additive. */
const char *gateway_api_name(enum gateway_api a);
/* 0 and *out, or -1 for an unknown name.  Additive. */
int gateway_api_parse(const char *name, enum gateway_api *out);

/*
 * gateway_models parsed once: our model id -> the provider's name for it.
 * Built by gateway_map_parse, read-only afterwards (shared by threads).
 */
struct gateway_model_map;

/*
 * Parses "ours=theirs[,ours=theirs...]" (blanks around names ignored).
 * *out is NULL for an empty or NULL spec.  0, or -1 with a message in err.
 */
int gateway_map_parse(const char *spec, struct gateway_model_map **out, char *err, size_t errlen);
/* The provider's name for ours, or ours itself when unmapped (or m is NULL). */
const char *gateway_map_name(const struct gateway_model_map *m, const char *ours);
void gateway_map_free(struct gateway_model_map *m);

struct api_endpoint {
	const char *base_url;		/* "https://generativelanguage.googleapis.com" */
	const char *api_version;	/* "v1beta" or "v1" */
	const char *api_key;		/* secret: never logged */
	int bearer;			/* 1: Authorization: Bearer instead of x-goog-api-key */
	/* Gateways only (additive): */
	int gateway_api;		/* enum gateway_api; 0 = native */
	const struct gateway_model_map *models;	/* NULL: model ids are sent as they are */
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
/* The Interactions create request, plain or background (store true, background true). */
int standard_build_req(const struct api_endpoint *ep, const struct gen_request *rq, bool background,
		       struct http_req *out, char *err, size_t errlen);
extern const struct route_ops route_generate;	/* generate.c */
extern const struct route_ops route_gateway;	/* gateway.c: build follows ep->gateway_api,
						   parse tells the three answer shapes apart */
/* The gateway ops for one gateway_api (additive): build and parse of that API only. */
const struct route_ops *gateway_ops_for(enum gateway_api a);

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

/*
 * The one HTTP exchange every route uses (api_attempt, and the batch
 * route's create, upload, poll and download calls): performs req and
 * classifies the outcome into res - a transport failure (network, timeout,
 * refused endpoint, answer too big) or a non-2xx status through
 * errors_parse.  Returns true on a 2xx (resp holds the answer; res is
 * untouched but for http_status and request_id).  Server text in res never
 * holds ep's key.
 */
bool api_exchange(const struct http_opts *ho, const struct api_endpoint *ep, struct http_req *req,
		  struct http_resp *resp, struct gen_result *res);

/*
 * The checks of a made image, for every route: it decodes (image_check),
 * and it is about the size asked for.  Sets res->width/height; on failure
 * turns res into ERR_MALFORMED (the server made and billed it).  0 or -1.
 */
int api_check_image(const struct gen_request *rq, struct gen_result *res);

#endif
