/*
 * gateway_models.c - config gateway_models ("ours=theirs,...") parsed once
 * into a table the gateway route reads on every request, and the
 * gateway_api names.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "api/route.h"

struct gateway_model_map {
	char *buf;			/* the spec, split in place */
	int n;
	struct {
		const char *ours, *theirs;
	} pair[];
};

static const char *const api_names[] = { "native", "images", "chat" };

const char *gateway_api_name(enum gateway_api a)
{
	return (unsigned)a < sizeof(api_names) / sizeof(api_names[0]) ? api_names[a] : NULL;
}

int gateway_api_parse(const char *name, enum gateway_api *out)
{
	for (size_t i = 0; name && i < sizeof(api_names) / sizeof(api_names[0]); i++)
		if (strcmp(name, api_names[i]) == 0) {
			*out = (enum gateway_api)i;
			return 0;
		}
	return -1;
}

/* Trims blanks around [s, e) in place; returns the start. */
static char *trim(char *s, char *e)
{
	while (s < e && isspace((unsigned char)*s))
		s++;
	while (e > s && isspace((unsigned char)e[-1]))
		e--;
	*e = '\0';
	return s;
}

int gateway_map_parse(const char *spec, struct gateway_model_map **out, char *err, size_t errlen)
{
	struct gateway_model_map *m;
	int pairs = 1;

	*out = NULL;
	if (!spec || !*spec)
		return 0;
	for (const char *p = spec; *p; p++)
		pairs += *p == ',';
	m = calloc(1, sizeof(*m) + (size_t)pairs * sizeof(m->pair[0]));
	if (!m || !(m->buf = strdup(spec))) {
		free(m);
		snprintf(err, errlen, "gateway_models: out of memory");
		return -1;
	}
	char *p = m->buf;
	for (;;) {
		char *end = p + strcspn(p, ",");
		char next = *end;
		char *eq = memchr(p, '=', (size_t)(end - p));
		if (!eq) {
			if (next == '\0' && trim(p, end)[0] == '\0' && m->n > 0)
				break;	/* a trailing comma */
			snprintf(err, errlen, "gateway_models: '%.*s' is not model=provider-name",
				 (int)(end - p) > 64 ? 64 : (int)(end - p), p);
			goto out_free;
		}
		const char *ours = trim(p, eq), *theirs = trim(eq + 1, end);
		if (!*ours || !*theirs) {
			snprintf(err, errlen, "gateway_models: an empty name around '=' in '%.64s'", spec);
			goto out_free;
		}
		m->pair[m->n].ours = ours;
		m->pair[m->n].theirs = theirs;
		m->n++;
		if (next == '\0')
			break;
		p = end + 1;
	}
	*out = m;
	return 0;
out_free:
	gateway_map_free(m);
	return -1;
}

const char *gateway_map_name(const struct gateway_model_map *m, const char *ours)
{
	for (int i = 0; m && ours && i < m->n; i++)
		if (strcmp(m->pair[i].ours, ours) == 0)
			return m->pair[i].theirs;
	return ours;
}

void gateway_map_free(struct gateway_model_map *m)
{
	if (!m)
		return;
	free(m->buf);
	free(m);
}
