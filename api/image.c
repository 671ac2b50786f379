/*
 * image.c - untrusted image bytes: sniff, check headers, convert to PNG.
 *
 * Every reader here works on (pointer, length) and checks bounds before each
 * read: the bytes come from a server.  Decoding and encoding go through
 * libpng, libjpeg-turbo and libwebp; nothing here decodes pixels by hand.
 */
#include "api/image.h"

#include <errno.h>
#include <png.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#include <jpeglib.h>
#include <webp/decode.h>

/* Largest side we accept; the biggest documented answer is 12288 px. */
#define IMAGE_MAX_SIDE 65535

static const unsigned char png_sig[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint32_t le24(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16;
}

static void seterr(char *err, size_t errlen, const char *msg)
{
	if (err && errlen)
		snprintf(err, errlen, "%s", msg);
}

const char *image_sniff(const unsigned char *b, size_t len)
{
	if (!b)
		return NULL;
	if (len >= 8 && memcmp(b, png_sig, 8) == 0)
		return "image/png";
	if (len >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF)
		return "image/jpeg";
	if (len >= 12 && memcmp(b, "RIFF", 4) == 0 && memcmp(b + 8, "WEBP", 4) == 0)
		return "image/webp";
	return NULL;
}

const char *image_ext(const char *mime)
{
	if (!mime)
		return "bin";
	if (strcmp(mime, "image/png") == 0)
		return "png";
	if (strcmp(mime, "image/jpeg") == 0 || strcmp(mime, "image/jpg") == 0)
		return "jpg";
	if (strcmp(mime, "image/webp") == 0)
		return "webp";
	return "bin";
}

/* ---- header checks --------------------------------------------------- */

static int check_png(const unsigned char *b, size_t len, int *w, int *h, char *err, size_t errlen)
{
	/* signature, then IHDR must be the first chunk: length 13 */
	if (len < 8 + 8 + 13 + 4) {
		seterr(err, errlen, "PNG too short for an IHDR chunk");
		return -1;
	}
	if (be32(b + 8) != 13 || memcmp(b + 12, "IHDR", 4) != 0) {
		seterr(err, errlen, "PNG does not start with an IHDR chunk");
		return -1;
	}
	uint32_t pw = be32(b + 16), ph = be32(b + 20);
	if (pw == 0 || ph == 0 || pw > IMAGE_MAX_SIDE || ph > IMAGE_MAX_SIDE) {
		seterr(err, errlen, "PNG has an impossible pixel size");
		return -1;
	}
	if ((uint32_t)crc32(0, b + 12, 17) != be32(b + 29)) {
		seterr(err, errlen, "PNG IHDR checksum mismatch");
		return -1;
	}
	*w = (int)pw;
	*h = (int)ph;
	return 0;
}

static int is_sof(unsigned char m)
{
	/* SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC) */
	return m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC;
}

static int check_jpeg(const unsigned char *b, size_t len, int *w, int *h, char *err, size_t errlen)
{
	size_t i = 2;	/* after SOI */

	while (i < len) {
		if (b[i] != 0xFF) {
			seterr(err, errlen, "JPEG marker expected");
			return -1;
		}
		while (i < len && b[i] == 0xFF)	/* fill bytes */
			i++;
		if (i >= len)
			break;
		unsigned char m = b[i++];
		if (m == 0xD8 || m == 0x01 || (m >= 0xD0 && m <= 0xD7))
			continue;	/* standalone markers */
		if (m == 0xD9 || m == 0xDA) {
			seterr(err, errlen, "JPEG has no frame header before its data");
			return -1;
		}
		if (len - i < 2) {
			seterr(err, errlen, "JPEG truncated in a segment length");
			return -1;
		}
		size_t seglen = (size_t)b[i] << 8 | b[i + 1];
		if (seglen < 2 || seglen > len - i) {
			seterr(err, errlen, "JPEG segment runs past the end");
			return -1;
		}
		if (is_sof(m)) {
			if (seglen < 8) {
				seterr(err, errlen, "JPEG frame header too short");
				return -1;
			}
			int jh = b[i + 3] << 8 | b[i + 4];
			int jw = b[i + 5] << 8 | b[i + 6];
			if (jw == 0 || jh == 0) {
				seterr(err, errlen, "JPEG has a zero pixel size");
				return -1;
			}
			*w = jw;
			*h = jh;
			return 0;
		}
		i += seglen;
	}
	seterr(err, errlen, "JPEG ends before a frame header");
	return -1;
}

static int check_webp(const unsigned char *b, size_t len, int *w, int *h, char *err, size_t errlen)
{
	if (len < 30) {
		seterr(err, errlen, "WebP too short");
		return -1;
	}
	uint32_t riff = (uint32_t)b[4] | (uint32_t)b[5] << 8 | (uint32_t)b[6] << 16 | (uint32_t)b[7] << 24;
	if (riff < 4 || (size_t)riff > len - 8) {
		seterr(err, errlen, "WebP RIFF size runs past the end");
		return -1;
	}
	const unsigned char *c = b + 12;
	uint32_t ww, hh;
	if (memcmp(c, "VP8 ", 4) == 0) {
		/* 3-byte frame tag, then start code 9d 01 2a, then 14-bit sizes */
		const unsigned char *f = c + 8;
		if (f[3] != 0x9d || f[4] != 0x01 || f[5] != 0x2a) {
			seterr(err, errlen, "WebP VP8 start code missing");
			return -1;
		}
		ww = ((uint32_t)f[6] | (uint32_t)f[7] << 8) & 0x3fff;
		hh = ((uint32_t)f[8] | (uint32_t)f[9] << 8) & 0x3fff;
	} else if (memcmp(c, "VP8L", 4) == 0) {
		const unsigned char *f = c + 8;
		if (f[0] != 0x2f) {
			seterr(err, errlen, "WebP VP8L signature missing");
			return -1;
		}
		uint32_t bits = (uint32_t)f[1] | (uint32_t)f[2] << 8 | (uint32_t)f[3] << 16 |
				(uint32_t)f[4] << 24;
		ww = (bits & 0x3fff) + 1;
		hh = ((bits >> 14) & 0x3fff) + 1;
	} else if (memcmp(c, "VP8X", 4) == 0) {
		const unsigned char *f = c + 8;
		ww = le24(f + 4) + 1;
		hh = le24(f + 7) + 1;
	} else {
		seterr(err, errlen, "WebP has an unknown first chunk");
		return -1;
	}
	if (ww == 0 || hh == 0 || ww > IMAGE_MAX_SIDE || hh > IMAGE_MAX_SIDE) {
		seterr(err, errlen, "WebP has an impossible pixel size");
		return -1;
	}
	*w = (int)ww;
	*h = (int)hh;
	return 0;
}

int image_check(const unsigned char *b, size_t len, int *w, int *h, char *err, size_t errlen)
{
	int tw = 0, th = 0, rc;
	const char *mime = image_sniff(b, len);

	if (!mime) {
		seterr(err, errlen, "not a PNG, JPEG or WebP image");
		return -1;
	}
	if (strcmp(mime, "image/png") == 0)
		rc = check_png(b, len, &tw, &th, err, errlen);
	else if (strcmp(mime, "image/jpeg") == 0)
		rc = check_jpeg(b, len, &tw, &th, err, errlen);
	else
		rc = check_webp(b, len, &tw, &th, err, errlen);
	if (rc == 0) {
		if (w)
			*w = tw;
		if (h)
			*h = th;
	}
	return rc;
}

/* ---- PNG writing ------------------------------------------------------ */

static int keyword_ok(const char *k)
{
	size_t n = k ? strlen(k) : 0;
	if (n < 1 || n > 79 || k[0] == ' ' || k[n - 1] == ' ')
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)k[i];
		if (ch < 32 || (ch > 126 && ch < 161))
			return 0;
	}
	return 1;
}

