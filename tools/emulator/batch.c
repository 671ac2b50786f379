/* Batch API (gemini-wire.md section 3): jobs move PENDING -> RUNNING ->
 * SUCCEEDED on the --batch-delay clock; results are rendered at the first
 * poll that sees SUCCEEDED and billed at half price. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emu.h"

struct batch {
	struct batch *next;
	char id[41];
	char model[128];        /* bare model id */
	char display[128];
	char input_file[96];    /* "files/..." or "" for inline input */
	cJSON *reqs;            /* array of {"key","request"} */
	double created_wall, created_mono;
	double end_wall;        /* 0 until terminal */
	bool cancelled;
	bool done;              /* results rendered */
	int ok, failed;
	cJSON *inlined;         /* inline results array, when done */
	char out_file[96];      /* results file, when done (file input) */
};

static pthread_mutex_t batch_mu = PTHREAD_MUTEX_INITIALIZER;
static struct batch *batches;   /* protected by batch_mu, newest first */

static const char *bare(const char *id, const char *prefix)
{
	size_t n = strlen(prefix);
	return strncmp(id, prefix, n) == 0 ? id + n : id;
}

/* Caller holds batch_mu. */
static struct batch *find_locked(const char *id)
{
	id = bare(id, "batches/");
	for (struct batch *b = batches; b; b = b->next)
		if (!strcmp(b->id, id))
			return b;
	return NULL;
}

static void batch_free(struct batch *b)
{
	cJSON_Delete(b->reqs);
	cJSON_Delete(b->inlined);
	free(b);
}

static const char *state_of(const struct batch *b)
{
	if (b->cancelled)
		return "BATCH_STATE_CANCELLED";
	double el = util_mono() - b->created_mono;
	int d = emu_opt.batch_delay_s;
	if (d == 0 || el >= d)
		return "BATCH_STATE_SUCCEEDED";
	return el < d / 3.0 ? "BATCH_STATE_PENDING" : "BATCH_STATE_RUNNING";
}

/* Renders one request; returns the response or an error object in *err. */
static cJSON *run_one(const struct batch *b, const cJSON *request, cJSON **err)
{
	struct gen_req g;
	struct gen_out o;
	struct emu_err e;
	cJSON *resp = NULL;

	gen_init(&g, "batchGenerateContent", AUTH_KEY);
	const char *m = json_str2(request, "model", NULL);
	snprintf(g.model, sizeof g.model, "%s", bare(m ? m : b->model, "models/"));
	if (!gc_parse_request(request, &g, &e) || !gen_validate(&g, &e))
		goto fail;
	if (g.no_image) {
		resp = gc_answer_json(&g, NULL, "I can only describe it.");
		gen_log(&g, 200);
		gen_free(&g);
		return resp;
	}
	if (!gen_render(&g, &o, NULL)) {
		err_set(&e, 500, "INTERNAL", "api_error", "An internal error has occurred.");
		goto fail;
	}
	resp = gc_answer_json(&g, &o, EMU_IMAGE_TEXT);
	struct gen_usage us;
	gen_usage(&g, true, EMU_IMAGE_TEXT, &us);
	gen_bill(&g, &us, "batch");
	gen_out_free(&o);
	gen_log(&g, 200);
	gen_free(&g);
	return resp;
fail:
	*err = cJSON_CreateObject();
	cJSON_AddNumberToObject(*err, "code", e.http);
	cJSON_AddStringToObject(*err, "message", e.msg);
	cJSON_AddStringToObject(*err, "status", e.grpc);
	gen_log(&g, e.http);
	gen_free(&g);
	return NULL;
}

