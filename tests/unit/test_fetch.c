/*
 * test_fetch.c - the never-pay-twice pipeline against a real local HTTP
 * answer: a tiny in-process server on 127.0.0.1:0 (plain sockets, one
 * thread) plays a script of canned Interactions answers.  The clock is
 * fake, so no test sleeps for a back-off.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <netinet/in.h>
#include <png.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/http.h"
#include "api/image.h"
#include "api/prices.h"
#include "api/rates.h"
#include "cache/fetch.h"
#include "cache/journal.h"
#include "cache/key.h"

/* Shaped like a Google key (split so that secret scanners see no key in the source). */
#define API_KEY "AIza" "SyTEST-key-that-must-never-be-written-0123"

/* --- fake clock ------------------------------------------------------------ */

struct fake_clock {
	pthread_mutex_t mu;
	double t;		/* seconds */
	double slept;		/* total asked to sleep */
	double wall0;		/* wall time at t == 0 (today, so "spent today" means today) */
};

static double fc_now(void *ctx)
{
	struct fake_clock *c = ctx;
	double t;

	pthread_mutex_lock(&c->mu);
	t = c->t;
	pthread_mutex_unlock(&c->mu);
	return t;
}

static void fc_sleep(void *ctx, double s)
{
	struct fake_clock *c = ctx;

	pthread_mutex_lock(&c->mu);
	if (s > 0) {
		c->t += s;
		c->slept += s;
	}
	pthread_mutex_unlock(&c->mu);
}

static double fc_random(void *ctx)
{
	(void)ctx;
	return 0.5;
}

static double fc_wall(void *ctx)
{
	struct fake_clock *c = ctx;

	return c->wall0 + fc_now(ctx);
}

/* --- the tiny HTTP server -------------------------------------------------- */

struct canned {
	int status;
	const char *body;	/* NULL: the image answer */
};

#define MAX_SCRIPT 16

struct server {
	int fd;
	int port;
	pthread_t th;
	pthread_mutex_t mu;
	struct canned script[MAX_SCRIPT];
	int nscript;
	int requests;		/* protected by mu */
	int delay_ms;		/* before answering, so concurrent callers pile up */
	char last_path[256];
	char last_key_header[256];
	char *image_body;	/* the 200 answer with a PNG */
	void (*before)(int idx);	/* run before answering request idx (another machine's move) */
};

static struct server srv;

/* A real 1024x1024 PNG (the 1K 1:1 size the client checks for), made with libpng. */
static unsigned char *make_png(size_t *len)
{
	enum { SIDE = 1024 };
	png_image img;
	unsigned char *px = malloc(SIDE * SIDE * 3);
	png_alloc_size_t n = 0;
	unsigned char *buf;
	int i;

	assert_non_null(px);
	for (i = 0; i < SIDE * SIDE * 3; i++)
		px[i] = (unsigned char)(i * 7);
	memset(&img, 0, sizeof(img));
	img.version = PNG_IMAGE_VERSION;
	img.width = SIDE;
	img.height = SIDE;
	img.format = PNG_FORMAT_RGB;
	assert_true(png_image_write_to_memory(&img, NULL, &n, 0, px, 0, NULL));
	buf = malloc(n);
	assert_non_null(buf);
	assert_true(png_image_write_to_memory(&img, buf, &n, 0, px, 0, NULL));
	free(px);
	*len = n;
	return buf;
}

static char *image_answer(void)
{
	size_t len;
	unsigned char *png = make_png(&len);
	char *b64 = base64_encode(png, len);
	char *body = NULL;

	assert_non_null(b64);
	assert_true(asprintf(&body,
			     "{\"id\":\"int-42\",\"status\":\"completed\","
			     "\"steps\":[{\"type\":\"thought\",\"signature\":\"x\"},"
			     "{\"type\":\"model_output\",\"content\":["
			     "{\"type\":\"text\",\"text\":\"Here is your fox.\"},"
			     "{\"type\":\"image\",\"mime_type\":\"image/png\",\"data\":\"%s\"}]}],"
			     "\"usage\":{\"total_input_tokens\":10,\"total_output_tokens\":1120}}",
			     b64) > 0);
	free(b64);
	free(png);
	return body;
}

static const char ANSWER_429[] =
	"{\"error\":{\"code\":429,\"message\":\"Resource has been exhausted (e.g. check quota).\","
	"\"status\":\"RESOURCE_EXHAUSTED\",\"details\":[{\"@type\":"
	"\"type.googleapis.com/google.rpc.RetryInfo\",\"retryDelay\":\"7s\"}]}}";
