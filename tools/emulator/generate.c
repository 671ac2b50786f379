/* generateContent and the models list (gemini-wire.md section 2). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emu.h"

static void add_part(struct gen_req *g, const cJSON *part)
{
	const char *t = json_str2(part, "text", NULL);
	if (t) {
		gen_add_text(g, t);
		return;
	}
	cJSON *inl = json_get2(part, "inlineData", "inline_data");
	if (inl) {
		gen_add_image_b64(g, json_str2(inl, "mimeType", "mime_type"),
				  json_str2(inl, "data", NULL));
		return;
	}
	cJSON *fd = json_get2(part, "fileData", "file_data");
	if (fd) {
		const char *uri = json_str2(fd, "fileUri", "file_uri");
		gen_add_image_raw(g, json_str2(fd, "mimeType", "mime_type"),
				  uri ? uri : "", uri ? strlen(uri) : 0);
	}
}

bool gc_parse_request(const cJSON *j, struct gen_req *g, struct emu_err *e)
{
	cJSON *contents = json_get2(j, "contents", NULL);
	if (cJSON_IsObject(contents)) {
		cJSON *parts = json_get2(contents, "parts", NULL);
		cJSON *p;
		cJSON_ArrayForEach(p, parts)
			add_part(g, p);
	} else if (cJSON_IsArray(contents) && cJSON_GetArraySize(contents) > 0) {
		cJSON *c;
		cJSON_ArrayForEach(c, contents) {
			cJSON *parts = json_get2(c, "parts", NULL);
			cJSON *p;
			cJSON_ArrayForEach(p, parts)
				add_part(g, p);
		}
	} else {
		err_set(e, 400, "INVALID_ARGUMENT", "invalid_request",
			"* GenerateContentRequest.contents: contents is not specified\n");
		return false;
	}
	if (!gen_parse_tools(j, g, false, e))
		return false;
	cJSON *gc = json_get2(j, "generationConfig", "generation_config");
	cJSON *ic = json_get2(gc, "imageConfig", "image_config");
	const char *s = json_str2(ic, "imageSize", "image_size");
	const char *a = json_str2(ic, "aspectRatio", "aspect_ratio");
	snprintf(g->size, sizeof g->size, "%s", s ? s : "");
	snprintf(g->aspect, sizeof g->aspect, "%s", a ? a : "");
	cJSON *mods = json_get2(gc, "responseModalities", "response_modalities");
	if (cJSON_IsArray(mods) && cJSON_GetArraySize(mods) > 0) {
		bool img = false;
		cJSON *m;
		cJSON_ArrayForEach(m, mods)
			if (cJSON_IsString(m) && !strcasecmp(m->valuestring, "IMAGE"))
				img = true;
		g->no_image = !img;
	}
	return true;
}

/* One {"modality": m, "tokenCount": n} entry of a details list. */
static void add_detail(cJSON *list, const char *m, int n)
{
	cJSON *d = cJSON_CreateObject();
	cJSON_AddStringToObject(d, "modality", m);
	cJSON_AddNumberToObject(d, "tokenCount", n);
	cJSON_AddItemToArray(list, d);
}

/*
 * usageMetadata as gemini-wire.md 2.2: candidatesTokenCount leaves the
 * thinking out (thoughtsTokenCount, absent when 0 as proto-JSON omits
 * zeros), totalTokenCount counts all.
 */
static void add_usage_metadata(cJSON *root, const struct gen_req *g, bool image, const char *text)
{
	struct gen_usage us;
	gen_usage(g, image, text, &us);
	int in_tok = us.text_in + us.image_in, out_tok = us.image_out + us.text_out;
	cJSON *u = cJSON_AddObjectToObject(root, "usageMetadata");
	cJSON_AddNumberToObject(u, "promptTokenCount", in_tok);
	if (out_tok)
		cJSON_AddNumberToObject(u, "candidatesTokenCount", out_tok);
	cJSON_AddNumberToObject(u, "totalTokenCount", in_tok + out_tok + us.thought);
	if (us.thought)
		cJSON_AddNumberToObject(u, "thoughtsTokenCount", us.thought);
	cJSON *pd = cJSON_AddArrayToObject(u, "promptTokensDetails");
	add_detail(pd, "TEXT", us.text_in);
	if (us.image_in)
		add_detail(pd, "IMAGE", us.image_in);
	if (out_tok) {
		cJSON *cd = cJSON_AddArrayToObject(u, "candidatesTokensDetails");
		if (us.text_out)
			add_detail(cd, "TEXT", us.text_out);
		if (us.image_out)
			add_detail(cd, "IMAGE", us.image_out);
	}
}

