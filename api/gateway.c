/*
 * gateway.c - a provider reached with a Bearer key (gemini-wire.md section 6),
 * in one of three dialects picked by config gateway_api (ep->gateway_api):
 *   native  POST {base}/v1beta/models/{m}:generateContent: generate.c's body
 *           and parser (the only dialect that carries aspect ratio and size
 *           everywhere);
 *   images  POST {base}/v1/images/generations (JSON), or /v1/images/edits
 *           (multipart, one image[] part per reference) when there are
 *           references; answer data[0].b64_json;
 *   chat    POST {base}/v1/chat/completions with modalities image+text;
 *           the answer's three image shapes are parsed by gateway_parse_chat.
 * The model id goes out under the provider's name (gateway_models).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "api/image.h"
#include "api/models.h"
#include "api/multipart.h"
#include "api/wire.h"

static const char oom_msg[] = "cannot build the gateway request (out of memory or bad key)";

/* Length of base without trailing '/' and, when strip_v1, without a final "/v1". */
static size_t base_len(const char *base, bool strip_v1, bool *had_v1)
{
	size_t bl = base ? strlen(base) : 0;
	while (bl && base[bl - 1] == '/')
		bl--;
	bool v1 = bl >= 3 && strncmp(base + bl - 3, "/v1", 3) == 0;
	if (had_v1)
		*had_v1 = v1;
	if (strip_v1 && v1)
		bl -= 3;
	return bl;
}

/* {base}/v1/rest, without a second /v1 when the base already names it. */
static char *openai_url(const struct api_endpoint *ep, const char *rest)
{
	bool has_v1;
	size_t bl = base_len(ep->base_url, false, &has_v1);
	if (!ep->base_url)
		return NULL;
	char *base = strndup(ep->base_url, bl);
	char *url = base ? wire_url(base, "%s%s", has_v1 ? "" : "v1/", rest) : NULL;
	free(base);
	return url;
}

static int check_request(const struct gen_request *rq, char *err, size_t errlen)
{
	if (!rq->model || !rq->prompt || !rq->size || !rq->aspect) {
		snprintf(err, errlen, "request lacks model, prompt, size or aspect");
		return -1;
	}
	if (rq->search) {	/* prompt_check_route refuses it first; never send it unpriced */
		snprintf(err, errlen, "a gateway does not carry Google Search grounding (search: yes)");
		return -1;
	}
	return 0;
}

/* native: generate.c's request with the provider's model name, Bearer key, v1beta. */
static int native_build(const struct api_endpoint *ep, const struct gen_request *rq,
			struct http_req *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (check_request(rq, err, errlen))
		return -1;
	const char *theirs = gateway_map_name(ep->models, rq->model);
	if (strpbrk(theirs, "/?#:% ")) {
		snprintf(err, errlen, "the provider model name \"%.64s\" cannot go into the "
			 "generateContent URL; use gateway_api = images or chat for it", theirs);
		return -1;
	}
	/* a gateway_url written for the OpenAI paths ("https://x/v1") still works */
	char *base = ep->base_url ? strndup(ep->base_url, base_len(ep->base_url, true, NULL)) : NULL;
	if (!base) {
		snprintf(err, errlen, "%s", ep->base_url ? oom_msg : "no gateway_url set");
		return -1;
	}
	struct api_endpoint nep = *ep;
	struct gen_request nrq = *rq;
	nep.base_url = base;
	nep.api_version = "v1beta";
	nep.bearer = 1;
	nrq.model = theirs;
	int rc = route_generate.build(&nep, &nrq, out, err, errlen);
	free(base);
	return rc;
}

static int pixel_size(const struct gen_request *rq, char *size, size_t len, char *err, size_t errlen)
{
	int w, h;
	if (model_pixels(rq->model, rq->size, rq->aspect, &w, &h) != 0) {
		snprintf(err, errlen, "no pixel size known for %.64s %s %s", rq->model, rq->size,
			 rq->aspect);
		return -1;
	}
	snprintf(size, len, "%dx%d", w, h);
	return 0;
}

