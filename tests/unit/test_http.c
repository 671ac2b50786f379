/* test_http.c - the libcurl client against a tiny server on loopback, in-process. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api/http.h"
#include "api/image.h"
#include "api/route.h"
#include "tests/unit/imgmake.h"

/* Serves one connection: reads the request, answers with `reply` (after `delay_ms`). */
struct server {
	int fd;
	int port;
	const char *reply;
	size_t reply_len;
	int delay_ms;
	char request[65536];
	size_t request_len;
	pthread_t th;
};

static void *serve(void *arg)
{
	struct server *s = arg;
	int c = accept(s->fd, NULL, NULL);
	if (c < 0)
		return NULL;
	/* read headers, then Content-Length bytes of body */
	size_t want = SIZE_MAX;
	while (s->request_len < sizeof(s->request) - 1 && s->request_len < want) {
		ssize_t n = read(c, s->request + s->request_len, sizeof(s->request) - 1 - s->request_len);
		if (n <= 0)
			break;
		s->request_len += (size_t)n;
		s->request[s->request_len] = '\0';
		char *end = strstr(s->request, "\r\n\r\n");
		if (end && want == SIZE_MAX) {
			char *cl = strcasestr(s->request, "Content-Length:");
			want = (size_t)(end + 4 - s->request) + (cl && cl < end ? strtoul(cl + 15, NULL, 10) : 0);
		}
	}
	if (s->delay_ms)
		usleep((useconds_t)s->delay_ms * 1000);
	size_t off = 0;
	while (off < s->reply_len) {
		ssize_t n = write(c, s->reply + off, s->reply_len - off);
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	close(c);
	return NULL;
}

static void server_start(struct server *s, const char *reply, size_t len, int delay_ms)
{
	struct sockaddr_in a;
	socklen_t al = sizeof(a);
	memset(s, 0, sizeof(*s));
	s->reply = reply;
	s->reply_len = len;
	s->delay_ms = delay_ms;
	s->fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(s->fd >= 0);
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(s->fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(s->fd, 4), 0);
	assert_int_equal(getsockname(s->fd, (struct sockaddr *)&a, &al), 0);
	s->port = ntohs(a.sin_port);
	assert_int_equal(pthread_create(&s->th, NULL, serve, s), 0);
}

static void server_stop(struct server *s)
{
	pthread_join(s->th, NULL);
	close(s->fd);
}

static char *reply_json(long status, const char *extra_headers, const char *body)
{
	char *r;
	assert_true(asprintf(&r, "HTTP/1.1 %ld X\r\nContent-Type: application/json\r\n%s"
			     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
			     status, extra_headers, strlen(body), body) > 0);
	return r;
}

static void test_exchange_and_headers(void **state)
{
	(void)state;
	struct server s;
	char *reply = reply_json(200, "Retry-After: 12\r\nx-request-id: req-77\r\n"
				 "x-goog-upload-url: https://up.example/u?id=1\r\n", "{\"ok\":true}");
	server_start(&s, reply, strlen(reply), 0);

	struct http_req q;
	memset(&q, 0, sizeof(q));
	q.method = "POST";
	assert_true(asprintf(&q.url, "http://127.0.0.1:%d/v1beta/interactions", s.port) > 0);
	q.headers[0] = strdup("x-goog-api-key: SECRET");
	q.headers[1] = strdup("Content-Type: application/json");
	q.body = strdup("{\"model\":\"m\"}");
	q.body_len = strlen(q.body);
	struct http_opts o = { .connect_timeout_s = 2, .timeout_s = 5, .max_body = 1 << 20 };
	struct http_resp r;
	char err[256];
	assert_int_equal(http_perform(&o, &q, &r, err, sizeof(err)), HTTP_OK);
	server_stop(&s);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "{\"ok\":true}");
	assert_int_equal(r.len, 11);
	assert_true(r.retry_after_s == 12);
	assert_string_equal(r.request_id, "req-77");
	assert_string_equal(r.upload_url, "https://up.example/u?id=1");
	assert_non_null(strstr(s.request, "POST /v1beta/interactions HTTP/1.1"));
	assert_non_null(strstr(s.request, "x-goog-api-key: SECRET"));
	assert_non_null(strstr(s.request, "\r\n\r\n{\"model\":\"m\"}"));

	http_req_free(&q);
	assert_null(q.headers[0]);
	assert_null(q.url);
	http_resp_free(&r);
	free(reply);
}

static double wall_before_date(void *ctx)
{
	(void)ctx;
	return 1795600800.0 - 30;	/* 30 s before 2026-11-25T10:00:00Z */
}

/* A Retry-After date is counted from the injected clock's wall time. */
static void test_retry_after_date(void **state)
{
	const struct clock_ops fake = { .wall = wall_before_date };
	struct server s;
	char *reply = reply_json(429, "Retry-After: Wed, 25 Nov 2026 10:00:00 GMT\r\n", "{}");
	struct http_req q;
	struct http_opts o = { .connect_timeout_s = 2, .timeout_s = 5, .max_body = 1 << 20, .clk = &fake };
	struct http_resp r;
	char err[256];

	(void)state;
	server_start(&s, reply, strlen(reply), 0);
	memset(&q, 0, sizeof(q));
	q.method = "GET";
	assert_true(asprintf(&q.url, "http://127.0.0.1:%d/", s.port) > 0);
	assert_int_equal(http_perform(&o, &q, &r, err, sizeof(err)), HTTP_OK);
	server_stop(&s);
	assert_int_equal(r.status, 429);
	assert_true(r.retry_after_s > 29.999 && r.retry_after_s < 30.001);
	http_resp_free(&r);
	http_req_free(&q);
	free(reply);
}

