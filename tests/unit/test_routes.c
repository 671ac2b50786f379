/* test_routes.c - request JSON and answer parsing of every synchronous route. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <cJSON.h>

#include "api/image.h"
#include "api/route.h"
#include "tests/unit/imgmake.h"

static const struct api_endpoint google = {
	"https://generativelanguage.googleapis.com/", "v1beta", "KEY-abc123", 0, 0, NULL,
};

static unsigned char ref_bytes[] = { 0x89, 'P', 'N', 'G', 1, 2, 3, 4, 5 };
static struct ref_image refs[1];

static struct gen_request request(enum route r, int nrefs)
{
	refs[0].mime = "image/png";
	refs[0].data = ref_bytes;
	refs[0].len = sizeof(ref_bytes);
	struct gen_request rq = {
		.model = "gemini-3-pro-image", .size = "2K", .aspect = "16:9",
		.prompt = "A red bicycle \"quoted\" \xc3\xa9", .n = 1, .index = 1,
		.refs = refs, .nrefs = nrefs, .route = r,
	};
	rq.prompt_len = strlen(rq.prompt);
	return rq;
}

static const char *header(const struct http_req *q, const char *prefix)
{
	for (int i = 0; i < 8 && q->headers[i]; i++)
		if (strncmp(q->headers[i], prefix, strlen(prefix)) == 0)
			return q->headers[i];
	return NULL;
}

static const char *jstr(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	assert_true(cJSON_IsString(v));
	return v->valuestring;
}

/* ---- requests --------------------------------------------------------- */

static void test_build_standard(void **state)
{
	(void)state;
	struct gen_request rq = request(ROUTE_STANDARD, 1);
	struct http_req q;
	char err[128];
	assert_int_equal(route_standard.build(&google, &rq, &q, err, sizeof(err)), 0);
	assert_string_equal(q.method, "POST");
	assert_string_equal(q.url, "https://generativelanguage.googleapis.com/v1beta/interactions");
	assert_string_equal(header(&q, "x-goog-api-key:"), "x-goog-api-key: KEY-abc123");
	assert_non_null(header(&q, "Content-Type: application/json"));
	assert_null(header(&q, "Authorization"));
	assert_int_equal(q.body_len, strlen(q.body));

	cJSON *j = cJSON_Parse(q.body);
	assert_non_null(j);
	assert_string_equal(jstr(j, "model"), "gemini-3-pro-image");
	const cJSON *in = cJSON_GetObjectItemCaseSensitive(j, "input");
	assert_int_equal(cJSON_GetArraySize(in), 2);
	const cJSON *t = cJSON_GetArrayItem(in, 0);
	assert_string_equal(jstr(t, "type"), "text");
	assert_string_equal(jstr(t, "text"), rq.prompt);
	const cJSON *im = cJSON_GetArrayItem(in, 1);
	assert_string_equal(jstr(im, "type"), "image");
	assert_string_equal(jstr(im, "mime_type"), "image/png");
	size_t n;
	const char *d = jstr(im, "data");
	unsigned char *dec = base64_decode(d, strlen(d), &n);
	assert_non_null(dec);
	assert_int_equal(n, sizeof(ref_bytes));
	assert_memory_equal(dec, ref_bytes, n);
	free(dec);
	const cJSON *rf = cJSON_GetObjectItemCaseSensitive(j, "response_format");
	assert_string_equal(jstr(rf, "type"), "image");
	assert_string_equal(jstr(rf, "aspect_ratio"), "16:9");
	assert_string_equal(jstr(rf, "image_size"), "2K");
	assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(j, "store")));
	assert_null(cJSON_GetObjectItemCaseSensitive(j, "service_tier"));
	assert_null(cJSON_GetObjectItemCaseSensitive(j, "generationConfig"));
	cJSON_Delete(j);
	http_req_free(&q);
	assert_null(q.url);
	assert_null(q.headers[0]);
}