static int check_texts(const struct png_text *t, int n, char *err, size_t errlen)
{
	for (int i = 0; i < n; i++) {
		if (!keyword_ok(t[i].key) || !t[i].value) {
			seterr(err, errlen, "bad PNG text keyword");
			return -1;
		}
	}
	return 0;
}

static int put_be32(FILE *f, uint32_t v)
{
	unsigned char p[4] = { v >> 24, v >> 16, v >> 8, v };
	return fwrite(p, 1, 4, f) == 4 ? 0 : -1;
}

/*
 * The Latin-1 form of UTF-8 text for a tEXt chunk (malloc'd): code points up
 * to U+00FF map to one byte, anything else (and broken UTF-8) becomes '?'.
 * *exact says whether nothing was replaced.
 */
static char *to_latin1(const char *s, bool *exact)
{
	const unsigned char *p = (const unsigned char *)s;
	char *out = malloc(strlen(s) + 1), *o = out;

	*exact = true;
	if (!out)
		return NULL;
	while (*p) {
		unsigned c = *p;
		if (c < 0x80) {
			*o++ = (char)c;
			p++;
		} else if ((c & 0xE0) == 0xC0 && (p[1] & 0xC0) == 0x80 && c >= 0xC2) {
			unsigned cp = ((c & 0x1F) << 6) | (p[1] & 0x3F);
			*o++ = cp <= 0xFF ? (char)cp : '?';
			*exact = *exact && cp <= 0xFF;
			p += 2;
		} else {
			/* three- and four-byte sequences are past U+00FF; skip their tail bytes */
			*o++ = '?';
			*exact = false;
			p++;
			while ((*p & 0xC0) == 0x80)
				p++;
		}
	}
	*o = '\0';
	return out;
}

