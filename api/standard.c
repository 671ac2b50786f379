/*
 * standard.c - the Interactions API route (gemini-wire.md section 1):
 * POST {base}/{version}/interactions, snake_case both ways.  The flex route is
 * the same exchange with "service_tier": "flex".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "api/image.h"
#include "api/wire.h"

int standard_build_req(const struct api_endpoint *ep, const struct gen_request *rq, bool background,
		       struct http_req *out, char *err, size_t errlen)
{
	cJSON *root = NULL, *input, *fmt, *block;
	char *b64 = NULL;

	memset(out, 0, sizeof(*out));
	if (!rq->model || !rq->prompt || !rq->size || !rq->aspect) {
		snprintf(err, errlen, "request lacks model, prompt, size or aspect");
		return -1;
	}
	out->method = "POST";
	out->url = wire_url(ep->base_url, "%s/interactions", ep->api_version ? ep->api_version : "v1beta");
	if (!out->url || wire_auth(out, ep, false) ||
	    wire_header(out, "Content-Type: application/json") ||
	    wire_header(out, "Accept: application/json"))
		goto out_fail;

	root = cJSON_CreateObject();
	if (!root || !cJSON_AddStringToObject(root, "model", rq->model) ||
	    !(input = cJSON_AddArrayToObject(root, "input")))
		goto out_fail;
	block = cJSON_CreateObject();
	if (!block || !cJSON_AddItemToArray(input, block) ||
	    !cJSON_AddStringToObject(block, "type", "text") ||
	    !cJSON_AddStringToObject(block, "text", rq->prompt))
		goto out_fail;
	for (int i = 0; i < rq->nrefs; i++) {
		const struct ref_image *r = &rq->refs[i];
		if (!(b64 = base64_encode(r->data, r->len)))
			goto out_fail;
		block = cJSON_CreateObject();
		if (!block || !cJSON_AddItemToArray(input, block) ||
		    !cJSON_AddStringToObject(block, "type", "image") ||
		    !cJSON_AddStringToObject(block, "mime_type", r->mime ? r->mime : "image/png") ||
		    !cJSON_AddStringToObject(block, "data", b64))
			goto out_fail;
		free(b64);
		b64 = NULL;
	}
	fmt = cJSON_AddObjectToObject(root, "response_format");
	if (!fmt || !cJSON_AddStringToObject(fmt, "type", "image") ||
	    !cJSON_AddStringToObject(fmt, "aspect_ratio", rq->aspect) ||
	    !cJSON_AddStringToObject(fmt, "image_size", rq->size) ||
	    !cJSON_AddBoolToObject(root, "store", background))
		goto out_fail;
	/* Background: the server keeps it (store true) under an id we journal and poll. */
	if (background && !cJSON_AddTrueToObject(root, "background"))
		goto out_fail;
	if (rq->route == ROUTE_FLEX && !cJSON_AddStringToObject(root, "service_tier", "flex"))
		goto out_fail;
	/* "system_instruction" is a plain string here; a tool is {"type": "google_search"}. */
	if (rq->system && !cJSON_AddStringToObject(root, "system_instruction", rq->system))
		goto out_fail;
	if (rq->search) {
		cJSON *tools = cJSON_AddArrayToObject(root, "tools"), *tool = cJSON_CreateObject();
		if (!tools || !tool || !cJSON_AddItemToArray(tools, tool) ||
		    !cJSON_AddStringToObject(tool, "type", "google_search"))
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
	snprintf(err, errlen, "cannot build the Interactions request (out of memory or bad key)");
	return -1;
}

/* Looks for a safety word in the reason-like fields of an object. */
static void note_reason(const cJSON *obj, struct gen_result *res, bool *safety)
{
	static const char *const keys[] = { "finish_reason", "block_reason", "reason" };
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		const char *r = wire_str(obj, keys[i]);
		if (r) {
			wire_copy(res->finish_reason, sizeof(res->finish_reason), r);
			if (wire_reason_is_safety(r))
				*safety = true;
		}
	}
}

/*
 * Scans content blocks: remembers the last image block, and collects text.
 * Returns the last image block seen (or keeps *img when none in this list).
 */
