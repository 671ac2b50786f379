/*
 * test_prompt.c - prompt files: which names trigger, the "---" header,
 * UTF-8 and size limits, checks against the model table, and loading
 * reference images beneath the tree only.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cache/key.h"
#include "cache/prompt.h"

static char err[512];

static enum prompt_err
parse(const char *s, struct prompt *p)
{
	err[0] = '\0';
	return prompt_parse(s, strlen(s), p, err, sizeof(err));
}

/* Parses s expecting failure rc; err must contain want. */
static void
expect_fail(const char *s, enum prompt_err rc, const char *want)
{
	struct prompt p;

	assert_int_equal(parse(s, &p), rc);
	if (strstr(err, want) == NULL)
		fail_msg("error '%s' does not contain '%s' (input: '%s')", err, want, s);
	/* A failed parse leaves nothing to free. */
	assert_null(p.text);
	assert_int_equal(p.ninputs, 0);
}

/* ---- trigger names ------------------------------------------------------ */

static void
test_trigger_names(void **state)
{
	static const struct {
		const char *name;
		bool triggers;
	} cases[] = {
		{ "fox.txt", true },
		{ "a.txt", true },
		{ "fox.v2.txt", true },
		{ "fox with spaces.txt", true },
		{ "renard-été.txt", true },
		{ ".txt", false },		/* empty NAME, hidden */
		{ "txt", false },
		{ "fox", false },
		{ "fox.TXT", false },
		{ "fox.txt.tmp", false },
		{ "fox.txt.part", false },
		{ "fox.txt~", false },		/* gedit/kate/emacs backup */
		{ ".fox.txt.swp", false },	/* vim swap */
		{ ".fox.txt.swx", false },
		{ "fox.txt.swp", false },
		{ "4913", false },		/* vim's write probe */
		{ ".goutputstream-ABC", false },	/* gedit/GIO temp */
		{ ".goutputstream-ABC.txt", false },
		{ ".fox.txt", false },		/* hidden */
		{ "fox.txt.kate-swp", false },
		{ ".fox.txt.kate-swp", false },
		{ "fox.png", false },
		{ "fox.error", false },
		{ "dir/fox.txt", false },	/* a name, never a path */
		{ "", false },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (prompt_name_triggers(cases[i].name) != cases[i].triggers)
			fail_msg("prompt_name_triggers(\"%s\") should be %s", cases[i].name,
				 cases[i].triggers ? "true" : "false");
	assert_false(prompt_name_triggers(NULL));
}

/* ---- text and header ---------------------------------------------------- */

static void
test_plain_text_trimmed(void **state)
{
	struct prompt p;

	(void)state;
	assert_int_equal(parse(" \t\r\n\v\fa fox\n in snow \r\n\n", &p), PROMPT_OK);
	assert_string_equal(p.text, "a fox\n in snow");
	assert_int_equal(p.len, strlen("a fox\n in snow"));
	assert_int_equal(p.n, 1);
	assert_int_equal(p.variant, 0);
	assert_string_equal(p.aspect, "");
	assert_false(p.route_set);
	assert_int_equal(p.ninputs, 0);
	prompt_free(&p);
}

static void
test_empty(void **state)
{
	struct prompt p;

	(void)state;
	assert_int_equal(parse("", &p), PROMPT_EMPTY);
	assert_int_equal(parse(" \n\t\r\n", &p), PROMPT_EMPTY);
	assert_int_equal(parse("---\nn: 2\n---\n  \n", &p), PROMPT_EMPTY);
	assert_int_equal(parse("\xEF\xBB\xBF\n", &p), PROMPT_EMPTY);
	assert_null(p.text);
}

static void
test_header_full(void **state)
{
	const char *s =
		"---\n"
		"aspect: 16:9          # wide\n"
		"n: 4\n"
		"\n"
		"# a comment line\n"
		"input: sketch.png\n"
		"input: refs/a.jpg, refs/b#2.webp\n"
		"variant: 2\n"
		"route: batch\n"
		"---\n"
		"A premium product hero image.\n";
	struct prompt p;

	(void)state;
	assert_int_equal(parse(s, &p), PROMPT_OK);
	assert_string_equal(p.text, "A premium product hero image.");
	assert_string_equal(p.aspect, "16:9");
	assert_int_equal(p.n, 4);
	assert_int_equal(p.variant, 2);
	assert_true(p.route_set);
	assert_int_equal(p.route, ROUTE_BATCH);
	assert_int_equal(p.ninputs, 3);
	assert_string_equal(p.inputs[0], "sketch.png");
	assert_string_equal(p.inputs[1], "refs/a.jpg");
	assert_string_equal(p.inputs[2], "refs/b#2.webp");	/* '#' inside a word stays */
	prompt_free(&p);
}

static void
test_header_crlf_bom_trailing_spaces(void **state)
{
	struct prompt p;

	(void)state;
	assert_int_equal(parse("\xEF\xBB\xBF---  \r\nn: 3\r\nroute: flex\r\n--- \r\nhello\r\n", &p),
			 PROMPT_OK);
	assert_int_equal(p.n, 3);
	assert_int_equal(p.route, ROUTE_FLEX);
	assert_string_equal(p.text, "hello");
	prompt_free(&p);

	/* Only the first line opens a header: later '---' lines are text. */
	assert_int_equal(parse("a fox\n---\nn: 2\n---\n", &p), PROMPT_OK);
	assert_int_equal(p.n, 1);
	assert_string_equal(p.text, "a fox\n---\nn: 2\n---");
	prompt_free(&p);

	/* "----" is not a marker. */
	assert_int_equal(parse("----\nsome text", &p), PROMPT_OK);
	assert_string_equal(p.text, "----\nsome text");
	prompt_free(&p);
}

static void
test_header_errors_line_numbers(void **state)
{
	(void)state;
	expect_fail("---\naspet: 16:9\n---\nfox", PROMPT_BAD_HEADER,
		    "line 2: unknown key 'aspet' (known: aspect, n, input, variant, route, search, system)");
	expect_fail("---\n\n# c\nn: 9\n---\nfox", PROMPT_BAD_HEADER,
		    "line 4: bad value '9' for n: expected 1..8");
	expect_fail("---\r\nn: 2\r\nn: 3\r\n---\r\nfox", PROMPT_BAD_HEADER,
		    "line 3: duplicate key 'n'");
	expect_fail("---\nn: 0\n---\nfox", PROMPT_BAD_HEADER, "line 2: bad value '0' for n");
	expect_fail("---\nn: -1\n---\nfox", PROMPT_BAD_HEADER, "line 2: bad value '-1' for n");
	expect_fail("---\nn: 2x\n---\nfox", PROMPT_BAD_HEADER, "line 2: bad value '2x' for n");
	expect_fail("---\nn:\n---\nfox", PROMPT_BAD_HEADER, "line 2: bad value '' for n");
	expect_fail("---\naspect: 16:10\n---\nfox", PROMPT_BAD_HEADER,
		    "line 2: bad value '16:10' for aspect: expected one of 1:1");
	expect_fail("---\nroute: express\n---\nfox", PROMPT_BAD_HEADER,
		    "line 2: bad value 'express' for route: expected standard");
	expect_fail("---\nvariant: 1000000001\n---\nfox", PROMPT_BAD_HEADER,
		    "line 2: bad value '1000000001' for variant");
	expect_fail("---\nn: 2\nthis line has no colon\n---\nfox", PROMPT_BAD_HEADER,
		    "line 3: expected 'key: value'");
	expect_fail("---\ninput: /etc/passwd\n---\nfox", PROMPT_BAD_HEADER,
		    "line 2: input '/etc/passwd' is an absolute path");
	expect_fail("---\ninput: a.png,,b.png\n---\nfox", PROMPT_BAD_HEADER,
		    "line 2: empty input path");
	expect_fail("---\ninput:\n---\nfox", PROMPT_BAD_HEADER, "line 2: empty input path");
	expect_fail("---\ninput: 1,2,3,4\ninput: 5,6,7,8\ninput: 9\n---\nfox",
		    PROMPT_BAD_HEADER, "line 4: too many inputs");
	expect_fail("---\nn: 2\nfox in snow\n", PROMPT_BAD_HEADER, "never closed");
	expect_fail("---", PROMPT_BAD_HEADER, "never closed");
	/* Control characters in a quoted value are not echoed back. */
	expect_fail("---\nroute: \x1b[31mred\n---\nfox", PROMPT_BAD_HEADER, "'?[31mred'");
}

static void
test_header_good_limits(void **state)
{
	struct prompt p;

	(void)state;
	assert_int_equal(parse("---\nn: 8\nvariant: 1000000000\n---\nx", &p), PROMPT_OK);
	assert_int_equal(p.n, 8);
	assert_int_equal(p.variant, 1000000000);
	prompt_free(&p);
	assert_int_equal(parse("---\ninput: 1,2,3,4\ninput: 5 , 6,7,8\n---\nx", &p), PROMPT_OK);
	assert_int_equal(p.ninputs, PROMPT_MAX_INPUTS);
	assert_string_equal(p.inputs[4], "5");
	prompt_free(&p);
	assert_int_equal(parse("---\n---\nx", &p), PROMPT_OK);	/* empty header */
	assert_string_equal(p.text, "x");
	prompt_free(&p);
}

static char *
make_header(int lines, bool closed)
{
	size_t cap = (size_t)lines * 8 + 64, off = 0;
	char *s = malloc(cap);

	assert_non_null(s);
	off += (size_t)snprintf(s + off, cap - off, "---\n");
	for (int i = 0; i < lines; i++)
		off += (size_t)snprintf(s + off, cap - off, "# %d\n", i % 10);
	snprintf(s + off, cap - off, "%sfox\n", closed ? "---\n" : "");
	return s;
}

static void
test_header_line_cap(void **state)
{
	struct prompt p;
	struct timespec t0, t1;
	char *s;

	(void)state;
	s = make_header(64, true);
	assert_int_equal(parse(s, &p), PROMPT_OK);
	prompt_free(&p);
	free(s);

	s = make_header(65, true);
	assert_int_equal(parse(s, &p), PROMPT_BAD_HEADER);
	assert_non_null(strstr(err, "64 lines"));
	free(s);

	/* 10,000 lines (under 32 KiB as "# d\n"): refused, and quickly. */
	s = make_header(8000, false);
	assert_true(strlen(s) <= PROMPT_MAX_BYTES);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < 100; i++)
		assert_int_equal(parse(s, &p), PROMPT_BAD_HEADER);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_true((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 < 1000);
	free(s);

	/* An exact 10,000-line header made of blank lines fits in 32 KiB. */
	s = malloc(4 + 10000 + 8 + 1);
	assert_non_null(s);
	memcpy(s, "---\n", 4);
	memset(s + 4, '\n', 10000);
	memcpy(s + 4 + 10000, "---\nfox", 8);
	assert_int_equal(parse(s, &p), PROMPT_BAD_HEADER);
	assert_non_null(strstr(err, "header"));
	free(s);
}

/* ---- UTF-8 and size ----------------------------------------------------- */

static void
test_utf8(void **state)
{
	static const struct {
		const char *s;
		size_t len;
		bool ok;
		long offset;		/* of the bad byte when !ok */
	} cases[] = {
#define C(lit, ok, off) { lit, sizeof(lit) - 1, ok, off }
		C("caf\xC3\xA9", true, 0),			/* é */
		C("\xE2\x82\xAC 5", true, 0),			/* € */
		C("\xF0\x9F\x98\x80", true, 0),			/* U+1F600 */
		C("\xF4\x8F\xBF\xBF", true, 0),			/* U+10FFFF, the last */
		C("\xEF\xBF\xBD", true, 0),			/* U+FFFD */
		C("\xED\x9F\xBF", true, 0),			/* U+D7FF, before surrogates */
		C("ab\xC0\x80", false, 2),			/* overlong NUL */
		C("ab\xC1\xBF", false, 2),			/* overlong 2-byte */
		C("\xE0\x80\x80", false, 0),			/* overlong 3-byte */
		C("x\xE0\x9F\xBF", false, 1),			/* overlong U+07FF */
		C("\xF0\x80\x80\x80", false, 0),		/* overlong 4-byte */
		C("\xF0\x8F\xBF\xBF", false, 0),		/* overlong U+FFFF */
		C("abc\xED\xA0\x80", false, 3),			/* surrogate U+D800 */
		C("\xED\xBF\xBF", false, 0),			/* surrogate U+DFFF */
		C("\xF4\x90\x80\x80", false, 0),		/* U+110000 */
		C("\xF5\x80\x80\x80", false, 0),
		C("\xFF", false, 0),
		C("ok \x80", false, 3),				/* lone continuation */
		C("ok \xC3", false, 3),				/* cut at the end */
		C("ok \xE2\x82", false, 3),
		C("ok \xC3(", false, 3),			/* bad continuation */
#undef C
	};
	struct prompt p;
	char want[64];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum prompt_err rc = prompt_parse(cases[i].s, cases[i].len, &p, err, sizeof(err));

		if (cases[i].ok) {
			if (rc != PROMPT_OK)
				fail_msg("case %zu should parse: %s", i, err);
			assert_int_equal(p.len, cases[i].len);
			prompt_free(&p);
			continue;
		}
		if (rc != PROMPT_BAD_UTF8)
			fail_msg("case %zu should be BAD_UTF8, got %d", i, rc);
		snprintf(want, sizeof(want), "byte offset %ld", cases[i].offset);
		if (strstr(err, want) == NULL)
			fail_msg("case %zu: '%s' lacks '%s'", i, err, want);
	}
}

