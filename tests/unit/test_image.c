/* test_image.c - image sniffing, header checks, PNG writing, base64. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <unistd.h>
#include <zlib.h>

#include "api/image.h"
#include "tests/unit/imgmake.h"

static char tmpdir[64];

static int setup_dir(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/bananafs-test-image-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
	char cmd[128];
	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static void out_path(char *buf, size_t n, const char *name)
{
	snprintf(buf, n, "%s/%s", tmpdir, name);
}

static void test_sniff(void **state)
{
	(void)state;
	size_t pl, jl, wl;
	unsigned char *p = make_png(4, 3, &pl), *j = make_jpeg(8, 8, &jl), *w = make_webp(5, 5, 1, &wl);
	assert_string_equal(image_sniff(p, pl), "image/png");
	assert_string_equal(image_sniff(j, jl), "image/jpeg");
	assert_string_equal(image_sniff(w, wl), "image/webp");
	assert_null(image_sniff((const unsigned char *)"GIF89a....", 10));
	assert_null(image_sniff(p, 7));		/* signature cut short */
	assert_null(image_sniff(NULL, 0));
	assert_string_equal(image_ext("image/png"), "png");
	assert_string_equal(image_ext("image/jpeg"), "jpg");
	assert_string_equal(image_ext("image/webp"), "webp");
	assert_string_equal(image_ext("text/html"), "bin");
	assert_string_equal(image_ext(NULL), "bin");
	free(p);
	free(j);
	WebPFree(w);
}

static void test_check_dims(void **state)
{
	(void)state;
	size_t len;
	int w = 0, h = 0;
	char err[128];

	unsigned char *p = make_png(37, 19, &len);
	assert_int_equal(image_check(p, len, &w, &h, err, sizeof(err)), 0);
	assert_int_equal(w, 37);
	assert_int_equal(h, 19);
	free(p);

	unsigned char *j = make_jpeg(40, 24, &len);
	assert_int_equal(image_check(j, len, &w, &h, err, sizeof(err)), 0);
	assert_int_equal(w, 40);
	assert_int_equal(h, 24);
	free(j);

	unsigned char *wl = make_webp(17, 9, 1, &len);	/* VP8L */
	assert_int_equal(image_check(wl, len, &w, &h, err, sizeof(err)), 0);
	assert_memory_equal(wl + 12, "VP8L", 4);
	assert_int_equal(w, 17);
	assert_int_equal(h, 9);
	WebPFree(wl);

	unsigned char *wy = make_webp(16, 8, 0, &len);	/* VP8 lossy */
	assert_int_equal(image_check(wy, len, &w, &h, err, sizeof(err)), 0);
	assert_memory_equal(wy + 12, "VP8 ", 4);
	assert_int_equal(w, 16);
	assert_int_equal(h, 8);
	WebPFree(wy);
}

static void test_check_rejects(void **state)
{
	(void)state;
	size_t len;
	int w = -5, h = -5;
	char err[128];

	unsigned char *p = make_png(10, 10, &len);
	assert_int_equal(image_check(p, 20, &w, &h, err, sizeof(err)), -1);	/* truncated */
	p[19] ^= 0x01;	/* width changed: IHDR CRC no longer matches */
	assert_int_equal(image_check(p, len, &w, &h, err, sizeof(err)), -1);
	assert_true(strstr(err, "checksum") != NULL);
	free(p);

	unsigned char *j = make_jpeg(40, 24, &len);
	/* cut before any SOF: the walk must stop at the end, not read past it */
	assert_int_equal(image_check(j, 30, &w, &h, err, sizeof(err)), -1);
	/* a segment length running past the end */
	unsigned char bad[] = { 0xFF, 0xD8, 0xFF, 0xE0, 0x7F, 0xFF, 0x00, 0x00 };
	assert_int_equal(image_check(bad, sizeof(bad), &w, &h, err, sizeof(err)), -1);
	/* SOS before SOF */
	unsigned char sos[] = { 0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x02 };
	assert_int_equal(image_check(sos, sizeof(sos), &w, &h, err, sizeof(err)), -1);
	free(j);

	assert_int_equal(image_check((const unsigned char *)"hello world", 11, &w, &h, err,
				     sizeof(err)), -1);
	assert_int_equal(w, -5);	/* untouched on failure */
	assert_int_equal(h, -5);

	/* WebP with a RIFF size larger than the data */
	size_t wlen;
	unsigned char *wp = make_webp(8, 8, 1, &wlen);
	wp[7] = 0x7f;
	assert_int_equal(image_check(wp, wlen, &w, &h, err, sizeof(err)), -1);
	WebPFree(wp);
}

