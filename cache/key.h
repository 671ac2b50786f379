/*
 * key.h - the cache key.  See key.c for what enters it and why.
 */
#ifndef BANANAFS_CACHE_KEY_H
#define BANANAFS_CACHE_KEY_H

#include <stdint.h>
#include "api/request.h"

#define KEY_FORMAT_VERSION 2	/* see key.c for the canonical form */

struct cache_key {
	uint8_t b[16];			/* XXH3-128, big-endian canonical form */
};
_Static_assert(sizeof(struct cache_key) == 16, "cache key is 16 bytes");

#define KEY_HEX_LEN 33			/* 32 hex digits + NUL */

/* XXH3-128 over the canonical encoding of rq (route and count excluded). */
void key_compute(const struct gen_request *rq, struct cache_key *out);
/*
 * The key format 1 gave rq when it was one of n candidates: for finding
 * objects a store made before the upgrade (cache/upgrade.c) only.
 */
void key_compute_format1(const struct gen_request *rq, int n, struct cache_key *out);
void key_hex(const struct cache_key *k, char out[KEY_HEX_LEN]);
/* 0, or -1 when s is not 32 hex digits. */
int key_from_hex(const char *s, struct cache_key *out);
/* XXH3-128 of a buffer (reference images, prompt hash for the ledger). */
void key_hash_bytes(const void *b, size_t len, uint8_t out[16]);

#endif
