/*
 * prices.h - the price table: data with its check date and source.
 * Unknown prices are reported as unknown (< 0), never invented.
 */
#ifndef BANANAFS_API_PRICES_H
#define BANANAFS_API_PRICES_H

#include "api/request.h"

/* USD for one image, or -1 when unknown.  Batch and flex are half of standard. */
double price_usd(const char *model, const char *size, enum route route);
/*
 * The per-image price the user entered in [prices] for model/size on route
 * (batch and flex: their own entry, else half the standard one); -1 when
 * the price is the built-in table's or unknown.
 */
double price_entered_usd(const char *model, const char *size, enum route route);
/* Override or add one price (config [prices]); 0 or -1. */
int price_set(const char *model, const char *size, enum route route, double usd);
/* The same, with the date the user entered it ("YYYY-MM-DD", shown as the row's CHECKED). */
int price_set_dated(const char *model, const char *size, enum route route, double usd, const char *date);
/* Writes the table as text ("model size route usd date source" lines) into a malloc'd string. */
char *prices_render(void);
/*
 * USD for one Google Search query of a grounded request ("search: yes"),
 * billed by Google beside the image.
 */
double price_search_query_usd(void);
extern const char prices_checked[];	/* "2026-07-01" */

#endif
