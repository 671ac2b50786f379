/* OpenAI-compatible gateway routes (gemini-wire.md section 6): images
 * generations/edits and chat completions, Bearer auth, a flat price per 200. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "emu.h"

#define N_MAX 4
#define RING 16

/* ---- images served for response_format "url" ------------------------------- */

static pthread_mutex_t ring_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
	char name[48];
	const char *mime;
	unsigned char *data;
	size_t len;
} ring[RING];                   /* protected by ring_mu */
static unsigned ring_next;      /* protected by ring_mu */

static void ring_put(const struct gen_out *o, char *name, size_t n)
{
	char id[17];
	util_id(id, sizeof id);
	snprintf(name, n, "%s.%s", id, strcmp(o->mime, "image/jpeg") ? "png" : "jpg");
	unsigned char *copy = malloc(o->len);
	if (copy)
		memcpy(copy, o->img, o->len);
	pthread_mutex_lock(&ring_mu);
	unsigned k = ring_next++ % RING;
	free(ring[k].data);
	snprintf(ring[k].name, sizeof ring[k].name, "%s", name);
	ring[k].mime = o->mime;
	ring[k].data = copy;
	ring[k].len = copy ? o->len : 0;
	pthread_mutex_unlock(&ring_mu);
}

void oai_image_get(const struct emu_req *q, const char *name, struct emu_resp *r)
{
	(void)q;
	char *copy = NULL;
	size_t len = 0;
	const char *mime = NULL;
	pthread_mutex_lock(&ring_mu);
	for (int i = 0; i < RING; i++)
		if (ring[i].data && !strcmp(ring[i].name, name)) {
			copy = malloc(ring[i].len);
			if (copy) {
				memcpy(copy, ring[i].data, ring[i].len);
				len = ring[i].len;
				mime = ring[i].mime;
			}
		}
	pthread_mutex_unlock(&ring_mu);
	if (!copy) {
		resp_text(r, 404, "text/plain", "no such image\n");
		return;
	}
	resp_take(r, 200, mime, copy, len);
}

void oai_reset(void)
{
	pthread_mutex_lock(&ring_mu);
	for (int i = 0; i < RING; i++) {
		free(ring[i].data);
		ring[i].data = NULL;
	}
	pthread_mutex_unlock(&ring_mu);
}

/* ---- helpers ----------------------------------------------------------------- */

static void oai_err(struct emu_resp *r, int http, const char *code,
		    const char *param, const char *msg)
{
	cJSON *root = cJSON_CreateObject();
	cJSON *e = cJSON_AddObjectToObject(root, "error");
	cJSON_AddStringToObject(e, "message", msg);
	cJSON_AddStringToObject(e, "type", http >= 500 ? "server_error" :
				"invalid_request_error");
	if (param)
		cJSON_AddStringToObject(e, "param", param);
	else
		cJSON_AddNullToObject(e, "param");
	if (code)
		cJSON_AddStringToObject(e, "code", code);
	else
		cJSON_AddNullToObject(e, "code");
	resp_json(r, http, root);
}

static void validation_err(struct emu_resp *r, const struct emu_err *e)
{
	oai_err(r, e->http, e->http == 404 ? "model_not_found" : "invalid_value",
		e->http == 404 ? "model" : "size", e->msg);
}

static const char *const aspects[] = {
	"1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9",
	"1:4", "4:1", "1:8", "8:1",
};

/* OpenAI "WxH" -> aspect + tier: an exact table match first, else the
 * closest ratio the model has and a tier from the longer side. */
