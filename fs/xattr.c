/*
 * xattr.c - see xattr.h.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <fcntl.h>
#include <unistd.h>
#include "cache/journal.h"
#include "cache/failure.h"
#include "fs/jobplan.h"
#include "fs/jobs.h"
#include "fs/status.h"
#include "fs/trigger.h"
#include "fs/xattr.h"

/* In the order of the F_ names below. */
static const char *const our_fields[] = { "status", "key", "cost_usd", "error", "model", "batch",
					  "retry_at" };

/*
 * path is either DIR/NAME (not followed: the l*xattr calls) or a bare
 * "/proc/self/fd/N", which must be followed to reach the file.
 */
static bool is_fd_link(const char *path)
{
	return !strncmp(path, "/proc/self/fd/", 14) && !strchr(path + 14, '/');
}

bool xattr_is_ours(const char *name)
{
	return !strncmp(name, XATTR_PREFIX, strlen(XATTR_PREFIX));
}

enum { F_STATUS, F_KEY, F_COST, F_ERROR, F_MODEL, F_BATCH, F_RETRY_AT, NFIELDS };

/* Our values on one prompt, each "" when it has none. */
struct ours {
	char v[NFIELDS][1024];
};

static void put(struct ours *o, int f, const char *v)
{
	if (v)
		snprintf(o->v[f], sizeof(o->v[f]), "%s", v);
}

const char XATTR_UNNAMED_PROMPT[] = "(a prompt no path names)";

/* A prompt no path names: never sent, and the words of a refusal say why. */
static void unnamed_values(struct ours *o)
{
	struct failure f;
	char what[300];
	snprintf(what, sizeof(what), "the prompt's path is longer than the %d bytes a path may hold; "
		 "nothing was sent. Move the prompt to a shallower folder or give it a shorter name",
		 PATH_MAX - 1);
	jobplan_refuse(&f, what, "shorten the name or the path and save the prompt again");
	char *line = failure_render(&f, FAILURE_LINE);
	put(o, F_STATUS, prompt_state_name(PS_FAILED));
	put(o, F_ERROR, line ? line : "failed: the prompt's path is too long; nothing was sent");
	free(line);
}

/*
 * All of ours on the prompt rel, in one lookup: the job's status, or after
 * a remount (the job table is empty) how the last job ended from the
 * journal's outcomes (status, key, cost, model, error), else the status
 * from the files beside the prompt.  One lookup, not one per name, since
 * listxattr asks for every name and GNU ls -l lists every file's.
 */
static void our_values(struct bfs *b, const char *rel, struct ours *o)
{
	memset(o, 0, sizeof(*o));
	if (rel == XATTR_UNNAMED_PROMPT) {
		unnamed_values(o);
		return;
	}
	status_lock();
	struct prompt_status *s = status_get(rel);
	if (s) {
		put(o, F_STATUS, prompt_state_name(s->state));
		put(o, F_KEY, s->key);
		if (s->cost_usd >= 0)
			snprintf(o->v[F_COST], sizeof(o->v[F_COST]), "%.4f", s->cost_usd);
		put(o, F_ERROR, s->error);
		put(o, F_BATCH, s->batch);
		put(o, F_MODEL, s->model);
		status_retry_at(s, o->v[F_RETRY_AT], sizeof(o->v[F_RETRY_AT]));	/* a 429's pause end */
	}
	status_unlock();
	if (s)
		return;
	struct journal_outcome jo;
	enum prompt_state st;
	if (journal_outcome_get(&b->store, rel, &jo) == 1) {
		put(o, F_STATUS, prompt_state_name(jo.state));
		put(o, F_KEY, jo.key);
		put(o, F_MODEL, jo.model);
		put(o, F_ERROR, jo.error);
		if (jo.cost_usd >= 0)
			snprintf(o->v[F_COST], sizeof(o->v[F_COST]), "%.4f", jo.cost_usd);
		journal_outcome_free(&jo);
	} else if (jobs_status_on_disk(b, rel, &st)) {
		put(o, F_STATUS, prompt_state_name(st));
	}
}

