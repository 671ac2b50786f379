/*
 * generate.c - the generateContent route (gemini-wire.md section 2):
 * POST {base}/{version}/models/{model}:generateContent, camelCase proto-JSON.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "api/image.h"
#include "api/wire.h"

static int generate_build(const struct api_endpoint *ep, const struct gen_request *rq,
			  struct http_req *out, char *err, size_t errlen)
{
	cJSON *root = NULL, *contents, *turn, *parts, *part, *inl, *cfg, *mods, *img;
	char *b64 = NULL;

	memset(out, 0, sizeof(*out));
	if (!rq->model || !rq->prompt || !rq->size || !rq->aspect) {
		snprintf(err, errlen, "request lacks model, prompt, size or aspect");
		return -1;
	}
	if (strpbrk(rq->model, "/?#:% ")) {
		snprintf(err, errlen, "model id \"%.64s\" cannot go into a URL path", rq->model);
		return -1;
	}
	out->method = "POST";
	out->url = wire_url(ep->base_url, "%s/models/%s:generateContent",
			    ep->api_version ? ep->api_version : "v1beta", rq->model);
	if (!out->url || wire_auth(out, ep, false) ||
	    wire_header(out, "Content-Type: application/json"))
		goto out_fail;

	root = cJSON_CreateObject();
	if (!root || !(contents = cJSON_AddArrayToObject(root, "contents")) ||
	    !(turn = cJSON_CreateObject()) || !cJSON_AddItemToArray(contents, turn) ||
	    !cJSON_AddStringToObject(turn, "role", "user") ||
	    !(parts = cJSON_AddArrayToObject(turn, "parts")) ||
	    !(part = cJSON_CreateObject()) || !cJSON_AddItemToArray(parts, part) ||
	    !cJSON_AddStringToObject(part, "text", rq->prompt))
		goto out_fail;
	for (int i = 0; i < rq->nrefs; i++) {
		const struct ref_image *r = &rq->refs[i];
		if (!(b64 = base64_encode(r->data, r->len)))
			goto out_fail;
		if (!(part = cJSON_CreateObject()) || !cJSON_AddItemToArray(parts, part) ||
		    !(inl = cJSON_AddObjectToObject(part, "inlineData")) ||
		    !cJSON_AddStringToObject(inl, "mimeType", r->mime ? r->mime : "image/png") ||
		    !cJSON_AddStringToObject(inl, "data", b64))
			goto out_fail;
		free(b64);
		b64 = NULL;
	}
	if (!(cfg = cJSON_AddObjectToObject(root, "generationConfig")) ||
	    !(mods = cJSON_AddArrayToObject(cfg, "responseModalities")) ||
	    !cJSON_AddItemToArray(mods, cJSON_CreateString("TEXT")) ||
	    !cJSON_AddItemToArray(mods, cJSON_CreateString("IMAGE")) ||
	    !(img = cJSON_AddObjectToObject(cfg, "imageConfig")) ||
	    !cJSON_AddStringToObject(img, "aspectRatio", rq->aspect) ||
	    !cJSON_AddStringToObject(img, "imageSize", rq->size))
		goto out_fail;
	/* systemInstruction is a Content; the tool is {"googleSearch": {}} (batch JSONL: snake_case). */
	if (rq->system) {
		cJSON *si = cJSON_AddObjectToObject(root, "systemInstruction"), *sp, *st;
		if (!si || !(sp = cJSON_AddArrayToObject(si, "parts")) || !(st = cJSON_CreateObject()) ||
		    !cJSON_AddItemToArray(sp, st) || !cJSON_AddStringToObject(st, "text", rq->system))
			goto out_fail;
	}
	if (rq->search) {
		cJSON *tools = cJSON_AddArrayToObject(root, "tools"), *tool = cJSON_CreateObject();
		if (!tools || !tool || !cJSON_AddItemToArray(tools, tool) ||
		    !cJSON_AddObjectToObject(tool, "googleSearch"))
			goto out_fail;
	}
	if (wire_body(out, root))
		goto out_fail;
	cJSON_Delete(root);
	return 0;
out_fail:
	free(b64);
	cJSON_Delete(root);
	http_req_free(out);
	snprintf(err, errlen, "cannot build the generateContent request (out of memory or bad key)");
	return -1;
}

