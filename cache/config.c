/*
 * config.c - every setting with its default, the INI file (libinih), -o
 * options (config_set), and the API keys.
 *
 * Invariants:
 *   - every bad line is an error naming FILE:LINE, never silently ignored;
 *   - api_key and gateway_key are never set from the file or config_set:
 *     only config_resolve_keys fills them, from the environment, a key file
 *     owned by the user with mode & 077 == 0, or a command;
 *   - no message written here ever contains a key;
 *   - key buffers are wiped before they are freed.
 */
#include "api/errbuf.h"
#include "cache/config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <libpq-fe.h>
#include <math.h>
#include <pwd.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "api/models.h"
#include "api/prices.h"
#include "api/request.h"
#include "api/route.h"

#define MIB (1024UL * 1024UL)
#define SECRET_MAX 4096			/* bytes read from a key file or command */
#define INI_NAME_MAX 50			/* libinih cuts longer section and key names */

/* ---- defaults and paths ------------------------------------------------- */

static const char *
home_dir(void)
{
	const char *h = getenv("HOME");
	struct passwd *pw;

	if (h != NULL && h[0] == '/')
		return h;
	pw = getpwuid(getuid());
	return pw != NULL && pw->pw_dir != NULL ? pw->pw_dir : NULL;
}

/* $VAR/sub when $VAR is an absolute path (XDG rule), else $HOME/fallback/sub. */
static char *
xdg_path(const char *var, const char *fallback, const char *sub)
{
	const char *x = getenv(var), *h;
	char *s;

	if (x != NULL && x[0] == '/') {
		if (asprintf(&s, "%s/%s", x, sub) < 0)
			return NULL;
		return s;
	}
	h = home_dir();
	if (h == NULL || asprintf(&s, "%s/%s/%s", h, fallback, sub) < 0)
		return NULL;
	return s;
}

char *
config_default_path(void)
{
	return xdg_path("XDG_CONFIG_HOME", ".config", "bananafs/config");
}

static void
wipe_free(char *s)
{
	if (s != NULL) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

void
config_free(struct config *c)
{
	char **strs[] = {
		&c->store_dir, &c->endpoint, &c->api_version, &c->route, &c->fallback_model,
		&c->fallback_size, &c->default_aspect, &c->api_key_file, &c->api_key_command,
		&c->gateway_url, &c->gateway_key_file, &c->gateway_models, &c->team_db,
		&c->team_objects,
	};

	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
		free(*strs[i]);
		*strs[i] = NULL;
	}
	wipe_free(c->api_key);
	wipe_free(c->gateway_key);
	c->api_key = c->gateway_key = NULL;
}

int
config_defaults(struct config *c)
{
	memset(c, 0, sizeof(*c));
	c->store_dir = xdg_path("XDG_DATA_HOME", ".local/share", "bananafs");
	c->endpoint = strdup("https://generativelanguage.googleapis.com");
	c->api_version = strdup("v1beta");
	c->route = strdup("standard");
	c->default_aspect = strdup("1:1");
	if (c->store_dir == NULL || c->endpoint == NULL || c->api_version == NULL ||
	    c->route == NULL || c->default_aspect == NULL) {
		config_free(c);
		return -1;
	}
	c->max_inflight = 4;
	c->rpm = 0;
	c->retries = 4;
	c->backoff_base_s = 1;
	c->backoff_cap_s = 60;
	c->connect_timeout_s = 10;
	c->timeout_s = 300;
	c->max_response_bytes = 80 * MIB;	/* a 4K PNG of noise is ~54 MiB, ~72 MiB as base64 */
	c->low_speed_limit = 1024;
	c->low_speed_time_s = 30;
	c->answer_memory_mb = 160;		/* two maximal answers */
	c->budget_daily_usd = -1;
	c->budget_total_usd = -1;
	c->ledger_prompts_full = false;
	c->output_original = false;
	c->dry_run = false;
	c->batch_window_s = 5;
	c->batch_poll_s = 10;
	c->gateway_bills_failures = true;
	c->durable_requests = true;
	c->allow_other = false;
	c->publish_via_mount = true;
	c->team_offline_cache_only = false;
	c->team_lease_s = 30;
	c->settle_s = 2;
	return 0;
}

/* ---- value parsers ------------------------------------------------------ */

static int
parse_bool(const char *v, bool *out)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };

	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(v, yes[i]) == 0)
			return *out = true, 0;
		if (strcasecmp(v, no[i]) == 0)
			return *out = false, 0;
	}
	return -1;
}

/* The whole string must be the number: no blanks, no trailing junk. */
static int
parse_long(const char *v, long min, long max, long *out)
{
	char *end;
	long n;

	if (v[0] == '\0' || isspace((unsigned char)v[0]))
		return -1;
	errno = 0;
	n = strtol(v, &end, 10);
	if (errno != 0 || *end != '\0' || n < min || n > max)
		return -1;
	*out = n;
	return 0;
}

static int
parse_double(const char *v, double min, double max, double *out)
{
	char *end;
	double d;

	if (v[0] == '\0' || isspace((unsigned char)v[0]))
		return -1;
	errno = 0;
	d = strtod(v, &end);
	if (errno != 0 || *end != '\0' || !isfinite(d) || d < min || d > max)
		return -1;
	*out = d;
	return 0;
}

