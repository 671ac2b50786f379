/* test_models_prices.c - the model table, pixel sizes and the price table. */
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "api/models.h"
#include "api/prices.h"
#include "api/request.h"
#include "api/wire.h"

static void test_builtin_table(void **state)
{
	(void)state;
	assert_true(models_count() >= 5);
	const struct model_info *m = models_find("pro");
	assert_non_null(m);
	assert_string_equal(m->id, "gemini-3-pro-image");
	assert_string_equal(m->label, "Nano Banana Pro");
	assert_int_equal(m->nsizes, 3);
	assert_true(model_has_size(m, "4K"));
	assert_false(model_has_size(m, "512"));
	assert_false(model_has_aspect(m, "1:8"));
	assert_true(model_has_aspect(m, "21:9"));

	m = models_find("flash");
	assert_string_equal(m->id, "gemini-3.1-flash-image");
	assert_string_equal(m->label, "Nano Banana 2");
	assert_true(model_has_size(m, "512"));
	assert_true(model_has_aspect(m, "8:1"));

	m = models_find("lite");
	assert_string_equal(m->id, "gemini-3.1-flash-lite-image");
	assert_int_equal(m->nsizes, 1);
	assert_false(model_has_size(m, "2K"));

	m = models_find("gemini-nano-banana-2.1");
	assert_non_null(m);
	assert_string_equal(m->alias, "");
	assert_true(m->wide_aspects);
	assert_false(model_has_size(m, "512"));

	m = models_find("legacy");
	assert_string_equal(m->id, "gemini-2.5-flash-image");
	assert_string_equal(m->label, "Nano Banana (legacy)");

	assert_null(models_find("gemini-3-pro-image-preview"));
	assert_null(models_find(""));
	assert_null(models_find(NULL));
	assert_true(aspect_valid("16:9"));
	assert_true(aspect_valid("1:4"));
	assert_false(aspect_valid("16:10"));
	assert_false(aspect_valid("1:1 "));
}

static void test_pixels(void **state)
{
	(void)state;
	int w = 0, h = 0;
	assert_int_equal(model_pixels("gemini-3-pro-image", "1K", "16:9", &w, &h), 0);
	assert_int_equal(w, 1376);
	assert_int_equal(h, 768);
	assert_int_equal(model_pixels("pro", "4K", "21:9", &w, &h), 0);
	assert_int_equal(w, 6336);
	assert_int_equal(h, 2688);
	assert_int_equal(model_pixels("gemini-3.1-flash-image", "512", "2:3", &w, &h), 0);
	assert_int_equal(w, 424);
	assert_int_equal(h, 632);
	assert_int_equal(model_pixels("flash", "4K", "1:8", &w, &h), 0);
	assert_int_equal(w, 1536);
	assert_int_equal(h, 12288);
	/* 2.5 has its own table */
	assert_int_equal(model_pixels("gemini-2.5-flash-image", "1K", "16:9", &w, &h), 0);
	assert_int_equal(w, 1344);
	assert_int_equal(h, 768);
	assert_int_equal(model_pixels("legacy", "1K", "21:9", &w, &h), 0);
	assert_int_equal(w, 1536);
	assert_int_equal(h, 672);
	/* refusals */
	assert_int_equal(model_pixels("legacy", "2K", "1:1", &w, &h), -1);
	assert_int_equal(model_pixels("pro", "1K", "1:8", &w, &h), -1);	/* no wide aspects */
	assert_int_equal(model_pixels("nope", "1K", "1:1", &w, &h), -1);
	assert_int_equal(model_pixels("pro", "3K", "1:1", &w, &h), -1);
}