static void test_build_flex_bearer(void **state)
{
	(void)state;
	struct gen_request rq = request(ROUTE_FLEX, 0);
	struct api_endpoint ep = { "http://127.0.0.1:8080", "v1", "tok", 1, 0, NULL };
	struct http_req q;
	char err[128];
	assert_ptr_equal(route_ops_for(ROUTE_FLEX), &route_standard);
	assert_int_equal(route_standard.build(&ep, &rq, &q, err, sizeof(err)), 0);
	assert_string_equal(q.url, "http://127.0.0.1:8080/v1/interactions");
	assert_string_equal(header(&q, "Authorization:"), "Authorization: Bearer tok");
	assert_null(header(&q, "x-goog-api-key"));
	cJSON *j = cJSON_Parse(q.body);
	assert_string_equal(jstr(j, "service_tier"), "flex");
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "input")), 1);
	cJSON_Delete(j);
	http_req_free(&q);

	/* a key with a line break never becomes a header */
	struct api_endpoint evil = { "https://x.example", "v1beta", "k\r\nX-Evil: 1", 0, 0, NULL };
	assert_int_equal(route_standard.build(&evil, &rq, &q, err, sizeof(err)), -1);
	assert_null(q.url);
}

static void test_build_generate(void **state)
{
	(void)state;
	struct gen_request rq = request(ROUTE_GENERATE, 1);
	struct http_req q;
	char err[128];
	assert_ptr_equal(route_ops_for(ROUTE_GENERATE), &route_generate);
	assert_int_equal(route_generate.build(&google, &rq, &q, err, sizeof(err)), 0);
	assert_string_equal(q.url, "https://generativelanguage.googleapis.com/v1beta/models/"
				   "gemini-3-pro-image:generateContent");
	assert_non_null(header(&q, "x-goog-api-key: KEY-abc123"));
	cJSON *j = cJSON_Parse(q.body);
	const cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "contents"), 0);
	assert_string_equal(jstr(c0, "role"), "user");
	const cJSON *parts = cJSON_GetObjectItemCaseSensitive(c0, "parts");
	assert_int_equal(cJSON_GetArraySize(parts), 2);
	assert_string_equal(jstr(cJSON_GetArrayItem(parts, 0), "text"), rq.prompt);
	const cJSON *inl = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(parts, 1), "inlineData");
	assert_string_equal(jstr(inl, "mimeType"), "image/png");
	assert_non_null(jstr(inl, "data"));
	const cJSON *gc = cJSON_GetObjectItemCaseSensitive(j, "generationConfig");
	const cJSON *mods = cJSON_GetObjectItemCaseSensitive(gc, "responseModalities");
	assert_int_equal(cJSON_GetArraySize(mods), 2);
	assert_string_equal(cJSON_GetArrayItem(mods, 0)->valuestring, "TEXT");
	assert_string_equal(cJSON_GetArrayItem(mods, 1)->valuestring, "IMAGE");
	const cJSON *ic = cJSON_GetObjectItemCaseSensitive(gc, "imageConfig");
	assert_string_equal(jstr(ic, "aspectRatio"), "16:9");
	assert_string_equal(jstr(ic, "imageSize"), "2K");
	cJSON_Delete(j);
	http_req_free(&q);

	rq.model = "../x";
	assert_int_equal(route_generate.build(&google, &rq, &q, err, sizeof(err)), -1);
}

