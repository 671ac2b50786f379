/*
 * test_batch.c - the Batch route: the wire format (api/batch.c) field by
 * field and every answer shape, then the batcher (cache/batcher.c) end to
 * end against the real emulator binary started as a subprocess with
 * --batch-delay 1 (skipped when build/bananafs-emulator is missing).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "api/batch.h"
#include "api/http.h"
#include "api/image.h"
#include "api/prices.h"
#include "api/rates.h"
#include "cache/batcher.h"
#include "cache/journal.h"
#include "imgmake.h"

#define EMU_KEY "emulator-key"

static const struct api_endpoint EP = { "http://127.0.0.1:9", "v1beta", "AIzaTESTKEY", 0, 0, NULL };

static struct gen_request req_for(const char *prompt)
{
	struct gen_request rq = {
		.model = "gemini-3-pro-image", .size = "1K", .aspect = "16:9", .prompt = prompt,
		.prompt_len = strlen(prompt), .n = 1, .index = 1, .route = ROUTE_BATCH,
	};
	return rq;
}

static const char *header(const struct http_req *r, const char *prefix)
{
	for (int i = 0; r->headers[i]; i++)
		if (strncasecmp(r->headers[i], prefix, strlen(prefix)) == 0)
			return r->headers[i] + strlen(prefix);
	return NULL;
}

static const cJSON *path(const cJSON *j, const char *p)
{
	char buf[256], *save = NULL, *t;

	snprintf(buf, sizeof(buf), "%s", p);
	for (t = strtok_r(buf, ".", &save); t && j; t = strtok_r(NULL, ".", &save)) {
		if (t[0] >= '0' && t[0] <= '9')
			j = cJSON_GetArrayItem(j, atoi(t));
		else
			j = cJSON_GetObjectItemCaseSensitive(j, t);
	}
	return j;
}

static const char *pstr(const cJSON *j, const char *p)
{
	const cJSON *v = path(j, p);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* --- wire: requests -------------------------------------------------------- */

static void test_create_inline_shape(void **state)
{
	(void)state;
	struct gen_request a = req_for("a red fox"), b = req_for("a blue fox");
	char err[256] = "", *ja = batch_request_json(&a, err, sizeof(err)), *jb;
	struct http_req req;

	assert_non_null(ja);
	jb = batch_request_json(&b, err, sizeof(err));
	assert_non_null(jb);
	struct batch_line lines[2] = { { "k-one", ja }, { "k-two", jb } };
	assert_int_equal(batch_build_create_inline(&EP, "gemini-3-pro-image", "bananafs-1", lines, 2, &req,
						   err, sizeof(err)), 0);
	assert_string_equal(req.method, "POST");
	assert_string_equal(req.url, "http://127.0.0.1:9/v1beta/models/gemini-3-pro-image:batchGenerateContent");
	assert_non_null(header(&req, "x-goog-api-key: "));
	assert_string_equal(header(&req, "x-goog-api-key: "), "AIzaTESTKEY");
	assert_string_equal(header(&req, "Content-Type: "), "application/json");

	cJSON *j = cJSON_ParseWithLength(req.body, req.body_len);
	assert_non_null(j);
	assert_string_equal(pstr(j, "batch.displayName"), "bananafs-1");
	const cJSON *arr = path(j, "batch.inputConfig.requests.requests");
	assert_true(cJSON_IsArray(arr));
	assert_int_equal(cJSON_GetArraySize(arr), 2);
	assert_string_equal(pstr(j, "batch.inputConfig.requests.requests.0.metadata.key"), "k-one");
	assert_string_equal(pstr(j, "batch.inputConfig.requests.requests.1.metadata.key"), "k-two");
	assert_string_equal(pstr(j, "batch.inputConfig.requests.requests.0.request.model"),
			    "models/gemini-3-pro-image");
	assert_string_equal(pstr(j, "batch.inputConfig.requests.requests.0.request.contents.0.role"), "user");
	assert_string_equal(pstr(j, "batch.inputConfig.requests.requests.0.request.contents.0.parts.0.text"),
			    "a red fox");
	assert_string_equal(pstr(j, "batch.inputConfig.requests.requests.1.request.contents.0.parts.0.text"),
			    "a blue fox");
	assert_string_equal(pstr(j, "batch.inputConfig.requests.requests.0.request.generationConfig."
				    "responseModalities.1"), "IMAGE");
	assert_string_equal(pstr(j, "batch.inputConfig.requests.requests.0.request.generationConfig."
				    "imageConfig.aspectRatio"), "16:9");
	assert_string_equal(pstr(j, "batch.inputConfig.requests.requests.0.request.generationConfig."
				    "imageConfig.imageSize"), "1K");
	/* the key never enters the body */
	assert_null(strstr(req.body, "AIza"));
	cJSON_Delete(j);
	http_req_free(&req);

	/* a model id that would break the URL path is refused */
	assert_int_equal(batch_build_create_inline(&EP, "../x", "d", lines, 2, &req, err, sizeof(err)), -1);

	/* JSONL: one line per request, snake_case field names, key at the top */
	size_t len = 0;
	char *jl = batch_jsonl(lines, 2, &len);
	assert_non_null(jl);
	assert_int_equal(strlen(jl), len);
	char *nl = strchr(jl, '\n');
	assert_non_null(nl);
	assert_int_equal(jl[len - 1], '\n');
	*nl = '\0';
	j = cJSON_Parse(jl);
	assert_non_null(j);
	assert_string_equal(pstr(j, "key"), "k-one");
	assert_string_equal(pstr(j, "request.model"), "models/gemini-3-pro-image");
	assert_string_equal(pstr(j, "request.generation_config.image_config.aspect_ratio"), "16:9");
	assert_string_equal(pstr(j, "request.generation_config.image_config.image_size"), "1K");
	assert_string_equal(pstr(j, "request.generation_config.response_modalities.0"), "TEXT");
	assert_null(path(j, "request.generationConfig"));
	cJSON_Delete(j);
	j = cJSON_Parse(nl + 1);
	assert_string_equal(pstr(j, "key"), "k-two");
	cJSON_Delete(j);
	free(jl);

	/* create from a file */
	assert_int_equal(batch_build_create_file(&EP, "gemini-3-pro-image", "d2", "files/abc123", &req,
						 err, sizeof(err)), 0);
	j = cJSON_ParseWithLength(req.body, req.body_len);
	assert_string_equal(pstr(j, "batch.displayName"), "d2");
	assert_string_equal(pstr(j, "batch.model"), "models/gemini-3-pro-image");
	assert_string_equal(pstr(j, "batch.inputConfig.fileName"), "files/abc123");
	cJSON_Delete(j);
	http_req_free(&req);

	/* resumable upload: start, then upload+finalize without the key */
	assert_int_equal(batch_build_upload_start(&EP, "d3", 1234, &req, err, sizeof(err)), 0);
	assert_string_equal(req.url, "http://127.0.0.1:9/upload/v1beta/files");
	assert_string_equal(header(&req, "X-Goog-Upload-Protocol: "), "resumable");
	assert_string_equal(header(&req, "X-Goog-Upload-Command: "), "start");
	assert_string_equal(header(&req, "X-Goog-Upload-Header-Content-Length: "), "1234");
	assert_string_equal(header(&req, "X-Goog-Upload-Header-Content-Type: "), "application/jsonl");
	http_req_free(&req);
	assert_int_equal(batch_build_upload_finish("http://127.0.0.1:9/upload/v1beta/files?upload_id=x",
						   "abc", 3, &req, err, sizeof(err)), 0);
	assert_string_equal(header(&req, "X-Goog-Upload-Command: "), "upload, finalize");
	assert_string_equal(header(&req, "X-Goog-Upload-Offset: "), "0");
	assert_null(header(&req, "x-goog-api-key: "));
	assert_int_equal(req.body_len, 3);
	http_req_free(&req);

	/* poll and download URLs; names that are not one path segment are refused */
	assert_int_equal(batch_build_get(&EP, "batches/b-1", &req, err, sizeof(err)), 0);
	assert_string_equal(req.method, "GET");
	assert_string_equal(req.url, "http://127.0.0.1:9/v1beta/batches/b-1");
	http_req_free(&req);
	assert_int_equal(batch_build_get(&EP, "batches/../../x", &req, err, sizeof(err)), -1);
	assert_int_equal(batch_build_download(&EP, "files/batch-9", &req, err, sizeof(err)), 0);
	assert_string_equal(req.url, "http://127.0.0.1:9/v1beta/files/batch-9:download?alt=media");
	http_req_free(&req);
	free(ja);
	free(jb);
}

