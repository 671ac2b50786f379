/* POST /{v}/interactions (gemini-wire.md section 1): snake_case in and out,
 * the current "steps" shape or the legacy "outputs" shape. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emu.h"

static void add_block(struct gen_req *g, const cJSON *b)
{
	if (cJSON_IsString(b)) {
		gen_add_text(g, b->valuestring);
		return;
	}
	const char *type = json_str2(b, "type", NULL);
	if (!type)
		return;
	if (!strcmp(type, "text")) {
		gen_add_text(g, json_str2(b, "text", NULL));
	} else if (!strcmp(type, "image")) {
		const char *data = json_str2(b, "data", NULL);
		const char *mime = json_str2(b, "mime_type", NULL);
		const char *uri = json_str2(b, "uri", NULL);
		if (data)
			gen_add_image_b64(g, mime, data);
		else if (uri)
			gen_add_image_raw(g, mime, uri, strlen(uri));
	} else if (!strcmp(type, "user_input")) {
		cJSON *c = json_get2(b, "content", NULL);
		if (cJSON_IsArray(c)) {
			cJSON *x;
			cJSON_ArrayForEach(x, c)
				add_block(g, x);
		} else {
			add_block(g, c);
		}
	}
	/* model_output / thought steps are replayed context, not new input */
}

static bool parse(const cJSON *j, struct gen_req *g, const char **tier,
		  bool *store, struct emu_err *e)
{
	const char *model = json_str2(j, "model", NULL);
	snprintf(g->model, sizeof g->model, "%s", model ? model : "");
	cJSON *input = json_get2(j, "input", NULL);
	if (!input || cJSON_IsNull(input)) {
		err_set(e, 400, "INVALID_ARGUMENT", "invalid_request",
			"Field 'input' is required.");
		return false;
	}
	if (cJSON_IsArray(input)) {
		cJSON *x;
		cJSON_ArrayForEach(x, input)
			add_block(g, x);
	} else {
		add_block(g, input);
	}

	const cJSON *rf = json_get2(j, "response_format", NULL);
	const cJSON *img = NULL;
	if (cJSON_IsArray(rf)) {
		const cJSON *x;
		cJSON_ArrayForEach(x, rf) {
			const char *t = json_str2(x, "type", NULL);
			if (t && !strcmp(t, "image"))
				img = x;
		}
	} else if (cJSON_IsObject(rf)) {
		img = rf;
	}
	if (!img)   /* deprecated location */
		img = json_get2(json_get2(j, "generation_config", NULL),
				"image_config", NULL);
	const char *s = json_str2(img, "image_size", NULL);
	const char *a = json_str2(img, "aspect_ratio", NULL);
	const char *mime = json_str2(img, "mime_type", NULL);
	snprintf(g->size, sizeof g->size, "%s", s ? s : "");
	snprintf(g->aspect, sizeof g->aspect, "%s", a ? a : "");
	if (mime && !strcmp(mime, "image/jpeg")) {
		g->want_jpeg = true;
	} else if (mime && strcmp(mime, "image/png") != 0) {
		err_set(e, 400, "INVALID_ARGUMENT", "invalid_request",
			"The value '%s' is not supported for 'mime_type' at 'response_format'.",
			mime);
		return false;
	}
	cJSON *mods = json_get2(j, "response_modalities", NULL);
	if (cJSON_IsArray(mods) && cJSON_GetArraySize(mods) > 0) {
		bool want = false;
		cJSON *m;
		cJSON_ArrayForEach(m, mods)
			if (cJSON_IsString(m) && !strcasecmp(m->valuestring, "image"))
				want = true;
		g->no_image = !want && !rf;
	}
	if (!gen_parse_tools(j, g, true, e))
		return false;
	const char *t = json_str2(j, "service_tier", NULL);
	*tier = t ? t : "standard";
	cJSON *st = json_get2(j, "store", NULL);
	*store = !cJSON_IsFalse(st);
	return true;
}

static bool want_legacy(const struct emu_req *q)
{
	const char *shape = http_query(q, "shape");
	if (shape && !strcmp(shape, "legacy"))
		return true;
	const char *rev = http_header(q, "Api-Revision");
	return rev && *rev && strcmp(rev, "2026-05-20") < 0;
}

static cJSON *text_block(const char *text)
{
	cJSON *b = cJSON_CreateObject();
	cJSON_AddStringToObject(b, "type", "text");
	cJSON_AddStringToObject(b, "text", text);
	return b;
}

/* One {"modality": m, "tokens": n} entry of a usage list. */
static void add_modality(cJSON *list, const char *m, int n)
{
	cJSON *e = cJSON_CreateObject();
	cJSON_AddStringToObject(e, "modality", m);
	cJSON_AddNumberToObject(e, "tokens", n);
	cJSON_AddItemToArray(list, e);
}

