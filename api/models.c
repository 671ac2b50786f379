/*
 * models.c - the one table of image models, sizes, aspects and pixel sizes.
 *
 * Built-in rows come first; models_add (config, start-up only) appends or
 * replaces.  After start-up the table is read-only, so readers take no lock.
 */
#include "api/models.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MODELS_MAX 32

/*
 * Checked against gemini-wire.md ("Changes after 2026-07", Google's model and
 * deprecation pages) on models_checked.  Sizes: Pro has no 512; Nano Banana 2
 * all four; 2 Lite 1K only; 2.1 no 512; 2.5 one ~1K size.
 * gemini-3.1-flash-image's shutdown on 2026-10-29 is reported by third
 * parties only, not on Google's deprecations page: no date until Google says so.
 */
const char models_checked[] = "2026-12-02";

static struct model_info table[MODELS_MAX] = {
	{ "gemini-3-pro-image", "pro", "Nano Banana Pro", { "1K", "2K", "4K" }, 3, false,
	  "2026-05-28", "" },
	{ "gemini-3.1-flash-image", "flash", "Nano Banana 2", { "512", "1K", "2K", "4K" }, 4, true,
	  "2026-05-28", "" },
	{ "gemini-3.1-flash-lite-image", "lite", "Nano Banana 2 Lite", { "1K" }, 1, false,
	  "2026-06-30", "" },
	{ "gemini-nano-banana-2.1", "", "Nano Banana 2.1", { "1K", "2K", "4K" }, 3, true,
	  "2026-10-06", "" },
	{ "gemini-2.5-flash-image", "legacy", "Nano Banana (legacy)", { "1K" }, 1, false,
	  "2025-10-02", "2026-10-02" },
};
static size_t nmodels = 5;

static const char *const aspects[] = {
	"1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9",
	"1:4", "4:1", "1:8", "8:1",	/* wide: only for models with wide_aspects */
};
#define NASPECTS 14
#define NBASIC 10

static const char *const sizes[] = { "512", "1K", "2K", "4K" };

/* gemini-wire.md 5.2, Gemini 3 table: [aspect][size] = {w, h} */
static const int px3[NASPECTS][4][2] = {
	{ { 512, 512 }, { 1024, 1024 }, { 2048, 2048 }, { 4096, 4096 } },
	{ { 424, 632 }, { 848, 1264 }, { 1696, 2528 }, { 3392, 5056 } },
	{ { 632, 424 }, { 1264, 848 }, { 2528, 1696 }, { 5056, 3392 } },
	{ { 448, 600 }, { 896, 1200 }, { 1792, 2400 }, { 3584, 4800 } },
	{ { 600, 448 }, { 1200, 896 }, { 2400, 1792 }, { 4800, 3584 } },
	{ { 464, 576 }, { 928, 1152 }, { 1856, 2304 }, { 3712, 4608 } },
	{ { 576, 464 }, { 1152, 928 }, { 2304, 1856 }, { 4608, 3712 } },
	{ { 384, 688 }, { 768, 1376 }, { 1536, 2752 }, { 3072, 5504 } },
	{ { 688, 384 }, { 1376, 768 }, { 2752, 1536 }, { 5504, 3072 } },
	{ { 792, 336 }, { 1584, 672 }, { 3168, 1344 }, { 6336, 2688 } },
	{ { 256, 1024 }, { 512, 2048 }, { 1024, 4096 }, { 2048, 8192 } },
	{ { 1024, 256 }, { 2048, 512 }, { 4096, 1024 }, { 8192, 2048 } },
	{ { 192, 1536 }, { 384, 3072 }, { 768, 6144 }, { 1536, 12288 } },
	{ { 1536, 192 }, { 3072, 384 }, { 6144, 768 }, { 12288, 1536 } },
};

/* gemini-2.5-flash-image: one size (~1K), ten aspects */
static const int px25[NBASIC][2] = {
	{ 1024, 1024 }, { 832, 1248 }, { 1248, 832 }, { 864, 1184 }, { 1184, 864 },
	{ 896, 1152 }, { 1152, 896 }, { 768, 1344 }, { 1344, 768 }, { 1536, 672 },
};

static int aspect_index(const char *a)
{
	for (int i = 0; a && i < NASPECTS; i++)
		if (strcmp(a, aspects[i]) == 0)
			return i;
	return -1;
}

static int size_index(const char *s)
{
	for (int i = 0; s && i < 4; i++)
		if (strcmp(s, sizes[i]) == 0)
			return i;
	return -1;
}