/* --- wire: answers --------------------------------------------------------- */

static char *png_b64(void)
{
	size_t len;
	unsigned char *png = make_png(32, 18, &len);
	char *b = base64_encode(png, len);

	free(png);
	return b;
}

static struct http_resp resp_of(const char *body)
{
	struct http_resp r = { .status = 200, .retry_after_s = -1 };

	r.body = (char *)body;
	r.len = strlen(body);
	return r;
}

static void test_parse_create_and_states(void **state)
{
	(void)state;
	struct batch_status st;
	char err[256];
	struct http_resp r;

	r = resp_of("{\"name\":\"batches/abc\",\"metadata\":{\"@type\":\"x\",\"state\":\"BATCH_STATE_PENDING\","
		    "\"name\":\"batches/abc\",\"batchStats\":{\"requestCount\":\"2\"}},\"done\":false}");
	assert_int_equal(batch_parse_status(&r, &st, err, sizeof(err)), 0);
	assert_string_equal(st.name, "batches/abc");
	assert_int_equal(st.state, BATCH_PENDING);
	assert_false(st.done);
	assert_false(st.have_results);
	assert_string_equal(st.responses_file, "");
	assert_string_equal(st.error, "");
	batch_status_free(&st);

	/* the SDK spelling */
	r = resp_of("{\"name\":\"batches/abc\",\"metadata\":{\"state\":\"JOB_STATE_RUNNING\"}}");
	assert_int_equal(batch_parse_status(&r, &st, err, sizeof(err)), 0);
	assert_int_equal(st.state, BATCH_RUNNING);
	batch_status_free(&st);
	assert_int_equal(batch_state_parse("JOB_STATE_SUCCEEDED"), BATCH_SUCCEEDED);
	assert_int_equal(batch_state_parse("BATCH_STATE_EXPIRED"), BATCH_EXPIRED);
	assert_int_equal(batch_state_parse("SUCCEEDED"), BATCH_UNKNOWN);
	assert_int_equal(batch_state_parse(NULL), BATCH_UNKNOWN);

	/* SUCCEEDED before the results are there: nothing to read yet */
	r = resp_of("{\"name\":\"batches/abc\",\"metadata\":{\"state\":\"BATCH_STATE_SUCCEEDED\"},\"done\":true}");
	assert_int_equal(batch_parse_status(&r, &st, err, sizeof(err)), 0);
	assert_int_equal(st.state, BATCH_SUCCEEDED);
	assert_true(st.done);
	assert_false(st.have_results);
	assert_string_equal(st.responses_file, "");
	batch_status_free(&st);

	/* results in a file, named in response and mirrored in metadata.output */
	r = resp_of("{\"name\":\"batches/abc\",\"metadata\":{\"state\":\"JOB_STATE_SUCCEEDED\","
		    "\"output\":{\"responsesFile\":\"files/batch-abc\"}},\"done\":true,"
		    "\"response\":{\"@type\":\"t\",\"responsesFile\":\"files/batch-abc\"}}");
	assert_int_equal(batch_parse_status(&r, &st, err, sizeof(err)), 0);
	assert_string_equal(st.responses_file, "files/batch-abc");
	batch_status_free(&st);
	/* only metadata.output (what the SDK reads) */
	r = resp_of("{\"name\":\"batches/abc\",\"metadata\":{\"state\":\"BATCH_STATE_SUCCEEDED\","
		    "\"output\":{\"responsesFile\":\"files/batch-xyz\"}},\"done\":true}");
	assert_int_equal(batch_parse_status(&r, &st, err, sizeof(err)), 0);
	assert_string_equal(st.responses_file, "files/batch-xyz");
	batch_status_free(&st);

	/* a failed job carries an operation error */
	r = resp_of("{\"name\":\"batches/abc\",\"metadata\":{\"state\":\"BATCH_STATE_FAILED\"},\"done\":true,"
		    "\"error\":{\"code\":3,\"message\":\"Input file is malformed.\"}}");
	assert_int_equal(batch_parse_status(&r, &st, err, sizeof(err)), 0);
	assert_int_equal(st.state, BATCH_FAILED);
	assert_true(batch_state_terminal_failure(st.state));
	assert_non_null(strstr(st.error, "Input file is malformed."));
	batch_status_free(&st);

	r = resp_of("{\"name\":\"batches/abc\",\"metadata\":{\"state\":\"BATCH_STATE_EXPIRED\"},\"done\":true}");
	assert_int_equal(batch_parse_status(&r, &st, err, sizeof(err)), 0);
	assert_int_equal(st.state, BATCH_EXPIRED);
	assert_non_null(strstr(st.error, "expired after 48 h"));
	batch_status_free(&st);
	r = resp_of("{\"name\":\"batches/abc\",\"metadata\":{\"state\":\"BATCH_STATE_CANCELLED\"}}");
	assert_int_equal(batch_parse_status(&r, &st, err, sizeof(err)), 0);
	assert_non_null(strstr(st.error, "cancelled"));
	batch_status_free(&st);

	/* malformed answers are errors, never a crash */
	r = resp_of("not json");
	assert_int_equal(batch_parse_status(&r, &st, err, sizeof(err)), -1);
	r = resp_of("{\"metadata\":{\"state\":\"BATCH_STATE_PENDING\"}}");
	assert_int_equal(batch_parse_status(&r, &st, err, sizeof(err)), -1);
	r = resp_of("{\"name\":\"batches/../x\"}");
	assert_int_equal(batch_parse_status(&r, &st, err, sizeof(err)), -1);
}

