/*
 * rates.c - Google's per-token rates of the image models, as data with the
 * date they were checked and their source, and the price of token counts.
 *
 * Rates are from gemini-wire.md 5.3 (third-party tables that agree with
 * Google's per-image prices: tokens x rate = price).  Input images are
 * billed as input tokens at the input rate; thought tokens as text output.
 * Batch is half price on Google's page; flex is reported at half by third
 * parties.  The table is read-only: no lock.
 */
#include "api/rates.h"

#include <string.h>

#include "api/models.h"

static const struct token_rates table[] = {
	/* model                          text in  image in  image out  text out  search   checked       source */
	{ "gemini-3-pro-image",            2.00,    2.00,     120.0,     12.00,   0.014, "2026-07-01", "[3P]" },
	{ "gemini-3.1-flash-image",        0.50,    0.50,     60.0,      3.00,    0.014, "2026-07-01", "[3P]" },
	{ "gemini-3.1-flash-lite-image",   0.25,    0.25,     30.0,      1.50,    0.014, "2026-07-01", "[3P]" },
	{ "gemini-nano-banana-2.1",        1.50,    1.50,     30.0,      7.50,    0.014, "2026-10-06", "[3P]" },
	/* text output of 2.5 Flash Image: Gemini 2.5 Flash's text rate, not confirmed for it */
	{ "gemini-2.5-flash-image",        0.30,    0.30,     30.0,      2.50,    0.014, "2026-07-01", "[INF]" },
};

size_t rates_count(void)
{
	return sizeof(table) / sizeof(table[0]);
}

const struct token_rates *rates_at(size_t i)
{
	return i < rates_count() ? &table[i] : NULL;
}

const struct token_rates *rates_find(const char *model)
{
	const struct model_info *m;

	if (!model)
		return NULL;
	if ((m = models_find(model)))
		model = m->id;	/* "pro" -> "gemini-3-pro-image" */
	for (size_t i = 0; i < rates_count(); i++)
		if (strcmp(table[i].model, model) == 0)
			return &table[i];
	return NULL;
}

double rates_route_factor(enum route r)
{
	switch (r) {
	case ROUTE_STANDARD:
	case ROUTE_GENERATE:
		return 1;
	case ROUTE_BATCH:
	case ROUTE_FLEX:
		return 0.5;
	default:
		return -1;	/* gateway: the provider's price per image */
	}
}

static long nonneg(long v)
{
	return v > 0 ? v : 0;
}

double rates_cost_usd(const char *model, enum route r, const struct token_usage *u)
{
	const struct token_rates *t = rates_find(model);
	double factor = rates_route_factor(r);

	if (!t || factor < 0 || !u)
		return -1;
	double tokens = (double)nonneg(u->text_in) * t->text_in + (double)nonneg(u->image_in) * t->image_in +
			(double)nonneg(u->image_out) * t->image_out +
			(double)(nonneg(u->text_out) + nonneg(u->thought)) * t->text_out;
	return tokens / 1e6 * factor + (u->search_queries > 0 ? u->search_queries : 0) * t->search_query;
}
