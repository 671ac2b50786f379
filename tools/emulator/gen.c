/* The generation core shared by every route: collect prompt and reference
 * images, validate model/size/aspect like Google, render, log. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emu.h"

void gen_init(struct gen_req *g, const char *endpoint, enum auth_kind auth)
{
	memset(g, 0, sizeof *g);
	g->endpoint = endpoint;
	g->ver = "v1beta";
	g->auth = auth;
}

void gen_free(struct gen_req *g)
{
	buf_free(&g->prompt);
}

void gen_add_text(struct gen_req *g, const char *t)
{
	if (!t || !*t)
		return;
	if (g->prompt.len)
		buf_adds(&g->prompt, " ");
	buf_adds(&g->prompt, t);
}

void gen_add_image_raw(struct gen_req *g, const char *mime, const void *p,
		       size_t n)
{
	if (g->n_in >= GEN_MAX_IN)
		return;
	struct gen_in *in = &g->in[g->n_in++];
	snprintf(in->mime, sizeof in->mime, "%s", mime ? mime : "");
	in->bytes = n;
	sha256_hex(p, n, in->sha256);
}

void gen_add_image_b64(struct gen_req *g, const char *mime, const char *b64)
{
	size_t n = 0;
	unsigned char *p = b64 ? b64_decode(b64, strlen(b64), &n) : NULL;
	if (!p) {
		/* undecodable: still record that an image part arrived */
		gen_add_image_raw(g, mime, "", 0);
		return;
	}
	gen_add_image_raw(g, mime, p, n);
	free(p);
}

static bool is_preview(const char *id)
{
	size_t n = strlen(id);
	return (n > 8 && strcmp(id + n - 8, "-preview") == 0) ||
	       strstr(id, "-preview-") != NULL;
}

bool gen_validate(struct gen_req *g, struct emu_err *e)
{
	const char *id = g->model;
	if (strncmp(id, "models/", 7) == 0)
		id += 7;
	if (!*id) {
		err_set(e, 400, "INVALID_ARGUMENT", "invalid_request",
			"Model name is required.");
		return false;
	}
	g->m = model_find(id);
	if (g->m && *emu_opt.route_from && strcmp(id, emu_opt.route_from) == 0)
		g->m = model_find(emu_opt.route_to);	/* Google's routing to a successor */
	if (!g->m) {
		if (is_preview(id))
			err_set(e, 404, "NOT_FOUND", "model_not_found",
				"Model models/%s is no longer available to new users. Please update your code to use a newer model for the latest features and improvements.",
				id);
		else
			err_set(e, 404, "NOT_FOUND", "model_not_found",
				"models/%s is not found for API version %s, or is not supported for generateContent. Call ModelService.ListModels to see the list of available models and their supported methods.",
				id, g->ver);
		return false;
	}

	if (g->search && !model_takes_search(g->m)) {
		err_set(e, 400, "INVALID_ARGUMENT", "invalid_request",
			"Search Grounding is not supported for models/%s.", g->m->id);
		return false;
	}

	const char *s = g->size;
	if (!*s || !strcmp(s, "1K"))
		g->sz = SZ_1K;
	else if (!strcmp(s, "512") || !strcmp(s, "512P") || !strcmp(s, "512PX"))
		g->sz = SZ_512;
	else if (!strcmp(s, "2K"))
		g->sz = SZ_2K;
	else if (!strcmp(s, "4K"))
		g->sz = SZ_4K;
	else {
		err_set(e, 400, "INVALID_ARGUMENT", "invalid_request",
			"Invalid image size '%s'. Supported values are: 1K, 2K, 4K, 512, 512P, 512PX.",
			s);
		return false;
	}
	if (!(g->m->sizes & (1u << g->sz))) {
		err_set(e, 400, "INVALID_ARGUMENT", "invalid_request",
			"Image size %s is not supported for this model.", s);
		return false;
	}

	const char *a = *g->aspect ? g->aspect : "1:1";
	if (!model_pixels(g->m, g->sz, a, &g->w, &g->h)) {
		err_set(e, 400, "INVALID_ARGUMENT", "invalid_request",
			"Aspect ratio %s is not supported for model %s. Supported values are: 1:1, 2:3, 3:2, 3:4, 4:3, 4:5, 5:4, 9:16, 16:9, 21:9%s.",
			a, g->m->id, g->m->wide_aspects ? ", 1:4, 4:1, 1:8, 8:1" : "");
		return false;
	}
	if (!*g->aspect)
		snprintf(g->aspect, sizeof g->aspect, "1:1");
	return true;
}