static void test_build_gateway(void **state)
{
	(void)state;
	struct gen_request rq = request(ROUTE_GATEWAY, 0);
	rq.size = "1K";
	struct api_endpoint gw = { "https://api.gateway.example", "v1beta", "gwkey", 0,
				   GATEWAY_API_IMAGES, NULL };
	struct http_req q;
	char err[128];
	assert_ptr_equal(route_ops_for(ROUTE_GATEWAY), &route_gateway);
	assert_null(route_ops_for(ROUTE_BATCH));
	assert_int_equal(route_gateway.build(&gw, &rq, &q, err, sizeof(err)), 0);
	assert_string_equal(q.url, "https://api.gateway.example/v1/images/generations");
	assert_string_equal(header(&q, "Authorization:"), "Authorization: Bearer gwkey");
	cJSON *j = cJSON_Parse(q.body);
	assert_string_equal(jstr(j, "model"), "gemini-3-pro-image");
	assert_string_equal(jstr(j, "prompt"), rq.prompt);
	assert_int_equal(cJSON_GetObjectItemCaseSensitive(j, "n")->valueint, 1);
	assert_string_equal(jstr(j, "size"), "1376x768");
	assert_string_equal(jstr(j, "response_format"), "b64_json");
	cJSON_Delete(j);
	http_req_free(&q);

	struct api_endpoint gw1 = { "https://gw.example/v1/", "v1beta", "k", 1, GATEWAY_API_IMAGES, NULL };
	assert_int_equal(route_gateway.build(&gw1, &rq, &q, err, sizeof(err)), 0);
	assert_string_equal(q.url, "https://gw.example/v1/images/generations");
	http_req_free(&q);

	rq = request(ROUTE_GATEWAY, 1);	/* references go to the edits endpoint (test_gateway.c) */
	assert_int_equal(route_gateway.build(&gw, &rq, &q, err, sizeof(err)), 0);
	assert_string_equal(q.url, "https://api.gateway.example/v1/images/edits");
	http_req_free(&q);
}

/* ---- answers ---------------------------------------------------------- */

static char *b64_png(int w, int h)
{
	size_t len;
	unsigned char *p = make_png(w, h, &len);
	char *e = base64_encode(p, len);
	free(p);
	return e;
}

static char *b64_jpeg(int w, int h)
{
	size_t len;
	unsigned char *p = make_jpeg(w, h, &len);
	char *e = base64_encode(p, len);
	free(p);
	return e;
}

static void run(const struct route_ops *ops, const char *body, struct gen_result *res)
{
	struct http_resp r;
	memset(&r, 0, sizeof(r));
	memset(res, 0, sizeof(*res));
	res->quota_value = -1;
	res->retry_after_s = -1;
	r.status = 200;
	r.body = (char *)body;
	r.len = body ? strlen(body) : 0;
	r.retry_after_s = -1;
	ops->parse(&r, res);
}

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
	char *s;
	va_list ap;
	va_start(ap, f);
	assert_true(vasprintf(&s, f, ap) > 0);
	va_end(ap);
	return s;
}

static void test_parse_steps_final_image(void **state)
{
	(void)state;
	char *thought = b64_png(3, 3), *early = b64_png(5, 5), *final = b64_png(7, 4),
	     *before_user = b64_png(9, 9);
	char *body = fmt(
		"{\"id\":\"int-42\",\"status\":\"completed\",\"model\":\"gemini-3.1-flash-image\","
		"\"steps\":["
		"{\"type\":\"model_output\",\"content\":[{\"type\":\"image\",\"mime_type\":\"image/png\",\"data\":\"%s\"}]},"
		"{\"type\":\"user_input\",\"content\":[{\"type\":\"text\",\"text\":\"again\"}]},"
		"{\"type\":\"thought\",\"signature\":\"x\",\"summary\":[{\"type\":\"image\",\"mime_type\":\"image/png\",\"data\":\"%s\"}],"
		" \"content\":[{\"type\":\"image\",\"mime_type\":\"image/png\",\"data\":\"%s\"}]},"
		"{\"type\":\"model_output\",\"content\":[{\"type\":\"text\",\"text\":\"Here is your image.\"},"
		"  {\"type\":\"image\",\"mime_type\":\"image/png\",\"data\":\"%s\"}]},"
		"{\"type\":\"model_output\",\"content\":[{\"type\":\"image\",\"mime_type\":\"image/png\",\"data\":\"%s\"}]}],"
		"\"usage\":{\"total_input_tokens\":10,\"total_output_tokens\":1120,\"total_thought_tokens\":3,\"total_tokens\":1133}}",
		before_user, thought, thought, early, final);
	struct gen_result res;
	run(&route_standard, body, &res);
	assert_int_equal(res.cls, ERR_NONE);
	assert_non_null(res.image);
	assert_int_equal(res.width, 7);	/* the final image, not the thought or earlier ones */
	assert_int_equal(res.height, 4);
	assert_string_equal(res.mime, "image/png");
	assert_string_equal(res.request_id, "int-42");
	assert_int_equal(res.in_tokens, 10);
	assert_int_equal(res.out_tokens, 1120);
	assert_int_equal(res.thought_tokens, 3);
	assert_string_equal(res.text, "Here is your image.");
	gen_result_free(&res);
	free(body);
	free(thought);
	free(early);
	free(final);
	free(before_user);
}

