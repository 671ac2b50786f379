/*
 * models.h - the one data table of models, their sizes, aspects and aliases,
 * with the dates Google announced for each (GA, shutdown).  The config can add
 * models at start-up (models_add); after that the table is read-only and
 * needs no lock.
 */
#ifndef BANANAFS_API_MODELS_H
#define BANANAFS_API_MODELS_H

#include "api/clock.h"
#include <stdbool.h>
#include <stddef.h>

#define MODEL_MAX_SIZES 4

struct model_info {
	char id[64];			/* "gemini-3-pro-image" */
	char alias[16];			/* "pro"; "" for none */
	char label[48];			/* "Nano Banana Pro" */
	char sizes[MODEL_MAX_SIZES][4];	/* "512", "1K", "2K", "4K" */
	int nsizes;
	bool wide_aspects;		/* also 1:4 4:1 1:8 8:1 */
	char ga[11];			/* "YYYY-MM-DD" Google's GA date; "" unknown */
	char shutdown[11];		/* "YYYY-MM-DD" Google's shutdown date; "" none announced */
};

/* The date the catalogue was last checked against Google's pages. */
extern const char models_checked[];

/*
 * Today as "YYYY-MM-DD" (UTC), by the clock given to models_use_clock
 * (clock_real until then).  For tests only, BANANAFS_TODAY=YYYY-MM-DD in
 * the environment sets the date the catalogue compares shutdowns with.
 */
void models_today(char out[11]);
/* The clock models_today reads; NULL: clock_real.  Call before threads start. */
void models_use_clock(const struct clock_ops *clk);
/* True from the model's shutdown date on: its folder is not shown, prompts and config naming it are refused. */
bool model_retired(const struct model_info *m);
/* "gemini-2.5-flash-image was shut down by Google on 2026-10-02; ..." for an error message. */
void model_retired_msg(const struct model_info *m, char *buf, size_t len);

size_t models_count(void);
const struct model_info *models_at(size_t i);
/* By id or alias; NULL when unknown. */
const struct model_info *models_find(const char *name);
/* Adds or replaces a model from the config: sizes_csv "1K,2K". 0 or -1 (bad size, table full). */
int models_add(const char *id, const char *sizes_csv, const char *alias, bool wide_aspects);
bool model_has_size(const struct model_info *m, const char *size);
bool model_has_aspect(const struct model_info *m, const char *aspect);
/* True when Google documents Google Search grounding for the model. */
bool model_takes_search(const struct model_info *m);
/* True for any of the 14 aspect strings. */
bool aspect_valid(const char *aspect);
/* Expected pixels for model/size/aspect (gemini-wire.md 5.2); 0 or -1 when unknown. */
int model_pixels(const char *model, const char *size, const char *aspect, int *w, int *h);

#endif