static void test_models_add(void **state)
{
	(void)state;
	size_t before = models_count();
	assert_int_equal(models_add("gemini-9-image", "1K, 2K", "nine", true), 0);
	assert_int_equal(models_count(), before + 1);
	const struct model_info *m = models_find("nine");
	assert_non_null(m);
	assert_string_equal(m->id, "gemini-9-image");
	assert_int_equal(m->nsizes, 2);
	assert_true(model_has_size(m, "2K"));
	assert_true(model_has_aspect(m, "4:1"));

	/* replacing keeps the count and the built-in alias */
	assert_int_equal(models_add("gemini-3-pro-image", "1K,2K,4K,512", NULL, false), 0);
	assert_int_equal(models_count(), before + 1);
	assert_true(model_has_size(models_find("pro"), "512"));
	assert_string_equal(models_find("pro")->label, "Nano Banana Pro");

	assert_int_equal(models_add("x", "8K", NULL, false), -1);
	assert_int_equal(models_add("x", "1K,1K", NULL, false), -1);
	assert_int_equal(models_add("x", "", NULL, false), -1);
	assert_int_equal(models_add("a/b", "1K", NULL, false), -1);
	assert_int_equal(models_add("other", "1K", "pro", false), -1);	/* alias taken */

	/* the table is capped */
	int added = 0;
	for (int i = 0; i < 100; i++) {
		char id[32];
		snprintf(id, sizeof(id), "filler-%d", i);
		if (models_add(id, "1K", NULL, false) == 0)
			added++;
	}
	assert_true(added < 100);
	assert_true(models_count() <= 32);
	assert_null(models_at(models_count()));
}

static void test_prices(void **state)
{
	(void)state;
	assert_string_equal(prices_checked, "2026-07-01");
	assert_true(price_usd("gemini-3-pro-image", "1K", ROUTE_STANDARD) == 0.134);
	assert_true(price_usd("gemini-3-pro-image", "4K", ROUTE_STANDARD) == 0.24);
	assert_true(price_usd("pro", "4K", ROUTE_GENERATE) == 0.24);
	assert_true(price_usd("pro", "4K", ROUTE_BATCH) == 0.12);
	assert_true(price_usd("pro", "2K", ROUTE_FLEX) == 0.067);
	assert_true(price_usd("gemini-3.1-flash-image", "512", ROUTE_STANDARD) == 0.045);
	assert_true(price_usd("gemini-3.1-flash-image", "4K", ROUTE_STANDARD) == 0.151);
	assert_true(price_usd("gemini-3.1-flash-lite-image", "1K", ROUTE_STANDARD) == 0.0336);
	assert_true(price_usd("gemini-nano-banana-2.1", "2K", ROUTE_STANDARD) == 0.0504);
	assert_true(price_usd("gemini-nano-banana-2.1", "4K", ROUTE_STANDARD) == 0.0756);
	assert_true(price_usd("legacy", "1K", ROUTE_STANDARD) == 0.039);
	/* unknown is unknown, never invented */
	assert_true(price_usd("pro", "1K", ROUTE_GATEWAY) < 0);
	assert_true(price_usd("gemini-3.1-flash-lite-image", "2K", ROUTE_STANDARD) < 0);
	assert_true(price_usd("nope", "1K", ROUTE_STANDARD) < 0);
	assert_true(price_usd("pro", "1K", ROUTE_COUNT) < 0);

	/* overrides */
	assert_int_equal(price_set("pro", "1K", ROUTE_GATEWAY, 0.05), 0);
	assert_true(price_usd("gemini-3-pro-image", "1K", ROUTE_GATEWAY) == 0.05);
	assert_int_equal(price_set("gemini-3.1-flash-lite-image", "1K", ROUTE_STANDARD, 0.04), 0);
	assert_true(price_usd("lite", "1K", ROUTE_STANDARD) == 0.04);
	assert_true(price_usd("lite", "1K", ROUTE_BATCH) == 0.02);	/* half of the new standard */
	assert_int_equal(price_set("pro", "1K", ROUTE_STANDARD, -1), -1);
	assert_int_equal(price_set(NULL, "1K", ROUTE_STANDARD, 1), -1);
}

static void test_render(void **state)
{
	(void)state;
	char *t = prices_render();
	assert_non_null(t);
	assert_true(strncmp(t, "MODEL", 5) == 0);
	assert_non_null(strstr(t, "SIZE"));
	assert_non_null(strstr(t, "CHECKED"));
	assert_non_null(strstr(t, "SOURCE"));
	assert_non_null(strstr(t, "0.1340"));
	assert_non_null(strstr(t, "2026-07-01"));
	assert_non_null(strstr(t, "[INF]"));
	assert_non_null(strstr(t, "unknown"));
	assert_non_null(strstr(t, "provider price (entered by the user)"));
	/* the token rates that settle an answer, with their date */
	const char *rates = strstr(t, "TOKEN RATES");
	assert_non_null(rates);
	assert_non_null(strstr(rates, "IMAGE-OUT"));
	assert_non_null(strstr(rates, "gemini-3-pro-image                 2.00     2.00    120.00    12.00 2026-07-01 [3P]"));
	/* every gateway row is labelled as the provider's */
	for (char *line = strtok(t, "\n"); line; line = strtok(NULL, "\n"))
		if (strstr(line, " gateway "))
			assert_non_null(strstr(line, "provider price (entered by the user)"));
	free(t);
}

