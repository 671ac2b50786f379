/*
 * prompt.c - what a prompt file means: trigger names, the "---" header,
 * the normalised text, and loading the reference images it names.
 *
 * A prompt file is untrusted input written by any program the user runs.
 * Invariants:
 *   - at most PROMPT_MAX_BYTES are parsed; the header is at most
 *     PROMPT_HEADER_MAX_LINES lines, found in one linear scan;
 *   - the text handed on is valid UTF-8 (no overlongs, surrogates or code
 *     points above U+10FFFF) without NUL bytes, so it is also a C string;
 *   - error messages quote user text cut short and with control characters
 *     replaced, since they end up in NAME.error and in logs;
 *   - reference images open only beneath the tree (openat2 RESOLVE_BENEATH),
 *     never through a symlink, never a FIFO or device (O_NONBLOCK keeps a
 *     FIFO from blocking the open).
 */
#include "api/errbuf.h"
#include "cache/prompt.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "api/image.h"
#include "api/models.h"
#include "cache/beneath.h"
#include "cache/key.h"

#define PROMPT_HEADER_MAX_LINES 64	/* lines between the two "---" */
#define QUOTE_MAX 64			/* bytes of user text quoted in a message */

/* The 14 aspect strings, for messages that list what is allowed. */
static const char *const all_aspects[] = {
	"1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9",
	"1:4", "4:1", "1:8", "8:1",
};

static const char known_keys[] = "aspect, n, input, variant, route, search, system";

/* ---- small helpers ------------------------------------------------------ */

/* Appends to err at *off; output is cut (never overflows) when err is full. */
static void __attribute__((format(printf, 4, 5)))
msg_add(char *err, size_t errlen, size_t *off, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (err == NULL || errlen == 0 || *off >= errlen - 1)
		return;
	va_start(ap, fmt);
	n = vsnprintf(err + *off, errlen - *off, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	*off += (size_t)n < errlen - *off ? (size_t)n : errlen - *off - 1;
}

/*
 * Copies user text for quoting: at most QUOTE_MAX bytes (cut on a UTF-8
 * boundary), control characters and quotes shown as '?'.
 */
static void
quote(char out[QUOTE_MAX + 4], const char *s, size_t len)
{
	size_t n = len, o = 0;

	if (n > QUOTE_MAX) {
		n = QUOTE_MAX;
		while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
			n--;		/* do not split a multi-byte character */
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		out[o++] = ch < 0x20 || ch == 0x7f || ch == '\'' ? '?' : (char)ch;
	}
	if (n < len) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
}

static bool
is_ws(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n' || ch == '\v' || ch == '\f';
}

static bool
has_suffix(const char *s, size_t len, const char *suf)
{
	size_t sl = strlen(suf);

	return len >= sl && memcmp(s + len - sl, suf, sl) == 0;
}

/* ---- trigger names ------------------------------------------------------ */

bool
prompt_name_triggers(const char *name)
{
	static const char *const temp_suffixes[] = { "~", ".swp", ".swx", ".tmp", ".part" };
	size_t len;

	if (name == NULL || strchr(name, '/') != NULL)
		return false;
	len = strlen(name);
	/* Hidden files: vim's .x.swp, gedit's .goutputstream-*, ".txt" itself. */
	if (len == 0 || name[0] == '.')
		return false;
	for (size_t i = 0; i < sizeof(temp_suffixes) / sizeof(temp_suffixes[0]); i++)
		if (has_suffix(name, len, temp_suffixes[i]))
			return false;
	/* "NAME.txt" with a non-empty NAME; "4913" (vim's probe) has no .txt. */
	return len > 4 && has_suffix(name, len, ".txt");
}

/* ---- UTF-8 -------------------------------------------------------------- */

/*
 * Returns the offset of the first byte that starts an invalid sequence, or
 * -1 when all of s is valid UTF-8 (RFC 3629: shortest form, no surrogates,
 * nothing above U+10FFFF).
 */
static long
utf8_bad_offset(const unsigned char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned c = s[i], cp, min;
		size_t need;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xC2 && c <= 0xDF) {
			need = 1, cp = c & 0x1F, min = 0x80;
		} else if (c >= 0xE0 && c <= 0xEF) {
			need = 2, cp = c & 0x0F, min = 0x800;
		} else if (c >= 0xF0 && c <= 0xF4) {
			need = 3, cp = c & 0x07, min = 0x10000;
		} else {
			return (long)i;	/* continuation byte, C0/C1, F5..FF */
		}
		if (len - i - 1 < need)
			return (long)i;	/* truncated at the end */
		for (size_t k = 1; k <= need; k++) {
			unsigned b = s[i + k];

			if ((b & 0xC0) != 0x80)
				return (long)i;
			cp = cp << 6 | (b & 0x3F);
		}
		if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return (long)i;
		i += need + 1;
	}
	return -1;
}

