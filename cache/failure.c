/*
 * failure.c - the one renderer of a failure (failure.h).
 *
 * NAME.error reads, in this order, each line only when it is set:
 *   bananafs: HEADLINE
 *   what happened: ...
 *   HTTP status: N   API status: S        (a request went out)
 *   finish reason: ...
 *   request id: ...                       (a request went out)
 *   whose problem: ...
 *   whose move: yours | bananafs's | Google's | the network's
 *   next move: ...
 *   NOTES...
 *   model said: ...
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "api/redact.h"
#include "cache/failure.h"

void failure_init(struct failure *f, const char *fmt, ...)
{
	va_list ap;

	memset(f, 0, sizeof(*f));
	va_start(ap, fmt);
	vsnprintf(f->headline, sizeof(f->headline), fmt, ap);
	va_end(ap);
}

void failure_what(struct failure *f, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(f->own_what, sizeof(f->own_what), fmt, ap);
	va_end(ap);
	f->what = f->own_what;
}

void failure_next_move(struct failure *f, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(f->own_next, sizeof(f->own_next), fmt, ap);
	va_end(ap);
	f->next_move = f->own_next;
}

void failure_problem(struct failure *f, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(f->problem, sizeof(f->problem), fmt, ap);
	va_end(ap);
}

void failure_note(struct failure *f, const char *fmt, ...)
{
	va_list ap;

	for (int i = 0; i < FAILURE_NOTES; i++)
		if (!f->notes[i][0]) {
			va_start(ap, fmt);
			vsnprintf(f->notes[i], sizeof(f->notes[i]), fmt, ap);
			va_end(ap);
			return;
		}
}

enum failure_whose failure_whose_of(enum err_class c)
{
	switch (c) {
	case ERR_NONE:
	case ERR_COUNT:
		return WHOSE_UNSAID;
	case ERR_CAPACITY:
	case ERR_MALFORMED:
		return WHOSE_GOOGLE;
	case ERR_NETWORK:
		return WHOSE_NETWORK;
	case ERR_CREDENTIALS:
	case ERR_PERMISSION:
	case ERR_QUOTA_MINUTE:
	case ERR_QUOTA_DAY:
	case ERR_QUOTA_ZERO:
	case ERR_BILLING:
	case ERR_REQUEST:
	case ERR_SAFETY:
	case ERR_NO_IMAGE:
	case ERR_ENDPOINT:
	case ERR_STORE:
		return WHOSE_USER;
	}
	return WHOSE_UNSAID;
}

static const char *whose_words(enum failure_whose w)
{
	switch (w) {
	case WHOSE_USER: return "yours";
	case WHOSE_BANANAFS: return "bananafs's";
	case WHOSE_GOOGLE: return "Google's";
	case WHOSE_NETWORK: return "the network's";
	case WHOSE_UNSAID: break;
	}
	return NULL;
}

static bool set(const char *s)
{
	return s && *s;
}

/* Appends to a malloc'd text; on out of memory *t becomes NULL and stays so. */
static void add(char **t, size_t *len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void add(char **t, size_t *len, const char *fmt, ...)
{
	va_list ap;
	int n;
	char *g;

	if (!*t)
		return;
	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !(g = realloc(*t, *len + (size_t)n + 1))) {
		free(*t);
		*t = NULL;
		return;
	}
	*t = g;
	va_start(ap, fmt);
	vsnprintf(*t + *len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	*len += (size_t)n;
}

static char *render_file(const struct failure *f)
{
	char *t = calloc(1, 1);
	size_t len = 0;
	const char *whose = whose_words(f->whose);

	add(&t, &len, "bananafs: %s\n", f->headline);
	if (set(f->what))
		add(&t, &len, "what happened: %s\n", f->what);
	if (f->exchanged && f->http_status > 0)
		add(&t, &len, "HTTP status: %ld   API status: %s\n", f->http_status,
		    set(f->api_status) ? f->api_status : "none");
	else if (f->exchanged)
		add(&t, &len, "HTTP status: none (no answer arrived)\n");
	if (set(f->finish_reason))
		add(&t, &len, "finish reason: %s\n", f->finish_reason);
	if (f->exchanged)
		add(&t, &len, "request id: %s\n", set(f->request_id) ? f->request_id : "none (the server gave none)");
	if (f->problem[0])
		add(&t, &len, "whose problem: %s\n", f->problem);
	if (whose)
		add(&t, &len, "whose move: %s\n", whose);
	if (set(f->next_move))
		add(&t, &len, "next move: %s\n", f->next_move);
	for (int i = 0; i < FAILURE_NOTES; i++)
		if (f->notes[i][0])
			add(&t, &len, "%s\n", f->notes[i]);
	if (set(f->model_said))
		add(&t, &len, "model said: %s\n", f->model_said);
	return t;
}

/* One line: a newline inside what happened would end the xattr's value early. */
static char *render_line(const struct failure *f)
{
	const char *src = set(f->what) ? f->what : f->headline;
	size_t n = strcspn(src, "\n");
	char *t = malloc(n + 1);

	if (t) {
		memcpy(t, src, n);
		t[n] = '\0';
	}
	return t;
}

char *failure_render(const struct failure *f, enum failure_form form)
{
	char *t = form == FAILURE_LINE ? render_line(f) : render_file(f);

	if (redact_owned(&t, NULL) < 0)
		return NULL;
	return t;
}