static void scan_blocks(const cJSON *blocks, const cJSON **img, struct gen_result *res, bool *safety)
{
	const cJSON *b;
	cJSON_ArrayForEach(b, blocks) {
		const char *type = wire_str(b, "type");
		if (!type)
			continue;
		if (strcmp(type, "image") == 0)
			*img = b;
		else if (strcmp(type, "text") == 0)
			wire_add_text(res, wire_str(b, "text"));
		note_reason(b, res, safety);
	}
}

/* The first error message of a failed interaction: errors[], else steps[].error. */
static const cJSON *failed_error(const cJSON *root)
{
	const cJSON *errs = cJSON_GetObjectItemCaseSensitive(root, "errors");
	const cJSON *e = cJSON_GetArrayItem(errs, 0);
	if (cJSON_IsObject(e))
		return e;
	const cJSON *s;
	cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(root, "steps")) {
		e = cJSON_GetObjectItemCaseSensitive(s, "error");
		if (cJSON_IsObject(e))
			return e;
	}
	return NULL;
}

static enum err_class failed_class(const cJSON *e)
{
	const cJSON *code = cJSON_GetObjectItemCaseSensitive(e, "code");
	if (cJSON_IsNumber(code))
		return code->valuedouble >= 500 ? ERR_CAPACITY : ERR_REQUEST;
	if (cJSON_IsString(code)) {
		const char *c = code->valuestring;
		if (strcmp(c, "api_error") == 0 || strcmp(c, "service_unavailable") == 0 ||
		    strcmp(c, "deadline_exceeded") == 0 || strcmp(c, "internal") == 0 ||
		    strcmp(c, "unavailable") == 0)
			return ERR_CAPACITY;
		if (strcmp(c, "rate_limit_exceeded") == 0 || strcmp(c, "too_many_requests") == 0)
			return ERR_QUOTA_MINUTE;
		if (strcmp(c, "quota_exceeded") == 0)
			return ERR_QUOTA_DAY;
		if (wire_reason_is_safety(c))
			return ERR_SAFETY;
	}
	return ERR_REQUEST;
}

static void usage_into(const cJSON *root, struct gen_result *res)
{
	const cJSON *u = cJSON_GetObjectItemCaseSensitive(root, "usage");
	res->in_tokens = wire_long(u, "total_input_tokens");
	res->out_tokens = wire_long(u, "total_output_tokens");
	res->thought_tokens = wire_long(u, "total_thought_tokens");
	res->in_by_modality = wire_image_tokens(cJSON_GetObjectItemCaseSensitive(u, "input_tokens_by_modality"),
						"tokens", &res->in_image_tokens);
	res->out_by_modality = wire_image_tokens(cJSON_GetObjectItemCaseSensitive(u, "output_tokens_by_modality"),
						 "tokens", &res->out_image_tokens);
}

/*
 * Google Search queries the interaction ran: each google_search_call step
 * carries its queries in arguments.queries (one query when not listed).
 */
static int search_queries(const cJSON *steps)
{
	const cJSON *s;
	int n = 0;
	cJSON_ArrayForEach(s, steps) {
		const char *t = wire_str(s, "type");
		if (!t || strcmp(t, "google_search_call") != 0)
			continue;
		const cJSON *q = cJSON_GetObjectItemCaseSensitive(
			cJSON_GetObjectItemCaseSensitive(s, "arguments"), "queries");
		n += cJSON_IsArray(q) && cJSON_GetArraySize(q) > 0 ? cJSON_GetArraySize(q) : 1;
	}
	return n;
}