/* ---- header ------------------------------------------------------------- */

struct line {
	const char *s;
	size_t len;			/* without the '\n' */
	size_t next;			/* offset of the following line */
};

static void
line_at(const char *buf, size_t len, size_t pos, struct line *l)
{
	const char *nl = memchr(buf + pos, '\n', len - pos);
	size_t end = nl != NULL ? (size_t)(nl - buf) : len;

	l->s = buf + pos;
	l->len = end - pos;
	l->next = nl != NULL ? end + 1 : len;
}

/* "---" followed only by spaces, tabs or a CR. */
static bool
is_marker(const struct line *l)
{
	size_t n = l->len;

	while (n > 0 && (l->s[n - 1] == ' ' || l->s[n - 1] == '\t' || l->s[n - 1] == '\r'))
		n--;
	return n == 3 && memcmp(l->s, "---", 3) == 0;
}

/* Digits only, no sign or blanks; 0 and *out, or -1. */
static int
parse_uint(const char *s, long max, long *out)
{
	long v = 0;

	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (*s - '0');
		if (v > max)
			return -1;
	}
	*out = v;
	return 0;
}

static void
trim(const char **s, size_t *len)
{
	while (*len > 0 && is_ws(**s))
		(*s)++, (*len)--;
	while (*len > 0 && is_ws((*s)[*len - 1]))
		(*len)--;
}

static int
add_inputs(struct prompt *p, int lineno, const char *v, char *err, size_t errlen)
{
	const char *s = v;

	for (;;) {
		const char *comma = strchr(s, ',');
		size_t n = comma != NULL ? (size_t)(comma - s) : strlen(s);
		const char *item = s;
		char q[QUOTE_MAX + 4];

		trim(&item, &n);
		quote(q, item, n);
		if (n == 0) {
			errbuf_set(err, errlen, "line %d: empty input path: expected a path relative to "
				"the prompt's folder", lineno);
			return -1;
		}
		if (item[0] == '/') {
			errbuf_set(err, errlen, "line %d: input '%s' is an absolute path: inputs are "
				"relative to the prompt's folder", lineno, q);
			return -1;
		}
		if (p->ninputs >= PROMPT_MAX_INPUTS) {
			errbuf_set(err, errlen, "line %d: too many inputs: at most %d reference images",
				lineno, PROMPT_MAX_INPUTS);
			return -1;
		}
		p->inputs[p->ninputs] = strndup(item, n);
		if (p->inputs[p->ninputs] == NULL) {
			errbuf_set(err, errlen, "out of memory");
			return -1;
		}
		p->ninputs++;
		if (comma == NULL)
			return 0;
		s = comma + 1;
	}
}

enum hdr_key { HK_ASPECT, HK_N, HK_INPUT, HK_VARIANT, HK_ROUTE, HK_SEARCH, HK_SYSTEM, HK_COUNT };
static const char *const hdr_key_names[HK_COUNT] = { "aspect", "n", "input", "variant", "route", "search",
						     "system" };

