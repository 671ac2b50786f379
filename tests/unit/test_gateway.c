/*
 * test_gateway.c - route gateway in its three dialects (gateway_api native,
 * images, chat): request bodies field by field, the multipart body read
 * back, the model map, and a wrong-size image refused end to end through
 * api_attempt against a loopback server.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <cJSON.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api/image.h"
#include "api/multipart.h"
#include "api/route.h"
#include "cache/config.h"
#include "tests/unit/imgmake.h"

/* two references with bytes that would break a careless body: NUL, CRLF, "--" */
static const unsigned char ref1[] = { 0x89, 'P', 'N', 'G', 0, '\r', '\n', '-', '-', 0xff };
static const unsigned char ref2[] = { 0xff, 0xd8, 0xff, 0, 1, 2, 3 };
static struct ref_image refs[2];

static struct gen_request request(int nrefs)
{
	refs[0] = (struct ref_image){ .mime = "image/png", .data = ref1, .len = sizeof(ref1) };
	refs[1] = (struct ref_image){ .mime = "image/jpeg", .data = ref2, .len = sizeof(ref2) };
	struct gen_request rq = {
		.model = "gemini-3-pro-image", .size = "2K", .aspect = "16:9",
		.prompt = "A red bicycle \"quoted\"\r\n\xc3\xa9", .n = 1, .index = 1,
		.refs = refs, .nrefs = nrefs, .route = ROUTE_GATEWAY,
	};
	rq.prompt_len = strlen(rq.prompt);
	return rq;
}

static struct gateway_model_map *map_of(const char *spec)
{
	struct gateway_model_map *m = NULL;
	char err[128];
	assert_int_equal(gateway_map_parse(spec, &m, err, sizeof(err)), 0);
	return m;
}

static struct api_endpoint endpoint(const char *base, enum gateway_api a,
				    const struct gateway_model_map *m)
{
	struct api_endpoint ep = {
		.base_url = base, .api_version = "v1", .api_key = "sk-gw-123", .bearer = 1,
		.gateway_api = a, .models = m,
	};
	return ep;
}

static const char *header(const struct http_req *q, const char *prefix)
{
	for (int i = 0; i < 8 && q->headers[i]; i++)
		if (strncasecmp(q->headers[i], prefix, strlen(prefix)) == 0)
			return q->headers[i];
	return NULL;
}

static const cJSON *get(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	assert_non_null(v);
	return v;
}

static const char *jstr(const cJSON *o, const char *k)
{
	const cJSON *v = get(o, k);
	assert_true(cJSON_IsString(v));
	return v->valuestring;
}

static int nkeys(const cJSON *o)
{
	int n = 0;
	const cJSON *it;
	cJSON_ArrayForEach(it, o)
		n++;
	return n;
}

static char *b64(const unsigned char *d, size_t n)
{
	char *s = base64_encode(d, n);
	assert_non_null(s);
	return s;
}

/* ---- multipart read back ---------------------------------------------- */

struct part {
	char disp[256];		/* the Content-Disposition line */
	char ctype[64];		/* "" when the part has none */
	const char *data;
	size_t len;
};

/* Splits a multipart body by its boundary, strictly: every delimiter, CRLF and header checked. */
static int parse_multipart(const char *body, size_t len, const char *boundary, struct part *out, int max)
{
	char delim[80];
	int n = snprintf(delim, sizeof(delim), "--%s", boundary);
	const char *p = body, *end = body + len;
	int count = 0;

	assert_memory_equal(p, delim, (size_t)n);
	p += n;
	for (;;) {
		if (end - p >= 4 && memcmp(p, "--\r\n", 4) == 0) {
			assert_ptr_equal(p + 4, end);	/* nothing after the close delimiter */
			return count;
		}
		assert_memory_equal(p, "\r\n", 2);
		p += 2;
		assert_true(count < max);
		struct part *pt = &out[count++];
		memset(pt, 0, sizeof(*pt));
		/* headers up to the blank line */
		for (;;) {
			const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
			assert_non_null(eol);
			if (eol == p) {
				p += 2;
				break;
			}
			if (strncmp(p, "Content-Disposition: ", 21) == 0)
				snprintf(pt->disp, sizeof(pt->disp), "%.*s", (int)(eol - p - 21), p + 21);
			else if (strncmp(p, "Content-Type: ", 14) == 0)
				snprintf(pt->ctype, sizeof(pt->ctype), "%.*s", (int)(eol - p - 14), p + 14);
			else
				fail_msg("unexpected part header %.*s", (int)(eol - p), p);
			p = eol + 2;
		}
		char sep[84];
		int sl = snprintf(sep, sizeof(sep), "\r\n%s", delim);
		const char *next = memmem(p, (size_t)(end - p), sep, (size_t)sl);
		assert_non_null(next);
		pt->data = p;
		pt->len = (size_t)(next - p);
		p = next + sl;
	}
}