static bool is_ymd(const char *s)
{
	static const char shape[] = "dddd-dd-dd";

	for (int i = 0; i < 10; i++)
		if (!s[i] || (shape[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != '-'))
			return false;
	return s[10] == '\0';
}

static const struct clock_ops *today_clk = &clock_real;	/* set before threads start */

void models_use_clock(const struct clock_ops *clk)
{
	today_clk = clk ? clk : &clock_real;
}

void models_today(char out[11])
{
	const char *fake = getenv("BANANAFS_TODAY");	/* tests only: see models.h */
	time_t now = (time_t)today_clk->wall(today_clk->ctx);
	struct tm tm;

	if (fake && is_ymd(fake)) {
		memcpy(out, fake, 11);
		return;
	}
	if (!gmtime_r(&now, &tm) || strftime(out, 11, "%Y-%m-%d", &tm) != 10)
		snprintf(out, 11, "0000-00-00");
}

bool model_retired(const struct model_info *m)
{
	char today[11];

	if (!m || !m->shutdown[0])
		return false;
	models_today(today);
	return strcmp(today, m->shutdown) >= 0;	/* ISO dates compare as strings */
}

void model_retired_msg(const struct model_info *m, char *buf, size_t len)
{
	snprintf(buf, len, "model %s (%s) was shut down by Google on %s and is no longer offered; "
		 "choose a current model, e.g. gemini-3.1-flash-image (Nano Banana 2) or "
		 "gemini-nano-banana-2.1", m->id, m->label, m->shutdown);
}

size_t models_count(void)
{
	return nmodels;
}

const struct model_info *models_at(size_t i)
{
	return i < nmodels ? &table[i] : NULL;
}

const struct model_info *models_find(const char *name)
{
	if (!name || !*name)
		return NULL;
	for (size_t i = 0; i < nmodels; i++)
		if (strcmp(table[i].id, name) == 0)
			return &table[i];
	for (size_t i = 0; i < nmodels; i++)
		if (table[i].alias[0] && strcmp(table[i].alias, name) == 0)
			return &table[i];
	return NULL;
}

int models_add(const char *id, const char *sizes_csv, const char *alias, bool wide_aspects)
{
	struct model_info m;

	memset(&m, 0, sizeof(m));
	if (!id || !*id || strlen(id) >= sizeof(m.id) || strchr(id, '/') || !sizes_csv)
		return -1;
	if (alias && strlen(alias) >= sizeof(m.alias))
		return -1;
	snprintf(m.id, sizeof(m.id), "%s", id);
	snprintf(m.alias, sizeof(m.alias), "%s", alias ? alias : "");
	snprintf(m.label, sizeof(m.label), "%s", id);
	m.wide_aspects = wide_aspects;

	/* "1K,2K" or "1K, 2K": every item must be one of the four sizes, no repeats */
	const char *p = sizes_csv;
	while (*p) {
		while (*p == ' ' || *p == ',')
			p++;
		if (!*p)
			break;
		size_t n = strcspn(p, ", ");
		char one[8];
		if (n >= sizeof(one))
			return -1;
		memcpy(one, p, n);
		one[n] = '\0';
		if (size_index(one) < 0 || model_has_size(&m, one) || m.nsizes >= MODEL_MAX_SIZES)
			return -1;
		memcpy(m.sizes[m.nsizes++], one, n + 1);	/* n <= 3: a known size */
		p += n;
	}
	if (m.nsizes == 0)
		return -1;

	for (size_t i = 0; i < nmodels; i++) {
		if (strcmp(table[i].id, id) == 0) {
			if (!m.alias[0])	/* keep a built-in alias unless a new one is given */
				memcpy(m.alias, table[i].alias, sizeof(m.alias));
			memcpy(m.label, table[i].label, sizeof(m.label));
			/* Google's dates stay: a shut-down model does not come back by config */
			memcpy(m.ga, table[i].ga, sizeof(m.ga));
			memcpy(m.shutdown, table[i].shutdown, sizeof(m.shutdown));
			table[i] = m;
			return 0;
		}
	}
	if (m.alias[0] && models_find(m.alias))
		return -1;	/* alias taken by another model */
	if (nmodels >= MODELS_MAX)
		return -1;
	table[nmodels++] = m;
	return 0;
}

bool model_has_size(const struct model_info *m, const char *size)
{
	for (int i = 0; m && size && i < m->nsizes; i++)
		if (strcmp(m->sizes[i], size) == 0)
			return true;
	return false;
}

bool aspect_valid(const char *aspect)
{
	return aspect_index(aspect) >= 0;
}

bool model_has_aspect(const struct model_info *m, const char *aspect)
{
	int i = aspect_index(aspect);
	if (!m || i < 0)
		return false;
	return i < NBASIC || m->wide_aspects;
}

int model_pixels(const char *model, const char *size, const char *aspect, int *w, int *h)
{
	const struct model_info *m = models_find(model);
	int a = aspect_index(aspect), s = size_index(size);

	if (!m || a < 0 || s < 0 || !model_has_aspect(m, aspect))
		return -1;
	if (strcmp(m->id, "gemini-2.5-flash-image") == 0) {
		if (strcmp(size, "1K") != 0)
			return -1;
		*w = px25[a][0];
		*h = px25[a][1];
		return 0;
	}
	*w = px3[a][s][0];
	*h = px3[a][s][1];
	return 0;
}

/*
 * Google Search grounding ("search: yes"): Google documents it for Nano
 * Banana Pro and Nano Banana 2 (web and image search).  For the other
 * models nothing says so, and a request with the tool would be refused or
 * silently ignored after payment: refuse it before sending instead.
 * Models added by the config take no tools.
 */
bool model_takes_search(const struct model_info *m)
{
	static const char *const ids[] = { "gemini-3-pro-image", "gemini-3.1-flash-image" };

	for (size_t i = 0; m && i < sizeof(ids) / sizeof(ids[0]); i++)
		if (strcmp(m->id, ids[i]) == 0)
			return true;
	return false;
}