/* 127.0.0.0/8, ::1 and localhost: the only hosts plain http:// may name. */
static bool
is_loopback(const char *host, size_t len)
{
	if (len == 9 && strncasecmp(host, "localhost", 9) == 0)
		return true;
	if (len == 5 && memcmp(host, "[::1]", 5) == 0)
		return true;
	if (len >= 4 && memcmp(host, "127.", 4) == 0) {
		for (size_t i = 4; i < len; i++)
			if (!isdigit((unsigned char)host[i]) && host[i] != '.')
				return false;
		return true;
	}
	return false;
}

static int
check_url(const char *key, const char *v, char *err, size_t errlen)
{
	const char *host;
	size_t hl;

	if (strncmp(v, "https://", 8) == 0) {
		host = v + 8;
	} else if (strncmp(v, "http://", 7) == 0) {
		host = v + 7;
		hl = host[0] == '[' ? strcspn(host, "]") + 1 : strcspn(host, ":/");
		if (!is_loopback(host, hl)) {
			errbuf_set(err, errlen, "%s: plain http:// is accepted only for loopback "
				"(localhost, 127.0.0.1, [::1]); use https://", key);
			return -1;
		}
	} else {
		errbuf_set(err, errlen, "%s: expected an https:// URL", key);
		return -1;
	}
	if (host[0] == '\0' || host[0] == '/') {
		errbuf_set(err, errlen, "%s: the URL names no host", key);
		return -1;
	}
	for (const char *p = v; *p != '\0'; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f) {
			errbuf_set(err, errlen, "%s: the URL contains a blank or control character", key);
			return -1;
		}
	return 0;
}

/* "model=provider,model2=provider2" with non-empty sides: the gateway's own parser decides. */
static bool
gateway_models_valid(const char *v)
{
	struct gateway_model_map *m;
	char why[8];

	if (gateway_map_parse(v, &m, why, sizeof(why)) < 0)
		return false;
	gateway_map_free(m);
	return true;
}

/* Replaces *slot with a copy of v ("" = unset), expanding "~/" when path. */
static int
set_str(char **slot, const char *v, bool path, char *err, size_t errlen)
{
	char *s;
	const char *h;

	if (v[0] == '\0') {
		s = NULL;
	} else if (path && strncmp(v, "~/", 2) == 0 && (h = home_dir()) != NULL) {
		if (asprintf(&s, "%s/%s", h, v + 2) < 0) {
			errbuf_set(err, errlen, "out of memory");
			return -1;
		}
	} else if ((s = strdup(v)) == NULL) {
		errbuf_set(err, errlen, "out of memory");
		return -1;
	}
	free(*slot);
	*slot = s;
	return 0;
}

/* ---- the key table ------------------------------------------------------ */

enum ckind { CK_STR, CK_PATH, CK_INT, CK_DBL, CK_BOOL, CK_SPECIAL };

struct ckey {
	const char *name;
	enum ckind kind;
	size_t off;			/* offsetof in struct config (unused for CK_SPECIAL) */
	double min, max;		/* for numbers */
	const char *expect;		/* shown after "expected" in errors */
};

#define F(field) offsetof(struct config, field)
static const struct ckey ckeys[] = {
	{ "store_dir", CK_PATH, F(store_dir), 0, 0, NULL },
	{ "endpoint", CK_SPECIAL, 0, 0, 0, NULL },
	{ "api_version", CK_SPECIAL, 0, 0, 0, NULL },
	{ "route", CK_SPECIAL, 0, 0, 0, NULL },
	{ "max_inflight", CK_INT, F(max_inflight), 1, 256, "an integer 1..256" },
	{ "rpm", CK_INT, F(rpm), 0, 1000000, "an integer 0..1000000 (0 = no limit)" },
	{ "retries", CK_INT, F(retries), 1, 100, "an integer 1..100 (total attempts)" },
	{ "backoff_base_s", CK_DBL, F(backoff_base_s), 0, 3600, "seconds 0..3600" },
	{ "backoff_cap_s", CK_DBL, F(backoff_cap_s), 0, 86400, "seconds 0..86400" },
	{ "connect_timeout_s", CK_DBL, F(connect_timeout_s), 0.001, 3600, "seconds 0.001..3600" },
	{ "timeout_s", CK_DBL, F(timeout_s), 0.001, 86400, "seconds 0.001..86400" },
	{ "max_response_mb", CK_SPECIAL, 0, 1, 4096, "an integer 1..4096 (MiB)" },
	{ "low_speed_limit", CK_INT, F(low_speed_limit), 0, 1 << 30, "bytes per second 0..2^30 (0 = off)" },
	{ "low_speed_time_s", CK_DBL, F(low_speed_time_s), 1, 3600, "seconds 1..3600" },
	{ "answer_memory_mb", CK_INT, F(answer_memory_mb), 1, 1 << 20, "an integer 1..1048576 (MiB)" },
	{ "budget_daily_usd", CK_SPECIAL, F(budget_daily_usd), 0, 1e9, NULL },
	{ "budget_total_usd", CK_SPECIAL, F(budget_total_usd), 0, 1e9, NULL },
	{ "fallback_model", CK_STR, F(fallback_model), 0, 0, NULL },
	{ "fallback_size", CK_SPECIAL, 0, 0, 0, NULL },
	{ "ledger_prompts", CK_SPECIAL, 0, 0, 0, NULL },
	{ "output_format", CK_SPECIAL, 0, 0, 0, NULL },
	{ "aspect", CK_SPECIAL, 0, 0, 0, NULL },
	{ "default_aspect", CK_SPECIAL, 0, 0, 0, NULL },
	{ "dry_run", CK_BOOL, F(dry_run), 0, 0, NULL },
	{ "batch_window_s", CK_DBL, F(batch_window_s), 0, 3600, "seconds 0..3600" },
	{ "batch_poll_s", CK_DBL, F(batch_poll_s), 0.001, 86400, "seconds 0.001..86400" },
	{ "api_key_file", CK_PATH, F(api_key_file), 0, 0, NULL },
	{ "api_key_command", CK_STR, F(api_key_command), 0, 0, NULL },
	{ "gateway_url", CK_SPECIAL, 0, 0, 0, NULL },
	{ "gateway_key_file", CK_PATH, F(gateway_key_file), 0, 0, NULL },
	{ "gateway_models", CK_SPECIAL, 0, 0, 0, NULL },
	{ "gateway_bills_failures", CK_BOOL, F(gateway_bills_failures), 0, 0, NULL },
	{ "durable_requests", CK_BOOL, F(durable_requests), 0, 0, NULL },
	{ "gateway_api", CK_SPECIAL, 0, 0, 0, NULL },
	{ "allow_other", CK_BOOL, F(allow_other), 0, 0, NULL },
	{ "publish_via_mount", CK_BOOL, F(publish_via_mount), 0, 0, NULL },
	{ "team_db", CK_SPECIAL, 0, 0, 0, NULL },
	{ "team_objects", CK_SPECIAL, 0, 0, 0, NULL },
	{ "team_offline", CK_SPECIAL, 0, 0, 0, NULL },
	{ "team_lease_s", CK_DBL, F(team_lease_s), 1, 86400, "seconds 1..86400" },
	{ "settle_s", CK_DBL, F(settle_s), 0, 60, "seconds 0..60" },
};
#undef F

