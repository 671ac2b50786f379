/*
 * upgrade.h - objects made before a change of the key format keep serving.
 */
#ifndef BANANAFS_CACHE_UPGRADE_H
#define BANANAFS_CACHE_UPGRADE_H

#include "api/request.h"
#include "cache/key.h"
#include "cache/store.h"

/*
 * Called when k (key_compute(rq)) is not in the store: looks for the object
 * an older bananafs stored for the same request under an older key format
 * and, when there is one, makes it k's object too (store_alias).
 * 1 and *info when adopted, 0 when there is none, -1 on a store error.
 */
int upgrade_adopt(struct store *s, const struct gen_request *rq, const struct cache_key *k,
		  struct object_info *info);

#endif
