/*
 * folderconf.c - see folderconf.h.  Parsed with libinih, like the main
 * config; only two keys, both checked as strictly as a prompt header.
 */
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "api/models.h"
#include "cache/beneath.h"
#include "cache/folderconf.h"

#define FOLDER_CONF_MAX 4096	/* bytes: two keys need little room */

struct parse_ctx {
	struct folder_conf *fc;
	const struct model_info *model;	/* the folder's model: an aspect must suit it */
	char msg[256];
};

static int on_line(void *user, const char *section, const char *name, const char *value)
{
	struct parse_ctx *p = user;
	if (section[0]) {
		snprintf(p->msg, sizeof(p->msg), "sections are not used here ([%.32s])", section);
		return 0;
	}
	if (!strcmp(name, "route")) {
		if (route_parse(value, &p->fc->route) < 0) {
			snprintf(p->msg, sizeof(p->msg), "unknown route '%.32s' (standard, generate, "
				 "flex, batch, gateway)", value);
			return 0;
		}
		p->fc->route_set = true;
		return 1;
	}
	if (!strcmp(name, "aspect")) {
		if (!aspect_valid(value)) {
			snprintf(p->msg, sizeof(p->msg), "bad aspect '%.32s'", value);
			return 0;
		}
		if (p->model && !model_has_aspect(p->model, value)) {
			snprintf(p->msg, sizeof(p->msg), "model %s does not take aspect '%.32s'",
				 p->model->id, value);
			return 0;
		}
		snprintf(p->fc->aspect, sizeof(p->fc->aspect), "%s", value);
		return 1;
	}
	snprintf(p->msg, sizeof(p->msg), "unknown key '%.32s' (known: route, aspect)", name);
	return 0;
}

/* The 1-based line of the first "[section]" line in buf; 0 when none. */
static int section_line(const char *buf)
{
	int line = 1;

	for (const char *s = buf; *s; line++) {
		s += strspn(s, " \t");
		if (*s == '[')
			return line;
		s += strcspn(s, "\n");
		if (*s == '\n')
			s++;
	}
	return 0;
}

/* 0 when absent or read, -1 with err. */
static int load_one(int tree_fd, const char *rel, struct folder_conf *fc, char *err, size_t errlen)
{
	int fd = open_beneath(tree_fd, rel, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "%s: %s", rel, strerror(errno));
		return -1;
	}
	struct stat st;
	char *buf = NULL;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > FOLDER_CONF_MAX) {
		snprintf(err, errlen, "%s: not a regular file of at most %d bytes", rel, FOLDER_CONF_MAX);
		goto out_fail;
	}
	buf = malloc((size_t)st.st_size + 1);
	ssize_t n = buf ? read(fd, buf, (size_t)st.st_size) : -1;
	if (n < 0) {
		snprintf(err, errlen, "%s: %s", rel, buf ? strerror(errno) : "out of memory");
		goto out_fail;
	}
	buf[n] = '\0';
	close(fd);
	char model[64];
	snprintf(model, sizeof(model), "%.*s", (int)strcspn(rel, "/"), rel);
	struct parse_ctx p = { .fc = fc, .model = models_find(model) };
	/* inih reports a section only at the next key's line, or never: find it ourselves */
	int line = section_line(buf);
	if (line != 0)
		snprintf(p.msg, sizeof(p.msg), "sections are not used here");
	else
		line = ini_parse_string(buf, on_line, &p);
	free(buf);
	if (line != 0) {
		snprintf(err, errlen, "%s:%d: %s", rel, line, p.msg[0] ? p.msg : "not key = value");
		return -1;
	}
	return 0;
out_fail:
	free(buf);
	close(fd);
	return -1;
}

int folder_conf_load(int tree_fd, const char *dir, struct folder_conf *fc, char *err, size_t errlen)
{
	char path[PATH_MAX], rel[PATH_MAX + sizeof(FOLDER_CONF_NAME) + 1];
	memset(fc, 0, sizeof(*fc));
	if (snprintf(path, sizeof(path), "%s", dir) >= (int)sizeof(path)) {
		snprintf(err, errlen, "path too long");
		return -1;
	}
	/* Skip MODEL/SIZE: the user's space starts below them. */
	int slashes = 0;
	for (char *p = path;; p++) {
		if (*p == '/' || *p == '\0') {
			if (++slashes >= 2) {
				char saved = *p;
				*p = '\0';
				snprintf(rel, sizeof(rel), "%s/%s", path, FOLDER_CONF_NAME);
				*p = saved;
				if (load_one(tree_fd, rel, fc, err, errlen) < 0)
					return -1;
			}
			if (*p == '\0')
				break;
		}
	}
	return 0;
}
