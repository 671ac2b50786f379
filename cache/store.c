/*
 * store.c - the store folder, the object files and their SQLite index.
 *
 * Invariants (each one tested in tests/unit/test_store.c):
 *  - every folder of the store is mode 0700 whatever the umask; a store
 *    folder owned by someone else or writable by group/others is refused;
 *  - an object file MUST be written to objects/.tmp-XXXXXX, fsynced, renamed
 *    into place, and the objects folder fsynced, before its index row is
 *    inserted: a row never points at a half-written file;
 *  - a failed fsync is a failure, never retried (the data may be gone);
 *  - an object is never truncated or rewritten in place;
 *  - a row whose file vanished is a miss, and the row is dropped.
 *
 * The object index is reached through struct index_ops (cache/index.h);
 * the SQLite backend below is the local one.  state.db's connection and
 * lock live in struct store_db, which only this file can see; the journal
 * reaches its own tables through store_sql().
 *
 * File names: KEYHEX.PUB_EXT is the publishable file; the original is
 * KEYHEX.ORIG_EXT.  When both would share a name (the server sent a PNG and
 * we publish our own PNG with text chunks) the original is stored as
 * KEYHEX.orig.png, and the orig_ext column holds "orig.png".
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <pthread.h>
#include <sqlite3.h>

#include "api/errbuf.h"
#include "cache/store.h"

struct store_db {
	sqlite3 *h;			/* STORE/state.db, WAL, synchronous=FULL */
	pthread_mutex_t mu;		/* serialises use of h */
};