/*
 * team_db: any libpq connection string or URI that libpq itself can parse,
 * without a password.  A password here would sit in a file that is read by
 * the whole config machinery and shown by .bananafs/config; libpq reads it
 * from ~/.pgpass or PGPASSFILE instead.  The value is never echoed back.
 */
static int
set_team_db(struct config *c, const char *v, char *err, size_t errlen)
{
	PQconninfoOption *opts, *o;
	char *perr = NULL;
	bool has_password = false;

	if (v[0] == '\0')
		return set_str(&c->team_db, v, false, err, errlen);
	opts = PQconninfoParse(v, &perr);
	if (opts == NULL) {
		/* libpq's message may quote the string: keep only that it failed. */
		errbuf_set(err, errlen, "team_db: not a PostgreSQL connection string or URI "
			"(e.g. host=db.example.org dbname=bananafs user=alice, or "
			"postgresql://alice@db.example.org/bananafs)");
		PQfreemem(perr);
		return -1;
	}
	for (o = opts; o->keyword != NULL; o++)
		if (strcmp(o->keyword, "password") == 0 && o->val != NULL && o->val[0] != '\0')
			has_password = true;
	PQconninfoFree(opts);
	if (has_password) {
		errbuf_set(err, errlen, "team_db: a password in the connection string is refused "
			"(it would end up in files and process lists); put it in ~/.pgpass or the "
			"file PGPASSFILE names (mode 600)");
		return -1;
	}
	return set_str(&c->team_db, v, false, err, errlen);
}