/* images with references: POST /v1/images/edits, multipart/form-data. */
static int edits_build(const struct api_endpoint *ep, const struct gen_request *rq,
		       const char *theirs, const char *size, struct http_req *out,
		       char *err, size_t errlen)
{
	int np = 0;
	char boundary[MULTIPART_BOUNDARY_MAX];
	char (*names)[32] = calloc((size_t)rq->nrefs, sizeof(*names));
	struct mp_part *parts = calloc((size_t)rq->nrefs + 5, sizeof(*parts));

	if (!names || !parts)
		goto out_fail;
	parts[np++] = (struct mp_part){ "model", NULL, NULL, theirs, strlen(theirs) };
	parts[np++] = (struct mp_part){ "prompt", NULL, NULL, rq->prompt, strlen(rq->prompt) };
	parts[np++] = (struct mp_part){ "n", NULL, NULL, "1", 1 };
	parts[np++] = (struct mp_part){ "size", NULL, NULL, size, strlen(size) };
	parts[np++] = (struct mp_part){ "response_format", NULL, NULL, "b64_json", 8 };
	for (int i = 0; i < rq->nrefs; i++) {
		const struct ref_image *r = &rq->refs[i];
		const char *mime = r->mime ? r->mime : "image/png";
		snprintf(names[i], sizeof(names[i]), "image%d.%s", i + 1, image_ext(mime));
		parts[np++] = (struct mp_part){ "image[]", names[i], mime, r->data, r->len };
	}
	out->body = multipart_build(parts, np, boundary, &out->body_len);
	if (!out->body)
		goto out_fail;
	out->method = "POST";
	out->url = openai_url(ep, "images/edits");
	if (!out->url || wire_auth(out, ep, true) ||
	    wire_header(out, "Content-Type: multipart/form-data; boundary=%s", boundary))
		goto out_fail;
	free(parts);
	free(names);
	return 0;
out_fail:
	free(parts);
	free(names);
	http_req_free(out);
	snprintf(err, errlen, "%s", oom_msg);
	return -1;
}

/* images: POST /v1/images/generations, or edits when there are references. */
static int images_build(const struct api_endpoint *ep, const struct gen_request *rq,
			struct http_req *out, char *err, size_t errlen)
{
	char size[32];
	cJSON *root = NULL;

	memset(out, 0, sizeof(*out));
	if (check_request(rq, err, errlen) || pixel_size(rq, size, sizeof(size), err, errlen))
		return -1;
	if (rq->system) {
		snprintf(err, errlen, "the images API carries no system instruction (system:); "
			 "use gateway_api = chat or native");
		return -1;
	}
	const char *theirs = gateway_map_name(ep->models, rq->model);
	if (rq->nrefs > 0)
		return edits_build(ep, rq, theirs, size, out, err, errlen);

	out->method = "POST";
	out->url = openai_url(ep, "images/generations");
	if (!out->url || wire_auth(out, ep, true) ||
	    wire_header(out, "Content-Type: application/json"))
		goto out_fail;
	root = cJSON_CreateObject();
	if (!root || !cJSON_AddStringToObject(root, "model", theirs) ||
	    !cJSON_AddStringToObject(root, "prompt", rq->prompt) ||
	    !cJSON_AddNumberToObject(root, "n", 1) ||
	    !cJSON_AddStringToObject(root, "size", size) ||
	    !cJSON_AddStringToObject(root, "response_format", "b64_json") || wire_body(out, root))
		goto out_fail;
	cJSON_Delete(root);
	return 0;
out_fail:
	cJSON_Delete(root);
	http_req_free(out);
	snprintf(err, errlen, "%s", oom_msg);
	return -1;
}

/*
 * chat: one user message of a text part and an image_url data URL per
 * reference; modalities image+text asks for message.images[].  image_config
 * (OpenRouter's knob) carries aspect and size where the provider honours it.
 */
static int chat_build(const struct api_endpoint *ep, const struct gen_request *rq,
		      struct http_req *out, char *err, size_t errlen)
{
	cJSON *root = NULL, *msgs, *msg, *content, *part, *iu, *mods, *ic;
	char *url = NULL, *b64 = NULL;

