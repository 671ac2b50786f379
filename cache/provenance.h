/*
 * provenance.h - the text chunks a published PNG carries: where the image
 * came from, in the forms other people's tools read (iTXt and tEXt per key,
 * and an AUTOMATIC1111-style "parameters" chunk).
 */
#ifndef BANANAFS_CACHE_PROVENANCE_H
#define BANANAFS_CACHE_PROVENANCE_H

#include "api/image.h"
#include "api/request.h"

#define PROVENANCE_MAX 14

struct provenance {
	struct png_text t[PROVENANCE_MAX];
	int n;
	char *owned[4];			/* strings built here; freed by provenance_free */
};

/*
 * Fills pv for the image res answered to rq under key_hex: prompt, model
 * (the one that served it), requested_model (when that differs), size,
 * aspect, route, variant, key, inputs (XXH3-128 of each reference image),
 * the model's text, Software, and "parameters".  0, or -1 (out of memory).
 */
int provenance_build(struct provenance *pv, const struct gen_request *rq, const struct gen_result *res,
		     const char *key_hex);
void provenance_free(struct provenance *pv);

#endif