static const struct png_text texts[] = {
	{ "prompt", "A banana on the moon, \xc3\xa9t\xc3\xa9 \xe2\x98\x80", false },
	{ "model", "gemini-3-pro-image", false },
	{ "bananafs-key", "0123456789abcdef", false },
	{ "parameters", "caf\xc3\xa9\nModel: m", true },		/* Latin-1 holds it: one tEXt */
	{ "once-utf8", "\xe2\x98\x80 sun", true },			/* it does not: one iTXt */
};
#define NTEXTS 5

/* How many chunks carry key, and the value of its tEXt (Latin-1) one. */
static int count_text(const struct png_read *r, const char *key, const char **latin1)
{
	int n = 0;
	for (int i = 0; i < r->ntext; i++)
		if (strcmp(r->keys[i], key) == 0) {
			n++;
			if (latin1 && r->comp[i] == PNG_TEXT_COMPRESSION_NONE)
				*latin1 = r->vals[i];
		}
	return n;
}

static const char *find_text(const struct png_read *r, const char *key, int *comp)
{
	for (int i = 0; i < r->ntext; i++)
		if (strcmp(r->keys[i], key) == 0) {
			if (comp)
				*comp = r->comp[i];
			return r->vals[i];
		}
	return NULL;
}

static void check_texts(const struct png_read *r)
{
	int comp = -99;
	const char *v = find_text(r, "prompt", &comp);
	assert_non_null(v);
	assert_string_equal(v, texts[0].value);
	assert_int_equal(comp, PNG_ITXT_COMPRESSION_NONE);
	assert_string_equal(find_text(r, "model", NULL), "gemini-3-pro-image");
	assert_string_equal(find_text(r, "bananafs-key", NULL), "0123456789abcdef");
	/* each key also as tEXt, in Latin-1 with '?' for what Latin-1 lacks */
	const char *l1 = NULL;
	assert_int_equal(count_text(r, "prompt", &l1), 2);
	assert_non_null(l1);
	assert_string_equal(l1, "A banana on the moon, \xe9t\xe9 ?");
	l1 = NULL;
	assert_int_equal(count_text(r, "parameters", &l1), 1);
	assert_non_null(l1);
	assert_string_equal(l1, "caf\xe9\nModel: m");
	l1 = NULL;
	assert_int_equal(count_text(r, "once-utf8", &l1), 1);
	assert_null(l1);
	assert_string_equal(find_text(r, "once-utf8", NULL), "\xe2\x98\x80 sun");
}

static void test_write_png_from_png(void **state)
{
	(void)state;
	char path[128], err[128];
	size_t len;
	unsigned char *p = make_png(23, 11, &len);
	out_path(path, sizeof(path), "from-png.png");

	assert_int_equal(image_write_png(p, len, texts, NTEXTS, path, err, sizeof(err)), 0);
	struct png_read r;
	assert_int_equal(read_png_file(path, &r), 0);
	assert_int_equal(r.w, 23);
	assert_int_equal(r.h, 11);
	for (int y = 0; y < r.h; y++)
		for (int x = 0; x < r.w; x++)
			for (int c = 0; c < 3; c++)
				assert_int_equal(r.rgba[(y * r.w + x) * 4 + c], pat(x, y, c));
	check_texts(&r);
	free(r.rgba);

	/* no re-encode: the original IDAT chunk is in the output byte for byte */
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	unsigned char buf[65536];
	size_t n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	const unsigned char *idat = memmem(p, len, "IDAT", 4);
	assert_non_null(idat);
	size_t idat_len = ((size_t)idat[-4] << 24 | (size_t)idat[-3] << 16 | (size_t)idat[-2] << 8 |
			   idat[-1]) + 12;
	assert_non_null(memmem(buf, n, idat - 4, idat_len));
	/* iTXt sits right after IHDR */
	assert_memory_equal(buf + 33 + 4, "iTXt", 4);
	free(p);
}