/* One header line, already without '\n'.  0, or -1 with err. */
static int
header_line(struct prompt *p, int lineno, const char *s, size_t len, bool seen[HK_COUNT],
	    char *err, size_t errlen)
{
	char key[32], q[QUOTE_MAX + 4], *val;
	const char *colon, *ks, *vs;
	size_t kl, vl;
	int k, rc = -1;
	long num;

	/* '#' starts a comment at the line start or after a blank: "a#b.png" stays. */
	for (size_t i = 0; i < len; i++)
		if (s[i] == '#' && (i == 0 || s[i - 1] == ' ' || s[i - 1] == '\t')) {
			len = i;
			break;
		}
	trim(&s, &len);
	if (len == 0)
		return 0;

	colon = memchr(s, ':', len);
	if (colon == NULL) {
		quote(q, s, len);
		errbuf_set(err, errlen, "line %d: expected 'key: value', got '%s'", lineno, q);
		return -1;
	}
	ks = s, kl = (size_t)(colon - s);
	trim(&ks, &kl);
	vs = colon + 1;
	vl = (size_t)(s + len - vs);
	trim(&vs, &vl);

	for (k = 0; k < HK_COUNT; k++)
		if (kl == strlen(hdr_key_names[k]) && memcmp(ks, hdr_key_names[k], kl) == 0)
			break;
	if (k == HK_COUNT || kl >= sizeof(key)) {
		quote(q, ks, kl);
		errbuf_set(err, errlen, "line %d: unknown key '%s' (known: %s)", lineno, q, known_keys);
		return -1;
	}
	memcpy(key, ks, kl);
	key[kl] = '\0';
	if (seen[k] && k != HK_INPUT) {
		errbuf_set(err, errlen, "line %d: duplicate key '%s'", lineno, key);
		return -1;
	}
	seen[k] = true;

	val = strndup(vs, vl);
	if (val == NULL) {
		errbuf_set(err, errlen, "out of memory");
		return -1;
	}
	quote(q, vs, vl);

	switch ((enum hdr_key)k) {
	case HK_ASPECT:
		if (vl >= sizeof(p->aspect) || !aspect_valid(val)) {
			size_t off = 0;

			msg_add(err, errlen, &off, "line %d: bad value '%s' for aspect: expected one of",
				lineno, q);
			for (size_t i = 0; i < sizeof(all_aspects) / sizeof(all_aspects[0]); i++)
				msg_add(err, errlen, &off, " %s", all_aspects[i]);
			goto out;
		}
		memcpy(p->aspect, val, vl + 1);
		break;
	case HK_N:
		if (parse_uint(val, PROMPT_MAX_N, &num) < 0 || num < 1) {
			errbuf_set(err, errlen, "line %d: bad value '%s' for n: expected 1..%d",
				lineno, q, PROMPT_MAX_N);
			goto out;
		}
		p->n = (int)num;
		break;
	case HK_VARIANT:
		if (parse_uint(val, 1000000000L, &num) < 0) {
			errbuf_set(err, errlen, "line %d: bad value '%s' for variant: expected 0..1000000000",
				lineno, q);
			goto out;
		}
		p->variant = (int)num;
		break;
	case HK_ROUTE:
		if (route_parse(val, &p->route) < 0) {
			size_t off = 0;

			msg_add(err, errlen, &off, "line %d: bad value '%s' for route: expected", lineno, q);
			for (int r = 0; r < ROUTE_COUNT; r++)
				msg_add(err, errlen, &off, "%s %s", r == 0 ? "" : r == ROUTE_COUNT - 1 ?
					" or" : ",", route_name((enum route)r));
			goto out;
		}
		p->route_set = true;
		break;
	case HK_INPUT:
		if (add_inputs(p, lineno, val, err, errlen) < 0)
			goto out;
		break;
	case HK_SEARCH:
		if (!strcmp(val, "yes") || !strcmp(val, "true") || !strcmp(val, "on"))
			p->search = true;
		else if (!strcmp(val, "no") || !strcmp(val, "false") || !strcmp(val, "off"))
			p->search = false;
		else {
			errbuf_set(err, errlen, "line %d: bad value '%s' for search: expected yes or no",
				   lineno, q);
			goto out;
		}
		break;
	case HK_SYSTEM:
		if (vl == 0) {
			errbuf_set(err, errlen, "line %d: empty system instruction: write one after 'system:' "
				   "or drop the line", lineno);
			goto out;
		}
		p->system = val;	/* the line as written: it is the instruction */
		val = NULL;
		break;
	case HK_COUNT:
		goto out;
	}
	rc = 0;
out:
	free(val);
	return rc;
}

