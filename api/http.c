/*
 * http.c - the one libcurl client.
 *
 * One easy handle per thread (kept for connection reuse, reset before every
 * call, cleaned up when the thread ends).  TLS verification is always on,
 * redirects are off, plain http:// is refused unless the host is loopback,
 * and the answer is capped while it streams in: nothing beyond max_body is
 * ever buffered.  Request headers may hold the API key, so http_req_free
 * wipes them before freeing.
 */
#include "api/http.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <curl/curl.h>

#define HTTP_DEFAULT_MAX_BODY ((size_t)256 << 20)	/* when opts leave max_body at 0 */

static pthread_key_t handle_key;
static pthread_once_t handle_once = PTHREAD_ONCE_INIT;

static void handle_free(void *h)
{
	curl_easy_cleanup(h);
}

static void handle_key_make(void)
{
	pthread_key_create(&handle_key, handle_free);
}

static CURL *thread_handle(void)
{
	pthread_once(&handle_once, handle_key_make);
	CURL *h = pthread_getspecific(handle_key);
	if (h) {
		curl_easy_reset(h);
		return h;
	}
	h = curl_easy_init();
	if (h && pthread_setspecific(handle_key, h) != 0) {
		curl_easy_cleanup(h);
		return NULL;
	}
	return h;
}

int http_global_init(void)
{
	return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

void http_global_cleanup(void)
{
	/* this thread's handle must go before libcurl itself */
	pthread_once(&handle_once, handle_key_make);
	CURL *h = pthread_getspecific(handle_key);
	if (h) {
		curl_easy_cleanup(h);
		pthread_setspecific(handle_key, NULL);
	}
	curl_global_cleanup();
}

/* ---- answer memory ------------------------------------------------------ */

static pthread_mutex_t mem_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t mem_cv = PTHREAD_COND_INITIALIZER;
static size_t mem_budget;		/* 0 = no limit; set before threads start */
static size_t mem_held, mem_peak;	/* protected by mem_mu */

void http_set_answer_memory(size_t bytes)
{
	mem_budget = bytes;
}

static void memory_take(size_t want)
{
	pthread_mutex_lock(&mem_mu);
	while (mem_budget && mem_held > 0 && mem_held + want > mem_budget)
		pthread_cond_wait(&mem_cv, &mem_mu);	/* a release wakes us */
	mem_held += want;
	if (mem_held > mem_peak)
		mem_peak = mem_held;
	pthread_mutex_unlock(&mem_mu);
}

void http_memory_release(size_t bytes)
{
	if (!bytes)
		return;
	pthread_mutex_lock(&mem_mu);
	mem_held = bytes < mem_held ? mem_held - bytes : 0;
	pthread_cond_broadcast(&mem_cv);
	pthread_mutex_unlock(&mem_mu);
}

void http_memory_stats(size_t *held, size_t *peak)
{
	pthread_mutex_lock(&mem_mu);
	if (held)
		*held = mem_held;
	if (peak)
		*peak = mem_peak;
	pthread_mutex_unlock(&mem_mu);
}

/* ---- URL policy ------------------------------------------------------- */

static bool host_is_loopback(const char *host, size_t n)
{
	char h[64];
	unsigned char a[4];

	if (n == 0 || n >= sizeof(h))
		return false;
	memcpy(h, host, n);
	h[n] = '\0';
	if (strcasecmp(h, "localhost") == 0 || strcmp(h, "[::1]") == 0)
		return true;
	return inet_pton(AF_INET, h, a) == 1 && a[0] == 127;
}

int http_url_allowed(const char *url)
{
	const char *rest;
	bool https;

	if (!url)
		return 0;
	if (strncasecmp(url, "https://", 8) == 0) {
		rest = url + 8;
		https = true;
	} else if (strncasecmp(url, "http://", 7) == 0) {
		rest = url + 7;
		https = false;
	} else {
		return 0;
	}
	size_t auth = strcspn(rest, "/?#");
	if (auth == 0)
		return 0;
	/* userinfo would let "http://127.0.0.1@evil.example/" pass as loopback */
	if (memchr(rest, '@', auth))
		return 0;
	for (size_t i = 0; i < auth; i++)
		if (isspace((unsigned char)rest[i]) || iscntrl((unsigned char)rest[i]))
			return 0;
	if (https)
		return 1;
	size_t hostlen;
	if (rest[0] == '[') {
		const char *close = memchr(rest, ']', auth);
		if (!close)
			return 0;
		hostlen = (size_t)(close - rest) + 1;
	} else {
		const char *colon = memchr(rest, ':', auth);
		hostlen = colon ? (size_t)(colon - rest) : auth;
	}
	if (hostlen < auth && rest[hostlen] != ':')
		return 0;
	return host_is_loopback(rest, hostlen);
}

/* ---- callbacks -------------------------------------------------------- */

struct sink {
	struct http_resp *resp;
	const struct clock_ops *clk;	/* the wall time a Retry-After date is counted from */
	CURL *h;
	size_t cap;		/* allocated bytes of resp->body */
	size_t max;		/* answer cap */
	bool too_big;
	/* stall check (on_progress), from the answer's first byte on */
	double low_bps, low_s;	/* 0 = off */
	bool answering;		/* the status line arrived */
	double win_t0;		/* the current window: since when ... */
	curl_off_t win_dl0;	/* ... from how many bytes */
	bool stalled;
};

static double mono_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * An answer that stalls: fewer than low_bps bytes a second over a whole
 * window of low_s seconds, counted from the first byte of the answer.  The
 * wait before it is the model drawing (tens of seconds for a 4K image) and
 * only timeout_s bounds it; so libcurl's own low-speed limit, which counts
 * that wait too, is not used.
 */
static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	struct sink *s = arg;
	double t;

	(void)dltotal;
	(void)ultotal;
	(void)ulnow;
	if (!(s->low_bps > 0 && s->low_s > 0))
		return 0;
	t = mono_now();
	if (!s->answering) {
		long code = 0;
		curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &code);
		if (code <= 0 && dlnow == 0)
			return 0;
		s->answering = true;
		s->win_t0 = t;
		s->win_dl0 = dlnow;
		return 0;
	}
	if (t - s->win_t0 < s->low_s)
		return 0;
	if ((double)(dlnow - s->win_dl0) < s->low_bps * (t - s->win_t0)) {
		s->stalled = true;
		return 1;	/* CURLE_ABORTED_BY_CALLBACK */
	}
	s->win_t0 = t;
	s->win_dl0 = dlnow;
	return 0;
}

