/* test_rates.c - the per-token rate table and the settled cost of an answer (api/rates.h, api/cost.h). */
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "api/cost.h"
#include "api/models.h"
#include "api/prices.h"
#include "api/rates.h"
#include "api/request.h"

#define USD_EQ(a, b) assert_true((a) > (b) - 1e-12 && (a) < (b) + 1e-12)

static void test_table_is_dated_and_consistent(void **state)
{
	(void)state;
	assert_true(rates_count() >= 5);
	for (size_t i = 0; i < rates_count(); i++) {
		const struct token_rates *t = rates_at(i);
		assert_int_equal(strlen(t->checked), 10);
		assert_true(t->source[0] == '[');
		assert_non_null(models_find(t->model));
		/* per-image price / image output rate = the image's tokens, 747..2520 (gemini-wire.md 5.3):
		 * a rate per token or per 1K tokens would be off by 1e3 or 1e6 */
		const struct model_info *m = models_find(t->model);
		for (int s = 0; s < m->nsizes; s++) {
			double tokens = price_usd(m->id, m->sizes[s], ROUTE_STANDARD) / t->image_out * 1e6;
			assert_true(tokens > 700 && tokens < 2600);
		}
		assert_true(t->text_out > t->text_in);
	}
	assert_null(rates_at(rates_count()));
	assert_string_equal(rates_find("pro")->model, "gemini-3-pro-image");
	assert_null(rates_find("gemini-9-image"));
	assert_null(rates_find(NULL));
}

static void test_text_and_image_in_image_and_thought_out(void **state)
{
	(void)state;
	/* Pro, one input image (560 tokens), 20 prompt tokens, a 1K image, 5 text and 300 thought tokens */
	struct token_usage u = { .text_in = 20, .image_in = 560, .image_out = 1120, .text_out = 5, .thought = 300 };
	double want = (20 * 2.0 + 560 * 2.0 + 1120 * 120.0 + 305 * 12.0) / 1e6;
	USD_EQ(rates_cost_usd("gemini-3-pro-image", ROUTE_STANDARD, &u), want);
	USD_EQ(rates_cost_usd("pro", ROUTE_GENERATE, &u), want);
	/* 3.1 Flash: an input image is 1120 tokens at $0.50/1M */
	struct token_usage f = { .text_in = 10, .image_in = 1120, .image_out = 1120 };
	USD_EQ(rates_cost_usd("gemini-3.1-flash-image", ROUTE_STANDARD, &f), (10 * 0.5 + 1120 * 0.5 + 1120 * 60.0) / 1e6);
	/* the image alone is the per-image price, to the rounding of Google's table */
	struct token_usage img = { .image_out = 2000 };
	USD_EQ(rates_cost_usd("pro", ROUTE_STANDARD, &img), price_usd("pro", "4K", ROUTE_STANDARD));
	/* negative counts (absent) are nothing */
	struct token_usage neg = { .text_in = -1, .image_out = -5 };
	USD_EQ(rates_cost_usd("pro", ROUTE_STANDARD, &neg), 0);
}

static void test_search_queries(void **state)
{
	(void)state;
	struct token_usage u = { .image_out = 1120, .search_queries = 2 };
	USD_EQ(rates_cost_usd("gemini-3.1-flash-image", ROUTE_STANDARD, &u), 1120 * 60.0 / 1e6 + 2 * 0.014);
	/* queries are not halved on batch ([INF]) */
	USD_EQ(rates_cost_usd("gemini-3.1-flash-image", ROUTE_BATCH, &u), 1120 * 30.0 / 1e6 + 2 * 0.014);
}

static void test_route_factor(void **state)
{
	(void)state;
	struct token_usage u = { .text_in = 100, .image_out = 1120, .thought = 50 };
	double full = rates_cost_usd("pro", ROUTE_STANDARD, &u);
	USD_EQ(rates_cost_usd("pro", ROUTE_BATCH, &u), full / 2);
	USD_EQ(rates_cost_usd("pro", ROUTE_FLEX, &u), full / 2);
	assert_true(rates_cost_usd("pro", ROUTE_GATEWAY, &u) < 0);
	assert_true(rates_cost_usd("gemini-9-image", ROUTE_STANDARD, &u) < 0);
	assert_true(rates_route_factor(ROUTE_COUNT) < 0);
}