bool gen_render(struct gen_req *g, struct gen_out *o, const struct fault *f)
{
	enum fault_kind k = f ? f->kind : F_NONE;
	bool wrong_size = k == F_WRONG_SIZE, force_jpeg = k == F_JPEG;
	memset(o, 0, sizeof *o);
	bool jpeg = g->want_jpeg || force_jpeg ||
		(emu_opt.jpeg && strncmp(g->m->id, "gemini-3", 8) == 0);
	char label[256];
	snprintf(label, sizeof label, "%s %s %s %dx%d%s%.0d", g->m->id,
		 model_size_name(g->sz), g->aspect, g->w, g->h,
		 g->variant ? " #" : "", g->variant);
	struct img_spec s = {
		.w = wrong_size ? g->w / 2 + 1 : g->w,
		.h = wrong_size ? g->h / 2 + 1 : g->h,
		.prompt = g->prompt.data ? g->prompt.data : "",
		.label = label,
		.jpeg = jpeg,
		.noise = emu_opt.noise || k == F_NOISE || (f && f->noise),
		.text_bytes = k == F_BIG_TEXT ? (size_t)f->bytes : 0,
	};
	o->img = img_render(&s, &o->len);
	if (!o->img)
		return false;
	if (k == F_TRUNC_IMAGE)
		o->len /= 2;	/* a whole base64 text of half an image */
	o->mime = jpeg ? "image/jpeg" : "image/png";
	o->b64 = b64_encode(o->img, o->len, &o->b64_len);
	if (!o->b64) {
		gen_out_free(o);
		return false;
	}
	o->tokens = g->m->tokens[g->sz];
	return true;
}

void gen_out_free(struct gen_out *o)
{
	free(o->img);
	free(o->b64);
	memset(o, 0, sizeof *o);
}

void gen_truncate_b64(struct gen_out *o)
{
	if (!o->b64 || o->b64_len < 8)
		return;
	/* half the text, and a length that is not a multiple of 4 */
	o->b64_len = (o->b64_len / 2) / 4 * 4 + 3;
	o->b64[o->b64_len] = '\0';
}

void gen_usage(const struct gen_req *g, bool image, const char *text, struct gen_usage *u)
{
	memset(u, 0, sizeof *u);
	u->text_in = (int)(g->prompt.len / 4) + 1;      /* about 4 bytes a token */
	if (g->has_system)
		u->text_in += (int)(strlen(g->system) / 4) + 1;
	u->image_in = g->n_in * (g->m ? g->m->in_image_tokens : 1120);
	u->image_out = image && g->m ? g->m->tokens[g->sz] : 0;
	u->text_out = text ? (int)strlen(text) / 4 + 1 : 0;
	/* Pro always thinks, more about a longer prompt */
	u->thought = g->m && g->m->thinks ? 200 + (int)(g->prompt.len < 4000 ? g->prompt.len : 4000) / 2 : 0;
	u->search = g->search && image ? 1 : 0;
}

double gen_cost(const struct gen_req *g, const struct gen_usage *u, const char *route)
{
	double factor = !strcmp(route, "batch") || !strcmp(route, "flex") ? 0.5 : 1;
	if (!g->m)
		return 0;
	double tokens = (double)(u->text_in + u->image_in) * g->m->rate_in +
			(double)u->image_out * g->m->rate_image_out +
			(double)(u->text_out + u->thought) * g->m->rate_text_out;
	return tokens / 1e6 * factor + u->search * EMU_SEARCH_QUERY_USD;
}

void gen_bill(const struct gen_req *g, const struct gen_usage *u, const char *route)
{
	bill_generation(1);
	bill_add(g->m->id, model_size_name(g->sz), route, 1, gen_cost(g, u, route));
}

void gen_log(const struct gen_req *g, int status)
{
	cJSON *e = cJSON_CreateObject();
	cJSON_AddStringToObject(e, "endpoint", g->endpoint);
	cJSON_AddStringToObject(e, "model", g->model);
	cJSON_AddStringToObject(e, "size", g->m && *g->size == 0 ?
				model_size_name(g->sz) : g->size);
	cJSON_AddStringToObject(e, "aspect", g->aspect);
	cJSON_AddStringToObject(e, "prompt", g->prompt.data ? g->prompt.data : "");
	cJSON_AddNumberToObject(e, "n_images_in", g->n_in);
	cJSON *arr = cJSON_AddArrayToObject(e, "images_in");
	for (int i = 0; i < g->n_in; i++) {
		cJSON *im = cJSON_CreateObject();
		cJSON_AddStringToObject(im, "mime", g->in[i].mime);
		cJSON_AddNumberToObject(im, "bytes", (double)g->in[i].bytes);
		cJSON_AddStringToObject(im, "sha256", g->in[i].sha256);
		cJSON_AddItemToArray(arr, im);
	}
	cJSON_AddStringToObject(e, "auth", g->auth == AUTH_KEY ? "key" :
				g->auth == AUTH_BEARER ? "bearer" : "none");
	cJSON_AddBoolToObject(e, "search", g->search);
	if (g->has_system)
		cJSON_AddStringToObject(e, "system", g->system);
	else
		cJSON_AddNullToObject(e, "system");
	cJSON_AddNumberToObject(e, "status", status);
	if (g->background)
		cJSON_AddBoolToObject(e, "background", 1);
	bill_log_request(e);
}