void
prompt_free(struct prompt *p)
{
	if (p == NULL)
		return;
	free(p->text);
	free(p->text_as_written);
	free(p->system);
	for (int i = 0; i < p->ninputs; i++)
		free(p->inputs[i]);
	memset(p, 0, sizeof(*p));
	p->n = 1;
}

/*
 * The header and the text of buf, which has passed the size, NUL and UTF-8
 * checks.  *p was reset by the caller.
 */
static enum prompt_err
parse_checked(const char *buf, size_t len, struct prompt *p, char *err, size_t errlen)
{
	bool seen[HK_COUNT] = { false };
	size_t pos = 0, tlen;
	const char *text;
	struct line l;

	if (len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0)
		pos = 3;		/* a BOM is not text */

	line_at(buf, len, pos, &l);
	if (pos < len && is_marker(&l)) {
		size_t hstart = l.next, hend = 0, textpos = 0;
		int lineno = 1, nlines = 0;
		bool closed = false;

		/* Find the closing marker first: an unterminated header is the error. */
		for (size_t q = hstart; q < len; q = l.next) {
			line_at(buf, len, q, &l);
			if (is_marker(&l)) {
				hend = q, textpos = l.next, closed = true;
				break;
			}
			if (++nlines > PROMPT_HEADER_MAX_LINES) {
				errbuf_set(err, errlen, "line 1: header longer than %d lines (is the closing "
					"'---' missing?)", PROMPT_HEADER_MAX_LINES);
				return PROMPT_BAD_HEADER;
			}
		}
		if (!closed) {
			errbuf_set(err, errlen, "line 1: header opened with '---' is never closed "
				"(add a '---' line before the prompt text)");
			return PROMPT_BAD_HEADER;
		}
		for (size_t q = hstart; q < hend; q = l.next) {
			line_at(buf, len, q, &l);
			lineno++;
			if (header_line(p, lineno, l.s, l.len, seen, err, errlen) < 0) {
				prompt_free(p);
				return PROMPT_BAD_HEADER;
			}
		}
		pos = textpos;
	}

	text = buf + pos;
	tlen = len - pos;
	trim(&text, &tlen);
	if (tlen == 0) {
		prompt_free(p);
		errbuf_set(err, errlen, "the prompt is empty: nothing was sent");
		return PROMPT_EMPTY;
	}
	p->text = strndup(text, tlen);
	if (p->text == NULL) {
		prompt_free(p);
		errbuf_set(err, errlen, "out of memory");
		return PROMPT_TOO_BIG;
	}
	p->len = tlen;
	return PROMPT_OK;
}

/*
 * A copy of buf with CRLF and lone CR turned into LF, NUL-terminated; *outlen
 * is its length.  NULL when out of memory.
 */
static char *
lf_endings(const char *buf, size_t len, size_t *outlen)
{
	char *out = malloc(len + 1);
	size_t o = 0;

	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		if (buf[i] != '\r') {
			out[o++] = buf[i];
			continue;
		}
		out[o++] = '\n';
		if (i + 1 < len && buf[i + 1] == '\n')
			i++;		/* CRLF is one line ending */
	}
	out[o] = '\0';
	*outlen = o;
	return out;
}

