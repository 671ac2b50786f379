/*
 * ledger.h - STORE/ledger.jsonl: one JSON object a line, appended and
 * fdatasync'd before the call returns.  Never holds a key.
 */
#ifndef BANANAFS_CACHE_LEDGER_H
#define BANANAFS_CACHE_LEDGER_H

#include <pthread.h>
#include <stdbool.h>
#include <sys/types.h>
#include <time.h>
#include "api/clock.h"

#include "api/rates.h"

struct ledger_rec;

struct ledger {
	int fd;				/* O_APPEND */
	char *path;
	pthread_mutex_t mu;		/* one line at a time */
	/* Told every line once it is on disk (team mode: cache/team_ledger.c); may be NULL. */
	void (*mirror)(void *arg, const struct ledger_rec *r, const char *json_line);
	void *mirror_arg;
	const struct clock_ops *clk;	/* the time of a line that has none */
	off_t opened_at;		/* the file's size at ledger_open */
};

/* An event id: 24 hex digits, or a "sent" line's id with LEDGER_UNKNOWN_SUFFIX. */
#define LEDGER_EVENT_LEN 48
#define LEDGER_UNKNOWN_SUFFIX "-unknown"

/* One line.  NULL strings and negative numbers are left out of the JSON. */
struct ledger_rec {
	time_t time;			/* filled with the ledger clock's wall time when 0 */
	const char *event_id;		/* this line's own identity: ledger_append makes a new one when
					   NULL; "" = none (an "unknown" line for a "sent" line written
					   before lines had one).  A line mirrored twice is one team row,
					   two lines that look alike are two */
	const char *job;		/* job id */
	const char *path;		/* the prompt, relative to the mount root; NULL = none.  Lets the
					   mount show each user only the lines of prompts they may read */
	const char *key;		/* cache key hex */
	const char *model, *route, *size, *aspect;
	const char *prompt_hash;	/* hex XXH3-128 of the normalised prompt */
	const char *prompt;		/* full text, only with ledger_prompts = full */
	const char *outcome;		/* sent ok cached coalesced failed refused-budget dry-run
					   unknown (a crash hid the outcome of a "sent") */
	const char *reason;		/* why a resend happened: "retry after 429", "resume after crash", "regen" */
	long http_status;		/* -1 = none */
	const char *api_status;
	const char *request_id;
	const char *error_class;	/* err_class_name() on failure */
	int attempt;			/* 1-based attempt number; 0 = none */
	double latency_s;		/* < 0 = none */
	double cost_usd;		/* estimated (sent) or settled (ok, billed failure); < 0 = unknown */
	bool billed;			/* this line's cost is money spent (ok lines, billed failures) */
	const char *fallback;		/* model actually used when fallback happened */
	const char *model_served;	/* the answer's model / modelVersion (Google may route to a successor) */
	long in_tokens, out_tokens;	/* as the answer reported them (thinking apart); -1 = absent */
	const struct token_usage *usage; /* the tokens the cost was settled from; NULL = none */
	const char *cost_basis;		/* "usage" (tokens at Google's rates) or "per-image" (the answer
					   reported no usage, or a gateway's price); NULL = not settled */
	int search_queries;		/* Google Search queries billed with it ("search: yes"); 0 = none */
	bool simulated;			/* answered by the bundled emulator: "billed" is simulated spend */
};

/* Opens (creating 0600) for appending; clk NULL: clock_real.  0 or -1 with err. */
int ledger_open(struct ledger *l, const char *path, const struct clock_ops *clk, char *err, size_t errlen);
void ledger_close(struct ledger *l);
/*
 * Appends one line and fdatasyncs; the mirror is told the line as written
 * (its time and event id filled in).  0, or -1 (the caller must not send
 * the request).
 */
int ledger_append(struct ledger *l, const struct ledger_rec *r);

/*
 * Sets the mirror, and tells it every line written since ledger_open (the
 * "unknown" lines of ledger_settle_hidden), so it misses none.  0, or -1
 * when those lines could not be read (the mirror is set anyway).
 */
int ledger_set_mirror(struct ledger *l, void (*mirror)(void *arg, const struct ledger_rec *r,
							const char *json_line), void *arg);

/*
 * Run once at mount, before any request: every real-time request whose
 * "sent" line has no outcome line after it (the daemon died while it was
 * on the wire) gets an "unknown" line, billed, with the estimate of the
 * "sent" line: the server may have made and billed the image, so `bananactl
 * cost` and the budget count it until a later line shows otherwise.  Its
 * event id is the "sent" line's with LEDGER_UNKNOWN_SUFFIX: the row another
 * team mount writes when it takes the request over is the same row.  Batch
 * items are left alone (the batch is polled again).  pending(job, key, arg),
 * when not NULL, names requests whose outcome will still be learnt (a
 * journaled background interaction): they are left alone too.
 * The number of lines written, or -1.
 */
int ledger_settle_hidden(struct ledger *l, bool (*pending)(const char *job, const char *key, void *arg),
			 void *arg);

struct ledger_totals {
	double spent_today_usd;		/* billed lines since local midnight */
	double spent_total_usd;
	long lines, torn;		/* torn: lines that were not valid JSON (e.g. last line after a crash) */
};

/* Sums billed lines of the file at path. A torn line is counted, never fatal. 0 or -1. */
int ledger_totals(const char *path, time_t now, struct ledger_totals *t);

#endif