/*
 * Before the first byte is kept: the answer's memory is reserved (waiting
 * for room), and a known length is allocated at once, so the buffer is
 * never copied while it grows.
 */
static bool body_start(struct sink *s)
{
	struct http_resp *r = s->resp;
	curl_off_t cl = -1;
	size_t want;

	if (curl_easy_getinfo(s->h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl) != CURLE_OK)
		cl = -1;
	want = cl >= 0 && (size_t)cl <= s->max ? (size_t)cl + 1 : s->max + 1;
	memory_take(want);
	r->mem_held = want;
	s->win_t0 = mono_now();		/* waiting for memory is not the server stalling */
	s->win_dl0 = (curl_off_t)r->len;
	if (cl > 16384 && (size_t)cl <= s->max) {
		char *nb = realloc(r->body, (size_t)cl + 1);
		if (!nb)
			return false;
		r->body = nb;
		s->cap = (size_t)cl + 1;
	}
	return true;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct sink *s = arg;
	struct http_resp *r = s->resp;
	size_t n = size * nmemb;

	if (n > s->max - r->len) {
		s->too_big = true;
		return 0;	/* aborts the transfer: CURLE_WRITE_ERROR */
	}
	if (!r->mem_held && n > 0 && !body_start(s))
		return 0;
	if (r->len + n + 1 > s->cap) {
		size_t ncap = s->cap > 1 ? s->cap : 16384;
		while (ncap < r->len + n + 1)
			ncap *= 2;
		if (ncap > s->max + 1)
			ncap = s->max + 1;
		char *nb = realloc(r->body, ncap);
		if (!nb)
			return 0;
		r->body = nb;
		s->cap = ncap;
	}
	memcpy(r->body + r->len, data, n);
	r->len += n;
	r->body[r->len] = '\0';
	return n;
}

