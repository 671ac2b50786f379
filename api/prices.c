/*
 * prices.c - USD per image, as data with its check date and source.
 *
 * Standard (and generate) prices come from gemini-wire.md 5.3; batch and
 * flex are half of standard; gateway prices are the provider's and exist only
 * when the user enters them.  Overrides (price_set) happen at start-up only,
 * so lookups take no lock.
 */
#include "api/prices.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "api/models.h"
#include "api/rates.h"

const char prices_checked[] = "2026-07-01";

struct base_price {
	const char *model, *size;
	double usd;
	const char *source;	/* confidence mark from gemini-wire.md */
};

static const struct base_price base[] = {
	{ "gemini-3-pro-image", "1K", 0.134, "[3P]" },
	{ "gemini-3-pro-image", "2K", 0.134, "[3P]" },
	{ "gemini-3-pro-image", "4K", 0.24, "[3P]" },
	{ "gemini-3.1-flash-image", "512", 0.045, "[3P]" },
	{ "gemini-3.1-flash-image", "1K", 0.067, "[3P]" },
	{ "gemini-3.1-flash-image", "2K", 0.101, "[3P]" },
	{ "gemini-3.1-flash-image", "4K", 0.151, "[3P]" },
	{ "gemini-3.1-flash-lite-image", "1K", 0.0336, "[3P]" },
	{ "gemini-nano-banana-2.1", "1K", 0.0336, "[INF]" },
	{ "gemini-nano-banana-2.1", "2K", 0.0504, "[INF]" },
	{ "gemini-nano-banana-2.1", "4K", 0.0756, "[INF]" },
	{ "gemini-2.5-flash-image", "1K", 0.039, "[3P]" },
};

struct override {
	char model[64];
	char size[8];
	enum route route;
	double usd;
	char date[11];		/* when the user entered it (the config file's date); "" unknown */
};

#define OVERRIDES_MAX 256
static struct override overrides[OVERRIDES_MAX];
static int noverrides;

static const struct override *find_override(const char *model, const char *size, enum route r)
{
	for (int i = 0; i < noverrides; i++)
		if (overrides[i].route == r && strcmp(overrides[i].model, model) == 0 &&
		    strcmp(overrides[i].size, size) == 0)
			return &overrides[i];
	return NULL;
}

static const struct base_price *find_base(const char *model, const char *size)
{
	for (size_t i = 0; i < sizeof(base) / sizeof(base[0]); i++)
		if (strcmp(base[i].model, model) == 0 && strcmp(base[i].size, size) == 0)
			return &base[i];
	return NULL;
}

/* Resolves an alias to the model id so "pro" prices like "gemini-3-pro-image". */
static const char *canon(const char *model)
{
	const struct model_info *m = models_find(model);
	return m ? m->id : model;
}

/* Standard price: user override first, then the table.  *checked: the row's date. */
static double standard_usd(const char *model, const char *size, const char **source, const char **checked)
{
	const struct override *o = find_override(model, size, ROUTE_STANDARD);
	if (o) {
		*source = "config";
		*checked = o->date[0] ? o->date : "-";
		return o->usd;
	}
	const struct base_price *b = find_base(model, size);
	if (b) {
		*source = b->source;
		*checked = prices_checked;
		return b->usd;
	}
	*source = "";
	return -1;
}

static double lookup(const char *model, const char *size, enum route r, const char **source,
		     const char **checked)
{
	const struct override *o;

	*source = "";
	*checked = "-";
	if (!model || !size || (int)r < 0 || r >= ROUTE_COUNT)
		return -1;
	model = canon(model);
	if (r != ROUTE_STANDARD && (o = find_override(model, size, r))) {
		*source = r == ROUTE_GATEWAY ? "provider price (entered by the user)" : "config";
		*checked = o->date[0] ? o->date : "-";
		return o->usd;
	}
	switch (r) {
	case ROUTE_STANDARD:
	case ROUTE_GENERATE:
		return standard_usd(model, size, source, checked);
	case ROUTE_BATCH:
	case ROUTE_FLEX: {
		double s = standard_usd(model, size, source, checked);
		return s < 0 ? -1 : s / 2;
	}
	default:
		return -1;	/* gateway: the provider's price, unknown unless entered */
	}
}

double price_usd(const char *model, const char *size, enum route route)
{
	const char *source, *checked;
	return lookup(model, size, route, &source, &checked);
}

double price_entered_usd(const char *model, const char *size, enum route route)
{
	const char *source, *checked;
	double usd = lookup(model, size, route, &source, &checked);

	return usd >= 0 && strcmp(source, "config") == 0 ? usd : -1;
}

int price_set(const char *model, const char *size, enum route route, double usd)
{
	return price_set_dated(model, size, route, usd, NULL);
}