/* One tEXt chunk: keyword NUL text (Latin-1). */
static int write_text(FILE *f, const char *key, const char *latin1)
{
	size_t kl = strlen(key), vl = strlen(latin1);
	size_t dl = kl + 1 + vl;
	if (dl > 0x7fffffffu)
		return -1;
	unsigned char *d = malloc(4 + dl);
	if (!d)
		return -1;
	memcpy(d, "tEXt", 4);
	memcpy(d + 4, key, kl);
	d[4 + kl] = 0;
	memcpy(d + 4 + kl + 1, latin1, vl);
	uLong crc = crc32(0, d, (uInt)(4 + dl));
	int rc = put_be32(f, (uint32_t)dl) == 0 && fwrite(d, 1, 4 + dl, f) == 4 + dl &&
			 put_be32(f, (uint32_t)crc) == 0 ? 0 : -1;
	free(d);
	return rc;
}

static int write_itxt(FILE *f, const struct png_text *t);

/* The chunks one png_text gives (see image.h): iTXt and a tEXt copy, or one of them. */
static int write_texts(FILE *f, const struct png_text *t)
{
	bool exact;
	char *l1 = to_latin1(t->value, &exact);
	int rc;

	if (!l1)
		return -1;
	if (t->once)
		rc = exact ? write_text(f, t->key, l1) : write_itxt(f, t);
	else
		rc = write_itxt(f, t) == 0 && write_text(f, t->key, l1) == 0 ? 0 : -1;
	free(l1);
	return rc;
}

/* One iTXt chunk: keyword NUL, flag 0, method 0, empty language NUL, empty translated NUL, text. */
static int write_itxt(FILE *f, const struct png_text *t)
{
	size_t kl = strlen(t->key), vl = strlen(t->value);
	size_t dl = kl + 1 + 2 + 1 + 1 + vl;
	if (dl > 0x7fffffffu)
		return -1;
	unsigned char *d = malloc(4 + dl);
	if (!d)
		return -1;
	memcpy(d, "iTXt", 4);
	unsigned char *p = d + 4;
	memcpy(p, t->key, kl);
	p += kl;
	*p++ = 0;
	*p++ = 0;	/* not compressed */
	*p++ = 0;	/* method */
	*p++ = 0;	/* language tag "" */
	*p++ = 0;	/* translated keyword "" */
	memcpy(p, t->value, vl);
	uLong crc = crc32(0, d, (uInt)(4 + dl));
	int rc = put_be32(f, (uint32_t)dl) == 0 && fwrite(d, 1, 4 + dl, f) == 4 + dl &&
			 put_be32(f, (uint32_t)crc) == 0 ? 0 : -1;
	free(d);
	return rc;
}