static void test_parse_legacy_outputs(void **state)
{
	(void)state;
	char *img = b64_jpeg(16, 8);
	char *body = fmt("{\"status\":\"completed\",\"outputs\":[{\"type\":\"text\",\"text\":\"ok\"},"
			 "{\"type\":\"image\",\"mime_type\":\"image/jpeg\",\"data\":\"%s\"}]}", img);
	struct gen_result res;
	run(&route_standard, body, &res);
	assert_int_equal(res.cls, ERR_NONE);
	assert_string_equal(res.mime, "image/jpeg");
	assert_int_equal(res.width, 16);
	assert_int_equal(res.height, 8);
	assert_int_equal(res.in_tokens, -1);	/* no usage: absent, not zero */
	gen_result_free(&res);
	free(body);
	free(img);
}

static void test_parse_refusal_and_failed(void **state)
{
	(void)state;
	struct gen_result res;
	run(&route_standard,
	    "{\"status\":\"completed\",\"steps\":[{\"type\":\"thought\",\"signature\":\"s\"},"
	    "{\"type\":\"model_output\",\"content\":[{\"type\":\"text\",\"text\":\"I can't create that.\"}]}]}",
	    &res);
	assert_int_equal(res.cls, ERR_NO_IMAGE);
	assert_string_equal(res.text, "I can't create that.");
	assert_non_null(strstr(res.message, "I can't create that."));
	assert_null(res.image);
	gen_result_free(&res);

	run(&route_standard,
	    "{\"status\":\"failed\",\"errors\":[{\"code\":\"api_error\",\"message\":\"internal failure\"}]}", &res);
	assert_int_equal(res.cls, ERR_CAPACITY);
	assert_non_null(strstr(res.message, "internal failure"));
	assert_string_equal(res.finish_reason, "failed");
	gen_result_free(&res);

	run(&route_standard,
	    "{\"status\":\"failed\",\"steps\":[{\"type\":\"model_output\",\"error\":{\"code\":400,\"message\":\"step broke\"}}]}",
	    &res);
	assert_int_equal(res.cls, ERR_REQUEST);
	assert_non_null(strstr(res.message, "step broke"));
	gen_result_free(&res);

	run(&route_standard, "{\"status\":\"in_progress\"}", &res);
	assert_int_equal(res.cls, ERR_MALFORMED);
	gen_result_free(&res);
}