	memset(out, 0, sizeof(*out));
	if (check_request(rq, err, errlen))
		return -1;
	out->method = "POST";
	out->url = openai_url(ep, "chat/completions");
	if (!out->url || wire_auth(out, ep, true) ||
	    wire_header(out, "Content-Type: application/json"))
		goto out_fail;
	root = cJSON_CreateObject();
	if (!root || !cJSON_AddStringToObject(root, "model", gateway_map_name(ep->models, rq->model)) ||
	    !(msgs = cJSON_AddArrayToObject(root, "messages")))
		goto out_fail;
	if (rq->system && (!(msg = cJSON_CreateObject()) || !cJSON_AddItemToArray(msgs, msg) ||
			   !cJSON_AddStringToObject(msg, "role", "system") ||
			   !cJSON_AddStringToObject(msg, "content", rq->system)))
		goto out_fail;
	if (!(msg = cJSON_CreateObject()) || !cJSON_AddItemToArray(msgs, msg) ||
	    !cJSON_AddStringToObject(msg, "role", "user") ||
	    !(content = cJSON_AddArrayToObject(msg, "content")) ||
	    !(part = cJSON_CreateObject()) || !cJSON_AddItemToArray(content, part) ||
	    !cJSON_AddStringToObject(part, "type", "text") ||
	    !cJSON_AddStringToObject(part, "text", rq->prompt))
		goto out_fail;
	for (int i = 0; i < rq->nrefs; i++) {
		const struct ref_image *r = &rq->refs[i];
		if (!(b64 = base64_encode(r->data, r->len)) ||
		    asprintf(&url, "data:%s;base64,%s", r->mime ? r->mime : "image/png", b64) < 0) {
			url = NULL;
			goto out_fail;
		}
		free(b64);
		b64 = NULL;
		if (!(part = cJSON_CreateObject()) || !cJSON_AddItemToArray(content, part) ||
		    !cJSON_AddStringToObject(part, "type", "image_url") ||
		    !(iu = cJSON_AddObjectToObject(part, "image_url")) ||
		    !cJSON_AddStringToObject(iu, "url", url))
			goto out_fail;
		free(url);
		url = NULL;
	}
	if (!(mods = cJSON_AddArrayToObject(root, "modalities")) ||
	    !cJSON_AddItemToArray(mods, cJSON_CreateString("image")) ||
	    !cJSON_AddItemToArray(mods, cJSON_CreateString("text")) ||
	    !(ic = cJSON_AddObjectToObject(root, "image_config")) ||
	    !cJSON_AddStringToObject(ic, "aspect_ratio", rq->aspect) ||
	    !cJSON_AddStringToObject(ic, "image_size", rq->size) || wire_body(out, root))
		goto out_fail;
	cJSON_Delete(root);
	return 0;
out_fail:
	free(url);
	free(b64);
	cJSON_Delete(root);
	http_req_free(out);
	snprintf(err, errlen, "%s", oom_msg);
	return -1;
}

static int gateway_build(const struct api_endpoint *ep, const struct gen_request *rq,
			 struct http_req *out, char *err, size_t errlen)
{
	const struct route_ops *ops = gateway_ops_for((enum gateway_api)ep->gateway_api);
	if (!ops) {
		memset(out, 0, sizeof(*out));
		snprintf(err, errlen, "unknown gateway_api %d", ep->gateway_api);
		return -1;
	}
	return ops->build(ep, rq, out, err, errlen);
}

static const char url_only_msg[] = "gateway returned a URL; only inline images are supported";

/*
 * Takes the image out of "data:image/png;base64,...." (the payload ends at
 * the string's end or at ')', '"', whitespace).  0, or -1 with res failed.
 */
static int take_data_url(struct gen_result *res, const char *s)
{
	if (strncmp(s, "data:", 5) != 0)
		return -1;
	const char *semi = strstr(s, ";base64,");
	if (!semi || semi - s > 64) {
		gen_result_fail(res, ERR_MALFORMED, "the data URL is not base64");
		return -1;
	}
	char mime[64];
	snprintf(mime, sizeof(mime), "%.*s", (int)(semi - (s + 5)), s + 5);
	const char *p = semi + 8;
	size_t n = strcspn(p, ")\"' \t");
	return wire_take_image(res, p, n, mime);
}

