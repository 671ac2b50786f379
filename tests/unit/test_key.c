/*
 * test_key.c - the cache key: what enters it, what does not, and its
 * encoding.  Keys are compared with each other, never with stored values.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "cache/key.h"
#include "cache/prompt.h"

static unsigned char img_a[] = "\x89PNG\r\n\x1a\n first image";
static unsigned char img_b[] = "\x89PNG\r\n\x1a\n other image";

static struct ref_image refs[2];

static void
base_request(struct gen_request *rq)
{
	static const char text[] = "a fox in the snow";

	memset(rq, 0, sizeof(*rq));
	rq->model = "gemini-3-pro-image";
	rq->size = "2K";
	rq->aspect = "1:1";
	rq->prompt = text;
	rq->prompt_len = strlen(text);
	rq->n = 1;
	rq->index = 1;
	rq->variant = 0;
	rq->route = ROUTE_STANDARD;
}

static void
compute(const struct gen_request *rq, struct cache_key *k)
{
	memset(k, 0xAA, sizeof(*k));
	key_compute(rq, k);
}

static bool
same(const struct cache_key *a, const struct cache_key *b)
{
	return memcmp(a->b, b->b, sizeof(a->b)) == 0;
}

static int
setup_refs(void **state)
{
	(void)state;
	refs[0].data = img_a, refs[0].len = sizeof(img_a) - 1, refs[0].mime = "image/png";
	refs[1].data = img_b, refs[1].len = sizeof(img_b) - 1, refs[1].mime = "image/png";
	key_hash_bytes(refs[0].data, refs[0].len, refs[0].hash);
	key_hash_bytes(refs[1].data, refs[1].len, refs[1].hash);
	return 0;
}

static void
test_deterministic(void **state)
{
	struct gen_request rq;
	struct cache_key a, b;

	(void)state;
	base_request(&rq);
	compute(&rq, &a);
	compute(&rq, &b);
	assert_true(same(&a, &b));
}

/* DESIGN.md: "echo and printf give the same request". */
static void
test_echo_vs_printf(void **state)
{
	const char *echo = "a fox in the snow\n", *printf_ = "a fox in the snow";
	const char *crlf = "\r\n  a fox in the snow \r\n\r\n";
	struct prompt p1, p2, p3;
	struct gen_request r1, r2, r3;
	struct cache_key k1, k2, k3;
	char err[256];

	(void)state;
	assert_int_equal(prompt_parse(echo, strlen(echo), &p1, err, sizeof(err)), PROMPT_OK);
	assert_int_equal(prompt_parse(printf_, strlen(printf_), &p2, err, sizeof(err)), PROMPT_OK);
	assert_int_equal(prompt_parse(crlf, strlen(crlf), &p3, err, sizeof(err)), PROMPT_OK);
	base_request(&r1);
	base_request(&r2);
	base_request(&r3);
	r1.prompt = p1.text, r1.prompt_len = p1.len;
	r2.prompt = p2.text, r2.prompt_len = p2.len;
	r3.prompt = p3.text, r3.prompt_len = p3.len;
	compute(&r1, &k1);
	compute(&r2, &k2);
	compute(&r3, &k3);
	assert_true(same(&k1, &k2));
	assert_true(same(&k1, &k3));
	prompt_free(&p1);
	prompt_free(&p2);
	prompt_free(&p3);
}

/* Every field that changes the image changes the key. */
static void
test_every_field_matters(void **state)
{
	struct gen_request base, rq;
	struct cache_key kb, k;
	const char *other_text = "a fox in the snoW";

	(void)state;
	base_request(&base);
	compute(&base, &kb);

#define EXPECT_DIFFERENT(mutation) do {			\
		rq = base;				\
		mutation;				\
		compute(&rq, &k);			\
		assert_false(same(&kb, &k));		\
	} while (0)

	EXPECT_DIFFERENT(rq.model = "gemini-3.1-flash-image");
	EXPECT_DIFFERENT(rq.size = "4K");
	EXPECT_DIFFERENT(rq.aspect = "16:9");
	EXPECT_DIFFERENT((rq.n = 2, rq.index = 2));
	EXPECT_DIFFERENT(rq.variant = 1);
	EXPECT_DIFFERENT(rq.prompt = other_text);
	EXPECT_DIFFERENT(rq.prompt_len = base.prompt_len - 1);
	EXPECT_DIFFERENT((rq.refs = refs, rq.nrefs = 1));
#undef EXPECT_DIFFERENT
}

/* DESIGN.md 2: the candidate's index is in the key, the count is not. */
static void
test_count_not_in_key(void **state)
{
	struct gen_request rq;
	struct cache_key k3[4], k4[5], k;

	(void)state;
	base_request(&rq);
	rq.n = 3;
	for (rq.index = 1; rq.index <= 3; rq.index++)
		compute(&rq, &k3[rq.index]);
	rq.n = 4;
	for (rq.index = 1; rq.index <= 4; rq.index++)
		compute(&rq, &k4[rq.index]);
	/* n: 3 -> n: 4 keeps candidates 1-3 and adds one new key. */
	for (int i = 1; i <= 3; i++) {
		assert_true(same(&k3[i], &k4[i]));
		assert_false(same(&k4[4], &k3[i]));
	}
	/* n: 1 is candidate 1 of any count. */
	rq.n = 1, rq.index = 1;
	compute(&rq, &k);
	assert_true(same(&k, &k3[1]));
	assert_false(same(&k3[1], &k3[2]));
}

