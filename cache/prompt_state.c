/*
 * prompt_state.c - the one name table of prompt states (prompt_state.h).
 */
#include <string.h>
#include "cache/prompt_state.h"

static const struct {
	const char *name;
	bool unfinished;
	enum prompt_end end;
} states[PS_COUNT] = {
	[PS_QUEUED] = { "queued", true, PS_END_NONE },
	[PS_RUNNING] = { "running", true, PS_END_NONE },
	[PS_WAITING_SLOT] = { "waiting-slot", true, PS_END_NONE },
	[PS_WAITING_QUOTA] = { "waiting-quota", true, PS_END_NONE },
	[PS_BATCH_PENDING] = { "batch-pending", true, PS_END_NONE },
	[PS_DONE] = { "done", false, PS_END_OK },
	[PS_CACHED] = { "cached", false, PS_END_OK },
	[PS_DRY_RUN] = { "dry-run", false, PS_END_OK },
	[PS_FAILED] = { "failed", false, PS_END_FAILED },
	[PS_CANCELLED] = { "cancelled", false, PS_END_FAILED },
};

static bool valid(enum prompt_state s)
{
	return (unsigned)s < PS_COUNT;
}

const char *prompt_state_name(enum prompt_state s)
{
	return valid(s) ? states[s].name : "?";
}

int prompt_state_parse(const char *word, enum prompt_state *out)
{
	for (int i = 0; i < PS_COUNT; i++)
		if (strcmp(word, states[i].name) == 0) {
			*out = (enum prompt_state)i;
			return 0;
		}
	return -1;
}

bool prompt_state_unfinished(enum prompt_state s)
{
	return valid(s) && states[s].unfinished;
}

enum prompt_end prompt_state_end(enum prompt_state s)
{
	return valid(s) ? states[s].end : PS_END_NONE;
}