static bool map_size(struct gen_req *g, const char *size)
{
	const struct model_info *m = model_find(g->model);
	if (!size || !*size || !strcmp(size, "auto"))
		return true;
	int W, H;
	char x;
	if (sscanf(size, "%d%c%d", &W, &x, &H) != 3 || x != 'x' || W <= 0 || H <= 0)
		return false;
	if (!m)
		return true;    /* gen_validate reports the model */
	double best = 1e9;
	const char *best_a = NULL;
	for (size_t i = 0; i < sizeof aspects / sizeof aspects[0]; i++)
		for (int s = 0; s < SZ_COUNT; s++) {
			int w, h;
			if (!(m->sizes & (1u << s)) || !model_pixels(m, (enum model_size)s, aspects[i], &w, &h))
				continue;
			if (w == W && h == H) {
				snprintf(g->aspect, sizeof g->aspect, "%s", aspects[i]);
				snprintf(g->size, sizeof g->size, "%s",
					 m->fixed_table ? "" : model_size_name((enum model_size)s));
				return true;
			}
			double d = fabs(log((double)w / h) - log((double)W / H));
			if (d < best) {
				best = d;
				best_a = aspects[i];
			}
		}
	int longer = W > H ? W : H;
	enum model_size s = longer <= 768 ? SZ_512 : longer <= 1600 ? SZ_1K :
			    longer <= 3200 ? SZ_2K : SZ_4K;
	snprintf(g->aspect, sizeof g->aspect, "%s", best_a ? best_a : "1:1");
	snprintf(g->size, sizeof g->size, "%s", m->fixed_table ? "" : model_size_name(s));
	return true;
}

/* usage of an images answer (gemini-wire.md 6.1): the model's tokens, thinking counted as output. */
static void add_usage(cJSON *root, const struct gen_req *g, int images)
{
	struct gen_usage us;
	gen_usage(g, images > 0, NULL, &us);
	int in_img = us.image_in, in_txt = us.text_in;
	int out_img = images * us.image_out, out_txt = images ? us.thought : 0;
	cJSON *u = cJSON_AddObjectToObject(root, "usage");
	cJSON_AddNumberToObject(u, "input_tokens", in_img + in_txt);
	cJSON_AddNumberToObject(u, "output_tokens", out_img + out_txt);
	cJSON_AddNumberToObject(u, "total_tokens", in_img + in_txt + out_img + out_txt);
	cJSON *d = cJSON_AddObjectToObject(u, "input_tokens_details");
	cJSON_AddNumberToObject(d, "image_tokens", in_img);
	cJSON_AddNumberToObject(d, "text_tokens", in_txt);
	d = cJSON_AddObjectToObject(u, "output_tokens_details");
	cJSON_AddNumberToObject(d, "image_tokens", out_img);
	cJSON_AddNumberToObject(d, "text_tokens", out_txt);
}

static void bill_gateway(const struct gen_req *g, int images)
{
	bill_generation(images);
	bill_add(g->m ? g->m->id : g->model, g->m ? model_size_name(g->sz) : "",
		 "gateway", 1, emu_opt.gateway_price);
}

struct img_params {
	int n;
	bool url;               /* response_format "url" */
	const char *out_fmt;    /* "png" or "jpeg" */
};

/* Shared tail of generations and edits: g is filled, params parsed. */
static void images_answer(const struct emu_req *q, struct gen_req *g,
			  const struct img_params *p, struct emu_resp *r)
{
	struct emu_err e;
	struct fault f;
	if (gen_pre(&f, FL_OPENAI, g->model, r))
		return;
	if (!gen_validate(g, &e))
		return validation_err(r, &e);
	cJSON *root = cJSON_CreateObject();
	cJSON_AddNumberToObject(root, "created", (double)time(NULL));
	cJSON *data = cJSON_AddArrayToObject(root, "data");
	int made = 0;
	bool refuse = f.kind == F_SAFETY || f.kind == F_TEXT_ONLY;
	for (int k = 0; k < p->n && !refuse; k++) {
		struct gen_out o;
		g->variant = k;
		if (!gen_render(g, &o, &f)) {
			cJSON_Delete(root);
			return oai_err(r, 500, NULL, NULL, "image rendering failed");
		}
		if (f.kind == F_TRUNC_B64)
			gen_truncate_b64(&o);
		cJSON *item = cJSON_CreateObject();
		if (p->url) {
			char name[48], url[400];
			ring_put(&o, name, sizeof name);
			snprintf(url, sizeof url, "%s/_emulator/images/%s", q->base, name);
			cJSON_AddStringToObject(item, "url", url);
		} else {
			cJSON_AddStringToObject(item, "b64_json", o.b64);
		}
		cJSON_AddStringToObject(item, "revised_prompt",
					g->prompt.data ? g->prompt.data : "");
		cJSON_AddItemToArray(data, item);
		made++;
		gen_out_free(&o);
	}
	char sz[32];
	snprintf(sz, sizeof sz, "%dx%d", g->w, g->h);
	cJSON_AddStringToObject(root, "output_format",
				g->want_jpeg || f.kind == F_JPEG ? "jpeg" : "png");
	cJSON_AddStringToObject(root, "size", sz);
	add_usage(root, g, made);
	resp_json(r, 200, root);
	if (f.kind == F_MALFORMED)
		fault_break_json(r);
	if (f.kind == F_DROP)
		r->stream = RS_DROP;
	else if (r->status == 200)
		bill_gateway(g, made);      /* gateways bill every 200 */
}