static const struct part *find_part(const struct part *ps, int n, const char *disp)
{
	for (int i = 0; i < n; i++)
		if (strcmp(ps[i].disp, disp) == 0)
			return &ps[i];
	fail_msg("no part %s", disp);
	return NULL;
}

static void assert_field(const struct part *ps, int n, const char *name, const char *value)
{
	char disp[128];
	snprintf(disp, sizeof(disp), "form-data; name=\"%s\"", name);
	const struct part *p = find_part(ps, n, disp);
	assert_string_equal(p->ctype, "");
	assert_int_equal(p->len, strlen(value));
	assert_memory_equal(p->data, value, p->len);
}

static void test_multipart_build(void **state)
{
	(void)state;
	char boundary[MULTIPART_BOUNDARY_MAX];
	size_t len = 0;
	static const char bin[] = "\0\r\n--bananafs-\r\n\0";
	struct mp_part parts[] = {
		{ "prompt", NULL, NULL, "two\r\nlines", 10 },
		{ "we\"ird\r\nname", NULL, NULL, "", 0 },
		{ "image[]", "a\"b.png", "image/png", bin, sizeof(bin) },
		{ "image[]", "c.bin", NULL, "x", 1 },
	};
	char *body = multipart_build(parts, 4, boundary, &len);
	assert_non_null(body);
	assert_int_equal(strncmp(boundary, "bananafs-", 9), 0);
	assert_true(strlen(boundary) > 20 && strlen(boundary) < 70);	/* RFC 2046: 1..70 */
	assert_null(memmem(bin, sizeof(bin), boundary, strlen(boundary)));

	struct part ps[8];
	int n = parse_multipart(body, len, boundary, ps, 8);
	assert_int_equal(n, 4);
	assert_string_equal(ps[0].disp, "form-data; name=\"prompt\"");
	assert_int_equal(ps[0].len, 10);
	assert_memory_equal(ps[0].data, "two\r\nlines", 10);
	/* quotes, CR and LF escaped so the header cannot be broken out of */
	assert_string_equal(ps[1].disp, "form-data; name=\"we%22ird%0D%0Aname\"");
	assert_int_equal(ps[1].len, 0);
	assert_string_equal(ps[2].disp, "form-data; name=\"image[]\"; filename=\"a%22b.png\"");
	assert_string_equal(ps[2].ctype, "image/png");
	assert_int_equal(ps[2].len, sizeof(bin));
	assert_memory_equal(ps[2].data, bin, sizeof(bin));
	assert_string_equal(ps[3].ctype, "application/octet-stream");
	free(body);

	/* two builds pick different boundaries */
	char b2[MULTIPART_BOUNDARY_MAX];
	body = multipart_build(parts, 1, b2, &len);
	assert_non_null(body);
	assert_string_not_equal(boundary, b2);
	free(body);

	/* a content type that would smuggle a header is refused */
	struct mp_part evil = { "image[]", "x.png", "image/png\r\nX-Evil: 1", "x", 1 };
	assert_null(multipart_build(&evil, 1, b2, &len));
	/* no parts: just the close delimiter */
	body = multipart_build(NULL, 0, b2, &len);
	assert_non_null(body);
	assert_int_equal(parse_multipart(body, len, b2, ps, 8), 0);
	free(body);
}

/* ---- model map --------------------------------------------------------- */