static int
set_special(struct config *c, const struct ckey *k, const char *v, char *err, size_t errlen)
{
	const char *n = k->name;
	enum route r;
	double d;
	long l;

	if (strcmp(n, "endpoint") == 0 || strcmp(n, "gateway_url") == 0) {
		char **slot = n[0] == 'e' ? &c->endpoint : &c->gateway_url;
		size_t len = strlen(v);

		if (v[0] == '\0' && slot == &c->gateway_url)
			return set_str(slot, v, false, err, errlen);
		if (check_url(n, v, err, errlen) < 0)
			return -1;
		if (set_str(slot, v, false, err, errlen) < 0)
			return -1;
		/* One spelling: no trailing '/', the routes add their own. */
		while (len > 0 && (*slot)[len - 1] == '/')
			(*slot)[--len] = '\0';
		return 0;
	}
	if (strcmp(n, "api_version") == 0) {
		if (v[0] == '\0' || strspn(v, "abcdefghijklmnopqrstuvwxyz0123456789.") != strlen(v)) {
			errbuf_set(err, errlen, "api_version: bad value '%s': expected a version path "
				"such as v1beta or v1", v);
			return -1;
		}
		return set_str(&c->api_version, v, false, err, errlen);
	}
	if (strcmp(n, "route") == 0) {
		if (route_parse(v, &r) < 0) {
			errbuf_set(err, errlen, "route: unknown route '%s': expected standard, generate, "
				"flex, batch or gateway", v);
			return -1;
		}
		return set_str(&c->route, route_name(r), false, err, errlen);
	}
	if (strcmp(n, "max_response_mb") == 0) {
		if (parse_long(v, (long)k->min, (long)k->max, &l) < 0) {
			errbuf_set(err, errlen, "%s: bad number '%s': expected %s", n, v, k->expect);
			return -1;
		}
		c->max_response_bytes = (size_t)l * MIB;
		return 0;
	}
	if (strncmp(n, "budget_", 7) == 0) {
		double *slot = (double *)(void *)((char *)c + k->off);

		if (strcasecmp(v, "none") == 0 || strcasecmp(v, "unlimited") == 0 ||
		    strcasecmp(v, "off") == 0) {
			*slot = -1;
			return 0;
		}
		if (parse_double(v, -INFINITY, k->max, &d) < 0) {
			errbuf_set(err, errlen, "%s: bad number '%s': expected US dollars >= 0, or none",
				n, v);
			return -1;
		}
		if (d < 0) {
			errbuf_set(err, errlen, "%s: negative budget '%s': use a limit >= 0, or none for "
				"no limit", n, v);
			return -1;
		}
		*slot = d;
		return 0;
	}
	if (strcmp(n, "fallback_size") == 0) {
		if (v[0] != '\0' && strcmp(v, "512") != 0 && strcmp(v, "1K") != 0 &&
		    strcmp(v, "2K") != 0 && strcmp(v, "4K") != 0) {
			errbuf_set(err, errlen, "fallback_size: bad value '%s': expected 512, 1K, 2K or 4K",
				v);
			return -1;
		}
		return set_str(&c->fallback_size, v, false, err, errlen);
	}
	if (strcmp(n, "ledger_prompts") == 0) {
		if (strcmp(v, "hash") != 0 && strcmp(v, "full") != 0) {
			errbuf_set(err, errlen, "ledger_prompts: bad value '%s': expected hash or full", v);
			return -1;
		}
		c->ledger_prompts_full = strcmp(v, "full") == 0;
		return 0;
	}
	if (strcmp(n, "output_format") == 0) {
		if (strcmp(v, "png") != 0 && strcmp(v, "original") != 0) {
			errbuf_set(err, errlen, "output_format: bad value '%s': expected png or original", v);
			return -1;
		}
		c->output_original = strcmp(v, "original") == 0;
		return 0;
	}
	if (strcmp(n, "aspect") == 0 || strcmp(n, "default_aspect") == 0) {
		if (!aspect_valid(v)) {
			errbuf_set(err, errlen, "%s: bad aspect '%s': expected one of 1:1 2:3 3:2 3:4 4:3 "
				"4:5 5:4 9:16 16:9 21:9 1:4 4:1 1:8 8:1", n, v);
			return -1;
		}
		return set_str(&c->default_aspect, v, false, err, errlen);
	}
	if (strcmp(n, "gateway_models") == 0) {
		if (v[0] != '\0' && !gateway_models_valid(v)) {
			errbuf_set(err, errlen, "gateway_models: bad value '%s': expected "
				"model=provider-name[,model=provider-name...]", v);
			return -1;
		}
		return set_str(&c->gateway_models, v, false, err, errlen);
	}
	if (strcmp(n, "gateway_api") == 0) {
		enum gateway_api a;

		if (gateway_api_parse(v, &a) < 0) {
			errbuf_set(err, errlen, "gateway_api: bad value '%s': expected native, images "
				"or chat", v);
			return -1;
		}
		c->gateway_api = (int)a;
		return 0;
	}
	if (strcmp(n, "team_db") == 0)
		return set_team_db(c, v, err, errlen);
	if (strcmp(n, "team_objects") == 0) {
		if (strcmp(v, "db") == 0 || v[0] == '\0')
			return set_str(&c->team_objects, "", false, err, errlen);
		if (v[0] != '/' && strncmp(v, "~/", 2) != 0) {
			errbuf_set(err, errlen, "team_objects: bad value '%s': expected db or an "
				"absolute path of a folder every machine mounts", v);
			return -1;
		}
		return set_str(&c->team_objects, v, true, err, errlen);
	}
	if (strcmp(n, "team_offline") == 0) {
		if (strcmp(v, "fail") != 0 && strcmp(v, "cache-only") != 0) {
			errbuf_set(err, errlen, "team_offline: bad value '%s': expected fail or "
				"cache-only", v);
			return -1;
		}
		c->team_offline_cache_only = strcmp(v, "cache-only") == 0;
		return 0;
	}
	errbuf_set(err, errlen, "%s: internal error: no setter", n);
	return -1;
}

int
config_set(struct config *c, const char *key, const char *value, char *err, size_t errlen)
{
	const struct ckey *k = NULL;
	long l;
	double d;
	bool b;

	if (key == NULL || value == NULL) {
		errbuf_set(err, errlen, "missing key or value");
		return -1;
	}
	if (strcmp(key, "api_key") == 0 || strcmp(key, "gateway_key") == 0) {
		errbuf_set(err, errlen, "%s cannot be set in the config file or with -o (it would end "
			"up in shell history and process lists); use the environment (%s), %s_file "
			"(mode 600) or %s", key,
			key[0] == 'a' ? "GOOGLE_API_KEY or GEMINI_API_KEY" : "BANANAFS_GATEWAY_KEY",
			key, key[0] == 'a' ? "api_key_command" : "nothing else");
		return -1;
	}
	for (size_t i = 0; i < sizeof(ckeys) / sizeof(ckeys[0]); i++)
		if (strcmp(ckeys[i].name, key) == 0) {
			k = &ckeys[i];
			break;
		}
	if (k == NULL) {
		errbuf_set(err, errlen, "unknown key '%s' (see bananafs.conf(5))", key);
		return -1;
	}

	switch (k->kind) {
	case CK_STR:
	case CK_PATH:
		return set_str((char **)(void *)((char *)c + k->off), value, k->kind == CK_PATH,
			       err, errlen);
	case CK_INT:
		if (parse_long(value, (long)k->min, (long)k->max, &l) < 0) {
			errbuf_set(err, errlen, "%s: bad number '%s': expected %s", key, value, k->expect);
			return -1;
		}
		*(int *)(void *)((char *)c + k->off) = (int)l;
		return 0;
	case CK_DBL:
		if (parse_double(value, k->min, k->max, &d) < 0) {
			errbuf_set(err, errlen, "%s: bad number '%s': expected %s", key, value, k->expect);
			return -1;
		}
		*(double *)(void *)((char *)c + k->off) = d;
		return 0;
	case CK_BOOL:
		if (parse_bool(value, &b) < 0) {
			errbuf_set(err, errlen, "%s: bad value '%s': expected yes or no", key, value);
			return -1;
		}
		*(bool *)(void *)((char *)c + k->off) = b;
		return 0;
	case CK_SPECIAL:
		return set_special(c, k, value, err, errlen);
	}
	return -1;
}

