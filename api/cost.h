/*
 * cost.h - the settled cost of one answer: what Google bills for it.
 *
 * An answer that reports its usage is priced from it (rates.h), as the
 * model that served it, at the route's factor.  An answer without usage
 * (older gateways, an answer too broken to read) and every gateway answer
 * (the provider bills per image) is priced by the per-image table
 * (prices.h), the same figure that was reserved before sending.
 *
 * A per-image price the user entered in [prices] pins the image output
 * part: the image is priced at that figure and the other tokens (input,
 * text, thinking, search) at the token rates.
 */
#ifndef BANANAFS_API_COST_H
#define BANANAFS_API_COST_H

#include <stdbool.h>

#include "api/rates.h"
#include "api/request.h"

struct answer_cost {
	double usd;			/* the settled USD; < 0 unknown (an unpriced gateway) */
	bool from_usage;		/* true: from the answer's tokens; false: the per-image price */
	struct token_usage usage;	/* the billed tokens, when from_usage */
};

/*
 * The cost of res, the answer to rq.  image_made: the answer carried an
 * image (used when the output tokens are not split by modality: then they
 * are all priced as image output, which errs high).  est: the per-image
 * estimate reserved for rq, one search query included when rq->search.
 */
void answer_cost(const struct gen_request *rq, const struct gen_result *res, bool image_made, double est,
		 struct answer_cost *out);

#endif
