/*
 * team_index.c - the cache-index seam (cache/index.h) shared by the team:
 * a key stored by one mount is a hit on every other.
 *
 * The local index (SQLite in state.db) stays in front: a local row is
 * answered at once.  A local miss asks bananafs.objects; a team row's bytes
 * (in the row with team_objects = db, else in the shared folder as
 * KEYHEX.EXT) are fetched once into the local objects folder (temp file,
 * fsync, rename, fsync of the folder, as cache/store.c writes its own), the
 * local row is put, and the object is then linked as any local one.  A
 * put writes the local row, then publishes the object to the team (row and
 * bytes in one INSERT ... ON CONFLICT DO NOTHING: the first one stays).
 *
 * drop, foreach and gc concern this mount's copy only: one machine's
 * `bananactl cache gc` never removes the team's objects.  When the team
 * database is away, get answers from the local index alone (a miss: the
 * pipeline then waits at the budget for a reservation it cannot get).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/errbuf.h"
#include "cache/index.h"
#include "cache/log.h"
#include "cache/team.h"
#include "cache/team_db.h"

struct team_index {
	struct team_db *db;
	const struct index_ops *local;
	void *local_state;
	char *objects_dir;		/* this mount's STORE/cache/objects */
	char *folder;			/* team_objects folder; NULL = bytes in the database */
};

static int
read_file(const char *path, unsigned char **buf, size_t *len)
{
	struct stat sb;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t got = 0;
	ssize_t n;

	if (fd < 0)
		return -1;
	if (fstat(fd, &sb) < 0 || (*buf = malloc((size_t)sb.st_size + 1)) == NULL) {
		close(fd);
		return -1;
	}
	while (got < (size_t)sb.st_size && (n = read(fd, *buf + got, (size_t)sb.st_size - got)) > 0)
		got += (size_t)n;
	close(fd);
	if (got != (size_t)sb.st_size) {
		free(*buf);
		return -1;
	}
	*len = got;
	return 0;
}

/* dir/name written whole: temp file, fsync, rename, fsync of dir. */
static int
write_file(const char *dir, const char *name, const unsigned char *b, size_t len)
{
	char tmp[4096], dst[4096];
	int fd, dfd;
	size_t done = 0;
	ssize_t n;

	if (snprintf(tmp, sizeof(tmp), "%s/.tmp-team-XXXXXX", dir) >= (int)sizeof(tmp) ||
	    snprintf(dst, sizeof(dst), "%s/%s", dir, name) >= (int)sizeof(dst))
		return -1;
	if ((fd = mkostemp(tmp, O_CLOEXEC)) < 0)
		return -1;
	while (done < len && (n = write(fd, b + done, len - done)) > 0)
		done += (size_t)n;
	if (done != len || fchmod(fd, 0600) < 0 || fsync(fd) < 0 || close(fd) < 0) {
		if (done == len)
			close(fd);
		unlink(tmp);
		return -1;
	}
	if (rename(tmp, dst) < 0) {
		unlink(tmp);
		return -1;
	}
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return 0;
}

/* The object's files: "KEY.orig_ext" and, when it differs, "KEY.pub_ext". */
static int
file_names(const struct index_row *row, char *orig, char *pub, size_t len)
{
	if (snprintf(orig, len, "%s.%s", row->key, row->orig_ext) >= (int)len ||
	    snprintf(pub, len, "%s.%s", row->key, row->pub_ext) >= (int)len)
		return -1;
	return 0;
}

/* Copies one file from the team folder into the local objects folder. */
static int
copy_in(struct team_index *x, const char *name)
{
	char src[4096];
	unsigned char *b;
	size_t len;
	int rc;

	if (snprintf(src, sizeof(src), "%s/%s", x->folder, name) >= (int)sizeof(src) ||
	    read_file(src, &b, &len) < 0)
		return -1;
	rc = write_file(x->objects_dir, name, b, len);
	free(b);
	return rc;
}