static void
test_nul_is_binary(void **state)
{
	struct prompt p;

	(void)state;
	assert_int_equal(prompt_parse("abc\0def", 7, &p, err, sizeof(err)), PROMPT_BAD_UTF8);
	assert_non_null(strstr(err, "binary"));
	assert_non_null(strstr(err, "offset 3"));
}

static void
test_size_boundary(void **state)
{
	char *buf = malloc(PROMPT_MAX_BYTES + 1);
	struct prompt p;

	(void)state;
	assert_non_null(buf);
	memset(buf, 'a', PROMPT_MAX_BYTES + 1);
	assert_int_equal(prompt_parse(buf, PROMPT_MAX_BYTES, &p, err, sizeof(err)), PROMPT_OK);
	assert_int_equal(p.len, PROMPT_MAX_BYTES);
	prompt_free(&p);
	assert_int_equal(prompt_parse(buf, PROMPT_MAX_BYTES + 1, &p, err, sizeof(err)),
			 PROMPT_TOO_BIG);
	assert_non_null(strstr(err, "prompt is 32,769 bytes"));
	assert_non_null(strstr(err, "32 KiB (32,768 bytes)"));
	prompt_too_big_msg(40001, err, sizeof(err));
	assert_string_equal(err, "prompt is 40,001 bytes; the limit is 32 KiB (32,768 bytes)");
	prompt_too_big_msg(1234567, err, sizeof(err));
	assert_non_null(strstr(err, "1,234,567 bytes"));
	free(buf);
}