/* Caller holds batch_mu. */
static void finish_locked(struct batch *b)
{
	struct buf jsonl = { 0 };
	cJSON *inl = b->input_file[0] ? NULL : cJSON_CreateArray();
	cJSON *x;
	cJSON_ArrayForEach(x, b->reqs) {
		const char *key = json_str2(x, "key", NULL);
		cJSON *err = NULL;
		cJSON *resp = run_one(b, json_get2(x, "request", NULL), &err);
		if (resp)
			b->ok++;
		else
			b->failed++;
		cJSON *item = cJSON_CreateObject();
		if (inl) {
			cJSON_AddItemToObject(item, resp ? "response" : "error",
					      resp ? resp : err);
			cJSON *md = cJSON_AddObjectToObject(item, "metadata");
			cJSON_AddStringToObject(md, "key", key ? key : "");
			cJSON_AddItemToArray(inl, item);
		} else {
			cJSON_AddStringToObject(item, "key", key ? key : "");
			cJSON_AddItemToObject(item, resp ? "response" : "error",
					      resp ? resp : err);
			char *line = json_print(item, NULL);
			if (line) {
				buf_adds(&jsonl, line);
				buf_adds(&jsonl, "\n");
				free(line);
			}
			cJSON_Delete(item);
		}
	}
	if (inl) {
		b->inlined = inl;
	} else {
		snprintf(b->out_file, sizeof b->out_file, "files/batch-%s", b->id);
		files_put(b->out_file, b->display, "application/jsonl",
			  jsonl.data ? jsonl.data : "", jsonl.len);
		buf_free(&jsonl);
	}
	b->done = true;
	b->end_wall = util_now();
}

static void add_i64(cJSON *o, const char *k, long v)
{
	char s[24];
	snprintf(s, sizeof s, "%ld", v);
	cJSON_AddStringToObject(o, k, s);
}

/* Caller holds batch_mu.  Finishes the job when its time has come. */
static cJSON *batch_json_locked(struct batch *b, bool fresh)
{
	const char *st = fresh ? "BATCH_STATE_PENDING" : state_of(b);
	bool succeeded = !strcmp(st, "BATCH_STATE_SUCCEEDED");
	if (succeeded && !b->done)
		finish_locked(b);
	if (b->cancelled && !b->end_wall)
		b->end_wall = util_now();

	char name[64], t[48];
	snprintf(name, sizeof name, "batches/%s", b->id);
	cJSON *root = cJSON_CreateObject();
	cJSON_AddStringToObject(root, "name", name);
	cJSON *md = cJSON_AddObjectToObject(root, "metadata");
	cJSON_AddStringToObject(md, "@type",
		"type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch");
	char model[160];
	snprintf(model, sizeof model, "models/%s", b->model);
	cJSON_AddStringToObject(md, "model", model);
	cJSON_AddStringToObject(md, "displayName", b->display);
	cJSON *ic = cJSON_AddObjectToObject(md, "inputConfig");
	if (b->input_file[0])
		cJSON_AddStringToObject(ic, "fileName", b->input_file);
	util_rfc3339(t, sizeof t, b->created_wall);
	cJSON_AddStringToObject(md, "createTime", t);
	util_rfc3339(t, sizeof t, b->end_wall ? b->end_wall : 0);
	cJSON_AddStringToObject(md, "updateTime", t);
	if (b->end_wall)
		cJSON_AddStringToObject(md, "endTime", t);
	cJSON *bs = cJSON_AddObjectToObject(md, "batchStats");
	int n = cJSON_GetArraySize(b->reqs);
	add_i64(bs, "requestCount", n);
	if (b->done) {
		add_i64(bs, "successfulRequestCount", b->ok);
		if (b->failed)
			add_i64(bs, "failedRequestCount", b->failed);
	} else if (!b->cancelled) {
		add_i64(bs, "pendingRequestCount", n);
	}
	cJSON_AddStringToObject(md, "state", st);
	cJSON_AddStringToObject(md, "name", name);

	bool terminal = succeeded || b->cancelled;
	cJSON_AddBoolToObject(root, "done", terminal);
	if (succeeded) {
		cJSON *out = cJSON_CreateObject();
		if (b->inlined) {
			cJSON *w = cJSON_AddObjectToObject(out, "inlinedResponses");
			cJSON_AddItemToObject(w, "inlinedResponses",
					      cJSON_Duplicate(b->inlined, 1));
		} else {
			cJSON_AddStringToObject(out, "responsesFile", b->out_file);
		}
		cJSON_AddItemToObject(md, "output", cJSON_Duplicate(out, 1));
		cJSON_AddStringToObject(out, "@type",
			"type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatchOutput");
		cJSON_AddItemToObject(root, "response", out);
	}
	return root;
}