static void test_model_map(void **state)
{
	(void)state;
	struct gateway_model_map *m = map_of(
		"gemini-3-pro-image=google/gemini-3-pro-image-preview, gemini-3.1-flash-image = nb2 ,");
	assert_string_equal(gateway_map_name(m, "gemini-3-pro-image"), "google/gemini-3-pro-image-preview");
	assert_string_equal(gateway_map_name(m, "gemini-3.1-flash-image"), "nb2");
	const char *own = "gemini-2.5-flash-image";
	assert_ptr_equal(gateway_map_name(m, own), own);	/* unmapped: sent as it is */
	assert_string_equal(gateway_map_name(m, "gemini-3-pro"), "gemini-3-pro");	/* no prefix match */
	gateway_map_free(m);

	assert_ptr_equal(gateway_map_name(NULL, own), own);
	assert_null(map_of(""));
	assert_null(map_of(NULL));

	static const char *const bad[] = { "x", "=y", "a=", "a=b,,c=d", " = b", "a=b,c" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char err[128] = "";
		m = (struct gateway_model_map *)1;
		assert_int_equal(gateway_map_parse(bad[i], &m, err, sizeof(err)), -1);
		assert_null(m);
		assert_non_null(strstr(err, "gateway_models"));
	}

	enum gateway_api a;
	assert_int_equal(gateway_api_parse("native", &a), 0);
	assert_int_equal(a, GATEWAY_API_NATIVE);
	assert_int_equal(gateway_api_parse("images", &a), 0);
	assert_int_equal(a, GATEWAY_API_IMAGES);
	assert_int_equal(gateway_api_parse("chat", &a), 0);
	assert_int_equal(a, GATEWAY_API_CHAT);
	assert_int_equal(gateway_api_parse("Chat", &a), -1);
	assert_int_equal(gateway_api_parse(NULL, &a), -1);
	assert_string_equal(gateway_api_name(GATEWAY_API_IMAGES), "images");
	assert_null(gateway_api_name((enum gateway_api)7));
	assert_null(gateway_ops_for((enum gateway_api)7));
}

static void test_config_key(void **state)
{
	(void)state;
	struct config c;
	char err[256];
	assert_int_equal(config_defaults(&c), 0);
	assert_int_equal(c.gateway_api, GATEWAY_API_NATIVE);
	char *r = config_render(&c);
	assert_non_null(strstr(r, "\ngateway_api = native\n"));
	free(r);
	assert_int_equal(config_set(&c, "gateway_api", "chat", err, sizeof(err)), 0);
	assert_int_equal(c.gateway_api, GATEWAY_API_CHAT);
	assert_int_equal(config_set(&c, "gateway_api", "images", err, sizeof(err)), 0);
	assert_int_equal(c.gateway_api, GATEWAY_API_IMAGES);
	r = config_render(&c);
	assert_non_null(strstr(r, "\ngateway_api = images\n"));
	free(r);
	assert_int_equal(config_set(&c, "gateway_api", "openai", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "native, images or chat"));
	assert_int_equal(c.gateway_api, GATEWAY_API_IMAGES);	/* unchanged */
	/* gateway_models is checked by the parser the route uses */
	assert_int_equal(config_set(&c, "gateway_models", "a=b, c = d", err, sizeof(err)), 0);
	assert_int_equal(config_set(&c, "gateway_models", " =b", err, sizeof(err)), -1);
	config_free(&c);
}

/* ---- requests ---------------------------------------------------------- */

