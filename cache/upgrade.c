/*
 * upgrade.c - a store written by an older bananafs keeps serving its images.
 *
 * The cache key's canonical form changes now and then (cache/key.c says
 * what each format hashes).  Objects are named by key, so without help an
 * upgrade would turn every cached image into a miss and the same prompt
 * would be paid again.  Rewriting the index at mount time is not possible:
 * a key is a hash, and the store does not keep the prompts that made it.
 * So objects are adopted lazily, at the one moment both keys are known: a
 * request whose current key misses computes the keys older formats gave it,
 * and an object found under one of them is hard-linked under the new key
 * (store_alias).  The next lookup is an ordinary hit; the old name stays,
 * so a downgrade still finds it too.
 *
 * Format 1 put the count n in the key.  The request at hand may be one of
 * any count that was at least its index (`n: 3` then `n: 4` after the
 * upgrade), so every such count is tried, the request's own first.  A
 * miss costs at most PROMPT_MAX_N hashes and index lookups, next to a paid
 * request of seconds.
 */
#include "cache/upgrade.h"

#include "cache/prompt.h"
#include "cache/log.h"

/* Looks for k1 and adopts it under k.  Same return values as upgrade_adopt. */
static int adopt_one(struct store *s, const struct cache_key *k1, const struct cache_key *k,
		     struct object_info *info)
{
	struct object_info old;
	char err[512], hex[KEY_HEX_LEN];
	int rc = store_lookup(s, k1, &old);

	if (rc <= 0)
		return rc;
	if (store_alias(s, k, &old, info, err, sizeof(err)) < 0) {
		log_warnx("%s", err);
		return -1;
	}
	key_hex(k, hex);
	log_debug("adopted an object of key format 1 as %s", hex);
	return 1;
}

int upgrade_adopt(struct store *s, const struct gen_request *rq, const struct cache_key *k,
		  struct object_info *info)
{
	struct cache_key k1;
	int rc;

	if (rq->index < 1)
		return 0;
	key_compute_format1(rq, rq->n, &k1);
	if (rq->n >= rq->index && (rc = adopt_one(s, &k1, k, info)) != 0)
		return rc;
	for (int n = rq->index; n <= PROMPT_MAX_N; n++) {
		if (n == rq->n)
			continue;
		key_compute_format1(rq, n, &k1);
		if ((rc = adopt_one(s, &k1, k, info)) != 0)
			return rc;
	}
	return 0;
}