static void test_parse_inline_results(void **state)
{
	(void)state;
	char *b64 = png_b64(), *body = NULL, err[256];
	struct batch_status st;
	struct batch_result *x;

	assert_true(asprintf(&body,
		"{\"name\":\"batches/b1\",\"metadata\":{\"state\":\"BATCH_STATE_SUCCEEDED\"},\"done\":true,"
		"\"response\":{\"inlinedResponses\":{\"inlinedResponses\":["
		"{\"response\":{\"candidates\":[{\"content\":{\"parts\":["
		"{\"inlineData\":{\"mimeType\":\"image/png\",\"data\":\"AAAA\"},\"thought\":true},"
		"{\"text\":\"Here it is.\"},"
		"{\"inlineData\":{\"mimeType\":\"image/png\",\"data\":\"%s\"}}]},\"finishReason\":\"STOP\"}],"
		"\"usageMetadata\":{\"promptTokenCount\":7,\"candidatesTokenCount\":1120},\"responseId\":\"r-1\"},"
		"\"metadata\":{\"key\":\"k1\"}},"
		"{\"error\":{\"code\":400,\"message\":\"Unsupported image size.\",\"status\":\"INVALID_ARGUMENT\"},"
		"\"metadata\":{\"key\":\"k2\"}},"
		"{\"response\":{\"promptFeedback\":{\"blockReason\":\"SAFETY\"}},\"metadata\":{\"key\":\"k3\"}},"
		"{\"response\":{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"I can only describe it.\"}]},"
		"\"finishReason\":\"STOP\"}]},\"metadata\":{\"key\":\"k4\"}},"
		"{\"response\":{\"candidates\":[{\"content\":{\"parts\":[{\"inlineData\":{\"mimeType\":\"image/png\","
		"\"data\":\"bm90IGFuIGltYWdl\"}}]}}]},\"metadata\":{\"key\":\"k5\"}},"
		"{\"response\":{},\"metadata\":{}}"
		"]}}}", b64) > 0);
	struct http_resp r = resp_of(body);
	assert_int_equal(batch_parse_status(&r, &st, err, sizeof(err)), 0);
	assert_true(st.have_results);
	assert_int_equal(st.nresults, 5);	/* the one without a key cannot be matched */

	x = batch_status_find(&st, "k1");
	assert_non_null(x);
	assert_int_equal(x->res.cls, ERR_NONE);
	assert_non_null(x->res.image);
	assert_int_equal(x->res.width, 32);
	assert_int_equal(x->res.height, 18);
	assert_string_equal(x->res.mime, "image/png");
	assert_string_equal(x->res.text, "Here it is.");
	assert_string_equal(x->res.request_id, "r-1");
	assert_int_equal(x->res.out_tokens, 1120);

	x = batch_status_find(&st, "k2");
	assert_int_equal(x->res.cls, ERR_REQUEST);
	assert_int_equal(x->res.http_status, 400);
	assert_string_equal(x->res.api_status, "INVALID_ARGUMENT");
	assert_non_null(strstr(x->res.message, "Unsupported image size."));

	x = batch_status_find(&st, "k3");
	assert_int_equal(x->res.cls, ERR_SAFETY);
	x = batch_status_find(&st, "k4");
	assert_int_equal(x->res.cls, ERR_NO_IMAGE);
	assert_string_equal(x->res.text, "I can only describe it.");
	x = batch_status_find(&st, "k5");
	assert_int_equal(x->res.cls, ERR_MALFORMED);
	assert_null(x->res.image);
	assert_null(batch_status_find(&st, "nope"));
	batch_status_free(&st);
	free(body);
	free(b64);
}

