/*
 * multipart.c - multipart/form-data bodies (RFC 7578, WHATWG escaping).
 */
#include "api/multipart.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

struct mbuf {
	char *p;
	size_t len, cap;
	bool oom;
};

static void put(struct mbuf *b, const void *data, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 1024;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *np = realloc(b->p, cap);
		if (!np) {
			b->oom = true;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void puts_(struct mbuf *b, const char *s)
{
	put(b, s, strlen(s));
}

/* A quoted-string value of Content-Disposition: '"', CR, LF percent-escaped. */
static void put_quoted(struct mbuf *b, const char *s)
{
	put(b, "\"", 1);
	for (; *s; s++) {
		if (*s == '"')
			puts_(b, "%22");
		else if (*s == '\r')
			puts_(b, "%0D");
		else if (*s == '\n')
			puts_(b, "%0A");
		else
			put(b, s, 1);
	}
	put(b, "\"", 1);
}

static bool ctype_ok(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

static void new_boundary(char *out, unsigned salt)
{
	unsigned char r[12];
	if (getrandom(r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r)) {
		/* no entropy yet: the collision check below still makes it safe */
		uint64_t x = (uint64_t)time(NULL) * 0x9E3779B97F4A7C15ull ^ (uint64_t)(uintptr_t)out ^ salt;
		for (size_t i = 0; i < sizeof(r); i++, x = x * 6364136223846793005ull + 1442695040888963407ull)
			r[i] = (unsigned char)(x >> 56);
	}
	int n = snprintf(out, MULTIPART_BOUNDARY_MAX, "bananafs-");
	for (size_t i = 0; i < sizeof(r); i++)
		n += snprintf(out + n, (size_t)(MULTIPART_BOUNDARY_MAX - n), "%02x", r[i]);
}

static bool occurs_in_parts(const struct mp_part *parts, int n, const char *boundary)
{
	size_t bl = strlen(boundary);
	for (int i = 0; i < n; i++)
		if (parts[i].data && memmem(parts[i].data, parts[i].len, boundary, bl))
			return true;
	return false;
}

char *multipart_build(const struct mp_part *parts, int n, char boundary[MULTIPART_BOUNDARY_MAX],
		      size_t *len)
{
	struct mbuf b = { 0 };
	int tries = 0;

	for (int i = 0; i < n; i++)
		if (!parts[i].name || (parts[i].ctype && !ctype_ok(parts[i].ctype)) ||
		    (!parts[i].data && parts[i].len))
			return NULL;
	do {
		if (tries++ == 16)
			return NULL;	/* 16 random 96-bit boundaries all inside the data: give up */
		new_boundary(boundary, (unsigned)tries);
	} while (occurs_in_parts(parts, n, boundary));

	for (int i = 0; i < n; i++) {
		const struct mp_part *p = &parts[i];
		puts_(&b, "--");
		puts_(&b, boundary);
		puts_(&b, "\r\nContent-Disposition: form-data; name=");
		put_quoted(&b, p->name);
		if (p->filename) {
			puts_(&b, "; filename=");
			put_quoted(&b, p->filename);
			puts_(&b, "\r\nContent-Type: ");
			puts_(&b, p->ctype ? p->ctype : "application/octet-stream");
		}
		puts_(&b, "\r\n\r\n");
		if (p->len)
			put(&b, p->data, p->len);
		puts_(&b, "\r\n");
	}
	puts_(&b, "--");
	puts_(&b, boundary);
	puts_(&b, "--\r\n");
	if (b.oom) {
		free(b.p);
		return NULL;
	}
	*len = b.len;
	return b.p;
}