/* A team row's bytes into the local objects folder; 0 or -1. */
static int
fetch_in(struct team_index *x, const struct index_row *row)
{
	char orig[128], pub[128], err[256];
	const char *p[1] = { row->key };
	const int fmt[1] = { 0 };
	bool same = strcmp(row->orig_ext, row->pub_ext) == 0;
	PGresult *r;
	int rc = -1;

	if (file_names(row, orig, pub, sizeof(orig)) < 0)
		return -1;
	if (x->folder != NULL)
		return copy_in(x, orig) < 0 || (!same && copy_in(x, pub) < 0) ? -1 : 0;
	/* Binary results: the bytes as they are, no escaping. */
	r = team_db_execb(x->db, "SELECT orig, pub FROM bananafs.objects WHERE key = $1 AND orig IS NOT NULL",
			  1, p, NULL, fmt, 1, err, sizeof(err));
	if (r == NULL)
		return -1;
	if (PQntuples(r) == 1 &&
	    write_file(x->objects_dir, orig, (const unsigned char *)PQgetvalue(r, 0, 0),
		       (size_t)PQgetlength(r, 0, 0)) == 0 &&
	    (same || write_file(x->objects_dir, pub, (const unsigned char *)PQgetvalue(r, 0, 1),
				(size_t)PQgetlength(r, 0, 1)) == 0))
		rc = 0;
	PQclear(r);
	return rc;
}

static int
tx_get(void *st, const char *key_hex, struct index_row *row)
{
	struct team_index *x = st;
	const char *p[1] = { key_hex };
	char err[256];
	PGresult *r;
	int rc;

	rc = x->local->get(x->local_state, key_hex, row);
	if (rc != 0)
		return rc;
	r = team_db_exec(x->db, "SELECT orig_ext, pub_ext, bytes, width, height, "
			 "extract(epoch FROM created)::bigint FROM bananafs.objects WHERE key = $1",
			 1, p, err, sizeof(err));
	if (r == NULL)
		return 0;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return 0;
	}
	memset(row, 0, sizeof(*row));
	snprintf(row->key, sizeof(row->key), "%s", key_hex);
	snprintf(row->orig_ext, sizeof(row->orig_ext), "%s", PQgetvalue(r, 0, 0));
	snprintf(row->pub_ext, sizeof(row->pub_ext), "%s", PQgetvalue(r, 0, 1));
	row->bytes = atoll(PQgetvalue(r, 0, 2));
	row->width = atoi(PQgetvalue(r, 0, 3));
	row->height = atoi(PQgetvalue(r, 0, 4));
	row->created = atoll(PQgetvalue(r, 0, 5));
	PQclear(r);
	if (strchr(row->orig_ext, '/') != NULL || strchr(row->pub_ext, '/') != NULL ||
	    fetch_in(x, row) < 0) {
		log_warnx("team: the team's object %s could not be fetched into the local store", key_hex);
		return 0;
	}
	if (x->local->put(x->local_state, row, err, sizeof(err)) < 0) {
		log_warnx("team: %s", err);
		return 0;
	}
	return 1;
}

static const char publish_sql[] =
	"INSERT INTO bananafs.objects (key, orig_ext, pub_ext, width, height, bytes, orig, pub, mount) "
	"VALUES ($1, $2, $3, $4::integer, $5::integer, $6::bigint, $7::bytea, $8::bytea, $9) "
	"ON CONFLICT (key) DO NOTHING";

/* bytea's text form: "\x" and two hex digits a byte.  malloc'd, or NULL. */
static char *
bytea_hex(const unsigned char *b, size_t len)
{
	static const char digits[] = "0123456789abcdef";
	char *s = malloc(2 * len + 3);

	if (s == NULL)
		return NULL;
	s[0] = '\\';
	s[1] = 'x';
	for (size_t i = 0; i < len; i++) {
		s[2 + 2 * i] = digits[b[i] >> 4];
		s[3 + 2 * i] = digits[b[i] & 15];
	}
	s[2 + 2 * len] = '\0';
	return s;
}

/*
 * The server is away: the row goes into team_db's queue, in text form, so
 * it is written before the end of our claim (queued after it) tells the
 * waiting machines to look for it.
 */
static void
defer_publish(struct team_index *x, const char **p, const unsigned char *ob, size_t olen,
	      const unsigned char *pb, size_t plen)
{
	const char *q[9];
	char *oh = NULL, *ph = NULL;

	memcpy(q, p, sizeof(q));
	if (x->folder == NULL) {
		oh = bytea_hex(ob, olen);
		ph = bytea_hex(pb, plen);
		if (oh == NULL || ph == NULL) {
			log_warnx("team: out of memory: object %s stays local", p[0]);
			goto out;
		}
		q[6] = oh;
		q[7] = ph;
	}
	team_db_defer(x->db, publish_sql, 9, q);
out:
	free(oh);
	free(ph);
}