static void test_parse_results_file(void **state)
{
	(void)state;
	char *b64 = png_b64(), *body = NULL, err[256];
	struct batch_status st;
	struct batch_result *x;

	memset(&st, 0, sizeof(st));
	assert_true(asprintf(&body,
		"{\"key\":\"a\",\"response\":{\"candidates\":[{\"content\":{\"parts\":[{\"inline_data\":"
		"{\"mime_type\":\"image/png\",\"data\":\"%s\"}}]},\"finishReason\":\"STOP\"}]}}\n"
		"{\"key\":\"b\",\"error\":{\"code\":429,\"message\":\"Resource exhausted\",\"status\":\"RESOURCE_EXHAUSTED\"}}\n"
		"{\"key\":\"c\",\"status\":{\"code\":503,\"message\":\"overloaded\",\"status\":\"UNAVAILABLE\"}}\n"
		"this line is torn {\"key\n"
		"\n"
		"{\"key\":\"d\",\"response\":{\"candidates\":[{\"finishReason\":\"IMAGE_SAFETY\"}]}}",
		b64) > 0);
	assert_int_equal(batch_parse_results_jsonl(body, strlen(body), &st, err, sizeof(err)), 0);
	assert_true(st.have_results);
	assert_int_equal(st.nresults, 4);
	x = batch_status_find(&st, "a");
	assert_int_equal(x->res.cls, ERR_NONE);
	assert_int_equal(x->res.width, 32);
	x = batch_status_find(&st, "b");
	assert_int_equal(x->res.http_status, 429);
	assert_true(x->res.cls == ERR_QUOTA_MINUTE || x->res.cls == ERR_QUOTA_DAY);
	x = batch_status_find(&st, "c");
	assert_int_equal(x->res.cls, ERR_CAPACITY);
	x = batch_status_find(&st, "d");
	assert_int_equal(x->res.cls, ERR_SAFETY);
	assert_string_equal(x->res.finish_reason, "IMAGE_SAFETY");
	batch_status_free(&st);
	free(body);
	free(b64);
}

/* --- the emulator ---------------------------------------------------------- */

static pid_t emu_pid;
static char emu_url[64];