static void test_parse_generate(void **state)
{
	(void)state;
	struct gen_result res;
	char *thought = b64_png(2, 2), *img = b64_png(6, 3);

	char *body = fmt("{\"candidates\":[{\"content\":{\"parts\":["
			 "{\"text\":\"thinking\",\"thought\":true},"
			 "{\"inlineData\":{\"mimeType\":\"image/png\",\"data\":\"%s\"},\"thought\":true},"
			 "{\"text\":\"Here you go\"},"
			 "{\"inline_data\":{\"mime_type\":\"image/png\",\"data\":\"%s\"}}],\"role\":\"model\"},"
			 "\"finishReason\":\"STOP\",\"index\":0}],"
			 "\"usageMetadata\":{\"promptTokenCount\":4,\"candidatesTokenCount\":1290,\"totalTokenCount\":1294},"
			 "\"modelVersion\":\"gemini-2.5-flash-image\",\"responseId\":\"IbH2aJ6f\"}", thought, img);
	run(&route_generate, body, &res);
	assert_int_equal(res.cls, ERR_NONE);
	assert_int_equal(res.width, 6);
	assert_int_equal(res.height, 3);
	assert_string_equal(res.request_id, "IbH2aJ6f");
	assert_string_equal(res.model_served, "gemini-2.5-flash-image");
	assert_string_equal(res.finish_reason, "STOP");
	assert_string_equal(res.text, "Here you go");	/* thought text dropped */
	assert_int_equal(res.in_tokens, 4);
	assert_int_equal(res.out_tokens, 1290);
	assert_int_equal(res.thought_tokens, -1);
	gen_result_free(&res);
	free(body);

	run(&route_generate, "{\"promptFeedback\":{\"blockReason\":\"PROHIBITED_CONTENT\"},"
			     "\"usageMetadata\":{\"promptTokenCount\":4}}", &res);
	assert_int_equal(res.cls, ERR_SAFETY);
	assert_string_equal(res.finish_reason, "PROHIBITED_CONTENT");
	gen_result_free(&res);

	run(&route_generate, "{\"candidates\":[{\"finishReason\":\"IMAGE_SAFETY\","
			     "\"finishMessage\":\"Unable to show the generated image.\"}]}", &res);
	assert_int_equal(res.cls, ERR_SAFETY);
	assert_string_equal(res.finish_reason, "IMAGE_SAFETY");
	assert_non_null(strstr(res.message, "Unable to show"));
	gen_result_free(&res);

	run(&route_generate, "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"A poem instead.\"}]},"
			     "\"finishReason\":\"STOP\"}]}", &res);
	assert_int_equal(res.cls, ERR_NO_IMAGE);
	assert_string_equal(res.text, "A poem instead.");
	gen_result_free(&res);
	free(thought);
	free(img);
}

static void test_parse_malformed(void **state)
{
	(void)state;
	struct gen_result res;
	char *img = b64_png(8, 8), *jpg = b64_jpeg(8, 8);

	/* truncated base64 (length mod 4 == 1) */
	char *cut = strdup(img);
	cut[strlen(cut) - 3] = '\0';
	char *body = fmt("{\"status\":\"completed\",\"steps\":[{\"type\":\"model_output\",\"content\":"
			 "[{\"type\":\"image\",\"mime_type\":\"image/png\",\"data\":\"%s\"}]}]}", cut);
	run(&route_standard, body, &res);
	assert_int_equal(res.cls, ERR_MALFORMED);
	assert_null(res.image);
	gen_result_free(&res);
	free(body);

	/* valid base64 of a PNG cut short: header check fails */
	size_t plen;
	unsigned char *p = make_png(8, 8, &plen);
	char *short_png = base64_encode(p, 20);
	body = fmt("{\"candidates\":[{\"content\":{\"parts\":[{\"inlineData\":{\"mimeType\":\"image/png\",\"data\":\"%s\"}}]}}]}",
		   short_png);
	run(&route_generate, body, &res);
	assert_int_equal(res.cls, ERR_MALFORMED);
	gen_result_free(&res);
	free(body);
	free(short_png);
	free(p);

	/* JPEG bytes claiming image/png */
	body = fmt("{\"candidates\":[{\"content\":{\"parts\":[{\"inlineData\":{\"mimeType\":\"image/png\",\"data\":\"%s\"}}]}}]}", jpg);
	run(&route_generate, body, &res);
	assert_int_equal(res.cls, ERR_MALFORMED);
	assert_non_null(strstr(res.message, "image/jpeg"));
	gen_result_free(&res);
	free(body);

	/* not an image at all */
	run(&route_generate, "{\"candidates\":[{\"content\":{\"parts\":[{\"inlineData\":{\"mimeType\":\"image/png\","
			     "\"data\":\"PGh0bWw+PC9odG1sPg==\"}}]}}]}", &res);
	assert_int_equal(res.cls, ERR_MALFORMED);
	gen_result_free(&res);

	/* empty body, not JSON, a JSON string */
	run(&route_standard, "", &res);
	assert_int_equal(res.cls, ERR_MALFORMED);
	gen_result_free(&res);
	run(&route_generate, "<html>oops</html>", &res);
	assert_int_equal(res.cls, ERR_MALFORMED);
	gen_result_free(&res);
	run(&route_gateway, "\"just a string\"", &res);
	assert_int_equal(res.cls, ERR_MALFORMED);
	gen_result_free(&res);

	/* huge nesting: refused by the parser's depth limit, no crash */
	size_t depth = 200000;
	char *deep = malloc(depth * 2 + 1);
	memset(deep, '[', depth);
	memset(deep + depth, ']', depth);
	deep[depth * 2] = '\0';
	run(&route_standard, deep, &res);
	assert_int_equal(res.cls, ERR_MALFORMED);
	gen_result_free(&res);
	deep[0] = '{';	/* now not even balanced */
	run(&route_generate, deep, &res);
	assert_int_equal(res.cls, ERR_MALFORMED);
	gen_result_free(&res);
	free(deep);

	/* an image delivered by URI only */
	run(&route_standard, "{\"status\":\"completed\",\"steps\":[{\"type\":\"model_output\",\"content\":"
			     "[{\"type\":\"image\",\"mime_type\":\"image/png\",\"uri\":\"https://x/y\"}]}]}", &res);
	assert_int_equal(res.cls, ERR_MALFORMED);
	gen_result_free(&res);

	free(cut);
	free(img);
	free(jpg);
}

