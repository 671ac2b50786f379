/*
 * key.c - the cache key.
 *
 * The cache key names one image: the object a request would produce.  It is
 * XXH3-128 over a canonical encoding of everything that changes the pixels.
 * The canonical form of key format 2 (KEY_FORMAT_VERSION), field by field:
 *
 *   V  KEY_FORMAT_VERSION, 2 (bump it when this encoding changes, and teach
 *      cache/upgrade.c the old form so stores made before keep serving),
 *   M  the resolved model id ("gemini-3-pro-image", never the alias "pro"),
 *   S  the image size ("1K"),
 *   A  the aspect ("16:9"),
 *   I  this candidate's index (1..n).  The count n is NOT in the key: each
 *      candidate is its own request and its own image, so raising `n: 3` to
 *      `n: 4` pays for candidate 4 only, and lowering it pays nothing;
 *   v  the variant (0 unless the prompt asks for a fresh image),
 *   P  the normalised prompt text: header removed, white space trimmed (so
 *      `echo` and `printf` give one key), line endings as LF (CRLF and a lone
 *      CR become LF, so a file saved on Windows is the same request),
 *   R  the number of reference images, then
 *   H  the content hash of each, in the order the header names them (order
 *      changes the request),
 *   Y  the system instruction (`system:`), only when one is given, and
 *   G  1 when Google Search grounding is asked for (`search: yes`), only
 *      then.  Both are left out when unset, so every key made before they
 *      existed is unchanged (no format bump), and the tags keep "set" and
 *      "unset" apart.
 *
 * What is NOT in it, on purpose:
 *   - the route: standard, flex, batch, generate and gateway ask the same
 *     model for the same image, so an image bought through Batch serves a
 *     later Standard request without a second payment;
 *   - the prompt's file name and folder: the same text in two projects is one
 *     image, paid once;
 *   - the reference images' names and mime types: only their bytes matter.
 *
 * Encoding: every field is a 1-byte tag, a 4-byte little-endian length and
 * the bytes (integers as 8-byte little-endian two's complement).  Because
 * every field carries its length and its tag, no two different requests can
 * produce the same byte stream ("ab"+"c" vs "a"+"bc" differ), so a collision
 * needs a real XXH3-128 collision.  XXH3 is not a cryptographic hash; the
 * key guards against paying twice, not against an attacker who can already
 * write prompt files.
 *
 * Key format 1 (bananafs up to key format 2) had the same fields plus
 * N (the count n, between A and I), and hashed the prompt text with its line
 * endings as written.  key_compute_format1() still computes it, so that
 * cache/upgrade.c can find an object a store made before the upgrade.
 *
 * The key may be logged, shown in xattrs, PNG text chunks and the ledger: it
 * is a hash of the request and reveals neither the prompt nor any key.  It
 * survives restarts; across a change of KEY_FORMAT_VERSION the store's
 * objects are adopted under the new key on first use (cache/upgrade.c).
 */
#include "cache/key.h"

#include <string.h>
#define XXH_STATIC_LINKING_ONLY	/* XXH3_state_t on the stack: no malloc to fail */
#include <xxhash.h>

enum key_tag {
	KT_VERSION = 'V',
	KT_MODEL = 'M',
	KT_SIZE = 'S',
	KT_ASPECT = 'A',
	KT_N = 'N',
	KT_INDEX = 'I',
	KT_VARIANT = 'v',
	KT_PROMPT = 'P',
	KT_NREFS = 'R',
	KT_REF = 'H',
	KT_SYSTEM = 'Y',
	KT_SEARCH = 'G',
};

static void
key_put(XXH3_state_t *st, enum key_tag tag, const void *b, size_t len)
{
	unsigned char hdr[5];
	uint32_t l = (uint32_t)len;

	hdr[0] = (unsigned char)tag;
	hdr[1] = (unsigned char)(l & 0xff);
	hdr[2] = (unsigned char)((l >> 8) & 0xff);
	hdr[3] = (unsigned char)((l >> 16) & 0xff);
	hdr[4] = (unsigned char)((l >> 24) & 0xff);
	XXH3_128bits_update(st, hdr, sizeof(hdr));
	if (len > 0)
		XXH3_128bits_update(st, b, len);
}

