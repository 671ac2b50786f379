/*
 * cost.c - the settled cost of one answer, from the usage it reports, or
 * the per-image price when it reports none (see cost.h).
 */
#include "api/cost.h"

#include <string.h>

#include "api/prices.h"

static long clamp(long v, long hi)
{
	return v < 0 ? 0 : v > hi ? hi : v;
}

/* The answer's tokens by kind; false when it reported no output tokens (nothing to price). */
static bool usage_of(const struct gen_result *res, bool image_made, struct token_usage *u)
{
	long in = res->in_tokens > 0 ? res->in_tokens : 0;

	memset(u, 0, sizeof(*u));
	if (res->out_tokens < 0)
		return false;
	u->image_in = res->in_by_modality ? clamp(res->in_image_tokens, in) : 0;
	u->text_in = in - u->image_in;	/* unsplit input is priced as text: the same rate on every model */
	if (res->out_by_modality)
		u->image_out = clamp(res->out_image_tokens, res->out_tokens);
	else
		u->image_out = image_made ? res->out_tokens : 0;
	u->text_out = res->out_tokens - u->image_out;
	u->thought = res->thought_tokens > 0 ? res->thought_tokens : 0;
	u->search_queries = res->search_queries > 0 ? res->search_queries : 0;
	return true;
}

/* The per-image figure: est, with the served model's price for the asked one's, and the queries run. */
static double per_image(const struct gen_request *rq, const struct gen_result *res, double est)
{
	double usd = est;

	if (res->model_served[0] && strcmp(res->model_served, rq->model) != 0) {
		double asked = price_usd(rq->model, rq->size, rq->route);
		double served = price_usd(res->model_served, rq->size, rq->route);
		if (asked >= 0 && served >= 0 && est >= 0)
			usd = est - asked + served;	/* the image's price swapped, the rest kept */
	}
	/* A grounded request reserved one search query; it pays for those the answer reports. */
	if (rq->search && usd >= 0)
		usd += (res->search_queries - 1) * price_search_query_usd();
	return usd;
}

void answer_cost(const struct gen_request *rq, const struct gen_result *res, bool image_made, double est,
		 struct answer_cost *out)
{
	const char *model = res->model_served[0] ? res->model_served : rq->model;
	struct token_usage u;
	double usd;

	memset(out, 0, sizeof(*out));
	if (rates_route_factor(rq->route) >= 0 && rates_find(model) && usage_of(res, image_made, &u)) {
		double pinned = price_entered_usd(model, rq->size, rq->route);
		if (pinned >= 0) {
			struct token_usage rest = u;
			rest.image_out = 0;
			usd = rates_cost_usd(model, rq->route, &rest) + (u.image_out > 0 ? pinned : 0);
		} else {
			usd = rates_cost_usd(model, rq->route, &u);
		}
		if (usd >= 0) {
			out->usd = usd;
			out->from_usage = true;
			out->usage = u;
			return;
		}
	}
	out->usd = per_image(rq, res, est);
}