/* ---- the INI file ------------------------------------------------------- */

struct pending_model {
	char *id;			/* NULL when no [model ...] section is open */
	char *sizes, *alias;
	bool wide;
	int line;			/* first line of the section's keys, for errors */
};

struct load_ctx {
	struct config *c;
	const char *path;
	FILE *f;
	int lineno;			/* lines read so far: the line inih is handling */
	int err_line;			/* 0 = no error yet */
	char msg[512];
	char section[INI_NAME_MAX + 1];	/* the section of the previous key */
	struct pending_model pm;
	char date[11];			/* the file's modification date: when the user's prices were entered */
};

static void __attribute__((format(printf, 3, 4)))
ctx_fail(struct load_ctx *x, int line, const char *fmt, ...)
{
	va_list ap;

	if (x->err_line != 0)
		return;		/* the first error is the one to report */
	x->err_line = line;
	va_start(ap, fmt);
	vsnprintf(x->msg, sizeof(x->msg), fmt, ap);
	va_end(ap);
}

/*
 * fgets for inih that counts lines, so errors from the handler carry the
 * right line number, and that refuses lines inih would silently cut.
 */
static char *
ctx_reader(char *str, int num, void *stream)
{
	struct load_ctx *x = stream;
	size_t len;
	const char *s;

	if (fgets(str, num, x->f) == NULL)
		return NULL;
	x->lineno++;
	len = strlen(str);
	if (len > 0 && str[len - 1] != '\n' && !feof(x->f)) {
		int ch;

		ctx_fail(x, x->lineno, "line longer than %d bytes", num - 2);
		while ((ch = fgetc(x->f)) != EOF && ch != '\n')
			;	/* drop the rest: inih sees one blank line */
		str[0] = '\n', str[1] = '\0';
		return str;
	}
	s = str + strspn(str, " \t");
	if (*s == '[') {
		if (strcspn(s + 1, "]") >= INI_NAME_MAX)
			ctx_fail(x, x->lineno, "section name longer than %d bytes", INI_NAME_MAX - 1);
	} else if (*s != ';' && *s != '#' && *s != '\n' && *s != '\r' && *s != '\0') {
		size_t n = strcspn(s, "=:");

		while (n > 0 && isspace((unsigned char)s[n - 1]))
			n--;
		if (n >= INI_NAME_MAX)
			ctx_fail(x, x->lineno, "key name longer than %d bytes", INI_NAME_MAX - 1);
	}
	return str;
}

static void
pm_clear(struct pending_model *pm)
{
	free(pm->id);
	free(pm->sizes);
	free(pm->alias);
	memset(pm, 0, sizeof(*pm));
}

/* Adds the model of the [model ID] section just finished. */
static void
pm_flush(struct load_ctx *x)
{
	struct pending_model *pm = &x->pm;

	if (pm->id == NULL)
		return;
	if (pm->sizes == NULL)
		ctx_fail(x, pm->line, "[model %s]: sizes missing (e.g. sizes = 1K,2K)", pm->id);
	else if (models_add(pm->id, pm->sizes, pm->alias, pm->wide) < 0)
		ctx_fail(x, pm->line, "[model %s]: cannot add the model: sizes must be 512, 1K, 2K "
			 "or 4K without repeats, the id under 64 bytes without '/', the alias under "
			 "16 bytes and not taken by another model", pm->id);
	pm_clear(pm);
}

static int
handle_price(struct load_ctx *x, const char *name, const char *value)
{
	char buf[INI_NAME_MAX + 1], *rdot, *sdot = NULL;
	enum route r;
	double usd;

	snprintf(buf, sizeof(buf), "%s", name);
	/* The model id has dots itself: split MODEL.SIZE.ROUTE from the right. */
	rdot = strrchr(buf, '.');
	if (rdot != NULL) {
		*rdot = '\0';
		sdot = strrchr(buf, '.');
	}
	if (rdot == NULL || sdot == NULL || sdot == buf) {
		ctx_fail(x, x->lineno, "[prices]: bad key '%s': expected MODEL.SIZE.ROUTE, e.g. "
			 "gemini-3-pro-image.2K.batch", name);
		return 0;
	}
	*sdot = '\0';
	if (route_parse(rdot + 1, &r) < 0) {
		ctx_fail(x, x->lineno, "[prices]: unknown route '%s' in '%s': expected standard, "
			 "generate, flex, batch or gateway", rdot + 1, name);
		return 0;
	}
	if (parse_double(value, 0, 1000, &usd) < 0) {
		ctx_fail(x, x->lineno, "[prices]: bad price '%s' for %s: expected US dollars "
			 "0..1000", value, name);
		return 0;
	}
	if (price_set_dated(buf, sdot + 1, r, usd, x->date) < 0) {
		ctx_fail(x, x->lineno, "[prices]: cannot set the price of %s", name);
		return 0;
	}
	return 1;
}

