/*
 * batch.c - the Batch API wire format (gemini-wire.md section 3).
 *
 * Batch lines are generateContent requests and results are generateContent
 * answers, so both go through route_generate's builder and parser: a batch
 * image passes exactly the checks a synchronous one does.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/errbuf.h"
#include "api/batch.h"
#include "api/errors.h"
#include "api/image.h"
#include "api/redact.h"
#include "api/wire.h"

/* --- requests -------------------------------------------------------------- */

char *batch_request_json(const struct gen_request *rq, char *err, size_t errlen)
{
	/* The builder wants an endpoint for its URL; only the body is kept. */
	static const struct api_endpoint dummy = { "http://127.0.0.1", "v1beta", "", 0, 0, NULL };
	struct http_req req;
	cJSON *root;
	char *model = NULL, *out = NULL;

	if (route_generate.build(&dummy, rq, &req, err, errlen) != 0)
		return NULL;
	root = cJSON_ParseWithLength(req.body, req.body_len);
	http_req_free(&req);
	if (!root || asprintf(&model, "models/%s", rq->model) < 0) {
		model = NULL;
		goto out_fail;
	}
	/* the SDK puts "model" first inside each batch request */
	cJSON *m = cJSON_CreateString(model);
	if (!m || !cJSON_InsertItemInArray(root, 0, m)) {
		cJSON_Delete(m);
		goto out_fail;
	}
	if (!(m->string = strdup("model")))
		goto out_fail;
	out = cJSON_PrintUnformatted(root);
	if (!out)
		goto out_fail;
	cJSON_Delete(root);
	free(model);
	return out;
out_fail:
	cJSON_Delete(root);
	free(model);
	errbuf_set(err, errlen, "cannot build the batch request JSON (out of memory)");
	return NULL;
}

static int base_headers(struct http_req *out, const struct api_endpoint *ep)
{
	return wire_auth(out, ep, false) || wire_header(out, "Content-Type: application/json") ? -1 : 0;
}

static const char *ver(const struct api_endpoint *ep)
{
	return ep->api_version ? ep->api_version : "v1beta";
}

static int bad_model(const char *model, char *err, size_t errlen)
{
	if (!model || !*model || strpbrk(model, "/?#:% ")) {
		errbuf_set(err, errlen, "the model id cannot go into a URL path");
		return 1;
	}
	return 0;
}

static int create_start(const struct api_endpoint *ep, const char *model, struct http_req *out)
{
	out->method = "POST";
	out->url = wire_url(ep->base_url, "%s/models/%s:batchGenerateContent", ver(ep), model);
	return !out->url || base_headers(out, ep) ? -1 : 0;
}

int batch_build_create_inline(const struct api_endpoint *ep, const char *model, const char *display,
			      const struct batch_line *lines, int n, struct http_req *out,
			      char *err, size_t errlen)
{
	cJSON *root = NULL, *batch, *ic, *rq, *arr, *item, *r, *md;

	memset(out, 0, sizeof(*out));
	if (bad_model(model, err, errlen))
		return -1;
	if (create_start(ep, model, out))
		goto out_fail;
	root = cJSON_CreateObject();
	if (!root || !(batch = cJSON_AddObjectToObject(root, "batch")) ||
	    !cJSON_AddStringToObject(batch, "displayName", display ? display : "bananafs") ||
	    !(ic = cJSON_AddObjectToObject(batch, "inputConfig")) ||
	    !(rq = cJSON_AddObjectToObject(ic, "requests")) ||
	    !(arr = cJSON_AddArrayToObject(rq, "requests")))
		goto out_fail;
	for (int i = 0; i < n; i++) {
		r = cJSON_Parse(lines[i].request_json);
		if (!r || !(item = cJSON_CreateObject())) {
			cJSON_Delete(r);
			goto out_fail;
		}
		cJSON_AddItemToArray(arr, item);
		cJSON_AddItemToObject(item, "request", r);
		if (!(md = cJSON_AddObjectToObject(item, "metadata")) ||
		    !cJSON_AddStringToObject(md, "key", lines[i].key))
			goto out_fail;
	}
	if (wire_body(out, root))
		goto out_fail;
	cJSON_Delete(root);
	return 0;
out_fail:
	cJSON_Delete(root);
	http_req_free(out);
	errbuf_set(err, errlen, "cannot build the batch create request (out of memory or bad request)");
	return -1;
}