static const char ANSWER_503[] =
	"{\"error\":{\"code\":503,\"message\":\"The model is overloaded. Please try again later.\","
	"\"status\":\"UNAVAILABLE\"}}";
static const char ANSWER_400[] =
	"{\"error\":{\"code\":400,\"message\":\"Unsupported image size.\",\"status\":\"INVALID_ARGUMENT\"}}";

static void script(int n, ...)
{
	va_list ap;
	int i;

	va_start(ap, n);
	pthread_mutex_lock(&srv.mu);
	for (i = 0; i < n && i < MAX_SCRIPT; i++) {
		srv.script[i].status = va_arg(ap, int);
		srv.script[i].body = va_arg(ap, const char *);
	}
	srv.nscript = i;
	pthread_mutex_unlock(&srv.mu);
	va_end(ap);
}

static int requests(void)
{
	int n;

	pthread_mutex_lock(&srv.mu);
	n = srv.requests;
	pthread_mutex_unlock(&srv.mu);
	return n;
}

static int send_all(int fd, const char *b, size_t len)
{
	while (len) {
		ssize_t n = send(fd, b, len, MSG_NOSIGNAL);

		if (n <= 0)
			return -1;
		b += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reads one request (headers and Content-Length body) and answers it. */
static void serve_one(int c)
{
	char *buf = NULL, *hdr_end, *p;
	size_t cap = 0, len = 0, want;
	long clen = 0;
	struct canned ans;
	const char *body;
	char head[256];
	int idx;

	for (;;) {
		ssize_t n;

		if (len + 4096 + 1 > cap) {
			cap = (len + 4096 + 1) * 2;
			buf = realloc(buf, cap);
			if (!buf)
				return;
		}
		n = recv(c, buf + len, cap - len - 1, 0);
		if (n <= 0)
			goto out;
		len += (size_t)n;
		buf[len] = '\0';
		hdr_end = strstr(buf, "\r\n\r\n");
		if (!hdr_end)
			continue;
		p = strcasestr(buf, "\r\nContent-Length:");
		clen = p && p < hdr_end ? strtol(p + 17, NULL, 10) : 0;
		if (strcasestr(buf, "\r\nExpect: 100-continue") && len == (size_t)(hdr_end + 4 - buf))
			send_all(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
		want = (size_t)(hdr_end + 4 - buf) + (size_t)clen;
		if (len >= want)
			break;
	}

	pthread_mutex_lock(&srv.mu);
	idx = srv.requests++;
	ans = srv.script[idx < srv.nscript ? idx : srv.nscript - 1];
	p = strchr(buf, ' ');
	if (p)
		sscanf(p + 1, "%255s", srv.last_path);
	p = strcasestr(buf, "\r\nx-goog-api-key:");
	if (p)
		sscanf(p + 17, " %255[^\r]", srv.last_key_header);
	pthread_mutex_unlock(&srv.mu);

	if (srv.delay_ms)
		usleep((useconds_t)srv.delay_ms * 1000);
	if (srv.before)
		srv.before(idx);
	body = ans.body ? ans.body : srv.image_body;
	snprintf(head, sizeof(head), "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
		 "Content-Length: %zu\r\nx-request-id: req-%d\r\nConnection: close\r\n\r\n",
		 ans.status, strlen(body), idx + 1);
	if (send_all(c, head, strlen(head)) == 0)
		send_all(c, body, strlen(body));
out:
	free(buf);
}

static void *server_main(void *arg)
{
	(void)arg;
	for (;;) {
		int c = accept(srv.fd, NULL, NULL);

		if (c < 0) {
			if (errno == EINTR)
				continue;
			return NULL;	/* shut down */
		}
		serve_one(c);
		close(c);
	}
}

static void server_start(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);

	srv.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(srv.fd >= 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(srv.fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(srv.fd, 64), 0);
	assert_int_equal(getsockname(srv.fd, (struct sockaddr *)&a, &alen), 0);
	srv.port = ntohs(a.sin_port);
	assert_int_equal(pthread_create(&srv.th, NULL, server_main, NULL), 0);
}

static void server_stop(void)
{
	shutdown(srv.fd, SHUT_RDWR);
	close(srv.fd);
	pthread_join(srv.th, NULL);
}

/* --- fixture --------------------------------------------------------------- */

struct fx {
	char dir[64];
	struct config cfg;
	struct store store;
	struct fetch_ctx f;
	struct fake_clock clk_state;
	struct clock_ops clk;
	bool opened;
};

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb; (void)flag; (void)ftw;
	return remove(p);
}

static int setup(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));
	char err[512], url[64];

	assert_non_null(x);
	snprintf(x->dir, sizeof(x->dir), "/tmp/bananafs-fetch-XXXXXX");
	assert_non_null(mkdtemp(x->dir));
	assert_int_equal(config_defaults(&x->cfg), 0);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", srv.port);
	free(x->cfg.endpoint);
	x->cfg.endpoint = strdup(url);
	x->cfg.api_key = strdup(API_KEY);
	x->cfg.retries = 3;
	x->cfg.timeout_s = 10;
	x->cfg.connect_timeout_s = 5;
	/* The stub speaks one exchange per request; background interactions are
	 * tested in test_background.c and tests/mount/test_durable.py. */
	x->cfg.durable_requests = false;
	pthread_mutex_init(&x->clk_state.mu, NULL);
	x->clk_state.t = 1000;
	x->clk_state.wall0 = (double)time(NULL) - 1000;
	x->clk = (struct clock_ops){ .now = fc_now, .sleep = fc_sleep, .random = fc_random,
				     .wall = fc_wall, .ctx = &x->clk_state };
	assert_int_equal(store_open(&x->store, x->dir, err, sizeof(err)), 0);

	pthread_mutex_lock(&srv.mu);
	srv.requests = 0;
	srv.delay_ms = 0;
	srv.before = NULL;
	srv.last_path[0] = srv.last_key_header[0] = '\0';
	pthread_mutex_unlock(&srv.mu);
	script(1, 200, NULL);
	*state = x;
	return 0;
}

