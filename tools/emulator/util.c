/* Small helpers: growable buffer, base64, SHA-256, clocks, ids, cJSON. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "emu.h"

/* ---- buffer ------------------------------------------------------------ */

static bool buf_reserve(struct buf *b, size_t extra)
{
	if (b->oom)
		return false;
	if (b->len + extra + 1 <= b->cap)
		return true;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < b->len + extra + 1)
		cap *= 2;
	char *d = realloc(b->data, cap);
	if (!d) {
		b->oom = true;
		return false;
	}
	b->data = d;
	b->cap = cap;
	return true;
}

void buf_add(struct buf *b, const void *p, size_t n)
{
	if (!buf_reserve(b, n))
		return;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void buf_adds(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

void buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !buf_reserve(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

void buf_free(struct buf *b)
{
	free(b->data);
	memset(b, 0, sizeof *b);
}

char *buf_steal(struct buf *b, size_t *len)
{
	char *d = b->data;
	if (len)
		*len = b->len;
	if (!d)
		d = calloc(1, 1);
	memset(b, 0, sizeof *b);
	return d;
}

/* ---- base64 ------------------------------------------------------------ */

static const char b64_alpha[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *b64_encode(const unsigned char *p, size_t n, size_t *out_len)
{
	size_t olen = 4 * ((n + 2) / 3);
	char *o = malloc(olen + 1);
	if (!o)
		return NULL;
	size_t i = 0, j = 0;
	for (; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		o[j++] = b64_alpha[v >> 18 & 63];
		o[j++] = b64_alpha[v >> 12 & 63];
		o[j++] = b64_alpha[v >> 6 & 63];
		o[j++] = b64_alpha[v & 63];
	}
	if (i < n) {
		uint32_t v = (uint32_t)p[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)p[i + 1] << 8;
		o[j++] = b64_alpha[v >> 18 & 63];
		o[j++] = b64_alpha[v >> 12 & 63];
		o[j++] = i + 1 < n ? b64_alpha[v >> 6 & 63] : '=';
		o[j++] = '=';
	}
	o[j] = '\0';
	if (out_len)
		*out_len = j;
	return o;
}

static int b64_val(int c)
{
	if (c >= 'A' && c <= 'Z') return c - 'A';
	if (c >= 'a' && c <= 'z') return c - 'a' + 26;
	if (c >= '0' && c <= '9') return c - '0' + 52;
	if (c == '+' || c == '-') return 62;
	if (c == '/' || c == '_') return 63;
	return -1;
}

unsigned char *b64_decode(const char *s, size_t n, size_t *out_len)
{
	unsigned char *o = malloc(n / 4 * 3 + 4);
	if (!o)
		return NULL;
	uint32_t acc = 0;
	int bits = 0;
	size_t j = 0;
	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)s[i];
		if (c == '=')
			break;
		if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
			continue;
		int v = b64_val(c);
		if (v < 0) {
			free(o);
			return NULL;
		}
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			o[j++] = (unsigned char)(acc >> bits);
		}
	}
	*out_len = j;
	return o;
}

/* ---- SHA-256 (FIPS 180-4) ------------------------------------------------- */

static const uint32_t sha_k[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
	0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
	0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
	0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
	0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
	0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
	0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
	0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
	0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

#define ROR(x, n) ((x) >> (n) | (x) << (32 - (n)))

static void sha_block(uint32_t h[8], const unsigned char *p)
{
	uint32_t w[64];
	for (int i = 0; i < 16; i++)
		w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
		       (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
	for (int i = 16; i < 64; i++) {
		uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ w[i - 15] >> 3;
		uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ w[i - 2] >> 10;
		w[i] = w[i - 16] + s0 + w[i - 7] + s1;
	}
	uint32_t a = h[0], b = h[1], c = h[2], d = h[3];
	uint32_t e = h[4], f = h[5], g = h[6], k = h[7];
	for (int i = 0; i < 64; i++) {
		uint32_t t1 = k + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) +
			      ((e & f) ^ (~e & g)) + sha_k[i] + w[i];
		uint32_t t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) +
			      ((a & b) ^ (a & c) ^ (b & c));
		k = g; g = f; f = e; e = d + t1;
		d = c; c = b; b = a; a = t1 + t2;
	}
	h[0] += a; h[1] += b; h[2] += c; h[3] += d;
	h[4] += e; h[5] += f; h[6] += g; h[7] += k;
}

void sha256_hex(const void *data, size_t n, char out[65])
{
	uint32_t h[8] = { 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
			  0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19 };
	const unsigned char *p = data;
	size_t i = 0;
	for (; i + 64 <= n; i += 64)
		sha_block(h, p + i);
	unsigned char tail[128] = { 0 };
	size_t rem = n - i;
	memcpy(tail, p + i, rem);
	tail[rem] = 0x80;
	size_t tl = rem + 9 <= 64 ? 64 : 128;
	uint64_t bits = (uint64_t)n * 8;
	for (int k = 0; k < 8; k++)
		tail[tl - 1 - k] = (unsigned char)(bits >> (8 * k));
	sha_block(h, tail);
	if (tl == 128)
		sha_block(h, tail + 64);
	for (int k = 0; k < 8; k++)
		snprintf(out + 8 * k, 9, "%08x", h[k]);
}

uint64_t fnv1a64(const void *p, size_t n, uint64_t h)
{
	const unsigned char *c = p;
	for (size_t i = 0; i < n; i++) {
		h ^= c[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

/* ---- clocks and ids ------------------------------------------------------ */

double util_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

double util_mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

void util_rfc3339(char *out, size_t n, double t)
{
	if (t <= 0)
		t = util_now();
	time_t s = (time_t)t;
	struct tm tm;
	gmtime_r(&s, &tm);
	char base[32];
	strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, n, "%s.%06dZ", base, (int)((t - (double)s) * 1e6));
}

void util_sleep_ms(int ms)
{
	if (ms <= 0)
		return;
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

static pthread_mutex_t id_mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t id_state;   /* protected by id_mu */

void util_id(char *out, size_t n)
{
	static const char al[] = "abcdefghijklmnopqrstuvwxyz0123456789";
	pthread_mutex_lock(&id_mu);
	if (!id_state)
		id_state = (uint64_t)(util_now() * 1e6) ^ 0x9e3779b97f4a7c15ULL;
	for (size_t i = 0; i + 1 < n; i++) {
		/* xorshift64*: ids only need to be unique, not secret */
		id_state ^= id_state >> 12;
		id_state ^= id_state << 25;
		id_state ^= id_state >> 27;
		out[i] = al[(id_state * 0x2545F4914F6CDD1DULL >> 33) % 36];
	}
	pthread_mutex_unlock(&id_mu);
	if (n)
		out[n - 1] = '\0';
}

/* ---- cJSON ----------------------------------------------------------------- */

cJSON *json_get2(const cJSON *o, const char *a, const char *b)
{
	if (!cJSON_IsObject(o))
		return NULL;
	cJSON *v = cJSON_GetObjectItemCaseSensitive(o, a);
	if (!v && b)
		v = cJSON_GetObjectItemCaseSensitive(o, b);
	return v;
}

const char *json_str2(const cJSON *o, const char *a, const char *b)
{
	cJSON *v = json_get2(o, a, b);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

char *json_print(const cJSON *j, size_t *len)
{
	char *s = cJSON_PrintUnformatted(j);
	if (s && len)
		*len = strlen(s);
	return s;
}

/* ---- errors and answers ------------------------------------------------------ */

void err_set(struct emu_err *e, int http, const char *grpc, const char *ia,
	     const char *fmt, ...)
{
	e->http = http;
	e->grpc = grpc;
	e->ia_code = ia;
	e->oai_type = http >= 500 ? "server_error" : "invalid_request_error";
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof e->msg, fmt, ap);
	va_end(ap);
}

void resp_take(struct emu_resp *r, int status, const char *ctype, char *body,
	       size_t len)
{
	free(r->body);
	r->status = status;
	r->ctype = ctype;
	r->body = body;
	r->len = len;
}

void resp_json(struct emu_resp *r, int status, cJSON *j)
{
	size_t len = 0;
	char *s = j ? json_print(j, &len) : NULL;
	cJSON_Delete(j);
	if (!s) {
		resp_text(r, 500, "text/plain", "emulator out of memory\n");
		return;
	}
	resp_take(r, status, "application/json; charset=UTF-8", s, len);
}

void resp_text(struct emu_resp *r, int status, const char *ctype,
	       const char *text)
{
	char *s = strdup(text);
	resp_take(r, status, ctype, s, s ? strlen(s) : 0);
}

void resp_header(struct emu_resp *r, const char *name, const char *fmt, ...)
{
	if (r->nhdr >= RESP_MAX_HDR)
		return;
	snprintf(r->hname[r->nhdr], sizeof r->hname[0], "%s", name);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->hval[r->nhdr], sizeof r->hval[0], fmt, ap);
	va_end(ap);
	r->nhdr++;
}

void resp_error(struct emu_resp *r, enum flavor fl, const struct emu_err *e)
{
	cJSON *root = cJSON_CreateObject();
	cJSON *err = cJSON_AddObjectToObject(root, "error");
	switch (fl) {
	case FL_GOOGLE:
		cJSON_AddNumberToObject(err, "code", e->http);
		cJSON_AddStringToObject(err, "message", e->msg);
		cJSON_AddStringToObject(err, "status", e->grpc);
		break;
	case FL_IA:
		cJSON_AddStringToObject(err, "code", e->ia_code);
		cJSON_AddStringToObject(err, "message", e->msg);
		break;
	case FL_OPENAI:
		cJSON_AddStringToObject(err, "message", e->msg);
		cJSON_AddStringToObject(err, "type", e->oai_type);
		cJSON_AddNullToObject(err, "param");
		if (e->ia_code)
			cJSON_AddStringToObject(err, "code", e->ia_code);
		else
			cJSON_AddNullToObject(err, "code");
		break;
	}
	resp_json(r, e->http, root);
}
