/*
 * prompt.h - what a prompt file means: which names are prompts, the
 * optional "---" header, and the normalised text.
 */
#ifndef BANANAFS_CACHE_PROMPT_H
#define BANANAFS_CACHE_PROMPT_H

#include <stdbool.h>
#include <stddef.h>
#include "api/request.h"

#define PROMPT_MAX_BYTES (32 * 1024)	/* larger prompts are refused */
#define PROMPT_MAX_INPUTS 8
#define PROMPT_MAX_N 8
#define INPUT_MAX_BYTES (20 * 1024 * 1024)

struct prompt {
	char *text;			/* normalised: header removed, white space trimmed,
					   line endings LF; owned */
	size_t len;			/* bytes */
	char *text_as_written;		/* the text with its CRLF/CR line endings, as key
					   format 1 hashed it; NULL when equal to text; owned */
	size_t len_as_written;		/* bytes */
	char aspect[8];			/* "" = not set in the header */
	int n;				/* 1 when not set */
	int variant;			/* 0 when not set */
	enum route route;
	bool route_set;
	bool search;			/* "search: yes": Google Search grounding */
	char *system;			/* "system: ...": a system instruction; owned; NULL when not set */
	char *inputs[PROMPT_MAX_INPUTS];	/* paths relative to the prompt's folder; owned */
	int ninputs;
};

/*
 * True when a file name (no slash) starts a generation: ends in ".txt",
 * is not hidden (".x"), and is not a backup/temp (~, .swp, .swx, .tmp, .part).
 */
bool prompt_name_triggers(const char *name);

enum prompt_err {
	PROMPT_OK = 0,
	PROMPT_EMPTY,			/* nothing to send (not an error the user pays for) */
	PROMPT_TOO_BIG,
	PROMPT_BAD_UTF8,
	PROMPT_BAD_HEADER,		/* unknown key, bad value, unterminated header: err names the line */
};

/*
 * Parses buf (the whole file).  On PROMPT_OK *p is filled and must be freed
 * with prompt_free().  Otherwise err holds a one-line reason such as
 * "line 3: unknown key 'aspet' (known: aspect, n, input, variant, route)".
 * Line endings become LF (CRLF and a lone CR alike) before anything else,
 * and leading/trailing white space of the text is dropped, so "echo" and
 * "printf", Windows and Unix editors give the same request.  Header values are checked against the
 * model only later (prompt_check).
 */
enum prompt_err prompt_parse(const char *buf, size_t len, struct prompt *p, char *err, size_t errlen);
/* "prompt is 40,001 bytes; the limit is 32 KiB (32,768 bytes)" for a prompt file of size bytes. */
void prompt_too_big_msg(size_t size, char *err, size_t errlen);

/* Checks aspect and size against the model table; 0 or -1 with err. */
int prompt_check(const struct prompt *p, const char *model, const char *size, const char *aspect,
		 char *err, size_t errlen);

/*
 * Checks the options a model or route may not take: "search: yes" needs a
 * model with Google Search grounding (model_takes_search) and a real-time
 * Google route (standard, flex, generate: batch items are priced by image
 * only, and a gateway does not carry the tool); "system:" needs a route that carries a system
 * instruction (every one but a gateway spoken to through its images API,
 * gateway_images).  0 or -1 with err naming what to change.
 */
int prompt_check_route(const struct prompt *p, const char *model, enum route route, bool gateway_images,
		       char *err, size_t errlen);

/*
 * Loads the reference images named by p->inputs.  tree_fd is the store's
 * tree folder; dir is the prompt's folder relative to it.  Paths resolve
 * beneath tree_fd only (openat2 RESOLVE_BENEATH); anything but a regular
 * file of at most INPUT_MAX_BYTES is refused (FIFO, /dev/zero, symlink out).
 * On success refs[i].data are malloc'd (free with prompt_free_inputs).
 */
int prompt_load_inputs(const struct prompt *p, int tree_fd, const char *dir,
		       struct ref_image *refs, char *err, size_t errlen);
void prompt_free_inputs(struct ref_image *refs, int n);
void prompt_free(struct prompt *p);

#endif