/* Opens the pipeline after the test adjusted the config. */
static void open_fetch(struct fx *x)
{
	char err[512] = "";

	assert_int_equal(fetch_open(&x->f, &x->cfg, &x->store, &x->clk, err, sizeof(err)), 0);
	x->opened = true;
}

static int teardown(void **state)
{
	struct fx *x = *state;

	if (x->opened)
		fetch_close(&x->f);
	store_close(&x->store);
	config_free(&x->cfg);
	nftw(x->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(x);
	return 0;
}

static struct gen_request request(const char *model, const char *size, const char *prompt)
{
	struct gen_request rq = {
		.model = model, .size = size, .aspect = "1:1", .prompt = prompt,
		.prompt_len = strlen(prompt), .n = 1, .index = 1, .route = ROUTE_STANDARD,
	};
	return rq;
}

/* The ledger as parsed lines. */
struct lines {
	cJSON *l[64];
	int n;
	char raw[65536];
};

static void read_ledger(struct fx *x, struct lines *ls)
{
	char path[128];
	FILE *fp;
	char *buf = NULL;
	size_t cap = 0;
	ssize_t n;

	memset(ls, 0, sizeof(*ls));
	snprintf(path, sizeof(path), "%s/ledger.jsonl", x->store.dir);
	fp = fopen(path, "r");
	assert_non_null(fp);
	while ((n = getline(&buf, &cap, fp)) > 0 && ls->n < 64) {
		strncat(ls->raw, buf, sizeof(ls->raw) - strlen(ls->raw) - 1);
		ls->l[ls->n] = cJSON_Parse(buf);
		assert_non_null(ls->l[ls->n]);
		ls->n++;
	}
	free(buf);
	fclose(fp);
}

static void free_ledger(struct lines *ls)
{
	for (int i = 0; i < ls->n; i++)
		cJSON_Delete(ls->l[i]);
}

static const char *str_of(cJSON *o, const char *k)
{
	cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int count_outcome(struct lines *ls, const char *outcome)
{
	int i, n = 0;

	for (i = 0; i < ls->n; i++) {
		const char *o = str_of(ls->l[i], "outcome");
		if (o && strcmp(o, outcome) == 0)
			n++;
	}
	return n;
}

static bool file_has(const char *path, const char *needle)
{
	FILE *fp = fopen(path, "rb");
	static char buf[1 << 16];
	size_t n;

	if (!fp)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	return memmem(buf, n, needle, strlen(needle)) != NULL;
}

/* --- status callback ------------------------------------------------------- */

struct statuses {
	pthread_mutex_t mu;
	int running, waiting;
	time_t retry_at;	/* the last one said with PS_WAITING_QUOTA */
};

static int on_status(void *arg, enum prompt_state s, time_t retry_at)
{
	struct statuses *st = arg;

	pthread_mutex_lock(&st->mu);
	if (s == PS_RUNNING)
		st->running++;
	else if (s == PS_WAITING_QUOTA) {
		st->waiting++;
		st->retry_at = retry_at;
	} else
		assert_int_equal(retry_at, 0);
	pthread_mutex_unlock(&st->mu);
	return 0;
}

/* A caller whose prompt was rewritten while the request waited for a slot. */
static int superseded(void *arg, enum prompt_state s, time_t retry_at)
{
	(void)arg;
	(void)retry_at;
	return s == PS_RUNNING;
}

/* NAME.error's text for an outcome, as fs/jobs.c renders it. */
static char *render_failure(const struct fetch_outcome *out, const struct gen_request *rq)
{
	struct failure f;

	fetch_failure(out, rq, &f);
	return failure_render(&f, FAILURE_FILE);
}

/* --- tests ----------------------------------------------------------------- */

static void test_second_fetch_is_cache_hit(void **state)
{
	struct fx *x = *state;
	struct gen_request rq = request("gemini-3.1-flash-image", "1K", "a red fox in snow");
	struct fetch_outcome out;
	struct fetch_stats st;
	struct lines ls;
	char first_path[4096];

	open_fetch(x);
	assert_int_equal(fetch_image(&x->f, &rq, "job-1", NULL, NULL, NULL, &out), FETCH_OK);
	assert_int_equal(out.source, SRC_GENERATED);
	assert_int_equal(out.attempts, 1);
	assert_int_equal(requests(), 1);
	assert_string_equal(srv.last_path, "/v1beta/interactions");
	assert_string_equal(srv.last_key_header, API_KEY);
	/* settled from the answer's usage (10 in, 1120 out, not split: the output is the image) */
	struct token_usage used = { .text_in = 10, .image_out = 1120 };
	assert_true(fabs(out.cost_usd - rates_cost_usd(rq.model, rq.route, &used)) < 1e-9);
	assert_true(fabs(out.cost_usd - price_usd(rq.model, rq.size, rq.route)) > 1e-6);
	assert_string_equal(out.obj.ext, "png");
	assert_int_equal(out.obj.width, 1024);
	/* our PNG carries where it came from */
	assert_true(file_has(out.obj.path, "bananafs"));
	assert_true(file_has(out.obj.path, "a red fox in snow"));
	assert_true(file_has(out.obj.path, out.key_hex));
	snprintf(first_path, sizeof(first_path), "%s", out.obj.path);
	fetch_outcome_free(&out);

	assert_int_equal(fetch_image(&x->f, &rq, "job-2", NULL, NULL, NULL, &out), FETCH_OK);
	assert_int_equal(out.source, SRC_CACHE);
	assert_true(out.cost_usd == 0);
	assert_string_equal(out.obj.path, first_path);
	assert_int_equal(requests(), 1);	/* no second request */
	fetch_outcome_free(&out);

	fetch_stats_get(&x->f, &st);
	assert_int_equal(st.hits, 1);
	assert_int_equal(st.misses, 1);	/* the hit was found before any in-flight wait */
	assert_int_equal(st.ok, 1);
	assert_int_equal(st.sent, 1);

	read_ledger(x, &ls);
	assert_int_equal(ls.n, 3);
	assert_string_equal(str_of(ls.l[0], "outcome"), "sent");
	assert_string_equal(str_of(ls.l[1], "outcome"), "ok");
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(ls.l[1], "billed")));
	assert_int_equal(cJSON_GetObjectItem(ls.l[1], "http_status")->valueint, 200);
	assert_string_equal(str_of(ls.l[1], "request_id"), "int-42");
	assert_int_equal(cJSON_GetObjectItem(ls.l[1], "out_tokens")->valueint, 1120);
	assert_string_equal(str_of(ls.l[1], "cost_basis"), "usage");
	assert_int_equal(cJSON_GetObjectItem(ls.l[1], "out_image_tokens")->valueint, 1120);
	assert_true(fabs(cJSON_GetObjectItem(ls.l[0], "cost_usd")->valuedouble - 0.067) < 1e-9);	/* the estimate */
	assert_string_equal(str_of(ls.l[2], "outcome"), "cached");
	assert_true(cJSON_IsFalse(cJSON_GetObjectItem(ls.l[2], "billed")));
	assert_null(strstr(ls.raw, API_KEY));
	assert_null(strstr(ls.raw, "a red fox"));	/* ledger_prompts = hash */
	assert_non_null(str_of(ls.l[0], "prompt_hash"));
	free_ledger(&ls);
}

