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
 *
 * SQLite stays inside store.c.  The object index is reached through its
 * seam (cache/index.h: struct index_ops, SQLite the local backend).  The
 * job journal and the batch route's rows (cache/journal.c) are this
 * mount's own crash state: a shared backend has no business with another
 * machine's queue, so they stay in the local state.db, in the same WAL and
 * under the same lock as the index (one fsync path, one file to back up).
 * They reach it through store_sql() below, which binds values and hands
 * back rows as plain values: no SQLite handle or type leaves store.c, and
 * bananactl reaches the index only through store_lookup/store_forget/
 * store_foreach.  (A separate journal.db would add a second connection, a
 * second lock and a second fsync per job for no gain.)
 */
#ifndef BANANAFS_CACHE_STORE_H
#define BANANAFS_CACHE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include "api/clock.h"
#include "cache/index.h"
#include "cache/key.h"

struct store_db;			/* STORE/state.db; opaque outside store.c */

struct store {
	char *dir;			/* absolute path of STORE */
	char *tree_dir;			/* STORE/tree */
	char *objects_dir;		/* STORE/cache/objects */
	struct store_db *db;		/* state.db (WAL, synchronous=FULL) and its lock */
	const struct index_ops *index;	/* the object index (SQLite in state.db by default) */
	void *index_state;
	const struct clock_ops *clk;	/* for the index rows' created time; clock_real by default */
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

/* Walks every object, oldest first: for cache stats / verify / gc.  fn may use the store. */
int store_foreach(struct store *s, int (*fn)(const char *keyhex, const struct object_info *o, void *arg), void *arg);

/*
 * Forgets the object of key_hex: the index row goes first (a file without a
 * row is never served), then the files.  0, or -1 when the row could not be
 * dropped (the files are then left alone).
 */
int store_forget(struct store *s, const char *key_hex);

/*
 * The local state.db for this mount's own tables (cache/journal.c).  One
 * statement: binds are bound in order, row() is called for each result
 * row with its columns as values (text valid during the call only; row()
 * runs under the database lock and must not call the store).  Returns 0
 * when the statement ran to the end, -1 on error, or row()'s non-zero
 * return.  *changes (may be NULL) gets the number of rows changed.
 */
enum store_val_type { SVT_NULL, SVT_TEXT, SVT_INT, SVT_REAL };
struct store_val {
	enum store_val_type t;
	const char *s;
	long long i;
	double d;
};
#define SV_TXT(x) ((struct store_val){ .t = (x) ? SVT_TEXT : SVT_NULL, .s = (x) })
#define SV_INT(x) ((struct store_val){ .t = SVT_INT, .i = (x) })
#define SV_REAL(x) ((struct store_val){ .t = SVT_REAL, .d = (x) })

int store_sql(struct store *s, const char *sql, const struct store_val *binds, int nbinds,
	      int (*row)(const struct store_val *cols, int ncols, void *arg), void *arg,
	      long long *changes);

/*
 * Creates or upgrades tables of state.db in one transaction, so a fresh
 * store pays one commit (one fsync) instead of one per statement: every
 * statement of must has to succeed (else nothing is kept and -1 is
 * returned); those of may are allowed to fail (ALTER TABLE ADD COLUMN of
 * a column the table already has).
 */
int store_schema(struct store *s, const char *const *must, size_t nmust, const char *const *may,
		 size_t nmay);

#endif