static void standard_parse(const struct http_resp *resp, struct gen_result *res)
{
	const cJSON *img = NULL;
	bool safety = false;

	res->http_status = resp->status;
	res->in_tokens = res->out_tokens = res->thought_tokens = -1;
	cJSON *root = wire_parse(resp, res);
	if (!root)
		return;
	if (!cJSON_IsObject(root)) {
		gen_result_fail(res, ERR_MALFORMED, "the Interactions answer is not a JSON object");
		goto out_delete;
	}
	const char *id = wire_str(root, "id");	/* absent with store:false */
	if (id)
		wire_copy(res->request_id, sizeof(res->request_id), id);
	else if (resp->request_id[0])
		wire_copy(res->request_id, sizeof(res->request_id), resp->request_id);
	usage_into(root, res);
	wire_model_served(res, wire_str(root, "model"));

	const char *status = wire_str(root, "status");
	if (status)
		wire_copy(res->finish_reason, sizeof(res->finish_reason), status);
	if (status && strcmp(status, "completed") != 0) {
		if (strcmp(status, "failed") == 0) {
			const cJSON *e = failed_error(root);
			const char *m = wire_str(e, "message");
			const cJSON *code = cJSON_GetObjectItemCaseSensitive(e, "code");
			if (cJSON_IsString(code))
				wire_copy(res->api_status, sizeof(res->api_status), code->valuestring);
			gen_result_fail(res, e ? failed_class(e) : ERR_CAPACITY,
					"the interaction failed: %s", m ? m : "no reason given");
		} else {
			bool unfinished = strcmp(status, "in_progress") == 0 ||
					  strcmp(status, "queued") == 0 ||
					  strncmp(status, "requires_", 9) == 0;
			gen_result_fail(res, unfinished ? ERR_MALFORMED : ERR_NO_IMAGE,
					"the interaction ended with status \"%s\"", status);
		}
		goto out_delete;
	}

	const cJSON *steps = cJSON_GetObjectItemCaseSensitive(root, "steps");
	res->search_queries = search_queries(steps);
	if (cJSON_IsArray(steps)) {
		/* the SDK's rule: from the end back to the last user_input, model_output only */
		int n = cJSON_GetArraySize(steps), first = 0;
		for (int i = n - 1; i >= 0; i--) {
			const char *t = wire_str(cJSON_GetArrayItem(steps, i), "type");
			if (t && strcmp(t, "user_input") == 0) {
				first = i + 1;
				break;
			}
		}
		for (int i = first; i < n; i++) {
			const cJSON *s = cJSON_GetArrayItem(steps, i);
			const char *t = wire_str(s, "type");
			if (!t || strcmp(t, "model_output") != 0)
				continue;	/* thought steps may hold interim images: never use them */
			scan_blocks(cJSON_GetObjectItemCaseSensitive(s, "content"), &img, res, &safety);
			note_reason(s, res, &safety);
			const cJSON *e = cJSON_GetObjectItemCaseSensitive(s, "error");
			if (cJSON_IsObject(e) && !img) {
				const char *m = wire_str(e, "message");
				gen_result_fail(res, failed_class(e), "a model step failed: %s",
						m ? m : "no reason given");
				goto out_delete;
			}
		}
	} else {
		scan_blocks(cJSON_GetObjectItemCaseSensitive(root, "outputs"), &img, res, &safety);
	}
	note_reason(root, res, &safety);

	if (!img) {
		if (safety)
			gen_result_fail(res, ERR_SAFETY, "the image was blocked (%s)%s%s",
					res->finish_reason, res->text ? ": " : "",
					res->text ? res->text : "");
		else
			gen_result_fail(res, ERR_NO_IMAGE, "the model returned no image%s%s",
					res->text ? ": " : "", res->text ? res->text : "");
		goto out_delete;
	}
	const char *data = wire_str(img, "data");
	if (!data) {
		gen_result_fail(res, ERR_MALFORMED, wire_str(img, "uri") ?
				"the image came as a URI; only inline images are supported" :
				"the image block has no data");
		goto out_delete;
	}
	if (wire_take_image(res, data, strlen(data), wire_str(img, "mime_type")) == 0)
		res->cls = ERR_NONE;
out_delete:
	cJSON_Delete(root);
}

static int standard_build(const struct api_endpoint *ep, const struct gen_request *rq,
			  struct http_req *out, char *err, size_t errlen)
{
	return standard_build_req(ep, rq, false, out, err, errlen);
}

const struct route_ops route_standard = {
	.name = "standard",
	.build = standard_build,
	.parse = standard_parse,
};