static void test_write_png_from_jpeg(void **state)
{
	(void)state;
	char path[128], err[128];
	size_t len;
	unsigned char *j = make_jpeg(48, 32, &len);
	out_path(path, sizeof(path), "from-jpeg.png");

	assert_int_equal(image_write_png(j, len, texts, NTEXTS, path, err, sizeof(err)), 0);
	struct png_read r;
	assert_int_equal(read_png_file(path, &r), 0);
	assert_int_equal(r.w, 48);
	assert_int_equal(r.h, 32);
	/* lossy source: pixels close to the pattern, not exact */
	long diff = 0;
	for (int y = 0; y < r.h; y++)
		for (int x = 0; x < r.w; x++)
			for (int c = 0; c < 3; c++)
				diff += labs((long)r.rgba[(y * r.w + x) * 4 + c] - pat(x, y, c));
	assert_true(diff / (48 * 32 * 3) < 20);
	check_texts(&r);
	free(r.rgba);
	free(j);
}

static void test_write_png_from_webp(void **state)
{
	(void)state;
	char path[128], err[128];
	size_t len;
	unsigned char *w = make_webp(13, 7, 1, &len);
	out_path(path, sizeof(path), "from-webp.png");

	assert_int_equal(image_write_png(w, len, texts, 1, path, err, sizeof(err)), 0);
	struct png_read r;
	assert_int_equal(read_png_file(path, &r), 0);
	assert_int_equal(r.w, 13);
	assert_int_equal(r.h, 7);
	for (int y = 0; y < r.h; y++)
		for (int x = 0; x < r.w; x++)
			for (int c = 0; c < 3; c++)
				assert_int_equal(r.rgba[(y * r.w + x) * 4 + c], pat(x, y, c));
	free(r.rgba);
	WebPFree(w);
}

static void test_write_png_corrupt(void **state)
{
	(void)state;
	char path[128], err[128];
	size_t len;

	/* JPEG cut in half: fails cleanly, leaves no file */
	unsigned char *j = make_jpeg(64, 64, &len);
	out_path(path, sizeof(path), "corrupt-jpeg.png");
	err[0] = '\0';
	assert_int_equal(image_write_png(j, len / 2, texts, 1, path, err, sizeof(err)), IMAGE_BAD_INPUT);
	assert_true(err[0] != '\0');
	assert_int_equal(access(path, F_OK), -1);
	/* JPEG with its header tables destroyed */
	memset(j + 20, 0xFF, 200);
	assert_int_equal(image_write_png(j, len, texts, 1, path, err, sizeof(err)), IMAGE_BAD_INPUT);
	assert_int_equal(access(path, F_OK), -1);
	free(j);

	/* PNG with a flipped byte in IDAT: CRC check refuses it */
	unsigned char *p = make_png(20, 20, &len);
	unsigned char *idat = memmem(p, len, "IDAT", 4);
	idat[6] ^= 0x55;
	out_path(path, sizeof(path), "corrupt-png.png");
	assert_int_equal(image_write_png(p, len, texts, 1, path, err, sizeof(err)), IMAGE_BAD_INPUT);
	assert_int_equal(access(path, F_OK), -1);
	/* the same flip with a recomputed CRC: caught by decoding the pixels */
	uint32_t cl = (uint32_t)idat[-4] << 24 | (uint32_t)idat[-3] << 16 |
		      (uint32_t)idat[-2] << 8 | idat[-1];
	uLong crc = crc32(0, idat, cl + 4);
	idat[4 + cl] = (unsigned char)(crc >> 24);
	idat[5 + cl] = (unsigned char)(crc >> 16);
	idat[6 + cl] = (unsigned char)(crc >> 8);
	idat[7 + cl] = (unsigned char)crc;
	assert_int_equal(image_write_png(p, len, texts, 1, path, err, sizeof(err)), IMAGE_BAD_INPUT);
	assert_int_equal(access(path, F_OK), -1);
	/* PNG without IEND */
	free(p);
	p = make_png(20, 20, &len);
	assert_int_equal(image_write_png(p, len - 12, texts, 1, path, err, sizeof(err)), IMAGE_BAD_INPUT);
	/* a bad keyword */
	struct png_text badkey = { "", "x", false };
	assert_int_equal(image_write_png(p, len, &badkey, 1, path, err, sizeof(err)), -1);	/* ours */
	/* not an image at all */
	assert_int_equal(image_write_png((const unsigned char *)"<html>", 6, NULL, 0, path, err,
					 sizeof(err)), IMAGE_BAD_INPUT);
	assert_int_equal(access(path, F_OK), -1);
	free(p);
}