static int
handle_model_key(struct load_ctx *x, const char *name, const char *value)
{
	struct pending_model *pm = &x->pm;
	char **slot;

	if (pm->line == 0)
		pm->line = x->lineno;
	if (strcmp(name, "wide_aspects") == 0) {
		if (parse_bool(value, &pm->wide) < 0) {
			ctx_fail(x, x->lineno, "wide_aspects: bad value '%s': expected yes or no", value);
			return 0;
		}
		return 1;
	}
	if (strcmp(name, "sizes") == 0) {
		slot = &pm->sizes;
		pm->line = x->lineno;	/* the usual culprit when models_add refuses */
	} else if (strcmp(name, "alias") == 0) {
		slot = &pm->alias;
	} else {
		ctx_fail(x, x->lineno, "[model %s]: unknown key '%s' (known: sizes, alias, "
			 "wide_aspects)", pm->id, name);
		return 0;
	}
	free(*slot);
	*slot = strdup(value);
	if (*slot == NULL) {
		ctx_fail(x, x->lineno, "out of memory");
		return 0;
	}
	return 1;
}

static int
ctx_handler(void *user, const char *section, const char *name, const char *value)
{
	struct load_ctx *x = user;
	char err[400];

	if (strcmp(section, x->section) != 0) {
		pm_flush(x);
		snprintf(x->section, sizeof(x->section), "%s", section);
		if (strncmp(section, "model", 5) == 0 && isspace((unsigned char)section[5])) {
			const char *id = section + 5;

			id += strspn(id, " \t");
			if (*id == '\0' || strpbrk(id, " \t") != NULL) {
				ctx_fail(x, x->lineno, "bad section [%s]: expected [model ID]", section);
				return 0;
			}
			if ((x->pm.id = strdup(id)) == NULL) {
				ctx_fail(x, x->lineno, "out of memory");
				return 0;
			}
		}
	}
	if (name == NULL)
		return 1;	/* a section start, when inih reports those */

	if (section[0] == '\0' || strcmp(section, "bananafs") == 0) {
		if (config_set(x->c, name, value, err, sizeof(err)) < 0) {
			ctx_fail(x, x->lineno, "%s", err);
			return 0;
		}
		char from[300];
		snprintf(from, sizeof(from), "%s:%d", x->path, x->lineno);
		config_note_origin(x->c, name, from);
		return 1;
	}
	if (strcmp(section, "prices") == 0)
		return handle_price(x, name, value);
	if (x->pm.id != NULL)
		return handle_model_key(x, name, value);
	ctx_fail(x, x->lineno, "unknown section [%s] (known: [bananafs], [prices], [model ID])",
		 section);
	return 0;
}

void
config_note_origin(struct config *c, const char *key, const char *from)
{
	if (strcmp(key, "budget_daily_usd") == 0)
		snprintf(c->budget_daily_from, sizeof(c->budget_daily_from), "%s", from);
	else if (strcmp(key, "budget_total_usd") == 0)
		snprintf(c->budget_total_from, sizeof(c->budget_total_from), "%s", from);
}