/* Tokens by modality, in each route's shape (gemini-wire.md 1.3, 2.2, 6.1): what settles the cost. */
static void test_parse_usage_by_modality(void **state)
{
	(void)state;
	struct gen_result res;
	char *img = b64_png(4, 4);
	char *body = fmt("{\"id\":\"int-1\",\"status\":\"completed\",\"model\":\"gemini-3-pro-image\","
			 "\"steps\":[{\"type\":\"model_output\",\"content\":[{\"type\":\"image\","
			 "\"mime_type\":\"image/png\",\"data\":\"%s\"}]}],"
			 "\"usage\":{\"total_input_tokens\":570,\"input_tokens_by_modality\":["
			 "{\"modality\":\"text\",\"tokens\":10},{\"modality\":\"image\",\"tokens\":560}],"
			 "\"total_output_tokens\":1125,\"output_tokens_by_modality\":[{\"modality\":\"text\",\"tokens\":5},"
			 "{\"modality\":\"image\",\"tokens\":1120}],\"total_thought_tokens\":300}}", img);
	run(&route_standard, body, &res);
	assert_int_equal(res.cls, ERR_NONE);
	assert_true(res.in_by_modality && res.out_by_modality);
	assert_int_equal(res.in_image_tokens, 560);
	assert_int_equal(res.out_image_tokens, 1120);
	assert_int_equal(res.thought_tokens, 300);
	gen_result_free(&res);
	free(body);

	body = fmt("{\"candidates\":[{\"content\":{\"parts\":[{\"inlineData\":{\"mimeType\":\"image/png\","
		   "\"data\":\"%s\"}}]},\"finishReason\":\"STOP\"}],"
		   "\"usageMetadata\":{\"promptTokenCount\":1130,\"candidatesTokenCount\":1125,"
		   "\"thoughtsTokenCount\":250,\"totalTokenCount\":2505,"
		   "\"promptTokensDetails\":[{\"modality\":\"TEXT\",\"tokenCount\":10},"
		   "{\"modality\":\"IMAGE\",\"tokenCount\":1120}],"
		   "\"candidatesTokensDetails\":[{\"modality\":\"TEXT\",\"tokenCount\":5},"
		   "{\"modality\":\"IMAGE\",\"tokenCount\":\"1120\"}]},"
		   "\"modelVersion\":\"gemini-3.1-flash-image\"}", img);
	run(&route_generate, body, &res);
	assert_int_equal(res.cls, ERR_NONE);
	assert_true(res.in_by_modality && res.out_by_modality);
	assert_int_equal(res.in_image_tokens, 1120);
	assert_int_equal(res.out_image_tokens, 1120);	/* int64 as a string, as proto-JSON may send */
	assert_int_equal(res.thought_tokens, 250);
	gen_result_free(&res);
	free(body);

	/* no split: the flags say so (the cost then errs high, see api/cost.h) */
	body = fmt("{\"candidates\":[{\"content\":{\"parts\":[{\"inlineData\":{\"mimeType\":\"image/png\","
		   "\"data\":\"%s\"}}]},\"finishReason\":\"STOP\"}],"
		   "\"usageMetadata\":{\"promptTokenCount\":4,\"candidatesTokenCount\":1290}}", img);
	run(&route_generate, body, &res);
	assert_false(res.in_by_modality || res.out_by_modality);
	gen_result_free(&res);
	free(body);

	body = fmt("{\"created\":1,\"data\":[{\"b64_json\":\"%s\"}],\"usage\":{\"input_tokens\":570,"
		   "\"output_tokens\":1120,\"input_tokens_details\":{\"image_tokens\":560,\"text_tokens\":10},"
		   "\"output_tokens_details\":{\"image_tokens\":1120,\"text_tokens\":0}}}", img);
	run(&route_gateway, body, &res);
	assert_int_equal(res.cls, ERR_NONE);
	assert_true(res.in_by_modality && res.out_by_modality);
	assert_int_equal(res.in_image_tokens, 560);
	assert_int_equal(res.out_image_tokens, 1120);
	gen_result_free(&res);
	free(body);
	free(img);
}