/* The other owner of a taken-over interaction: it takes the image in before our poll. */
static struct fx *other_fx;
static struct cache_key other_key;

static void other_owner_stores(int idx)
{
	size_t len;
	unsigned char *png = make_png(&len);
	struct object_info info;
	char err[256];

	if (idx == 0)
		assert_int_equal(store_put(&other_fx->store, &other_key, png, len, "png", "png", NULL, NULL,
					   1024, 1024, &info, err, sizeof(err)), 0);
	free(png);
}

static const char ANSWER_404[] =
	"{\"error\":{\"code\":404,\"message\":\"Interaction not found.\",\"status\":\"NOT_FOUND\"}}";

static void test_polled_interaction_gone_with_its_image_stored(void **state)
{
	struct fx *x = *state;
	struct gen_request rq = request("gemini-3.1-flash-image", "1K", "an otter asleep");
	struct fetch_outcome out;
	struct lines ls;
	char hex[KEY_HEX_LEN + 1];

	/* A journaled interaction (ours after a crash, or a dead machine's we took over)
	 * that its other owner finished, stored and deleted while we were about to poll. */
	x->cfg.durable_requests = true;
	open_fetch(x);
	assert_int_equal(journal_init(&x->store), 0);
	key_compute(&rq, &other_key);
	key_hex(&other_key, hex);
	assert_int_equal(journal_ia_put(&x->store, hex, "int-gone", "job-1", rq.model), 0);
	other_fx = x;
	srv.before = other_owner_stores;
	script(1, 404, ANSWER_404);

	assert_int_equal(fetch_image(&x->f, &rq, "job-1", NULL, NULL, NULL, &out), FETCH_OK);
	assert_int_equal(out.source, SRC_COALESCED);
	assert_true(out.cost_usd == 0);
	assert_string_equal(out.obj.ext, "png");
	fetch_outcome_free(&out);
	/* one poll of the interaction and a delete of it, never a new request */
	assert_int_equal(requests(), 2);
	assert_string_equal(srv.last_path, "/v1beta/interactions/int-gone");
	assert_int_equal(journal_ia_get(&x->store, hex, (char[JOURNAL_IA_ID_MAX]){ 0 }), 0);
	read_ledger(x, &ls);
	assert_null(strstr(ls.raw, "\"unknown\""));	/* nothing counted as paid again */
	assert_string_equal(str_of(ls.l[ls.n - 1], "outcome"), "coalesced");
	free_ledger(&ls);
}

