/*
 * tree.c - which paths are fixed and what they are.  The fixed tree is
 * derived from the model table (api/models.c) so a model added in the
 * config appears without a rebuild.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include "fs/tree.h"

const char *const tree_ctl_files[] = {
	"jobs", "ledger.jsonl", "stats", "prices", "config", "doctor", "control", NULL,
};

/* Length of the first component of p (which does not start with '/'). */
static size_t comp_len(const char *p)
{
	const char *slash = strchr(p, '/');
	return slash ? (size_t)(slash - p) : strlen(p);
}

static const struct model_info *model_by_id_n(const char *p, size_t len)
{
	for (size_t i = 0; i < models_count(); i++) {
		const struct model_info *m = models_at(i);
		if (strlen(m->id) == len && memcmp(m->id, p, len) == 0)
			return model_retired(m) ? NULL : m;	/* shut down: not shown */
	}
	return NULL;
}

static const struct model_info *model_by_alias_n(const char *p, size_t len)
{
	for (size_t i = 0; i < models_count(); i++) {
		const struct model_info *m = models_at(i);
		if (m->alias[0] && strlen(m->alias) == len && memcmp(m->alias, p, len) == 0)
			return model_retired(m) ? NULL : m;
	}
	return NULL;
}

void tree_classify(const char *path, struct node *n)
{
	memset(n, 0, sizeof(*n));
	while (*path == '/')
		path++;
	if (*path == '\0') {
		n->kind = NODE_ROOT;
		n->rel = ".";
		return;
	}
	n->rel = path;
	size_t len = comp_len(path);
	const char *rest = path[len] ? path + len + 1 : NULL;

	if (len == strlen(CTL_DIR_NAME) && memcmp(path, CTL_DIR_NAME, len) == 0) {
		if (!rest) {
			n->kind = NODE_CTL_DIR;
			return;
		}
		for (int i = 0; tree_ctl_files[i]; i++)
			if (strcmp(rest, tree_ctl_files[i]) == 0) {
				n->kind = NODE_CTL_FILE;
				n->ctl = tree_ctl_files[i];
				return;
			}
		return;
	}
	const struct model_info *m = model_by_id_n(path, len);
	if (!m) {
		m = model_by_alias_n(path, len);
		if (m && !rest) {
			n->kind = NODE_ALIAS;
			n->model = m;
		}
		return;
	}
	n->model = m;
	if (!rest) {
		n->kind = NODE_MODEL;
		return;
	}
	size_t slen = comp_len(rest);
	for (int i = 0; i < m->nsizes; i++) {
		if (strlen(m->sizes[i]) == slen && memcmp(m->sizes[i], rest, slen) == 0) {
			n->size = m->sizes[i];
			n->kind = rest[slen] ? NODE_USER : NODE_SIZE;
			return;
		}
	}
}

int tree_prepare(int tree_fd)
{
	for (size_t i = 0; i < models_count(); i++) {
		const struct model_info *m = models_at(i);
		if (mkdirat(tree_fd, m->id, 0755) < 0 && errno != EEXIST)
			return -1;
		for (int s = 0; s < m->nsizes; s++) {
			char p[sizeof(m->id) + 8];
			snprintf(p, sizeof(p), "%s/%s", m->id, m->sizes[s]);
			if (mkdirat(tree_fd, p, 0755) < 0 && errno != EEXIST)
				return -1;
		}
	}
	return 0;
}
