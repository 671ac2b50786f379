/*
 * failure.h - one failure of a prompt's job, as data, and its one renderer.
 *
 * A failure says what happened, whose move it is now (the user's,
 * bananafs's, Google's or the network's), the user's next move and, when a
 * request reached the wire, the HTTP status, API status and request id.
 * failure_render is the only writer of the words users read about a
 * failure: the text of NAME.error (FAILURE_FILE), and the one line the
 * user.bananafs.error xattr and the .bananafs/jobs file show
 * (FAILURE_LINE).  Builders fill the struct (fs/jobs.c for prompts that
 * are refused before any request, fetch_failure in cache/fetch.c for a
 * request's outcome); they never format the text themselves.
 */
#ifndef BANANAFS_CACHE_FAILURE_H
#define BANANAFS_CACHE_FAILURE_H

#include <stdbool.h>
#include "api/request.h"

/* Whose move it is now. */
enum failure_whose {
	WHOSE_UNSAID = 0,	/* not said: no "whose move" line */
	WHOSE_USER,		/* the prompt, the folder, the config, the key, the quota, the disk */
	WHOSE_BANANAFS,		/* ours: a fault bananafs must fix or retry */
	WHOSE_GOOGLE,		/* the server: capacity, a malformed answer */
	WHOSE_NETWORK,		/* no answer arrived */
};

#define FAILURE_NOTES 6		/* further lines at most */
#define FAILURE_NOTE_LEN 200	/* bytes of one, with its NUL */

struct failure {
	char headline[256];		/* the first line after "bananafs: "; always set */
	const char *what;		/* what happened, one line; NULL: the headline says it (borrowed) */
	enum failure_whose whose;
	char problem[512];		/* whose problem, in DESIGN.md's words ("credentials",
					   "request"); "": not said */
	const char *next_move;		/* the user's next move; NULL: none (borrowed) */
	bool exchanged;			/* a request went out: show HTTP status, API status and
					   request id, each "none" when missing */
	long http_status;		/* with exchanged; 0 = no answer arrived */
	const char *api_status;		/* with exchanged; NULL or "" = none (borrowed) */
	const char *request_id;		/* with exchanged; NULL or "" = the server gave none (borrowed) */
	const char *finish_reason;	/* NULL or "": none (borrowed) */
	char notes[FAILURE_NOTES][FAILURE_NOTE_LEN];	/* further lines, in order; "" = unused */
	const char *model_said;		/* the model's own text; NULL or "": none (borrowed) */
	char own_what[1024], own_next[512];	/* what failure_what/failure_next_move formatted */
};

enum failure_form {
	FAILURE_FILE,		/* NAME.error: every line that is set */
	FAILURE_LINE,		/* xattr and jobs file: what happened, else the headline */
};

/* Empties *f and sets its headline (printf-style). */
void failure_init(struct failure *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Formats what happened, or the next move, into the struct itself (printf-style). */
void failure_what(struct failure *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void failure_next_move(struct failure *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Sets whose problem it is (printf-style). */
void failure_problem(struct failure *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Adds a further line (printf-style); past FAILURE_NOTES it is dropped. */
void failure_note(struct failure *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Whose move a request's failure class leaves it to. */
enum failure_whose failure_whose_of(enum err_class c);

/*
 * The failure as text, with secrets redacted (the struct may hold server
 * text): NAME.error's lines, each ending in a newline, or one line without
 * one.  malloc'd; NULL on out of memory.
 */
char *failure_render(const struct failure *f, enum failure_form form);

#endif
