/*
 * writer.c - see writer.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include "cache/writer.h"

void writer_groups_format(const struct writer *w, char *out, size_t len)
{
	size_t off = 0;
	out[0] = '\0';
	for (int i = 0; i < w->ngroups && i < WRITER_MAX_GROUPS; i++) {
		int n = snprintf(out + off, len - off, "%s%u", i ? "," : "", (unsigned)w->groups[i]);
		if (n < 0 || (size_t)n >= len - off)
			break;
		off += (size_t)n;
	}
}

int writer_groups_parse(struct writer *w, const char *text)
{
	w->ngroups = 0;
	for (const char *p = text; p && *p;) {
		char *end;
		errno = 0;
		unsigned long g = strtoul(p, &end, 10);
		if (errno || end == p || g > (gid_t)-2)
			return -1;
		if (w->ngroups < WRITER_MAX_GROUPS)
			w->groups[w->ngroups++] = (gid_t)g;
		if (*end == ',')
			end++;
		else if (*end)
			return -1;
		p = end;
	}
	return 0;
}