static void test_429_retryinfo_then_ok(void **state)
{
	struct fx *x = *state;
	struct gen_request rq = request("gemini-3.1-flash-image", "1K", "an owl at dusk");
	struct fetch_outcome out;
	struct statuses sts = { .mu = PTHREAD_MUTEX_INITIALIZER };
	struct lines ls;

	open_fetch(x);
	script(2, 429, ANSWER_429, 200, NULL);
	assert_int_equal(fetch_image(&x->f, &rq, "job-1", NULL, on_status, &sts, &out), FETCH_OK);
	assert_int_equal(out.attempts, 2);
	assert_int_equal(requests(), 2);
	/* the server-named delay was honoured, on the fake clock */
	assert_true(x->clk_state.slept >= 7.0 - 1e-9);
	assert_true(sts.waiting >= 1);
	/* the pause's end, on the fake clock's wall: about 7 s after the 429 (before the sleeps) */
	assert_true((double)sts.retry_at >= x->clk_state.wall0 + x->clk_state.t - x->clk_state.slept + 6.5);
	assert_true((double)sts.retry_at <= x->clk_state.wall0 + x->clk_state.t + 1);
	assert_int_equal(sts.running, 2);
	fetch_outcome_free(&out);

	read_ledger(x, &ls);
	assert_int_equal(count_outcome(&ls, "sent"), 2);
	assert_int_equal(count_outcome(&ls, "ok"), 1);
	assert_int_equal(ls.n, 3);
	assert_null(str_of(ls.l[0], "reason"));
	assert_int_equal(cJSON_GetObjectItem(ls.l[0], "attempt")->valueint, 1);
	assert_string_equal(str_of(ls.l[1], "reason"), "retry after 429");
	assert_int_equal(cJSON_GetObjectItem(ls.l[1], "attempt")->valueint, 2);
	free_ledger(&ls);
}

