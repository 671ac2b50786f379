/*
 * wire.c - shared request building and answer checking for the route files.
 */
#include "api/wire.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "api/image.h"

char *wire_url(const char *base, const char *fmt, ...)
{
	char *rest = NULL, *url = NULL;
	va_list ap;

	if (!base)
		return NULL;
	va_start(ap, fmt);
	int n = vasprintf(&rest, fmt, ap);
	va_end(ap);
	if (n < 0)
		return NULL;
	size_t bl = strlen(base);
	while (bl && base[bl - 1] == '/')
		bl--;
	if (asprintf(&url, "%.*s/%s", (int)bl, base, rest[0] == '/' ? rest + 1 : rest) < 0)
		url = NULL;
	free(rest);
	return url;
}

int wire_header(struct http_req *out, const char *fmt, ...)
{
	int i = 0;
	va_list ap;

	while (i < 7 && out->headers[i])	/* slot 7 stays NULL: the list is NULL-terminated */
		i++;
	if (i >= 7)
		return -1;
	va_start(ap, fmt);
	int n = vasprintf(&out->headers[i], fmt, ap);
	va_end(ap);
	if (n < 0) {
		out->headers[i] = NULL;
		return -1;
	}
	return 0;
}

int wire_auth(struct http_req *out, const struct api_endpoint *ep, bool force_bearer)
{
	const char *key = ep->api_key ? ep->api_key : "";
	/* a key with a line break would smuggle a header */
	if (strpbrk(key, "\r\n"))
		return -1;
	if (ep->bearer || force_bearer)
		return wire_header(out, "Authorization: Bearer %s", key);
	return wire_header(out, "x-goog-api-key: %s", key);
}

int wire_body(struct http_req *out, const cJSON *json)
{
	char *s = cJSON_PrintUnformatted(json);
	if (!s)
		return -1;
	out->body = s;
	out->body_len = strlen(s);
	return 0;
}

cJSON *wire_parse(const struct http_resp *resp, struct gen_result *res)
{
	if (!resp->body || resp->len == 0) {
		gen_result_fail(res, ERR_MALFORMED, "HTTP %ld with an empty body", resp->status);
		return NULL;
	}
	cJSON *j = cJSON_ParseWithLength(resp->body, resp->len);
	if (!j || !(cJSON_IsObject(j) || cJSON_IsArray(j))) {
		cJSON_Delete(j);
		gen_result_fail(res, ERR_MALFORMED, "the answer is not valid JSON (%zu bytes)",
				resp->len);
		return NULL;
	}
	return j;
}