cJSON *gc_answer_json(const struct gen_req *g, const struct gen_out *o,
		      const char *text)
{
	cJSON *root = cJSON_CreateObject();
	cJSON *cands = cJSON_AddArrayToObject(root, "candidates");
	cJSON *cand = cJSON_CreateObject();
	cJSON_AddItemToArray(cands, cand);
	cJSON *content = cJSON_AddObjectToObject(cand, "content");
	cJSON *parts = cJSON_AddArrayToObject(content, "parts");
	if (text) {
		cJSON *tp = cJSON_CreateObject();
		cJSON_AddStringToObject(tp, "text", text);
		cJSON_AddItemToArray(parts, tp);
	}
	if (o && o->b64) {
		cJSON *ip = cJSON_CreateObject();
		cJSON *inl = cJSON_AddObjectToObject(ip, "inlineData");
		cJSON_AddStringToObject(inl, "mimeType", o->mime);
		cJSON_AddStringToObject(inl, "data", o->b64);
		cJSON_AddItemToArray(parts, ip);
	}
	cJSON_AddStringToObject(content, "role", "model");
	if (g->search && o) {
		char q[64];
		gen_search_query(g, q, sizeof q);
		cJSON *gm = cJSON_AddObjectToObject(cand, "groundingMetadata");
		cJSON *qs = cJSON_AddArrayToObject(gm, "webSearchQueries");
		cJSON_AddItemToArray(qs, cJSON_CreateString(q));
		cJSON *chunks = cJSON_AddArrayToObject(gm, "groundingChunks");
		cJSON *ch = cJSON_CreateObject(), *web = cJSON_AddObjectToObject(ch, "web");
		cJSON_AddStringToObject(web, "uri", "https://example.org/emulator-search-result");
		cJSON_AddStringToObject(web, "title", "emulator search result");
		cJSON_AddItemToArray(chunks, ch);
		bill_search_queries(1);
	}
	cJSON_AddStringToObject(cand, "finishReason", "STOP");
	cJSON_AddNumberToObject(cand, "index", 0);

	add_usage_metadata(root, g, o != NULL, text);
	cJSON_AddStringToObject(root, "modelVersion", g->m ? g->m->id : g->model);
	char rid[23];
	util_id(rid, sizeof rid);
	cJSON_AddStringToObject(root, "responseId", rid);
	return root;
}

static cJSON *safety_json(const struct gen_req *g)
{
	cJSON *root = cJSON_CreateObject();
	cJSON *pf = cJSON_AddObjectToObject(root, "promptFeedback");
	cJSON_AddStringToObject(pf, "blockReason", "SAFETY");
	cJSON *sr = cJSON_AddArrayToObject(pf, "safetyRatings");
	cJSON *r = cJSON_CreateObject();
	cJSON_AddStringToObject(r, "category", "HARM_CATEGORY_DANGEROUS_CONTENT");
	cJSON_AddStringToObject(r, "probability", "HIGH");
	cJSON_AddBoolToObject(r, "blocked", 1);
	cJSON_AddItemToArray(sr, r);
	add_usage_metadata(root, g, false, NULL);
	cJSON_AddStringToObject(root, "modelVersion", g->m ? g->m->id : g->model);
	char rid[23];
	util_id(rid, sizeof rid);
	cJSON_AddStringToObject(root, "responseId", rid);
	return root;
}