static void test_parse_gateway(void **state)
{
	(void)state;
	struct gen_result res;
	char *img = b64_png(12, 5);

	char *body = fmt("{\"created\":1,\"data\":[{\"b64_json\":\"%s\",\"revised_prompt\":\"rp\"}],"
			 "\"usage\":{\"input_tokens\":9,\"output_tokens\":99}}", img);
	run(&route_gateway, body, &res);
	assert_int_equal(res.cls, ERR_NONE);
	assert_int_equal(res.width, 12);
	assert_string_equal(res.text, "rp");
	assert_int_equal(res.out_tokens, 99);
	gen_result_free(&res);
	free(body);

	run(&route_gateway, "{\"created\":1,\"data\":[{\"url\":\"https://cdn.example/x.png\"}]}", &res);
	assert_int_equal(res.cls, ERR_MALFORMED);
	assert_string_equal(res.message, "gateway returned a URL; only inline images are supported");
	gen_result_free(&res);

	/* chat shape 1: Markdown data URL */
	body = fmt("{\"id\":\"chatcmpl-1\",\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":"
		   "\"Here it is: ![image](data:image/png;base64,%s) enjoy\"},\"finish_reason\":\"stop\"}]}", img);
	struct http_resp r = { .status = 200, .body = body, .len = strlen(body), .retry_after_s = -1 };
	memset(&res, 0, sizeof(res));
	gateway_parse_chat(&r, &res);
	assert_int_equal(res.cls, ERR_NONE);
	assert_int_equal(res.width, 12);
	assert_string_equal(res.request_id, "chatcmpl-1");
	assert_non_null(strstr(res.text, "Here it is:"));
	assert_non_null(strstr(res.text, "enjoy"));
	assert_null(strstr(res.text, "base64"));
	gen_result_free(&res);
	/* the images route parser hands chat answers on as well */
	run(&route_gateway, body, &res);
	assert_int_equal(res.cls, ERR_NONE);
	gen_result_free(&res);
	free(body);

	/* chat shape 2: message.images[] */
	body = fmt("{\"choices\":[{\"message\":{\"content\":\"done\",\"images\":[{\"type\":\"image_url\","
		   "\"image_url\":{\"url\":\"data:image/png;base64,%s\"}}]}}]}", img);
	r.body = body;
	r.len = strlen(body);
	memset(&res, 0, sizeof(res));
	gateway_parse_chat(&r, &res);
	assert_int_equal(res.cls, ERR_NONE);
	assert_int_equal(res.height, 5);
	assert_string_equal(res.text, "done");
	gen_result_free(&res);
	free(body);

	/* chat shape 3: a hosted URL only */
	body = strdup("{\"choices\":[{\"message\":{\"content\":\"![img](https://cdn.example/a.png)\"}}]}");
	r.body = body;
	r.len = strlen(body);
	memset(&res, 0, sizeof(res));
	gateway_parse_chat(&r, &res);
	assert_int_equal(res.cls, ERR_MALFORMED);
	assert_string_equal(res.message, "gateway returned a URL; only inline images are supported");
	gen_result_free(&res);
	free(body);

	/* data URL whose mime disagrees with the bytes */
	char *jpg = b64_jpeg(8, 8);
	body = fmt("{\"choices\":[{\"message\":{\"content\":\"![x](data:image/png;base64,%s)\"}}]}", jpg);
	r.body = body;
	r.len = strlen(body);
	memset(&res, 0, sizeof(res));
	gateway_parse_chat(&r, &res);
	assert_int_equal(res.cls, ERR_MALFORMED);
	gen_result_free(&res);
	free(body);
	free(jpg);

	/* text only */
	body = strdup("{\"choices\":[{\"message\":{\"content\":\"I cannot draw that.\"},\"finish_reason\":\"content_filter\"}]}");
	r.body = body;
	r.len = strlen(body);
	memset(&res, 0, sizeof(res));
	gateway_parse_chat(&r, &res);
	assert_int_equal(res.cls, ERR_SAFETY);
	gen_result_free(&res);
	free(body);
	free(img);
}

