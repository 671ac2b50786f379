/*
 * http.h - the one libcurl client.  Every call is a fresh exchange on a
 * per-thread easy handle; TLS verification is always on and plain http:// is
 * refused unless the host is loopback.  Bodies are size-capped.
 */
#ifndef BANANAFS_API_HTTP_H
#define BANANAFS_API_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include "api/clock.h"

struct http_opts {
	double connect_timeout_s;	/* seconds; 0 = libcurl default */
	double timeout_s;		/* whole exchange, seconds */
	size_t max_body;		/* answer cap in bytes; above it the call fails */
	long low_speed_bps;		/* an answer slower than this (bytes/s) ... */
	double low_speed_time_s;	/* ... for this long is ended; 0 = off */
	const struct clock_ops *clk;	/* reads a Retry-After date; NULL: clock_real */
};

struct http_req {
	const char *method;		/* "GET", "POST", "DELETE" */
	char *url;			/* owned by whoever built it */
	char *headers[8];		/* "Name: value", NULL-terminated; owned; may hold the key */
	char *body;			/* owned; may be NULL */
	size_t body_len;
};

struct http_resp {
	long status;			/* HTTP status; 0 when no answer */
	char *body;			/* NUL-terminated, owned */
	size_t len;			/* bytes in body, without the NUL */
	double retry_after_s;		/* Retry-After header in seconds; < 0 when absent */
	char request_id[128];		/* x-request-id / x-goog-request-id header, if any */
	char upload_url[512];		/* x-goog-upload-url header, if any */
	char location[512];		/* Location header of a redirect (not followed), if any */
	bool sent;			/* the request left whole: the server may act on it */
	bool simulated;			/* X-Bananafs-Simulated: the bundled emulator answered, nobody bills */
	size_t mem_held;		/* answer-memory bytes reserved for body (released by free) */
};

enum http_fail {
	HTTP_OK = 0,
	HTTP_FAIL_URL,			/* bad URL, or http:// to a non-loopback host */
	HTTP_FAIL_CONNECT,		/* could not connect / resolve */
	HTTP_FAIL_TIMEOUT,
	HTTP_FAIL_TOO_BIG,		/* answer over max_body */
	HTTP_FAIL_TRANSFER,		/* reset mid-body and other transfer errors */
};

/* Call once from main before threads start; returns 0 or -1. */
int http_global_init(void);
void http_global_cleanup(void);

/*
 * Performs req.  Returns HTTP_OK when any HTTP answer arrived (whatever its
 * status); otherwise a failure code and a message in errbuf.  *resp is filled
 * either way and must be released with http_resp_free().
 */
enum http_fail http_perform(const struct http_opts *o, const struct http_req *req,
			    struct http_resp *resp, char *errbuf, size_t errlen);

/*
 * The mount-wide answer memory: bytes of answers held at once (0 = no
 * limit, the default).  Before the first body byte of an answer is kept,
 * its size (Content-Length, else max_body) is reserved; an answer waits
 * until the others leave room, but one always proceeds, so waiting never
 * deadlocks.  The reservation travels with the bytes (http_resp.mem_held,
 * then gen_result.mem_held when an image is lifted out) and ends with them.
 * Call http_set_answer_memory before threads start.
 */
void http_set_answer_memory(size_t bytes);
void http_memory_release(size_t bytes);
/* Bytes reserved now, and the most ever reserved at once (for tests and stats). */
void http_memory_stats(size_t *held, size_t *peak);

/* True for http://127.x, http://localhost, http://[::1], and every https:// URL. */
int http_url_allowed(const char *url);

void http_req_free(struct http_req *req);	/* wipes key headers before free */
void http_resp_free(struct http_resp *resp);

#endif
