/*
 * log.h - one log for the daemon: stderr in the foreground, syslog
 * otherwise.  Never pass a key to these.
 */
#ifndef BANANAFS_CACHE_LOG_H
#define BANANAFS_CACHE_LOG_H

#include <stdbool.h>

void log_init(const char *ident, bool foreground, bool debug);
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));	/* adds strerror(errno) */
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