/* Walks every chunk: lengths in bounds, CRCs right, IHDR first, IEND last. */
static int png_chunks_ok(const unsigned char *b, size_t len, char *err, size_t errlen)
{
	size_t i = 8;
	int first = 1;

	while (len - i >= 12) {
		uint32_t cl = be32(b + i);
		if (cl > 0x7fffffffu || cl > len - i - 12) {
			seterr(err, errlen, "PNG chunk runs past the end");
			return -1;
		}
		const unsigned char *type = b + i + 4;
		if (first && memcmp(type, "IHDR", 4) != 0) {
			seterr(err, errlen, "PNG does not start with IHDR");
			return -1;
		}
		first = 0;
		uLong crc = crc32(0, type, (uInt)(cl + 4));
		if ((uint32_t)crc != be32(b + i + 8 + cl)) {
			seterr(err, errlen, "PNG chunk checksum mismatch");
			return -1;
		}
		i += 12 + (size_t)cl;
		if (memcmp(type, "IEND", 4) == 0)
			return 0;
	}
	seterr(err, errlen, "PNG is truncated (no IEND)");
	return -1;
}

struct membuf {
	const unsigned char *b;
	size_t len, pos;
};

static void png_mem_read(png_structp png, png_bytep out, png_size_t n)
{
	struct membuf *m = png_get_io_ptr(png);
	if (n > m->len - m->pos)
		png_error(png, "read past end");
	memcpy(out, m->b + m->pos, n);
	m->pos += n;
}

static void png_quiet_warning(png_structp png, png_const_charp msg)
{
	(void)png;
	(void)msg;
}

static void png_fail(png_structp png, png_const_charp msg)
{
	char *dst = png_get_error_ptr(png);
	if (dst)
		snprintf(dst, 128, "%s", msg);
	png_longjmp(png, 1);
}

/* Decodes every row (one row buffer) so a PNG with broken pixel data is refused. */
static int png_decodes(const unsigned char *b, size_t len, char *err, size_t errlen)
{
	char why[128] = "PNG decode failed";
	struct membuf m = { b, len, 0 };
	png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, why, png_fail,
						 png_quiet_warning);
	png_infop info = png ? png_create_info_struct(png) : NULL;
	png_bytep volatile row = NULL;
	int rc = -1;

	if (!info)
		goto out_destroy;
	if (setjmp(png_jmpbuf(png)))
		goto out_destroy;
	png_set_read_fn(png, &m, png_mem_read);
	png_set_user_limits(png, IMAGE_MAX_SIDE, IMAGE_MAX_SIDE);
	png_read_info(png, info);
	int passes = png_set_interlace_handling(png);
	png_read_update_info(png, info);
	png_uint_32 h = png_get_image_height(png, info);
	row = malloc(png_get_rowbytes(png, info));
	if (!row) {
		snprintf(why, sizeof(why), "out of memory");
		goto out_destroy;
	}
	for (int p = 0; p < passes; p++)
		for (png_uint_32 y = 0; y < h; y++)
			png_read_row(png, row, NULL);
	png_read_end(png, NULL);
	rc = 0;
out_destroy:
	free(row);
	png_destroy_read_struct(&png, info ? &info : NULL, NULL);
	if (rc)
		snprintf(err, errlen, "PNG: %s", why);
	return rc;
}

static int copy_png(const unsigned char *b, size_t len, const struct png_text *text, int ntext,
		    const char *path, char *err, size_t errlen)
{
	int w, h;
	if (check_png(b, len, &w, &h, err, errlen) || png_chunks_ok(b, len, err, errlen) ||
	    png_decodes(b, len, err, errlen))
		return IMAGE_BAD_INPUT;

	FILE *f = fopen(path, "wb");
	if (!f) {
		snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
		return -1;
	}
	size_t ihdr_end = 8 + 12 + 13;
	int ok = fwrite(b, 1, ihdr_end, f) == ihdr_end;
	for (int i = 0; ok && i < ntext; i++)
		ok = write_texts(f, &text[i]) == 0;
	/* the rest chunk by chunk (png_chunks_ok walked them): server text is capped */
	size_t text_kept = 0;
	for (size_t i = ihdr_end; ok && len - i >= 12;) {
		size_t whole = 12 + (size_t)be32(b + i);
		const unsigned char *type = b + i + 4;
		bool text_chunk = !memcmp(type, "tEXt", 4) || !memcmp(type, "zTXt", 4) ||
				  !memcmp(type, "iTXt", 4);
		if (!text_chunk || text_kept + whole - 12 <= IMAGE_SERVER_TEXT_MAX) {
			ok = fwrite(b + i, 1, whole, f) == whole;
			if (text_chunk)
				text_kept += whole - 12;
		}
		bool end = !memcmp(type, "IEND", 4);
		i += whole;
		if (end)
			break;
	}
	ok = (fclose(f) == 0) && ok;
	if (!ok) {
		snprintf(err, errlen, "cannot write %s", path);
		unlink(path);
		return -1;
	}
	return 0;
}