static bool parse_params(struct gen_req *g, const char *n, const char *size,
			 const char *rf, const char *fmt, struct img_params *p,
			 struct emu_resp *r)
{
	p->n = n ? atoi(n) : 1;
	if (p->n < 1 || p->n > N_MAX) {
		oai_err(r, 400, "invalid_value", "n", "n must be between 1 and 4.");
		return false;
	}
	p->url = rf && !strcmp(rf, "url");
	if (rf && !p->url && strcmp(rf, "b64_json") != 0) {
		oai_err(r, 400, "invalid_value", "response_format",
			"response_format must be 'url' or 'b64_json'.");
		return false;
	}
	if (fmt && strcmp(fmt, "png") && strcmp(fmt, "jpeg") && strcmp(fmt, "jpg")) {
		oai_err(r, 400, "invalid_value", "output_format",
			"output_format must be 'png' or 'jpeg' on this gateway.");
		return false;
	}
	g->want_jpeg = fmt && strcmp(fmt, "png") != 0;
	if (!map_size(g, size)) {
		oai_err(r, 400, "invalid_value", "size",
			"size must be 'auto' or WIDTHxHEIGHT.");
		return false;
	}
	return true;
}

static void set_model(struct gen_req *g, const char *m)
{
	snprintf(g->model, sizeof g->model, "%s", m && *m ? m : "gemini-3.1-flash-image");
}

/* ---- POST /v1/images/generations ------------------------------------------- */

void oai_images_generate(const struct emu_req *q, struct emu_resp *r)
{
	struct gen_req g;
	struct img_params p;
	cJSON *j = NULL;
	gen_init(&g, "images/generations", q->auth);
	bill_count_endpoint("images/generations");
	if (!http_check_auth(q, FL_OPENAI, r))
		goto out_log;
	j = cJSON_ParseWithLength(q->body, q->body_len);
	if (!cJSON_IsObject(j)) {
		oai_err(r, 400, NULL, NULL, "We could not parse the JSON body of your request.");
		goto out_log;
	}
	set_model(&g, json_str2(j, "model", NULL));
	const char *prompt = json_str2(j, "prompt", NULL);
	if (!prompt || !*prompt) {
		oai_err(r, 400, "missing_required_parameter", "prompt",
			"Missing required parameter: 'prompt'.");
		goto out_log;
	}
	gen_add_text(&g, prompt);
	cJSON *n = json_get2(j, "n", NULL);
	char nbuf[16];
	snprintf(nbuf, sizeof nbuf, "%d", cJSON_IsNumber(n) ? n->valueint : 1);
	if (!parse_params(&g, nbuf, json_str2(j, "size", NULL),
			  json_str2(j, "response_format", NULL),
			  json_str2(j, "output_format", NULL), &p, r))
		goto out_log;
	images_answer(q, &g, &p, r);
out_log:
	gen_log(&g, r->status);
	cJSON_Delete(j);
	gen_free(&g);
}

/* ---- POST /v1/images/edits (multipart) ----------------------------------------- */

static const char *field(const struct emu_req *q, const char *name)
{
	for (int i = 0; i < q->nparts; i++)
		if (!strcmp(q->parts[i].name, name) && !q->parts[i].filename[0])
			return q->parts[i].data.data ? q->parts[i].data.data : "";
	return NULL;
}

