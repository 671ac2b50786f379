/*
 * test_config.c - defaults, every key from an INI file, FILE:LINE errors,
 * [prices] and [model] sections, -o setting, key resolution and masking.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/models.h"
#include "api/prices.h"
#include "cache/config.h"

static char dir[64];
static char err[512], warn[256];

static const char *
path_of(const char *name)
{
	static char p[256];

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	return p;
}

static const char *
write_file(const char *name, const char *text, mode_t mode)
{
	const char *p = path_of(name);
	int fd;

	unlink(p);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
	return p;
}

static void
clear_key_env(void)
{
	unsetenv("GOOGLE_API_KEY");
	unsetenv("GEMINI_API_KEY");
	unsetenv("BANANAFS_GATEWAY_KEY");
}

static int
group_setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/bananafs-test-config-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	clear_key_env();
	return 0;
}

static int
group_teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* ---- defaults ----------------------------------------------------------- */

static void
test_defaults(void **state)
{
	struct config c;

	(void)state;
	setenv("XDG_DATA_HOME", "/xdg/data", 1);
	assert_int_equal(config_defaults(&c), 0);
	assert_string_equal(c.store_dir, "/xdg/data/bananafs");
	assert_string_equal(c.endpoint, "https://generativelanguage.googleapis.com");
	assert_string_equal(c.api_version, "v1beta");
	assert_string_equal(c.route, "standard");
	assert_int_equal(c.max_inflight, 4);
	assert_int_equal(c.rpm, 0);
	assert_int_equal(c.retries, 4);
	assert_true(c.backoff_base_s == 1);
	assert_true(c.backoff_cap_s == 60);
	assert_true(c.connect_timeout_s == 10);
	assert_true(c.timeout_s == 300);
	assert_int_equal(c.max_response_bytes, 80 * 1024 * 1024);
	assert_true(c.budget_daily_usd < 0);
	assert_true(c.budget_total_usd < 0);
	assert_null(c.fallback_model);
	assert_null(c.fallback_size);
	assert_false(c.ledger_prompts_full);
	assert_false(c.output_original);
	assert_string_equal(c.default_aspect, "1:1");
	assert_false(c.dry_run);
	assert_true(c.batch_window_s == 5);
	assert_true(c.batch_poll_s == 10);
	assert_null(c.api_key_file);
	assert_null(c.api_key_command);
	assert_null(c.gateway_url);
	assert_true(c.gateway_bills_failures);
	assert_false(c.allow_other);
	assert_null(c.api_key);
	assert_null(c.gateway_key);
	config_free(&c);

	/* Without XDG_DATA_HOME (or a relative one): ~/.local/share. */
	setenv("XDG_DATA_HOME", "relative/path", 1);
	setenv("HOME", "/home/someone", 1);
	assert_int_equal(config_defaults(&c), 0);
	assert_string_equal(c.store_dir, "/home/someone/.local/share/bananafs");
	config_free(&c);
	unsetenv("XDG_DATA_HOME");
}

static void
test_default_path(void **state)
{
	char *p;

	(void)state;
	setenv("XDG_CONFIG_HOME", "/xdg/cfg", 1);
	p = config_default_path();
	assert_string_equal(p, "/xdg/cfg/bananafs/config");
	free(p);
	unsetenv("XDG_CONFIG_HOME");
	setenv("HOME", "/home/someone", 1);
	p = config_default_path();
	assert_string_equal(p, "/home/someone/.config/bananafs/config");
	free(p);
}

/* ---- every key ---------------------------------------------------------- */