/* A tiny error buffer is cut, never overrun. */
static void
test_small_err_buffer(void **state)
{
	struct prompt p;
	char small[8];

	(void)state;
	memset(small, 'Z', sizeof(small));
	assert_int_equal(prompt_parse("---\nbogus: 1\n---\nx", 18, &p, small, sizeof(small)),
			 PROMPT_BAD_HEADER);
	assert_int_equal(strlen(small), sizeof(small) - 1);
}

/* ---- prompt_check ------------------------------------------------------- */

static void
test_check(void **state)
{
	struct prompt p;

	(void)state;
	assert_int_equal(parse("---\naspect: 1:8\n---\nx", &p), PROMPT_OK);
	assert_int_equal(prompt_check(&p, "gemini-3.1-flash-image", "512", NULL, err, sizeof(err)), 0);
	assert_int_equal(prompt_check(&p, "flash", "4K", NULL, err, sizeof(err)), 0);
	assert_int_equal(prompt_check(&p, "gemini-3-pro-image", "1K", NULL, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "aspect '1:8'"));
	assert_non_null(strstr(err, "16:9"));		/* names what is allowed */
	assert_null(strstr(err, " 1:4"));
	/* An explicit aspect argument wins over the header's. */
	assert_int_equal(prompt_check(&p, "pro", "2K", "3:2", err, sizeof(err)), 0);
	prompt_free(&p);

	assert_int_equal(parse("x", &p), PROMPT_OK);
	assert_int_equal(prompt_check(&p, "gemini-3-pro-image", "512", NULL, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "'512'"));
	assert_non_null(strstr(err, "1K, 2K, 4K"));
	assert_int_equal(prompt_check(&p, "gemini-9-ultra", "1K", NULL, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "unknown model 'gemini-9-ultra'"));
	assert_non_null(strstr(err, "gemini-3-pro-image"));
	assert_int_equal(prompt_check(&p, "gemini-3-pro-image", "1K", "7:5", err, sizeof(err)), -1);
	prompt_free(&p);
}