static void bad(struct emu_resp *r, int http, const char *grpc, const char *msg)
{
	struct emu_err e;
	err_set(&e, http, grpc, "invalid_request", "%s", msg);
	resp_error(r, FL_GOOGLE, &e);
}

/* JSONL file -> array of {"key","request"}; NULL on a bad line. */
static cJSON *parse_jsonl(const char *data, size_t len)
{
	cJSON *arr = cJSON_CreateArray();
	size_t i = 0;
	while (i < len) {
		size_t e = i;
		while (e < len && data[e] != '\n')
			e++;
		size_t s = i;
		while (s < e && (data[s] == ' ' || data[s] == '\r'))
			s++;
		if (s < e) {
			cJSON *line = cJSON_ParseWithLength(data + s, e - s);
			if (!cJSON_IsObject(line) || !json_get2(line, "request", NULL)) {
				cJSON_Delete(line);
				cJSON_Delete(arr);
				return NULL;
			}
			cJSON_AddItemToArray(arr, line);
		}
		i = e + 1;
	}
	return arr;
}

void batch_create(const struct emu_req *q, const char *model, struct emu_resp *r)
{
	struct fault f;
	bill_count_endpoint("batchGenerateContent");
	if (!http_check_auth(q, FL_GOOGLE, r))
		return;
	cJSON *j = cJSON_ParseWithLength(q->body, q->body_len);
	cJSON *bj = json_get2(j, "batch", NULL);
	if (!bj) {
		bad(r, 400, "INVALID_ARGUMENT", "Invalid JSON payload: missing \"batch\".");
		goto out;
	}
	if (gen_pre(&f, FL_GOOGLE, model, r))
		goto out;
	const char *id = bare(model, "models/");
	if (!model_find(id)) {
		struct emu_err e;
		err_set(&e, 404, "NOT_FOUND", "model_not_found",
			"models/%s is not found for API version %s, or is not supported for batchGenerateContent. Call ModelService.ListModels to see the list of available models and their supported methods.",
			id, q->ver);
		resp_error(r, FL_GOOGLE, &e);
		goto out;
	}
	struct batch *b = calloc(1, sizeof *b);
	if (!b) {
		bad(r, 500, "INTERNAL", "out of memory");
		goto out;
	}
	util_id(b->id, sizeof b->id);
	snprintf(b->model, sizeof b->model, "%s", id);
	const char *dn = json_str2(bj, "displayName", "display_name");
	snprintf(b->display, sizeof b->display, "%s", dn ? dn : "");
	b->created_wall = util_now();
	b->created_mono = util_mono();

	cJSON *ic = json_get2(bj, "inputConfig", "input_config");
	const char *fname = json_str2(ic, "fileName", "file_name");
	if (fname) {
		size_t len = 0;
		char *data = files_copy(fname, &len);
		if (!data) {
			batch_free(b);
			bad(r, 404, "NOT_FOUND", "Requested entity was not found.");
			goto out;
		}
		b->reqs = parse_jsonl(data, len);
		free(data);
		snprintf(b->input_file, sizeof b->input_file, "files/%s",
			 bare(fname, "files/"));
	} else {
		cJSON *rq = json_get2(json_get2(ic, "requests", NULL), "requests", NULL);
		b->reqs = cJSON_CreateArray();
		cJSON *x;
		cJSON_ArrayForEach(x, rq) {
			cJSON *item = cJSON_CreateObject();
			const char *key = json_str2(json_get2(x, "metadata", NULL), "key", NULL);
			char k[32];
			if (!key) {
				snprintf(k, sizeof k, "%d", cJSON_GetArraySize(b->reqs));
				key = k;
			}
			cJSON_AddStringToObject(item, "key", key);
			cJSON_AddItemToObject(item, "request",
				cJSON_Duplicate(json_get2(x, "request", NULL), 1));
			cJSON_AddItemToArray(b->reqs, item);
		}
	}
	if (!b->reqs || cJSON_GetArraySize(b->reqs) == 0) {
		batch_free(b);
		bad(r, 400, "INVALID_ARGUMENT",
		    "* BatchGenerateContentRequest.batch.input_config: no requests found (bad or empty input)");
		goto out;
	}
	pthread_mutex_lock(&batch_mu);
	b->next = batches;
	batches = b;
	cJSON *out = batch_json_locked(b, true);
	pthread_mutex_unlock(&batch_mu);
	resp_json(r, 200, out);
	if (f.kind == F_MALFORMED)
		fault_break_json(r);
	if (f.kind == F_DROP)
		r->stream = RS_DROP;
out:
	cJSON_Delete(j);
}