static cJSON *answer(const struct gen_req *g, const struct gen_out *o,
		     const char *text, const char *tier, bool store, bool legacy)
{
	cJSON *root = cJSON_CreateObject();
	if (store) {
		char id[40] = "v1_";
		util_id(id + 3, sizeof id - 3);
		cJSON_AddStringToObject(root, "id", id);
	}
	char now[48];
	util_rfc3339(now, sizeof now, 0);
	cJSON_AddStringToObject(root, "object", "interaction");
	cJSON_AddStringToObject(root, "model", g->m ? g->m->id : g->model);
	cJSON_AddStringToObject(root, "status", "completed");
	cJSON_AddStringToObject(root, "created", now);
	cJSON_AddStringToObject(root, "updated", now);
	cJSON_AddStringToObject(root, "service_tier", tier);

	cJSON *blocks = cJSON_CreateArray();
	cJSON_AddItemToArray(blocks, text_block(text));
	if (o && o->b64) {
		cJSON *ib = cJSON_CreateObject();
		cJSON_AddStringToObject(ib, "type", "image");
		cJSON_AddStringToObject(ib, "mime_type", o->mime);
		cJSON_AddStringToObject(ib, "data", o->b64);
		cJSON_AddItemToArray(blocks, ib);
	}
	if (legacy) {
		cJSON_AddItemToObject(root, "outputs", blocks);
	} else {
		cJSON *steps = cJSON_AddArrayToObject(root, "steps");
		cJSON *th = cJSON_CreateObject();
		cJSON_AddStringToObject(th, "type", "thought");
		cJSON_AddStringToObject(th, "signature", "ZW11bGF0b3ItdGhvdWdodA==");
		cJSON_AddArrayToObject(th, "summary");
		cJSON_AddItemToArray(steps, th);
		if (g->search && o) {
			char q[64];
			gen_search_query(g, q, sizeof q);
			cJSON *call = cJSON_CreateObject(), *args, *res, *hits, *hit;
			cJSON_AddStringToObject(call, "type", "google_search_call");
			cJSON_AddStringToObject(call, "id", "gs_1");
			args = cJSON_AddObjectToObject(call, "arguments");
			cJSON_AddItemToArray(cJSON_AddArrayToObject(args, "queries"), cJSON_CreateString(q));
			cJSON_AddItemToArray(steps, call);
			res = cJSON_CreateObject();
			cJSON_AddStringToObject(res, "type", "google_search_result");
			cJSON_AddStringToObject(res, "call_id", "gs_1");
			hits = cJSON_AddArrayToObject(res, "result");
			hit = cJSON_CreateObject();
			cJSON_AddStringToObject(hit, "title", "emulator search result");
			cJSON_AddStringToObject(hit, "url", "https://example.org/emulator-search-result");
			cJSON_AddItemToArray(hits, hit);
			cJSON_AddItemToArray(steps, res);
			bill_search_queries(1);
		}
		cJSON *mo = cJSON_CreateObject();
		cJSON_AddStringToObject(mo, "type", "model_output");
		cJSON_AddItemToObject(mo, "content", blocks);
		cJSON_AddItemToArray(steps, mo);
	}

	/* usage as gemini-wire.md 1.3: thinking apart from the output, totals over all */
	struct gen_usage us;
	gen_usage(g, o != NULL, text, &us);
	int in_tok = us.text_in + us.image_in, out_tok = us.image_out + us.text_out;
	cJSON *u = cJSON_AddObjectToObject(root, "usage");
	cJSON_AddNumberToObject(u, "total_tokens", in_tok + out_tok + us.thought);
	cJSON_AddNumberToObject(u, "total_input_tokens", in_tok);
	cJSON *ib = cJSON_AddArrayToObject(u, "input_tokens_by_modality");
	add_modality(ib, "text", us.text_in);
	if (us.image_in)
		add_modality(ib, "image", us.image_in);
	cJSON_AddNumberToObject(u, "total_cached_tokens", 0);
	cJSON_AddNumberToObject(u, "total_output_tokens", out_tok);
	cJSON_AddNumberToObject(u, "total_tool_use_tokens", 0);
	cJSON_AddNumberToObject(u, "total_thought_tokens", us.thought);
	cJSON *ob = cJSON_AddArrayToObject(u, "output_tokens_by_modality");
	add_modality(ob, "text", us.text_out);
	if (us.image_out)
		add_modality(ob, "image", us.image_out);
	return root;
}

/* ---- background interactions (gemini-wire.md 1.4) ---------------------- */

/*
 * A background interaction is made at create time (and billed then: the
 * server runs it whether or not anyone polls) and becomes visible as
 * completed once its delay (slow fault, --latency) has passed.
 */
