/* The model table: accepted sizes and aspects, pixel sizes, tokens, and
 * the per-token rates Google bills (gemini-wire.md sections 0, 5.1-5.3):
 * output tokens x image rate is the per-image price of the size. */
#include <string.h>

#include "emu.h"

#define B(s) (1u << (s))

static const struct model_info models[] = {
	{ "gemini-3-pro-image", "Nano Banana Pro",
	  B(SZ_1K) | B(SZ_2K) | B(SZ_4K), false, false,
	  { 0, 1120, 1120, 2000 }, 560, true, 2.00, 120.0, 12.00 },
	{ "gemini-3.1-flash-image", "Nano Banana 2",
	  B(SZ_512) | B(SZ_1K) | B(SZ_2K) | B(SZ_4K), true, false,
	  { 747, 1120, 1680, 2520 }, 1120, false, 0.50, 60.0, 3.00 },
	{ "gemini-3.1-flash-lite-image", "Nano Banana 2 Lite",
	  B(SZ_1K), false, false,
	  { 0, 1120, 0, 0 }, 1120, false, 0.25, 30.0, 1.50 },
	{ "gemini-nano-banana-2.1", "Nano Banana 2.1",
	  B(SZ_1K) | B(SZ_2K) | B(SZ_4K), true, false,
	  { 0, 1120, 1680, 2520 }, 1120, false, 1.50, 30.0, 7.50 },
	{ "gemini-2.5-flash-image", "Nano Banana",
	  B(SZ_1K), false, true,
	  { 0, 1290, 0, 0 }, 1120, false, 0.30, 30.0, 2.50 },
};

const struct model_info *model_find(const char *id)
{
	if (!id)
		return NULL;
	if (strncmp(id, "models/", 7) == 0)
		id += 7;
	for (size_t i = 0; i < sizeof models / sizeof models[0]; i++)
		if (strcmp(models[i].id, id) == 0)
			return &models[i];
	return NULL;
}

const struct model_info *model_at(size_t i)
{
	return i < sizeof models / sizeof models[0] ? &models[i] : NULL;
}

const char *model_size_name(enum model_size s)
{
	static const char *const n[SZ_COUNT] = { "512", "1K", "2K", "4K" };
	return s < SZ_COUNT ? n[s] : "?";
}

struct ratio_px {
	const char *aspect;
	bool wide;              /* only on models with wide_aspects */
	int w[SZ_COUNT], h[SZ_COUNT];
};

/* Gemini 3 table (section 5.2). */
static const struct ratio_px g3[] = {
	{ "1:1", false, { 512, 1024, 2048, 4096 }, { 512, 1024, 2048, 4096 } },
	{ "2:3", false, { 424, 848, 1696, 3392 }, { 632, 1264, 2528, 5056 } },
	{ "3:2", false, { 632, 1264, 2528, 5056 }, { 424, 848, 1696, 3392 } },
	{ "3:4", false, { 448, 896, 1792, 3584 }, { 600, 1200, 2400, 4800 } },
	{ "4:3", false, { 600, 1200, 2400, 4800 }, { 448, 896, 1792, 3584 } },
	{ "4:5", false, { 464, 928, 1856, 3712 }, { 576, 1152, 2304, 4608 } },
	{ "5:4", false, { 576, 1152, 2304, 4608 }, { 464, 928, 1856, 3712 } },
	{ "9:16", false, { 384, 768, 1536, 3072 }, { 688, 1376, 2752, 5504 } },
	{ "16:9", false, { 688, 1376, 2752, 5504 }, { 384, 768, 1536, 3072 } },
	{ "21:9", false, { 792, 1584, 3168, 6336 }, { 336, 672, 1344, 2688 } },
	{ "1:4", true, { 256, 512, 1024, 2048 }, { 1024, 2048, 4096, 8192 } },
	{ "4:1", true, { 1024, 2048, 4096, 8192 }, { 256, 512, 1024, 2048 } },
	{ "1:8", true, { 192, 384, 768, 1536 }, { 1536, 3072, 6144, 12288 } },
	{ "8:1", true, { 1536, 3072, 6144, 12288 }, { 192, 384, 768, 1536 } },
};

/* gemini-2.5-flash-image: one size only. */
static const struct { const char *aspect; int w, h; } g25[] = {
	{ "1:1", 1024, 1024 }, { "2:3", 832, 1248 }, { "3:2", 1248, 832 },
	{ "3:4", 864, 1184 }, { "4:3", 1184, 864 }, { "4:5", 896, 1152 },
	{ "5:4", 1152, 896 }, { "9:16", 768, 1344 }, { "16:9", 1344, 768 },
	{ "21:9", 1536, 672 },
};

bool model_pixels(const struct model_info *m, enum model_size s,
		  const char *aspect, int *w, int *h)
{
	if (m->fixed_table) {
		for (size_t i = 0; i < sizeof g25 / sizeof g25[0]; i++)
			if (strcmp(g25[i].aspect, aspect) == 0) {
				*w = g25[i].w;
				*h = g25[i].h;
				return true;
			}
		return false;
	}
	for (size_t i = 0; i < sizeof g3 / sizeof g3[0]; i++) {
		if (strcmp(g3[i].aspect, aspect) != 0)
			continue;
		if (g3[i].wide && !m->wide_aspects)
			return false;
		*w = g3[i].w[s];
		*h = g3[i].h[s];
		return true;
	}
	return false;
}

bool model_takes_search(const struct model_info *m)
{
	return m && (!strcmp(m->id, "gemini-3-pro-image") || !strcmp(m->id, "gemini-3.1-flash-image"));
}