static void missing(struct emu_resp *r, const char *id)
{
	struct emu_err e;
	err_set(&e, 404, "NOT_FOUND", "not_found",
		"Requested entity was not found. (batches/%s)", bare(id, "batches/"));
	resp_error(r, FL_GOOGLE, &e);
}

void batch_get(const struct emu_req *q, const char *id, struct emu_resp *r)
{
	if (!http_check_auth(q, FL_GOOGLE, r))
		return;
	pthread_mutex_lock(&batch_mu);
	struct batch *b = find_locked(id);
	cJSON *j = b ? batch_json_locked(b, false) : NULL;
	pthread_mutex_unlock(&batch_mu);
	if (!j)
		return missing(r, id);
	resp_json(r, 200, j);
}

void batch_cancel(const struct emu_req *q, const char *id, struct emu_resp *r)
{
	if (!http_check_auth(q, FL_GOOGLE, r))
		return;
	pthread_mutex_lock(&batch_mu);
	struct batch *b = find_locked(id);
	bool found = b != NULL;
	if (b && !b->done && strcmp(state_of(b), "BATCH_STATE_SUCCEEDED") != 0)
		b->cancelled = true;
	pthread_mutex_unlock(&batch_mu);
	if (!found)
		return missing(r, id);
	resp_json(r, 200, cJSON_CreateObject());
}

void batch_delete(const struct emu_req *q, const char *id, struct emu_resp *r)
{
	if (!http_check_auth(q, FL_GOOGLE, r))
		return;
	pthread_mutex_lock(&batch_mu);
	struct batch **pp = &batches, *b = NULL;
	const char *bid = bare(id, "batches/");
	for (; *pp; pp = &(*pp)->next)
		if (!strcmp((*pp)->id, bid)) {
			b = *pp;
			*pp = b->next;
			break;
		}
	pthread_mutex_unlock(&batch_mu);
	if (!b)
		return missing(r, id);
	batch_free(b);
	resp_json(r, 200, cJSON_CreateObject());
}

void batch_list(const struct emu_req *q, struct emu_resp *r)
{
	if (!http_check_auth(q, FL_GOOGLE, r))
		return;
	const char *ps = http_query(q, "pageSize");
	const char *pt = http_query(q, "pageToken");
	int size = ps ? atoi(ps) : 50, start = pt ? atoi(pt) : 0, i = 0;
	if (size <= 0 || size > 1000)
		size = 50;
	cJSON *root = cJSON_CreateObject();
	cJSON *ops = cJSON_AddArrayToObject(root, "operations");
	pthread_mutex_lock(&batch_mu);
	struct batch *b = batches;
	for (; b && i < start + size; b = b->next, i++)
		if (i >= start)
			cJSON_AddItemToArray(ops, batch_json_locked(b, false));
	pthread_mutex_unlock(&batch_mu);
	if (b) {
		char tok[16];
		snprintf(tok, sizeof tok, "%d", i);
		cJSON_AddStringToObject(root, "nextPageToken", tok);
	}
	resp_json(r, 200, root);
}

void batch_reset(void)
{
	pthread_mutex_lock(&batch_mu);
	while (batches) {
		struct batch *b = batches;
		batches = b->next;
		batch_free(b);
	}
	pthread_mutex_unlock(&batch_mu);
}
