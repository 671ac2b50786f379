/*
 * keycheck.h - does an endpoint answer and accept a key?  One free
 * models.get call: no image is made and nothing is billed.  The daemon
 * runs it for .bananafs/doctor with its own key and endpoint; bananactl
 * doctor runs it only when no mount is found.  The key is never put in
 * the report.
 */
#ifndef BANANAFS_API_KEYCHECK_H
#define BANANAFS_API_KEYCHECK_H

#include <stdbool.h>
#include <stddef.h>
#include "api/http.h"
#include "api/route.h"

struct key_check {
	bool ok;
	char what[512];			/* "endpoint X reachable, key accepted" or what failed */
	char next[256];			/* the next move when !ok; "" otherwise */
};

/*
 * GET {base}/{version}/models/{model} with ep's key (x-goog-api-key, or
 * Bearer when ep->bearer).  Fills *out; curl must be initialised.
 */
void api_key_check(const struct http_opts *o, const struct api_endpoint *ep, const char *model,
		   struct key_check *out);

#endif