struct bg_ia {
	char id[40];
	double ready_at;        /* util_mono() seconds */
	cJSON *done;            /* the completed interaction */
	bool malformed;         /* the malformed-json fault: GET answers are cut */
	bool cancelled;
	struct bg_ia *next;
};

static pthread_mutex_t ia_mu = PTHREAD_MUTEX_INITIALIZER;
static struct bg_ia *ias;       /* protected by ia_mu, newest first */

static struct bg_ia *ia_find_locked(const char *id)
{
	for (struct bg_ia *b = ias; b; b = b->next)
		if (!strcmp(b->id, id))
			return b;
	return NULL;
}

/* The interaction as a GET shows it now (in progress: always, for a create's
 * answer); caller holds ia_mu. */
static cJSON *ia_view_locked(const struct bg_ia *b, bool created)
{
	if (created || b->cancelled || util_mono() < b->ready_at) {
		cJSON *j = cJSON_CreateObject();
		char now[48];
		util_rfc3339(now, sizeof now, 0);
		cJSON_AddStringToObject(j, "id", b->id);
		cJSON_AddStringToObject(j, "object", "interaction");
		cJSON_AddStringToObject(j, "model", json_str2(b->done, "model", NULL));
		cJSON_AddStringToObject(j, "status", b->cancelled ? "cancelled" : "in_progress");
		cJSON_AddStringToObject(j, "created", json_str2(b->done, "created", NULL));
		cJSON_AddStringToObject(j, "updated", now);
		cJSON_AddBoolToObject(j, "background", 1);
		return j;
	}
	return cJSON_Duplicate(b->done, 1);
}

static void ia_missing(struct emu_resp *r, const char *id)
{
	struct emu_err e;
	err_set(&e, 404, "NOT_FOUND", "not_found", "Interaction '%s' was not found.", id);
	resp_error(r, FL_IA, &e);
}

void ia_get(const struct emu_req *q, const char *id, struct emu_resp *r)
{
	bill_count_endpoint("interactions.get");
	if (!http_check_auth(q, FL_IA, r))
		return;
	pthread_mutex_lock(&ia_mu);
	struct bg_ia *b = ia_find_locked(id);
	cJSON *j = b ? ia_view_locked(b, false) : NULL;
	bool cut = b && b->malformed && !strcmp(json_str2(j, "status", ""), "completed");
	pthread_mutex_unlock(&ia_mu);
	if (!j)
		return ia_missing(r, id);
	resp_json(r, 200, j);
	if (cut)
		fault_break_json(r);
}

void ia_cancel(const struct emu_req *q, const char *id, struct emu_resp *r)
{
	bill_count_endpoint("interactions.cancel");
	if (!http_check_auth(q, FL_IA, r))
		return;
	pthread_mutex_lock(&ia_mu);
	struct bg_ia *b = ia_find_locked(id);
	if (b && util_mono() < b->ready_at)
		b->cancelled = true;
	cJSON *j = b ? ia_view_locked(b, false) : NULL;
	pthread_mutex_unlock(&ia_mu);
	if (!j)
		return ia_missing(r, id);
	resp_json(r, 200, j);
}

void ia_delete(const struct emu_req *q, const char *id, struct emu_resp *r)
{
	bill_count_endpoint("interactions.delete");
	if (!http_check_auth(q, FL_IA, r))
		return;
	pthread_mutex_lock(&ia_mu);
	struct bg_ia **pp = &ias, *b = NULL;
	for (; *pp; pp = &(*pp)->next)
		if (!strcmp((*pp)->id, id)) {
			b = *pp;
			*pp = b->next;
			break;
		}
	pthread_mutex_unlock(&ia_mu);
	if (!b)
		return ia_missing(r, id);
	cJSON_Delete(b->done);
	free(b);
	resp_json(r, 200, cJSON_CreateObject());
}

void ia_reset(void)
{
	pthread_mutex_lock(&ia_mu);
	while (ias) {
		struct bg_ia *b = ias;
		ias = b->next;
		cJSON_Delete(b->done);
		free(b);
	}
	pthread_mutex_unlock(&ia_mu);
}

/* Keeps ans (completed) as a background interaction; answers the create with it in progress. */
static void ia_keep(struct emu_resp *r, cJSON *ans, int delay_ms, bool malformed)
{
	struct bg_ia *b = calloc(1, sizeof *b);
	const char *id = json_str2(ans, "id", NULL);
	if (!b || !id) {
		free(b);
		cJSON_Delete(ans);
		struct emu_err e;
		err_set(&e, 500, "INTERNAL", "api_error", "An internal error has occurred.");
		resp_error(r, FL_IA, &e);
		return;
	}
	snprintf(b->id, sizeof b->id, "%s", id);
	b->ready_at = util_mono() + delay_ms / 1000.0;
	b->done = ans;
	b->malformed = malformed;
	cJSON_AddBoolToObject(ans, "background", 1);
	pthread_mutex_lock(&ia_mu);
	b->next = ias;
	ias = b;
	cJSON *view = ia_view_locked(b, true);
	pthread_mutex_unlock(&ia_mu);
	resp_json(r, 200, view);
}