static int emu_start(void **state)
{
	(void)state;
	const char *bin = getenv("BANANAFS_EMULATOR");
	int fds[2];
	char line[256];
	FILE *f;

	http_global_init();
	if (!bin)
		bin = "build/bananafs-emulator";
	if (access(bin, X_OK) != 0)
		return 0;	/* the end-to-end tests skip */
	if (pipe(fds) < 0)
		return 0;
	emu_pid = fork();
	if (emu_pid == 0) {
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		int dn = open("/dev/null", O_WRONLY);
		if (dn >= 0)
			dup2(dn, 2);
		execl(bin, bin, "--listen", "127.0.0.1:0", "--batch-delay", "1", "--key", EMU_KEY, (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	f = fdopen(fds[0], "r");
	if (emu_pid < 0 || !f || !fgets(line, sizeof(line), f) ||
	    sscanf(line, "listening on %63s", emu_url) != 1) {
		emu_url[0] = '\0';
		if (emu_pid > 0)
			kill(emu_pid, SIGTERM);
	}
	if (f)
		fclose(f);
	return 0;
}

static int emu_stop(void **state)
{
	(void)state;
	if (emu_pid > 0) {
		kill(emu_pid, SIGTERM);
		waitpid(emu_pid, NULL, 0);
	}
	return 0;
}

/* One control call; the parsed JSON answer or NULL. */
static cJSON *emu_ctl(const char *method, const char *what, const char *body)
{
	struct http_req req = { .method = method };
	struct http_resp resp;
	struct http_opts o = { .connect_timeout_s = 5, .timeout_s = 10, .max_body = 1 << 20 };
	char err[256];
	cJSON *j = NULL;

	assert_true(asprintf(&req.url, "%s/_emulator/%s", emu_url, what) > 0);
	if (body) {
		req.body = strdup(body);
		req.body_len = strlen(body);
		req.headers[0] = strdup("Content-Type: application/json");
	}
	memset(&resp, 0, sizeof(resp));
	if (http_perform(&o, &req, &resp, err, sizeof(err)) == HTTP_OK && resp.status == 200)
		j = cJSON_ParseWithLength(resp.body, resp.len);
	http_resp_free(&resp);
	http_req_free(&req);
	return j;
}

static double emu_num(const char *p)
{
	cJSON *j = emu_ctl("GET", "stats", NULL);
	const cJSON *v = path(j, p);
	double d = cJSON_IsNumber(v) ? v->valuedouble : 0;

	cJSON_Delete(j);
	return d;
}

/* --- end-to-end fixture ---------------------------------------------------- */

#define MAX_DONE 64

struct done_rec {
	char job_ref[64];
	enum fetch_result result;
	enum fetch_source source;
	char key_hex[KEY_HEX_LEN];
	char batch_name[128];
	enum err_class cls;
	char msg[256];
	double cost;
};

struct fx {
	char dir[64];
	struct config cfg;
	struct store store;
	struct fetch_ctx f;
	bool open, started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct done_rec done[MAX_DONE];
	int ndone;
};

static void on_done(void *arg, const char *job_ref, const struct fetch_outcome *out)
{
	struct fx *x = arg;

	pthread_mutex_lock(&x->mu);
	if (x->ndone < MAX_DONE) {
		struct done_rec *d = &x->done[x->ndone++];

		snprintf(d->job_ref, sizeof(d->job_ref), "%s", job_ref);
		d->result = out->result;
		d->source = out->source;
		memcpy(d->key_hex, out->key_hex, KEY_HEX_LEN);
		snprintf(d->batch_name, sizeof(d->batch_name), "%s", out->batch_name);
		d->cls = out->res.cls;
		snprintf(d->msg, sizeof(d->msg), "%s", out->res.message ? out->res.message : "");
		d->cost = out->cost_usd;
		/* the object is in the store before anyone is told */
		if (out->result == FETCH_OK) {
			struct object_info oi;
			assert_int_equal(store_lookup(&x->store, &out->key, &oi), 1);
		}
	}
	pthread_cond_broadcast(&x->cv);
	pthread_mutex_unlock(&x->mu);
}

/* Waits until n callbacks came (or timeout_s passed); returns how many came. */
static int wait_done(struct fx *x, int n, double timeout_s)
{
	struct timespec ts;
	int got;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)timeout_s;
	pthread_mutex_lock(&x->mu);
	while (x->ndone < n && pthread_cond_timedwait(&x->cv, &x->mu, &ts) == 0)
		;
	got = x->ndone;
	pthread_mutex_unlock(&x->mu);
	return got;
}

static void fx_open(struct fx *x)
{
	char err[512] = "";

	assert_int_equal(store_open(&x->store, x->dir, err, sizeof(err)), 0);
	assert_int_equal(journal_init(&x->store), 0);
	assert_int_equal(fetch_open(&x->f, &x->cfg, &x->store, NULL, err, sizeof(err)), 0);
	x->open = true;
	assert_int_equal(batcher_start(&x->f, on_done, x, err, sizeof(err)), 0);
	x->started = true;
	assert_non_null(x->f.batcher);
}

static void fx_close(struct fx *x)
{
	if (x->started)
		batcher_stop(&x->f);
	x->started = false;
	assert_null(x->f.batcher);
	if (x->open) {
		fetch_close(&x->f);
		store_close(&x->store);
	}
	x->open = false;
}

static int setup(void **state)
{
	struct fx *x;

	if (!emu_url[0]) {
		*state = NULL;
		return 0;
	}
	x = calloc(1, sizeof(*x));
	assert_non_null(x);
	snprintf(x->dir, sizeof(x->dir), "/tmp/bananafs-batch-XXXXXX");
	assert_non_null(mkdtemp(x->dir));
	assert_int_equal(config_defaults(&x->cfg), 0);
	free(x->cfg.endpoint);
	x->cfg.endpoint = strdup(emu_url);
	x->cfg.api_key = strdup(EMU_KEY);
	x->cfg.batch_window_s = 1.0;	/* wide enough for ten fsynced submissions under sanitizers and load */
	x->cfg.batch_poll_s = 0.3;
	x->cfg.retries = 3;
	x->cfg.backoff_base_s = 0.1;
	x->cfg.backoff_cap_s = 0.2;
	x->cfg.timeout_s = 30;
	x->cfg.connect_timeout_s = 5;
	pthread_mutex_init(&x->mu, NULL);
	pthread_cond_init(&x->cv, NULL);
	cJSON_Delete(emu_ctl("POST", "reset", "{}"));
	*state = x;
	return 0;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb; (void)flag; (void)ftw;
	return remove(p);
}

static int teardown(void **state)
{
	struct fx *x = *state;

	if (!x)
		return 0;
	fx_close(x);
	config_free(&x->cfg);
	nftw(x->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(x);
	return 0;
}

#define NEED_EMULATOR(x)                                                   \
	do {                                                               \
		if (!(x)) {                                                \
			print_message("bananafs-emulator not built: skipped\n"); \
			skip();                                            \
		}                                                          \
	} while (0)

/* Sums the ledger: billed money, and lines of an outcome. */
static double ledger_sum(struct fx *x, const char *outcome, int *count)
{
	char p[128], line[8192];
	double sum = 0;
	FILE *f;

	*count = 0;
	snprintf(p, sizeof(p), "%s/ledger.jsonl", x->dir);
	f = fopen(p, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		cJSON *j = cJSON_Parse(line);
		const char *o = pstr(j, "outcome");

		assert_non_null(j);
		if (o && strcmp(o, outcome) == 0) {
			(*count)++;
			assert_string_equal(pstr(j, "route"), "batch");
		}
		if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "billed")))
			sum += cJSON_GetObjectItemCaseSensitive(j, "cost_usd")->valuedouble;
		cJSON_Delete(j);
	}
	fclose(f);
	return sum;
}