/* "generationConfig" -> "generation_config", in place on every object key. */
static int snake_keys(cJSON *j)
{
	cJSON *c;

	cJSON_ArrayForEach(c, j) {
		if (c->string && !(c->type & cJSON_StringIsConst)) {
			size_t n = strlen(c->string), k = 0;
			char *s = malloc(2 * n + 1);

			if (!s)
				return -1;
			for (size_t i = 0; i < n; i++) {
				unsigned char ch = (unsigned char)c->string[i];
				if (isupper(ch)) {
					if (k)
						s[k++] = '_';
					s[k++] = (char)tolower(ch);
				} else {
					s[k++] = (char)ch;
				}
			}
			s[k] = '\0';
			free(c->string);
			c->string = s;
		}
		if ((cJSON_IsObject(c) || cJSON_IsArray(c)) && snake_keys(c))
			return -1;
	}
	return 0;
}

char *batch_jsonl(const struct batch_line *lines, int n, size_t *len)
{
	char *buf = NULL;
	size_t used = 0, cap = 0;

	for (int i = 0; i < n; i++) {
		cJSON *line = cJSON_CreateObject(), *r = cJSON_Parse(lines[i].request_json);
		char *s = NULL;

		if (!line || !r || snake_keys(r) || !cJSON_AddStringToObject(line, "key", lines[i].key)) {
			cJSON_Delete(r);
			goto out_fail_line;
		}
		cJSON_AddItemToObject(line, "request", r);
		if (!(s = cJSON_PrintUnformatted(line)))
			goto out_fail_line;
		size_t sl = strlen(s);
		if (used + sl + 2 > cap) {
			size_t ncap = (used + sl + 2) * 2;
			char *g = realloc(buf, ncap);
			if (!g)
				goto out_fail_line;
			buf = g;
			cap = ncap;
		}
		memcpy(buf + used, s, sl);
		used += sl;
		buf[used++] = '\n';
		buf[used] = '\0';
		free(s);
		cJSON_Delete(line);
		continue;
out_fail_line:
		free(s);
		cJSON_Delete(line);
		free(buf);
		return NULL;
	}
	if (!buf && !(buf = calloc(1, 1)))
		return NULL;
	*len = used;
	return buf;
}

int batch_build_upload_start(const struct api_endpoint *ep, const char *display, size_t bytes,
			     struct http_req *out, char *err, size_t errlen)
{
	cJSON *root = NULL, *file;

	memset(out, 0, sizeof(*out));
	out->method = "POST";
	out->url = wire_url(ep->base_url, "upload/%s/files", ver(ep));
	if (!out->url || base_headers(out, ep) ||
	    wire_header(out, "X-Goog-Upload-Protocol: resumable") ||
	    wire_header(out, "X-Goog-Upload-Command: start") ||
	    wire_header(out, "X-Goog-Upload-Header-Content-Length: %zu", bytes) ||
	    wire_header(out, "X-Goog-Upload-Header-Content-Type: application/jsonl"))
		goto out_fail;
	if (!(root = cJSON_CreateObject()) || !(file = cJSON_AddObjectToObject(root, "file")) ||
	    !cJSON_AddStringToObject(file, "display_name", display ? display : "bananafs") ||
	    wire_body(out, root))
		goto out_fail;
	cJSON_Delete(root);
	return 0;
out_fail:
	cJSON_Delete(root);
	http_req_free(out);
	errbuf_set(err, errlen, "cannot build the upload start request");
	return -1;
}

int batch_build_upload_finish(const char *upload_url, const char *data, size_t len,
			      struct http_req *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	out->method = "POST";
	/* the upload URL is its own credential: no key goes with it */
	if (!upload_url || !*upload_url || strpbrk(upload_url, "\r\n") ||
	    !(out->url = strdup(upload_url)) ||
	    wire_header(out, "X-Goog-Upload-Command: upload, finalize") ||
	    wire_header(out, "X-Goog-Upload-Offset: 0") ||
	    wire_header(out, "Content-Type: application/jsonl") ||
	    !(out->body = malloc(len + 1)))
		goto out_fail;
	memcpy(out->body, data, len);
	out->body[len] = '\0';
	out->body_len = len;
	return 0;
out_fail:
	http_req_free(out);
	errbuf_set(err, errlen, "cannot build the upload request (no upload URL or out of memory)");
	return -1;
}

