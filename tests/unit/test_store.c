/*
 * test_store.c - the object store: put, lookup, link, durability rules; the
 * SQLite object index through its ops struct; store_forget; store_sql.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache/store.h"

static char tmpl[64];

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb; (void)flag; (void)ftw;
	return remove(p);
}

static int setup(void **state)
{
	(void)state;
	snprintf(tmpl, sizeof(tmpl), "/tmp/bananafs-store-XXXXXX");
	assert_non_null(mkdtemp(tmpl));
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	nftw(tmpl, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}

static void key_of(int n, struct cache_key *k)
{
	memset(k, 0, sizeof(*k));
	k->b[0] = (uint8_t)n;
	k->b[15] = 0xab;
}

static char *store_path(void)
{
	static char p[128];
	snprintf(p, sizeof(p), "%s/store", tmpl);
	return p;
}

static int read_file(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	return (int)n;
}

/* write_pub stand-in: writes a marker so we can tell the two files apart */
static int write_marker(const char *tmp, void *arg)
{
	FILE *fp = fopen(tmp, "w");

	if (!fp)
		return -1;
	fputs((const char *)arg, fp);
	return fclose(fp) == 0 ? 0 : -1;
}

static int fail_pub(const char *tmp, void *arg)
{
	(void)tmp; (void)arg;
	return -1;
}

static int count_tmp(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		if (strncmp(e->d_name, ".tmp-", 5) == 0)
			n++;
	closedir(d);
	return n;
}