static void test_build_native(void **state)
{
	(void)state;
	struct gateway_model_map *m = map_of("gemini-3-pro-image=nb-pro");
	struct gen_request rq = request(2);
	struct http_req q;
	char err[256];

	/* a gateway_url written for the OpenAI paths loses its /v1 here */
	struct api_endpoint ep = endpoint("https://gw.example/v1/", GATEWAY_API_NATIVE, m);
	assert_int_equal(route_gateway.build(&ep, &rq, &q, err, sizeof(err)), 0);
	assert_string_equal(q.method, "POST");
	assert_string_equal(q.url, "https://gw.example/v1beta/models/nb-pro:generateContent");
	assert_string_equal(header(&q, "Authorization:"), "Authorization: Bearer sk-gw-123");
	assert_null(header(&q, "x-goog-api-key:"));
	assert_string_equal(header(&q, "Content-Type:"), "Content-Type: application/json");

	cJSON *j = cJSON_ParseWithLength(q.body, q.body_len);
	assert_non_null(j);
	assert_int_equal(nkeys(j), 2);	/* contents, generationConfig */
	const cJSON *turn = cJSON_GetArrayItem(get(j, "contents"), 0);
	assert_string_equal(jstr(turn, "role"), "user");
	const cJSON *parts = get(turn, "parts");
	assert_int_equal(cJSON_GetArraySize(parts), 3);
	assert_string_equal(jstr(cJSON_GetArrayItem(parts, 0), "text"), rq.prompt);
	for (int i = 0; i < 2; i++) {
		const cJSON *inl = get(cJSON_GetArrayItem(parts, i + 1), "inlineData");
		char *want = b64(refs[i].data, refs[i].len);
		assert_string_equal(jstr(inl, "mimeType"), refs[i].mime);
		assert_string_equal(jstr(inl, "data"), want);
		free(want);
	}
	const cJSON *gc = get(j, "generationConfig");
	const cJSON *mods = get(gc, "responseModalities");
	assert_int_equal(cJSON_GetArraySize(mods), 2);
	const cJSON *ic = get(gc, "imageConfig");
	assert_string_equal(jstr(ic, "aspectRatio"), "16:9");
	assert_string_equal(jstr(ic, "imageSize"), "2K");
	cJSON_Delete(j);
	http_req_free(&q);

	/* a bare base; the same build through the native ops */
	ep = endpoint("http://127.0.0.1:8080", GATEWAY_API_NATIVE, NULL);
	assert_int_equal(gateway_ops_for(GATEWAY_API_NATIVE)->build(&ep, &rq, &q, err, sizeof(err)), 0);
	assert_string_equal(q.url, "http://127.0.0.1:8080/v1beta/models/gemini-3-pro-image:generateContent");
	http_req_free(&q);

	/* a provider name that cannot be one path segment is refused, with the way out */
	gateway_map_free(m);
	m = map_of("gemini-3-pro-image=google/gemini-3-pro-image-preview");
	ep = endpoint("https://gw.example", GATEWAY_API_NATIVE, m);
	assert_int_equal(route_gateway.build(&ep, &rq, &q, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "google/gemini-3-pro-image-preview"));
	assert_non_null(strstr(err, "gateway_api = images or chat"));
	assert_null(q.url);
	gateway_map_free(m);

	/* a key with a line break never becomes a header */
	ep = endpoint("https://gw.example", GATEWAY_API_NATIVE, NULL);
	ep.api_key = "k\r\nX-Evil: 1";
	assert_int_equal(route_gateway.build(&ep, &rq, &q, err, sizeof(err)), -1);
}

static void test_build_images(void **state)
{
	(void)state;
	struct gateway_model_map *m = map_of("gemini-3-pro-image=google/gemini-3-pro-image-preview");
	struct gen_request rq = request(0);
	struct http_req q;
	char err[256];

	struct api_endpoint ep = endpoint("https://gw.example", GATEWAY_API_IMAGES, m);
	assert_int_equal(route_gateway.build(&ep, &rq, &q, err, sizeof(err)), 0);
	assert_string_equal(q.url, "https://gw.example/v1/images/generations");
	assert_string_equal(header(&q, "Authorization:"), "Authorization: Bearer sk-gw-123");
	cJSON *j = cJSON_ParseWithLength(q.body, q.body_len);
	assert_non_null(j);
	assert_int_equal(nkeys(j), 5);
	assert_string_equal(jstr(j, "model"), "google/gemini-3-pro-image-preview");
	assert_string_equal(jstr(j, "prompt"), rq.prompt);
	assert_int_equal(get(j, "n")->valueint, 1);
	assert_string_equal(jstr(j, "size"), "2752x1536");	/* Pro 2K 16:9 */
	assert_string_equal(jstr(j, "response_format"), "b64_json");
	cJSON_Delete(j);
	http_req_free(&q);

	/* with references: multipart edits */
	rq = request(2);
	ep.base_url = "https://gw.example/v1";
	assert_int_equal(route_gateway.build(&ep, &rq, &q, err, sizeof(err)), 0);
	assert_string_equal(q.url, "https://gw.example/v1/images/edits");
	assert_string_equal(header(&q, "Authorization:"), "Authorization: Bearer sk-gw-123");
	const char *ct = header(&q, "Content-Type:");
	assert_non_null(ct);
	const char *pfx = "Content-Type: multipart/form-data; boundary=";
	assert_int_equal(strncmp(ct, pfx, strlen(pfx)), 0);
	const char *boundary = ct + strlen(pfx);

	struct part ps[10];
	int n = parse_multipart(q.body, q.body_len, boundary, ps, 10);
	assert_int_equal(n, 7);
	assert_field(ps, n, "model", "google/gemini-3-pro-image-preview");
	assert_field(ps, n, "prompt", rq.prompt);
	assert_field(ps, n, "n", "1");
	assert_field(ps, n, "size", "2752x1536");
	assert_field(ps, n, "response_format", "b64_json");
	const struct part *p1 = find_part(ps, n, "form-data; name=\"image[]\"; filename=\"image1.png\"");
	assert_string_equal(p1->ctype, "image/png");
	assert_int_equal(p1->len, sizeof(ref1));
	assert_memory_equal(p1->data, ref1, sizeof(ref1));
	const struct part *p2 = find_part(ps, n, "form-data; name=\"image[]\"; filename=\"image2.jpg\"");
	assert_string_equal(p2->ctype, "image/jpeg");
	assert_int_equal(p2->len, sizeof(ref2));
	assert_memory_equal(p2->data, ref2, sizeof(ref2));
	http_req_free(&q);
	gateway_map_free(m);

	/* a size the table does not know cannot be asked for */
	rq = request(0);
	rq.aspect = "5:7";
	assert_int_equal(route_gateway.build(&ep, &rq, &q, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "no pixel size"));
}