void gc_generate(const struct emu_req *q, const char *model, struct emu_resp *r)
{
	struct gen_req g;
	struct emu_err e;
	struct fault f;
	struct gen_out o;
	cJSON *j = NULL;

	gen_init(&g, "generateContent", q->auth);
	g.ver = q->ver;
	snprintf(g.model, sizeof g.model, "%s", model);
	bill_count_endpoint("generateContent");
	if (!http_check_auth(q, FL_GOOGLE, r))
		goto out_log;
	j = cJSON_ParseWithLength(q->body, q->body_len);
	if (!j) {
		err_set(&e, 400, "INVALID_ARGUMENT", "invalid_request",
			"Invalid JSON payload received. Unexpected token.");
		resp_error(r, FL_GOOGLE, &e);
		goto out_log;
	}
	if (!gc_parse_request(j, &g, &e)) {
		resp_error(r, FL_GOOGLE, &e);
		goto out_log;
	}
	if (gen_pre(&f, FL_GOOGLE, model, r)) {
		gen_bill_huge(&f, &g, "generate");
		goto out_log;
	}
	if (!gen_validate(&g, &e)) {
		resp_error(r, FL_GOOGLE, &e);
		goto out_log;
	}
	if (f.kind == F_SAFETY) {
		resp_json(r, 200, safety_json(&g));
		goto out_log;
	}
	if (f.kind == F_TEXT_ONLY || g.no_image) {
		resp_json(r, 200, gc_answer_json(&g, NULL, f.kind == F_TEXT_ONLY ?
			"I can't create that image." :
			"I can only describe it: the picture would show what you asked for."));
		goto out_log;
	}
	if (!gen_render(&g, &o, &f)) {
		err_set(&e, 500, "INTERNAL", "api_error", "An internal error has occurred.");
		resp_error(r, FL_GOOGLE, &e);
		goto out_log;
	}
	if (f.kind == F_TRUNC_B64)
		gen_truncate_b64(&o);
	resp_json(r, 200, gc_answer_json(&g, &o, EMU_IMAGE_TEXT));
	if (f.kind == F_MALFORMED)
		fault_break_json(r);
	if (f.kind == F_DROP) {
		r->stream = RS_DROP;
	} else if (r->status == 200) {
		struct gen_usage us;
		gen_usage(&g, true, EMU_IMAGE_TEXT, &us);
		gen_bill(&g, &us, "generate");
	}
	gen_out_free(&o);
out_log:
	gen_log(&g, r->status);
	cJSON_Delete(j);
	gen_free(&g);
}

static cJSON *model_json(const struct model_info *m)
{
	cJSON *o = cJSON_CreateObject();
	char name[160];
	snprintf(name, sizeof name, "models/%s", m->id);
	cJSON_AddStringToObject(o, "name", name);
	cJSON_AddStringToObject(o, "version", "001");
	cJSON_AddStringToObject(o, "displayName", m->display);
	cJSON_AddStringToObject(o, "description", "Image generation model (bananafs emulator)");
	cJSON_AddNumberToObject(o, "inputTokenLimit", 65536);
	cJSON_AddNumberToObject(o, "outputTokenLimit", 32768);
	cJSON *meth = cJSON_AddArrayToObject(o, "supportedGenerationMethods");
	cJSON_AddItemToArray(meth, cJSON_CreateString("generateContent"));
	cJSON_AddItemToArray(meth, cJSON_CreateString("batchGenerateContent"));
	cJSON_AddItemToArray(meth, cJSON_CreateString("countTokens"));
	return o;
}

void gc_models_list(const struct emu_req *q, struct emu_resp *r)
{
	if (!http_check_auth(q, FL_GOOGLE, r))
		return;
	const char *ps = http_query(q, "pageSize");
	const char *pt = http_query(q, "pageToken");
	int size = ps ? atoi(ps) : 50;
	int start = pt ? atoi(pt) : 0;
	if (size <= 0 || size > 1000)
		size = 50;
	if (start < 0)
		start = 0;
	cJSON *root = cJSON_CreateObject();
	cJSON *arr = cJSON_AddArrayToObject(root, "models");
	int i = start;
	for (; model_at((size_t)i) && i < start + size; i++)
		cJSON_AddItemToArray(arr, model_json(model_at((size_t)i)));
	if (model_at((size_t)i)) {
		char tok[16];
		snprintf(tok, sizeof tok, "%d", i);
		cJSON_AddStringToObject(root, "nextPageToken", tok);
	}
	resp_json(r, 200, root);
}

void gc_models_get(const struct emu_req *q, const char *model,
		   struct emu_resp *r)
{
	if (!http_check_auth(q, FL_GOOGLE, r))
		return;
	const struct model_info *m = model_find(model);
	if (!m) {
		struct emu_err e;
		err_set(&e, 404, "NOT_FOUND", "model_not_found",
			"models/%s is not found for API version %s, or is not supported for generateContent. Call ModelService.ListModels to see the list of available models and their supported methods.",
			strncmp(model, "models/", 7) ? model : model + 7, q->ver);
		resp_error(r, FL_GOOGLE, &e);
		return;
	}
	resp_json(r, 200, model_json(m));
}
