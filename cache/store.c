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

#include "api/errbuf.h"
#include "cache/store.h"

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

	if (sqlite3_open_v2(db_path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
			    SQLITE_OPEN_FULLMUTEX, NULL) != SQLITE_OK) {
		errbuf_set(err, errlen, "store: cannot open %s: %s", db_path,
		       s->db ? sqlite3_errmsg(s->db) : "out of memory");
		goto out_close_db;
	}
	/* state.db and its WAL hold paths and prompts' job names: private. */
	if (chmod(db_path, 0600) < 0) {
		errbuf_set(err, errlen, "store: chmod %s: %s", db_path, strerror(errno));
		goto out_close_db;
	}
	sqlite3_busy_timeout(s->db, 5000);
	if (db_exec(s->db, "PRAGMA journal_mode=WAL;", err, errlen) < 0 ||
	    db_exec(s->db, "PRAGMA synchronous=FULL;", err, errlen) < 0 ||
	    db_exec(s->db, "CREATE TABLE IF NOT EXISTS objects("
		    "key TEXT PRIMARY KEY, orig_ext TEXT NOT NULL, pub_ext TEXT NOT NULL,"
		    "bytes INTEGER, width INTEGER, height INTEGER, created INTEGER);", err, errlen) < 0)
		goto out_close_db;
	if (pthread_mutex_init(&s->db_mu, NULL) != 0) {
		errbuf_set(err, errlen, "store: mutex init failed");
		goto out_close_db;
	}
	free(cache_dir);
	free(db_path);
	return 0;

out_close_db:
	sqlite3_close(s->db);
	s->db = NULL;
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
	if (s->db) {
		sqlite3_close(s->db);
		pthread_mutex_destroy(&s->db_mu);
	}
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

/* Deletes the index row of hex; caller holds db_mu. */
static void drop_row(struct store *s, const char *hex)
{
	sqlite3_stmt *st;

	if (sqlite3_prepare_v2(s->db, "DELETE FROM objects WHERE key = ?;", -1, &st, NULL) != SQLITE_OK)
		return;
	sqlite3_bind_text(st, 1, hex, -1, SQLITE_STATIC);
	sqlite3_step(st);
	sqlite3_finalize(st);
}

int store_lookup(struct store *s, const struct cache_key *k, struct object_info *info)
{
	char hex[KEY_HEX_LEN];
	struct object_info tmp;
	sqlite3_stmt *st = NULL;
	struct stat sb, so;
	int rc, ret = -1;

	key_hex(k, hex);
	memset(&tmp, 0, sizeof(tmp));
	pthread_mutex_lock(&s->db_mu);
	if (sqlite3_prepare_v2(s->db, "SELECT orig_ext, pub_ext, width, height FROM objects WHERE key = ?;",
			       -1, &st, NULL) != SQLITE_OK)
		goto out_unlock;
	sqlite3_bind_text(st, 1, hex, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		ret = 0;
		goto out_finalize;
	}
	if (rc != SQLITE_ROW)
		goto out_finalize;
	if (fill_paths(s, hex, (const char *)sqlite3_column_text(st, 0),
		       (const char *)sqlite3_column_text(st, 1), &tmp) < 0)
		goto out_finalize;
	tmp.width = sqlite3_column_int(st, 2);
	tmp.height = sqlite3_column_int(st, 3);
	sqlite3_finalize(st);
	st = NULL;
	/* The index is a hint; the files are the truth. */
	if (stat(tmp.path, &sb) < 0 || !S_ISREG(sb.st_mode) ||
	    stat(tmp.orig_path, &so) < 0 || !S_ISREG(so.st_mode)) {
		drop_row(s, hex);
		ret = 0;
		goto out_unlock;
	}
	tmp.bytes = (long long)sb.st_size;
	*info = tmp;
	ret = 1;
out_finalize:
	sqlite3_finalize(st);
out_unlock:
	pthread_mutex_unlock(&s->db_mu);
	return ret;
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
	sqlite3_stmt *st = NULL;
	int rc;

	pthread_mutex_lock(&s->db_mu);
	rc = sqlite3_prepare_v2(s->db, "INSERT OR REPLACE INTO objects(key, orig_ext, pub_ext, bytes, width,"
				" height, created) VALUES(?,?,?,?,?,?,?);", -1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(st, 1, hex, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, orig_name, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, o->ext, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 4, o->bytes);
		sqlite3_bind_int(st, 5, o->width);
		sqlite3_bind_int(st, 6, o->height);
		sqlite3_bind_int64(st, 7, (sqlite3_int64)time(NULL));
		rc = sqlite3_step(st);
		rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
	}
	if (rc != SQLITE_OK)
		errbuf_set(err, errlen, "store: index insert: %s", sqlite3_errmsg(s->db));
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->db_mu);
	return rc == SQLITE_OK ? 0 : -1;
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

struct row {
	char hex[KEY_HEX_LEN];
	struct object_info o;
};

int store_foreach(struct store *s, int (*fn)(const char *keyhex, const struct object_info *o, void *arg), void *arg)
{
	sqlite3_stmt *st = NULL;
	struct row *rows = NULL, *grown;
	size_t n = 0, cap = 0, i;
	int rc, ret = -1;

	/* Collect first, call fn unlocked: fn may use the store itself. */
	pthread_mutex_lock(&s->db_mu);
	if (sqlite3_prepare_v2(s->db, "SELECT key, orig_ext, pub_ext, bytes, width, height FROM objects"
			       " ORDER BY created, key;", -1, &st, NULL) != SQLITE_OK) {
		pthread_mutex_unlock(&s->db_mu);
		return -1;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *hex = (const char *)sqlite3_column_text(st, 0);

		if (!hex || strlen(hex) != KEY_HEX_LEN - 1)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			grown = realloc(rows, cap * sizeof(*rows));
			if (!grown)
				goto out_finalize;
			rows = grown;
		}
		memset(&rows[n], 0, sizeof(rows[n]));
		memcpy(rows[n].hex, hex, KEY_HEX_LEN);
		if (fill_paths(s, hex, (const char *)sqlite3_column_text(st, 1),
			       (const char *)sqlite3_column_text(st, 2), &rows[n].o) < 0)
			continue;
		rows[n].o.bytes = sqlite3_column_int64(st, 3);
		rows[n].o.width = sqlite3_column_int(st, 4);
		rows[n].o.height = sqlite3_column_int(st, 5);
		n++;
	}
	if (rc != SQLITE_DONE)
		goto out_finalize;
	ret = 0;
out_finalize:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->db_mu);
	for (i = 0; ret == 0 && i < n; i++) {
		rc = fn(rows[i].hex, &rows[i].o, arg);
		if (rc != 0)
			ret = rc;
	}
	free(rows);
	return ret;
}
