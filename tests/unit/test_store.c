/* test_store.c - the object store: put, lookup, link, durability rules. */
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
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
