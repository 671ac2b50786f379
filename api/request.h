/*
 * request.h - one image request and its answer, as the core sees them.
 *
 * These two structs are the contract between the prompt parser (cache/prompt.c),
 * the cache key (cache/key.c), the routes (the api/ route files) and the fetch pipeline
 * (cache/fetch.c).  They hold no FUSE type and no secret.
 */
#ifndef BANANAFS_API_REQUEST_H
#define BANANAFS_API_REQUEST_H

#include <stdbool.h>
#include <stddef.h>

enum route {
	ROUTE_STANDARD = 0,	/* Interactions API, real time */
	ROUTE_GENERATE,		/* models/{m}:generateContent */
	ROUTE_FLEX,		/* Interactions API, service_tier "flex" */
	ROUTE_BATCH,		/* Batch API (gathered, polled) */
	ROUTE_GATEWAY,		/* OpenAI-compatible provider */
	ROUTE_COUNT
};

/* "standard", "generate", ...; NULL for an out-of-range value. */
const char *route_name(enum route r);
/* Returns 0 and sets *out, or -1 for an unknown name. */
int route_parse(const char *name, enum route *out);

/* A reference image sent for editing.  Bytes are borrowed, never owned. */
struct ref_image {
	const char *mime;		/* "image/png", "image/jpeg", ... */
	const unsigned char *data;
	size_t len;			/* bytes */
	unsigned char hash[16];		/* XXH3-128 of data, filled by prompt_load_inputs */
};

/*
 * Everything that changes the image, plus the route (which does not: see
 * cache/key.c).  All strings are borrowed for the lifetime of the request.
 */
struct gen_request {
	const char *model;		/* resolved model id, e.g. "gemini-3-pro-image" */
	const char *size;		/* "512", "1K", "2K", "4K" (uppercase K) */
	const char *aspect;		/* "1:1", "16:9", ... */
	const char *prompt;		/* normalised text: UTF-8, trimmed, line endings LF */
	size_t prompt_len;		/* bytes */
	/* The text with its line endings as written, when they were not LF
	 * (CRLF or CR): key format 1 hashed that.  NULL when equal to prompt. */
	const char *prompt_as_written;
	size_t prompt_as_written_len;	/* bytes */
	const struct ref_image *refs;
	int nrefs;
	int n;				/* candidate count asked for, >= 1; not in the key */
	int index;			/* which candidate this request is, 1..n */
	int variant;			/* 0 = default; enters the key */
	const char *system;		/* system instruction, or NULL; enters the key */
	bool search;			/* Google Search grounding tool; enters the key */
	enum route route;
	const char *origin;		/* the prompt's path below the mount, for the ledger; never sent */
};

/*
 * Who has to act, following DESIGN.md section 1's troubleshooting table.
 * Set by api/errors.c from the HTTP status and the error body.
 */
enum err_class {
	ERR_NONE = 0,
	ERR_CREDENTIALS,	/* 400 API_KEY_INVALID, 401: key rejected */
	ERR_PERMISSION,		/* 403 */
	ERR_QUOTA_MINUTE,	/* 429 per minute: wait as told */
	ERR_QUOTA_DAY,		/* 429 per day, quota_exceeded: stop */
	ERR_QUOTA_ZERO,		/* 429 with quota value 0: free tier / billing off */
	ERR_BILLING,		/* 402, prepaid credit gone */
	ERR_REQUEST,		/* other 400, 404, 413, ...: our request is wrong */
	ERR_SAFETY,		/* blocked prompt or image (blockReason, finishReason) */
	ERR_NO_IMAGE,		/* 200 with text only: the model chose not to draw */
	ERR_CAPACITY,		/* 500, 502, 503, 504: overloaded */
	ERR_NETWORK,		/* connect error, reset, timeout */
	ERR_MALFORMED,		/* answer not JSON, bad base64, bad image, too big */
	ERR_ENDPOINT,		/* a redirect: the endpoint setting is not the API's address */
	ERR_STORE,		/* a paid answer the store could not take (ENOSPC, EROFS, EIO): kept */
	ERR_COUNT
};

/* Short name ("credentials", "quota", ...) used in xattrs and the ledger. */
const char *err_class_name(enum err_class c);
/* True for the classes the retry policy may resend (quota-minute, capacity, network). */
bool err_class_transient(enum err_class c);

/*
 * One answer, successful or not.  Owned strings and buffers are freed by
 * gen_result_free(); a zeroed struct is a valid empty result.
 */
struct gen_result {
	long http_status;		/* 0 when no HTTP answer arrived */
	char api_status[64];		/* "RESOURCE_EXHAUSTED", "rate_limit_exceeded", ... */
	char request_id[128];		/* responseId, interaction id or x-request-id */
	char finish_reason[64];		/* finishReason / blockReason / interaction status */
	char quota_id[128];		/* QuotaFailure quotaId when present */
	long quota_value;		/* QuotaFailure quotaValue; -1 when absent */
	enum err_class cls;
	double retry_after_s;		/* RetryInfo.retryDelay or Retry-After; < 0 when absent */
	char *message;			/* error message from the server or our own; may be NULL */
	char *text;			/* text the model returned beside (or instead of) the image */
	unsigned char *image;		/* raw image bytes as sent (PNG, JPEG, WebP) */
	size_t image_len;		/* bytes */
	char mime[32];			/* "image/png", ... from the answer, checked against magic */
	int width, height;		/* pixels, read from the image header; 0 when unknown */
	long in_tokens, out_tokens, thought_tokens; /* usage as reported; -1 when absent.  out_tokens
					 * leaves thinking out (Google reports it apart) */
	long in_image_tokens, out_image_tokens;	/* the image part of in_tokens / out_tokens ... */
	bool in_by_modality, out_by_modality;	/* ... valid when the answer split them by modality */
	int search_queries;		/* Google Search queries the answer reports; 0 when none */
	unsigned char *lifted;		/* an image decoded out of the answer before parsing
					 * (wire_lift_image); wire_take_image takes it; owned */
	size_t lifted_len;
	size_t mem_held;		/* answer-memory bytes this result still holds (http.h) */
	bool paid_unusable;		/* a 2xx answer arrived whole or over the cap but cannot be
					 * used: the server billed it, we do not resend it */
	bool outcome_unknown;		/* sent, but no answer came back in time: the server
					   may have made (and billed) the image */
	char model_served[64];		/* the answer's model / modelVersion; "" when not said */
	bool simulated;			/* the bundled emulator answered: the spend is simulated */
};

void gen_result_free(struct gen_result *r);
/* Sets cls and a formatted message (replacing any earlier one). */
void gen_result_fail(struct gen_result *r, enum err_class cls, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