int
config_load(struct config *c, const char *path, bool must_exist, char *err, size_t errlen)
{
	struct load_ctx x;
	int r;

	memset(&x, 0, sizeof(x));
	x.c = c;
	x.path = path;
	x.f = fopen(path, "re");
	if (x.f == NULL) {
		if (errno == ENOENT && !must_exist)
			return 0;
		errbuf_set(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	struct stat st;
	struct tm tm;
	if (fstat(fileno(x.f), &st) == 0 && localtime_r(&st.st_mtime, &tm))
		strftime(x.date, sizeof(x.date), "%Y-%m-%d", &tm);
	r = ini_parse_stream(ctx_reader, &x, ctx_handler, &x);
	if (ferror(x.f))
		ctx_fail(&x, x.lineno + 1, "read error");
	fclose(x.f);
	pm_flush(&x);

	/* inih reports the first line it failed on: a syntax error or our handler. */
	if (r > 0 && (x.err_line == 0 || r < x.err_line)) {
		errbuf_set(err, errlen, "%s:%d: syntax error: expected 'key = value' or '[section]'",
			path, r);
		return -1;
	}
	if (x.err_line != 0) {
		errbuf_set(err, errlen, "%s:%d: %s", path, x.err_line, x.msg);
		return -1;
	}
	if (r != 0) {
		errbuf_set(err, errlen, "%s: cannot parse (out of memory)", path);
		return -1;
	}
	return 0;
}

/* ---- keys --------------------------------------------------------------- */

/* A key is one token of printable ASCII or UTF-8, without blanks. */
static int
check_key(const char *k, const char *from, char *err, size_t errlen)
{
	if (k[0] == '\0') {
		errbuf_set(err, errlen, "the key from %s is empty", from);
		return -1;
	}
	for (const unsigned char *p = (const unsigned char *)k; *p != '\0'; p++)
		if (*p <= ' ' || *p == 0x7f) {
			errbuf_set(err, errlen, "the key from %s contains spaces or control characters; "
				"store the key alone on one line", from);
			return -1;
		}
	return 0;
}

/* Drops trailing CR/LF in place. */
static void
strip_eol(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
		s[--n] = '\0';
}

static char *
read_key_file(const char *setting, const char *path, char *err, size_t errlen)
{
	char buf[SECRET_MAX + 1], *key = NULL;
	struct stat st;
	size_t got = 0;
	int fd;

	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ELOOP)
			errbuf_set(err, errlen, "%s %s is a symbolic link; name the file itself", setting,
				path);
		else
			errbuf_set(err, errlen, "%s %s: %s", setting, path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) < 0) {
		errbuf_set(err, errlen, "%s %s: %s", setting, path, strerror(errno));
		goto out_close;
	}
	if (!S_ISREG(st.st_mode)) {
		errbuf_set(err, errlen, "%s %s is not a regular file", setting, path);
		goto out_close;
	}
	if (st.st_uid != geteuid()) {
		errbuf_set(err, errlen, "%s %s is owned by uid %u, not by you (uid %u): use a key file "
			"of your own, with chmod 600", setting, path, (unsigned)st.st_uid,
			(unsigned)geteuid());
		goto out_close;
	}
	if ((st.st_mode & 077) != 0) {
		errbuf_set(err, errlen, "%s %s is open to group or others (mode %04o); refusing to use "
			"it: run chmod 600 %s", setting, path, (unsigned)(st.st_mode & 07777), path);
		goto out_close;
	}
	while (got < sizeof(buf)) {
		ssize_t rd = read(fd, buf + got, sizeof(buf) - got);

		if (rd < 0 && errno == EINTR)
			continue;
		if (rd < 0) {
			errbuf_set(err, errlen, "%s %s: read: %s", setting, path, strerror(errno));
			goto out_wipe;
		}
		if (rd == 0)
			break;
		got += (size_t)rd;
	}
	if (got > SECRET_MAX) {
		errbuf_set(err, errlen, "%s %s is larger than %d bytes; it should hold only the key",
			setting, path, SECRET_MAX);
		goto out_wipe;
	}
	buf[got] = '\0';
	if (memchr(buf, '\0', got) != NULL) {
		errbuf_set(err, errlen, "the key from %s %s contains a NUL byte", setting, path);
		goto out_wipe;
	}
	strip_eol(buf);
	if (check_key(buf, setting, err, errlen) < 0)
		goto out_wipe;
	key = strdup(buf);
	if (key == NULL)
		errbuf_set(err, errlen, "out of memory");
out_wipe:
	explicit_bzero(buf, sizeof(buf));
out_close:
	close(fd);
	return key;
}

static char *
run_key_command(const char *cmd, char *err, size_t errlen)
{
	char buf[SECRET_MAX + 1], drain[512], *key = NULL, *nl;
	size_t got = 0;
	FILE *p;
	int st;

	fflush(NULL);
	p = popen(cmd, "re");
	if (p == NULL) {
		errbuf_set(err, errlen, "api_key_command: cannot run: %s", strerror(errno));
		return NULL;
	}
	got = fread(buf, 1, SECRET_MAX, p);
	buf[got] = '\0';
	/* Read to the end so the command never blocks on a full pipe. */
	while (fread(drain, 1, sizeof(drain), p) > 0)
		;
	explicit_bzero(drain, sizeof(drain));
	st = pclose(p);
	if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		if (st != -1 && WIFEXITED(st))
			errbuf_set(err, errlen, "api_key_command failed (exit status %d)",
				WEXITSTATUS(st));
		else
			errbuf_set(err, errlen, "api_key_command failed (killed or not run)");
		goto out_wipe;
	}
	nl = memchr(buf, '\n', got);
	if (nl != NULL)
		*nl = '\0';	/* the first line is the key */
	if (strlen(buf) != (nl != NULL ? (size_t)(nl - buf) : got)) {
		errbuf_set(err, errlen, "the key from api_key_command contains a NUL byte");
		goto out_wipe;
	}
	strip_eol(buf);
	if (check_key(buf, "api_key_command", err, errlen) < 0)
		goto out_wipe;
	key = strdup(buf);
	if (key == NULL)
		errbuf_set(err, errlen, "out of memory");
out_wipe:
	explicit_bzero(buf, sizeof(buf));
	return key;
}

static const char *
env_nonempty(const char *name)
{
	const char *v = getenv(name);

	return v != NULL && v[0] != '\0' ? v : NULL;
}

