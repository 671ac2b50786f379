/*
 * parse.h - bananactl's pure helpers: checked numbers, sizes, dates, word
 * matching, and the regen header rewrite.  No I/O, so unit tests include
 * parse.c directly.
 */
#ifndef BANANAFS_CTL_PARSE_H
#define BANANAFS_CTL_PARSE_H

#include <stddef.h>

/* strtonum(3)-style: 0 and *out, or -1 with *errstr "invalid", "too small", "too large". */
int parse_num(const char *s, long long min, long long max, long long *out, const char **errstr);

/* Seconds as a non-negative decimal ("2", "0.5"); 0 or -1. */
int parse_seconds(const char *s, double *out);

/*
 * Bytes from "123", "10K", "500M", "2G", "1T" (binary multiples, K/k and an
 * optional trailing "B" or "iB" accepted).  0, or -1 for anything else or
 * an overflow.
 */
int parse_size(const char *s, long long *out);

/* Checks "YYYY-MM-DD" is a real calendar date; 0 or -1. */
int parse_date(const char *s);

/* "512B", "1.5K", "20.0M", "3.1G": for reports. */
void fmt_bytes(long long n, char *buf, size_t len);

/*
 * Finds word among words[0..n-1]: an exact match, else a unique prefix.
 * Returns the index, -1 when none matches, -2 when ambiguous.
 */
int word_match(const char *word, const char *const *words, int n);

/*
 * Rewrites a prompt file so its header's variant is one more than before:
 * "variant: N" becomes N+1 (only the number changes), a header without one
 * gains "variant: 1" before its closing "---", and a file without a header
 * gains "---\nvariant: 1\n---\n" in front.  Every other byte is kept.
 * Returns a malloc'd buffer (its length in *outlen, the new variant in
 * *variant), or NULL with a reason in err.
 */
char *regen_rewrite(const char *buf, size_t len, size_t *outlen, int *variant, char *err, size_t errlen);

#endif