static bool
same_header(const struct prompt *a, const struct prompt *b)
{
	if (strcmp(a->aspect, b->aspect) != 0 || a->n != b->n || a->variant != b->variant ||
	    a->route_set != b->route_set || a->route != b->route || a->ninputs != b->ninputs ||
	    a->search != b->search || (a->system == NULL) != (b->system == NULL) ||
	    (a->system && strcmp(a->system, b->system) != 0))
		return false;
	for (int i = 0; i < a->ninputs; i++)
		if (strcmp(a->inputs[i], b->inputs[i]) != 0)
			return false;
	return true;
}

/*
 * Key format 1 hashed the text with its line endings as written.  Keeps that
 * text in p->text_as_written when it differs, so a store made before the
 * upgrade still finds its image (cache/upgrade.c).  Best effort: no error.
 */
static void
keep_as_written(const char *buf, size_t len, struct prompt *p)
{
	struct prompt old;

	memset(&old, 0, sizeof(old));
	old.n = 1;
	old.route = ROUTE_STANDARD;
	if (parse_checked(buf, len, &old, NULL, 0) == PROMPT_OK && same_header(&old, p) &&
	    (old.len != p->len || memcmp(old.text, p->text, p->len) != 0)) {
		p->text_as_written = old.text;
		p->len_as_written = old.len;
		old.text = NULL;
	}
	prompt_free(&old);
}

/* 40001 -> "40,001": sizes people read. */
static void thousands(size_t v, char *buf, size_t len)
{
	char digits[32];
	int n = snprintf(digits, sizeof(digits), "%zu", v), o = 0;

	for (int i = 0; i < n && (size_t)o + 2 < len; i++) {
		if (i > 0 && (n - i) % 3 == 0)
			buf[o++] = ',';
		buf[o++] = digits[i];
	}
	buf[o] = '\0';
}

void prompt_too_big_msg(size_t size, char *err, size_t errlen)
{
	char have[32], limit[32];

	thousands(size, have, sizeof(have));
	thousands(PROMPT_MAX_BYTES, limit, sizeof(limit));
	errbuf_set(err, errlen, "prompt is %s bytes; the limit is 32 KiB (%s bytes)", have, limit);
}

enum prompt_err
prompt_parse(const char *buf, size_t len, struct prompt *p, char *err, size_t errlen)
{
	const char *nul;
	char *lf;
	size_t lflen;
	enum prompt_err rc;
	long bad;

	memset(p, 0, sizeof(*p));
	p->n = 1;
	p->route = ROUTE_STANDARD;
	if (err != NULL && errlen > 0)
		err[0] = '\0';

	if (len > PROMPT_MAX_BYTES) {
		prompt_too_big_msg(len, err, errlen);
		return PROMPT_TOO_BIG;
	}
	if (len == 0) {
		errbuf_set(err, errlen, "the prompt is empty: nothing was sent");
		return PROMPT_EMPTY;
	}
	nul = memchr(buf, '\0', len);
	if (nul != NULL) {
		errbuf_set(err, errlen, "binary file: NUL byte at byte offset %zu; a prompt is UTF-8 text",
			(size_t)(nul - buf));
		return PROMPT_BAD_UTF8;
	}
	bad = utf8_bad_offset((const unsigned char *)buf, len);
	if (bad >= 0) {
		errbuf_set(err, errlen, "invalid UTF-8 at byte offset %ld; save the prompt as UTF-8", bad);
		return PROMPT_BAD_UTF8;
	}

	if (memchr(buf, '\r', len) == NULL)
		return parse_checked(buf, len, p, err, errlen);
	/* CRLF (Windows) and CR (old Mac) line endings are one request with LF. */
	lf = lf_endings(buf, len, &lflen);
	if (lf == NULL) {
		errbuf_set(err, errlen, "out of memory");
		return PROMPT_TOO_BIG;
	}
	rc = parse_checked(lf, lflen, p, err, errlen);
	free(lf);
	if (rc == PROMPT_OK)
		keep_as_written(buf, len, p);
	return rc;
}