void oai_images_edit(const struct emu_req *q, struct emu_resp *r)
{
	struct gen_req g;
	struct img_params p;
	gen_init(&g, "images/edits", q->auth);
	bill_count_endpoint("images/edits");
	if (!http_check_auth(q, FL_OPENAI, r))
		goto out_log;
	set_model(&g, field(q, "model"));
	for (int i = 0; i < q->nparts; i++) {
		const struct form_part *fp = &q->parts[i];
		if (!strcmp(fp->name, "image") || !strcmp(fp->name, "image[]"))
			gen_add_image_raw(&g, fp->ctype, fp->data.data ? fp->data.data : "",
					  fp->data.len);
	}
	const char *prompt = field(q, "prompt");
	if (!prompt || !*prompt) {
		oai_err(r, 400, "missing_required_parameter", "prompt",
			"Missing required parameter: 'prompt'.");
		goto out_log;
	}
	gen_add_text(&g, prompt);
	if (g.n_in == 0) {
		oai_err(r, 400, "missing_required_parameter", "image",
			"Missing required parameter: 'image'.");
		goto out_log;
	}
	if (!parse_params(&g, field(q, "n"), field(q, "size"),
			  field(q, "response_format"), field(q, "output_format"), &p, r))
		goto out_log;
	images_answer(q, &g, &p, r);
out_log:
	gen_log(&g, r->status);
	gen_free(&g);
}

/* ---- POST /v1/chat/completions ---------------------------------------------------- */

static void add_data_url(struct gen_req *g, const char *url)
{
	/* data:<mime>;base64,<data> */
	if (!url || strncmp(url, "data:", 5) != 0) {
		gen_add_image_raw(g, "", url ? url : "", url ? strlen(url) : 0);
		return;
	}
	const char *semi = strchr(url, ';'), *comma = strchr(url, ',');
	char mime[64] = "";
	if (semi && comma && semi < comma && (size_t)(semi - url - 5) < sizeof mime) {
		memcpy(mime, url + 5, (size_t)(semi - url - 5));
		mime[semi - url - 5] = '\0';
	}
	gen_add_image_b64(g, mime, comma ? comma + 1 : "");
}

