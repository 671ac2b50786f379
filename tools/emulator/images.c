/* Deterministic stand-in images: a background colour from a hash of the
 * prompt, the prompt drawn in big letters, and model/size/aspect in a corner.
 * Same spec -> same bytes (no time chunks, fixed encoder settings). */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <png.h>

#include "emu.h"

#define TEXT_MAX 200    /* prompt characters drawn */
#define LINE_MAX_CH 512

struct canvas {
	unsigned char *px;      /* RGB, w*h*3 bytes */
	int w, h;
};

static void fill_rect(struct canvas *c, int x, int y, int w, int h,
		      const unsigned char rgb[3])
{
	if (x < 0) { w += x; x = 0; }
	if (y < 0) { h += y; y = 0; }
	if (x + w > c->w) w = c->w - x;
	if (y + h > c->h) h = c->h - y;
	if (w <= 0 || h <= 0)
		return;
	for (int yy = y; yy < y + h; yy++) {
		unsigned char *p = c->px + ((size_t)yy * c->w + x) * 3;
		for (int xx = 0; xx < w; xx++, p += 3)
			memcpy(p, rgb, 3);
	}
}

static void draw_char(struct canvas *c, int x, int y, int scale,
		      unsigned char ch, const unsigned char rgb[3])
{
	const unsigned char *g = font_glyph(ch);
	for (int row = 0; row < 7; row++)
		for (int col = 0; col < 5; col++)
			if (g[row] & (0x10 >> col))
				fill_rect(c, x + col * scale, y + row * scale,
					  scale, scale, rgb);
}

/* Prompt -> printable ASCII: one '?' per non-ASCII character. */
static size_t ascii_text(const char *s, char *out, size_t max)
{
	size_t n = 0;
	for (const unsigned char *p = (const unsigned char *)s; *p && n < max; p++) {
		if (*p >= 0x80) {
			if ((*p & 0xC0) == 0x80)
				continue;       /* UTF-8 continuation byte */
			out[n++] = '?';
		} else if (*p < 32) {
			out[n++] = ' ';
		} else {
			out[n++] = (char)*p;
		}
	}
	out[n] = '\0';
	return n;
}

/* Greedy word wrap into at most maxlines lines of cols characters. */
static int wrap(const char *t, int cols, char lines[][LINE_MAX_CH], int maxlines)
{
	int nl = 0;
	size_t len = strlen(t), i = 0;
	if (cols > LINE_MAX_CH - 1)
		cols = LINE_MAX_CH - 1;
	while (i < len && nl < maxlines) {
		while (i < len && t[i] == ' ')
			i++;
		if (i >= len)
			break;
		size_t end = i + (size_t)cols;
		if (end >= len) {
			end = len;
		} else {
			size_t sp = end;
			while (sp > i && t[sp] != ' ')
				sp--;
			if (sp > i)
				end = sp;
		}
		memcpy(lines[nl], t + i, end - i);
		lines[nl][end - i] = '\0';
		nl++;
		i = end;
	}
	return nl;
}

static void draw_text(struct canvas *c, const char *prompt, const char *label,
		      const unsigned char fg[3])
{
	char text[TEXT_MAX + 1];
	ascii_text(prompt ? prompt : "", text, TEXT_MAX);
	int minside = c->w < c->h ? c->w : c->h;
	int scale = minside / (6 * 24);
	if (scale < 1)
		scale = 1;
	static __thread char lines[64][LINE_MAX_CH];
	int nl;
	for (;;) {
		int cols = (c->w - 2 * 6 * scale) / (6 * scale);
		if (cols < 1)
			cols = 1;
		nl = wrap(text, cols, lines, 64);
		if (nl * 9 * scale <= c->h * 85 / 100 || scale == 1)
			break;
		scale--;
	}
	int y = 6 * scale;
	for (int l = 0; l < nl; l++, y += 9 * scale)
		for (int k = 0; lines[l][k]; k++)
			draw_char(c, 6 * scale + k * 6 * scale, y, scale,
				  (unsigned char)lines[l][k], fg);

	int ls = scale / 3 > 0 ? scale / 3 : 1;
	char lab[LINE_MAX_CH];
	ascii_text(label ? label : "", lab, sizeof lab - 1);
	int ly = c->h - 9 * ls;
	for (int k = 0; lab[k]; k++)
		draw_char(c, 2 * ls + k * 6 * ls, ly, ls, (unsigned char)lab[k], fg);
}

/* ---- encoders ------------------------------------------------------------ */

static void png_to_buf(png_structp p, png_bytep data, png_size_t n)
{
	struct buf *b = png_get_io_ptr(p);
	buf_add(b, data, n);
}

static void png_flush_none(png_structp p)
{
	(void)p;
}