static void
key_put_int(XXH3_state_t *st, enum key_tag tag, long long v)
{
	unsigned char b[8];
	unsigned long long u = (unsigned long long)v;

	for (int i = 0; i < 8; i++)
		b[i] = (unsigned char)((u >> (8 * i)) & 0xff);
	key_put(st, tag, b, sizeof(b));
}

static void
key_put_str(XXH3_state_t *st, enum key_tag tag, const char *s)
{
	/* NULL and "" encode alike: both mean "not given". */
	key_put(st, tag, s, s != NULL ? strlen(s) : 0);
}

/* Both formats share this; n < 0 leaves the count out (format 2). */
static void
key_encode(const struct gen_request *rq, int version, int n, const char *prompt, size_t prompt_len,
	   struct cache_key *out)
{
	XXH3_state_t st;
	XXH128_hash_t h;
	XXH128_canonical_t c;
	int nrefs = rq->refs != NULL && rq->nrefs > 0 ? rq->nrefs : 0;

	/* A stack state avoids a malloc that could fail; reset initialises it. */
	XXH3_128bits_reset(&st);
	key_put_int(&st, KT_VERSION, version);
	key_put_str(&st, KT_MODEL, rq->model);
	key_put_str(&st, KT_SIZE, rq->size);
	key_put_str(&st, KT_ASPECT, rq->aspect);
	if (n >= 0)
		key_put_int(&st, KT_N, n);
	key_put_int(&st, KT_INDEX, rq->index);
	key_put_int(&st, KT_VARIANT, rq->variant);
	key_put(&st, KT_PROMPT, prompt, prompt != NULL ? prompt_len : 0);
	key_put_int(&st, KT_NREFS, nrefs);
	for (int i = 0; i < nrefs; i++)
		key_put(&st, KT_REF, rq->refs[i].hash, sizeof(rq->refs[i].hash));
	if (rq->system != NULL && rq->system[0] != '\0')
		key_put_str(&st, KT_SYSTEM, rq->system);
	if (rq->search)
		key_put_int(&st, KT_SEARCH, 1);
	/* rq->route is deliberately left out: see the comment at the top. */

	h = XXH3_128bits_digest(&st);
	XXH128_canonicalFromHash(&c, h);
	_Static_assert(sizeof(c.digest) == sizeof(out->b), "canonical XXH128 is 16 bytes");
	memcpy(out->b, c.digest, sizeof(out->b));
}

void
key_compute(const struct gen_request *rq, struct cache_key *out)
{
	key_encode(rq, KEY_FORMAT_VERSION, -1, rq->prompt, rq->prompt_len, out);
}

void
key_compute_format1(const struct gen_request *rq, int n, struct cache_key *out)
{
	if (rq->prompt_as_written != NULL)
		key_encode(rq, 1, n, rq->prompt_as_written, rq->prompt_as_written_len, out);
	else
		key_encode(rq, 1, n, rq->prompt, rq->prompt_len, out);
}

void
key_hex(const struct cache_key *k, char out[KEY_HEX_LEN])
{
	static const char hexd[] = "0123456789abcdef";

	for (size_t i = 0; i < sizeof(k->b); i++) {
		out[2 * i] = hexd[k->b[i] >> 4];
		out[2 * i + 1] = hexd[k->b[i] & 0xf];
	}
	out[KEY_HEX_LEN - 1] = '\0';
}

static int
hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

int
key_from_hex(const char *s, struct cache_key *out)
{
	struct cache_key k;

	if (s == NULL || strlen(s) != KEY_HEX_LEN - 1)
		return -1;
	for (size_t i = 0; i < sizeof(k.b); i++) {
		int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		k.b[i] = (uint8_t)(hi << 4 | lo);
	}
	*out = k;			/* untouched on failure */
	return 0;
}

void
key_hash_bytes(const void *b, size_t len, uint8_t out[16])
{
	XXH128_hash_t h = XXH3_128bits(b, len);
	XXH128_canonical_t c;

	XXH128_canonicalFromHash(&c, h);
	memcpy(out, c.digest, 16);
}