static int
key_from_env(const char *var, char **out, char *err, size_t errlen)
{
	const char *v = env_nonempty(var);

	if (check_key(v, var, err, errlen) < 0)
		return -1;
	if ((*out = strdup(v)) == NULL) {
		errbuf_set(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

int
config_resolve_keys(struct config *c, char *warn, size_t warnlen, char *err, size_t errlen)
{
	const char *google = env_nonempty("GOOGLE_API_KEY");
	const char *gemini = env_nonempty("GEMINI_API_KEY");
	char *key = NULL, *gw = NULL;

	if (warn != NULL && warnlen > 0)
		warn[0] = '\0';

	/* The official SDK's order: GOOGLE_API_KEY wins over GEMINI_API_KEY. */
	if (google != NULL) {
		if (gemini != NULL)
			errbuf_set(warn, warnlen, "Both GOOGLE_API_KEY and GEMINI_API_KEY are set. "
				"Using GOOGLE_API_KEY.");
		if (key_from_env("GOOGLE_API_KEY", &key, err, errlen) < 0)
			return -1;
	} else if (gemini != NULL) {
		if (key_from_env("GEMINI_API_KEY", &key, err, errlen) < 0)
			return -1;
	} else if (c->api_key_file != NULL) {
		if ((key = read_key_file("api_key_file", c->api_key_file, err, errlen)) == NULL)
			return -1;
	} else if (c->api_key_command != NULL) {
		if ((key = run_key_command(c->api_key_command, err, errlen)) == NULL)
			return -1;
	}

	if (env_nonempty("BANANAFS_GATEWAY_KEY") != NULL) {
		if (key_from_env("BANANAFS_GATEWAY_KEY", &gw, err, errlen) < 0)
			goto out_key;
	} else if (c->gateway_key_file != NULL) {
		gw = read_key_file("gateway_key_file", c->gateway_key_file, err, errlen);
		if (gw == NULL)
			goto out_key;
	}

	wipe_free(c->api_key);
	wipe_free(c->gateway_key);
	c->api_key = key;
	c->gateway_key = gw;
	return 0;

out_key:
	wipe_free(key);
	return -1;
}

/* ---- rendering ---------------------------------------------------------- */

char *
config_render(const struct config *c)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

#define S(x) ((x) != NULL ? (x) : "")
	if (f == NULL)
		return NULL;
	fprintf(f, "[bananafs]\n");
	fprintf(f, "store_dir = %s\n", S(c->store_dir));
	fprintf(f, "endpoint = %s\n", S(c->endpoint));
	fprintf(f, "api_version = %s\n", S(c->api_version));
	fprintf(f, "route = %s\n", S(c->route));
	fprintf(f, "max_inflight = %d\n", c->max_inflight);
	fprintf(f, "rpm = %d\n", c->rpm);
	fprintf(f, "retries = %d\n", c->retries);
	fprintf(f, "backoff_base_s = %g\n", c->backoff_base_s);
	fprintf(f, "backoff_cap_s = %g\n", c->backoff_cap_s);
	fprintf(f, "connect_timeout_s = %g\n", c->connect_timeout_s);
	fprintf(f, "timeout_s = %g\n", c->timeout_s);
	fprintf(f, "max_response_mb = %zu\n", c->max_response_bytes / MIB);
	fprintf(f, "low_speed_limit = %d\n", c->low_speed_limit);
	fprintf(f, "low_speed_time_s = %g\n", c->low_speed_time_s);
	fprintf(f, "answer_memory_mb = %d\n", c->answer_memory_mb);
	if (c->budget_daily_usd < 0)
		fprintf(f, "budget_daily_usd = none\n");
	else
		fprintf(f, "budget_daily_usd = %g\n", c->budget_daily_usd);
	if (c->budget_total_usd < 0)
		fprintf(f, "budget_total_usd = none\n");
	else
		fprintf(f, "budget_total_usd = %g\n", c->budget_total_usd);
	fprintf(f, "fallback_model = %s\n", S(c->fallback_model));
	fprintf(f, "fallback_size = %s\n", S(c->fallback_size));
	fprintf(f, "ledger_prompts = %s\n", c->ledger_prompts_full ? "full" : "hash");
	fprintf(f, "output_format = %s\n", c->output_original ? "original" : "png");
	fprintf(f, "aspect = %s\n", S(c->default_aspect));
	fprintf(f, "dry_run = %s\n", c->dry_run ? "yes" : "no");
	fprintf(f, "batch_window_s = %g\n", c->batch_window_s);
	fprintf(f, "batch_poll_s = %g\n", c->batch_poll_s);
	fprintf(f, "api_key_file = %s\n", S(c->api_key_file));
	/* The command may hold a key inline (echo KEY): only whether one is set. */
	fprintf(f, "api_key_command = %s\n", c->api_key_command != NULL ? "(set)" : "");
	fprintf(f, "gateway_url = %s\n", S(c->gateway_url));
	fprintf(f, "gateway_key_file = %s\n", S(c->gateway_key_file));
	fprintf(f, "gateway_models = %s\n", S(c->gateway_models));
	fprintf(f, "gateway_bills_failures = %s\n", c->gateway_bills_failures ? "yes" : "no");
	fprintf(f, "durable_requests = %s\n", c->durable_requests ? "yes" : "no");
	fprintf(f, "gateway_api = %s\n", S(gateway_api_name((enum gateway_api)c->gateway_api)));
	fprintf(f, "allow_other = %s\n", c->allow_other ? "yes" : "no");
	fprintf(f, "publish_via_mount = %s\n", c->publish_via_mount ? "yes" : "no");
	fprintf(f, "team_db = %s\n", S(c->team_db));
	fprintf(f, "team_objects = %s\n", c->team_objects != NULL ? c->team_objects : "db");
	fprintf(f, "team_offline = %s\n", c->team_offline_cache_only ? "cache-only" : "fail");
	fprintf(f, "team_lease_s = %g\n", c->team_lease_s);
	fprintf(f, "settle_s = %g\n", c->settle_s);
	/* Keys: only whether one is there, never a byte of it. */
	fprintf(f, "api_key = %s\n", c->api_key != NULL ? "(set)" : "(not set)");
	fprintf(f, "gateway_key = %s\n", c->gateway_key != NULL ? "(set)" : "(not set)");
#undef S
	if (fclose(f) != 0) {
		free(out);
		return NULL;
	}
	return out;
}
