/*
 * background.h - standard and flex requests as background interactions
 * (gemini-wire.md 1.4): create, journal the id, poll, delete.
 */
#ifndef BANANAFS_API_BACKGROUND_H
#define BANANAFS_API_BACKGROUND_H

#include <stdbool.h>
#include "api/clock.h"
#include "api/http.h"
#include "api/request.h"
#include "api/route.h"

#define BG_ID_MAX 128

enum bg_state {
	BG_CREATE,		/* nothing created yet */
	BG_POLL,		/* created: id known, polling */
	BG_DONE,		/* the answer (or a failure without an interaction) is in res */
	BG_PLAIN,		/* the model refused background mode: send a plain request */
	BG_LOST,		/* created, but no result could be had: gave up or it vanished */
	BG_LEFT,		/* created, and left to another owner, who polls it now (keep said no) */
};

enum bg_event {
	BGE_CREATED,		/* the create call answered "in progress" with an id */
	BGE_FINISHED,		/* a create or poll answered with a finished interaction */
	BGE_REFUSED,		/* the create was refused: a 400 that names background mode */
	BGE_FAILED,		/* the create failed otherwise: no interaction exists */
	BGE_PENDING,		/* a poll: still in progress */
	BGE_POLL_ERROR,		/* a poll failed (network, 5xx, 429): try again later */
	BGE_GONE,		/* a poll: 404, the interaction is no more */
};

/* The state machine alone: no I/O, time passed in (unit-tested with a fake clock). */
struct bg_machine {
	enum bg_state state;
	char id[BG_ID_MAX];		/* the interaction id once known */
	double started;			/* clock seconds when polling began */
	double next_at;			/* clock seconds of the next poll */
	double interval;		/* seconds between polls now: 0.25 doubling to BG_POLL_MAX_S */
	double give_up_s;		/* stop polling this long after it began */
	int poll_errors;		/* failed polls in a row */
};

#define BG_POLL_FIRST_S 0.25
#define BG_POLL_MAX_S 5.0
#define BG_POLL_ERRORS_MAX 6

/* resume_id: poll this journaled interaction instead of creating one (may be NULL). */
void bg_start(struct bg_machine *m, const char *resume_id, double give_up_s, double now);
/* Feeds one event; id is read for BGE_CREATED. */
void bg_event(struct bg_machine *m, enum bg_event e, const char *id, double now);
/* Seconds until the next poll is due (0: now); 0 in any other state. */
double bg_wait(const struct bg_machine *m, double now);

/* Called with the id as soon as the create call returned it; must make it durable.
 * Nonzero: the id could not be kept (the request is followed anyway). */
typedef int (*bg_journal_fn)(void *arg, const char *id);
/* Asked before each poll (may be NULL): false when someone else follows the interaction now. */
typedef bool (*bg_keep_fn)(void *arg);

/*
 * One request as a background interaction, from create (or from resume_id)
 * to the final answer in res, polling on clk.  Returns BG_DONE (res holds
 * the answer or the failure), BG_PLAIN (the model refused background: res
 * is reset, send a plain request), BG_LOST (res says why; the interaction
 * may still finish and was likely billed) or BG_LEFT (keep(arg) said
 * another owner follows it now: res is reset, the interaction is theirs).
 * id_out receives the id ("" when none was created).
 */
enum bg_state api_background(const struct http_opts *ho, const struct api_endpoint *ep,
			     const struct gen_request *rq, const struct clock_ops *clk,
			     const char *resume_id, bg_journal_fn journal, bg_keep_fn keep, void *arg,
			     struct gen_result *res, char id_out[BG_ID_MAX]);

/* DELETE of a finished interaction (best effort): 0, or -1. */
int api_background_delete(const struct http_opts *ho, const struct api_endpoint *ep, const char *id);

#endif