/* Rows come from a callback so JPEG can stream scanlines without a whole-image buffer. */
typedef int (*row_fn)(void *ctx, unsigned char *row);

static int encode_png(const char *path, int w, int h, int channels, row_fn next_row, void *ctx,
		      const struct png_text *text, int ntext, char *err, size_t errlen)
{
	char why[128] = "PNG encode failed";
	png_structp png = NULL;
	png_infop info = NULL;
	png_text *volatile pt = NULL;
	unsigned char *volatile row = NULL;
	FILE *volatile f = fopen(path, "wb");
	int volatile rc = -1;

	if (!f) {
		snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
		return -1;
	}
	png = png_create_write_struct(PNG_LIBPNG_VER_STRING, why, png_fail, png_quiet_warning);
	info = png ? png_create_info_struct(png) : NULL;
	pt = calloc(2, sizeof(*pt));	/* one text's iTXt and tEXt */
	row = malloc((size_t)w * (size_t)channels);
	if (!info || !pt || !row)
		goto out_destroy;
	if (setjmp(png_jmpbuf(png)))
		goto out_destroy;
	png_init_io(png, f);
	png_set_compression_level(png, 3);
	png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8,
		     channels == 4 ? PNG_COLOR_TYPE_RGBA :
		     channels == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY,
		     PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
	for (int i = 0; i < ntext; i++) {
		bool exact;
		char *l1 = to_latin1(text[i].value, &exact);
		int k = 0;
		if (!l1) {
			snprintf(why, sizeof(why), "out of memory");
			goto out_destroy;
		}
		memset(pt, 0, 2 * sizeof(*pt));
		if (!text[i].once || !exact) {
			pt[k].compression = PNG_ITXT_COMPRESSION_NONE;
			pt[k].key = (png_charp)text[i].key;
			pt[k].text = (png_charp)text[i].value;
			pt[k++].itxt_length = strlen(text[i].value);
		}
		if (!text[i].once || exact) {
			pt[k].compression = PNG_TEXT_COMPRESSION_NONE;
			pt[k].key = (png_charp)text[i].key;
			pt[k].text = l1;
			pt[k++].text_length = strlen(l1);
		}
		png_set_text(png, info, pt, k);	/* copies key and text */
		free(l1);
	}
	png_write_info(png, info);
	for (int y = 0; y < h; y++) {
		if (next_row(ctx, row)) {
			snprintf(why, sizeof(why), "source image decode failed");
			rc = IMAGE_BAD_INPUT;
			goto out_destroy;
		}
		png_write_row(png, row);
	}
	png_write_end(png, info);
	rc = 0;
out_destroy:
	png_destroy_write_struct(&png, info ? &info : NULL);
	free(pt);
	free(row);
	if (fclose(f) != 0 && rc == 0) {
		snprintf(why, sizeof(why), "close failed");
		rc = -1;
	}
	if (rc) {
		snprintf(err, errlen, "%s", why);
		unlink(path);
	}
	return rc;
}

/* ---- JPEG ------------------------------------------------------------- */

struct jpeg_fail {
	struct jpeg_error_mgr pub;
	jmp_buf jb;
	char msg[JMSG_LENGTH_MAX];
};

static void jpeg_fail_exit(j_common_ptr c)
{
	struct jpeg_fail *e = (struct jpeg_fail *)c->err;
	c->err->format_message(c, e->msg);
	longjmp(e->jb, 1);
}

/* Corrupt-data warnings (level -1) would give a grey-filled image: treat them as errors. */
static void jpeg_fail_emit(j_common_ptr c, int level)
{
	if (level < 0)
		jpeg_fail_exit(c);
}

struct jpeg_rows {
	struct jpeg_decompress_struct *d;
	struct jpeg_fail *e;
};

static int jpeg_next_row(void *ctx, unsigned char *row)
{
	struct jpeg_rows *r = ctx;
	JSAMPROW rows[1] = { row };
	if (setjmp(r->e->jb))
		return -1;
	return jpeg_read_scanlines(r->d, rows, 1) == 1 ? 0 : -1;
}