const char *wire_str(const cJSON *obj, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

long wire_long(const cJSON *obj, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
	if (cJSON_IsNumber(v))	/* a number past LONG_MAX would be UB to convert */
		return v->valuedouble >= 0 && v->valuedouble < 9.2e18 ? (long)v->valuedouble : -1;
	if (cJSON_IsString(v)) {
		char *end;
		long n = strtol(v->valuestring, &end, 10);
		return (end != v->valuestring && *end == '\0' && n >= 0) ? n : -1;
	}
	return -1;
}

bool wire_image_tokens(const cJSON *list, const char *count_key, long *image)
{
	const cJSON *e;
	long sum = 0;

	if (!cJSON_IsArray(list))
		return false;
	cJSON_ArrayForEach(e, list) {
		const char *m = wire_str(e, "modality");
		long n = wire_long(e, count_key);
		if (m && strcasecmp(m, "image") == 0 && n > 0)
			sum += n;
	}
	*image = sum;
	return true;
}

void wire_copy(char *dst, size_t n, const char *s)
{
	snprintf(dst, n, "%s", s ? s : "");
}

void wire_model_served(struct gen_result *res, const char *name)
{
	res->model_served[0] = '\0';
	if (!name)
		return;
	if (strncmp(name, "models/", 7) == 0)
		name += 7;
	size_t n = strlen(name);
	if (n == 0 || n >= sizeof(res->model_served) || strspn(name, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") != n)
		return;
	memcpy(res->model_served, name, n + 1);
}

static const char *mime_norm(const char *m)
{
	return strcmp(m, "image/jpg") == 0 ? "image/jpeg" : m;
}

#define LIFT_MIN (64 * 1024)	/* smaller strings are cheap to parse the usual way */

/* The largest string value of a JSON text, [*s, *e) its content; false if none is long enough. */
static bool largest_string(const char *b, size_t n, size_t *s, size_t *e)
{
	size_t best = 0;
	bool in = false;
	size_t start = 0;

	for (size_t i = 0; i < n; i++) {
		if (!in) {
			if (b[i] == '"') {
				in = true;
				start = i + 1;
			}
		} else if (b[i] == '\\') {
			i++;	/* an escape: this string is not plain base64 anyway */
		} else if (b[i] == '"') {
			in = false;
			if (i - start > best) {
				best = i - start;
				*s = start;
				*e = i;
			}
		}
	}
	return best >= LIFT_MIN;
}

void wire_lift_image(struct http_resp *resp, struct gen_result *res)
{
	size_t s, e;

	if (!resp->body || res->lifted || !largest_string(resp->body, resp->len, &s, &e))
		return;
	size_t tail = resp->len - e, mlen = strlen(WIRE_LIFTED);
	char *rest = malloc(s + mlen + tail + 1);	/* the JSON around it: small */
	if (!rest)
		return;
	memcpy(rest, resp->body, s);
	memcpy(rest + s, WIRE_LIFTED, mlen);
	memcpy(rest + s + mlen, resp->body + e, tail);
	rest[s + mlen + tail] = '\0';
	long len = base64_decode_inplace((unsigned char *)resp->body, s, e - s);
	if (len <= 0) {
		free(rest);	/* not base64: the route reports it the usual way */
		return;
	}
	unsigned char *img = realloc(resp->body, (size_t)len);	/* shrinks in place */
	res->lifted = img ? img : (unsigned char *)resp->body;
	res->lifted_len = (size_t)len;
	res->mem_held = resp->mem_held;		/* the reservation goes with the bytes */
	resp->mem_held = 0;
	resp->body = rest;
	resp->len = s + mlen + tail;
}

int wire_take_image(struct gen_result *res, const char *b64, size_t b64len, const char *mime)
{
	char why[128];
	size_t len = 0;
	int w, h;
	unsigned char *bytes;

	if (res->lifted && b64len == strlen(WIRE_LIFTED) && memcmp(b64, WIRE_LIFTED, b64len) == 0) {
		bytes = res->lifted;	/* decoded already, in the answer's own buffer */
		len = res->lifted_len;
		res->lifted = NULL;
		res->lifted_len = 0;
	} else {
		bytes = base64_decode(b64, b64len, &len);
	}
	if (!bytes) {
		gen_result_fail(res, ERR_MALFORMED, "image data is not valid base64 (%zu characters)",
				b64len);
		return -1;
	}
	const char *sniffed = image_sniff(bytes, len);
	if (!sniffed) {
		free(bytes);
		gen_result_fail(res, ERR_MALFORMED, "image bytes are not PNG, JPEG or WebP%s%s",
				mime ? " although the answer says " : "", mime ? mime : "");
		return -1;
	}
	if (mime && *mime && strcmp(mime_norm(mime), sniffed) != 0) {
		free(bytes);
		gen_result_fail(res, ERR_MALFORMED, "the answer says %.40s but the bytes are %s",
				mime, sniffed);
		return -1;
	}
	if (image_check(bytes, len, &w, &h, why, sizeof(why)) != 0) {
		free(bytes);
		gen_result_fail(res, ERR_MALFORMED, "bad image: %s", why);
		return -1;
	}
	free(res->image);
	res->image = bytes;
	res->image_len = len;
	wire_copy(res->mime, sizeof(res->mime), sniffed);
	res->width = w;
	res->height = h;
	return 0;
}

void wire_add_text(struct gen_result *res, const char *text)
{
	if (!text || !*text)
		return;
	if (!res->text) {
		res->text = strdup(text);
		return;
	}
	char *joined = NULL;
	if (asprintf(&joined, "%s\n%s", res->text, text) < 0)
		return;	/* keep what we had */
	free(res->text);
	res->text = joined;
}

bool wire_reason_is_safety(const char *r)
{
	static const char *const words[] = {
		"SAFETY", "PROHIBITED", "BLOCKLIST", "SPII", "RECITATION", "MODEL_ARMOR",
		"JAILBREAK", "BLOCKED",
	};
	if (!r)
		return false;
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (strcasestr(r, words[i]))
			return true;
	return false;
}
