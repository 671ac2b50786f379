/*
 * prompt_state.h - where a prompt's job stands, as one enum with one name
 * table.  The names are the words users see in the user.bananafs.status
 * xattr, the .bananafs/jobs file and bananactl status/wait; they are also
 * the words the journal keeps across a remount.  bananafs turns the enum
 * into a word only when it writes one out, and bananactl turns a word it
 * reads into the enum once, at the parse: nothing compares status strings.
 */
#ifndef BANANAFS_CACHE_PROMPT_STATE_H
#define BANANAFS_CACHE_PROMPT_STATE_H

#include <stdbool.h>

enum prompt_state {
	PS_QUEUED,		/* written, waiting for a worker */
	PS_RUNNING,		/* a worker has it; a request may be on the wire */
	PS_WAITING_SLOT,	/* waiting for a local max_inflight/rpm slot */
	PS_WAITING_QUOTA,	/* waiting for a 429's pause to end (retry_at) */
	PS_BATCH_PENDING,	/* gathered into a batch; the batcher reports later */
	PS_DONE,		/* an image was made and placed */
	PS_CACHED,		/* every image came from the cache: nothing paid */
	PS_DRY_RUN,		/* priced, not sent (dry-run mount) */
	PS_FAILED,		/* NAME.error says why */
	PS_CANCELLED,		/* bananactl cancel */
	PS_COUNT
};

/* How a state ends a wait (bananactl wait): not yet, well, or badly. */
enum prompt_end { PS_END_NONE, PS_END_OK, PS_END_FAILED };

/* The word for s ("waiting-quota"); "?" for a value outside the enum. */
const char *prompt_state_name(enum prompt_state s);
/* The state named by word; 0, or -1 (and *out untouched) for an unknown word. */
int prompt_state_parse(const char *word, enum prompt_state *out);
/* True while the job is not finished: queued, running, waiting-*, batch-pending. */
bool prompt_state_unfinished(enum prompt_state s);
/* done, cached and dry-run end well; failed and cancelled end badly; the rest not yet. */
enum prompt_end prompt_state_end(enum prompt_state s);

#endif