/* ---- checks against the model table ------------------------------------- */

int
prompt_check(const struct prompt *p, const char *model, const char *size, const char *aspect,
	     char *err, size_t errlen)
{
	const struct model_info *m;
	char q[QUOTE_MAX + 4];
	size_t off = 0;

	if (aspect == NULL || aspect[0] == '\0')
		aspect = p != NULL && p->aspect[0] != '\0' ? p->aspect : "1:1";

	m = model != NULL ? models_find(model) : NULL;
	if (m == NULL) {
		quote(q, model != NULL ? model : "", model != NULL ? strlen(model) : 0);
		msg_add(err, errlen, &off, "unknown model '%s' (known:", q);
		for (size_t i = 0; i < models_count(); i++)
			msg_add(err, errlen, &off, "%s %s", i == 0 ? "" : ",", models_at(i)->id);
		msg_add(err, errlen, &off, ")");
		return -1;
	}
	if (model_retired(m)) {
		model_retired_msg(m, err, errlen);
		return -1;
	}
	if (size == NULL || !model_has_size(m, size)) {
		quote(q, size != NULL ? size : "", size != NULL ? strlen(size) : 0);
		msg_add(err, errlen, &off, "model %s has no size '%s' (sizes:", m->id, q);
		for (int i = 0; i < m->nsizes; i++)
			msg_add(err, errlen, &off, "%s %s", i == 0 ? "" : ",", m->sizes[i]);
		msg_add(err, errlen, &off, ")");
		return -1;
	}
	if (!aspect_valid(aspect) || !model_has_aspect(m, aspect)) {
		bool first = true;

		quote(q, aspect, strlen(aspect));
		msg_add(err, errlen, &off, "model %s does not support aspect '%s' (aspects:", m->id, q);
		for (size_t i = 0; i < sizeof(all_aspects) / sizeof(all_aspects[0]); i++)
			if (model_has_aspect(m, all_aspects[i])) {
				msg_add(err, errlen, &off, "%s %s", first ? "" : ",", all_aspects[i]);
				first = false;
			}
		msg_add(err, errlen, &off, ")");
		return -1;
	}
	return 0;
}

/* ---- reference images --------------------------------------------------- */

void
prompt_free_inputs(struct ref_image *refs, int n)
{
	if (refs == NULL)
		return;
	for (int i = 0; i < n; i++) {
		free((void *)refs[i].data);
		memset(&refs[i], 0, sizeof(refs[i]));
	}
}

static const char *
open_reason(int e)
{
	switch (e) {
	/*
	 * The job reads with the writer's rights: one answer for "missing"
	 * and "not yours to read", so a prompt cannot probe for other users'
	 * files.
	 */
	case ENOENT:
	case EACCES:
	case EPERM:
		return "no such file, or not one you may read (paths are relative to the prompt's folder)";
	case EXDEV:
		return "the path leaves the drive (inputs must stay inside it)";
	case ELOOP:
		return "is a symbolic link; inputs must be regular files, not links";
	case ENOTDIR:
		return "a folder in the path is not a folder";
	case EISDIR:
		return "not a regular file (a folder)";
	case ENAMETOOLONG:
		return "path too long";
	case ENOSYS:
		return "openat2() is not available (Linux 5.6 or later is needed)";
	default:
		return strerror(e);
	}
}

