/*
 * imgmake.h - small images made in memory for the unit tests (libpng,
 * libjpeg, libwebp), so no binary fixtures are needed.  Header-only: each
 * test program includes it.
 */
#ifndef BANANAFS_TEST_IMGMAKE_H
#define BANANAFS_TEST_IMGMAKE_H

#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jpeglib.h>
#include <webp/encode.h>

struct memout {
	unsigned char *b;
	size_t len, cap;
};

static void memout_write(png_structp png, png_bytep d, png_size_t n)
{
	struct memout *m = png_get_io_ptr(png);
	if (m->len + n > m->cap) {
		m->cap = (m->len + n) * 2;
		m->b = realloc(m->b, m->cap);
	}
	memcpy(m->b + m->len, d, n);
	m->len += n;
}

static void memout_flush(png_structp png)
{
	(void)png;
}

/* Deterministic RGB pattern so pixels can be compared after conversion. */
static inline unsigned char pat(int x, int y, int c)
{
	return (unsigned char)((x * 7 + y * 13 + c * 71) & 0xff);
}

/* An RGB PNG of w x h; returns malloc'd bytes. */
static inline unsigned char *make_png(int w, int h, size_t *len)
{
	struct memout m = { 0 };
	png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
	png_infop info = png_create_info_struct(png);
	unsigned char *row = malloc((size_t)w * 3);
	if (setjmp(png_jmpbuf(png)))
		abort();
	png_set_write_fn(png, &m, memout_write, memout_flush);
	png_set_IHDR(png, info, w, h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
		     PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
	png_write_info(png, info);
	for (int y = 0; y < h; y++) {
		for (int x = 0; x < w; x++)
			for (int c = 0; c < 3; c++)
				row[x * 3 + c] = pat(x, y, c);
		png_write_row(png, row);
	}
	png_write_end(png, info);
	png_destroy_write_struct(&png, &info);
	free(row);
	*len = m.len;
	return m.b;
}

static inline unsigned char *make_jpeg(int w, int h, size_t *len)
{
	struct jpeg_compress_struct c;
	struct jpeg_error_mgr e;
	unsigned char *out = NULL;
	unsigned long outlen = 0;
	unsigned char *row = malloc((size_t)w * 3);

	c.err = jpeg_std_error(&e);
	jpeg_create_compress(&c);
	jpeg_mem_dest(&c, &out, &outlen);
	c.image_width = (JDIMENSION)w;
	c.image_height = (JDIMENSION)h;
	c.input_components = 3;
	c.in_color_space = JCS_RGB;
	jpeg_set_defaults(&c);
	jpeg_set_quality(&c, 90, TRUE);
	jpeg_start_compress(&c, TRUE);
	while (c.next_scanline < c.image_height) {
		int y = (int)c.next_scanline;
		for (int x = 0; x < w; x++)
			for (int k = 0; k < 3; k++)
				row[x * 3 + k] = pat(x, y, k);
		JSAMPROW r[1] = { row };
		jpeg_write_scanlines(&c, r, 1);
	}
	jpeg_finish_compress(&c);
	jpeg_destroy_compress(&c);
	free(row);
	*len = outlen;
	return out;
}

/* Lossless (VP8L) or lossy (VP8) WebP; returns bytes to free with WebPFree. */
static inline unsigned char *make_webp(int w, int h, int lossless, size_t *len)
{
	unsigned char *px = malloc((size_t)w * h * 4), *out = NULL;
	for (int y = 0; y < h; y++)
		for (int x = 0; x < w; x++) {
			for (int c = 0; c < 3; c++)
				px[(y * w + x) * 4 + c] = pat(x, y, c);
			px[(y * w + x) * 4 + 3] = 255;
		}
	*len = lossless ? WebPEncodeLosslessRGBA(px, w, h, w * 4, &out)
			: WebPEncodeRGBA(px, w, h, w * 4, 80, &out);
	free(px);
	return out;
}

/* Reads a PNG file as 8-bit RGBA; fills texts (caller frees rows). Returns 0 or -1. */
struct png_read {
	int w, h;
	unsigned char *rgba;	/* w*h*4 */
	int ntext;
	char keys[16][80];
	char vals[16][512];
	int comp[16];		/* PNG_ITXT_COMPRESSION_NONE for iTXt */
};

static inline int read_png_file(const char *path, struct png_read *r)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return -1;
	png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
	png_infop info = png_create_info_struct(png);
	if (setjmp(png_jmpbuf(png))) {
		png_destroy_read_struct(&png, &info, NULL);
		fclose(f);
		return -1;
	}
	png_init_io(png, f);
	png_read_info(png, info);
	png_set_expand(png);
	png_set_gray_to_rgb(png);
	png_set_add_alpha(png, 0xff, PNG_FILLER_AFTER);
	png_set_strip_16(png);
	png_read_update_info(png, info);
	r->w = (int)png_get_image_width(png, info);
	r->h = (int)png_get_image_height(png, info);
	r->rgba = malloc((size_t)r->w * r->h * 4);
	for (int y = 0; y < r->h; y++)
		png_read_row(png, r->rgba + (size_t)y * r->w * 4, NULL);
	png_read_end(png, info);
	png_textp t;
	int n = 0;
	png_get_text(png, info, &t, &n);
	r->ntext = n > 16 ? 16 : n;
	for (int i = 0; i < r->ntext; i++) {
		snprintf(r->keys[i], sizeof(r->keys[i]), "%s", t[i].key);
		snprintf(r->vals[i], sizeof(r->vals[i]), "%s", t[i].text);
		r->comp[i] = t[i].compression;
	}
	png_destroy_read_struct(&png, &info, NULL);
	fclose(f);
	return 0;
}

#endif