static void test_build_chat(void **state)
{
	(void)state;
	struct gateway_model_map *m = map_of("gemini-3-pro-image=google/gemini-3-pro-image-preview");
	struct gen_request rq = request(2);
	struct http_req q;
	char err[256];

	struct api_endpoint ep = endpoint("https://openrouter.example/api/v1", GATEWAY_API_CHAT, m);
	assert_int_equal(route_gateway.build(&ep, &rq, &q, err, sizeof(err)), 0);
	assert_string_equal(q.url, "https://openrouter.example/api/v1/chat/completions");
	assert_string_equal(header(&q, "Authorization:"), "Authorization: Bearer sk-gw-123");
	assert_string_equal(header(&q, "Content-Type:"), "Content-Type: application/json");
	cJSON *j = cJSON_ParseWithLength(q.body, q.body_len);
	assert_non_null(j);
	assert_int_equal(nkeys(j), 4);	/* model, messages, modalities, image_config */
	assert_string_equal(jstr(j, "model"), "google/gemini-3-pro-image-preview");
	const cJSON *msgs = get(j, "messages");
	assert_int_equal(cJSON_GetArraySize(msgs), 1);
	const cJSON *msg = cJSON_GetArrayItem(msgs, 0);
	assert_string_equal(jstr(msg, "role"), "user");
	const cJSON *content = get(msg, "content");
	assert_int_equal(cJSON_GetArraySize(content), 3);
	const cJSON *c0 = cJSON_GetArrayItem(content, 0);
	assert_string_equal(jstr(c0, "type"), "text");
	assert_string_equal(jstr(c0, "text"), rq.prompt);
	for (int i = 0; i < 2; i++) {
		const cJSON *c = cJSON_GetArrayItem(content, i + 1);
		assert_string_equal(jstr(c, "type"), "image_url");
		char *data = b64(refs[i].data, refs[i].len), *want;
		assert_true(asprintf(&want, "data:%s;base64,%s", refs[i].mime, data) > 0);
		assert_string_equal(jstr(get(c, "image_url"), "url"), want);
		free(want);
		free(data);
	}
	const cJSON *mods = get(j, "modalities");
	assert_int_equal(cJSON_GetArraySize(mods), 2);
	assert_string_equal(cJSON_GetArrayItem(mods, 0)->valuestring, "image");
	assert_string_equal(cJSON_GetArrayItem(mods, 1)->valuestring, "text");
	const cJSON *ic = get(j, "image_config");
	assert_string_equal(jstr(ic, "aspect_ratio"), "16:9");
	assert_string_equal(jstr(ic, "image_size"), "2K");
	cJSON_Delete(j);
	http_req_free(&q);
	gateway_map_free(m);

	/* no references: the text part only */
	rq = request(0);
	ep = endpoint("https://gw.example", GATEWAY_API_CHAT, NULL);
	assert_int_equal(route_gateway.build(&ep, &rq, &q, err, sizeof(err)), 0);
	assert_string_equal(q.url, "https://gw.example/v1/chat/completions");
	j = cJSON_ParseWithLength(q.body, q.body_len);
	assert_string_equal(jstr(j, "model"), "gemini-3-pro-image");
	assert_int_equal(cJSON_GetArraySize(get(cJSON_GetArrayItem(get(j, "messages"), 0), "content")), 1);
	cJSON_Delete(j);
	http_req_free(&q);
}

/* ---- answers ----------------------------------------------------------- */