/* One of ours on the prompt rel: the length, or -ENODATA. */
static ssize_t our_xattr(struct bfs *b, const char *rel, const char *name, char *val, size_t vlen)
{
	const char *field = name + strlen(XATTR_PREFIX);
	int f = 0;
	while (f < NFIELDS && strcmp(field, our_fields[f]))
		f++;
	if (f == NFIELDS)
		return -ENODATA;
	struct ours *o = malloc(sizeof(*o));
	if (!o)
		return -ENOMEM;
	our_values(b, rel, o);
	size_t len = strlen(o->v[f]);
	ssize_t r = !len ? -ENODATA : vlen == 0 ? (ssize_t)len : vlen < len ? -ERANGE : (ssize_t)len;
	if (r > 0 && vlen)
		memcpy(val, o->v[f], len);
	free(o);
	return r;
}

ssize_t xattr_get(struct bfs *b, const char *rel, const char *path, const char *name, char *value,
		  size_t size)
{
	if (xattr_is_ours(name))
		return rel == XATTR_UNNAMED_PROMPT || trigger_is_prompt(rel)
		       ? our_xattr(b, rel, name, value, size) : -ENODATA;
	ssize_t r = is_fd_link(path) ? getxattr(path, name, value, size)
				     : lgetxattr(path, name, value, size);
	return r < 0 ? -errno : r;
}

ssize_t xattr_list(struct bfs *b, const char *rel, const char *path, char *list, size_t size)
{
	ssize_t (*list_fn)(const char *, char *, size_t) = is_fd_link(path) ? listxattr : llistxattr;
	ssize_t r = list_fn(path, NULL, 0);
	if (r < 0)
		r = 0;
	char *raw = malloc((size_t)r + 1);
	if (!raw)
		return -ENOMEM;
	if (r > 0 && (r = list_fn(path, raw, (size_t)r)) < 0)
		r = 0;
	/* Our own names replace whatever the store holds under the prefix. */
	char out[65536];
	size_t len = 0;
	for (ssize_t i = 0; i < r; i += (ssize_t)strlen(raw + i) + 1) {
		const char *nm = raw + i;
		size_t l = strlen(nm) + 1;
		if (xattr_is_ours(nm) || len + l > sizeof(out))
			continue;
		memcpy(out + len, nm, l);
		len += l;
	}
	free(raw);
	if (rel == XATTR_UNNAMED_PROMPT || trigger_is_prompt(rel)) {
		struct ours *o = malloc(sizeof(*o));
		if (!o)
			return -ENOMEM;
		our_values(b, rel, o);
		for (int f = 0; f < NFIELDS; f++) {
			char full[64];
			snprintf(full, sizeof(full), XATTR_PREFIX "%s", our_fields[f]);
			size_t l = strlen(full) + 1;
			if (!o->v[f][0])
				continue;
			if (len + l > sizeof(out)) {
				free(o);
				return -E2BIG;	/* as a local disk past XATTR_LIST_MAX */
			}
			memcpy(out + len, full, l);
			len += l;
		}
		free(o);
	}
	if (size == 0)
		return (ssize_t)len;
	if (size < len)
		return -ERANGE;
	memcpy(list, out, len);
	return (ssize_t)len;
}

bool xattr_not_carried(const char *name)
{
	return !strncmp(name, "security.", 9) || !strncmp(name, "system.posix_acl_", 17);
}

int xattr_change(const char *path, const char *name, bool remove, const char *value, size_t size,
		 int flags)
{
	if (xattr_is_ours(name))
		return 0;	/* accepted and ignored: copy tools (rsync -X, cp -a) carry them along */
	int rc;
	if (is_fd_link(path))
		rc = remove ? removexattr(path, name) : setxattr(path, name, value, size, flags);
	else
		rc = remove ? lremovexattr(path, name) : lsetxattr(path, name, value, size, flags);
	return rc < 0 ? errno : 0;
}