void oai_chat(const struct emu_req *q, struct emu_resp *r)
{
	struct gen_req g;
	struct emu_err e;
	struct fault f;
	struct gen_out o;
	bool have_img = false;
	cJSON *j = NULL;

	gen_init(&g, "chat/completions", q->auth);
	bill_count_endpoint("chat/completions");
	if (!http_check_auth(q, FL_OPENAI, r))
		goto out_log;
	j = cJSON_ParseWithLength(q->body, q->body_len);
	if (!cJSON_IsObject(j)) {
		oai_err(r, 400, NULL, NULL, "We could not parse the JSON body of your request.");
		goto out_log;
	}
	set_model(&g, json_str2(j, "model", NULL));
	cJSON *msgs = json_get2(j, "messages", NULL), *last = NULL, *m;
	cJSON_ArrayForEach(m, msgs) {
		const char *role = json_str2(m, "role", NULL);
		if (role && !strcmp(role, "user"))
			last = m;
	}
	if (!last) {
		oai_err(r, 400, "missing_required_parameter", "messages",
			"messages must contain a user message.");
		goto out_log;
	}
	cJSON *content = json_get2(last, "content", NULL);
	if (cJSON_IsString(content)) {
		gen_add_text(&g, content->valuestring);
	} else {
		cJSON *part;
		cJSON_ArrayForEach(part, content) {
			const char *type = json_str2(part, "type", NULL);
			if (type && !strcmp(type, "text"))
				gen_add_text(&g, json_str2(part, "text", NULL));
			else if (type && !strcmp(type, "image_url"))
				add_data_url(&g, json_str2(json_get2(part, "image_url", NULL), "url", NULL));
		}
	}
	/* OpenRouter-style image_config, or extra_body.google.image_config */
	cJSON *ic = json_get2(j, "image_config", NULL);
	if (!ic)
		ic = json_get2(json_get2(json_get2(j, "extra_body", NULL), "google", NULL),
			       "image_config", NULL);
	if (!ic)
		ic = json_get2(json_get2(j, "google", NULL), "image_config", NULL);
	const char *a = json_str2(ic, "aspect_ratio", "aspectRatio");
	const char *s = json_str2(ic, "image_size", "imageSize");
	snprintf(g.aspect, sizeof g.aspect, "%s", a ? a : "");
	snprintf(g.size, sizeof g.size, "%s", s ? s : "");
	bool images_field = false;
	cJSON *mods = json_get2(j, "modalities", NULL), *x;
	cJSON_ArrayForEach(x, mods)
		if (cJSON_IsString(x) && !strcmp(x->valuestring, "image"))
			images_field = true;

	if (gen_pre(&f, FL_OPENAI, g.model, r))
		goto out_log;
	if (!gen_validate(&g, &e)) {
		validation_err(r, &e);
		goto out_log;
	}
	struct buf text = { 0 };
	bool refuse = f.kind == F_SAFETY || f.kind == F_TEXT_ONLY;
	if (!refuse) {
		if (!gen_render(&g, &o, &f)) {
			oai_err(r, 500, NULL, NULL, "image rendering failed");
			goto out_log;
		}
		have_img = true;
		if (f.kind == F_TRUNC_B64)
			gen_truncate_b64(&o);
	}
	if (refuse)
		buf_adds(&text, f.kind == F_SAFETY ?
			 "I'm unable to create this image because it may violate the safety policy." :
			 "I can't create that image.");
	else if (images_field)
		buf_adds(&text, "Here is your image.");
	else
		buf_printf(&text, "![image](data:%s;base64,%s)", o.mime, o.b64);

	cJSON *root = cJSON_CreateObject();
	char id[40] = "chatcmpl-";
	util_id(id + 9, 25);
	cJSON_AddStringToObject(root, "id", id);
	cJSON_AddStringToObject(root, "object", "chat.completion");
	cJSON_AddNumberToObject(root, "created", (double)time(NULL));
	cJSON_AddStringToObject(root, "model", g.model);
	cJSON *choices = cJSON_AddArrayToObject(root, "choices");
	cJSON *ch = cJSON_CreateObject();
	cJSON_AddNumberToObject(ch, "index", 0);
	cJSON *msg = cJSON_AddObjectToObject(ch, "message");
	cJSON_AddStringToObject(msg, "role", "assistant");
	cJSON_AddStringToObject(msg, "content", text.data ? text.data : "");
	if (have_img && images_field) {
		cJSON *imgs = cJSON_AddArrayToObject(msg, "images");
		cJSON *im = cJSON_CreateObject();
		cJSON_AddStringToObject(im, "type", "image_url");
		struct buf url = { 0 };
		buf_printf(&url, "data:%s;base64,%s", o.mime, o.b64);
		cJSON *iu = cJSON_AddObjectToObject(im, "image_url");
		cJSON_AddStringToObject(iu, "url", url.data ? url.data : "");
		buf_free(&url);
		cJSON_AddItemToArray(imgs, im);
	}
	cJSON_AddStringToObject(ch, "finish_reason", "stop");
	cJSON_AddItemToArray(choices, ch);
	/* OpenAI chat usage: completion_tokens include the reasoning, told apart in the details */
	struct gen_usage us;
	gen_usage(&g, have_img, have_img ? EMU_IMAGE_TEXT : "I can't create that image.", &us);
	int pt = us.text_in + us.image_in, ct = us.image_out + us.text_out + us.thought;
	cJSON *u = cJSON_AddObjectToObject(root, "usage");
	cJSON_AddNumberToObject(u, "prompt_tokens", pt);
	cJSON_AddNumberToObject(u, "completion_tokens", ct);
	cJSON_AddNumberToObject(u, "total_tokens", pt + ct);
	cJSON *cd = cJSON_AddObjectToObject(u, "completion_tokens_details");
	cJSON_AddNumberToObject(cd, "reasoning_tokens", us.thought);
	buf_free(&text);
	resp_json(r, 200, root);
	if (f.kind == F_MALFORMED)
		fault_break_json(r);
	if (f.kind == F_DROP)
		r->stream = RS_DROP;
	else if (r->status == 200)
		bill_gateway(&g, have_img ? 1 : 0);
out_log:
	if (have_img)
		gen_out_free(&o);
	gen_log(&g, r->status);
	cJSON_Delete(j);
	gen_free(&g);
}