int batch_parse_upload(const struct http_resp *resp, char *name, size_t namelen, char *err, size_t errlen)
{
	cJSON *root = resp->body ? cJSON_ParseWithLength(resp->body, resp->len) : NULL;
	const char *n = wire_str(cJSON_GetObjectItemCaseSensitive(root, "file"), "name");
	int rc = -1;

	if (!n)
		n = wire_str(root, "name");
	if (n && strncmp(n, "files/", 6) == 0 && strlen(n) < namelen) {
		snprintf(name, namelen, "%s", n);
		rc = 0;
	} else {
		errbuf_set(err, errlen, "the upload answer names no file");
	}
	cJSON_Delete(root);
	return rc;
}

int batch_build_create_file(const struct api_endpoint *ep, const char *model, const char *display,
			    const char *file_name, struct http_req *out, char *err, size_t errlen)
{
	cJSON *root = NULL, *batch, *ic;
	char m[160];

	memset(out, 0, sizeof(*out));
	if (bad_model(model, err, errlen))
		return -1;
	if (snprintf(m, sizeof(m), "models/%s", model) >= (int)sizeof(m) || create_start(ep, model, out))
		goto out_fail;
	if (!(root = cJSON_CreateObject()) || !(batch = cJSON_AddObjectToObject(root, "batch")) ||
	    !cJSON_AddStringToObject(batch, "displayName", display ? display : "bananafs") ||
	    !cJSON_AddStringToObject(batch, "model", m) ||
	    !(ic = cJSON_AddObjectToObject(batch, "inputConfig")) ||
	    !cJSON_AddStringToObject(ic, "fileName", file_name) || wire_body(out, root))
		goto out_fail;
	cJSON_Delete(root);
	return 0;
out_fail:
	cJSON_Delete(root);
	http_req_free(out);
	errbuf_set(err, errlen, "cannot build the batch create request");
	return -1;
}

/* A name like "batches/abc" or "files/abc": one safe path segment after the prefix. */
static bool name_ok(const char *name, const char *prefix)
{
	size_t pl = strlen(prefix);

	if (!name || strncmp(name, prefix, pl) != 0 || !name[pl])
		return false;
	for (const char *p = name + pl; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.')
			return false;
	return true;
}

/* A GET of NAME (which must start with prefix) plus suffix, on the API's own base. */
static int build_named_get(const struct api_endpoint *ep, const char *name, const char *prefix,
			   const char *suffix, const char *what, struct http_req *out,
			   char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (!name_ok(name, prefix)) {
		errbuf_set(err, errlen, "bad %s name", what);
		return -1;
	}
	out->method = "GET";
	out->url = wire_url(ep->base_url, "%s/%s%s", ver(ep), name, suffix);
	if (!out->url || wire_auth(out, ep, false)) {
		http_req_free(out);
		errbuf_set(err, errlen, "cannot build the %s request", what);
		return -1;
	}
	return 0;
}

int batch_build_get(const struct api_endpoint *ep, const char *name, struct http_req *out,
		    char *err, size_t errlen)
{
	return build_named_get(ep, name, "batches/", "", "batch", out, err, errlen);
}

int batch_build_download(const struct api_endpoint *ep, const char *file, struct http_req *out,
			 char *err, size_t errlen)
{
	return build_named_get(ep, file, "files/", ":download?alt=media", "results file", out, err,
			       errlen);
}

/* --- answers --------------------------------------------------------------- */

static const struct {
	const char *suffix;
	enum batch_state st;
	const char *name;
} states[] = {
	{ "PENDING", BATCH_PENDING, "pending" },
	{ "RUNNING", BATCH_RUNNING, "running" },
	{ "SUCCEEDED", BATCH_SUCCEEDED, "succeeded" },
	{ "FAILED", BATCH_FAILED, "failed" },
	{ "CANCELLED", BATCH_CANCELLED, "cancelled" },
	{ "EXPIRED", BATCH_EXPIRED, "expired" },
};

enum batch_state batch_state_parse(const char *s)
{
	if (!s)
		return BATCH_UNKNOWN;
	if (strncmp(s, "BATCH_STATE_", 12) == 0)
		s += 12;
	else if (strncmp(s, "JOB_STATE_", 10) == 0)
		s += 10;
	else
		return BATCH_UNKNOWN;
	for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++)
		if (strcmp(s, states[i].suffix) == 0)
			return states[i].st;
	return BATCH_UNKNOWN;
}