static char *png_b64(int w, int h)
{
	size_t len;
	unsigned char *p = make_png(w, h, &len);
	char *e = b64(p, len);
	free(p);
	return e;
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

static void parse_with(const struct route_ops *ops, const char *body, struct gen_result *res)
{
	struct http_resp r = { .status = 200, .body = (char *)body, .len = strlen(body), .retry_after_s = -1 };
	memset(res, 0, sizeof(*res));
	ops->parse(&r, res);
}

static void test_parse_each_dialect(void **state)
{
	(void)state;
	struct gen_result res;
	char *img = png_b64(16, 9);
	char *native = fmt("{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"hi\"},{\"inlineData\":"
			   "{\"mimeType\":\"image/png\",\"data\":\"%s\"}}]},\"finishReason\":\"STOP\"}],"
			   "\"usageMetadata\":{\"candidatesTokenCount\":1120},\"responseId\":\"r-1\"}", img);
	char *images = fmt("{\"created\":1,\"data\":[{\"b64_json\":\"%s\"}]}", img);
	char *chat = fmt("{\"id\":\"c-1\",\"choices\":[{\"message\":{\"content\":\"ok\",\"images\":"
			 "[{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,%s\"}}]}}]}", img);
	const char *bodies[] = { native, images, chat };
	const enum gateway_api apis[] = { GATEWAY_API_NATIVE, GATEWAY_API_IMAGES, GATEWAY_API_CHAT };

	for (int i = 0; i < 3; i++) {
		/* the dialect's own parser, and route_gateway's that tells them apart */
		parse_with(gateway_ops_for(apis[i]), bodies[i], &res);
		assert_int_equal(res.cls, ERR_NONE);
		assert_int_equal(res.width, 16);
		assert_int_equal(res.height, 9);
		gen_result_free(&res);
		parse_with(&route_gateway, bodies[i], &res);
		assert_int_equal(res.cls, ERR_NONE);
		assert_int_equal(res.width, 16);
		gen_result_free(&res);
	}
	parse_with(gateway_ops_for(GATEWAY_API_NATIVE), native, &res);
	assert_string_equal(res.request_id, "r-1");
	assert_int_equal(res.out_tokens, 1120);
	assert_string_equal(res.text, "hi");
	gen_result_free(&res);

	/* a native refusal keeps its reason */
	const char *blocked = "{\"promptFeedback\":{\"blockReason\":\"SAFETY\"}}";
	parse_with(gateway_ops_for(GATEWAY_API_NATIVE), blocked, &res);
	assert_int_equal(res.cls, ERR_SAFETY);
	gen_result_free(&res);
	parse_with(&route_gateway, blocked, &res);
	assert_int_equal(res.cls, ERR_SAFETY);
	gen_result_free(&res);
	free(native);
	free(images);
	free(chat);
	free(img);
}

/* ---- end to end through api_attempt: a one-shot loopback server ----------- */

struct oneshot {
	int fd, port;
	pthread_t th;
	const char *answer;		/* JSON body */
	char request[1024];		/* request line and headers as received */
};

static void *oneshot_main(void *arg)
{
	struct oneshot *s = arg;
	int c = accept(s->fd, NULL, NULL);
	if (c < 0)
		return NULL;
	size_t cap = 1 << 16, len = 0;
	char *buf = malloc(cap + 1);
	for (;;) {
		ssize_t n = recv(c, buf + len, cap - len, 0);
		if (n <= 0)
			break;
		len += (size_t)n;
		buf[len] = '\0';
		char *he = strstr(buf, "\r\n\r\n");
		if (!he)
			continue;
		char *cl = strcasestr(buf, "\r\nContent-Length:");
		size_t want = (size_t)(he + 4 - buf) + (cl && cl < he ? (size_t)strtol(cl + 17, NULL, 10) : 0);
		snprintf(s->request, sizeof(s->request), "%.*s", (int)(he - buf), buf);
		if (len >= want)
			break;
		if (len == cap) {
			cap *= 2;
			buf = realloc(buf, cap + 1);
		}
	}
	char head[256];
	snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
		 "Content-Length: %zu\r\nConnection: close\r\n\r\n", strlen(s->answer));
	ssize_t w = send(c, head, strlen(head), MSG_NOSIGNAL);
	if (w > 0)
		w = send(c, s->answer, strlen(s->answer), MSG_NOSIGNAL);
	(void)w;
	free(buf);
	close(c);
	return NULL;
}