/* CRLF and a lone CR are LF before hashing; the text handed on has no CR. */
static void
test_line_endings(void **state)
{
	const char *lf = "---\nn: 2\n---\nline one\nline two\n";
	const char *crlf = "---\r\nn: 2\r\n---\r\nline one\r\nline two\r\n";
	const char *cr = "---\rn: 2\r---\rline one\rline two\r";
	const char *texts[] = { lf, crlf, cr };
	struct cache_key k[3];
	char err[256];

	(void)state;
	for (int i = 0; i < 3; i++) {
		struct prompt p;
		struct gen_request rq;

		assert_int_equal(prompt_parse(texts[i], strlen(texts[i]), &p, err, sizeof(err)), PROMPT_OK);
		assert_int_equal(p.n, 2);
		assert_string_equal(p.text, "line one\nline two");
		base_request(&rq);
		rq.prompt = p.text, rq.prompt_len = p.len;
		compute(&rq, &k[i]);
		/* Only CRLF is kept as written: the old parser did not read a CR-only header. */
		if (i == 1)
			assert_string_equal(p.text_as_written, "line one\r\nline two");
		else
			assert_null(p.text_as_written);
		prompt_free(&p);
	}
	assert_true(same(&k[0], &k[1]));
	assert_true(same(&k[0], &k[2]));
}

/*
 * Key format 1 is frozen: these keys were written by the release before key
 * format 2 into tests/mount/fixtures/store-v1.tar.gz (see its ledger), and
 * cache/upgrade.c finds those objects only if they are computed exactly.
 */
static void
test_format1_is_frozen(void **state)
{
	const char *pair = "---\r\nn: 2\r\n---\r\nline one\r\nline two\r\n";
	struct gen_request rq;
	struct cache_key k;
	struct prompt p;
	char hex[KEY_HEX_LEN], err[256];

	(void)state;
	base_request(&rq);
	rq.model = "gemini-3.1-flash-image", rq.size = "512";
	rq.prompt = "a red fox in the snow", rq.prompt_len = strlen(rq.prompt);
	key_compute_format1(&rq, 1, &k);
	key_hex(&k, hex);
	assert_string_equal(hex, "accead9f02843cb02f80af3bbccb0114");
	/* The current format is another key for the same request. */
	compute(&rq, &k);
	key_hex(&k, hex);
	assert_string_not_equal(hex, "accead9f02843cb02f80af3bbccb0114");

	assert_int_equal(prompt_parse(pair, strlen(pair), &p, err, sizeof(err)), PROMPT_OK);
	rq.prompt = p.text, rq.prompt_len = p.len;
	rq.prompt_as_written = p.text_as_written, rq.prompt_as_written_len = p.len_as_written;
	rq.n = 2, rq.index = 1;
	key_compute_format1(&rq, 2, &k);
	key_hex(&k, hex);
	assert_string_equal(hex, "442b9a38446aae1cbc904b9b7457e0b7");
	rq.index = 2;
	key_compute_format1(&rq, 2, &k);
	key_hex(&k, hex);
	assert_string_equal(hex, "cc160087f64e6326da4d88fdbda03ce6");
	prompt_free(&p);
}

/* Length prefixes: moving bytes between fields gives another key. */
static void
test_field_boundaries(void **state)
{
	struct gen_request a, b;
	struct cache_key ka, kb;

	(void)state;
	base_request(&a);
	base_request(&b);
	a.model = "ab", a.size = "c";
	b.model = "a", b.size = "bc";
	compute(&a, &ka);
	compute(&b, &kb);
	assert_false(same(&ka, &kb));

	base_request(&a);
	base_request(&b);
	a.aspect = "1:1", a.prompt = "x", a.prompt_len = 1;
	b.aspect = "1:", b.prompt = "1x", b.prompt_len = 2;
	compute(&a, &ka);
	compute(&b, &kb);
	assert_false(same(&ka, &kb));
}

/* DESIGN.md 2: "The route is not in the key". */
static void
test_route_not_in_key(void **state)
{
	struct gen_request rq;
	struct cache_key k0, k;

	(void)state;
	base_request(&rq);
	compute(&rq, &k0);
	for (int r = 0; r < ROUTE_COUNT; r++) {
		rq.route = (enum route)r;
		compute(&rq, &k);
		assert_true(same(&k0, &k));
	}
}