static void
test_every_key(void **state)
{
	const char *ini =
		"; a comment\n"
		"dry_run = yes\n"			/* before any section */
		"[bananafs]\n"
		"store_dir = /srv/banana\n"
		"endpoint = http://127.0.0.1:8089/\n"
		"api_version = v1\n"
		"route = batch\n"
		"max_inflight = 2\n"
		"rpm = 30\n"
		"retries = 6\n"
		"backoff_base_s = 0.5\n"
		"backoff_cap_s = 30\n"
		"connect_timeout_s = 2.5\n"
		"timeout_s = 120\n"
		"max_response_mb = 64\n"
		"budget_daily_usd = 2.5\n"
		"budget_total_usd = 0\n"
		"fallback_model = gemini-3.1-flash-image\n"
		"fallback_size = 1K\n"
		"ledger_prompts = full\n"
		"output_format = original\n"
		"aspect = 16:9\n"
		"batch_window_s = 1\n"
		"batch_poll_s = 3\n"
		"api_key_file = /run/keys/gemini\n"
		"api_key_command = pass show gemini\n"
		"gateway_url = https://openrouter.example/api\n"
		"gateway_key_file = /run/keys/gw\n"
		"gateway_models = gemini-3-pro-image=google/gemini-3-pro-image\n"
		"gateway_bills_failures = off\n"
		"allow_other = TRUE\n";
	struct config c;
	const char *p = write_file("every.ini", ini, 0600);

	(void)state;
	assert_int_equal(config_defaults(&c), 0);
	if (config_load(&c, p, true, err, sizeof(err)) != 0)
		fail_msg("config_load: %s", err);
	assert_true(c.dry_run);
	assert_string_equal(c.store_dir, "/srv/banana");
	assert_string_equal(c.endpoint, "http://127.0.0.1:8089");	/* trailing '/' dropped */
	assert_string_equal(c.api_version, "v1");
	assert_string_equal(c.route, "batch");
	assert_int_equal(c.max_inflight, 2);
	assert_int_equal(c.rpm, 30);
	assert_int_equal(c.retries, 6);
	assert_true(c.backoff_base_s == 0.5);
	assert_true(c.backoff_cap_s == 30);
	assert_true(c.connect_timeout_s == 2.5);
	assert_true(c.timeout_s == 120);
	assert_int_equal(c.max_response_bytes, 64 * 1024 * 1024);
	assert_true(c.budget_daily_usd == 2.5);
	assert_true(c.budget_total_usd == 0);
	assert_string_equal(c.fallback_model, "gemini-3.1-flash-image");
	assert_string_equal(c.fallback_size, "1K");
	assert_true(c.ledger_prompts_full);
	assert_true(c.output_original);
	assert_string_equal(c.default_aspect, "16:9");
	assert_true(c.batch_window_s == 1);
	assert_true(c.batch_poll_s == 3);
	assert_string_equal(c.api_key_file, "/run/keys/gemini");
	assert_string_equal(c.api_key_command, "pass show gemini");
	assert_string_equal(c.gateway_url, "https://openrouter.example/api");
	assert_string_equal(c.gateway_key_file, "/run/keys/gw");
	assert_string_equal(c.gateway_models, "gemini-3-pro-image=google/gemini-3-pro-image");
	assert_false(c.gateway_bills_failures);
	assert_true(c.allow_other);
	config_free(&c);
}

static void
test_values_and_aliases(void **state)
{
	struct config c;
	bool *flags[] = { &c.dry_run };
	static const struct {
		const char *v;
		bool b;
	} bools[] = {
		{ "yes", true }, { "no", false }, { "true", true }, { "false", false },
		{ "on", true }, { "off", false }, { "1", true }, { "0", false }, { "Yes", true },
	};

	(void)state;
	assert_int_equal(config_defaults(&c), 0);
	for (size_t i = 0; i < sizeof(bools) / sizeof(bools[0]); i++) {
		assert_int_equal(config_set(&c, "dry_run", bools[i].v, err, sizeof(err)), 0);
		assert_int_equal(*flags[0], bools[i].b);
	}
	assert_int_equal(config_set(&c, "dry_run", "maybe", err, sizeof(err)), -1);
	assert_int_equal(config_set(&c, "default_aspect", "21:9", err, sizeof(err)), 0);
	assert_string_equal(c.default_aspect, "21:9");
	assert_int_equal(config_set(&c, "ledger_prompts", "hash", err, sizeof(err)), 0);
	assert_false(c.ledger_prompts_full);
	assert_int_equal(config_set(&c, "output_format", "png", err, sizeof(err)), 0);
	assert_false(c.output_original);
	assert_int_equal(config_set(&c, "budget_daily_usd", "3", err, sizeof(err)), 0);
	assert_int_equal(config_set(&c, "budget_daily_usd", "none", err, sizeof(err)), 0);
	assert_true(c.budget_daily_usd < 0);
	assert_int_equal(config_set(&c, "fallback_model", "", err, sizeof(err)), 0);
	assert_null(c.fallback_model);
	/* -o max_inflight=2 goes through the same setter. */
	assert_int_equal(config_set(&c, "max_inflight", "2", err, sizeof(err)), 0);
	assert_int_equal(c.max_inflight, 2);
	config_free(&c);
}

