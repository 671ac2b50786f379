/*
 * parse.c - bananactl's pure helpers (see parse.h).  Nothing here touches
 * a file, the environment or the clock, so the unit test can include it.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/bananactl/parse.h"

int
parse_num(const char *s, long long min, long long max, long long *out, const char **errstr)
{
	char *end;
	long long v;

	*errstr = "invalid";
	if (s == NULL || *s == '\0' || isspace((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (*end != '\0')
		return -1;
	if ((errno == ERANGE && v == LLONG_MIN) || v < min) {
		*errstr = "too small";
		return -1;
	}
	if ((errno == ERANGE && v == LLONG_MAX) || v > max) {
		*errstr = "too large";
		return -1;
	}
	*errstr = NULL;
	*out = v;
	return 0;
}

int
parse_seconds(const char *s, double *out)
{
	char *end;
	double v;

	if (s == NULL || *s == '\0' || isspace((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtod(s, &end);
	/* Decimal only: no "inf", "nan" or hex floats sneaking through strtod. */
	for (const char *p = s; p < end; p++)
		if (!isdigit((unsigned char)*p) && *p != '.')
			return -1;
	if (*end != '\0' || errno == ERANGE || v < 0 || v > 1e9)
		return -1;
	*out = v;
	return 0;
}

int
parse_size(const char *s, long long *out)
{
	unsigned long long v = 0, mult = 1;
	const char *p = s;

	if (s == NULL || !isdigit((unsigned char)*p))
		return -1;
	for (; isdigit((unsigned char)*p); p++) {
		if (v > (ULLONG_MAX - 9) / 10)
			return -1;
		v = v * 10 + (unsigned)(*p - '0');
	}
	switch (toupper((unsigned char)*p)) {
	case '\0':
		break;
	case 'B':
		p++;
		break;
	case 'K':
		mult = 1ULL << 10;
		p++;
		break;
	case 'M':
		mult = 1ULL << 20;
		p++;
		break;
	case 'G':
		mult = 1ULL << 30;
		p++;
		break;
	case 'T':
		mult = 1ULL << 40;
		p++;
		break;
	default:
		return -1;
	}
	if (mult > 1) {
		if (*p == 'i' && toupper((unsigned char)p[1]) == 'B')
			p += 2;
		else if (toupper((unsigned char)*p) == 'B')
			p++;
	}
	if (*p != '\0')
		return -1;
	if (v > (unsigned long long)LLONG_MAX / mult)
		return -1;
	*out = (long long)(v * mult);
	return 0;
}

int
parse_date(const char *s)
{
	static const int mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int y, m, d, leap;

	if (s == NULL || strlen(s) != 10 || s[4] != '-' || s[7] != '-')
		return -1;
	for (int i = 0; i < 10; i++)
		if (i != 4 && i != 7 && !isdigit((unsigned char)s[i]))
			return -1;
	y = atoi(s);
	m = atoi(s + 5);
	d = atoi(s + 8);
	if (y < 1970 || m < 1 || m > 12 || d < 1)
		return -1;
	leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	if (d > mdays[m - 1] + (m == 2 && leap))
		return -1;
	return 0;
}

void
fmt_bytes(long long n, char *buf, size_t len)
{
	static const char units[] = "KMGT";
	double v = (double)n;
	int u = -1;

	if (n < 1024) {
		snprintf(buf, len, "%lldB", n);
		return;
	}
	while (v >= 1024 && u < 3) {
		v /= 1024;
		u++;
	}
	snprintf(buf, len, "%.1f%c", v, units[u]);
}

int
word_match(const char *word, const char *const *words, int n)
{
	size_t wl = strlen(word);
	int found = -1;

	if (wl == 0)
		return -1;
	for (int i = 0; i < n; i++)
		if (strcmp(word, words[i]) == 0)
			return i;
	for (int i = 0; i < n; i++) {
		if (strncmp(word, words[i], wl) != 0)
			continue;
		if (found >= 0)
			return -2;
		found = i;
	}
	return found;
}

