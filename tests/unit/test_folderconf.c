/* Per-folder .bananafs.conf: deeper files win, bad lines name file and line. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include "cache/folderconf.h"

static char root[64];
static int tree_fd = -1;

static void put(const char *rel, const char *text)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", root, rel);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int setup(void **state)
{
	(void)state;
	char p[512];
	snprintf(root, sizeof(root), "/tmp/bananafs-fc-XXXXXX");
	if (!mkdtemp(root))
		return -1;
	const char *dirs[] = { "m", "m/2K", "m/2K/proj", "m/2K/proj/sub" };
	for (size_t i = 0; i < 4; i++) {
		snprintf(p, sizeof(p), "%s/%s", root, dirs[i]);
		mkdir(p, 0755);
	}
	tree_fd = open(root, O_PATH | O_DIRECTORY);
	return tree_fd < 0 ? -1 : 0;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	close(tree_fd);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
	return system(cmd) == 0 ? 0 : -1;
}

static void test_none(void **state)
{
	(void)state;
	struct folder_conf fc;
	char err[256];
	assert_int_equal(folder_conf_load(tree_fd, "m/2K/proj/sub", &fc, err, sizeof(err)), 0);
	assert_false(fc.route_set);
	assert_string_equal(fc.aspect, "");
}

static void test_deeper_wins(void **state)
{
	(void)state;
	struct folder_conf fc;
	char err[256];
	put("m/2K/.bananafs.conf", "route = batch\naspect = 4:3\n");
	put("m/2K/proj/sub/.bananafs.conf", "# only the aspect here\naspect = 16:9\n");
	assert_int_equal(folder_conf_load(tree_fd, "m/2K/proj/sub", &fc, err, sizeof(err)), 0);
	assert_true(fc.route_set);
	assert_int_equal(fc.route, ROUTE_BATCH);
	assert_string_equal(fc.aspect, "16:9");
	/* a sibling folder sees only the size folder's file */
	assert_int_equal(folder_conf_load(tree_fd, "m/2K/proj", &fc, err, sizeof(err)), 0);
	assert_string_equal(fc.aspect, "4:3");
	/* a file above the size folder is never read */
	put("m/.bananafs.conf", "route = nonsense\n");
	assert_int_equal(folder_conf_load(tree_fd, "m/2K", &fc, err, sizeof(err)), 0);
}

static void test_bad_line_names_file_and_line(void **state)
{
	(void)state;
	struct folder_conf fc;
	char err[256];
	put("m/2K/proj/.bananafs.conf", "aspect = 1:1\nroute = teleport\n");
	assert_int_equal(folder_conf_load(tree_fd, "m/2K/proj/sub", &fc, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "m/2K/proj/.bananafs.conf:2:"));
	assert_non_null(strstr(err, "teleport"));
	put("m/2K/proj/.bananafs.conf", "colour = red\n");
	assert_int_equal(folder_conf_load(tree_fd, "m/2K/proj", &fc, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "unknown key 'colour'"));
}

/* Each error is reported on its own line: sections where they stand, an aspect the model lacks. */
static void test_error_lines(void **state)
{
	(void)state;
	struct folder_conf fc;
	char err[256];
	const char *dirs[] = { "gemini-3-pro-image", "gemini-3-pro-image/2K" };
	for (size_t i = 0; i < 2; i++) {
		char p[512];
		snprintf(p, sizeof(p), "%s/%s", root, dirs[i]);
		mkdir(p, 0755);
	}
	put("m/2K/proj/.bananafs.conf", "[bananafs]\nroute = batch\n");
	assert_int_equal(folder_conf_load(tree_fd, "m/2K/proj", &fc, err, sizeof(err)), -1);
	assert_non_null(strstr(err, ".bananafs.conf:1: sections"));
	put("m/2K/proj/.bananafs.conf", "route = batch\n[bananafs]\n");
	assert_int_equal(folder_conf_load(tree_fd, "m/2K/proj", &fc, err, sizeof(err)), -1);
	assert_non_null(strstr(err, ".bananafs.conf:2: sections"));
	put("m/2K/proj/.bananafs.conf", "# a comment\n\naspect = 99:1\n");
	assert_int_equal(folder_conf_load(tree_fd, "m/2K/proj", &fc, err, sizeof(err)), -1);
	assert_non_null(strstr(err, ".bananafs.conf:3: bad aspect"));
	put("gemini-3-pro-image/2K/.bananafs.conf", "route = batch\naspect = 1:8\n");
	assert_int_equal(folder_conf_load(tree_fd, "gemini-3-pro-image/2K", &fc, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "gemini-3-pro-image/2K/.bananafs.conf:2: model gemini-3-pro-image "
				    "does not take aspect '1:8'"));
	put("m/2K/proj/.bananafs.conf", "aspect = 1:1\n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_none),
		cmocka_unit_test(test_deeper_wins),
		cmocka_unit_test(test_bad_line_names_file_and_line),
		cmocka_unit_test(test_error_lines),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