/*
 * The ok lines whose cost is their own token counts at the batch rates
 * (the emulator reported them; thinking and input priced too).
 */
static int ok_lines_priced_from_usage(struct fx *x)
{
	char p[128], line[8192];
	int n = 0;
	FILE *f;

	snprintf(p, sizeof(p), "%s/ledger.jsonl", x->dir);
	f = fopen(p, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		cJSON *j = cJSON_Parse(line);
		const char *o = pstr(j, "outcome"), *basis = pstr(j, "cost_basis");

		assert_non_null(j);
		if (o && strcmp(o, "ok") == 0 && basis && strcmp(basis, "usage") == 0) {
			struct token_usage u = {
				.text_in = (long)cJSON_GetObjectItem(j, "in_text_tokens")->valuedouble,
				.image_in = (long)cJSON_GetObjectItem(j, "in_image_tokens")->valuedouble,
				.image_out = (long)cJSON_GetObjectItem(j, "out_image_tokens")->valuedouble,
				.text_out = (long)cJSON_GetObjectItem(j, "out_text_tokens")->valuedouble,
				.thought = (long)cJSON_GetObjectItem(j, "thought_tokens")->valuedouble,
			};
			double want = rates_cost_usd(pstr(j, "model"), ROUTE_BATCH, &u);
			assert_true(u.image_out > 0 && want > 0);
			if (fabs(cJSON_GetObjectItem(j, "cost_usd")->valuedouble - want) < 1e-6)
				n++;
		}
		cJSON_Delete(j);
	}
	fclose(f);
	return n;
}

static int count_rows(const struct journal_bitem *it, void *arg)
{
	int *n = arg;

	if (strcmp(it->state, "submitted") == 0 && it->batch_name)
		n[0]++;
	n[1]++;
	return 0;
}

static char prompts[10][64];

static void submit_ten(struct fx *x, int from)
{
	for (int i = 0; i < 10; i++) {
		struct fetch_outcome out;
		char ref[32];

		snprintf(prompts[i], sizeof(prompts[i]), "a fox number %d", from + i);
		struct gen_request rq = req_for(prompts[i]);
		snprintf(ref, sizeof(ref), "job-%d", i);
		assert_int_equal(fetch_image_batch(&x->f, &rq, ref, ref, NULL, NULL, &out), FETCH_BATCH_PENDING);
		assert_int_equal(strlen(out.key_hex), 32);
		fetch_outcome_free(&out);
	}
}

static void test_ten_one_batch(void **state)
{
	struct fx *x = *state;
	int sent, ok;

	NEED_EMULATOR(x);
	fx_open(x);
	submit_ten(x, 0);
	assert_int_equal(wait_done(x, 10, 30), 10);
	for (int i = 0; i < 10; i++) {
		assert_int_equal(x->done[i].result, FETCH_OK);
		assert_int_equal(x->done[i].source, SRC_GENERATED);
		assert_int_equal(strncmp(x->done[i].batch_name, "batches/", 8), 0);
		assert_string_equal(x->done[i].batch_name, x->done[0].batch_name);
		struct cache_key k;
		struct object_info oi;
		assert_int_equal(key_from_hex(x->done[i].key_hex, &k), 0);
		assert_int_equal(store_lookup(&x->store, &k, &oi), 1);
		assert_string_equal(oi.ext, "png");
		assert_true(oi.width > 0);
	}
	assert_int_equal((int)emu_num("by_endpoint.batchGenerateContent"), 1);
	double billed = ledger_sum(x, "ok", &ok);
	ledger_sum(x, "sent", &sent);
	assert_int_equal(sent, 10);
	assert_int_equal(ok, 10);
	assert_true(billed > 0);
	assert_true(fabs(billed - emu_num("billed_usd")) < 1e-6);
	/* settled from each answer's tokens at half the rates: Pro's thinking makes it more than the estimate */
	assert_int_equal(ok_lines_priced_from_usage(x), 10);
	assert_true(billed > 10 * price_usd("gemini-3-pro-image", "1K", ROUTE_BATCH));
	int rows[2] = { 0, 0 };
	assert_int_equal(journal_bitem_foreach(&x->store, count_rows, rows), 0);
	assert_int_equal(rows[1], 0);	/* every row gone */

	/* the same prompt again is a free cache hit */
	struct fetch_outcome out;
	struct gen_request rq = req_for(prompts[3]);
	assert_int_equal(fetch_image_batch(&x->f, &rq, "again", "again", NULL, NULL, &out), FETCH_OK);
	assert_int_equal(out.source, SRC_CACHE);
	fetch_outcome_free(&out);
	assert_int_equal((int)emu_num("by_endpoint.batchGenerateContent"), 1);
}