/* True when [p, e) is "---" followed only by blanks (and a CR). */
static int
is_fence(const char *p, const char *e)
{
	if (e - p < 3 || strncmp(p, "---", 3) != 0)
		return 0;
	for (p += 3; p < e; p++)
		if (*p != ' ' && *p != '\t' && *p != '\r')
			return 0;
	return 1;
}

char *
regen_rewrite(const char *buf, size_t len, size_t *outlen, int *variant, char *err, size_t errlen)
{
	const char *end = buf + len, *line, *nl;
	const char *num = NULL, *num_end = NULL, *close = NULL;
	long long old = 0;
	int lineno = 1;
	char newnum[24], *out;
	size_t n, bom;

	/* A UTF-8 byte order mark stays first, as the prompt parser expects. */
	bom = len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
	line = buf + bom;
	nl = memchr(line, '\n', (size_t)(end - line));
	if (nl == NULL || !is_fence(line, nl)) {
		/* No header: put one in front, the text follows untouched. */
		static const char head[] = "---\nvariant: 1\n---\n";
		size_t hl = sizeof(head) - 1;

		out = malloc(hl + len + 1);
		if (out == NULL) {
			snprintf(err, errlen, "out of memory");
			return NULL;
		}
		memcpy(out, buf, bom);
		memcpy(out + bom, head, hl);
		memcpy(out + bom + hl, buf + bom, len - bom);
		*outlen = hl + len;
		out[*outlen] = '\0';
		*variant = 1;
		return out;
	}
	for (line = nl + 1; line < end; line = (nl == end) ? end : nl + 1) {
		const char *p, *q;

		lineno++;
		nl = memchr(line, '\n', (size_t)(end - line));
		if (nl == NULL)
			nl = end;
		if (is_fence(line, nl)) {
			close = line;
			break;
		}
		for (p = line; p < nl && (*p == ' ' || *p == '\t'); p++)
			;
		if (nl - p < 7 || strncmp(p, "variant", 7) != 0)
			continue;
		for (q = p + 7; q < nl && (*q == ' ' || *q == '\t'); q++)
			;
		if (q == nl || *q != ':')
			continue;
		if (num != NULL) {
			snprintf(err, errlen, "line %d: variant is set twice", lineno);
			return NULL;
		}
		for (q++; q < nl && (*q == ' ' || *q == '\t'); q++)
			;
		num = q;
		for (old = 0; q < nl && isdigit((unsigned char)*q); q++) {
			old = old * 10 + (*q - '0');
			if (old >= INT_MAX) {
				snprintf(err, errlen, "line %d: variant is too large", lineno);
				return NULL;
			}
		}
		num_end = q;
		for (; q < nl && (*q == ' ' || *q == '\t' || *q == '\r'); q++)
			;
		if (num == num_end || (q < nl && *q != '#')) {
			snprintf(err, errlen, "line %d: variant is not a whole number", lineno);
			return NULL;
		}
	}
	if (close == NULL) {
		snprintf(err, errlen, "the header has no closing --- line");
		return NULL;
	}
	*variant = (int)old + 1;
	snprintf(newnum, sizeof(newnum), "%d", *variant);
	if (num != NULL) {
		size_t pre = (size_t)(num - buf), post = (size_t)(end - num_end);

		n = pre + strlen(newnum) + post;
		if ((out = malloc(n + 1)) == NULL)
			goto oom;
		memcpy(out, buf, pre);
		memcpy(out + pre, newnum, strlen(newnum));
		memcpy(out + pre + strlen(newnum), num_end, post);
	} else {
		/* Keep the file's line ending style for the line we add. */
		const char *eol = (close > buf + 1 && close[-2] == '\r') ? "\r\n" : "\n";
		char add[32];
		size_t pre = (size_t)(close - buf), alen;

		snprintf(add, sizeof(add), "variant: 1%s", eol);
		alen = strlen(add);
		n = len + alen;
		if ((out = malloc(n + 1)) == NULL)
			goto oom;
		memcpy(out, buf, pre);
		memcpy(out + pre, add, alen);
		memcpy(out + pre + alen, close, len - pre);
	}
	out[n] = '\0';
	*outlen = n;
	return out;
oom:
	snprintf(err, errlen, "out of memory");
	return NULL;
}
