/*
 * cmd_doctor.c - "bananactl doctor": checks, step by step, what a working
 * mount needs: config, API key, endpoint and key acceptance (one free
 * models.get call), store, FUSE, and the mount.  Each step prints
 * "ok   ..." or "FAIL ..." with the next move.  The key is never printed.
 * When a mount is found, the key steps are the daemon's own: it runs them
 * with its key and endpoint when MOUNT/.bananafs/doctor is read.
 */
#include <ctype.h>
#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/http.h"
#include "api/keycheck.h"
#include "api/models.h"
#include "cache/config.h"
#include "cache/team_db.h"
#include "tools/bananactl/ctl.h"

struct doctor {
	int failed;
};

static void __attribute__((format(printf, 2, 3)))
ok(struct doctor *d, const char *fmt, ...)
{
	va_list ap;

	(void)d;
	fputs("ok   ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

/* A failed step: what is wrong, then the next move on its own line. */
static void __attribute__((format(printf, 3, 4)))
fail(struct doctor *d, const char *next, const char *fmt, ...)
{
	va_list ap;

	d->failed++;
	fputs("FAIL ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	if (next != NULL)
		printf("     next: %s\n", next);
}

/* True for an http:// loopback endpoint: the bundled emulator or a test server. */
static bool
is_loopback(const char *url)
{
	return strncmp(url, "http://127.", 11) == 0 || strncmp(url, "http://localhost", 16) == 0 ||
	       strncmp(url, "http://[::1]", 12) == 0;
}

/* Google keys are printable, without blanks, and long; NULL or the reason. */
static const char *
key_malformed(const char *key, bool emulator)
{
	size_t n = strlen(key);

	for (size_t i = 0; i < n; i++)
		if (!isgraph((unsigned char)key[i]))
			return "it holds a blank or a control character (a stray newline or quote?)";
	if (!emulator && n < 20)
		return "it is shorter than 20 characters";
	return NULL;
}

/* No mount: the key of this shell's environment, with one free models.get call. */
static void
check_endpoint(struct doctor *d, const struct config *cfg, const char *endpoint)
{
	struct http_opts o = { .connect_timeout_s = cfg->connect_timeout_s > 0 ? cfg->connect_timeout_s : 10,
				 .timeout_s = 30, .max_body = 1 << 20 };
	struct api_endpoint ep = { .base_url = endpoint, .api_version = cfg->api_version ? cfg->api_version : "v1beta",
				   .api_key = cfg->api_key };
	struct key_check kc;

	if (cfg->api_key == NULL) {
		fail(d, "set a key first (see above)", "endpoint %s not checked: no API key", endpoint);
		return;
	}
	if (http_global_init() < 0) {
		fail(d, NULL, "cannot initialise libcurl");
		return;
	}
	api_key_check(&o, &ep, models_at(0)->id, &kc);
	if (kc.ok)
		ok(d, "%s (the key of this shell: no mount found)", kc.what);
	else
		fail(d, kc.next, "%s", kc.what);
	http_global_cleanup();
}

/*
 * Mounted: the daemon checks its own key and endpoint when its
 * .bananafs/doctor is read, and answers in our "ok"/"FAIL" lines.
 */
static void
check_mount_key(struct doctor *d, const struct ctl *c)
{
	char *path = ctl_mount_file(c, "doctor");
	char *text = ctl_read_file(path, NULL), *line, *next;

	if (text == NULL) {
		fail(d, "update bananafs and mount again", "%s: %s", path, strerror(errno));
		free(path);
		return;
	}
	for (line = text; *line != '\0'; line = next) {
		next = line + strcspn(line, "\n");
		if (*next == '\n')
			*next++ = '\0';
		if (strncmp(line, "FAIL", 4) == 0)
			d->failed++;
		puts(line);
	}
	free(text);
	free(path);
}

static void
check_store(struct doctor *d, const char *dir)
{
	struct stat st;
	char *tmp;
	int fd;

	if (stat(dir, &st) < 0) {
		if (errno == ENOENT)
			ok(d, "store %s not created yet (bananafs creates it, mode 0700)", dir);
		else
			fail(d, "fix the path or give another with --store", "store %s: %s", dir, strerror(errno));
		return;
	}
	if (!S_ISDIR(st.st_mode)) {
		fail(d, "give a folder with --store", "store %s is not a folder", dir);
		return;
	}
	tmp = xasprintf("%s/.doctor.XXXXXX", dir);
	if ((fd = mkstemp(tmp)) < 0) {
		fail(d, "fix the owner or permissions of the store", "store %s not writable: %s", dir, strerror(errno));
		free(tmp);
		return;
	}
	close(fd);
	unlink(tmp);
	free(tmp);
	if ((st.st_mode & 077) != 0 || st.st_uid != getuid()) {
		char next[64];

		snprintf(next, sizeof(next), "chmod 700 (and chown to uid %u)", (unsigned)getuid());
		fail(d, next, "store %s is mode %03o, owner %u: it must be 0700 and yours", dir,
		     (unsigned)(st.st_mode & 0777), (unsigned)st.st_uid);
		return;
	}
	ok(d, "store %s writable, mode 0700", dir);
}

/* True when name is an executable file in a folder of $PATH. */
static bool
on_path(const char *name)
{
	const char *path = getenv("PATH");
	char *copy, *dir, *save = NULL;
	bool found = false;

	if (path == NULL)
		return false;
	copy = xstrdup(path);
	for (dir = strtok_r(copy, ":", &save); dir && !found; dir = strtok_r(NULL, ":", &save)) {
		char *p = xasprintf("%s/%s", *dir ? dir : ".", name);

		found = access(p, X_OK) == 0;
		free(p);
	}
	free(copy);
	return found;
}

static void
check_fuse(struct doctor *d)
{
	int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		fail(d, "load the fuse module (modprobe fuse) or, in a container, pass --device /dev/fuse",
		     "/dev/fuse: %s", strerror(errno));
	else {
		close(fd);
		ok(d, "/dev/fuse can be opened");
	}
	if (on_path("fusermount3"))
		ok(d, "fusermount3 found on PATH");
	else
		fail(d, "install the fuse3 package", "fusermount3 not found on PATH");
}

/* Team mode: the database answers, the password is accepted, the schema is ours. */
static void
check_team(struct doctor *d, const char *conninfo)
{
	char errbuf[512];
	int version;

	if (conninfo == NULL || conninfo[0] == '\0')
		return;
	if (team_db_probe(conninfo, &version, errbuf, sizeof(errbuf)) < 0)
		fail(d, "check team_db, that the server runs, and the password in ~/.pgpass or "
		     "PGPASSFILE", "%s", errbuf);
	else if (version == 0)
		ok(d, "team database reachable (schema not created yet: the first mount creates it)");
	else if (version > TEAM_SCHEMA_VERSION)
		fail(d, "upgrade bananafs on this machine to the version the rest of the team runs",
		     "team database has schema version %d, newer than this bananafs knows (%d)", version,
		     TEAM_SCHEMA_VERSION);
	else if (version < TEAM_SCHEMA_VERSION)
		ok(d, "team database reachable, password accepted, schema version %d: the next mount "
		   "of this bananafs upgrades it to %d, and mounts of an older bananafs are then refused",
		   version, TEAM_SCHEMA_VERSION);
	else
		ok(d, "team database reachable, password accepted, schema version %d", version);
}

int
cmd_doctor(struct ctl *c, int argc, char **argv)
{
	struct doctor d = { 0 };
	struct config cfg = { 0 };
	cJSON *st = NULL;
	const cJSON *v;
	char *cfgpath = NULL, warnbuf[256] = "", errbuf[256] = "";
	const char *endpoint, *store;
	bool emulator;

	(void)argv;
	if (argc != 1)
		usage();
	if (ctl_resolve(c, NULL) < 0)
		d.failed++;

	/* 1. the config file */
	if (ctl_load_config(&cfg, &cfgpath) < 0)
		fail(&d, "fix the line named above", "config %s has an error", cfgpath ? cfgpath : "?");
	else if (cfgpath != NULL && access(cfgpath, F_OK) == 0)
		ok(&d, "config %s read", cfgpath);
	else
		ok(&d, "no config file at %s: the defaults apply", cfgpath ? cfgpath : "?");

	/* The mount's settings win: they are what the daemon uses. */
	if (c->mount != NULL)
		st = ctl_read_stats(c);
	v = cJSON_GetObjectItemCaseSensitive(st, "endpoint");
	endpoint = cJSON_IsString(v) ? v->valuestring : cfg.endpoint ? cfg.endpoint : "";
	emulator = is_loopback(endpoint) || cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(st, "offline"));

	/* 2 and 3. the API key, endpoint reachable, key accepted: the mount's own when mounted */
	if (st != NULL) {
		check_mount_key(&d, c);
	} else if (config_resolve_keys(&cfg, warnbuf, sizeof(warnbuf), errbuf, sizeof(errbuf)) < 0) {
		fail(&d, "fix the key source named above", "API key: %s", errbuf);
	} else if (cfg.api_key == NULL || cfg.api_key[0] == '\0') {
		fail(&d, "export GEMINI_API_KEY=... (or set api_key_file); without a key, make demo uses the emulator",
		     "no API key (GOOGLE_API_KEY, GEMINI_API_KEY, api_key_file, api_key_command)");
	} else {
		const char *bad = key_malformed(cfg.api_key, emulator);

		if (bad != NULL)
			fail(&d, "copy the key again from Google AI Studio", "API key looks malformed: %s", bad);
		else {
			ok(&d, "API key present (%zu characters%s)", strlen(cfg.api_key),
			   emulator ? "; loopback endpoint: the emulator's default key is emulator-key" : "");
			check_endpoint(&d, &cfg, endpoint);
		}
	}
	if (warnbuf[0] != '\0')
		printf("     note: %s\n", warnbuf);

	/* 4. the store */
	v = cJSON_GetObjectItemCaseSensitive(st, "store");
	store = c->store_opt ? c->store_opt : cJSON_IsString(v) ? v->valuestring : cfg.store_dir ? cfg.store_dir : c->store;
	check_store(&d, store);

	/* 5. FUSE */
	check_fuse(&d);

	/* 6. the team database, when team_db is set (the mount's setting wins) */
	v = cJSON_GetObjectItemCaseSensitive(st, "team_db");
	check_team(&d, cJSON_IsString(v) ? v->valuestring : cfg.team_db);

	/* 7. the mount */
	if (st != NULL)
		ok(&d, "mounted at %s%s%s", c->mount,
		   cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(st, "offline")) ? " (offline: bundled emulator)" : "",
		   cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(st, "dry_run")) ? " (dry run)" : "");
	else if (c->mount != NULL)
		fail(&d, "unmount (fusermount3 -u) and mount again", "%s/.bananafs/stats is not readable", c->mount);
	else
		fail(&d, "mount it: bananafs ~/banana (or give the mount with -m)",
		     "no bananafs mount found from the current folder");

	cJSON_Delete(st);
	free(cfgpath);
	config_free(&cfg);
	return d.failed ? 1 : 0;
}