static unsigned char *encode_png(const struct canvas *c, size_t text_bytes, bool stored,
				 size_t *len)
{
	char *volatile big = NULL;
	struct buf out = { 0 };
	png_structp p = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL,
						NULL, NULL);
	if (!p)
		return NULL;
	png_infop info = png_create_info_struct(p);
	if (!info) {
		png_destroy_write_struct(&p, NULL);
		return NULL;
	}
	if (setjmp(png_jmpbuf(p))) {
		png_destroy_write_struct(&p, &info);
		buf_free(&out);
		free(big);
		return NULL;
	}
	png_set_write_fn(p, &out, png_to_buf, png_flush_none);
	/* speed over size: a 4K frame must encode well under a second; noise
	 * does not compress, so it is stored (the size a real photo's PNG has) */
	png_set_compression_level(p, stored ? 0 : 1);
	png_set_filter(p, 0, PNG_FILTER_NONE);
	png_set_IHDR(p, info, (png_uint_32)c->w, (png_uint_32)c->h, 8,
		     PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
		     PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
	if (text_bytes > 0) {
		/* a hostile server's image: one huge text chunk */
		big = malloc(text_bytes + 1);
		if (!big)
			png_error(p, "out of memory");
		memset(big, 'T', text_bytes);
		big[text_bytes] = '\0';
		png_text t = { .compression = PNG_TEXT_COMPRESSION_NONE, .key = (char *)"Comment",
			       .text = big, .text_length = text_bytes };
		png_set_text(p, info, &t, 1);
	}
	png_write_info(p, info);
	for (int y = 0; y < c->h; y++)
		png_write_row(p, c->px + (size_t)y * c->w * 3);
	png_write_end(p, NULL);
	png_destroy_write_struct(&p, &info);
	free(big);
	if (out.oom) {
		buf_free(&out);
		return NULL;
	}
	return (unsigned char *)buf_steal(&out, len);
}

struct jerr {
	struct jpeg_error_mgr mgr;
	jmp_buf jb;
};

static void jpeg_fail(j_common_ptr ci)
{
	longjmp(((struct jerr *)ci->err)->jb, 1);
}

static unsigned char *encode_jpeg(const struct canvas *c, size_t *len)
{
	struct jpeg_compress_struct ci;
	struct jerr je;
	unsigned char *mem = NULL;
	unsigned long size = 0;

	ci.err = jpeg_std_error(&je.mgr);
	je.mgr.error_exit = jpeg_fail;
	if (setjmp(je.jb)) {
		jpeg_destroy_compress(&ci);
		free(mem);
		return NULL;
	}
	jpeg_create_compress(&ci);
	jpeg_mem_dest(&ci, &mem, &size);
	ci.image_width = (JDIMENSION)c->w;
	ci.image_height = (JDIMENSION)c->h;
	ci.input_components = 3;
	ci.in_color_space = JCS_RGB;
	jpeg_set_defaults(&ci);
	jpeg_set_quality(&ci, 85, TRUE);
	jpeg_start_compress(&ci, TRUE);
	while (ci.next_scanline < ci.image_height) {
		JSAMPROW row = c->px + (size_t)ci.next_scanline * c->w * 3;
		jpeg_write_scanlines(&ci, &row, 1);
	}
	jpeg_finish_compress(&ci);
	jpeg_destroy_compress(&ci);
	*len = size;
	return mem;
}

unsigned char *img_render(const struct img_spec *s, size_t *len)
{
	if (s->w <= 0 || s->h <= 0 || s->w > 20000 || s->h > 20000)
		return NULL;
	struct canvas c = { malloc((size_t)s->w * s->h * 3), s->w, s->h };
	if (!c.px)
		return NULL;
	const char *pr = s->prompt ? s->prompt : "";
	uint64_t h = fnv1a64(pr, strlen(pr), FNV_SEED);
	unsigned char bg[3] = { (unsigned char)(h >> 8), (unsigned char)(h >> 24),
				(unsigned char)(h >> 40) };
	int lum = (bg[0] * 299 + bg[1] * 587 + bg[2] * 114) / 1000;
	unsigned char fg[3];
	memset(fg, lum > 128 ? 0 : 255, 3);

	/* first row by pixel, the rest by copying it */
	for (int x = 0; x < c.w; x++)
		memcpy(c.px + (size_t)x * 3, bg, 3);
	for (int y = 1; y < c.h; y++)
		memcpy(c.px + (size_t)y * c.w * 3, c.px, (size_t)c.w * 3);
	draw_text(&c, pr, s->label, fg);
	if (s->noise) {
		/* every pixel random (seeded by the prompt): as incompressible as a
		 * photograph's sensor noise, so the PNG has a real answer's size */
		uint64_t x = h | 1;
		size_t n = (size_t)c.w * c.h * 3;
		for (size_t i = 0; i + 8 <= n; i += 8) {
			x ^= x >> 12;
			x ^= x << 25;
			x ^= x >> 27;
			uint64_t v = x * 0x2545F4914F6CDD1DULL;
			memcpy(c.px + i, &v, 8);
		}
	}

	unsigned char *out = s->jpeg ? encode_jpeg(&c, len) :
		encode_png(&c, s->text_bytes, s->noise, len);
	free(c.px);
	return out;
}