static void test_attempt_refusals(void **state)
{
	(void)state;
	struct http_opts ho = { .connect_timeout_s = 1, .timeout_s = 2, .max_body = 1 << 20 };
	struct gen_request rq = request(ROUTE_STANDARD, 0);
	struct gen_result res;
	memset(&res, 0, sizeof(res));

	/* plain http to a non-loopback host is refused before any connection */
	struct api_endpoint ep = { "http://example.com", "v1beta", "k", 0, 0, NULL };
	api_attempt(&ho, &ep, &rq, &res);
	assert_int_equal(res.cls, ERR_REQUEST);
	assert_int_equal(res.http_status, 0);
	assert_non_null(res.message);

	/* batch has no single exchange */
	rq.route = ROUTE_BATCH;
	api_attempt(&ho, &google, &rq, &res);
	assert_int_equal(res.cls, ERR_REQUEST);

	/* nothing listens on loopback port 1: a network error */
	rq.route = ROUTE_GENERATE;
	struct api_endpoint dead = { "http://127.0.0.1:1", "v1beta", "k", 0, 0, NULL };
	api_attempt(&ho, &dead, &rq, &res);
	assert_int_equal(res.cls, ERR_NETWORK);
	assert_int_equal(res.quota_value, -1);
	gen_result_free(&res);

	assert_true(http_url_allowed("https://generativelanguage.googleapis.com/v1beta"));
	assert_true(http_url_allowed("http://127.0.0.1:8080/x"));
	assert_true(http_url_allowed("http://127.9.8.7/"));
	assert_true(http_url_allowed("http://localhost:9/"));
	assert_true(http_url_allowed("http://[::1]:9/"));
	assert_false(http_url_allowed("http://example.com/"));
	assert_false(http_url_allowed("http://127.0.0.1.evil.com/"));
	assert_false(http_url_allowed("http://127.0.0.1@evil.com/"));
	assert_false(http_url_allowed("http://localhost.evil.com/"));
	assert_false(http_url_allowed("http://128.0.0.1/"));
	assert_false(http_url_allowed("ftp://127.0.0.1/"));
	assert_false(http_url_allowed("https://"));
	assert_false(http_url_allowed(NULL));
}

int main(void)
{
	http_global_init();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_build_standard),
		cmocka_unit_test(test_build_flex_bearer),
		cmocka_unit_test(test_build_generate),
		cmocka_unit_test(test_build_gateway),
		cmocka_unit_test(test_parse_steps_final_image),
		cmocka_unit_test(test_parse_legacy_outputs),
		cmocka_unit_test(test_parse_refusal_and_failed),
		cmocka_unit_test(test_parse_generate),
		cmocka_unit_test(test_parse_malformed),
		cmocka_unit_test(test_parse_gateway),
		cmocka_unit_test(test_parse_usage_by_modality),
		cmocka_unit_test(test_attempt_refusals),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	http_global_cleanup();
	return rc;
}