/* Publishes a local object to the team: the row, and its bytes (database or folder). */
static void
publish(struct team_index *x, const struct index_row *row)
{
	char orig[128], pub[128], path[4096], err[256], bytes[32], w[16], h[16];
	unsigned char *ob = NULL, *pb = NULL;
	size_t olen = 0, plen = 0;
	bool same = strcmp(row->orig_ext, row->pub_ext) == 0;
	PGresult *r;

	if (file_names(row, orig, pub, sizeof(orig)) < 0)
		return;
	snprintf(path, sizeof(path), "%s/%s", x->objects_dir, orig);
	if (read_file(path, &ob, &olen) < 0)
		return;
	snprintf(path, sizeof(path), "%s/%s", x->objects_dir, pub);
	if (!same && read_file(path, &pb, &plen) < 0) {
		free(ob);
		return;
	}
	if (same) {
		pb = ob;
		plen = olen;
	}
	if (x->folder != NULL) {
		if (write_file(x->folder, orig, ob, olen) < 0 ||
		    (!same && write_file(x->folder, pub, pb, plen) < 0)) {
			log_warn("team: cannot write object %s into team_objects %s", row->key, x->folder);
			goto out;
		}
	}
	snprintf(bytes, sizeof(bytes), "%lld", row->bytes);
	snprintf(w, sizeof(w), "%d", row->width);
	snprintf(h, sizeof(h), "%d", row->height);
	{
		const char *p[9] = { row->key, row->orig_ext, row->pub_ext, w, h, bytes,
				     x->folder ? NULL : (const char *)ob, x->folder ? NULL : (const char *)pb,
				     x->db->owner };
		const int len[9] = { 0, 0, 0, 0, 0, 0, (int)olen, (int)plen, 0 };
		const int fmt[9] = { 0, 0, 0, 0, 0, 0, 1, 1, 0 };

		r = team_db_execb(x->db, publish_sql, 9, p, len, fmt, 0, err, sizeof(err));
		if (r == NULL && !team_db_online(x->db))
			defer_publish(x, p, ob, olen, pb, plen);
		else if (r == NULL)
			log_warnx("team: object %s stays local: %s", row->key, err);
		PQclear(r);
	}
out:
	free(ob);
	if (!same)
		free(pb);
}

static int
tx_put(void *st, const struct index_row *row, char *err, size_t errlen)
{
	struct team_index *x = st;

	if (x->local->put(x->local_state, row, err, errlen) < 0)
		return -1;
	publish(x, row);
	return 0;
}

static int
tx_drop(void *st, const char *key_hex)
{
	struct team_index *x = st;

	return x->local->drop(x->local_state, key_hex);
}

static int
tx_foreach(void *st, int (*fn)(const struct index_row *row, void *arg), void *arg)
{
	struct team_index *x = st;

	return x->local->foreach(x->local_state, fn, arg);
}

static void
tx_close(void *st)
{
	struct team_index *x = st;

	x->local->close(x->local_state);
	free(x->objects_dir);
	free(x->folder);
	free(x);
}

static const struct index_ops team_index_ops = {
	.name = "team",
	.get = tx_get,
	.put = tx_put,
	.drop = tx_drop,
	.foreach = tx_foreach,
	.close = tx_close,
};

int
index_team_wrap(const struct index_ops **ops, void **state, struct team_db *db,
		const char *objects_dir, const char *folder, char *err, size_t errlen)
{
	struct team_index *x = calloc(1, sizeof(*x));

	if (x == NULL || (x->objects_dir = strdup(objects_dir)) == NULL ||
	    (folder != NULL && (x->folder = strdup(folder)) == NULL)) {
		if (x != NULL)
			free(x->objects_dir);
		free(x);
		errbuf_set(err, errlen, "team: out of memory");
		return -1;
	}
	if (folder != NULL && access(folder, W_OK | X_OK) < 0) {
		errbuf_set(err, errlen, "team_objects %s: %s", folder, strerror(errno));
		free(x->objects_dir);
		free(x->folder);
		free(x);
		return -1;
	}
	x->db = db;
	x->local = *ops;
	x->local_state = *state;
	*ops = &team_index_ops;
	*state = x;
	return 0;
}