/* One answer: at once, or kept as a background interaction. */
static void ia_answer(struct emu_resp *r, cJSON *ans, bool background, int delay_ms,
		      const struct fault *f)
{
	if (background) {
		ia_keep(r, ans, delay_ms, f->kind == F_MALFORMED);
		return;
	}
	resp_json(r, 200, ans);
	if (f->kind == F_MALFORMED)
		fault_break_json(r);
}

void ia_create(const struct emu_req *q, struct emu_resp *r)
{
	struct gen_req g;
	struct emu_err e;
	struct fault f;
	struct gen_out o;
	const char *tier = "standard";
	bool store = true, background;
	bool legacy = want_legacy(q);
	int delay_ms = 0;
	cJSON *j = NULL;

	gen_init(&g, "interactions", q->auth);
	g.ver = q->ver;
	bill_count_endpoint("interactions");
	if (!http_check_auth(q, FL_IA, r))
		goto out_log;
	j = cJSON_ParseWithLength(q->body, q->body_len);
	if (!cJSON_IsObject(j)) {
		err_set(&e, 400, "INVALID_ARGUMENT", "invalid_request",
			"Request body is not valid JSON.");
		resp_error(r, FL_IA, &e);
		goto out_log;
	}
	if (!parse(j, &g, &tier, &store, &e)) {
		resp_error(r, FL_IA, &e);
		goto out_log;
	}
	background = cJSON_IsTrue(json_get2(j, "background", NULL));
	g.background = background;
	if (background && !store) {
		err_set(&e, 400, "INVALID_ARGUMENT", "invalid_request",
			"Background interactions require 'store' to be true.");
		resp_error(r, FL_IA, &e);
		goto out_log;
	}
	if (gen_pre_defer(&f, FL_IA, g.model, r, background ? &delay_ms : NULL)) {
		gen_bill_huge(&f, &g, strcmp(tier, "flex") ? "standard" : "flex");
		goto out_log;
	}
	if (background && f.kind == F_NO_BACKGROUND) {
		err_set(&e, 400, "INVALID_ARGUMENT", "invalid_request",
			"Background mode is not supported for model '%s'.", g.model);
		resp_error(r, FL_IA, &e);
		goto out_log;
	}
	if (!gen_validate(&g, &e)) {
		resp_error(r, FL_IA, &e);
		goto out_log;
	}
	if (f.kind == F_ECHO_KEY) {
		char echo[700];
		snprintf(echo, sizeof echo, "I will not draw. Your request said x-goog-api-key: %s "
			 "and the key %s.", emu_opt.key, emu_opt.key);
		resp_json(r, 200, answer(&g, NULL, echo, tier, store, legacy));
		resp_header(r, "x-request-id", "%s", emu_opt.key);
		goto out_log;
	}
	if (f.kind == F_SAFETY || f.kind == F_TEXT_ONLY || g.no_image) {
		const char *text = f.kind == F_SAFETY ?
			"I'm unable to create this image because it may violate the safety policy." :
			f.kind == F_TEXT_ONLY ? "I can't create that image." :
			"I can only describe it: the picture would show what you asked for.";
		ia_answer(r, answer(&g, NULL, text, tier, store, legacy), background, delay_ms, &f);
		goto out_log;
	}
	if (!gen_render(&g, &o, &f)) {
		err_set(&e, 500, "INTERNAL", "api_error", "An internal error has occurred.");
		resp_error(r, FL_IA, &e);
		goto out_log;
	}
	if (f.kind == F_TRUNC_B64)
		gen_truncate_b64(&o);
	ia_answer(r, answer(&g, &o, EMU_IMAGE_TEXT, tier, store, legacy), background, delay_ms, &f);
	if (f.kind == F_DROP)
		r->stream = RS_DROP;
	/* Made: billed.  A background interaction is made even when its create answer is dropped. */
	if (r->status == 200 && (f.kind != F_DROP || background)) {
		struct gen_usage us;
		gen_usage(&g, true, EMU_IMAGE_TEXT, &us);
		gen_bill(&g, &us, strcmp(tier, "flex") ? "standard" : "flex");
	}
	gen_out_free(&o);
out_log:
	gen_log(&g, r->status);
	cJSON_Delete(j);
	gen_free(&g);
}
