/*
 * config.h - every setting, its default, and the INI file (libinih).
 * Parsed once at start-up before mounting; read-only afterwards.
 * Keys and defaults are documented in man/bananafs.conf.5.
 */
#ifndef BANANAFS_CACHE_CONFIG_H
#define BANANAFS_CACHE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

struct config {
	char *store_dir;		/* default $XDG_DATA_HOME/bananafs */
	char *endpoint;			/* base URL; default https://generativelanguage.googleapis.com */
	char *api_version;		/* "v1beta" */
	char *route;			/* default route name: "standard" */
	int max_inflight;		/* concurrent paid requests, default 4 */
	int rpm;			/* request starts per minute, 0 = no limit */
	int retries;			/* total attempts for transient failures, default 4 */
	double backoff_base_s;		/* default 1 */
	double backoff_cap_s;		/* default 60 */
	double connect_timeout_s;	/* default 10 */
	double timeout_s;		/* whole request, default 300 */
	size_t max_response_bytes;	/* one answer's cap, default 80 MiB (the largest 4K PNG as base64) */
	int low_speed_limit;		/* bytes/s below which an answer stalls; 0 = off; default 1024 */
	double low_speed_time_s;	/* ... for this long ends it; default 30 */
	int answer_memory_mb;		/* answer bytes held at once, mount-wide, MiB; default 160 */
	double budget_daily_usd;	/* < 0 = no limit (default) */
	double budget_total_usd;	/* < 0 = no limit (default) */
	/* Where each limit was set, for the refusal's words: "FILE:LINE" or "-o" ("" = not set). */
	char budget_daily_from[320];
	char budget_total_from[320];
	char *fallback_model;		/* NULL = none */
	char *fallback_size;		/* NULL = none */
	bool ledger_prompts_full;	/* ledger_prompts = full | hash (default hash) */
	bool output_original;		/* output_format = original | png (default png) */
	char *default_aspect;		/* "1:1" */
	bool dry_run;
	double batch_window_s;		/* gathering window for route batch, default 5 */
	double batch_poll_s;		/* first poll interval, default 10 */
	char *api_key_file;
	char *api_key_command;
	char *gateway_url;
	char *gateway_key_file;
	char *gateway_models;		/* "gemini-3-pro-image=provider-name,..." */
	bool gateway_bills_failures;	/* default true */
	bool durable_requests;		/* standard/flex as background interactions; default true */
	int gateway_api;		/* enum gateway_api (api/route.h): native (default), images, chat */
	bool allow_other;
	bool publish_via_mount;		/* rename results into place through the mount (inotify); default true */
	/* Team mode (cache/team_db.h): on when team_db is set. */
	char *team_db;			/* libpq conninfo or URI, never with a password; NULL = off */
	char *team_objects;		/* NULL = images in PostgreSQL ("db"), else a shared folder */
	bool team_offline_cache_only;	/* team_offline = cache-only | fail (default fail) */
	double team_lease_s;		/* a claim or reservation not renewed for this long is dead; default 30 */
	double settle_s;		/* a prompt about to be paid waits this long after it arrives; default 2 */
	/* Resolved at start-up, never written anywhere: */
	char *api_key;
	char *gateway_key;
};

/* Fills defaults (store_dir from $XDG_DATA_HOME or ~/.local/share). 0 or -1. */
int config_defaults(struct config *c);

/*
 * Reads an INI file over the current values.  [bananafs] holds the keys,
 * [prices] holds "model.size.route = usd", [model ID] sections add models
 * (sizes = 1K,2K; alias = x; wide_aspects = yes).  A missing file is not an
 * error when must_exist is false.  On a bad line returns -1 and writes
 * "FILE:LINE: what is wrong" into err.
 */
int config_load(struct config *c, const char *path, bool must_exist, char *err, size_t errlen);

/* Records that key (a budget limit) was set at from ("-o", "FILE:LINE"); other keys: no-op. */
void config_note_origin(struct config *c, const char *key, const char *from);

/* Sets one key by name (also used for -o options).  0, or -1 with err. */
int config_set(struct config *c, const char *key, const char *value, char *err, size_t errlen);

/* $XDG_CONFIG_HOME/bananafs/config or ~/.config/bananafs/config, malloc'd. */
char *config_default_path(void);

/*
 * Resolves the API key: GOOGLE_API_KEY, then GEMINI_API_KEY (warning in
 * warn when both are set), then api_key_file (refused unless owned by the
 * user and mode & 077 == 0), then api_key_command.  Also the gateway key
 * (BANANAFS_GATEWAY_KEY, gateway_key_file).  Returns 0 (key may still be
 * NULL) or -1 with err.
 */
int config_resolve_keys(struct config *c, char *warn, size_t warnlen, char *err, size_t errlen);

/* Renders the effective config as INI text, keys masked. malloc'd. */
char *config_render(const struct config *c);

void config_free(struct config *c);

#endif