/* Copies a header value (trimmed) into dst; returns false when it does not fit. */
static bool header_value(const char *v, size_t n, char *dst, size_t dstlen)
{
	while (n && (*v == ' ' || *v == '\t')) {
		v++;
		n--;
	}
	while (n && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' ' || v[n - 1] == '\t'))
		n--;
	if (n >= dstlen)
		return false;
	memcpy(dst, v, n);
	dst[n] = '\0';
	return true;
}

static bool header_is(const char *line, size_t n, const char *name, const char **val, size_t *vlen)
{
	size_t k = strlen(name);
	if (n <= k || line[k] != ':' || strncasecmp(line, name, k) != 0)
		return false;
	*val = line + k + 1;
	*vlen = n - k - 1;
	return true;
}

static double parse_retry_after(const char *v, const struct clock_ops *clk)
{
	char *end;
	if (!*v)
		return -1;
	if (isdigit((unsigned char)*v)) {
		double s = strtod(v, &end);
		return (*end == '\0' && s >= 0) ? s : -1;
	}
	time_t t = curl_getdate(v, NULL);	/* HTTP date form */
	if (t < 0)
		return -1;
	double d = (double)t - clk->wall(clk->ctx);
	return d > 0 ? d : 0;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *arg)
{
	struct sink *sk = arg;
	struct http_resp *r = sk->resp;
	size_t n = size * nmemb;
	const char *v;
	size_t vlen;
	char buf[512];

	if (n >= 5 && strncmp(data, "HTTP/", 5) == 0) {
		/* a new response (after 100 Continue): forget the earlier one's headers */
		r->retry_after_s = -1;
		r->request_id[0] = '\0';
		r->upload_url[0] = '\0';
		r->location[0] = '\0';
		r->simulated = false;
	} else if (header_is(data, n, "location", &v, &vlen)) {
		if (!header_value(v, vlen, r->location, sizeof(r->location)))
			snprintf(r->location, sizeof(r->location), "(a location too long to show)");
	} else if (header_is(data, n, "x-bananafs-simulated", &v, &vlen)) {
		r->simulated = true;
	} else if (header_is(data, n, "retry-after", &v, &vlen)) {
		if (header_value(v, vlen, buf, sizeof(buf)))
			r->retry_after_s = parse_retry_after(buf, sk->clk);
	} else if (header_is(data, n, "x-request-id", &v, &vlen) ||
		   header_is(data, n, "x-goog-request-id", &v, &vlen)) {
		header_value(v, vlen, r->request_id, sizeof(r->request_id));
	} else if (header_is(data, n, "x-goog-upload-url", &v, &vlen)) {
		header_value(v, vlen, r->upload_url, sizeof(r->upload_url));
	}
	return n;
}

/* ---- perform ---------------------------------------------------------- */

static long to_ms(double s)
{
	return s > 0 ? (long)(s * 1000.0 + 0.5) : 0;
}

enum http_fail http_perform(const struct http_opts *o, const struct http_req *req,
			    struct http_resp *resp, char *errbuf, size_t errlen)
{
	char cerr[CURL_ERROR_SIZE] = "";
	struct curl_slist *hdrs = NULL;
	enum http_fail rc = HTTP_FAIL_TRANSFER;
	struct sink sink = { 0 };

	memset(resp, 0, sizeof(*resp));
	resp->retry_after_s = -1;
	resp->body = calloc(1, 1);	/* always a NUL-terminated body */
	if (errbuf && errlen)
		errbuf[0] = '\0';
	if (!resp->body) {
		snprintf(errbuf, errlen, "out of memory");
		return HTTP_FAIL_TRANSFER;
	}
	if (!req || !req->url || !http_url_allowed(req->url)) {
		snprintf(errbuf, errlen, "refused URL: only https://, or http:// to a loopback host");
		return HTTP_FAIL_URL;
	}
	CURL *h = thread_handle();
	if (!h) {
		snprintf(errbuf, errlen, "cannot create a libcurl handle");
		return HTTP_FAIL_TRANSFER;
	}
	sink.resp = resp;
	sink.clk = o && o->clk ? o->clk : &clock_real;
	sink.h = h;
	sink.cap = 1;
	sink.max = o && o->max_body ? o->max_body : HTTP_DEFAULT_MAX_BODY;
	sink.too_big = false;