int price_set_dated(const char *model, const char *size, enum route route, double usd, const char *date)
{
	if (!model || !size || (int)route < 0 || route >= ROUTE_COUNT || !(usd >= 0) ||
	    usd > 1000 || strlen(size) >= sizeof(overrides[0].size))
		return -1;
	model = canon(model);
	if (strlen(model) >= sizeof(overrides[0].model))
		return -1;
	struct override *o = (struct override *)find_override(model, size, route);
	if (!o) {
		if (noverrides >= OVERRIDES_MAX)
			return -1;
		o = &overrides[noverrides++];
		snprintf(o->model, sizeof(o->model), "%s", model);
		snprintf(o->size, sizeof(o->size), "%s", size);
		o->route = route;
	}
	o->usd = usd;
	snprintf(o->date, sizeof(o->date), "%s", date && strlen(date) == 10 ? date : "");
	return 0;
}

struct strbuf {
	char *s;
	size_t len, cap;
	int oom;
};

static void sb_printf(struct strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct strbuf *b, const char *fmt, ...)
{
	va_list ap;
	for (;;) {
		if (b->oom)
			return;
		va_start(ap, fmt);
		int n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = 1;
			return;
		}
		if (b->s && (size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		}
		size_t ncap = (b->cap ? b->cap * 2 : 4096) + (size_t)n;
		char *ns = realloc(b->s, ncap);
		if (!ns) {
			b->oom = 1;
			return;
		}
		b->s = ns;
		b->cap = ncap;
	}
}

char *prices_render(void)
{
	struct strbuf b = { 0 };

	sb_printf(&b, "%-30s %-4s %-8s %-8s %-10s %s\n", "MODEL", "SIZE", "ROUTE", "USD",
		  "CHECKED", "SOURCE");
	for (size_t i = 0; i < models_count(); i++) {
		const struct model_info *m = models_at(i);
		for (int s = 0; s < m->nsizes; s++) {
			for (int r = 0; r < ROUTE_COUNT; r++) {
				const char *source, *checked;
				double usd = lookup(m->id, m->sizes[s], (enum route)r, &source, &checked);
				char num[32];
				if (usd < 0)
					snprintf(num, sizeof(num), "unknown");
				else
					snprintf(num, sizeof(num), "%.4f", usd);
				if (r == ROUTE_GATEWAY)
					source = "provider price (entered by the user)";
				else if ((r == ROUTE_BATCH || r == ROUTE_FLEX) && usd >= 0)
					source = strcmp(source, "config") == 0 ? "config" : "half of standard";
				sb_printf(&b, "%-30s %-4s %-8s %-8s %-10s %s\n", m->id, m->sizes[s],
					  route_name((enum route)r), num,
					  usd < 0 ? "-" : checked, source[0] ? source : "-");
			}
		}
	}
	sb_printf(&b, "%-30s %-4s %-8s %-8.4f %-10s %s\n", "google-search-query", "-", "-",
		  price_search_query_usd(), prices_checked, "[INF] per query of a search: yes prompt");
	sb_printf(&b, "\nTOKEN RATES, USD per 1M tokens (batch and flex: half): what each answer is settled "
		  "at, from the tokens it reports\n");
	sb_printf(&b, "%-30s %8s %8s %9s %8s %-10s %s\n", "MODEL", "TEXT-IN", "IMAGE-IN", "IMAGE-OUT",
		  "TEXT-OUT", "CHECKED", "SOURCE");
	for (size_t i = 0; i < rates_count(); i++) {
		const struct token_rates *t = rates_at(i);
		sb_printf(&b, "%-30s %8.2f %8.2f %9.2f %8.2f %-10s %s\n", t->model, t->text_in, t->image_in,
			  t->image_out, t->text_out, t->checked, t->source);
	}
	sb_printf(&b, "\nUSD per image is the estimate reserved against the budget before sending. "
		  "Google bills tokens: the ledger settles each answer from the usage it reports "
		  "(input text and images, image output, text output with thinking, search queries) "
		  "at the TOKEN RATES of the model that served it; an answer that reports no usage, and "
		  "every gateway-route answer, is settled at its USD per image (the ledger's cost_basis says "
		  "which). A price you enter in [prices] pins the image's part; its other tokens are "
		  "still priced at the rates.\n");
	sb_printf(&b, "\nSOURCE marks: [3P] = from third parties (live probes, provider docs, SDK "
		  "tables), not a Google page; [INF] = inferred (e.g. from a sibling model's price), "
		  "not confirmed anywhere; config = entered by you in [prices] (CHECKED is the date of "
		  "your config file); half of standard = batch and flex, half the standard price.\n");
	if (b.oom) {
		free(b.s);
		return NULL;
	}
	return b.s;
}

/*
 * Grounding with Google Search on Gemini 3 models: $14 per 1,000 queries
 * (Google's pricing page for the text models; image models are assumed to
 * bill alike, hence [INF]).  The free monthly allowance is not counted: an
 * estimate errs high, never low.
 */
double price_search_query_usd(void)
{
	return 0.014;
}
