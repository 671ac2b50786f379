/*
 * redact.h - keeping secrets out of server text.
 *
 * Everything a server sends back (error messages, the model's text, header
 * values such as a request id or a Location) is untrusted and may quote the
 * request, key included.  Before such text reaches a file, an xattr, a log
 * line, the ledger or .bananafs/jobs it passes through here: the API key
 * itself, any Google key shape ("AIza" + 35 characters), and the value after
 * "Bearer ", "x-goog-api-key" or "key=" become "[key]".
 */
#ifndef BANANAFS_API_REDACT_H
#define BANANAFS_API_REDACT_H

#include <stddef.h>

struct gen_result;

#define REDACT_MARK "[key]"

/*
 * Registers a key in use (the mount's API key, the gateway key) so every
 * redact call catches it, even where the caller does not hold it (batch
 * results, the NAME.error renderer).  The pointer is borrowed and must live
 * until redact_forget_keys.  Call before threads start; at most 4 keys.
 */
void redact_register_key(const char *key);
void redact_forget_keys(void);

/*
 * A malloc'd copy of text with the secrets replaced; keys is a NULL-ended
 * list of further keys (NULL or empty entries are skipped; keys shorter
 * than 8 characters are too common to replace and are only caught by the
 * patterns).  NULL on out of memory.
 */
char *redact(const char *text, const char *const *keys);
/* Replaces *text (malloc'd, may be NULL) by its redacted copy.  0, or -1 on OOM (then *text is freed and NULL). */
int redact_owned(char **text, const char *const *keys);
/* Redacts a fixed buffer in place, truncating to its size. */
void redact_buf(char *buf, size_t size, const char *const *keys);
/* Every server-sourced text of res: message, text, ids, statuses. */
void redact_result(struct gen_result *res, const char *const *keys);

#endif
