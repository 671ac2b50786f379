/*
 * errbuf.h - the error-message out-parameter every core module fills.
 */
#ifndef BANANAFS_API_ERRBUF_H
#define BANANAFS_API_ERRBUF_H

#include <stddef.h>

/* printf into err (errlen bytes, always terminated); a NULL err or 0 length is fine. */
void errbuf_set(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
