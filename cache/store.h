/*
 * store.h - the store folder and the object cache inside it.
 *
 * Layout (created mode 0700):
 *   STORE/tree/                the user's files below the fixed tree (passthrough backing)
 *   STORE/cache/objects/       KEYHEX.EXT  (original bytes as the server sent them)
 *                              KEYHEX.png  (the published PNG with text chunks; == original
 *                                           when the server sent PNG and output is "original")
 *   STORE/state.db             SQLite: object index, job journal, batch state
 *   STORE/ledger.jsonl         the ledger
 * Invariants: an object is written to a temp file, fsynced, renamed, and
 * its folder fsynced; it is never truncated or rewritten in place.
 */
#ifndef BANANAFS_CACHE_STORE_H
#define BANANAFS_CACHE_STORE_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <pthread.h>
#include "cache/key.h"

struct store {
	char *dir;			/* absolute path of STORE */
	char *tree_dir;			/* STORE/tree */
	char *objects_dir;		/* STORE/cache/objects */
	sqlite3 *db;			/* STORE/state.db, WAL, synchronous=FULL */
	pthread_mutex_t db_mu;		/* serialises use of db */
};

struct object_info {
	char path[4096];		/* the publishable file (PNG, or original per output_format) */
	char orig_path[4096];		/* the original bytes */
	char ext[8];			/* extension of path: "png", "jpg", "webp" */
	long long bytes;
	int width, height;
};

/* Creates missing folders (0700) and opens state.db.  0, or -1 with err. */
int store_open(struct store *s, const char *dir, char *err, size_t errlen);
void store_close(struct store *s);

/* 1 and *info when the object exists (index row and file present), 0 when not, -1 on error. */
int store_lookup(struct store *s, const struct cache_key *k, struct object_info *info);

/*
 * Adds an object: the original bytes, plus the publishable file written by
 * write_pub(path, arg) (the PNG with text chunks).  write_pub may be NULL
 * when the original is what gets published.  Atomic and durable.  0 or -1.
 */
int store_put(struct store *s, const struct cache_key *k, const unsigned char *orig, size_t len,
	      const char *orig_ext, const char *pub_ext,
	      int (*write_pub)(const char *tmp_path, void *arg), void *arg,
	      int width, int height, struct object_info *info, char *err, size_t errlen);

/*
 * Makes the object old (found under another key) also the object of k:
 * its files are hard-linked under k's name and k gets an index row, so
 * the next store_lookup(k) finds it.  For adopting objects of an older
 * key format (cache/upgrade.c).  0 and *info (may be NULL), or -1 with err.
 */
int store_alias(struct store *s, const struct cache_key *k, const struct object_info *old,
		struct object_info *info, char *err, size_t errlen);

/*
 * Places the object at dst, which must not exist: a hard link, or a fsynced
 * copy where links fail (EXDEV, EMLINK, EPERM).  Callers create dst under a
 * temp name and rename it into place, so a name never shows half a file.
 * 0, or -1 with errno set.
 */
int store_link(struct store *s, const struct object_info *o, const char *dst);

/* Walks every object: for cache stats / verify / gc. */
int store_foreach(struct store *s, int (*fn)(const char *keyhex, const struct object_info *o, void *arg), void *arg);

#endif