/* In place: the decoded bytes land behind the text still to be read. */
static void test_base64_inplace(void **state)
{
	(void)state;
	for (size_t n = 0; n < 300; n++) {
		unsigned char src[300], buf[16 + 404];
		for (size_t i = 0; i < n; i++)
			src[i] = (unsigned char)(i * 37 + n);
		char *b64 = base64_encode(src, n);
		size_t bl = strlen(b64);
		memcpy(buf, "{\"data\":\"", 9);
		memcpy(buf + 9, b64, bl);
		assert_int_equal(base64_decode_inplace(buf, 9, bl), (long)n);
		assert_memory_equal(buf, src, n);
		if (bl > 4) {	/* a bad character: refused, buf untouched */
			memcpy(buf + 9, b64, bl);
			buf[9 + bl / 2] = '*';
			unsigned char keep[420];
			memcpy(keep, buf, 9 + bl);
			assert_int_equal(base64_decode_inplace(buf, 9, bl), -1);
			assert_memory_equal(buf, keep, 9 + bl);
		}
		free(b64);
	}
	unsigned char one[] = "xA";	/* a length of 1 mod 4 is a cut quantum */
	assert_int_equal(base64_decode_inplace(one, 1, 1), -1);
}

static void test_base64(void **state)
{
	(void)state;
	size_t n;
	unsigned char *d;
	char *e;

	e = base64_encode((const unsigned char *)"foobar", 6);
	assert_string_equal(e, "Zm9vYmFy");
	free(e);
	e = base64_encode((const unsigned char *)"fo", 2);
	assert_string_equal(e, "Zm8=");
	free(e);
	e = base64_encode((const unsigned char *)"", 0);
	assert_string_equal(e, "");
	free(e);

	/* round trip of every length up to 300, all byte values */
	unsigned char src[300];
	for (size_t i = 0; i < sizeof(src); i++)
		src[i] = (unsigned char)(i * 37 + 11);
	for (size_t l = 0; l <= sizeof(src); l++) {
		e = base64_encode(src, l);
		assert_non_null(e);
		assert_int_equal(strlen(e), (l + 2) / 3 * 4);
		d = base64_decode(e, strlen(e), &n);
		assert_non_null(d);
		assert_int_equal(n, l);
		assert_memory_equal(d, src, l);
		free(d);
		free(e);
	}

	d = base64_decode("Zm8", 3, &n);	/* missing padding is accepted */
	assert_non_null(d);
	assert_int_equal(n, 2);
	assert_memory_equal(d, "fo", 2);
	free(d);
	d = base64_decode("Zm9v\nYmFy", 9, &n);	/* line breaks skipped */
	assert_non_null(d);
	assert_int_equal(n, 6);
	free(d);

	static const char *const bad[] = {
		"Zm9v!", "Zm9vY", "Zm=9", "Zm9v====", "=Zm9", "Zm9vYmFy=", "Zm 9v", "Zm9v-_",
		"Z===", "Zm9vY===",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		d = base64_decode(bad[i], strlen(bad[i]), &n);
		if (d)
			fail_msg("accepted bad base64 \"%s\"", bad[i]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sniff),
		cmocka_unit_test(test_check_dims),
		cmocka_unit_test(test_check_rejects),
		cmocka_unit_test(test_write_png_from_png),
		cmocka_unit_test(test_write_png_from_jpeg),
		cmocka_unit_test(test_write_png_from_webp),
		cmocka_unit_test(test_write_png_corrupt),
		cmocka_unit_test(test_base64),
		cmocka_unit_test(test_base64_inplace),
	};
	return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
