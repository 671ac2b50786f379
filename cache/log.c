/*
 * log.c - stderr in the foreground, syslog once detached.
 *
 * Each message is formatted into one buffer and written with a single call,
 * so lines from concurrent worker threads do not interleave.  Callers MUST
 * NOT pass a key, a header or a request body to these functions.
 */
#include "cache/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>

static bool log_foreground = true;	/* stderr until log_init says otherwise */
static bool log_debug_on;
static const char *log_ident = "bananafs";

void
log_init(const char *ident, bool foreground, bool debug)
{
	if (ident != NULL)
		log_ident = ident;
	log_foreground = foreground;
	log_debug_on = debug;
	if (!foreground)
		openlog(log_ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

/* suffix is appended after ": " when not NULL (strerror for log_warn). */
static void
log_emit(int prio, const char *suffix, const char *fmt, va_list ap)
{
	char msg[1024];
	int n;

	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	if (n < 0)
		snprintf(msg, sizeof(msg), "(unformattable log message)");
	else if ((size_t)n >= sizeof(msg))
		memcpy(msg + sizeof(msg) - 4, "...", 4);	/* mark the cut */

	if (log_foreground) {
		if (suffix != NULL)
			fprintf(stderr, "%s: %s: %s\n", log_ident, msg, suffix);
		else
			fprintf(stderr, "%s: %s\n", log_ident, msg);
		return;
	}
	if (suffix != NULL)
		syslog(prio, "%s: %s", msg, suffix);
	else
		syslog(prio, "%s", msg);
}

void
log_warn(const char *fmt, ...)
{
	char ebuf[256];
	const char *e;
	int saved = errno;
	va_list ap;

	/* GNU strerror_r returns the message, possibly not in ebuf. */
	e = strerror_r(saved, ebuf, sizeof(ebuf));
	va_start(ap, fmt);
	log_emit(LOG_WARNING, e, fmt, ap);
	va_end(ap);
	errno = saved;
}

void
log_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_emit(LOG_WARNING, NULL, fmt, ap);
	va_end(ap);
}

void
log_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_emit(LOG_INFO, NULL, fmt, ap);
	va_end(ap);
}

void
log_debug(const char *fmt, ...)
{
	va_list ap;

	if (!log_debug_on)
		return;
	va_start(ap, fmt);
	log_emit(LOG_DEBUG, NULL, fmt, ap);
	va_end(ap);
}
