/*
 * held.h - paid answers the store could not take, kept until it can.
 *
 * Once an answer is verified it has been paid for.  When the store then
 * fails (ENOSPC, EROFS, EIO, an immutable objects folder) the bytes must
 * not be thrown away: fetch.c hands them here, the outcome says "store"
 * (not "malformed"), and the next walk for the same key - the prompt saved
 * again, or the jobs layer retrying a little later - stores them through
 * held_store() instead of paying again.
 *
 * The spool is memory, never the full filesystem: the original bytes on
 * the heap and the publishable PNG (with its provenance chunks, built once
 * from the request that paid for it) in a memfd.  At most cap bytes are
 * held (a 4K PNG is tens of MB); past that an answer is not kept and the
 * caller says so.  Held answers do not survive an unmount or a crash.
 */
#ifndef BANANAFS_CACHE_HELD_H
#define BANANAFS_CACHE_HELD_H

#include <pthread.h>
#include <stddef.h>
#include "cache/key.h"
#include "cache/store.h"

struct held_entry;

struct held {
	pthread_mutex_t mu;		/* protects the list and the byte count */
	struct held_entry *head;
	size_t bytes, cap;
};

void held_init(struct held *h, size_t cap);
void held_destroy(struct held *h);

/*
 * Keeps the answer for key k: orig (len bytes, copied), its extension, and
 * the publishable file built by write_pub(path, arg) into memory (write_pub
 * NULL: the original is what is published, pub_ext == orig_ext).  A key
 * already held keeps its first answer.  0, or -1 with err (over the cap,
 * out of memory, write_pub failed).
 */
int held_put(struct held *h, const struct cache_key *k, const unsigned char *orig, size_t len,
	     const char *orig_ext, const char *pub_ext, int (*write_pub)(const char *path, void *arg),
	     void *arg, int width, int height, char *err, size_t errlen);

/*
 * Tries to store the answer held for k: 1 stored (and dropped from memory,
 * *info set), 0 none held, -1 the store still fails (err says why; the
 * answer stays held).
 */
int held_store(struct held *h, struct store *s, const struct cache_key *k, struct object_info *info,
	       char *err, size_t errlen);

/* Number of answers held now, and their bytes (what the store needs to take them). */
int held_count(struct held *h);
size_t held_bytes(struct held *h);

#endif