/* ---- prompt_load_inputs ------------------------------------------------- */

static const unsigned char png_bytes[] = "\x89PNG\r\n\x1a\n\0\0\0\rIHDR fake png body";
static const unsigned char jpeg_bytes[] = "\xFF\xD8\xFF\xE0 fake jpeg";

struct tree {
	char root[64];		/* holds tree/ and outside/ */
	int tree_fd;
};

static void
write_file(const char *path, const void *b, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, b, len), (ssize_t)len);
	close(fd);
}

static int
tree_setup(void **state)
{
	static struct tree t;
	char p[256];

	snprintf(t.root, sizeof(t.root), "/tmp/bananafs-test-prompt-XXXXXX");
	if (mkdtemp(t.root) == NULL)
		return -1;
#define P(fmt) (snprintf(p, sizeof(p), fmt, t.root), p)
	mkdir(P("%s/tree"), 0700);
	mkdir(P("%s/outside"), 0700);
	mkdir(P("%s/tree/proj"), 0700);
	mkdir(P("%s/tree/proj/sub"), 0700);
	write_file(P("%s/tree/proj/sketch.png"), png_bytes, sizeof(png_bytes) - 1);
	write_file(P("%s/tree/proj/photo.jpg"), jpeg_bytes, sizeof(jpeg_bytes) - 1);
	write_file(P("%s/tree/proj/notes.txt"), "not an image", 12);
	write_file(P("%s/tree/root.png"), png_bytes, sizeof(png_bytes) - 1);
	write_file(P("%s/outside/secret.png"), png_bytes, sizeof(png_bytes) - 1);
	if (mkfifo(P("%s/tree/proj/fifo.png"), 0600) < 0)
		return -1;
	if (symlink("../../outside/secret.png", P("%s/tree/proj/escape.png")) < 0 ||
	    symlink("../../outside", P("%s/tree/proj/outdir")) < 0 ||
	    symlink("sketch.png", P("%s/tree/proj/inside-link.png")) < 0 ||
	    symlink("/dev/zero", P("%s/tree/proj/zero.png")) < 0)
		return -1;
	t.tree_fd = open(P("%s/tree"), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
#undef P
	if (t.tree_fd < 0)
		return -1;
	*state = &t;
	return 0;
}

static int
tree_teardown(void **state)
{
	struct tree *t = *state;
	char cmd[128];

	close(t->tree_fd);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->root);
	return system(cmd) == 0 ? 0 : -1;
}