/* Loads one input into *r; 0, or -1 with err naming the input as written. */
static int
load_one(int tree_fd, const char *dir, const char *input, struct ref_image *r,
	 char *err, size_t errlen)
{
	struct open_how how = {
		.flags = O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
	};
	char path[PATH_MAX], q[QUOTE_MAX + 4];
	unsigned char *data = NULL;
	const char *mime;
	struct stat st;
	size_t got = 0;
	int fd, n;

	quote(q, input, strlen(input));
	if (dir == NULL || dir[0] == '\0' || strcmp(dir, ".") == 0)
		n = snprintf(path, sizeof(path), "%s", input);
	else
		n = snprintf(path, sizeof(path), "%s/%s", dir, input);
	if (n < 0 || (size_t)n >= sizeof(path)) {
		errbuf_set(err, errlen, "input '%s': path too long", q);
		return -1;
	}

	fd = open_beneath(tree_fd, path, (int)how.flags);
	if (fd < 0) {
		errbuf_set(err, errlen, "input '%s': %s", q, open_reason(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		errbuf_set(err, errlen, "input '%s': %s", q, strerror(errno));
		goto out_close;
	}
	if (!S_ISREG(st.st_mode)) {
		errbuf_set(err, errlen, "input '%s': not a regular file", q);
		goto out_close;
	}
	if (st.st_size > INPUT_MAX_BYTES) {
		errbuf_set(err, errlen, "input '%s': %lld bytes; reference images are limited to %d MiB",
			q, (long long)st.st_size, INPUT_MAX_BYTES / (1024 * 1024));
		goto out_close;
	}
	data = malloc(st.st_size > 0 ? (size_t)st.st_size : 1);
	if (data == NULL) {
		errbuf_set(err, errlen, "input '%s': out of memory", q);
		goto out_close;
	}
	/* Read what fstat promised; a file that shrinks meanwhile is read as it is. */
	while (got < (size_t)st.st_size) {
		ssize_t rd = read(fd, data + got, (size_t)st.st_size - got);

		if (rd < 0 && errno == EINTR)
			continue;
		if (rd < 0) {
			errbuf_set(err, errlen, "input '%s': read: %s", q, strerror(errno));
			goto out_free;
		}
		if (rd == 0)
			break;
		got += (size_t)rd;
	}
	mime = image_sniff(data, got);
	if (mime == NULL) {
		errbuf_set(err, errlen, "input '%s': not a PNG, JPEG or WebP image", q);
		goto out_free;
	}
	close(fd);
	r->mime = mime;
	r->data = data;
	r->len = got;
	key_hash_bytes(data, got, r->hash);
	return 0;

out_free:
	free(data);
out_close:
	close(fd);
	return -1;
}

int
prompt_load_inputs(const struct prompt *p, int tree_fd, const char *dir,
		   struct ref_image *refs, char *err, size_t errlen)
{
	if (p->ninputs > 0)
		memset(refs, 0, sizeof(*refs) * (size_t)p->ninputs);
	for (int i = 0; i < p->ninputs; i++)
		if (load_one(tree_fd, dir, p->inputs[i], &refs[i], err, errlen) < 0) {
			prompt_free_inputs(refs, i);
			return -1;
		}
	return 0;
}

int
prompt_check_route(const struct prompt *p, const char *model, enum route route, bool gateway_images,
		   char *err, size_t errlen)
{
	const struct model_info *m = models_find(model);

	if (p->search && route == ROUTE_GATEWAY) {
		errbuf_set(err, errlen, "search: yes needs Google's own API; route gateway does not carry "
			   "Google Search grounding (use route standard, flex, generate or batch)");
		return -1;
	}
	if (p->search && route == ROUTE_BATCH) {
		/* The Batch API takes the tool, but the batcher prices items by image only. */
		errbuf_set(err, errlen, "search: yes is not offered on route batch (its search queries "
			   "would go unpriced); use route standard, flex or generate");
		return -1;
	}
	if (p->search && !model_takes_search(m)) {
		errbuf_set(err, errlen, "search: yes is not offered for %s (Google Search grounding: "
			   "gemini-3-pro-image, gemini-3.1-flash-image)", model);
		return -1;
	}
	if (p->system && route == ROUTE_GATEWAY && gateway_images) {
		errbuf_set(err, errlen, "system: is not carried by a gateway's images API (gateway_api = "
			   "images); use gateway_api = chat or native, or a Google route");
		return -1;
	}
	return 0;
}