const char *batch_state_name(enum batch_state s)
{
	for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++)
		if (states[i].st == s)
			return states[i].name;
	return "unknown";
}

bool batch_state_terminal_failure(enum batch_state s)
{
	return s == BATCH_FAILED || s == BATCH_CANCELLED || s == BATCH_EXPIRED;
}

static void result_init(struct gen_result *r)
{
	memset(r, 0, sizeof(*r));
	r->quota_value = -1;
	r->retry_after_s = -1;
	r->in_tokens = r->out_tokens = r->thought_tokens = -1;
}

/* A result's "response" through the generateContent parser and the image check. */
static void parse_response(const cJSON *response, struct gen_result *res)
{
	struct http_resp fake = { .status = 200, .retry_after_s = -1 };

	fake.body = cJSON_PrintUnformatted(response);
	if (!fake.body) {
		gen_result_fail(res, ERR_MALFORMED, "out of memory reading a batch result");
		return;
	}
	fake.len = strlen(fake.body);
	route_generate.parse(&fake, res);
	res->http_status = 200;
	if (res->cls == ERR_NONE) {
		char why[128];
		int w, h;

		if (!res->image || image_check(res->image, res->image_len, &w, &h, why, sizeof(why)) != 0) {
			gen_result_fail(res, ERR_MALFORMED, "the batch result's image is not valid%s%s",
					res->image ? ": " : "", res->image ? why : "");
		} else {
			res->width = w;
			res->height = h;
		}
	}
	free(fake.body);
}

/* A per-request error ({"code","message","status"}) through errors_parse. */
static void parse_error(const cJSON *error, struct gen_result *res)
{
	struct http_resp fake = { .retry_after_s = -1 };
	cJSON *wrap = cJSON_CreateObject();
	long code = wire_long(error, "code");

	fake.status = code >= 100 && code < 600 ? code : 500;
	if (!wrap || !cJSON_AddItemReferenceToObject(wrap, "error", (cJSON *)error) ||
	    !(fake.body = cJSON_PrintUnformatted(wrap))) {
		cJSON_Delete(wrap);
		gen_result_fail(res, ERR_MALFORMED, "out of memory reading a batch error");
		return;
	}
	cJSON_Delete(wrap);
	fake.len = strlen(fake.body);
	errors_parse(&fake, res);
	free(fake.body);
}

static int add_result(struct batch_status *st, const char *key, const cJSON *response, const cJSON *error)
{
	struct batch_result *g, *r;

	g = realloc(st->results, (size_t)(st->nresults + 1) * sizeof(*g));
	if (!g)
		return -1;
	st->results = g;
	r = &st->results[st->nresults++];
	memset(r, 0, sizeof(*r));
	wire_copy(r->key, sizeof(r->key), key);
	result_init(&r->res);
	if (cJSON_IsObject(response))
		parse_response(response, &r->res);
	else if (cJSON_IsObject(error))
		parse_error(error, &r->res);
	else
		gen_result_fail(&r->res, ERR_MALFORMED, "the batch result has neither a response nor an error");
	redact_result(&r->res, NULL);	/* key shapes and labels; the key itself is caught by the batcher */
	return 0;
}

static const cJSON *obj(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsObject(v) ? v : NULL;
}

/* {"inlinedResponses":[...]} inside an output object. */
static int take_inline(struct batch_status *st, const cJSON *out)
{
	const cJSON *w = cJSON_GetObjectItemCaseSensitive(out, "inlinedResponses"), *arr, *x;

	arr = cJSON_IsArray(w) ? w : cJSON_GetObjectItemCaseSensitive(w, "inlinedResponses");
	if (!cJSON_IsArray(arr))
		return 0;
	cJSON_ArrayForEach(x, arr) {
		const char *key = wire_str(obj(x, "metadata"), "key");
		const cJSON *err = obj(x, "error");

		if (!key)
			continue;	/* cannot be matched to a request */
		if (add_result(st, key, obj(x, "response"), err ? err : obj(x, "status")) < 0)
			return -1;
	}
	st->have_results = true;
	return 0;
}