static void test_503_storm_is_bounded(void **state)
{
	struct fx *x = *state;
	struct gen_request rq = request("gemini-3.1-flash-image", "1K", "a storm");
	struct fetch_outcome out;
	struct fetch_stats st;
	struct lines ls;
	double today, total, reserved;
	char *text;

	open_fetch(x);
	script(1, 503, ANSWER_503);
	assert_int_equal(fetch_image(&x->f, &rq, "job-1", NULL, NULL, NULL, &out), FETCH_FAILED);
	assert_int_equal(out.attempts, 3);
	assert_int_equal(requests(), 3);
	assert_int_equal(out.res.cls, ERR_CAPACITY);
	assert_int_equal(out.res.http_status, 503);
	assert_false(out.fallback);
	/* nothing billed, nothing left reserved */
	budget_snapshot(&x->f.budget, &today, &total, &reserved);
	assert_true(today == 0 && total == 0 && reserved == 0);

	text = render_failure(&out, &rq);
	assert_non_null(text);
	assert_non_null(strstr(text, "generation failed for gemini-3.1-flash-image 1K 1:1"));
	assert_non_null(strstr(text, "HTTP status: 503"));
	assert_non_null(strstr(text, "UNAVAILABLE"));
	assert_non_null(strstr(text, "attempts: 3"));
	assert_non_null(strstr(text, "whose problem: "));
	assert_non_null(strstr(text, "whose move: Google's\n"));	/* a 503: the server's capacity */
	assert_non_null(strstr(text, "next move: "));
	assert_null(strstr(text, API_KEY));
	assert_null(strstr(text, out.key_hex));
	free(text);
	fetch_outcome_free(&out);

	fetch_stats_get(&x->f, &st);
	assert_int_equal(st.failed, 1);
	read_ledger(x, &ls);
	assert_int_equal(count_outcome(&ls, "sent"), 3);
	assert_int_equal(count_outcome(&ls, "failed"), 1);
	assert_string_equal(str_of(ls.l[3], "error_class"), err_class_name(ERR_CAPACITY));
	assert_true(cJSON_IsFalse(cJSON_GetObjectItem(ls.l[3], "billed")));
	free_ledger(&ls);

	/* a failure is not cached: the next identical request is sent again */
	script(1, 200, NULL);
	assert_int_equal(fetch_image(&x->f, &rq, "job-2", "regen", NULL, NULL, &out), FETCH_OK);
	assert_int_equal(out.source, SRC_GENERATED);
	assert_int_equal(requests(), 4);
	fetch_outcome_free(&out);
}

static void test_permanent_error_not_retried(void **state)
{
	struct fx *x = *state;
	struct gen_request rq = request("gemini-3.1-flash-image", "1K", "bad size");
	struct fetch_outcome out;

	open_fetch(x);
	script(1, 400, ANSWER_400);
	assert_int_equal(fetch_image(&x->f, &rq, "job-1", NULL, NULL, NULL, &out), FETCH_FAILED);
	assert_int_equal(out.attempts, 1);
	assert_int_equal(requests(), 1);
	assert_true(x->clk_state.slept == 0);
	fetch_outcome_free(&out);
}

static void test_superseded_request_is_never_sent(void **state)
{
	struct fx *x = *state;
	struct gen_request rq = request("gemini-3.1-flash-image", "1K", "an old draft");
	struct fetch_outcome out;
	struct lines ls;
	double today, total, reserved;

	open_fetch(x);
	script(1, 200, NULL);
	assert_int_equal(fetch_image(&x->f, &rq, "job-1", NULL, superseded, NULL, &out), FETCH_FAILED);
	assert_int_equal(requests(), 0);
	assert_non_null(strstr(out.res.message, "superseded"));
	fetch_outcome_free(&out);
	read_ledger(x, &ls);
	assert_int_equal(count_outcome(&ls, "sent"), 0);
	free_ledger(&ls);
	budget_snapshot(&x->f.budget, &today, &total, &reserved);
	assert_true(reserved == 0 && today == 0);
}

static void test_budget_refusal_sends_nothing(void **state)
{
	struct fx *x = *state;
	struct gen_request rq = request("gemini-3-pro-image", "2K", "an expensive castle");
	struct fetch_outcome out;
	struct lines ls;
	char *text;

	x->cfg.budget_daily_usd = 0.10;
	config_note_origin(&x->cfg, "budget_daily_usd", "/home/u/.config/bananafs/config:4");
	open_fetch(x);
	assert_int_equal(fetch_image(&x->f, &rq, "job-1", NULL, NULL, NULL, &out), FETCH_REFUSED_BUDGET);
	assert_int_equal(requests(), 0);
	assert_non_null(strstr(out.why, "would pass budget_daily_usd $0.10"));
	text = render_failure(&out, &rq);
	assert_non_null(text);
	/* where the limit was set, and what to do */
	assert_non_null(strstr(text, "whose problem: your budget: budget_daily_usd, set in "
				     "/home/u/.config/bananafs/config:4"));
	assert_non_null(strstr(text, "next move: wait for tomorrow"));
	assert_non_null(strstr(text, "raise budget_daily_usd where it was set"));
	free(text);
	fetch_outcome_free(&out);
	read_ledger(x, &ls);
	assert_int_equal(ls.n, 1);
	assert_string_equal(str_of(ls.l[0], "outcome"), "refused-budget");
	free_ledger(&ls);
}