/* snprintf into a fixed buffer; -1 (ENAMETOOLONG) on truncation. */
static int fmt_path(char *buf, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fmt_path(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= len) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

static char *path_join(const char *a, const char *b)
{
	char *p;

	if (asprintf(&p, "%s/%s", a, b) < 0)
		return NULL;
	return p;
}

/*
 * Makes dir exist as a private folder: created 0700 and chmod'ed (umask
 * proof), or, when it already exists, checked for owner and mode.
 */
static int private_dir(const char *dir, char *err, size_t errlen)
{
	struct stat st;

	if (mkdir(dir, 0700) == 0) {
		if (chmod(dir, 0700) < 0) {
			errbuf_set(err, errlen, "store: chmod 0700 %s: %s", dir, strerror(errno));
			return -1;
		}
		return 0;
	}
	if (errno != EEXIST) {
		errbuf_set(err, errlen, "store: cannot create %s: %s", dir, strerror(errno));
		return -1;
	}
	if (stat(dir, &st) < 0) {
		errbuf_set(err, errlen, "store: %s: %s", dir, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		errbuf_set(err, errlen, "store: %s exists and is not a folder", dir);
		return -1;
	}
	if (st.st_uid != geteuid()) {
		errbuf_set(err, errlen, "store: %s is owned by uid %u, not by you (uid %u); refusing to use it",
		       dir, (unsigned)st.st_uid, (unsigned)geteuid());
		return -1;
	}
	if (st.st_mode & 022) {
		errbuf_set(err, errlen, "store: %s is writable by group or others (mode %04o); "
		       "run 'chmod 700 %s' first", dir, (unsigned)(st.st_mode & 07777), dir);
		return -1;
	}
	return 0;
}

/* mkdir -p for the parents of dir (not dir itself), private when created. */
static int make_parents(const char *dir, char *err, size_t errlen)
{
	char *p = strdup(dir);
	char *s;

	if (!p) {
		errbuf_set(err, errlen, "store: out of memory");
		return -1;
	}
	for (s = p + 1; (s = strchr(s, '/')) != NULL; s++) {
		*s = '\0';
		if (mkdir(p, 0700) < 0 && errno != EEXIST) {
			errbuf_set(err, errlen, "store: cannot create %s: %s", p, strerror(errno));
			free(p);
			return -1;
		}
		*s = '/';
	}
	free(p);
	return 0;
}

/* --- state.db ----------------------------------------------------------------- */

static int db_exec(sqlite3 *db, const char *sql, char *err, size_t errlen)
{
	char *msg = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		errbuf_set(err, errlen, "store: state.db: %s", msg ? msg : "error");
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

static void db_close(struct store_db *db)
{
	sqlite3_close(db->h);
	pthread_mutex_destroy(&db->mu);
	free(db);
}

/* Opens state.db (private, WAL, synchronous=FULL, objects table) into s->db. */
static int db_open(struct store *s, const char *db_path, char *err, size_t errlen)
{
	struct store_db *db = calloc(1, sizeof(*db));

	if (!db) {
		errbuf_set(err, errlen, "store: out of memory");
		return -1;
	}
	if (pthread_mutex_init(&db->mu, NULL) != 0) {
		free(db);
		errbuf_set(err, errlen, "store: mutex init failed");
		return -1;
	}
	if (sqlite3_open_v2(db_path, &db->h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
			    SQLITE_OPEN_FULLMUTEX, NULL) != SQLITE_OK) {
		errbuf_set(err, errlen, "store: cannot open %s: %s", db_path,
		       db->h ? sqlite3_errmsg(db->h) : "out of memory");
		goto out_close;
	}
	/* state.db and its WAL hold paths and prompts' job names: private. */
	if (chmod(db_path, 0600) < 0) {
		errbuf_set(err, errlen, "store: chmod %s: %s", db_path, strerror(errno));
		goto out_close;
	}
	sqlite3_busy_timeout(db->h, 5000);
	if (db_exec(db->h, "PRAGMA journal_mode=WAL;", err, errlen) < 0 ||
	    db_exec(db->h, "PRAGMA synchronous=FULL;", err, errlen) < 0 ||
	    db_exec(db->h, "CREATE TABLE IF NOT EXISTS objects("
		    "key TEXT PRIMARY KEY, orig_ext TEXT NOT NULL, pub_ext TEXT NOT NULL,"
		    "bytes INTEGER, width INTEGER, height INTEGER, created INTEGER);", err, errlen) < 0)
		goto out_close;
	s->db = db;
	return 0;
out_close:
	db_close(db);
	return -1;
}

static void bind_vals(sqlite3_stmt *st, const struct store_val *v, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		switch (v[i].t) {
		case SVT_NULL:
			sqlite3_bind_null(st, i + 1);
			break;
		case SVT_TEXT:
			sqlite3_bind_text(st, i + 1, v[i].s, -1, SQLITE_STATIC);
			break;
		case SVT_INT:
			sqlite3_bind_int64(st, i + 1, (sqlite3_int64)v[i].i);
			break;
		case SVT_REAL:
			sqlite3_bind_double(st, i + 1, v[i].d);
			break;
		}
	}
}

#define SQL_MAX_COLS 16

/* Runs one statement on db; caller holds db->mu.  See store_sql. */
static int db_run(struct store_db *db, const char *sql, const struct store_val *binds, int nbinds,
		  int (*row)(const struct store_val *cols, int ncols, void *arg), void *arg,
		  long long *changes)
{
	struct store_val cols[SQL_MAX_COLS];
	sqlite3_stmt *st = NULL;
	int rc, ret = -1, n, i;

	if (changes)
		*changes = 0;
	if (sqlite3_prepare_v2(db->h, sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	bind_vals(st, binds, nbinds);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		n = sqlite3_column_count(st);
		if (n > SQL_MAX_COLS)
			n = SQL_MAX_COLS;
		for (i = 0; i < n; i++) {
			memset(&cols[i], 0, sizeof(cols[i]));
			switch (sqlite3_column_type(st, i)) {
			case SQLITE_NULL:
				cols[i].t = SVT_NULL;
				break;
			case SQLITE_INTEGER:
				cols[i].t = SVT_INT;
				cols[i].i = sqlite3_column_int64(st, i);
				cols[i].d = (double)cols[i].i;
				break;
			case SQLITE_FLOAT:
				cols[i].t = SVT_REAL;
				cols[i].d = sqlite3_column_double(st, i);
				cols[i].i = (long long)cols[i].d;
				break;
			default:
				cols[i].t = SVT_TEXT;
				cols[i].s = (const char *)sqlite3_column_text(st, i);
				break;
			}
		}
		if (row) {
			ret = row(cols, n, arg);
			if (ret != 0)
				goto out_finalize;
		}
	}
	/* A statement with RETURNING commits when stepped to its end, so always step to it. */
	ret = rc == SQLITE_DONE ? 0 : -1;
	if (ret == 0 && changes)
		*changes = sqlite3_changes(db->h);
out_finalize:
	sqlite3_finalize(st);
	return ret;
}

int store_sql(struct store *s, const char *sql, const struct store_val *binds, int nbinds,
	      int (*row)(const struct store_val *cols, int ncols, void *arg), void *arg,
	      long long *changes)
{
	int rc;

	if (!s->db)
		return -1;
	pthread_mutex_lock(&s->db->mu);
	rc = db_run(s->db, sql, binds, nbinds, row, arg, changes);
	pthread_mutex_unlock(&s->db->mu);
	return rc;
}

int store_schema(struct store *s, const char *const *must, size_t nmust, const char *const *may,
		 size_t nmay)
{
	size_t i;
	int rc = 0;

	if (!s->db)
		return -1;
	pthread_mutex_lock(&s->db->mu);
	if (db_run(s->db, "BEGIN IMMEDIATE;", NULL, 0, NULL, NULL, NULL) != 0) {
		pthread_mutex_unlock(&s->db->mu);
		return -1;
	}
	for (i = 0; i < nmust && rc == 0; i++)
		rc = db_run(s->db, must[i], NULL, 0, NULL, NULL, NULL);
	for (i = 0; i < nmay && rc == 0; i++)
		db_run(s->db, may[i], NULL, 0, NULL, NULL, NULL);
	if (rc == 0)
		rc = db_run(s->db, "COMMIT;", NULL, 0, NULL, NULL, NULL);
	if (rc != 0)
		db_run(s->db, "ROLLBACK;", NULL, 0, NULL, NULL, NULL);
	pthread_mutex_unlock(&s->db->mu);
	return rc;
}

/* --- the SQLite object index (struct index_ops) -------------------------------- */

static void copy_text(char *dst, size_t len, const struct store_val *v)
{
	snprintf(dst, len, "%s", v->t == SVT_TEXT && v->s ? v->s : "");
}

static void row_from_cols(const struct store_val *c, struct index_row *r)
{
	memset(r, 0, sizeof(*r));
	copy_text(r->key, sizeof(r->key), &c[0]);
	copy_text(r->orig_ext, sizeof(r->orig_ext), &c[1]);
	copy_text(r->pub_ext, sizeof(r->pub_ext), &c[2]);
	r->bytes = c[3].i;
	r->width = (int)c[4].i;
	r->height = (int)c[5].i;
	r->created = c[6].i;
}

static int get_one(const struct store_val *c, int n, void *arg)
{
	if (n < 7)
		return -1;
	row_from_cols(c, arg);
	return 1;
}

#define ROW_COLS "key, orig_ext, pub_ext, bytes, width, height, created"

static int sqlite_get(void *st, const char *key_hex, struct index_row *row)
{
	struct store_db *db = st;
	struct store_val k = SV_TXT(key_hex);
	int rc;

	pthread_mutex_lock(&db->mu);
	rc = db_run(db, "SELECT " ROW_COLS " FROM objects WHERE key = ?;", &k, 1, get_one, row, NULL);
	pthread_mutex_unlock(&db->mu);
	return rc;	/* 1 row, 0 none, -1 error */
}

static int sqlite_put(void *st, const struct index_row *r, char *err, size_t errlen)
{
	struct store_db *db = st;
	struct store_val v[7] = {
		SV_TXT(r->key), SV_TXT(r->orig_ext), SV_TXT(r->pub_ext), SV_INT(r->bytes),
		SV_INT(r->width), SV_INT(r->height), SV_INT(r->created),
	};
	int rc;

	pthread_mutex_lock(&db->mu);
	rc = db_run(db, "INSERT OR REPLACE INTO objects(" ROW_COLS ") VALUES(?,?,?,?,?,?,?);",
		    v, 7, NULL, NULL, NULL);
	if (rc != 0)
		errbuf_set(err, errlen, "store: index insert: %s", sqlite3_errmsg(db->h));
	pthread_mutex_unlock(&db->mu);
	return rc;
}

static int sqlite_drop(void *st, const char *key_hex)
{
	struct store_db *db = st;
	struct store_val k = SV_TXT(key_hex);
	int rc;

	pthread_mutex_lock(&db->mu);
	rc = db_run(db, "DELETE FROM objects WHERE key = ?;", &k, 1, NULL, NULL, NULL);
	pthread_mutex_unlock(&db->mu);
	return rc;
}

struct rows {
	struct index_row *r;
	size_t n, cap;
};

static int collect_row(const struct store_val *c, int n, void *arg)
{
	struct rows *rs = arg;
	struct index_row *grown;

	if (n < 7)
		return -1;
	if (rs->n == rs->cap) {
		size_t cap = rs->cap ? rs->cap * 2 : 64;

		grown = realloc(rs->r, cap * sizeof(*rs->r));
		if (!grown)
			return -1;
		rs->r = grown;
		rs->cap = cap;
	}
	row_from_cols(c, &rs->r[rs->n++]);
	return 0;
}

static int sqlite_foreach(void *st, int (*fn)(const struct index_row *row, void *arg), void *arg)
{
	struct store_db *db = st;
	struct rows rs = { 0 };
	size_t i;
	int rc;

	/* Collect first, call fn unlocked: fn may use the store itself. */
	pthread_mutex_lock(&db->mu);
	rc = db_run(db, "SELECT " ROW_COLS " FROM objects ORDER BY created, key;", NULL, 0,
		    collect_row, &rs, NULL);
	pthread_mutex_unlock(&db->mu);
	for (i = 0; rc == 0 && i < rs.n; i++)
		rc = fn(&rs.r[i], arg);
	free(rs.r);
	return rc;
}

static void sqlite_close(void *st)
{
	(void)st;	/* state.db belongs to the store: store_close closes it */
}

static const struct index_ops sqlite_index_ops = {
	.name = "sqlite",
	.get = sqlite_get,
	.put = sqlite_put,
	.drop = sqlite_drop,
	.foreach = sqlite_foreach,
	.close = sqlite_close,
};

int store_open(struct store *s, const char *dir, char *err, size_t errlen)
{
	char *cache_dir = NULL, *db_path = NULL;
	char real[PATH_MAX];

	memset(s, 0, sizeof(*s));
	if (!dir || !*dir) {
		errbuf_set(err, errlen, "store: no store folder given");
		return -1;
	}
	if (make_parents(dir, err, errlen) < 0 || private_dir(dir, err, errlen) < 0)
		return -1;
	if (!realpath(dir, real)) {
		errbuf_set(err, errlen, "store: %s: %s", dir, strerror(errno));
		return -1;
	}
	s->dir = strdup(real);
	s->tree_dir = path_join(real, "tree");
	cache_dir = path_join(real, "cache");
	s->objects_dir = path_join(real, "cache/objects");
	db_path = path_join(real, "state.db");
	if (!s->dir || !s->tree_dir || !cache_dir || !s->objects_dir || !db_path) {
		errbuf_set(err, errlen, "store: out of memory");
		goto out_free_paths;
	}
	if (private_dir(s->tree_dir, err, errlen) < 0 || private_dir(cache_dir, err, errlen) < 0 ||
	    private_dir(s->objects_dir, err, errlen) < 0)
		goto out_free_paths;

	if (db_open(s, db_path, err, errlen) < 0)
		goto out_free_paths;
	s->index = &sqlite_index_ops;
	s->index_state = s->db;
	s->clk = &clock_real;
	free(cache_dir);
	free(db_path);
	return 0;

out_free_paths:
	free(cache_dir);
	free(db_path);
	free(s->dir);
	free(s->tree_dir);
	free(s->objects_dir);
	memset(s, 0, sizeof(*s));
	return -1;
}

void store_close(struct store *s)
{
	if (!s->dir)
		return;
	if (s->index)
		s->index->close(s->index_state);
	if (s->db)
		db_close(s->db);
	free(s->dir);
	free(s->tree_dir);
	free(s->objects_dir);
	memset(s, 0, sizeof(*s));
}

/* Fills the two paths and ext of info from the row values. */
static int fill_paths(const struct store *s, const char *hex, const char *orig_ext,
		      const char *pub_ext, struct object_info *info)
{
	if (!orig_ext || !pub_ext || strlen(pub_ext) >= sizeof(info->ext)) {
		errno = EINVAL;
		return -1;
	}
	snprintf(info->ext, sizeof(info->ext), "%s", pub_ext);
	if (fmt_path(info->path, sizeof(info->path), "%s/%s.%s", s->objects_dir, hex, pub_ext) < 0 ||
	    fmt_path(info->orig_path, sizeof(info->orig_path), "%s/%s.%s", s->objects_dir, hex, orig_ext) < 0)
		return -1;
	return 0;
}

int store_lookup(struct store *s, const struct cache_key *k, struct object_info *info)
{
	char hex[KEY_HEX_LEN];
	struct object_info tmp;
	struct index_row row;
	struct stat sb, so;
	int rc;

	key_hex(k, hex);
	memset(&tmp, 0, sizeof(tmp));
	rc = s->index->get(s->index_state, hex, &row);
	if (rc != 1)
		return rc;
	if (fill_paths(s, hex, row.orig_ext, row.pub_ext, &tmp) < 0)
		return -1;
	tmp.width = row.width;
	tmp.height = row.height;
	/* The index is a hint; the files are the truth. */
	if (stat(tmp.path, &sb) < 0 || !S_ISREG(sb.st_mode) ||
	    stat(tmp.orig_path, &so) < 0 || !S_ISREG(so.st_mode)) {
		s->index->drop(s->index_state, hex);
		return 0;
	}
	tmp.bytes = (long long)sb.st_size;
	*info = tmp;
	return 1;
}

static int write_all(int fd, const unsigned char *b, size_t len)
{
	while (len) {
		ssize_t n = write(fd, b, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		b += n;
		len -= (size_t)n;
	}
	return 0;
}

/* fsync of a file by path (after write_pub wrote it). */
static int fsync_path(const char *path, int flags)
{
	int fd = open(path, flags | O_CLOEXEC);
	int rc, saved;

	if (fd < 0)
		return -1;
	rc = fsync(fd);
	saved = errno;
	close(fd);
	errno = saved;
	return rc;
}

/* Adds or replaces the index row of hex for the files of o.  0, or -1 with err. */
static int index_insert(struct store *s, const char *hex, const char *orig_name,
			const struct object_info *o, char *err, size_t errlen)
{
	struct index_row row;

	memset(&row, 0, sizeof(row));
	memcpy(row.key, hex, KEY_HEX_LEN);
	snprintf(row.orig_ext, sizeof(row.orig_ext), "%s", orig_name);
	snprintf(row.pub_ext, sizeof(row.pub_ext), "%s", o->ext);
	row.bytes = o->bytes;
	row.width = o->width;
	row.height = o->height;
	row.created = (long long)s->clk->wall(s->clk->ctx);
	return s->index->put(s->index_state, &row, err, errlen);
}

int store_put(struct store *s, const struct cache_key *k, const unsigned char *orig, size_t len,
	      const char *orig_ext, const char *pub_ext,
	      int (*write_pub)(const char *tmp_path, void *arg), void *arg,
	      int width, int height, struct object_info *info, char *err, size_t errlen)
{
	char hex[KEY_HEX_LEN];
	char tmp_orig[4096] = "", tmp_pub[4096] = "";
	char orig_name[16];
	struct object_info o;
	struct stat sb;
	int fd = -1;

	memset(&o, 0, sizeof(o));
	key_hex(k, hex);
	if (!orig_ext || !pub_ext || strchr(orig_ext, '/') || strchr(pub_ext, '/') ||
	    strlen(orig_ext) > 5 || strlen(pub_ext) > 5) {
		errbuf_set(err, errlen, "store: bad extension");
		return -1;
	}
	/* The original and our own PNG must not share one name. */
	if (write_pub && strcmp(orig_ext, pub_ext) == 0)
		snprintf(orig_name, sizeof(orig_name), "orig.%s", orig_ext);
	else
		snprintf(orig_name, sizeof(orig_name), "%s", orig_ext);
	if (fill_paths(s, hex, orig_name, write_pub ? pub_ext : orig_name, &o) < 0 ||
	    fmt_path(tmp_orig, sizeof(tmp_orig), "%s/.tmp-XXXXXX", s->objects_dir) < 0) {
		errbuf_set(err, errlen, "store: path too long");
		return -1;
	}

	/* 1. the original bytes */
	fd = mkstemp(tmp_orig);
	if (fd < 0) {
		errbuf_set(err, errlen, "store: cannot create a temp file in %s: %s", s->objects_dir, strerror(errno));
		tmp_orig[0] = '\0';
		goto out_unlink_tmp;
	}
	if (fchmod(fd, 0644) < 0 || write_all(fd, orig, len) < 0) {
		errbuf_set(err, errlen, "store: writing %s: %s", tmp_orig, strerror(errno));
		goto out_close_fd;
	}
	if (fsync(fd) < 0) {
		/* Never retried: a second fsync may "succeed" after the data was dropped. */
		errbuf_set(err, errlen, "store: fsync %s failed: %s", tmp_orig, strerror(errno));
		goto out_close_fd;
	}
	if (close(fd) < 0) {
		fd = -1;
		errbuf_set(err, errlen, "store: close %s: %s", tmp_orig, strerror(errno));
		goto out_unlink_tmp;
	}
	fd = -1;

	/* 2. the publishable file, written by the caller into its own temp */
	if (write_pub) {
		if (fmt_path(tmp_pub, sizeof(tmp_pub), "%s/.tmp-XXXXXX", s->objects_dir) < 0) {
			errbuf_set(err, errlen, "store: path too long");
			goto out_unlink_tmp;
		}
		fd = mkstemp(tmp_pub);
		if (fd < 0) {
			errbuf_set(err, errlen, "store: cannot create a temp file: %s", strerror(errno));
			tmp_pub[0] = '\0';
			goto out_unlink_tmp;
		}
		if (fchmod(fd, 0644) < 0) {
			errbuf_set(err, errlen, "store: chmod %s: %s", tmp_pub, strerror(errno));
			goto out_close_fd;
		}
		close(fd);
		fd = -1;
		if (write_pub(tmp_pub, arg) < 0) {
			errbuf_set(err, errlen, "store: could not write the publishable file");
			goto out_unlink_tmp;
		}
		if (fsync_path(tmp_pub, O_RDONLY) < 0) {
			errbuf_set(err, errlen, "store: fsync %s failed: %s", tmp_pub, strerror(errno));
			goto out_unlink_tmp;
		}
		if (stat(tmp_pub, &sb) < 0) {
			errbuf_set(err, errlen, "store: %s: %s", tmp_pub, strerror(errno));
			goto out_unlink_tmp;
		}
	}

	/* 3. rename both into place, then make the renames durable */
	if (rename(tmp_orig, o.orig_path) < 0) {
		errbuf_set(err, errlen, "store: rename to %s: %s", o.orig_path, strerror(errno));
		goto out_unlink_tmp;
	}
	tmp_orig[0] = '\0';
	if (write_pub) {
		if (rename(tmp_pub, o.path) < 0) {
			errbuf_set(err, errlen, "store: rename to %s: %s", o.path, strerror(errno));
			goto out_unlink_tmp;
		}
		tmp_pub[0] = '\0';
		o.bytes = (long long)sb.st_size;
	} else {
		o.bytes = (long long)len;
	}
	if (fsync_path(s->objects_dir, O_RDONLY | O_DIRECTORY) < 0) {
		errbuf_set(err, errlen, "store: fsync of %s failed: %s", s->objects_dir, strerror(errno));
		goto out_unlink_tmp;
	}
	o.width = width;
	o.height = height;

	/* 4. only now does the index learn about it */
	if (index_insert(s, hex, orig_name, &o, err, errlen) < 0)
		return -1;
	if (info)
		*info = o;
	return 0;

out_close_fd:
	close(fd);
out_unlink_tmp:
	if (tmp_orig[0])
		unlink(tmp_orig);
	if (tmp_pub[0])
		unlink(tmp_pub);
	return -1;
}

/* Links src to dst, replacing a stale dst; 0 or -1 with errno. */
static int link_over(const char *src, const char *dst)
{
	if (link(src, dst) == 0)
		return 0;
	if (errno != EEXIST)
		return -1;
	if (unlink(dst) < 0)
		return -1;
	return link(src, dst);
}

int store_alias(struct store *s, const struct cache_key *k, const struct object_info *old,
		struct object_info *info, char *err, size_t errlen)
{
	char hex[KEY_HEX_LEN];
	const char *base = strrchr(old->orig_path, '/'), *orig_name;
	struct object_info o;

	key_hex(k, hex);
	/* The original's name is KEYHEX.EXT or KEYHEX.orig.EXT: keep the part after the key. */
	orig_name = base ? strchr(base, '.') : NULL;
	if (!orig_name || strlen(orig_name + 1) > 9) {
		errbuf_set(err, errlen, "store: cannot read the name of %s", old->orig_path);
		return -1;
	}
	orig_name++;
	o = *old;
	if (fill_paths(s, hex, orig_name, old->ext, &o) < 0) {
		errbuf_set(err, errlen, "store: path too long");
		return -1;
	}
	if (link_over(old->orig_path, o.orig_path) < 0 ||
	    (strcmp(old->path, old->orig_path) != 0 && link_over(old->path, o.path) < 0)) {
		errbuf_set(err, errlen, "store: linking %s under %s: %s", old->path, hex, strerror(errno));
		return -1;
	}
	if (fsync_path(s->objects_dir, O_RDONLY | O_DIRECTORY) < 0) {
		errbuf_set(err, errlen, "store: fsync of %s failed: %s", s->objects_dir, strerror(errno));
		return -1;
	}
	if (index_insert(s, hex, orig_name, &o, err, errlen) < 0)
		return -1;
	if (info)
		*info = o;
	return 0;
}

/* Copies src to dst (which must not exist) and fsyncs it. 0 or -1 with errno. */
static int copy_file(const char *src, const char *dst)
{
	unsigned char buf[65536];
	int in, out, saved;
	ssize_t n;

	in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return -1;
	out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (out < 0) {
		saved = errno;
		close(in);
		errno = saved;
		return -1;
	}
	for (;;) {
		n = read(in, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (write_all(out, buf, (size_t)n) < 0) {
			n = -1;
			break;
		}
	}
	if (n == 0 && fsync(out) < 0)
		n = -1;
	saved = errno;
	close(in);
	if (close(out) < 0 && n == 0) {
		saved = errno;
		n = -1;
	}
	if (n < 0) {
		unlink(dst);
		errno = saved;
		return -1;
	}
	return 0;
}

int store_link(struct store *s, const struct object_info *o, const char *dst)
{
	(void)s;
	if (link(o->path, dst) == 0)
		return 0;
	if (errno == EXDEV || errno == EMLINK || errno == EPERM || errno == ENOTSUP)
		return copy_file(o->path, dst);
	return -1;
}

struct walk_arg {
	struct store *s;
	int (*fn)(const char *keyhex, const struct object_info *o, void *arg);
	void *arg;
};

static int walk_row(const struct index_row *r, void *varg)
{
	struct walk_arg *w = varg;
	struct object_info o;

	if (strlen(r->key) != KEY_HEX_LEN - 1)
		return 0;
	memset(&o, 0, sizeof(o));
	if (fill_paths(w->s, r->key, r->orig_ext, r->pub_ext, &o) < 0)
		return 0;
	o.bytes = r->bytes;
	o.width = r->width;
	o.height = r->height;
	return w->fn(r->key, &o, w->arg);
}

int store_foreach(struct store *s, int (*fn)(const char *keyhex, const struct object_info *o, void *arg), void *arg)
{
	struct walk_arg w = { s, fn, arg };

	return s->index->foreach(s->index_state, walk_row, &w);
}

int store_forget(struct store *s, const char *key_hex)
{
	struct object_info o;
	struct index_row row;

	if (!key_hex || strlen(key_hex) != KEY_HEX_LEN - 1 || strchr(key_hex, '/'))
		return -1;
	memset(&o, 0, sizeof(o));
	if (s->index->get(s->index_state, key_hex, &row) == 1 &&
	    fill_paths(s, key_hex, row.orig_ext, row.pub_ext, &o) < 0)
		o.path[0] = o.orig_path[0] = '\0';
	if (s->index->drop(s->index_state, key_hex) < 0)
		return -1;
	if (o.path[0] && unlink(o.path) < 0 && errno != ENOENT)
		return -1;
	if (o.orig_path[0] && strcmp(o.orig_path, o.path) != 0 && unlink(o.orig_path) < 0 && errno != ENOENT)
		return -1;
	return 0;
}