int batch_parse_status(const struct http_resp *resp, struct batch_status *st, char *err, size_t errlen)
{
	cJSON *root;
	const cJSON *md, *out, *e;
	const char *s;
	int rc = -1;

	memset(st, 0, sizeof(*st));
	root = resp->body ? cJSON_ParseWithLength(resp->body, resp->len) : NULL;
	if (!cJSON_IsObject(root)) {
		errbuf_set(err, errlen, "the batch answer is not a JSON object");
		goto out_delete;
	}
	md = obj(root, "metadata");
	s = wire_str(root, "name");
	if (!s || strncmp(s, "batches/", 8) != 0)
		s = wire_str(md, "name");
	if (!s || !name_ok(s, "batches/") || strlen(s) >= sizeof(st->name)) {
		errbuf_set(err, errlen, "the batch answer names no batch");
		goto out_delete;
	}
	wire_copy(st->name, sizeof(st->name), s);
	st->state = batch_state_parse(wire_str(md, "state"));
	if (st->state == BATCH_UNKNOWN)
		st->state = batch_state_parse(wire_str(root, "state"));
	st->done = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "done"));

	/* results: response first, metadata.output mirrors it */
	const cJSON *outs[2] = { obj(root, "response"), obj(md, "output") };
	for (int i = 0; i < 2 && !st->have_results && !st->responses_file[0]; i++) {
		out = outs[i];
		if (!out)
			continue;
		if (take_inline(st, out) < 0) {
			errbuf_set(err, errlen, "out of memory reading batch results");
			goto out_delete;
		}
		s = wire_str(out, "responsesFile");
		if (s && name_ok(s, "files/"))
			wire_copy(st->responses_file, sizeof(st->responses_file), s);
	}

	e = obj(root, "error");
	if (e) {
		const char *m = wire_str(e, "message");
		snprintf(st->error, sizeof(st->error), "the batch failed: %s", m ? m : "no message");
		redact_buf(st->error, sizeof(st->error), NULL);
		if (!batch_state_terminal_failure(st->state))
			st->state = BATCH_FAILED;
	}
	if (!st->error[0]) {
		switch (st->state) {
		case BATCH_FAILED:
			snprintf(st->error, sizeof(st->error), "the batch failed");
			break;
		case BATCH_CANCELLED:
			snprintf(st->error, sizeof(st->error), "the batch was cancelled");
			break;
		case BATCH_EXPIRED:
			snprintf(st->error, sizeof(st->error), "batch expired after 48 h without results");
			break;
		default:
			break;
		}
	}
	rc = 0;
out_delete:
	cJSON_Delete(root);
	if (rc)
		batch_status_free(st);
	return rc;
}

int batch_parse_results_jsonl(const char *body, size_t len, struct batch_status *st,
			      char *err, size_t errlen)
{
	size_t i = 0;

	while (i < len) {
		size_t e = i;

		while (e < len && body[e] != '\n')
			e++;
		cJSON *line = cJSON_ParseWithLength(body + i, e - i);
		const char *key = wire_str(line, "key");

		if (cJSON_IsObject(line) && key) {
			const cJSON *er = obj(line, "error");
			if (add_result(st, key, obj(line, "response"), er ? er : obj(line, "status")) < 0) {
				cJSON_Delete(line);
				errbuf_set(err, errlen, "out of memory reading batch results");
				return -1;
			}
		}
		cJSON_Delete(line);
		i = e + 1;
	}
	st->have_results = true;
	return 0;
}

struct batch_result *batch_status_find(struct batch_status *st, const char *key)
{
	for (int i = 0; i < st->nresults; i++)
		if (strcmp(st->results[i].key, key) == 0)
			return &st->results[i];
	return NULL;
}

void batch_status_free(struct batch_status *st)
{
	for (int i = 0; i < st->nresults; i++)
		gen_result_free(&st->results[i].res);
	free(st->results);
	st->results = NULL;
	st->nresults = 0;
	st->have_results = false;
}
