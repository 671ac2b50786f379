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
#include "fs/jobs.h"
#include "fs/status.h"
#include "fs/trigger.h"
#include "fs/xattr.h"

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

/*
 * After a remount the job table is empty: how the last job ended comes
 * from the journal's outcomes (status, key, cost, model, error), else the
 * status from the files beside the prompt.
 */
static bool after_remount(struct bfs *b, const char *rel, const char *field, char *out, size_t len)
{
	struct journal_outcome o;
	const char *v = NULL;
	bool found = false;
	if (journal_outcome_get(&b->store, rel, &o) == 1) {
		if (!strcmp(field, "status"))
			v = prompt_state_name(o.state);
		else if (!strcmp(field, "key"))
			v = o.key;
		else if (!strcmp(field, "model"))
			v = o.model;
		else if (!strcmp(field, "error"))
			v = o.error;
		else if (!strcmp(field, "cost_usd") && o.cost_usd >= 0) {
			snprintf(out, len, "%.4f", o.cost_usd);
			found = true;
		}
		if (v && *v) {
			snprintf(out, len, "%s", v);
			found = true;
		}
		journal_outcome_free(&o);
		return found;
	}
	enum prompt_state st;
	if (!strcmp(field, "status") && jobs_status_on_disk(b, rel, &st)) {
		snprintf(out, len, "%s", prompt_state_name(st));
		found = true;
	}
	return found;
}

/* One of ours on the prompt rel: the length, or -ENODATA. */
static ssize_t our_xattr(struct bfs *b, const char *rel, const char *name, char *val, size_t vlen)
{
	const char *field = name + strlen(XATTR_PREFIX);
	char out[1024] = "";
	bool found = false;
	status_lock();
	struct prompt_status *s = status_get(rel);
	if (s) {
		found = true;
		if (!strcmp(field, "status"))
			snprintf(out, sizeof(out), "%s", prompt_state_name(s->state));
		else if (!strcmp(field, "key") && s->key[0])
			snprintf(out, sizeof(out), "%s", s->key);
		else if (!strcmp(field, "cost_usd") && s->cost_usd >= 0)
			snprintf(out, sizeof(out), "%.4f", s->cost_usd);
		else if (!strcmp(field, "error") && s->error)
			snprintf(out, sizeof(out), "%s", s->error);
		else if (!strcmp(field, "batch") && s->batch[0])
			snprintf(out, sizeof(out), "%s", s->batch);
		else if (!strcmp(field, "model") && s->model[0])
			snprintf(out, sizeof(out), "%s", s->model);
		else if (!strcmp(field, "retry_at"))
			found = status_retry_at(s, out, sizeof(out));	/* a 429's pause end */
		else
			found = false;
	}
	status_unlock();
	if (!s)
		found = after_remount(b, rel, field, out, sizeof(out));
	if (!found)
		return -ENODATA;
	size_t len = strlen(out);
	if (vlen == 0)
		return (ssize_t)len;
	if (vlen < len)
		return -ERANGE;
	memcpy(val, out, len);
	return (ssize_t)len;
}

ssize_t xattr_get(struct bfs *b, const char *rel, const char *path, const char *name, char *value,
		  size_t size)
{
	if (xattr_is_ours(name))
		return trigger_is_prompt(rel) ? our_xattr(b, rel, name, value, size) : -ENODATA;
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
	if (trigger_is_prompt(rel)) {
		for (size_t i = 0; i < sizeof(our_fields) / sizeof(our_fields[0]); i++) {
			char full[64];
			snprintf(full, sizeof(full), XATTR_PREFIX "%s", our_fields[i]);
			if (our_xattr(b, rel, full, NULL, 0) < 0)
				continue;
			size_t l = strlen(full) + 1;
			if (len + l > sizeof(out))
				return -E2BIG;	/* as a local disk past XATTR_LIST_MAX */
			memcpy(out + len, full, l);
			len += l;
		}
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
