/*
 * image.h - checking untrusted image bytes and turning them into the PNG the
 * user asked for (libpng, libjpeg-turbo, libwebp; never hand-written codecs).
 */
#ifndef BANANAFS_API_IMAGE_H
#define BANANAFS_API_IMAGE_H

#include <stdbool.h>
#include <stddef.h>

/* "image/png", "image/jpeg", "image/webp" from magic bytes; NULL otherwise. */
const char *image_sniff(const unsigned char *b, size_t len);
/* "png", "jpg", "webp" for a mime type; "bin" otherwise. */
const char *image_ext(const char *mime);

/*
 * Checks signature and header and reads the pixel size (PNG IHDR, JPEG SOF,
 * WebP VP8/VP8L/VP8X).  Returns 0, or -1 with a reason in err.
 */
int image_check(const unsigned char *b, size_t len, int *w, int *h, char *err, size_t errlen);

struct png_text {
	const char *key;		/* "prompt", "model", ... (Latin-1 keyword) */
	const char *value;		/* UTF-8 */
	/*
	 * false: written twice, as iTXt (exact UTF-8) and as a tEXt copy in
	 * Latin-1 ('?' for what Latin-1 lacks) that ImageMagick 6 shows.
	 * true: written once, as tEXt when Latin-1 holds the value exactly,
	 * else iTXt (how AUTOMATIC1111 writes "parameters").
	 */
	bool once;
};

/* Text the server put into its PNG (tEXt, zTXt, iTXt) is kept up to this many bytes in all. */
#define IMAGE_SERVER_TEXT_MAX (64 * 1024)
/* image_write_png's return when b itself is damaged (the server's fault, not the disk's). */
#define IMAGE_BAD_INPUT (-2)

/*
 * Writes b (PNG, JPEG or WebP) as a PNG file at path with the text chunks.
 * A PNG input keeps its pixels untouched; its own text chunks are kept while
 * they total at most IMAGE_SERVER_TEXT_MAX bytes (later ones are dropped);
 * the text given here is written whole.  Returns 0, IMAGE_BAD_INPUT when b
 * does not decode, or -1 (writing failed), with err set.
 * Writes path directly: callers write to a temp name and rename.
 */
int image_write_png(const unsigned char *b, size_t len, const struct png_text *text, int ntext,
		    const char *path, char *err, size_t errlen);

/*
 * Base64 decode with checks: rejects bad characters and bad length.
 * Returns a malloc'd buffer and its length, or NULL.
 */
unsigned char *base64_decode(const char *s, size_t slen, size_t *outlen);
/*
 * Decodes the base64 text at buf + off (n characters, base64_decode's strict
 * rules, no line breaks) into buf itself from its start: every byte lands
 * behind the text still to be read, so a 64 MiB image needs no second
 * buffer.  Returns the decoded length, or -1 with buf untouched when the
 * text is not valid.
 */
long base64_decode_inplace(unsigned char *buf, size_t off, size_t n);
/* Base64 encode into a malloc'd NUL-terminated string. */
char *base64_encode(const unsigned char *b, size_t len);

#endif