static void test_budget_counts_earlier_spending(void **state)
{
	struct fx *x = *state;
	struct gen_request a = request("gemini-3.1-flash-image", "1K", "first");
	struct gen_request b = request("gemini-3.1-flash-image", "1K", "second");
	struct fetch_outcome out;
	double p = price_usd(a.model, a.size, a.route);

	/* room for one image, not two; the second mount sees the first's spending */
	x->cfg.budget_total_usd = p * 1.5;
	open_fetch(x);
	assert_int_equal(fetch_image(&x->f, &a, "job-1", NULL, NULL, NULL, &out), FETCH_OK);
	fetch_outcome_free(&out);
	fetch_close(&x->f);
	open_fetch(x);
	assert_int_equal(fetch_image(&x->f, &b, "job-2", NULL, NULL, NULL, &out), FETCH_REFUSED_BUDGET);
	assert_non_null(strstr(out.why, "budget_total_usd"));
	/* but the cached one is still free and allowed */
	fetch_outcome_free(&out);
	assert_int_equal(fetch_image(&x->f, &a, "job-3", NULL, NULL, NULL, &out), FETCH_OK);
	assert_int_equal(out.source, SRC_CACHE);
	assert_int_equal(requests(), 1);
	fetch_outcome_free(&out);
}

static void test_dry_run_sends_nothing(void **state)
{
	struct fx *x = *state;
	struct gen_request rq = request("gemini-3-pro-image", "4K", "a dry lake");
	struct fetch_outcome out;
	struct lines ls;

	x->cfg.dry_run = true;
	open_fetch(x);
	assert_int_equal(fetch_image(&x->f, &rq, "job-1", NULL, NULL, NULL, &out), FETCH_DRY_RUN);
	assert_int_equal(requests(), 0);
	assert_true(out.cost_usd > 0);
	assert_true(fabs(out.cost_usd - price_usd(rq.model, rq.size, rq.route)) < 1e-9);
	fetch_outcome_free(&out);
	read_ledger(x, &ls);
	assert_int_equal(ls.n, 1);
	assert_string_equal(str_of(ls.l[0], "outcome"), "dry-run");
	free_ledger(&ls);
}

static void test_fallback_after_capacity(void **state)
{
	struct fx *x = *state;
	struct gen_request rq = request("gemini-3-pro-image", "1K", "a lighthouse");
	struct gen_request fb = rq;
	struct fetch_outcome out;
	struct cache_key fbk;
	struct lines ls;
	int i, with_fb = 0;

	x->cfg.fallback_model = strdup("gemini-3.1-flash-image");
	open_fetch(x);
	script(4, 503, ANSWER_503, 503, ANSWER_503, 503, ANSWER_503, 200, NULL);
	assert_int_equal(fetch_image(&x->f, &rq, "job-1", NULL, NULL, NULL, &out), FETCH_OK);
	assert_true(out.fallback);
	assert_string_equal(out.model_used, "gemini-3.1-flash-image");
	assert_string_equal(out.size_used, "1K");
	assert_int_equal(requests(), 4);
	/* stored under the fallback's key, not the original's */
	fb.model = "gemini-3.1-flash-image";
	key_compute(&fb, &fbk);
	assert_memory_equal(fbk.b, out.key.b, 16);
	assert_true(file_has(out.obj.path, "gemini-3.1-flash-image"));
	fetch_outcome_free(&out);

	read_ledger(x, &ls);
	for (i = 0; i < ls.n; i++)
		if (str_of(ls.l[i], "fallback"))
			with_fb++;
	assert_int_equal(with_fb, 2);	/* its "sent" and its "ok" */
	assert_int_equal(count_outcome(&ls, "failed"), 1);
	assert_string_equal(str_of(ls.l[ls.n - 1], "fallback"), "gemini-3.1-flash-image 1K");
	free_ledger(&ls);
}

struct racer {
	struct fx *x;
	struct gen_request rq;
	enum fetch_result r;
	enum fetch_source src;
};

static void *race(void *arg)
{
	struct racer *r = arg;
	struct fetch_outcome out;

	r->r = fetch_image(&r->x->f, &r->rq, "job", NULL, NULL, NULL, &out);
	r->src = out.source;
	fetch_outcome_free(&out);
	return NULL;
}