static void result_init(struct gen_result *r)
{
	memset(r, 0, sizeof(*r));
	r->in_tokens = r->out_tokens = r->thought_tokens = -1;
}

static struct gen_request pro_1k(enum route route)
{
	struct gen_request rq = { .model = "gemini-3-pro-image", .size = "1K", .aspect = "1:1", .route = route };
	return rq;
}

static void test_answer_from_usage(void **state)
{
	(void)state;
	struct gen_request rq = pro_1k(ROUTE_STANDARD);
	struct gen_result res;
	struct answer_cost c;

	result_init(&res);
	res.in_tokens = 580;
	res.in_image_tokens = 560;
	res.in_by_modality = true;
	res.out_tokens = 1125;
	res.out_image_tokens = 1120;
	res.out_by_modality = true;
	res.thought_tokens = 300;
	answer_cost(&rq, &res, true, 0.134, &c);
	assert_true(c.from_usage);
	assert_int_equal(c.usage.text_in, 20);
	assert_int_equal(c.usage.image_in, 560);
	assert_int_equal(c.usage.image_out, 1120);
	assert_int_equal(c.usage.text_out, 5);
	assert_int_equal(c.usage.thought, 300);
	USD_EQ(c.usd, (20 * 2.0 + 560 * 2.0 + 1120 * 120.0 + 305 * 12.0) / 1e6);
	assert_true(c.usd > 0.134);	/* input image and thinking cost more than the per-image estimate */

	/* batch: half of it */
	rq.route = ROUTE_BATCH;
	double full = c.usd;
	answer_cost(&rq, &res, true, 0.067, &c);
	USD_EQ(c.usd, full / 2);

	/* no split by modality: the output is priced as image output (errs high), input as text */
	rq.route = ROUTE_STANDARD;
	res.in_by_modality = res.out_by_modality = false;
	answer_cost(&rq, &res, true, 0.134, &c);
	assert_true(c.from_usage);
	assert_int_equal(c.usage.image_out, 1125);
	assert_int_equal(c.usage.text_in, 580);
	USD_EQ(c.usd, (580 * 2.0 + 1125 * 120.0 + 300 * 12.0) / 1e6);
	/* a split larger than the total is cut to it */
	res.out_by_modality = true;
	res.out_image_tokens = 99999;
	answer_cost(&rq, &res, true, 0.134, &c);
	assert_int_equal(c.usage.image_out, 1125);
	assert_int_equal(c.usage.text_out, 0);
}

static void test_answer_search_and_served_model(void **state)
{
	(void)state;
	struct gen_request rq = pro_1k(ROUTE_STANDARD);
	struct gen_result res;
	struct answer_cost c;

	rq.search = true;
	result_init(&res);
	res.in_tokens = 10;
	res.out_tokens = 1120;
	res.out_image_tokens = 1120;
	res.out_by_modality = true;
	res.search_queries = 3;
	/* served by another model: priced at the served model's rates */
	snprintf(res.model_served, sizeof(res.model_served), "gemini-3.1-flash-image");
	answer_cost(&rq, &res, true, 0.134 + 0.014, &c);
	assert_true(c.from_usage);
	USD_EQ(c.usd, (10 * 0.5 + 1120 * 60.0) / 1e6 + 3 * 0.014);
}

