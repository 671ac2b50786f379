/*
 * mount.c - finding the mount and the store, and reading the mount's
 * .bananafs/ control files.  bananactl needs no other channel to the daemon.
 */
#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache/config.h"
#include "cache/prompt.h"
#include "tools/bananactl/ctl.h"

#define CTL_FILE_MAX (512L * 1024 * 1024)	/* a ledger may grow large; this is a sanity cap */

void *
xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (p == NULL)
		err(1, "malloc");
	return p;
}

char *
xstrdup(const char *s)
{
	char *p = strdup(s);

	if (p == NULL)
		err(1, "strdup");
	return p;
}

char *
xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		err(1, "asprintf");
	return s;
}

char *
ctl_read_file(const char *path, size_t *len)
{
	size_t cap = 8192, n = 0;
	char *buf, *nbuf;
	ssize_t r;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return NULL;
	buf = xmalloc(cap);
	for (;;) {
		if (cap - n < 2) {
			if (cap >= CTL_FILE_MAX) {
				free(buf);
				close(fd);
				errno = EFBIG;
				return NULL;
			}
			cap *= 2;
			if ((nbuf = realloc(buf, cap)) == NULL)
				err(1, "realloc");
			buf = nbuf;
		}
		r = read(fd, buf + n, cap - n - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;

			free(buf);
			close(fd);
			errno = e;
			return NULL;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	buf[n] = '\0';
	if (len != NULL)
		*len = n;
	return buf;
}

/* True when dir holds .bananafs/stats, the mark of a bananafs mount root. */
static bool
is_mount_root(const char *dir)
{
	struct stat st;
	char *p = xasprintf("%s/.bananafs/stats", strcmp(dir, "/") == 0 ? "" : dir);
	bool yes = stat(p, &st) == 0 && S_ISREG(st.st_mode);

	free(p);
	return yes;
}

/* Walks up from path (which need not exist) to a mount root; malloc'd or NULL. */
static char *
find_mount_from(const char *path)
{
	char *dir = realpath(path, NULL), *slash;

	if (dir == NULL) {
		/* A file about to be named: start from its folder. */
		char *copy = xstrdup(path);

		slash = strrchr(copy, '/');
		if (slash == copy)
			slash[1] = '\0';
		else if (slash != NULL)
			*slash = '\0';
		else
			strcpy(copy, ".");
		dir = realpath(copy, NULL);
		free(copy);
		if (dir == NULL)
			return NULL;
	}
	for (;;) {
		if (is_mount_root(dir))
			return dir;
		if (strcmp(dir, "/") == 0)
			break;
		slash = strrchr(dir, '/');
		if (slash == dir)
			slash[1] = '\0';
		else
			*slash = '\0';
	}
	free(dir);
	return NULL;
}

/* Undoes the octal escapes of /proc/self/mounts ("\\040" for a blank) in place. */
static void
unescape_mount_path(char *s)
{
	char *o = s;

	for (; *s != '\0'; s++, o++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*o = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else
			*o = *s;
	}
	*o = '\0';
}

char *
ctl_find_only_mount(void)
{
	char line[8192], uidopt[32], *found = NULL;
	int n = 0;
	FILE *f;

	/* The demo mount, from the repository root. */
	if (is_mount_root("banana"))
		return realpath("banana", NULL);
	if ((f = fopen("/proc/self/mounts", "re")) == NULL)
		return NULL;
	snprintf(uidopt, sizeof(uidopt), "user_id=%u", (unsigned)getuid());
	while (fgets(line, sizeof(line), f) != NULL) {
		char *save = NULL, *dev = strtok_r(line, " ", &save), *dir = strtok_r(NULL, " ", &save);
		char *type = strtok_r(NULL, " ", &save), *opts = strtok_r(NULL, " ", &save), *o, *osave = NULL;
		bool mine = false;

		if (dev == NULL || dir == NULL || type == NULL || opts == NULL ||
		    strcmp(type, "fuse.bananafs") != 0)
			continue;
		for (o = strtok_r(opts, ",", &osave); o != NULL; o = strtok_r(NULL, ",", &osave))
			mine |= strcmp(o, uidopt) == 0;
		unescape_mount_path(dir);
		if (!mine || !is_mount_root(dir))
			continue;
		if (n++ == 0)
			found = xstrdup(dir);
	}
	fclose(f);
	if (n > 1) {
		warnx("%d bananafs mounts of yours are up and none is around the current folder; "
		      "give one with -m", n);
		free(found);
		found = NULL;
	}
	return found;
}

int
ctl_load_config(struct config *cfg, char **pathp)
{
	char errbuf[512], *path;
	int rc = 0;

	if (pathp != NULL)
		*pathp = NULL;
	if (config_defaults(cfg) < 0) {
		warnx("cannot set the default configuration");
		return -1;
	}
	if ((path = config_default_path()) == NULL)
		return 0;
	if (config_load(cfg, path, false, errbuf, sizeof(errbuf)) < 0) {
		warnx("%s", errbuf);
		rc = -1;
	}
	if (pathp != NULL)
		*pathp = path;
	else
		free(path);
	return rc;
}

/* The config's store_dir (defaults plus the config file); malloc'd. */
static char *
configured_store(void)
{
	struct config cfg = { 0 };
	char *store = NULL;

	ctl_load_config(&cfg, NULL);
	if (cfg.store_dir != NULL)
		store = xstrdup(cfg.store_dir);
	config_free(&cfg);
	if (store == NULL) {
		const char *xdg = getenv("XDG_DATA_HOME"), *home = getenv("HOME");

		if (xdg != NULL && *xdg == '/')
			store = xasprintf("%s/bananafs", xdg);
		else
			store = xasprintf("%s/.local/share/bananafs", home ? home : "");
	}
	return store;
}

int
ctl_resolve(struct ctl *c, const char *hint)
{
	if (c->resolved)
		return 0;
	if (c->mount_opt != NULL) {
		c->mount = realpath(c->mount_opt, NULL);
		if (c->mount == NULL) {
			warn("%s", c->mount_opt);
			return -1;
		}
		if (!is_mount_root(c->mount)) {
			warnx("%s is not a bananafs mount (no .bananafs/stats there)", c->mount_opt);
			free(c->mount);
			c->mount = NULL;
			return -1;
		}
	} else {
		if (hint != NULL)
			c->mount = find_mount_from(hint);
		if (c->mount == NULL)
			c->mount = find_mount_from(".");
		if (c->mount == NULL)
			c->mount = ctl_find_only_mount();
	}
	if (c->store_opt != NULL) {
		c->store = xstrdup(c->store_opt);
	} else if (c->mount != NULL) {
		char *path = ctl_mount_file(c, "stats");
		char *text = ctl_read_file(path, NULL);
		cJSON *st = text ? cJSON_Parse(text) : NULL;
		const cJSON *s = cJSON_GetObjectItemCaseSensitive(st, "store");

		if (cJSON_IsString(s) && s->valuestring[0] != '\0')
			c->store = xstrdup(s->valuestring);
		cJSON_Delete(st);
		free(text);
		free(path);
	}
	if (c->store == NULL)
		c->store = configured_store();
	c->resolved = true;
	return 0;
}

int
ctl_need_mount(struct ctl *c, const char *hint)
{
	if (ctl_resolve(c, hint) < 0)
		return -1;
	if (c->mount == NULL) {
		warnx("no bananafs mount found from %s, and none is the only one of yours; give one with -m",
		      hint ? hint : "the current folder");
		return -1;
	}
	return 0;
}

char *
ctl_mount_file(const struct ctl *c, const char *name)
{
	return xasprintf("%s/.bananafs/%s", strcmp(c->mount, "/") == 0 ? "" : c->mount, name);
}

char *
ctl_store_file(const struct ctl *c, const char *name)
{
	return xasprintf("%s/%s", c->store, name);
}

char *
ctl_ledger_path(const struct ctl *c)
{
	if (c->mount != NULL && c->store_opt == NULL)
		return ctl_mount_file(c, "ledger.jsonl");
	return ctl_store_file(c, "ledger.jsonl");
}

cJSON *
ctl_read_stats(const struct ctl *c)
{
	char *path = ctl_mount_file(c, "stats");
	char *text = ctl_read_file(path, NULL);
	cJSON *st = NULL;

	if (text == NULL)
		warn("%s", path);
	else if ((st = cJSON_Parse(text)) == NULL || !cJSON_IsObject(st)) {
		warnx("%s: not a JSON object", path);
		cJSON_Delete(st);
		st = NULL;
	}
	free(text);
	free(path);
	return st;
}

char *
ctl_rel_path(const struct ctl *c, const char *path)
{
	char *abs = realpath(path, NULL), *rel;
	size_t ml = strlen(c->mount);

	if (abs == NULL) {
		warn("%s", path);
		return NULL;
	}
	if (strcmp(c->mount, "/") == 0)
		rel = xstrdup(abs + 1);
	else if (strcmp(abs, c->mount) == 0)
		rel = xstrdup("");
	else if (strncmp(abs, c->mount, ml) == 0 && abs[ml] == '/')
		rel = xstrdup(abs + ml + 1);
	else {
		warnx("%s is not below the mount %s", path, c->mount);
		rel = NULL;
	}
	free(abs);
	return rel;
}

char *
ctl_prompt_path(const char *path, char **mount, char *why, size_t whylen)
{
	struct stat st;
	char *root, *abs, *rel = NULL, *slash;
	const char *base;
	size_t ml;
	int depth = 0;

	*mount = NULL;
	if (stat(path, &st) < 0) {
		snprintf(why, whylen, "%s", strerror(errno));
		return NULL;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(why, whylen, "not a file, so not a prompt");
		return NULL;
	}
	if ((root = find_mount_from(path)) == NULL) {
		snprintf(why, whylen, "not in a bananafs mount, so not a prompt");
		return NULL;
	}
	if ((abs = realpath(path, NULL)) == NULL) {
		snprintf(why, whylen, "%s", strerror(errno));
		free(root);
		return NULL;
	}
	ml = strcmp(root, "/") == 0 ? 0 : strlen(root);
	if (strncmp(abs, root, ml) == 0 && abs[ml] == '/')
		rel = xstrdup(abs + ml + 1);
	free(abs);
	if (rel == NULL) {
		snprintf(why, whylen, "not below the mount %s", root);
		free(root);
		return NULL;
	}
	for (const char *p = rel; (p = strchr(p, '/')) != NULL; p++)
		depth++;
	slash = strrchr(rel, '/');
	base = slash ? slash + 1 : rel;
	/* MODEL/SIZE/.../NAME.txt: prompts live below a size folder, never in .bananafs/. */
	if (depth < 2 || strncmp(rel, ".bananafs/", 10) == 0)
		snprintf(why, whylen, "not below a size folder (MODEL/SIZE/), so not a prompt");
	else if (!prompt_name_triggers(base))
		snprintf(why, whylen, "not a prompt: prompts are NAME.txt, not hidden, not a backup or temp file");
	else {
		*mount = root;
		return rel;
	}
	free(rel);
	free(root);
	return NULL;
}