static int jpeg_to_png(const unsigned char *b, size_t len, const struct png_text *text, int ntext,
		       const char *path, char *err, size_t errlen)
{
	struct jpeg_decompress_struct d;
	struct jpeg_fail e;
	volatile int rc = -1;

	memset(&e, 0, sizeof(e));
	d.err = jpeg_std_error(&e.pub);
	e.pub.error_exit = jpeg_fail_exit;
	e.pub.emit_message = jpeg_fail_emit;
	jpeg_create_decompress(&d);
	if (setjmp(e.jb)) {
		snprintf(err, errlen, "JPEG: %s", e.msg);
		rc = IMAGE_BAD_INPUT;
		goto out_destroy;
	}
	jpeg_mem_src(&d, b, (unsigned long)len);
	jpeg_read_header(&d, TRUE);
	if (d.image_width > IMAGE_MAX_SIDE || d.image_height > IMAGE_MAX_SIDE) {
		snprintf(err, errlen, "JPEG too large");
		rc = IMAGE_BAD_INPUT;
		goto out_destroy;
	}
	int channels = 3;
	if (d.jpeg_color_space == JCS_GRAYSCALE) {
		d.out_color_space = JCS_GRAYSCALE;
		channels = 1;
	} else {
		d.out_color_space = JCS_RGB;
	}
	jpeg_start_decompress(&d);
	struct jpeg_rows r = { &d, &e };
	rc = encode_png(path, (int)d.output_width, (int)d.output_height, channels, jpeg_next_row, &r,
			text, ntext, err, errlen);
	if (rc == 0) {
		if (setjmp(e.jb)) {
			snprintf(err, errlen, "JPEG: %s", e.msg);
			unlink(path);
			rc = IMAGE_BAD_INPUT;
			goto out_destroy;
		}
		jpeg_finish_decompress(&d);
	} else if (e.msg[0]) {
		snprintf(err, errlen, "JPEG: %s", e.msg);
	}
out_destroy:
	jpeg_destroy_decompress(&d);
	return rc;
}

/* ---- WebP ------------------------------------------------------------- */

struct rgba_rows {
	const unsigned char *px;
	size_t stride;
	int y;
};

static int rgba_next_row(void *ctx, unsigned char *row)
{
	struct rgba_rows *r = ctx;
	memcpy(row, r->px + (size_t)r->y * r->stride, r->stride);
	r->y++;
	return 0;
}

static int webp_to_png(const unsigned char *b, size_t len, const struct png_text *text, int ntext,
		       const char *path, char *err, size_t errlen)
{
	int w = 0, h = 0;
	uint8_t *px = WebPDecodeRGBA(b, len, &w, &h);
	if (!px) {
		snprintf(err, errlen, "WebP decode failed");
		return IMAGE_BAD_INPUT;
	}
	struct rgba_rows r = { px, (size_t)w * 4, 0 };
	int rc = encode_png(path, w, h, 4, rgba_next_row, &r, text, ntext, err, errlen);
	WebPFree(px);
	return rc;
}

int image_write_png(const unsigned char *b, size_t len, const struct png_text *text, int ntext,
		    const char *path, char *err, size_t errlen)
{
	const char *mime = image_sniff(b, len);
	if (!mime) {
		seterr(err, errlen, "not a PNG, JPEG or WebP image");
		return IMAGE_BAD_INPUT;
	}
	if (ntext < 0 || (ntext > 0 && !text) || check_texts(text, ntext, err, errlen))
		return -1;
	if (strcmp(mime, "image/png") == 0)
		return copy_png(b, len, text, ntext, path, err, errlen);
	if (strcmp(mime, "image/jpeg") == 0)
		return jpeg_to_png(b, len, text, ntext, path, err, errlen);
	return webp_to_png(b, len, text, ntext, path, err, errlen);
}

/* ---- base64 ----------------------------------------------------------- */

static const char b64_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64_val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/*
 * Strict: only the standard alphabet; '=' only as 1 or 2 final pad characters
 * making the length a multiple of 4; unpadded input is accepted when its
 * length mod 4 is 2 or 3 (never 1: that is a truncated quantum).  Line breaks
 * (\r, \n) are skipped, as in MIME-wrapped data URLs.
 */