/* Markdown content: "text ![image](data:...) more text".  Text outside the URL goes to res->text. */
static int scan_content_string(struct gen_result *res, const char *c, bool *saw_url)
{
	const char *d = strstr(c, "data:image/");
	if (!d) {
		if (strstr(c, "https://") || strstr(c, "http://"))
			*saw_url = true;
		wire_add_text(res, c);
		return 1;	/* no image here */
	}
	/* keep the words around the image, not the megabytes of base64 */
	const char *start = d;
	if (start - c >= 2 && start[-1] == '(') {
		const char *bang = start - 1;
		while (bang > c && *bang != '!')
			bang--;
		if (*bang == '!')
			start = bang;
	}
	char *before = strndup(c, (size_t)(start - c));
	const char *after = d + strcspn(d, ")\"' \t");
	if (*after == ')')
		after++;
	if (before) {
		wire_add_text(res, before);
		free(before);
	}
	if (*after)
		wire_add_text(res, after);
	return take_data_url(res, d) == 0 ? 0 : -1;
}

static int url_in(const cJSON *item, const char **url)
{
	const cJSON *iu = cJSON_GetObjectItemCaseSensitive(item, "image_url");
	const char *u = cJSON_IsString(iu) ? iu->valuestring : wire_str(iu, "url");
	if (!u)
		return -1;
	*url = u;
	return 0;
}

void gateway_parse_chat(const struct http_resp *resp, struct gen_result *res)
{
	bool saw_url = false;
	int rc = 1;	/* 1: no image yet, 0: image taken, -1: failed */
	const char *last_url = NULL;

	res->http_status = resp->status;
	res->in_tokens = res->out_tokens = res->thought_tokens = -1;
	cJSON *root = wire_parse(resp, res);
	if (!root)
		return;
	const char *id = wire_str(root, "id");
	if (id)
		wire_copy(res->request_id, sizeof(res->request_id), id);
	else if (resp->request_id[0])
		wire_copy(res->request_id, sizeof(res->request_id), resp->request_id);
	const cJSON *u = cJSON_GetObjectItemCaseSensitive(root, "usage");
	res->in_tokens = wire_long(u, "prompt_tokens");
	res->out_tokens = wire_long(u, "completion_tokens");

	const cJSON *choice = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "choices"), 0);
	const cJSON *msg = cJSON_GetObjectItemCaseSensitive(choice, "message");
	const char *finish = wire_str(choice, "finish_reason");
	if (finish)
		wire_copy(res->finish_reason, sizeof(res->finish_reason), finish);

	/* shape 2: message.images[] (OpenRouter, litellm): the last one wins */
	const cJSON *it;
	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(msg, "images")) {
		const char *url;
		if (url_in(it, &url) == 0)
			last_url = url;
	}
	/* content: a string (shape 1/3) or a list of parts */
	const cJSON *content = cJSON_GetObjectItemCaseSensitive(msg, "content");
	if (cJSON_IsString(content)) {
		if (last_url)
			wire_add_text(res, content->valuestring);
		else
			rc = scan_content_string(res, content->valuestring, &saw_url);
	} else if (cJSON_IsArray(content)) {
		cJSON_ArrayForEach(it, content) {
			const char *url;
			const char *type = wire_str(it, "type");
			if (type && strcmp(type, "text") == 0)
				wire_add_text(res, wire_str(it, "text"));
			else if (url_in(it, &url) == 0 && !cJSON_GetObjectItemCaseSensitive(msg, "images"))
				last_url = url;
		}
	}
	if (rc == 1 && last_url) {
		if (strncmp(last_url, "data:", 5) == 0)
			rc = take_data_url(res, last_url) == 0 ? 0 : -1;
		else
			saw_url = true;
	}
	if (rc == 1) {
		if (saw_url)
			gen_result_fail(res, ERR_MALFORMED, url_only_msg);
		else if (wire_reason_is_safety(finish) || (finish && strcmp(finish, "content_filter") == 0))
			gen_result_fail(res, ERR_SAFETY, "the gateway blocked the image (%s)%s%s", finish,
					res->text ? ": " : "", res->text ? res->text : "");
		else
			gen_result_fail(res, ERR_NO_IMAGE, "the gateway returned no image%s%s",
					res->text ? ": " : "", res->text ? res->text : "");
	} else if (rc == 0) {
		res->cls = ERR_NONE;
	}
	cJSON_Delete(root);
}