/* Loads one input from dir; returns the rc and leaves err filled. */
static int
load1(struct tree *t, const char *dir, const char *input, struct ref_image *ref)
{
	struct prompt p;
	int rc;

	memset(&p, 0, sizeof(p));
	p.inputs[0] = strdup(input);
	p.ninputs = 1;
	err[0] = '\0';
	alarm(5);		/* a FIFO that blocked would hang the test: fail instead */
	rc = prompt_load_inputs(&p, t->tree_fd, dir, ref, err, sizeof(err));
	alarm(0);
	free(p.inputs[0]);
	return rc;
}

static void
expect_refused(struct tree *t, const char *dir, const char *input, const char *want)
{
	struct ref_image ref;
	char quoted[128];

	if (load1(t, dir, input, &ref) != -1)
		fail_msg("input '%s' in '%s' should be refused", input, dir);
	snprintf(quoted, sizeof(quoted), "'%s'", input);
	if (strstr(err, quoted) == NULL)
		fail_msg("error '%s' does not name the input %s", err, quoted);
	if (want != NULL && strstr(err, want) == NULL)
		fail_msg("error '%s' does not contain '%s'", err, want);
}

static void
test_load_ok(void **state)
{
	struct tree *t = *state;
	struct prompt p;
	struct ref_image refs[PROMPT_MAX_INPUTS];
	uint8_t h[16];

	assert_int_equal(parse("---\ninput: sketch.png, photo.jpg\ninput: ../root.png\n---\nx", &p),
			 PROMPT_OK);
	assert_int_equal(prompt_load_inputs(&p, t->tree_fd, "proj", refs, err, sizeof(err)), 0);
	assert_string_equal(refs[0].mime, "image/png");
	assert_int_equal(refs[0].len, sizeof(png_bytes) - 1);
	assert_memory_equal(refs[0].data, png_bytes, refs[0].len);
	key_hash_bytes(png_bytes, sizeof(png_bytes) - 1, h);
	assert_memory_equal(refs[0].hash, h, 16);
	assert_string_equal(refs[1].mime, "image/jpeg");
	key_hash_bytes(jpeg_bytes, sizeof(jpeg_bytes) - 1, h);
	assert_memory_equal(refs[1].hash, h, 16);
	/* "../" that stays inside the tree is fine. */
	assert_string_equal(refs[2].mime, "image/png");
	assert_memory_equal(refs[2].hash, refs[0].hash, 16);
	prompt_free_inputs(refs, p.ninputs);
	assert_null(refs[0].data);
	prompt_free(&p);

	/* dir "" and "." mean the tree itself. */
	assert_int_equal(load1(t, "", "root.png", &refs[0]), 0);
	prompt_free_inputs(refs, 1);
	assert_int_equal(load1(t, ".", "proj/sketch.png", &refs[0]), 0);
	prompt_free_inputs(refs, 1);
	assert_int_equal(load1(t, "proj/sub", "../sketch.png", &refs[0]), 0);
	prompt_free_inputs(refs, 1);
}