static void
test_system_and_search_in_key(void **state)
{
	struct gen_request rq;
	struct cache_key k0, k, ks, ks2, kg;

	(void)state;
	base_request(&rq);
	compute(&rq, &k0);
	rq.system = "";			/* "" is "not given": the key made before the option */
	compute(&rq, &k);
	assert_true(same(&k0, &k));
	rq.system = "pencil sketch";
	compute(&rq, &ks);
	assert_false(same(&k0, &ks));
	rq.system = "pencil sketches";
	compute(&rq, &ks2);
	assert_false(same(&ks, &ks2));
	rq.system = NULL;
	rq.search = true;
	compute(&rq, &kg);
	assert_false(same(&k0, &kg));
	assert_false(same(&ks, &kg));
	/* the system text is its own field: it cannot be confused with the prompt */
	base_request(&rq);
	rq.prompt = "a fox in the snowpencil sketch";
	rq.prompt_len = strlen(rq.prompt);
	compute(&rq, &k);
	assert_false(same(&ks, &k));
}

static void
test_refs_order_and_content(void **state)
{
	struct ref_image ab[2], ba[2], changed[2];
	struct gen_request rq;
	struct cache_key kab, kba, kchg, kone;

	(void)state;
	ab[0] = refs[0], ab[1] = refs[1];
	ba[0] = refs[1], ba[1] = refs[0];
	changed[0] = refs[0], changed[1] = refs[1];
	changed[1].hash[15] ^= 1;	/* one bit of content */

	base_request(&rq);
	rq.refs = ab, rq.nrefs = 2;
	compute(&rq, &kab);
	rq.refs = ba;
	compute(&rq, &kba);
	rq.refs = changed;
	compute(&rq, &kchg);
	rq.refs = ab, rq.nrefs = 1;
	compute(&rq, &kone);
	assert_false(same(&kab, &kba));
	assert_false(same(&kab, &kchg));
	assert_false(same(&kab, &kone));

	/* Only the bytes count: another mime or buffer with equal hash is the same key. */
	ba[0] = refs[0], ba[1] = refs[1];
	ba[0].mime = "image/jpeg";
	rq.refs = ba, rq.nrefs = 2;
	compute(&rq, &kba);
	assert_true(same(&kab, &kba));
}

static void
test_hash_bytes(void **state)
{
	uint8_t h1[16], h2[16], h3[16];

	(void)state;
	key_hash_bytes("abc", 3, h1);
	key_hash_bytes("abc", 3, h2);
	key_hash_bytes("abd", 3, h3);
	assert_memory_equal(h1, h2, 16);
	assert_memory_not_equal(h1, h3, 16);
}

static void
test_hex_round_trip(void **state)
{
	struct gen_request rq;
	struct cache_key k, back;
	char hex[KEY_HEX_LEN], upper[KEY_HEX_LEN];

	(void)state;
	base_request(&rq);
	compute(&rq, &k);
	key_hex(&k, hex);
	assert_int_equal(strlen(hex), 32);
	for (int i = 0; i < 32; i++)
		assert_true((hex[i] >= '0' && hex[i] <= '9') || (hex[i] >= 'a' && hex[i] <= 'f'));
	assert_int_equal(key_from_hex(hex, &back), 0);
	assert_true(same(&k, &back));

	/* Hex digit i is nibble i of the big-endian bytes. */
	assert_int_equal(hex[0], "0123456789abcdef"[k.b[0] >> 4]);
	assert_int_equal(hex[31], "0123456789abcdef"[k.b[15] & 0xf]);

	for (int i = 0; i < KEY_HEX_LEN; i++)
		upper[i] = (char)(hex[i] >= 'a' && hex[i] <= 'f' ? hex[i] - 32 : hex[i]);
	memset(&back, 0, sizeof(back));
	assert_int_equal(key_from_hex(upper, &back), 0);
	assert_true(same(&k, &back));
}

static void
test_hex_rejects(void **state)
{
	struct cache_key k;
	char bad[KEY_HEX_LEN];

	(void)state;
	memset(&k, 0x5A, sizeof(k));
	assert_int_equal(key_from_hex("", &k), -1);
	assert_int_equal(key_from_hex("0123", &k), -1);
	assert_int_equal(key_from_hex("0123456789abcdef0123456789abcdef0", &k), -1);
	memcpy(bad, "0123456789abcdef0123456789abcdeg", KEY_HEX_LEN);
	assert_int_equal(key_from_hex(bad, &k), -1);
	memcpy(bad, "0123456789abcdef 123456789abcdef", KEY_HEX_LEN);
	assert_int_equal(key_from_hex(bad, &k), -1);
	assert_int_equal(key_from_hex(NULL, &k), -1);
	for (size_t i = 0; i < sizeof(k.b); i++)
		assert_int_equal(k.b[i], 0x5A);	/* untouched on failure */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_deterministic),
		cmocka_unit_test(test_echo_vs_printf),
		cmocka_unit_test(test_every_field_matters),
		cmocka_unit_test(test_count_not_in_key),
		cmocka_unit_test(test_line_endings),
		cmocka_unit_test(test_format1_is_frozen),
		cmocka_unit_test(test_field_boundaries),
		cmocka_unit_test(test_route_not_in_key),
		cmocka_unit_test(test_system_and_search_in_key),
		cmocka_unit_test(test_refs_order_and_content),
		cmocka_unit_test(test_hash_bytes),
		cmocka_unit_test(test_hex_round_trip),
		cmocka_unit_test(test_hex_rejects),
	};

	return cmocka_run_group_tests(tests, setup_refs, NULL);
}
