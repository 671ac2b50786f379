/* POST /{v}/interactions (gemini-wire.md section 1): snake_case in and out,
 * the current "steps" shape or the legacy "outputs" shape. */
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

	int in_tok = gen_input_tokens(g);
	int text_tok = (int)strlen(text) / 4 + 1;
	int img_tok = o ? o->tokens : 0;
	cJSON *u = cJSON_AddObjectToObject(root, "usage");
	cJSON_AddNumberToObject(u, "total_input_tokens", in_tok);
	cJSON_AddNumberToObject(u, "total_output_tokens", img_tok + text_tok);
	cJSON_AddNumberToObject(u, "total_thought_tokens", 0);
	cJSON_AddNumberToObject(u, "total_cached_tokens", 0);
	cJSON_AddNumberToObject(u, "total_tool_use_tokens", 0);
	cJSON_AddNumberToObject(u, "total_tokens", in_tok + img_tok + text_tok);
	cJSON *ob = cJSON_AddArrayToObject(u, "output_tokens_by_modality");
	cJSON *m = cJSON_CreateObject();
	cJSON_AddStringToObject(m, "modality", "text");
	cJSON_AddNumberToObject(m, "tokens", text_tok);
	cJSON_AddItemToArray(ob, m);
	if (o) {
		m = cJSON_CreateObject();
		cJSON_AddStringToObject(m, "modality", "image");
		cJSON_AddNumberToObject(m, "tokens", img_tok);
		cJSON_AddItemToArray(ob, m);
	}
	return root;
}

void ia_create(const struct emu_req *q, struct emu_resp *r)
{
	struct gen_req g;
	struct emu_err e;
	struct fault f;
	struct gen_out o;
	const char *tier = "standard";
	bool store = true;
	bool legacy = want_legacy(q);
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
	if (gen_pre(&f, FL_IA, g.model, r)) {
		gen_bill_huge(&f, &g, strcmp(tier, "flex") ? "standard" : "flex");
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
		resp_json(r, 200, answer(&g, NULL, text, tier, store, legacy));
		goto out_log;
	}
	if (!gen_render(&g, &o, &f)) {
		err_set(&e, 500, "INTERNAL", "api_error", "An internal error has occurred.");
		resp_error(r, FL_IA, &e);
		goto out_log;
	}
	if (f.kind == F_TRUNC_B64)
		gen_truncate_b64(&o);
	resp_json(r, 200, answer(&g, &o, "Here is your image.", tier, store, legacy));
	if (f.kind == F_MALFORMED)
		fault_break_json(r);
	if (f.kind == F_DROP) {
		r->stream = RS_DROP;
	} else if (r->status == 200) {
		bool flex = !strcmp(tier, "flex");
		bill_generation(1);
		bill_add(g.m->id, model_size_name(g.sz), flex ? "flex" : "standard",
			 1, flex ? o.usd / 2 : o.usd);
	}
	gen_out_free(&o);
out_log:
	gen_log(&g, r->status);
	cJSON_Delete(j);
	gen_free(&g);
}