void gen_bill_huge(const struct fault *f, struct gen_req *g, const char *route)
{
	struct emu_err e;

	struct gen_usage u;

	/* A huge 2xx body is an image made and being sent: Google bills it. */
	if (f->kind != F_HUGE || (f->status && (f->status < 200 || f->status > 299)) ||
	    !gen_validate(g, &e))
		return;
	gen_usage(g, true, NULL, &u);
	gen_bill(g, &u, route);
}

bool gen_pre_defer(struct fault *f, enum flavor fl, const char *model,
		   struct emu_resp *r, int *delay_ms)
{
	int delay = emu_opt.latency_ms;

	*f = fault_take(model);
	if (fault_error_resp(f, fl, model, r))
		return true;
	if (f->kind == F_SLOW)
		delay += f->delay_ms;
	if (delay_ms)
		*delay_ms = delay;
	else
		util_sleep_ms(delay);
	return fault_transport(f, r);
}

bool gen_parse_tools(const cJSON *j, struct gen_req *g, bool interactions, struct emu_err *e)
{
	const char *flavor = "invalid_request";
	cJSON *tools = json_get2(j, "tools", NULL);
	if (tools && !cJSON_IsArray(tools)) {
		err_set(e, 400, "INVALID_ARGUMENT", flavor,
			"Invalid value at 'tools' (type.googleapis.com/google.ai.generativelanguage.v1beta.Tool), "
			"expected a list.");
		return false;
	}
	int i = 0;
	const cJSON *t;
	cJSON_ArrayForEach(t, tools) {
		if (interactions) {
			const char *type = json_str2(t, "type", NULL);
			if (!type || strcmp(type, "google_search") != 0) {
				err_set(e, 400, "INVALID_ARGUMENT", flavor,
					"The value '%s' is not supported for 'type' at 'tools[%d]'.",
					type ? type : "", i);
				return false;
			}
		} else if (json_get2(t, "googleSearchRetrieval", "google_search_retrieval")) {
			err_set(e, 400, "INVALID_ARGUMENT", flavor,
				"google_search_retrieval is not supported; please use google_search field instead.");
			return false;
		} else if (!cJSON_IsObject(json_get2(t, "googleSearch", "google_search"))) {
			err_set(e, 400, "INVALID_ARGUMENT", flavor,
				"Invalid JSON payload received. Unknown name in 'tools[%d]': only google_search "
				"is offered for image models.", i);
			return false;
		}
		g->search = true;
		i++;
	}
	cJSON *si = json_get2(j, interactions ? "system_instruction" : "systemInstruction",
			      "system_instruction");
	if (si && !cJSON_IsNull(si)) {
		const char *text = NULL;
		if (interactions) {
			if (!cJSON_IsString(si)) {
				err_set(e, 400, "INVALID_ARGUMENT", flavor,
					"Invalid value at 'system_instruction' (TYPE_STRING).");
				return false;
			}
			text = si->valuestring;
		} else {
			const cJSON *p = cJSON_GetArrayItem(json_get2(si, "parts", NULL), 0);
			text = json_str2(p, "text", NULL);
			if (!cJSON_IsObject(si) || !text) {
				err_set(e, 400, "INVALID_ARGUMENT", flavor,
					"Invalid value at 'system_instruction' "
					"(type.googleapis.com/google.ai.generativelanguage.v1beta.Content): "
					"expected {\"parts\": [{\"text\": ...}]}.");
				return false;
			}
		}
		g->has_system = true;
		snprintf(g->system, sizeof g->system, "%s", text);
	}
	return true;
}

void gen_search_query(const struct gen_req *g, char *out, size_t len)
{
	const char *p = g->prompt.data ? g->prompt.data : "";
	size_t n = strlen(p);
	if (n > 60)
		n = 60;
	snprintf(out, len, "%.*s", (int)n, p);
}

bool gen_pre(struct fault *f, enum flavor fl, const char *model,
	     struct emu_resp *r)
{
	return gen_pre_defer(f, fl, model, r, NULL);
}