static void images_parse(const struct http_resp *resp, struct gen_result *res)
{
	res->http_status = resp->status;
	res->in_tokens = res->out_tokens = res->thought_tokens = -1;
	cJSON *root = wire_parse(resp, res);
	if (!root)
		return;
	if (cJSON_GetObjectItemCaseSensitive(root, "choices")) {
		cJSON_Delete(root);	/* a chat-completions answer from a router */
		gateway_parse_chat(resp, res);
		return;
	}
	if (resp->request_id[0])
		wire_copy(res->request_id, sizeof(res->request_id), resp->request_id);
	const cJSON *u = cJSON_GetObjectItemCaseSensitive(root, "usage");
	res->in_tokens = wire_long(u, "input_tokens");
	res->out_tokens = wire_long(u, "output_tokens");
	/* input_tokens_details / output_tokens_details {image_tokens, text_tokens} (gemini-wire.md 6.1) */
	const cJSON *d = cJSON_GetObjectItemCaseSensitive(u, "input_tokens_details");
	if ((res->in_image_tokens = wire_long(d, "image_tokens")) >= 0)
		res->in_by_modality = true;
	d = cJSON_GetObjectItemCaseSensitive(u, "output_tokens_details");
	if ((res->out_image_tokens = wire_long(d, "image_tokens")) >= 0)
		res->out_by_modality = true;

	const cJSON *d0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "data"), 0);
	const char *b64 = wire_str(d0, "b64_json");
	wire_add_text(res, wire_str(d0, "revised_prompt"));
	if (b64) {
		if (wire_take_image(res, b64, strlen(b64), NULL) == 0)
			res->cls = ERR_NONE;
	} else if (wire_str(d0, "url")) {
		gen_result_fail(res, ERR_MALFORMED, url_only_msg);
	} else {
		gen_result_fail(res, ERR_NO_IMAGE, "the gateway returned no image%s%s",
				res->text ? ": " : "", res->text ? res->text : "");
	}
	cJSON_Delete(root);
}

/*
 * For callers that know only the route: the answer says which dialect it is
 * (candidates/promptFeedback: native; choices: chat; else images).
 */
static void gateway_parse(const struct http_resp *resp, struct gen_result *res)
{
	cJSON *root = resp->body ? cJSON_ParseWithLength(resp->body, resp->len) : NULL;
	bool native = cJSON_GetObjectItemCaseSensitive(root, "candidates") ||
		      cJSON_GetObjectItemCaseSensitive(root, "promptFeedback");
	cJSON_Delete(root);
	if (native)
		route_generate.parse(resp, res);
	else
		images_parse(resp, res);	/* hands chat answers on itself */
}

const struct route_ops route_gateway = {
	.name = "gateway",
	.build = gateway_build,
	.parse = gateway_parse,
};

static void native_parse(const struct http_resp *resp, struct gen_result *res)
{
	route_generate.parse(resp, res);
}

static const struct route_ops gateway_native = {
	.name = "gateway",
	.build = native_build,
	.parse = native_parse,
};

static const struct route_ops gateway_images = {
	.name = "gateway",
	.build = images_build,
	.parse = images_parse,
};

static const struct route_ops gateway_chat = {
	.name = "gateway",
	.build = chat_build,
	.parse = gateway_parse_chat,
};

const struct route_ops *gateway_ops_for(enum gateway_api a)
{
	switch (a) {
	case GATEWAY_API_NATIVE:
		return &gateway_native;
	case GATEWAY_API_IMAGES:
		return &gateway_images;
	case GATEWAY_API_CHAT:
		return &gateway_chat;
	default:
		return NULL;
	}
}
