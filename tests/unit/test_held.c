/*
 * test_held.c - paid answers kept in memory while the store refuses them:
 * held_put keeps the bytes and the publishable file (in a memfd), held_store
 * stores them once the store works again, the cap is honoured.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache/held.h"

static char dir[64];

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb; (void)flag; (void)ftw;
	return remove(p);
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/bananafs-held-XXXXXX");
	assert_non_null(mkdtemp(dir));
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}

static int write_marker(const char *path, void *arg)
{
	FILE *f = fopen(path, "wb");

	if (!f)
		return -1;
	fputs(arg, f);
	return fclose(f) == 0 ? 0 : -1;
}

static void read_all(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "rb");
	size_t n;

	assert_non_null(f);
	n = fread(buf, 1, len - 1, f);
	buf[n] = '\0';
	fclose(f);
}

static void test_kept_until_the_store_works(void **state)
{
	struct store s;
	struct held h;
	struct cache_key k;
	struct object_info o;
	char err[512] = "", buf[64], *objects;

	(void)state;
	assert_int_equal(store_open(&s, dir, err, sizeof(err)), 0);
	held_init(&h, 1 << 20);
	memset(k.b, 0x5a, sizeof(k.b));
	assert_int_equal(held_store(&h, &s, &k, &o, err, sizeof(err)), 0);	/* nothing held */
	assert_int_equal(held_put(&h, &k, (const unsigned char *)"JPEGBYTES", 9, "jpg", "png", write_marker,
				  "PNG WITH PROVENANCE", 64, 32, err, sizeof(err)), 0);
	assert_int_equal(held_count(&h), 1);

	/* the store fails (its objects folder is gone): still held, the reason said */
	objects = s.objects_dir;
	s.objects_dir = strdup("/nonexistent/objects");
	assert_int_equal(held_store(&h, &s, &k, &o, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "No such file"));
	assert_int_equal(held_count(&h), 1);
	free(s.objects_dir);
	s.objects_dir = objects;

	/* it works again: stored once, the publishable file as built, and dropped from memory */
	assert_int_equal(held_store(&h, &s, &k, &o, err, sizeof(err)), 1);
	assert_int_equal(held_count(&h), 0);
	assert_int_equal(store_lookup(&s, &k, &o), 1);
	read_all(o.path, buf, sizeof(buf));
	assert_string_equal(buf, "PNG WITH PROVENANCE");
	read_all(o.orig_path, buf, sizeof(buf));
	assert_string_equal(buf, "JPEGBYTES");
	assert_int_equal(o.width, 64);
	assert_int_equal(held_store(&h, &s, &k, &o, err, sizeof(err)), 0);
	held_destroy(&h);
	store_close(&s);
}

static void test_cap(void **state)
{
	struct held h;
	struct cache_key a, b;
	char err[256] = "";

	(void)state;
	held_init(&h, 16);
	memset(a.b, 1, sizeof(a.b));
	memset(b.b, 2, sizeof(b.b));
	assert_int_equal(held_put(&h, &a, (const unsigned char *)"0123456789", 10, "png", "png", NULL, NULL,
				  1, 1, err, sizeof(err)), 0);
	assert_int_equal(held_put(&h, &b, (const unsigned char *)"0123456789", 10, "png", "png", NULL, NULL,
				  1, 1, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "already waiting"));
	/* the same key again keeps the first answer, and costs no room */
	assert_int_equal(held_put(&h, &a, (const unsigned char *)"X", 1, "png", "png", NULL, NULL,
				  1, 1, err, sizeof(err)), 0);
	assert_int_equal(held_count(&h), 1);
	held_destroy(&h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_kept_until_the_store_works, setup, teardown),
		cmocka_unit_test(test_cap),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