static void test_answer_without_usage_falls_back(void **state)
{
	(void)state;
	struct gen_request rq = pro_1k(ROUTE_STANDARD);
	struct gen_result res;
	struct answer_cost c;

	result_init(&res);
	answer_cost(&rq, &res, true, 0.134, &c);
	assert_false(c.from_usage);
	USD_EQ(c.usd, 0.134);
	/* input tokens alone price nothing of the image: still the estimate */
	res.in_tokens = 12;
	answer_cost(&rq, &res, true, 0.134, &c);
	assert_false(c.from_usage);
	/* the per-image fallback still swaps the served model's price and counts the queries */
	rq.search = true;
	res.search_queries = 2;
	snprintf(res.model_served, sizeof(res.model_served), "gemini-3.1-flash-image");
	answer_cost(&rq, &res, true, 0.134 + 0.014, &c);
	USD_EQ(c.usd, 0.067 + 2 * 0.014);
	/* a gateway is billed by the provider per image, usage or not */
	struct gen_request gw = pro_1k(ROUTE_GATEWAY);
	result_init(&res);
	res.in_tokens = 10;
	res.out_tokens = 1120;
	answer_cost(&gw, &res, true, 0.05, &c);
	assert_false(c.from_usage);
	USD_EQ(c.usd, 0.05);
	answer_cost(&gw, &res, true, -1, &c);
	assert_true(c.usd < 0);
}

static void test_answer_unknown_model(void **state)
{
	(void)state;
	struct gen_request rq = { .model = "gemini-9-image", .size = "1K", .route = ROUTE_STANDARD };
	struct gen_result res;
	struct answer_cost c;

	result_init(&res);
	res.in_tokens = 10;
	res.out_tokens = 1120;
	answer_cost(&rq, &res, true, 0.2, &c);	/* priced in [prices], no token rates */
	assert_false(c.from_usage);
	USD_EQ(c.usd, 0.2);
	answer_cost(&rq, &res, true, -1, &c);
	assert_true(c.usd < 0);
	/* an unknown served model is not guessed at: the asked model's rates are not used either */
	struct gen_request pro = pro_1k(ROUTE_STANDARD);
	snprintf(res.model_served, sizeof(res.model_served), "gemini-9-image");
	answer_cost(&pro, &res, true, 0.134, &c);
	assert_false(c.from_usage);
	USD_EQ(c.usd, 0.134);
}

static void test_entered_price_pins_the_image(void **state)
{
	(void)state;
	struct gen_request rq = { .model = "gemini-3.1-flash-image", .size = "2K", .route = ROUTE_STANDARD };
	struct gen_result res;
	struct answer_cost c;

	assert_true(price_entered_usd("gemini-3.1-flash-image", "2K", ROUTE_STANDARD) < 0);
	assert_int_equal(price_set("gemini-3.1-flash-image", "2K", ROUTE_STANDARD, 0.09), 0);
	assert_true(price_entered_usd("flash", "2K", ROUTE_STANDARD) == 0.09);
	assert_true(price_entered_usd("flash", "2K", ROUTE_BATCH) == 0.045);
	result_init(&res);
	res.in_tokens = 1130;
	res.in_image_tokens = 1120;
	res.in_by_modality = true;
	res.out_tokens = 1685;
	res.out_image_tokens = 1680;
	res.out_by_modality = true;
	answer_cost(&rq, &res, true, 0.09, &c);
	assert_true(c.from_usage);
	USD_EQ(c.usd, 0.09 + (10 * 0.5 + 1120 * 0.5 + 5 * 3.0) / 1e6);
	rq.route = ROUTE_FLEX;
	answer_cost(&rq, &res, true, 0.045, &c);
	USD_EQ(c.usd, 0.045 + (10 * 0.5 + 1120 * 0.5 + 5 * 3.0) / 2e6);
	/* no image output: the pinned figure is not charged */
	rq.route = ROUTE_STANDARD;
	res.out_tokens = res.out_image_tokens = 0;
	answer_cost(&rq, &res, false, 0.09, &c);
	USD_EQ(c.usd, (10 * 0.5 + 1120 * 0.5) / 1e6);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table_is_dated_and_consistent),
		cmocka_unit_test(test_text_and_image_in_image_and_thought_out),
		cmocka_unit_test(test_search_queries),
		cmocka_unit_test(test_route_factor),
		cmocka_unit_test(test_answer_from_usage),
		cmocka_unit_test(test_answer_search_and_served_model),
		cmocka_unit_test(test_answer_without_usage_falls_back),
		cmocka_unit_test(test_answer_unknown_model),
		cmocka_unit_test(test_entered_price_pins_the_image),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
