/*
 * gateway.c - an OpenAI-compatible provider (gemini-wire.md section 6):
 * POST {base}/v1/images/generations with a Bearer key, answer data[0].b64_json.
 * Chat-completions answers (Markdown data URLs, message.images[]) are parsed
 * too, since gateways serve Gemini image models mostly that way.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "api/models.h"
#include "api/wire.h"

static int gateway_build(const struct api_endpoint *ep, const struct gen_request *rq,
			 struct http_req *out, char *err, size_t errlen)
{
	char size[32];
	int w, h;
	cJSON *root = NULL;

	memset(out, 0, sizeof(*out));
	if (!rq->model || !rq->prompt || !rq->size || !rq->aspect) {
		snprintf(err, errlen, "request lacks model, prompt, size or aspect");
		return -1;
	}
	if (rq->nrefs > 0) {
		snprintf(err, errlen, "the gateway images route cannot send reference images; "
			 "use route: generate with a Bearer key");
		return -1;
	}
	if (model_pixels(rq->model, rq->size, rq->aspect, &w, &h) != 0) {
		snprintf(err, errlen, "no pixel size known for %.64s %s %s", rq->model, rq->size,
			 rq->aspect);
		return -1;
	}
	snprintf(size, sizeof(size), "%dx%d", w, h);

	/* a base that already names /v1 must not get a second one */
	size_t bl = ep->base_url ? strlen(ep->base_url) : 0;
	while (bl && ep->base_url[bl - 1] == '/')
		bl--;
	bool has_v1 = bl >= 3 && strncmp(ep->base_url + bl - 3, "/v1", 3) == 0;
	out->method = "POST";
	out->url = wire_url(ep->base_url, "%simages/generations", has_v1 ? "" : "v1/");
	if (!out->url || wire_auth(out, ep, true) ||
	    wire_header(out, "Content-Type: application/json"))
		goto out_fail;
	root = cJSON_CreateObject();
	if (!root || !cJSON_AddStringToObject(root, "model", rq->model) ||
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
	snprintf(err, errlen, "cannot build the gateway request (out of memory or bad key)");
	return -1;
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

static void gateway_parse(const struct http_resp *resp, struct gen_result *res)
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

const struct route_ops route_gateway = {
	.name = "gateway",
	.build = gateway_build,
	.parse = gateway_parse,
};