static void
test_load_refused(void **state)
{
	struct tree *t = *state;

	expect_refused(t, "proj", "fifo.png", "not a regular file");
	expect_refused(t, "proj", "sub", "not a regular file");
	expect_refused(t, "proj", "missing.png", "no such file");
	expect_refused(t, "proj", "notes.txt", "not a PNG, JPEG or WebP image");
	expect_refused(t, "proj", "escape.png", NULL);		/* symlink out of the tree */
	expect_refused(t, "proj", "outdir/secret.png", NULL);	/* symlinked folder out */
	expect_refused(t, "proj", "inside-link.png", NULL);	/* any symlink, even inside */
	expect_refused(t, "proj", "zero.png", NULL);		/* /dev/zero via a link */
	expect_refused(t, "", "../x", NULL);
	expect_refused(t, "", "../outside/secret.png", "leaves");
	expect_refused(t, "proj", "../../outside/secret.png", "leaves");
}

/* A failure on the second input frees the first (ASan/valgrind see leaks). */
static void
test_load_partial_failure(void **state)
{
	struct tree *t = *state;
	struct prompt p;
	struct ref_image refs[PROMPT_MAX_INPUTS];

	assert_int_equal(parse("---\ninput: sketch.png, nope.png, photo.jpg\n---\nx", &p), PROMPT_OK);
	assert_int_equal(prompt_load_inputs(&p, t->tree_fd, "proj", refs, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "'nope.png'"));
	assert_null(refs[0].data);
	prompt_free(&p);
}