static void oneshot_start(struct oneshot *s, const char *answer)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);
	memset(s, 0, sizeof(*s));
	s->answer = answer;
	s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(s->fd >= 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(s->fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(s->fd, 4), 0);
	assert_int_equal(getsockname(s->fd, (struct sockaddr *)&a, &alen), 0);
	s->port = ntohs(a.sin_port);
	assert_int_equal(pthread_create(&s->th, NULL, oneshot_main, s), 0);
}

static void oneshot_stop(struct oneshot *s)
{
	pthread_join(s->th, NULL);
	close(s->fd);
}

/* One attempt of rq (1K 1:1 asked) answered with a w x h image in the dialect's shape. */
static void attempt_sized(enum gateway_api api, int w, int h, struct gen_result *res, struct oneshot *s)
{
	struct http_opts ho = { .connect_timeout_s = 5, .timeout_s = 10, .max_body = 64 << 20 };
	char *img = png_b64(w, h);
	char *answer = api == GATEWAY_API_NATIVE ?
		fmt("{\"candidates\":[{\"content\":{\"parts\":[{\"inlineData\":{\"mimeType\":\"image/png\","
		    "\"data\":\"%s\"}}]},\"finishReason\":\"STOP\"}]}", img) :
		api == GATEWAY_API_IMAGES ? fmt("{\"created\":1,\"data\":[{\"b64_json\":\"%s\"}]}", img) :
		fmt("{\"choices\":[{\"message\":{\"content\":\"![image](data:image/png;base64,%s)\"}}]}", img);
	char base[64];
	struct gen_request rq = request(0);
	rq.size = "1K";
	rq.aspect = "1:1";
	oneshot_start(s, answer);
	snprintf(base, sizeof(base), "http://127.0.0.1:%d", s->port);
	struct api_endpoint ep = endpoint(base, api, NULL);
	memset(res, 0, sizeof(*res));
	api_attempt(&ho, &ep, &rq, res);
	oneshot_stop(s);
	free(answer);
	free(img);
}

static void test_wrong_size_refused(void **state)
{
	(void)state;
	struct gen_result res;
	struct oneshot s;
	const enum gateway_api apis[] = { GATEWAY_API_NATIVE, GATEWAY_API_IMAGES, GATEWAY_API_CHAT };
	const char *paths[] = { "POST /v1beta/models/gemini-3-pro-image:generateContent HTTP/1.1",
				"POST /v1/images/generations HTTP/1.1",
				"POST /v1/chat/completions HTTP/1.1" };

	for (int i = 0; i < 3; i++) {
		/* the size asked for (1024x1024), and 8% off: accepted */
		attempt_sized(apis[i], 1024, 1024, &res, &s);
		assert_int_equal(strncmp(s.request, paths[i], strlen(paths[i])), 0);
		assert_non_null(strcasestr(s.request, "\r\nAuthorization: Bearer sk-gw-123"));
		assert_null(strcasestr(s.request, "x-goog-api-key"));
		assert_int_equal(res.cls, ERR_NONE);
		assert_int_equal(res.width, 1024);
		gen_result_free(&res);
		attempt_sized(apis[i], 1100, 950, &res, &s);
		assert_int_equal(res.cls, ERR_NONE);
		gen_result_free(&res);

		/* a 512x512 answer to a 1K request: the provider ignored the size */
		attempt_sized(apis[i], 512, 512, &res, &s);
		assert_int_equal(res.cls, ERR_MALFORMED);
		assert_int_equal(res.http_status, 200);
		assert_non_null(res.message);
		assert_non_null(strstr(res.message, "512x512"));
		assert_non_null(strstr(res.message, "1024x1024"));
		assert_non_null(strstr(res.message, "ignored the size setting"));
		gen_result_free(&res);

		/* off by more than 10% on one side only */
		attempt_sized(apis[i], 1024, 1140, &res, &s);
		assert_int_equal(res.cls, ERR_MALFORMED);
		gen_result_free(&res);
	}
}

int main(void)
{
	http_global_init();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_multipart_build),
		cmocka_unit_test(test_model_map),
		cmocka_unit_test(test_config_key),
		cmocka_unit_test(test_build_native),
		cmocka_unit_test(test_build_images),
		cmocka_unit_test(test_build_chat),
		cmocka_unit_test(test_parse_each_dialect),
		cmocka_unit_test(test_wrong_size_refused),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	http_global_cleanup();
	return rc;
}