static void
test_bad_values(void **state)
{
	static const struct {
		const char *key, *value, *want;
	} cases[] = {
		{ "max_inflight", "4x", "bad number '4x'" },
		{ "max_inflight", "", "bad number" },
		{ "max_inflight", " 4", "bad number" },
		{ "max_inflight", "0", "1..256" },
		{ "max_inflight", "99999999999999999999", "bad number" },
		{ "rpm", "-1", "bad number" },
		{ "retries", "2.5", "bad number" },
		{ "timeout_s", "nan", "bad number" },
		{ "timeout_s", "inf", "bad number" },
		{ "timeout_s", "0", "bad number" },
		{ "backoff_base_s", "1s", "bad number" },
		{ "max_response_mb", "0", "bad number" },
		{ "budget_daily_usd", "-1", "negative budget" },
		{ "budget_total_usd", "-0.01", "negative budget" },
		{ "budget_total_usd", "ten", "bad number" },
		{ "route", "express", "unknown route 'express'" },
		{ "aspect", "16:10", "bad aspect '16:10'" },
		{ "default_aspect", "square", "bad aspect" },
		{ "ledger_prompts", "some", "hash or full" },
		{ "output_format", "jpeg", "png or original" },
		{ "fallback_size", "8K", "512, 1K, 2K or 4K" },
		{ "endpoint", "http://example.com", "loopback" },
		{ "endpoint", "ftp://x", "https://" },
		{ "api_version", "v1/../x", "bad value" },
		{ "gateway_models", "nonsense", "model=provider" },
		{ "no_such_key", "1", "unknown key 'no_such_key'" },
	};
	struct config c;

	(void)state;
	assert_int_equal(config_defaults(&c), 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err[0] = '\0';
		if (config_set(&c, cases[i].key, cases[i].value, err, sizeof(err)) != -1)
			fail_msg("%s = '%s' should be refused", cases[i].key, cases[i].value);
		if (strstr(err, cases[i].want) == NULL)
			fail_msg("%s = '%s': '%s' lacks '%s'", cases[i].key, cases[i].value, err,
				 cases[i].want);
	}
	/* Nothing changed by the refused values. */
	assert_int_equal(c.max_inflight, 4);
	assert_string_equal(c.route, "standard");
	assert_string_equal(c.default_aspect, "1:1");
	config_free(&c);
}

/* ---- FILE:LINE errors --------------------------------------------------- */

static void
expect_load_error(const char *text, int line, const char *want)
{
	struct config c;
	const char *p = write_file("bad.ini", text, 0600);
	char prefix[300];

	assert_int_equal(config_defaults(&c), 0);
	err[0] = '\0';
	if (config_load(&c, p, true, err, sizeof(err)) != -1)
		fail_msg("should fail: %s", text);
	snprintf(prefix, sizeof(prefix), "%s:%d: ", p, line);
	if (strncmp(err, prefix, strlen(prefix)) != 0)
		fail_msg("'%s' does not start with '%s'", err, prefix);
	if (want != NULL && strstr(err, want) == NULL)
		fail_msg("'%s' lacks '%s'", err, want);
	config_free(&c);
}