static const cJSON *member2(const cJSON *o, const char *camel, const char *snake)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, camel);
	return v ? v : cJSON_GetObjectItemCaseSensitive(o, snake);
}

static void generate_parse(const struct http_resp *resp, struct gen_result *res)
{
	const cJSON *img = NULL;

	res->http_status = resp->status;
	res->in_tokens = res->out_tokens = res->thought_tokens = -1;
	cJSON *root = wire_parse(resp, res);
	if (!root)
		return;
	if (!cJSON_IsObject(root)) {
		gen_result_fail(res, ERR_MALFORMED, "the generateContent answer is not a JSON object");
		goto out_delete;
	}
	const char *rid = wire_str(root, "responseId");
	if (rid)
		wire_copy(res->request_id, sizeof(res->request_id), rid);
	else if (resp->request_id[0])
		wire_copy(res->request_id, sizeof(res->request_id), resp->request_id);
	wire_model_served(res, wire_str(root, "modelVersion"));
	const cJSON *u = cJSON_GetObjectItemCaseSensitive(root, "usageMetadata");
	res->in_tokens = wire_long(u, "promptTokenCount");
	res->out_tokens = wire_long(u, "candidatesTokenCount");
	res->thought_tokens = wire_long(u, "thoughtsTokenCount");
	res->in_by_modality = wire_image_tokens(member2(u, "promptTokensDetails", "prompt_tokens_details"),
						"tokenCount", &res->in_image_tokens);
	res->out_by_modality = wire_image_tokens(member2(u, "candidatesTokensDetails",
							 "candidates_tokens_details"),
						 "tokenCount", &res->out_image_tokens);

	const cJSON *pf = cJSON_GetObjectItemCaseSensitive(root, "promptFeedback");
	const char *block = wire_str(pf, "blockReason");
	if (block) {
		const char *bm = wire_str(pf, "blockReasonMessage");
		wire_copy(res->finish_reason, sizeof(res->finish_reason), block);
		gen_result_fail(res, ERR_SAFETY, "the prompt was blocked (%s)%s%s", block,
				bm ? ": " : "", bm ? bm : "");
		goto out_delete;
	}

	const cJSON *cand = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "candidates"), 0);
	const cJSON *queries = member2(member2(cand, "groundingMetadata", "grounding_metadata"),
				       "webSearchQueries", "web_search_queries");
	res->search_queries = cJSON_IsArray(queries) ? cJSON_GetArraySize(queries) : 0;
	const char *finish = wire_str(cand, "finishReason");
	const char *fmsg = wire_str(cand, "finishMessage");
	if (finish)
		wire_copy(res->finish_reason, sizeof(res->finish_reason), finish);
	const cJSON *parts = cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(cand, "content"), "parts");
	const cJSON *p;
	cJSON_ArrayForEach(p, parts) {
		if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "thought")))
			continue;	/* interim "thought" images are not the answer */
		const cJSON *inl = member2(p, "inlineData", "inline_data");
		if (cJSON_IsObject(inl))
			img = inl;
		wire_add_text(res, wire_str(p, "text"));
	}
	if (!img) {
		const char *extra = fmsg ? fmsg : res->text;
		if (!cand)
			gen_result_fail(res, ERR_NO_IMAGE, "the answer has no candidates");
		else if (wire_reason_is_safety(finish))
			gen_result_fail(res, ERR_SAFETY, "the image was blocked (%s)%s%s", finish,
					extra ? ": " : "", extra ? extra : "");
		else
			gen_result_fail(res, ERR_NO_IMAGE, "the model returned no image (%s)%s%s",
					finish ? finish : "no finish reason", extra ? ": " : "",
					extra ? extra : "");
		goto out_delete;
	}
	const cJSON *data = cJSON_GetObjectItemCaseSensitive(img, "data");
	const cJSON *mime = member2(img, "mimeType", "mime_type");
	if (!cJSON_IsString(data)) {
		gen_result_fail(res, ERR_MALFORMED, "the image part has no data");
		goto out_delete;
	}
	if (wire_take_image(res, data->valuestring, strlen(data->valuestring),
			    cJSON_IsString(mime) ? mime->valuestring : NULL) == 0)
		res->cls = ERR_NONE;
out_delete:
	cJSON_Delete(root);
}

const struct route_ops route_generate = {
	.name = "generate",
	.build = generate_build,
	.parse = generate_parse,
};