static void test_concurrent_same_key_pays_once(void **state)
{
	struct fx *x = *state;
	struct racer r[4];
	pthread_t th[4];
	int i, generated = 0, shared = 0;

	open_fetch(x);
	pthread_mutex_lock(&srv.mu);
	srv.delay_ms = 300;
	pthread_mutex_unlock(&srv.mu);
	for (i = 0; i < 4; i++) {
		r[i] = (struct racer){ .x = x, .rq = request("gemini-3.1-flash-image", "1K", "four copies") };
		assert_int_equal(pthread_create(&th[i], NULL, race, &r[i]), 0);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(r[i].r, FETCH_OK);
		if (r[i].src == SRC_GENERATED)
			generated++;
		else if (r[i].src == SRC_COALESCED || r[i].src == SRC_CACHE)
			shared++;
	}
	assert_int_equal(generated, 1);
	assert_int_equal(shared, 3);
	assert_int_equal(requests(), 1);
	assert_int_equal(inflight_count(&x->f.inflight), 0);
}

static void test_output_original(void **state)
{
	struct fx *x = *state;
	struct gen_request rq = request("gemini-3.1-flash-image", "1K", "as sent");
	struct fetch_outcome out;

	x->cfg.output_original = true;
	open_fetch(x);
	assert_int_equal(fetch_image(&x->f, &rq, "job-1", NULL, NULL, NULL, &out), FETCH_OK);
	assert_string_equal(out.obj.path, out.obj.orig_path);
	assert_false(file_has(out.obj.path, "bananafs"));
	fetch_outcome_free(&out);
}

static void test_ledger_failure_sends_nothing(void **state)
{
	struct fx *x = *state;
	struct gen_request rq = request("gemini-3.1-flash-image", "1K", "unrecorded");
	struct fetch_outcome out;
	double reserved;
	int full;

	open_fetch(x);
	/* every ledger write now fails (ENOSPC) */
	full = open("/dev/full", O_WRONLY);
	assert_true(full >= 0);
	assert_true(dup2(full, x->f.ledger.fd) >= 0);
	close(full);
	assert_int_equal(fetch_image(&x->f, &rq, "job-1", NULL, NULL, NULL, &out), FETCH_FAILED);
	assert_int_equal(requests(), 0);
	assert_non_null(out.res.message);
	assert_non_null(strstr(out.res.message, "ledger"));
	budget_snapshot(&x->f.budget, NULL, NULL, &reserved);
	assert_true(reserved == 0);
	fetch_outcome_free(&out);
}

static void test_gateway_bills_failed_200(void **state)
{
	struct fx *x = *state;
	struct gen_request rq = request("gemini-3.1-flash-image", "1K", "via a provider");
	struct fetch_outcome out;
	struct lines ls;
	double total;
	char url[64];

	snprintf(url, sizeof(url), "http://127.0.0.1:%d", srv.port);
	x->cfg.gateway_url = strdup(url);
	x->cfg.gateway_key = strdup("gw-secret-key-0123456789");
	x->cfg.gateway_bills_failures = true;
	rq.route = ROUTE_GATEWAY;
	assert_int_equal(price_set(rq.model, rq.size, ROUTE_GATEWAY, 0.05), 0);
	open_fetch(x);
	script(1, 200, "{}");	/* a 200 without an image */
	assert_int_equal(fetch_image(&x->f, &rq, "job-1", NULL, NULL, NULL, &out), FETCH_FAILED);
	assert_int_equal(requests(), 1);
	assert_true(fabs(out.cost_usd - 0.05) < 1e-9);
	budget_snapshot(&x->f.budget, NULL, &total, NULL);
	assert_true(fabs(total - 0.05) < 1e-9);
	fetch_outcome_free(&out);
	read_ledger(x, &ls);
	assert_string_equal(str_of(ls.l[ls.n - 1], "outcome"), "failed");
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(ls.l[ls.n - 1], "billed")));
	assert_null(strstr(ls.raw, "gw-secret-key"));
	free_ledger(&ls);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_second_fetch_is_cache_hit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_polled_interaction_gone_with_its_image_stored, setup, teardown),
		cmocka_unit_test_setup_teardown(test_429_retryinfo_then_ok, setup, teardown),
		cmocka_unit_test_setup_teardown(test_503_storm_is_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_permanent_error_not_retried, setup, teardown),
		cmocka_unit_test_setup_teardown(test_superseded_request_is_never_sent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_budget_refusal_sends_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_budget_counts_earlier_spending, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dry_run_sends_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fallback_after_capacity, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_same_key_pays_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_output_original, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ledger_failure_sends_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gateway_bills_failed_200, setup, teardown),
	};
	int rc;

	pthread_mutex_init(&srv.mu, NULL);
	if (http_global_init() != 0)
		return 1;
	srv.image_body = image_answer();
	server_start();
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	server_stop();
	free(srv.image_body);
	http_global_cleanup();
	return rc;
}