static void
test_search_and_system(void **state)
{
	struct prompt p;

	(void)state;
	assert_int_equal(parse("---\nsearch: yes\nsystem: draw it as a woodcut, high contrast\n---\nnews", &p),
			 PROMPT_OK);
	assert_true(p.search);
	assert_string_equal(p.system, "draw it as a woodcut, high contrast");
	assert_string_equal(p.text, "news");
	/* refused where the model or route does not take them */
	assert_int_equal(prompt_check_route(&p, "gemini-3-pro-image", ROUTE_STANDARD, false, err, sizeof(err)), 0);
	assert_int_equal(prompt_check_route(&p, "gemini-3.1-flash-image", ROUTE_GENERATE, false, err, sizeof(err)), 0);
	assert_int_equal(prompt_check_route(&p, "gemini-3.1-flash-lite-image", ROUTE_STANDARD, false, err,
					    sizeof(err)), -1);
	assert_non_null(strstr(err, "not offered for gemini-3.1-flash-lite-image"));
	assert_int_equal(prompt_check_route(&p, "gemini-3-pro-image", ROUTE_GATEWAY, false, err, sizeof(err)), -1);
	assert_int_equal(prompt_check_route(&p, "gemini-3-pro-image", ROUTE_BATCH, false, err, sizeof(err)), -1);
	p.search = false;
	assert_int_equal(prompt_check_route(&p, "gemini-3-pro-image", ROUTE_GATEWAY, false, err, sizeof(err)), 0);
	assert_int_equal(prompt_check_route(&p, "gemini-3-pro-image", ROUTE_GATEWAY, true, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "gateway_api = images"));
	prompt_free(&p);
	assert_int_equal(parse("---\nsearch: no\n---\nx", &p), PROMPT_OK);
	assert_false(p.search);
	assert_null(p.system);
	prompt_free(&p);
	expect_fail("---\nsearch: maybe\n---\nx", PROMPT_BAD_HEADER, "bad value 'maybe' for search");
	expect_fail("---\nsystem:\n---\nx", PROMPT_BAD_HEADER, "empty system instruction");
	expect_fail("---\nsystem: a\nsystem: b\n---\nx", PROMPT_BAD_HEADER, "duplicate key 'system'");
}

int
main(void)
{
	const struct CMUnitTest parse_tests[] = {
		cmocka_unit_test(test_trigger_names),
		cmocka_unit_test(test_plain_text_trimmed),
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_header_full),
		cmocka_unit_test(test_search_and_system),
		cmocka_unit_test(test_header_crlf_bom_trailing_spaces),
		cmocka_unit_test(test_header_errors_line_numbers),
		cmocka_unit_test(test_header_good_limits),
		cmocka_unit_test(test_header_line_cap),
		cmocka_unit_test(test_utf8),
		cmocka_unit_test(test_nul_is_binary),
		cmocka_unit_test(test_size_boundary),
		cmocka_unit_test(test_small_err_buffer),
		cmocka_unit_test(test_check),
	};
	const struct CMUnitTest input_tests[] = {
		cmocka_unit_test(test_load_ok),
		cmocka_unit_test(test_load_refused),
		cmocka_unit_test(test_load_partial_failure),
	};
	int failed = 0;

	failed += cmocka_run_group_tests_name("prompt parsing", parse_tests, NULL, NULL);
	failed += cmocka_run_group_tests_name("prompt inputs", input_tests, tree_setup, tree_teardown);
	return failed;
}