static void test_resume_after_stop(void **state)
{
	struct fx *x = *state;
	int rows[2] = { 0, 0 }, ok, sent;

	NEED_EMULATOR(x);
	fx_open(x);
	submit_ten(x, 100);
	/* wait until the job is created and its name is on every row */
	for (int i = 0; i < 100 && rows[0] < 10; i++) {
		usleep(50 * 1000);
		rows[0] = rows[1] = 0;
		assert_int_equal(journal_bitem_foreach(&x->store, count_rows, rows), 0);
	}
	assert_int_equal(rows[0], 10);
	assert_int_equal((int)emu_num("by_endpoint.batchGenerateContent"), 1);
	fx_close(x);		/* unmount mid-poll: the batch takes 1 s */
	assert_true(x->ndone < 10);
	int before = x->ndone;

	fx_open(x);		/* mount again on the same store */
	assert_int_equal(wait_done(x, 10, 30), 10);
	assert_true(before == 0 || before < 10);
	for (int i = 0; i < 10; i++)
		assert_int_equal(x->done[i].result, FETCH_OK);
	assert_int_equal((int)emu_num("by_endpoint.batchGenerateContent"), 1);
	double billed = ledger_sum(x, "ok", &ok);
	ledger_sum(x, "sent", &sent);
	assert_int_equal(sent, 10);	/* nothing resent after the restart */
	assert_int_equal(ok, 10);
	assert_true(fabs(billed - emu_num("billed_usd")) < 1e-6);
}

static void test_coalesce_one_key(void **state)
{
	struct fx *x = *state;
	struct fetch_outcome out;
	struct gen_request rq = req_for("one fox, three prompts");
	int sent;

	NEED_EMULATOR(x);
	fx_open(x);
	assert_int_equal(fetch_image_batch(&x->f, &rq, "a", "ref-a", NULL, NULL, &out), FETCH_BATCH_PENDING);
	fetch_outcome_free(&out);
	assert_int_equal(fetch_image_batch(&x->f, &rq, "b", "ref-b", NULL, NULL, &out), FETCH_BATCH_PENDING);
	assert_int_equal(out.source, SRC_COALESCED);
	fetch_outcome_free(&out);
	/* the same job_ref again (a re-run) adds nothing */
	assert_int_equal(fetch_image_batch(&x->f, &rq, "a", "ref-a", NULL, NULL, &out), FETCH_BATCH_PENDING);
	fetch_outcome_free(&out);
	assert_int_equal(wait_done(x, 2, 30), 2);
	usleep(300 * 1000);
	assert_int_equal(x->ndone, 2);
	assert_string_equal(x->done[0].job_ref, "ref-a");
	assert_string_equal(x->done[1].job_ref, "ref-b");
	assert_int_equal(x->done[0].result, FETCH_OK);
	assert_int_equal(x->done[1].result, FETCH_OK);
	assert_int_equal((int)emu_num("generations"), 1);
	double billed = ledger_sum(x, "sent", &sent);
	assert_int_equal(sent, 1);
	assert_true(fabs(billed - emu_num("billed_usd")) < 1e-6);
}

static void test_budget_and_dry_run(void **state)
{
	struct fx *x = *state;
	struct fetch_outcome out;
	struct gen_request a = req_for("budget fox a"), b = req_for("budget fox b");
	double p = price_usd("gemini-3-pro-image", "1K", ROUTE_BATCH);

	NEED_EMULATOR(x);
	x->cfg.budget_total_usd = p * 1.5;	/* room for one batch image */
	fx_open(x);
	assert_int_equal(fetch_image_batch(&x->f, &a, "a", "a", NULL, NULL, &out), FETCH_BATCH_PENDING);
	assert_true(fabs(out.cost_usd - p) < 1e-9);
	fetch_outcome_free(&out);
	assert_int_equal(fetch_image_batch(&x->f, &b, "b", "b", NULL, NULL, &out), FETCH_REFUSED_BUDGET);
	assert_non_null(strstr(out.why, "budget"));
	fetch_outcome_free(&out);
	assert_int_equal(wait_done(x, 1, 30), 1);
	assert_int_equal(x->done[0].result, FETCH_OK);
	fx_close(x);

	x->cfg.dry_run = true;
	x->cfg.budget_total_usd = -1;
	fx_open(x);
	assert_int_equal(fetch_image_batch(&x->f, &b, "b", "b", NULL, NULL, &out), FETCH_DRY_RUN);
	assert_true(fabs(out.cost_usd - p) < 1e-9);
	fetch_outcome_free(&out);
	usleep(500 * 1000);
	assert_int_equal((int)emu_num("by_endpoint.batchGenerateContent"), 1);
}

