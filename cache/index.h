/*
 * index.h - the seam for the cache index: which keys have an object, and
 * under which file names.
 *
 * What it guarantees.  The index maps a cache key (hex) to one row: the
 * original's and the publishable file's extensions, size and pixel size.
 * get answers 1 (row), 0 (none) or -1 (the index failed: callers treat it
 * as a miss they may not pay for blindly; fetch.c fails the request).  put
 * is durable when it returns 0 and replaces a row of the same key.  drop
 * removes a row (0 also when there was none).  foreach walks every row,
 * oldest first; fn runs with no lock of the index held.  The object files
 * themselves are not the index's business: cache/store.c writes them
 * (temp, fsync, rename, fsync of the folder) BEFORE put, and a row whose
 * file is gone is a miss that store.c drops.  So the index may lag the
 * files, never lead them.
 *
 * Who calls it.  Only cache/store.c (store_lookup, store_put, store_forget,
 * store_foreach).  Everyone else - fetch.c, the batch route, bananactl
 * cache stats/verify/gc - goes through those store functions.
 *
 * What a shared backend must do.  Several mounts sharing a cache share the
 * index (e.g. a PostgreSQL table objects(key PRIMARY KEY, orig_ext,
 * pub_ext, bytes, width, height, created)) and the object files (a shared
 * folder, or an object store the backend fetches from into the local
 * objects folder before get answers 1).  put must commit before it
 * returns (INSERT ... ON CONFLICT (key) DO UPDATE); get must see every
 * committed put (no stale read-only replicas for the one lookup that
 * decides whether we pay).  created is the wall time of the put, used for
 * "oldest first" by gc.  The local backend is SQLite in STORE/state.db
 * (WAL, synchronous=FULL), implemented in cache/store.c.
 */
#ifndef BANANAFS_CACHE_INDEX_H
#define BANANAFS_CACHE_INDEX_H

#include <stddef.h>
#include "cache/key.h"

struct index_row {
	char key[KEY_HEX_LEN];		/* hex of the cache key */
	char orig_ext[16];		/* "jpg", "webp", "png", or "orig.png" */
	char pub_ext[8];		/* "png", or the original's when published as sent */
	long long bytes;		/* of the publishable file */
	int width, height;
	long long created;		/* wall seconds of the put */
};

struct index_ops {
	const char *name;		/* "sqlite", ... */
	int (*get)(void *st, const char *key_hex, struct index_row *row);
	int (*put)(void *st, const struct index_row *row, char *err, size_t errlen);
	int (*drop)(void *st, const char *key_hex);
	int (*foreach)(void *st, int (*fn)(const struct index_row *row, void *arg), void *arg);
	void (*close)(void *st);
};

#endif