static void test_open_modes(void **state)
{
	struct store s;
	char err[256] = "";
	struct stat st;
	mode_t old = umask(0);		/* a permissive umask must not leak into the store */

	(void)state;
	assert_int_equal(store_open(&s, store_path(), err, sizeof(err)), 0);
	umask(old);
	assert_int_equal(stat(s.dir, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	assert_int_equal(stat(s.tree_dir, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	assert_int_equal(stat(s.objects_dir, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	assert_true(s.dir[0] == '/');
	store_close(&s);
}

static void test_refuse_group_writable(void **state)
{
	struct store s;
	char err[256] = "";

	(void)state;
	assert_int_equal(mkdir(store_path(), 0700), 0);
	assert_int_equal(chmod(store_path(), 0770), 0);
	assert_int_equal(store_open(&s, store_path(), err, sizeof(err)), -1);
	assert_non_null(strstr(err, "writable by group or others"));
}

static void test_put_lookup_link(void **state)
{
	struct store s;
	struct cache_key k, other;
	struct object_info o, got;
	char err[256] = "", buf[64], dst[256];
	const unsigned char jpeg[] = "JPEGBYTES";

	(void)state;
	assert_int_equal(store_open(&s, store_path(), err, sizeof(err)), 0);
	key_of(1, &k);
	key_of(2, &other);
	assert_int_equal(store_lookup(&s, &k, &got), 0);
	assert_int_equal(store_put(&s, &k, jpeg, sizeof(jpeg) - 1, "jpg", "png", write_marker, "PNGDATA",
				   10, 20, &o, err, sizeof(err)), 0);
	assert_non_null(strstr(o.path, ".png"));
	assert_non_null(strstr(o.orig_path, ".jpg"));
	assert_string_equal(o.ext, "png");

	assert_int_equal(store_lookup(&s, &k, &got), 1);
	assert_string_equal(got.path, o.path);
	assert_string_equal(got.orig_path, o.orig_path);
	assert_int_equal(got.width, 10);
	assert_int_equal(got.height, 20);
	assert_int_equal(got.bytes, 7);
	assert_int_equal(read_file(got.path, buf, sizeof(buf)), 7);
	assert_string_equal(buf, "PNGDATA");
	assert_int_equal(read_file(got.orig_path, buf, sizeof(buf)), 9);
	assert_string_equal(buf, "JPEGBYTES");
	assert_int_equal(store_lookup(&s, &other, &got), 0);

	snprintf(dst, sizeof(dst), "%s/out.png", s.tree_dir);
	assert_int_equal(store_link(&s, &o, dst), 0);
	assert_int_equal(read_file(dst, buf, sizeof(buf)), 7);
	assert_string_equal(buf, "PNGDATA");
	/* dst must not exist */
	assert_int_equal(store_link(&s, &o, dst), -1);
	assert_int_equal(count_tmp(s.objects_dir), 0);
	store_close(&s);
}

static void test_png_original_published(void **state)
{
	struct store s;
	struct cache_key k, k2;
	struct object_info o;
	char err[256] = "", buf[64];

	(void)state;
	assert_int_equal(store_open(&s, store_path(), err, sizeof(err)), 0);
	/* output original: one file, path == orig_path */
	key_of(3, &k);
	assert_int_equal(store_put(&s, &k, (const unsigned char *)"PNG1", 4, "png", "png", NULL, NULL,
				   1, 1, &o, err, sizeof(err)), 0);
	assert_string_equal(o.path, o.orig_path);
	/* server PNG, our PNG with chunks: two distinct files */
	key_of(4, &k2);
	assert_int_equal(store_put(&s, &k2, (const unsigned char *)"PNG2", 4, "png", "png", write_marker,
				   "OURS", 1, 1, &o, err, sizeof(err)), 0);
	assert_string_not_equal(o.path, o.orig_path);
	assert_int_equal(read_file(o.orig_path, buf, sizeof(buf)), 4);
	assert_string_equal(buf, "PNG2");
	assert_int_equal(read_file(o.path, buf, sizeof(buf)), 4);
	assert_string_equal(buf, "OURS");
	store_close(&s);
}

static void test_persistence_and_vanished(void **state)
{
	struct store s;
	struct cache_key k;
	struct object_info o, got;
	char err[256] = "";

	(void)state;
	assert_int_equal(store_open(&s, store_path(), err, sizeof(err)), 0);
	key_of(5, &k);
	assert_int_equal(store_put(&s, &k, (const unsigned char *)"X", 1, "webp", "png", write_marker, "Y",
				   2, 3, &o, err, sizeof(err)), 0);
	store_close(&s);

	assert_int_equal(store_open(&s, store_path(), err, sizeof(err)), 0);
	assert_int_equal(store_lookup(&s, &k, &got), 1);
	assert_string_equal(got.path, o.path);
	/* the file vanishes: a miss, and the row is dropped */
	assert_int_equal(unlink(got.path), 0);
	assert_int_equal(store_lookup(&s, &k, &got), 0);
	store_close(&s);
	assert_int_equal(store_open(&s, store_path(), err, sizeof(err)), 0);
	assert_int_equal(store_lookup(&s, &k, &got), 0);
	store_close(&s);
}

static void test_failed_pub_leaves_nothing(void **state)
{
	struct store s;
	struct cache_key k;
	struct object_info o, got;
	char err[256] = "";

	(void)state;
	assert_int_equal(store_open(&s, store_path(), err, sizeof(err)), 0);
	key_of(6, &k);
	assert_int_equal(store_put(&s, &k, (const unsigned char *)"X", 1, "jpg", "png", fail_pub, NULL,
				   1, 1, &o, err, sizeof(err)), -1);
	assert_true(err[0] != '\0');
	assert_int_equal(store_lookup(&s, &k, &got), 0);
	assert_int_equal(count_tmp(s.objects_dir), 0);
	store_close(&s);
}

static int count_fn(const char *hex, const struct object_info *o, void *arg)
{
	assert_int_equal(strlen(hex), 32);
	assert_non_null(strstr(o->path, hex));
	(*(int *)arg)++;
	return 0;
}

static void test_foreach(void **state)
{
	struct store s;
	struct cache_key k;
	char err[256] = "";
	int i, n = 0;

	(void)state;
	assert_int_equal(store_open(&s, store_path(), err, sizeof(err)), 0);
	for (i = 10; i < 15; i++) {
		key_of(i, &k);
		assert_int_equal(store_put(&s, &k, (const unsigned char *)"Z", 1, "png", "png", NULL, NULL,
					   1, 1, NULL, err, sizeof(err)), 0);
	}
	assert_int_equal(store_foreach(&s, count_fn, &n), 0);
	assert_int_equal(n, 5);
	store_close(&s);
}

static int collect_keys(const struct index_row *r, void *arg)
{
	char *seen = arg;

	strcat(seen, r->key[0] == '0' && r->key[1] == '1' ? "a" : "b");
	return 0;
}

/* The local index through struct index_ops: get, put (replace), foreach, drop. */
static void test_index_ops(void **state)
{
	struct store s;
	struct index_row r, got;
	char err[256] = "", seen[8] = "";

	(void)state;
	assert_int_equal(store_open(&s, store_path(), err, sizeof(err)), 0);
	assert_string_equal(s.index->name, "sqlite");
	memset(&r, 0, sizeof(r));
	snprintf(r.key, sizeof(r.key), "01%030d", 0);
	snprintf(r.orig_ext, sizeof(r.orig_ext), "jpg");
	snprintf(r.pub_ext, sizeof(r.pub_ext), "png");
	r.bytes = 10;
	r.width = 1024;
	r.height = 768;
	r.created = 100;
	assert_int_equal(s.index->get(s.index_state, r.key, &got), 0);
	assert_int_equal(s.index->put(s.index_state, &r, err, sizeof(err)), 0);
	assert_int_equal(s.index->get(s.index_state, r.key, &got), 1);
	assert_string_equal(got.orig_ext, "jpg");
	assert_int_equal(got.width, 1024);
	assert_int_equal(got.created, 100);
	r.bytes = 20;		/* a put of the same key replaces the row */
	assert_int_equal(s.index->put(s.index_state, &r, err, sizeof(err)), 0);
	assert_int_equal(s.index->get(s.index_state, r.key, &got), 1);
	assert_int_equal(got.bytes, 20);
	snprintf(r.key, sizeof(r.key), "02%030d", 0);
	r.created = 50;		/* older: walked first */
	assert_int_equal(s.index->put(s.index_state, &r, err, sizeof(err)), 0);
	assert_int_equal(s.index->foreach(s.index_state, collect_keys, seen), 0);
	assert_string_equal(seen, "ba");
	assert_int_equal(s.index->drop(s.index_state, r.key), 0);
	assert_int_equal(s.index->drop(s.index_state, r.key), 0);	/* none: fine */
	assert_int_equal(s.index->get(s.index_state, r.key, &got), 0);
	store_close(&s);
}

/* store_forget drops the row and the files; a lookup misses afterwards. */
static void test_forget(void **state)
{
	struct store s;
	struct cache_key k;
	struct object_info o;
	char err[256] = "", hex[KEY_HEX_LEN];

	(void)state;
	assert_int_equal(store_open(&s, store_path(), err, sizeof(err)), 0);
	key_of(7, &k);
	key_hex(&k, hex);
	assert_int_equal(store_put(&s, &k, (const unsigned char *)"X", 1, "jpg", "png", write_marker, "P",
				   1, 1, &o, err, sizeof(err)), 0);
	assert_int_equal(store_forget(&s, hex), 0);
	assert_int_equal(access(o.path, F_OK), -1);
	assert_int_equal(access(o.orig_path, F_OK), -1);
	assert_int_equal(store_lookup(&s, &k, &o), 0);
	assert_int_equal(store_forget(&s, hex), 0);		/* gone already: fine */
	assert_int_equal(store_forget(&s, "../x"), -1);
	store_close(&s);
}

static int sum_rows(const struct store_val *c, int n, void *arg)
{
	assert_int_equal(n, 2);
	assert_int_equal(c[0].t, SVT_TEXT);
	*(long long *)arg += c[1].i;
	return 0;
}

/* The journal's way into state.db: binds, rows as values, changes. */
static void test_sql(void **state)
{
	struct store s;
	char err[256] = "";
	long long changes = -1, sum = 0;
	struct store_val v[2];

	(void)state;
	assert_int_equal(store_open(&s, store_path(), err, sizeof(err)), 0);
	assert_int_equal(store_sql(&s, "CREATE TABLE t(a TEXT, b INTEGER);", NULL, 0, NULL, NULL, NULL), 0);
	v[0] = SV_TXT("x");
	v[1] = SV_INT(40);
	assert_int_equal(store_sql(&s, "INSERT INTO t VALUES(?, ?);", v, 2, NULL, NULL, &changes), 0);
	assert_int_equal(changes, 1);
	v[1] = SV_INT(2);
	assert_int_equal(store_sql(&s, "INSERT INTO t VALUES(?, ?);", v, 2, NULL, NULL, NULL), 0);
	assert_int_equal(store_sql(&s, "SELECT a, b FROM t;", NULL, 0, sum_rows, &sum, NULL), 0);
	assert_int_equal(sum, 42);
	assert_int_equal(store_sql(&s, "SELECT nonsense FROM nowhere;", NULL, 0, NULL, NULL, NULL), -1);
	store_close(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open_modes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refuse_group_writable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_put_lookup_link, setup, teardown),
		cmocka_unit_test_setup_teardown(test_png_original_published, setup, teardown),
		cmocka_unit_test_setup_teardown(test_persistence_and_vanished, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_pub_leaves_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreach, setup, teardown),
		cmocka_unit_test_setup_teardown(test_index_ops, setup, teardown),
		cmocka_unit_test_setup_teardown(test_forget, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sql, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