static void test_too_big_and_redirect(void **state)
{
	(void)state;
	struct server s;
	char big[5000];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	char *reply = reply_json(200, "", big);
	server_start(&s, reply, strlen(reply), 0);
	struct http_req q;
	memset(&q, 0, sizeof(q));
	q.method = "GET";
	assert_true(asprintf(&q.url, "http://localhost:%d/", s.port) > 0);
	struct http_opts o = { .connect_timeout_s = 2, .timeout_s = 5, .max_body = 1000 };
	struct http_resp r;
	char err[256];
	assert_int_equal(http_perform(&o, &q, &r, err, sizeof(err)), HTTP_FAIL_TOO_BIG);
	assert_true(r.len <= 1000);
	server_stop(&s);
	http_resp_free(&r);
	http_req_free(&q);
	free(reply);

	/* a redirect is not followed */
	reply = reply_json(302, "Location: http://127.0.0.1:1/elsewhere\r\n", "");
	server_start(&s, reply, strlen(reply), 0);
	memset(&q, 0, sizeof(q));
	q.method = "GET";
	assert_true(asprintf(&q.url, "http://127.0.0.1:%d/", s.port) > 0);
	assert_int_equal(http_perform(&o, &q, &r, err, sizeof(err)), HTTP_OK);
	assert_int_equal(r.status, 302);
	assert_true(r.retry_after_s < 0);
	server_stop(&s);
	http_resp_free(&r);
	http_req_free(&q);
	free(reply);
}

static void test_timeout(void **state)
{
	(void)state;
	struct server s;
	char *reply = reply_json(200, "", "{}");
	server_start(&s, reply, strlen(reply), 800);
	struct http_req q;
	memset(&q, 0, sizeof(q));
	q.method = "GET";
	assert_true(asprintf(&q.url, "http://127.0.0.1:%d/", s.port) > 0);
	struct http_opts o = { .connect_timeout_s = 1, .timeout_s = 0.2, .max_body = 1000 };
	struct http_resp r;
	char err[256];
	assert_int_equal(http_perform(&o, &q, &r, err, sizeof(err)), HTTP_FAIL_TIMEOUT);
	assert_int_equal(r.status, 0);
	assert_true(err[0] != '\0');
	server_stop(&s);
	http_resp_free(&r);
	http_req_free(&q);
	free(reply);

	/* refused URL never connects */
	memset(&q, 0, sizeof(q));
	q.method = "GET";
	q.url = strdup("http://example.com/");
	assert_int_equal(http_perform(&o, &q, &r, err, sizeof(err)), HTTP_FAIL_URL);
	http_resp_free(&r);
	http_req_free(&q);
}

static void test_attempt_end_to_end(void **state)
{
	(void)state;
	struct server s;
	size_t plen;
	unsigned char *png = make_png(9, 4, &plen);
	char *b64 = base64_encode(png, plen);
	char *body;
	assert_true(asprintf(&body, "{\"candidates\":[{\"content\":{\"parts\":[{\"inlineData\":"
			     "{\"mimeType\":\"image/png\",\"data\":\"%s\"}}]},\"finishReason\":\"STOP\"}],"
			     "\"responseId\":\"rid-1\"}", b64) > 0);
	char *reply = reply_json(200, "", body);
	server_start(&s, reply, strlen(reply), 0);

	char base[64];
	snprintf(base, sizeof(base), "http://127.0.0.1:%d", s.port);
	struct api_endpoint ep = { base, "v1beta", "KEY", 0, 0, NULL };
	/* A model outside the pixel table: this test is about the wire, not the size check. */
	struct gen_request rq = { .model = "test-model-without-table", .size = "1K", .aspect = "1:1",
				  .prompt = "a cat", .prompt_len = 5, .n = 1, .index = 1,
				  .route = ROUTE_GENERATE };
	struct http_opts o = { .connect_timeout_s = 2, .timeout_s = 5, .max_body = 1 << 20 };
	struct gen_result res;
	memset(&res, 0, sizeof(res));
	api_attempt(&o, &ep, &rq, &res);
	server_stop(&s);
	assert_int_equal(res.cls, ERR_NONE);
	assert_int_equal(res.http_status, 200);
	assert_int_equal(res.width, 9);
	assert_int_equal(res.height, 4);
	assert_int_equal(res.image_len, plen);
	assert_memory_equal(res.image, png, plen);
	assert_string_equal(res.request_id, "rid-1");
	assert_non_null(strstr(s.request, "POST /v1beta/models/test-model-without-table:generateContent"));
	free(reply);

	/* a 429 with RetryInfo comes back classified */
	reply = reply_json(429, "x-request-id: r429\r\n",
			   "{\"error\":{\"code\":429,\"message\":\"slow\",\"status\":\"RESOURCE_EXHAUSTED\","
			   "\"details\":[{\"@type\":\"type.googleapis.com/google.rpc.RetryInfo\",\"retryDelay\":\"3s\"}]}}");
	server_start(&s, reply, strlen(reply), 0);
	snprintf(base, sizeof(base), "http://127.0.0.1:%d", s.port);
	api_attempt(&o, &ep, &rq, &res);
	server_stop(&s);
	assert_int_equal(res.cls, ERR_QUOTA_MINUTE);
	assert_int_equal(res.http_status, 429);
	assert_true(res.retry_after_s == 3);
	assert_string_equal(res.request_id, "r429");
	assert_null(res.image);
	gen_result_free(&res);
	free(reply);
	free(body);
	free(b64);
	free(png);
}

int main(void)
{
	assert_int_equal(http_global_init(), 0);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exchange_and_headers),
		cmocka_unit_test(test_too_big_and_redirect),
		cmocka_unit_test(test_retry_after_date),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_attempt_end_to_end),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	http_global_cleanup();
	return rc;
}