	for (int i = 0; i < 8 && req->headers[i]; i++) {
		struct curl_slist *n = curl_slist_append(hdrs, req->headers[i]);
		if (!n)
			goto out_free_headers;
		hdrs = n;
	}
	struct curl_slist *n = curl_slist_append(hdrs, "Expect:");	/* no 100-continue wait */
	if (!n)
		goto out_free_headers;
	hdrs = n;

	curl_easy_setopt(h, CURLOPT_URL, req->url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");	/* gzip etc; the cap applies decoded */
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, &sink);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "bananafs/1");
	if (o) {
		curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, to_ms(o->connect_timeout_s));
		curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, to_ms(o->timeout_s));
		/* a stalled answer frees its slot instead of holding it until timeout_s */
		sink.low_bps = (double)o->low_speed_bps;
		sink.low_s = o->low_speed_time_s;
	}
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, &sink);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	const char *method = req->method ? req->method : "GET";
	if (strcmp(method, "POST") == 0) {
		curl_easy_setopt(h, CURLOPT_POST, 1L);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->body ? req->body : "");
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)(req->body ? req->body_len : 0));
	} else if (strcmp(method, "GET") == 0) {
		curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
	} else {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
		if (req->body) {
			curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->body);
			curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
		}
	}

	CURLcode cc = curl_easy_perform(h);
	long sent_bytes = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
	curl_easy_getinfo(h, CURLINFO_REQUEST_SIZE, &sent_bytes);
	resp->sent = sent_bytes > 0;
	if (cc == CURLE_OK) {
		rc = HTTP_OK;
	} else {
		const char *detail = cerr[0] ? cerr : curl_easy_strerror(cc);
		if (sink.stalled) {
			rc = HTTP_FAIL_TIMEOUT;
			snprintf(errbuf, errlen, "the answer stalled: under %ld bytes/s for %g s "
				 "(low_speed_limit, low_speed_time_s)", o->low_speed_bps, o->low_speed_time_s);
		} else if (sink.too_big) {
			rc = HTTP_FAIL_TOO_BIG;
			snprintf(errbuf, errlen, "the answer was larger than the %zu MiB cap (max_response_mb)",
				 sink.max >> 20);
		} else {
			switch (cc) {
			case CURLE_OPERATION_TIMEDOUT:
				rc = HTTP_FAIL_TIMEOUT;
				break;
			case CURLE_COULDNT_CONNECT:
			case CURLE_COULDNT_RESOLVE_HOST:
			case CURLE_COULDNT_RESOLVE_PROXY:
				rc = HTTP_FAIL_CONNECT;
				break;
			case CURLE_URL_MALFORMAT:
			case CURLE_UNSUPPORTED_PROTOCOL:
				rc = HTTP_FAIL_URL;
				break;
			default:
				rc = HTTP_FAIL_TRANSFER;
				break;
			}
			snprintf(errbuf, errlen, "%s", detail);
		}
		resp->status = rc == HTTP_FAIL_TOO_BIG ? resp->status : 0;
	}
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
out_free_headers:
	curl_slist_free_all(hdrs);
	if (rc == HTTP_FAIL_TRANSFER && errbuf && errlen && !errbuf[0])
		snprintf(errbuf, errlen, "out of memory building headers");
	return rc;
}

void http_req_free(struct http_req *req)
{
	if (!req)
		return;
	for (int i = 0; i < 8; i++) {
		if (req->headers[i]) {
			explicit_bzero(req->headers[i], strlen(req->headers[i]));
			free(req->headers[i]);
			req->headers[i] = NULL;
		}
	}
	if (req->url) {	/* a gateway may carry ?key= */
		explicit_bzero(req->url, strlen(req->url));
		free(req->url);
		req->url = NULL;
	}
	free(req->body);
	req->body = NULL;
	req->body_len = 0;
}

void http_resp_free(struct http_resp *resp)
{
	if (!resp)
		return;
	free(resp->body);
	resp->body = NULL;
	resp->len = 0;
	http_memory_release(resp->mem_held);
	resp->mem_held = 0;
}
