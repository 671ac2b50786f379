/*
 * rates.h - what Google bills per token, per model, as dated data, and the
 * price of a set of token counts at those rates.
 *
 * Google bills an image request by its tokens (gemini-wire.md 5.3): input
 * text and image tokens, image output tokens, text output tokens (thinking
 * included), and each Google Search query of a grounded request.  The
 * per-image table (prices.h) stays the estimate reserved before sending;
 * these rates price what an answer reports it used.
 */
#ifndef BANANAFS_API_RATES_H
#define BANANAFS_API_RATES_H

#include <stddef.h>

#include "api/request.h"

/* One model's rates at the standard (real-time) tier. */
struct token_rates {
	const char *model;		/* "gemini-3-pro-image" */
	double text_in;			/* USD per 1M input text tokens */
	double image_in;		/* USD per 1M input image tokens */
	double image_out;		/* USD per 1M image output tokens */
	double text_out;		/* USD per 1M text output tokens; thinking is billed as text output */
	double search_query;		/* USD per Google Search query (not discounted, [INF]) */
	const char *checked;		/* "YYYY-MM-DD" the row was checked */
	const char *source;		/* confidence mark from gemini-wire.md ("[3P]", "[INF]") */
};

/* Token counts of one answer, as billed; every count >= 0. */
struct token_usage {
	long text_in, image_in;		/* input tokens by modality */
	long image_out;			/* image output tokens */
	long text_out;			/* text output tokens (not thinking) */
	long thought;			/* thinking tokens: billed at the text output rate */
	int search_queries;		/* Google Search queries run */
};

/* The rates of a model id or alias; NULL when no rates are known. */
const struct token_rates *rates_find(const char *model);
size_t rates_count(void);
const struct token_rates *rates_at(size_t i);	/* NULL past the end */

/*
 * The multiplier of a route on the token rates: 1 standard and generate,
 * 0.5 batch (Google's page) and flex (reported by third parties), -1 for a
 * gateway (billed by the provider, not by Google's rates).
 */
double rates_route_factor(enum route r);

/*
 * USD for u on model at route r: tokens at the model's rates times the
 * route's factor, plus the search queries.  -1 when the model has no rates
 * or the route is not billed by Google (gateway).
 */
double rates_cost_usd(const char *model, enum route r, const struct token_usage *u);

#endif