/* The source marks are explained; a price the user entered carries the user's date. */
static void test_render_marks_and_user_dates(void **state)
{
	(void)state;
	assert_int_equal(price_set_dated("gemini-nano-banana-2.1", "4K", ROUTE_GATEWAY, 0.07, "2026-11-30"), 0);
	char *t = prices_render();
	assert_non_null(t);
	assert_non_null(strstr(t, "[3P] = from third parties"));
	assert_non_null(strstr(t, "[INF] = inferred"));
	bool seen = false;
	for (char *line = strtok(t, "\n"); line; line = strtok(NULL, "\n"))
		if (strncmp(line, "gemini-nano-banana-2.1", 22) == 0 && strstr(line, " 4K ") &&
		    strstr(line, " gateway ")) {
			assert_non_null(strstr(line, "0.0700"));
			assert_non_null(strstr(line, "2026-11-30"));
			seen = true;
		}
	assert_true(seen);
	free(t);
}

static double wall_2026_10_01_noon(void *ctx)
{
	(void)ctx;
	return 1790856000.0;	/* 2026-10-01T12:00:00Z */
}

/* Today comes from the injected clock: a day before the shutdown the model is offered. */
static void test_today_from_clock(void **state)
{
	const struct clock_ops fake = { .wall = wall_2026_10_01_noon };
	char today[11];

	(void)state;
	unsetenv("BANANAFS_TODAY");
	models_use_clock(&fake);
	models_today(today);
	assert_string_equal(today, "2026-10-01");
	assert_false(model_retired(models_find("gemini-2.5-flash-image")));
	models_use_clock(NULL);
	assert_true(model_retired(models_find("gemini-2.5-flash-image")));	/* the real date is later */
}

/* Google's dates: past its shutdown (by BANANAFS_TODAY) a model is retired; names from a server are checked. */
static void test_catalogue_dates(void **state)
{
	const struct model_info *m = models_find("gemini-2.5-flash-image");
	struct gen_result res;
	char msg[256];

	(void)state;
	assert_string_equal(m->shutdown, "2026-10-02");
	assert_string_equal(models_checked, "2026-12-02");
	setenv("BANANAFS_TODAY", "2026-10-01", 1);
	assert_false(model_retired(m));
	setenv("BANANAFS_TODAY", "2026-10-02", 1);
	assert_true(model_retired(m));
	assert_false(model_retired(models_find("gemini-3-pro-image")));
	model_retired_msg(m, msg, sizeof(msg));
	assert_non_null(strstr(msg, "shut down by Google on 2026-10-02"));
	setenv("BANANAFS_TODAY", "not a date", 1);	/* ignored: the real date, after 2026-10-02 */
	assert_true(model_retired(m));
	unsetenv("BANANAFS_TODAY");
	/* sizes per model, re-checked against gemini-wire.md */
	assert_false(model_has_size(models_find("gemini-nano-banana-2.1"), "512"));
	assert_int_equal(models_find("gemini-3.1-flash-lite-image")->nsizes, 1);
	assert_false(model_has_size(models_find("gemini-3-pro-image"), "512"));

	memset(&res, 0, sizeof(res));
	wire_model_served(&res, "models/gemini-3.1-flash-image");
	assert_string_equal(res.model_served, "gemini-3.1-flash-image");
	wire_model_served(&res, "evil\nname");
	assert_string_equal(res.model_served, "");
	wire_model_served(&res, NULL);
	assert_string_equal(res.model_served, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_builtin_table),
		cmocka_unit_test(test_catalogue_dates),
		cmocka_unit_test(test_today_from_clock),
		cmocka_unit_test(test_pixels),
		cmocka_unit_test(test_prices),
		cmocka_unit_test(test_render),
		cmocka_unit_test(test_render_marks_and_user_dates),
		cmocka_unit_test(test_models_add),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