unsigned char *base64_decode(const char *s, size_t slen, size_t *outlen)
{
	if (!s || !outlen)
		return NULL;
	unsigned char *out = malloc(slen / 4 * 3 + 3);
	if (!out)
		return NULL;
	size_t o = 0, nchars = 0, pad = 0;
	uint32_t acc = 0;
	int q = 0;

	for (size_t i = 0; i < slen; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\n' || c == '\r')
			continue;
		if (c == '=') {
			pad++;
			if (pad > 2)
				goto out_bad;
			continue;
		}
		if (pad)	/* data after padding */
			goto out_bad;
		int v = b64_val(c);
		if (v < 0)
			goto out_bad;
		nchars++;
		acc = acc << 6 | (uint32_t)v;
		if (++q == 4) {
			out[o++] = (unsigned char)(acc >> 16);
			out[o++] = (unsigned char)(acc >> 8);
			out[o++] = (unsigned char)acc;
			acc = 0;
			q = 0;
		}
	}
	if (q == 1)
		goto out_bad;
	if (pad && (nchars + pad) % 4 != 0)
		goto out_bad;
	if (pad && q == 0)
		goto out_bad;
	if (q == 2) {
		out[o++] = (unsigned char)(acc >> 4);
	} else if (q == 3) {
		out[o++] = (unsigned char)(acc >> 10);
		out[o++] = (unsigned char)(acc >> 2);
	}
	*outlen = o;
	return out;
out_bad:
	free(out);
	return NULL;
}

long base64_decode_inplace(unsigned char *buf, size_t off, size_t n)
{
	const unsigned char *s = buf + off;
	size_t pad = 0, i, o = 0;

	/* validate first: a failure must leave buf as it was */
	while (pad < 2 && pad < n && s[n - 1 - pad] == '=')
		pad++;
	size_t body = n - pad;
	if (body % 4 == 1 || (pad && (n % 4 != 0 || body % 4 == 0)))
		return -1;
	for (i = 0; i < body; i++)
		if (b64_val(s[i]) < 0)
			return -1;
	for (i = 0; i + 4 <= body; i += 4) {
		uint32_t v = (uint32_t)b64_val(s[i]) << 18 | (uint32_t)b64_val(s[i + 1]) << 12 |
			     (uint32_t)b64_val(s[i + 2]) << 6 | (uint32_t)b64_val(s[i + 3]);
		buf[o++] = (unsigned char)(v >> 16);	/* o < off + i: behind the reading */
		buf[o++] = (unsigned char)(v >> 8);
		buf[o++] = (unsigned char)v;
	}
	if (body - i == 2) {
		uint32_t v = (uint32_t)b64_val(s[i]) << 6 | (uint32_t)b64_val(s[i + 1]);
		buf[o++] = (unsigned char)(v >> 4);
	} else if (body - i == 3) {
		uint32_t v = (uint32_t)b64_val(s[i]) << 12 | (uint32_t)b64_val(s[i + 1]) << 6 |
			     (uint32_t)b64_val(s[i + 2]);
		buf[o++] = (unsigned char)(v >> 10);
		buf[o++] = (unsigned char)(v >> 2);
	}
	return (long)o;
}

char *base64_encode(const unsigned char *b, size_t len)
{
	if (len > (SIZE_MAX - 1) / 4 * 3 - 3)
		return NULL;
	char *out = malloc((len + 2) / 3 * 4 + 1);
	if (!out)
		return NULL;
	size_t o = 0, i = 0;
	for (; i + 3 <= len; i += 3) {
		uint32_t v = (uint32_t)b[i] << 16 | (uint32_t)b[i + 1] << 8 | b[i + 2];
		out[o++] = b64_chars[v >> 18];
		out[o++] = b64_chars[(v >> 12) & 63];
		out[o++] = b64_chars[(v >> 6) & 63];
		out[o++] = b64_chars[v & 63];
	}
	if (len - i == 1) {
		uint32_t v = (uint32_t)b[i] << 16;
		out[o++] = b64_chars[v >> 18];
		out[o++] = b64_chars[(v >> 12) & 63];
		out[o++] = '=';
		out[o++] = '=';
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)b[i] << 16 | (uint32_t)b[i + 1] << 8;
		out[o++] = b64_chars[v >> 18];
		out[o++] = b64_chars[(v >> 12) & 63];
		out[o++] = b64_chars[(v >> 6) & 63];
		out[o++] = '=';
	}
	out[o] = '\0';
	return out;
}