static void
test_file_errors(void **state)
{
	char longline[400];

	(void)state;
	expect_load_error("[bananafs]\nrpm = 3\nbogus = 1\n", 3, "unknown key 'bogus'");
	expect_load_error("[bananafs]\n\n; c\nmax_inflight = four\n", 4, "bad number 'four'");
	expect_load_error("budget_daily_usd = -5\n", 1, "negative budget");
	expect_load_error("[bananafs]\nroute = express\n", 2, "unknown route");
	expect_load_error("[bananafs]\naspect = 5:3\n", 2, "bad aspect");
	expect_load_error("[bananafs]\nrpm = 1\n[colours]\nred = 1\n", 4, "unknown section [colours]");
	expect_load_error("[bananafs]\nrpm = 1\nthis is not ini\n", 3, "syntax error");
	expect_load_error("[bananafs]\nrpm = 1\napi_key = AIzaSecret\n", 3, "GOOGLE_API_KEY");
	expect_load_error("[bananafs]\ngateway_key = sk-secret\n", 2, "BANANAFS_GATEWAY_KEY");
	/* The first bad line is the one reported. */
	expect_load_error("[bananafs]\nrpm = x\nretries = y\n", 2, "rpm");
	expect_load_error("[bananafs]\nrpm = 1\nno equals sign\nretries = y\n", 3, "syntax");
	expect_load_error("[bananafs]\nrpm = 1\nretries = y\nno equals sign\n", 3, "retries");
	/* Lines libinih would cut are refused, not silently shortened. */
	memset(longline, 'a', sizeof(longline));
	memcpy(longline, "[bananafs]\nstore_dir = /", 24);
	memcpy(longline + sizeof(longline) - 2, "\n", 2);
	expect_load_error(longline, 2, "longer than");
}

static void
test_api_key_never_from_file_or_o(void **state)
{
	struct config c;

	(void)state;
	assert_int_equal(config_defaults(&c), 0);
	assert_int_equal(config_set(&c, "api_key", "AIzaSecret", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "GEMINI_API_KEY"));
	assert_non_null(strstr(err, "api_key_file"));
	assert_non_null(strstr(err, "api_key_command"));
	assert_null(strstr(err, "AIzaSecret"));
	assert_null(c.api_key);
	config_free(&c);
}

static void
test_missing_file(void **state)
{
	struct config c;

	(void)state;
	assert_int_equal(config_defaults(&c), 0);
	assert_int_equal(config_load(&c, path_of("nope.ini"), false, err, sizeof(err)), 0);
	assert_int_equal(config_load(&c, path_of("nope.ini"), true, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "nope.ini"));
	config_free(&c);
}

/* ---- [prices] and [model ID] -------------------------------------------- */

static void
test_prices_section(void **state)
{
	const char *ok =
		"[prices]\n"
		"gemini-3.1-flash-image.2K.batch = 0.0123\n"
		"gemini-3-pro-image.4K.standard = 0.5\n";
	struct config c;

	(void)state;
	assert_int_equal(config_defaults(&c), 0);
	assert_int_equal(config_load(&c, write_file("prices.ini", ok, 0600), true, err, sizeof(err)), 0);
	assert_true(price_usd("gemini-3.1-flash-image", "2K", ROUTE_BATCH) == 0.0123);
	assert_true(price_usd("gemini-3-pro-image", "4K", ROUTE_STANDARD) == 0.5);
	config_free(&c);

	expect_load_error("[prices]\ngemini-3-pro-image.2K.express = 1\n", 2, "unknown route 'express'");
	expect_load_error("[prices]\ngemini-3-pro-image.2K.batch = cheap\n", 2, "bad price");
	expect_load_error("[prices]\ngemini-3-pro-image.2K.batch = -1\n", 2, "bad price");
	expect_load_error("[prices]\nnodots = 1\n", 2, "MODEL.SIZE.ROUTE");
}

