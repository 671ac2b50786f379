/*
 * redact.c - secrets out of server text (see redact.h).
 *
 * One left-to-right scan: at each position the exact keys are tried first,
 * then the patterns.  The output can be longer than the input ("[key]" is 5
 * bytes, "Bearer x" was 8), so it is built in a new buffer.
 */
#include "api/redact.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/request.h"

#define KEY_MIN_LEN 8		/* shorter "keys" would blank ordinary words */
#define GOOGLE_KEY_MIN 30	/* "AIza" + at least this many more characters */

struct out {
	char *p;
	size_t len, cap;
	bool oom;
};

static void put(struct out *o, const char *s, size_t n)
{
	if (o->oom)
		return;
	if (o->len + n + 1 > o->cap) {
		size_t cap = o->cap ? o->cap : 64;
		while (cap < o->len + n + 1)
			cap *= 2;
		char *g = realloc(o->p, cap);
		if (!g) {
			o->oom = true;
			return;
		}
		o->p = g;
		o->cap = cap;
	}
	memcpy(o->p + o->len, s, n);
	o->len += n;
	o->p[o->len] = '\0';
}

/* Characters of a token: keys, bearer tokens (base64url, JWT dots), URL values. */
static bool tok_char(unsigned char c)
{
	return isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == '+' || c == '/' ||
	       c == '=' || c == '%';
}

static size_t tok_len(const char *s)
{
	size_t n = 0;
	while (s[n] && tok_char((unsigned char)s[n]))
		n++;
	return n;
}

#define MAX_REGISTERED 4
static const char *registered[MAX_REGISTERED + 1];	/* NULL-ended; written before threads start */

void redact_register_key(const char *key)
{
	for (int i = 0; i < MAX_REGISTERED; i++) {
		if (registered[i] == key)
			return;
		if (!registered[i]) {
			registered[i] = key;
			return;
		}
	}
}

void redact_forget_keys(void)
{
	memset(registered, 0, sizeof(registered));
}

static size_t key_in(const char *s, const char *const *keys)
{
	for (size_t i = 0; keys && keys[i]; i++) {
		size_t n = strlen(keys[i]);
		if (n >= KEY_MIN_LEN && strncmp(s, keys[i], n) == 0)
			return n;
	}
	return 0;
}

/* Length of an exact key at s, 0 if none. */
static size_t key_at(const char *s, const char *const *keys)
{
	size_t n = key_in(s, keys);
	return n ? n : key_in(s, registered);
}

/* "AIza" + 30 or more key characters: a Google API key shape. */
static size_t google_key_at(const char *s)
{
	if (strncmp(s, "AIza", 4) != 0)
		return 0;
	size_t n = 4;
	while (isalnum((unsigned char)s[n]) || s[n] == '-' || s[n] == '_')
		n++;
	return n - 4 >= GOOGLE_KEY_MIN ? n : 0;
}

/*
 * A label whose value is a secret: "Bearer ", "x-goog-api-key" (then any of
 * ": =\"'"), "key=" after '?', '&' or a blank.  Returns the label's length
 * including what separates it from the value, 0 if none.
 */
static size_t label_at(const char *text, const char *s)
{
	static const char *const names[] = { "bearer", "x-goog-api-key", "api_key", "api-key" };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		size_t n = strlen(names[i]);
		if (strncasecmp(s, names[i], n) != 0)
			continue;
		if (s > text && (isalnum((unsigned char)s[-1]) || s[-1] == '-' || s[-1] == '_'))
			continue;	/* part of a longer word */
		size_t k = n;
		while (s[k] == ' ' || s[k] == '\t' || s[k] == ':' || s[k] == '=' || s[k] == '"' || s[k] == '\'')
			k++;
		if (k > n && tok_len(s + k) > 0)
			return k;
	}
	if (strncasecmp(s, "key=", 4) == 0 &&
	    (s == text || s[-1] == '?' || s[-1] == '&' || s[-1] == ' ') && tok_len(s + 4) > 0)
		return 4;
	return 0;
}

char *redact(const char *text, const char *const *keys)
{
	struct out o = { 0 };
	const char *s = text ? text : "";

	put(&o, "", 0);
	while (*s) {
		size_t n = key_at(s, keys);
		if (!n)
			n = google_key_at(s);
		if (n) {
			put(&o, REDACT_MARK, strlen(REDACT_MARK));
			s += n;
			continue;
		}
		n = label_at(text, s);
		if (n) {
			put(&o, s, n);
			s += n;
			put(&o, REDACT_MARK, strlen(REDACT_MARK));
			s += tok_len(s);
			continue;
		}
		put(&o, s, 1);
		s++;
	}
	if (o.oom) {
		free(o.p);
		return NULL;
	}
	return o.p;
}

int redact_owned(char **text, const char *const *keys)
{
	if (!*text)
		return 0;
	char *r = redact(*text, keys);
	free(*text);
	*text = r;
	return r ? 0 : -1;
}

void redact_buf(char *buf, size_t size, const char *const *keys)
{
	if (!buf || !size)
		return;
	char *r = redact(buf, keys);
	if (!r) {
		buf[0] = '\0';	/* nothing is safer than a maybe-secret */
		return;
	}
	size_t n = strlen(r);
	if (n >= size)
		n = size - 1;
	memcpy(buf, r, n);
	buf[n] = '\0';
	free(r);
}

void redact_result(struct gen_result *res, const char *const *keys)
{
	redact_owned(&res->message, keys);
	redact_owned(&res->text, keys);
	redact_buf(res->api_status, sizeof(res->api_status), keys);
	redact_buf(res->request_id, sizeof(res->request_id), keys);
	redact_buf(res->finish_reason, sizeof(res->finish_reason), keys);
	redact_buf(res->quota_id, sizeof(res->quota_id), keys);
	redact_buf(res->mime, sizeof(res->mime), keys);
}