static void test_create_failures(void **state)
{
	struct fx *x = *state;
	struct fetch_outcome out;
	struct gen_request a = req_for("a fox behind a 503"), b = req_for("a fox behind a 403");
	int sent, failed;

	NEED_EMULATOR(x);
	fx_open(x);
	/* a transient 503 at create: gathered again, sent again, then made */
	cJSON_Delete(emu_ctl("POST", "fault", "{\"kind\":\"503\",\"count\":1}"));
	assert_int_equal(fetch_image_batch(&x->f, &a, "a", "a", NULL, NULL, &out), FETCH_BATCH_PENDING);
	fetch_outcome_free(&out);
	assert_int_equal(wait_done(x, 1, 30), 1);
	assert_int_equal(x->done[0].result, FETCH_OK);
	assert_int_equal((int)emu_num("by_endpoint.batchGenerateContent"), 2);
	ledger_sum(x, "sent", &sent);
	assert_int_equal(sent, 2);

	/* a permanent 403: the item fails with the classification, nothing billed */
	cJSON_Delete(emu_ctl("POST", "fault", "{\"kind\":\"403\",\"count\":1}"));
	assert_int_equal(fetch_image_batch(&x->f, &b, "b", "b", NULL, NULL, &out), FETCH_BATCH_PENDING);
	fetch_outcome_free(&out);
	assert_int_equal(wait_done(x, 2, 30), 2);
	assert_int_equal(x->done[1].result, FETCH_FAILED);
	assert_int_equal(x->done[1].cls, ERR_PERMISSION);
	assert_true(x->done[1].cost == 0);
	double billed = ledger_sum(x, "failed", &failed);
	assert_int_equal(failed, 1);
	assert_true(fabs(billed - emu_num("billed_usd")) < 1e-6);
}

/* A GET on the emulator's API with the key; parsed answer or NULL. */
static cJSON *emu_api_get(const char *rest)
{
	struct http_req req = { .method = "GET" };
	struct http_resp resp;
	struct http_opts o = { .connect_timeout_s = 5, .timeout_s = 10, .max_body = 64 << 20 };
	char err[256];
	cJSON *j = NULL;

	assert_true(asprintf(&req.url, "%s/v1beta/%s", emu_url, rest) > 0);
	req.headers[0] = strdup("x-goog-api-key: " EMU_KEY);
	memset(&resp, 0, sizeof(resp));
	if (http_perform(&o, &req, &resp, err, sizeof(err)) == HTTP_OK && resp.status == 200)
		j = cJSON_ParseWithLength(resp.body, resp.len);
	http_resp_free(&resp);
	http_req_free(&req);
	return j;
}

static void test_large_goes_by_file(void **state)
{
	struct fx *x = *state;
	size_t big = 8u << 20;		/* two of these in base64 pass the 20 MB inline limit */
	unsigned char *bytes = malloc(big);
	struct ref_image ref = { .mime = "image/png", .data = bytes, .len = big };
	struct gen_request a = req_for("edit this, first"), b = req_for("edit this, second");
	struct fetch_outcome out;

	NEED_EMULATOR(x);
	assert_non_null(bytes);
	for (size_t i = 0; i < big; i++)
		bytes[i] = (unsigned char)(i * 2654435761u >> 13);
	key_hash_bytes(bytes, big, ref.hash);
	a.refs = b.refs = &ref;
	a.nrefs = b.nrefs = 1;
	x->cfg.batch_window_s = 3;	/* building an 8 MB request takes longer than 0.2 s */
	fx_open(x);
	assert_int_equal(fetch_image_batch(&x->f, &a, "a", "a", NULL, NULL, &out), FETCH_BATCH_PENDING);
	fetch_outcome_free(&out);
	assert_int_equal(fetch_image_batch(&x->f, &b, "b", "b", NULL, NULL, &out), FETCH_BATCH_PENDING);
	fetch_outcome_free(&out);
	assert_int_equal(wait_done(x, 2, 60), 2);
	assert_int_equal(x->done[0].result, FETCH_OK);
	assert_int_equal(x->done[1].result, FETCH_OK);
	assert_int_equal((int)emu_num("by_endpoint.batchGenerateContent"), 1);
	/* the job was created from an uploaded JSONL file, not inline */
	cJSON *j = emu_api_get(x->done[0].batch_name);
	assert_non_null(j);
	const char *fn = pstr(j, "metadata.inputConfig.fileName");
	assert_non_null(fn);
	assert_int_equal(strncmp(fn, "files/", 6), 0);
	cJSON_Delete(j);
	free(bytes);
}

int main(void)
{
	const struct CMUnitTest wire[] = {
		cmocka_unit_test(test_create_inline_shape),
		cmocka_unit_test(test_parse_create_and_states),
		cmocka_unit_test(test_parse_inline_results),
		cmocka_unit_test(test_parse_results_file),
	};
	const struct CMUnitTest e2e[] = {
		cmocka_unit_test_setup_teardown(test_ten_one_batch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resume_after_stop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_coalesce_one_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_budget_and_dry_run, setup, teardown),
		cmocka_unit_test_setup_teardown(test_create_failures, setup, teardown),
		cmocka_unit_test_setup_teardown(test_large_goes_by_file, setup, teardown),
	};
	int rc = cmocka_run_group_tests_name("batch wire", wire, NULL, NULL);

	rc += cmocka_run_group_tests_name("batcher against the emulator", e2e, emu_start, emu_stop);
	return rc;
}