static void
test_model_section(void **state)
{
	const char *ini =
		"[bananafs]\n"
		"rpm = 1\n"
		"[model gemini-9-test-image]\n"
		"sizes = 1K,2K\n"
		"alias = nine\n"
		"wide_aspects = yes\n"
		"[model gemini-9-narrow-image]\n"
		"sizes = 4K\n";
	const struct model_info *m;
	struct config c;

	(void)state;
	assert_int_equal(config_defaults(&c), 0);
	if (config_load(&c, write_file("model.ini", ini, 0600), true, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	m = models_find("gemini-9-test-image");
	assert_non_null(m);
	assert_ptr_equal(models_find("nine"), m);
	assert_true(model_has_size(m, "1K"));
	assert_true(model_has_size(m, "2K"));
	assert_false(model_has_size(m, "4K"));
	assert_true(m->wide_aspects);
	assert_true(model_has_aspect(m, "1:8"));
	m = models_find("gemini-9-narrow-image");
	assert_non_null(m);
	assert_true(model_has_size(m, "4K"));
	assert_false(m->wide_aspects);
	config_free(&c);

	expect_load_error("[model gemini-9-bad-image]\nsizes = 3K\n", 2, "cannot add");
	expect_load_error("[model gemini-9-bad-image]\nalias = x\n", 2, "sizes missing");
	expect_load_error("[model gemini-9-bad-image]\nsizes = 1K\ncolour = red\n", 3, "unknown key 'colour'");
	expect_load_error("[model gemini-9-bad-image]\nsizes = 1K\nwide_aspects = wide\n", 3,
			  "wide_aspects");
}

/* ---- keys --------------------------------------------------------------- */

static void
test_env_precedence(void **state)
{
	struct config c;

	(void)state;
	clear_key_env();
	assert_int_equal(config_defaults(&c), 0);
	setenv("GOOGLE_API_KEY", "google-key", 1);
	setenv("GEMINI_API_KEY", "gemini-key", 1);
	assert_int_equal(config_resolve_keys(&c, warn, sizeof(warn), err, sizeof(err)), 0);
	assert_string_equal(c.api_key, "google-key");
	assert_string_equal(warn, "Both GOOGLE_API_KEY and GEMINI_API_KEY are set. Using GOOGLE_API_KEY.");

	unsetenv("GOOGLE_API_KEY");
	assert_int_equal(config_resolve_keys(&c, warn, sizeof(warn), err, sizeof(err)), 0);
	assert_string_equal(c.api_key, "gemini-key");
	assert_string_equal(warn, "");

	/* The environment wins over the key file and the command. */
	c.api_key_file = strdup(write_file("envwins", "file-key\n", 0600));
	c.api_key_command = strdup("echo command-key");
	assert_int_equal(config_resolve_keys(&c, warn, sizeof(warn), err, sizeof(err)), 0);
	assert_string_equal(c.api_key, "gemini-key");

	/* Then the file over the command. */
	clear_key_env();
	assert_int_equal(config_resolve_keys(&c, warn, sizeof(warn), err, sizeof(err)), 0);
	assert_string_equal(c.api_key, "file-key");

	free(c.api_key_file);
	c.api_key_file = NULL;
	assert_int_equal(config_resolve_keys(&c, warn, sizeof(warn), err, sizeof(err)), 0);
	assert_string_equal(c.api_key, "command-key");

	/* Nothing configured: success, no key. */
	free(c.api_key_command);
	c.api_key_command = NULL;
	assert_int_equal(config_resolve_keys(&c, warn, sizeof(warn), err, sizeof(err)), 0);
	assert_null(c.api_key);
	config_free(&c);
}

static void
test_key_file_modes(void **state)
{
	struct config c;
	const char *p;

	(void)state;
	clear_key_env();
	assert_int_equal(config_defaults(&c), 0);
	p = write_file("key644", "AIzaFileKey\n", 0644);
	c.api_key_file = strdup(p);
	assert_int_equal(config_resolve_keys(&c, warn, sizeof(warn), err, sizeof(err)), -1);
	assert_non_null(strstr(err, "chmod 600"));
	assert_non_null(strstr(err, p));
	assert_null(strstr(err, "AIzaFileKey"));
	assert_null(c.api_key);

	assert_int_equal(chmod(p, 0640), 0);
	assert_int_equal(config_resolve_keys(&c, warn, sizeof(warn), err, sizeof(err)), -1);
	assert_int_equal(chmod(p, 0604), 0);
	assert_int_equal(config_resolve_keys(&c, warn, sizeof(warn), err, sizeof(err)), -1);

	assert_int_equal(chmod(p, 0600), 0);
	assert_int_equal(config_resolve_keys(&c, warn, sizeof(warn), err, sizeof(err)), 0);
	assert_string_equal(c.api_key, "AIzaFileKey");	/* newline stripped */

	assert_int_equal(chmod(p, 0400), 0);
	assert_int_equal(config_resolve_keys(&c, warn, sizeof(warn), err, sizeof(err)), 0);
	assert_string_equal(c.api_key, "AIzaFileKey");

	/* Owned by someone else: refused even with mode 0600 (needs root to set up). */
	if (geteuid() == 0) {
		assert_int_equal(chmod(p, 0600), 0);
		assert_int_equal(chown(p, 65534, 65534), 0);
		assert_int_equal(config_resolve_keys(&c, warn, sizeof(warn), err, sizeof(err)), -1);
		assert_non_null(strstr(err, "owned by uid 65534"));
		assert_int_equal(chown(p, 0, 0), 0);
	}

	/* CRLF stripped too. */
	write_file("keycrlf", "AIzaCRLF\r\n", 0600);
	free(c.api_key_file);
	c.api_key_file = strdup(path_of("keycrlf"));
	assert_int_equal(config_resolve_keys(&c, warn, sizeof(warn), err, sizeof(err)), 0);
	assert_string_equal(c.api_key, "AIzaCRLF");

	/* A symlink to a good key file is refused (O_NOFOLLOW). */
	{
		char target[256];

		snprintf(target, sizeof(target), "%s", path_of("keycrlf"));
		unlink(path_of("keylink"));
		assert_int_equal(symlink(target, path_of("keylink")), 0);
	}
	free(c.api_key_file);
	c.api_key_file = strdup(path_of("keylink"));
	assert_int_equal(config_resolve_keys(&c, warn, sizeof(warn), err, sizeof(err)), -1);
	assert_non_null(strstr(err, "symbolic link"));

	/* Spaces or control characters inside: refused, key not echoed. */
	write_file("keyspace", "AIza Part Two\n", 0600);
	free(c.api_key_file);
	c.api_key_file = strdup(path_of("keyspace"));
	assert_int_equal(config_resolve_keys(&c, warn, sizeof(warn), err, sizeof(err)), -1);
	assert_non_null(strstr(err, "spaces or control"));
	assert_null(strstr(err, "Part"));
	write_file("keytwo", "line1\nline2\n", 0600);
	free(c.api_key_file);
	c.api_key_file = strdup(path_of("keytwo"));
	assert_int_equal(config_resolve_keys(&c, warn, sizeof(warn), err, sizeof(err)), -1);

	/* A missing file is an error when configured. */
	free(c.api_key_file);
	c.api_key_file = strdup(path_of("no-such-key"));
	assert_int_equal(config_resolve_keys(&c, warn, sizeof(warn), err, sizeof(err)), -1);
	config_free(&c);
}

static void
test_env_key_checked(void **state)
{
	struct config c;

	(void)state;
	clear_key_env();
	assert_int_equal(config_defaults(&c), 0);
	setenv("GEMINI_API_KEY", "abc def", 1);
	assert_int_equal(config_resolve_keys(&c, warn, sizeof(warn), err, sizeof(err)), -1);
	assert_null(strstr(err, "abc def"));
	setenv("GEMINI_API_KEY", "abc\tdef", 1);
	assert_int_equal(config_resolve_keys(&c, warn, sizeof(warn), err, sizeof(err)), -1);
	clear_key_env();
	config_free(&c);
}

static void
test_key_command(void **state)
{
	struct config c;

	(void)state;
	clear_key_env();
	assert_int_equal(config_defaults(&c), 0);
	c.api_key_command = strdup("printf 'cmd-key\\nsecond line\\n'");
	assert_int_equal(config_resolve_keys(&c, warn, sizeof(warn), err, sizeof(err)), 0);
	assert_string_equal(c.api_key, "cmd-key");
	free(c.api_key_command);
	c.api_key_command = strdup("echo oops; exit 3");
	assert_int_equal(config_resolve_keys(&c, warn, sizeof(warn), err, sizeof(err)), -1);
	assert_non_null(strstr(err, "exit status 3"));
	free(c.api_key_command);
	c.api_key_command = strdup("true");
	assert_int_equal(config_resolve_keys(&c, warn, sizeof(warn), err, sizeof(err)), -1);
	config_free(&c);
}

static void
test_gateway_key(void **state)
{
	struct config c;

	(void)state;
	clear_key_env();
	assert_int_equal(config_defaults(&c), 0);
	c.gateway_key_file = strdup(write_file("gwkey", "sk-gw-file\n", 0600));
	assert_int_equal(config_resolve_keys(&c, warn, sizeof(warn), err, sizeof(err)), 0);
	assert_string_equal(c.gateway_key, "sk-gw-file");
	setenv("BANANAFS_GATEWAY_KEY", "sk-gw-env", 1);
	assert_int_equal(config_resolve_keys(&c, warn, sizeof(warn), err, sizeof(err)), 0);
	assert_string_equal(c.gateway_key, "sk-gw-env");
	unsetenv("BANANAFS_GATEWAY_KEY");
	assert_int_equal(chmod(c.gateway_key_file, 0644), 0);
	assert_int_equal(config_resolve_keys(&c, warn, sizeof(warn), err, sizeof(err)), -1);
	assert_non_null(strstr(err, "chmod 600"));
	config_free(&c);
}

/* ---- rendering ---------------------------------------------------------- */

static void
test_render(void **state)
{
	struct config c;
	char *s;

	(void)state;
	clear_key_env();
	assert_int_equal(config_defaults(&c), 0);
	s = config_render(&c);
	assert_non_null(s);
	assert_non_null(strstr(s, "api_key = (not set)\n"));
	assert_non_null(strstr(s, "max_inflight = 4\n"));
	assert_non_null(strstr(s, "max_response_mb = 80\n"));
	assert_non_null(strstr(s, "budget_daily_usd = none\n"));
	assert_non_null(strstr(s, "aspect = 1:1\n"));
	assert_non_null(strstr(s, "ledger_prompts = hash\n"));
	assert_non_null(strstr(s, "output_format = png\n"));
	assert_non_null(strstr(s, "gateway_bills_failures = yes\n"));
	free(s);

	setenv("GOOGLE_API_KEY", "AIzaVerySecret123", 1);
	setenv("BANANAFS_GATEWAY_KEY", "sk-AlsoSecret", 1);
	assert_int_equal(config_resolve_keys(&c, warn, sizeof(warn), err, sizeof(err)), 0);
	assert_int_equal(config_set(&c, "budget_total_usd", "12.5", err, sizeof(err)), 0);
	s = config_render(&c);
	assert_non_null(strstr(s, "api_key = (set)\n"));
	assert_non_null(strstr(s, "gateway_key = (set)\n"));
	assert_non_null(strstr(s, "budget_total_usd = 12.5\n"));
	assert_null(strstr(s, "AIzaVerySecret123"));
	assert_null(strstr(s, "sk-AlsoSecret"));
	free(s);
	clear_key_env();
	config_free(&c);

	/* Every settable key appears in the rendering. */
	{
		static const char *const keys[] = {
			"store_dir", "endpoint", "api_version", "route", "max_inflight", "rpm",
			"retries", "backoff_base_s", "backoff_cap_s", "connect_timeout_s",
			"timeout_s", "max_response_mb", "budget_daily_usd", "budget_total_usd",
			"fallback_model", "fallback_size", "ledger_prompts", "output_format",
			"aspect", "dry_run", "batch_window_s", "batch_poll_s", "api_key_file",
			"api_key_command", "gateway_url", "gateway_key_file", "gateway_models",
			"gateway_bills_failures", "allow_other",
		};
		char line[64];

		assert_int_equal(config_defaults(&c), 0);
		s = config_render(&c);
		for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
			snprintf(line, sizeof(line), "\n%s = ", keys[i]);
			if (strstr(s, line) == NULL)
				fail_msg("render lacks %s", keys[i]);
		}
		free(s);
		config_free(&c);
	}
}

/* team_db takes what libpq parses, never a password; the team_* keys round-trip. */
static void
test_team_keys(void **state)
{
	struct config c;
	char *s;

	(void)state;
	assert_int_equal(config_defaults(&c), 0);
	assert_null(c.team_db);
	assert_null(c.team_objects);
	assert_false(c.team_offline_cache_only);
	assert_true(c.team_lease_s == 30);
	assert_int_equal(config_set(&c, "team_db", "host=/run/pg dbname=banana user=alice",
				    err, sizeof(err)), 0);
	assert_string_equal(c.team_db, "host=/run/pg dbname=banana user=alice");
	assert_int_equal(config_set(&c, "team_db", "postgresql://alice@db.example/banana",
				    err, sizeof(err)), 0);
	assert_int_equal(config_set(&c, "team_db", "host=x password=hunter2", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "pgpass"));
	assert_null(strstr(err, "hunter2"));
	assert_int_equal(config_set(&c, "team_db", "postgresql://alice:hunter2@db/banana",
				    err, sizeof(err)), -1);
	assert_null(strstr(err, "hunter2"));
	assert_int_equal(config_set(&c, "team_db", "host='unterminated", err, sizeof(err)), -1);
	assert_string_equal(c.team_db, "postgresql://alice@db.example/banana");	/* unchanged */
	assert_int_equal(config_set(&c, "team_objects", "/mnt/team/objects", err, sizeof(err)), 0);
	assert_string_equal(c.team_objects, "/mnt/team/objects");
	assert_int_equal(config_set(&c, "team_objects", "relative/dir", err, sizeof(err)), -1);
	assert_int_equal(config_set(&c, "team_objects", "db", err, sizeof(err)), 0);
	assert_null(c.team_objects);
	assert_int_equal(config_set(&c, "team_offline", "cache-only", err, sizeof(err)), 0);
	assert_true(c.team_offline_cache_only);
	assert_int_equal(config_set(&c, "team_offline", "maybe", err, sizeof(err)), -1);
	assert_int_equal(config_set(&c, "team_lease_s", "2", err, sizeof(err)), 0);
	assert_int_equal(config_set(&c, "team_lease_s", "0", err, sizeof(err)), -1);
	s = config_render(&c);
	assert_non_null(strstr(s, "\nteam_db = postgresql://alice@db.example/banana\n"));
	assert_non_null(strstr(s, "\nteam_objects = db\n"));
	assert_non_null(strstr(s, "\nteam_offline = cache-only\n"));
	assert_non_null(strstr(s, "\nteam_lease_s = 2\n"));
	free(s);
	config_free(&c);
}

/* A rendering without keys loads back to the same values. */
static void
test_render_round_trip(void **state)
{
	struct config a, b;
	char *s1, *s2, *cut;

	(void)state;
	clear_key_env();
	assert_int_equal(config_defaults(&a), 0);
	assert_int_equal(config_set(&a, "rpm", "17", err, sizeof(err)), 0);
	assert_int_equal(config_set(&a, "timeout_s", "12.25", err, sizeof(err)), 0);
	assert_int_equal(config_set(&a, "output_format", "original", err, sizeof(err)), 0);
	s1 = config_render(&a);
	cut = strstr(s1, "api_key = ");
	assert_non_null(cut);
	*cut = '\0';		/* the masked key lines are not settable */
	assert_int_equal(config_defaults(&b), 0);
	if (config_load(&b, write_file("round.ini", s1, 0600), true, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	s2 = config_render(&b);
	cut = strstr(s2, "api_key = ");
	*cut = '\0';
	assert_string_equal(s1, s2);
	free(s1);
	free(s2);
	config_free(&a);
	config_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_default_path),
		cmocka_unit_test(test_every_key),
		cmocka_unit_test(test_values_and_aliases),
		cmocka_unit_test(test_bad_values),
		cmocka_unit_test(test_file_errors),
		cmocka_unit_test(test_api_key_never_from_file_or_o),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_prices_section),
		cmocka_unit_test(test_model_section),
		cmocka_unit_test(test_env_precedence),
		cmocka_unit_test(test_key_file_modes),
		cmocka_unit_test(test_env_key_checked),
		cmocka_unit_test(test_key_command),
		cmocka_unit_test(test_gateway_key),
		cmocka_unit_test(test_render),
		cmocka_unit_test(test_render_round_trip),
		cmocka_unit_test(test_team_keys),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
