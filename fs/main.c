/*
 * main.c - bananafs: options, checks, mount, daemonize, serve, unwind.
 *
 * Everything that can fail is checked while still attached to the
 * terminal: config, key, endpoint, store, journal.  Then mount, then
 * daemonize, then start the workers (threads do not survive fork).
 */
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include "api/http.h"
#include "api/models.h"
#include "cache/batcher.h"
#include "cache/team.h"
#include "cache/journal.h"
#include "cache/log.h"
#include "fs/bfs.h"
#include "fs/creds.h"
#include "fs/deadmount.h"
#include "fs/jobs.h"
#include "fs/ll.h"
#include "fs/tree.h"

#define BANANAFS_VERSION "0.1.0"

struct cli {
	char *store;
	char *endpoint;
	char *config;
	int dry_run;
	int help;
	int version;
	int foreground;
	int debug;
	int single;
	char *mountpoint;
	char *source;			/* fstab's first field: a store folder, or "bananafs" */
	char **sets;			/* -o KEY=VALUE for the config, in order */
	int nsets;
};

enum { KEY_HELP, KEY_VERSION, KEY_FG, KEY_DEBUG, KEY_SINGLE };

#define CLI_OPT(t, p) { t, offsetof(struct cli, p), 1 }
static const struct fuse_opt cli_opts[] = {
	{ "--store=%s", offsetof(struct cli, store), 0 },
	{ "--store %s", offsetof(struct cli, store), 0 },
	{ "store=%s", offsetof(struct cli, store), 0 },
	{ "--endpoint=%s", offsetof(struct cli, endpoint), 0 },
	{ "--endpoint %s", offsetof(struct cli, endpoint), 0 },
	{ "endpoint=%s", offsetof(struct cli, endpoint), 0 },
	{ "--config=%s", offsetof(struct cli, config), 0 },
	{ "--config %s", offsetof(struct cli, config), 0 },
	{ "config=%s", offsetof(struct cli, config), 0 },
	CLI_OPT("--dry-run", dry_run),
	CLI_OPT("dry_run", dry_run),
	FUSE_OPT_KEY("-h", KEY_HELP),
	FUSE_OPT_KEY("--help", KEY_HELP),
	FUSE_OPT_KEY("-V", KEY_VERSION),
	FUSE_OPT_KEY("--version", KEY_VERSION),
	FUSE_OPT_KEY("-f", KEY_FG),
	FUSE_OPT_KEY("-d", KEY_DEBUG),
	FUSE_OPT_KEY("debug", KEY_DEBUG),
	FUSE_OPT_KEY("-s", KEY_SINGLE),
	FUSE_OPT_END
};

/* Options that belong to FUSE, passed through untouched. */
static const char *const fuse_passthrough[] = {
	"allow_root", "default_permissions", "fsname=", "subtype=", "max_read=",
	"auto_unmount", "rw", "ro", "nosuid", "suid", "nodev", "dev", "noexec", "exec",
	"noatime", "atime", "relatime", NULL,
};

/* fstab words meant for mount(8) itself: dropped. */
static const char *const mount_only[] = {
	"user", "users", "nouser", "noauto", "auto", "_netdev", "nofail", "defaults", "x-", NULL,
};

static void usage(FILE *f)
{
	fprintf(f,
"usage: bananafs [-fdsV] [-h] [--store DIR] [--endpoint URL] [--config FILE]\n"
"                [--dry-run] [-o option[,option ...]] MOUNTPOINT\n"
"\n"
"Mounts Gemini image models as a drive: write MODEL/SIZE/NAME.txt, get NAME.png.\n"
"\n"
"  -f                 stay in the foreground\n"
"  -d                 debug output (implies -f)\n"
"  -s                 single-threaded FUSE loop\n"
"  -h, --help         this help\n"
"  -V, --version      print the version\n"
"  --store DIR        store folder (-o store=DIR); default $XDG_DATA_HOME/bananafs\n"
"  --endpoint URL     API base URL (-o endpoint=URL); http:// only for loopback\n"
"  --config FILE      config file (-o config=FILE); default $XDG_CONFIG_HOME/bananafs/config\n"
"  --dry-run          price every prompt, send nothing (-o dry_run)\n"
"  -o KEY=VALUE       any bananafs.conf(5) key, e.g. -o max_inflight=2,budget_daily_usd=5\n"
"  -o allow_other     let other users see the mount (FUSE option)\n"
"\n"
"The API key comes from GOOGLE_API_KEY or GEMINI_API_KEY, or api_key_file /\n"
"api_key_command in the config; never from the command line.\n"
"See bananafs(1) and bananafs.conf(5).\n");
}

static int in_list(const char *const *list, const char *arg)
{
	for (int i = 0; list[i]; i++) {
		size_t n = strlen(list[i]);
		if (list[i][n - 1] == '=' || list[i][n - 1] == '-' ? strncmp(arg, list[i], n) == 0
								   : strcmp(arg, list[i]) == 0)
			return 1;
	}
	return 0;
}

static int cli_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	(void)outargs;
	struct cli *c = data;
	switch (key) {
	case KEY_HELP: c->help = 1; return 0;
	case KEY_VERSION: c->version = 1; return 0;
	case KEY_FG: c->foreground = 1; return 0;
	case KEY_DEBUG: c->debug = c->foreground = 1; return 1;	/* FUSE wants -d too */
	case KEY_SINGLE: c->single = 1; return 0;
	case FUSE_OPT_KEY_NONOPT:
		/* mount.fuse3 (fstab type fuse.bananafs) passes SOURCE MOUNTPOINT. */
		if (c->mountpoint && !c->source) {
			c->source = c->mountpoint;
		} else if (c->mountpoint) {
			fprintf(stderr, "bananafs: unexpected argument '%s' (one MOUNTPOINT only)\n", arg);
			return -1;
		}
		c->mountpoint = strdup(arg);
		return c->mountpoint ? 0 : -1;
	case FUSE_OPT_KEY_OPT:
		if (arg[0] == '-') {
			fprintf(stderr, "bananafs: unknown option '%s' (see bananafs --help)\n", arg);
			return -1;
		}
		if (in_list(mount_only, arg))
			return 0;
		if (in_list(fuse_passthrough, arg))
			return 1;
		char **n = realloc(c->sets, sizeof(*n) * (size_t)(c->nsets + 1));
		if (!n)
			return -1;
		c->sets = n;
		if (!(c->sets[c->nsets++] = strdup(arg)))
			return -1;
		return 0;
	}
	return 1;
}

/* Applies -o KEY=VALUE after the config file, so the command line wins. */
static int apply_sets(struct config *cfg, const struct cli *c)
{
	char err[512];
	for (int i = 0; i < c->nsets; i++) {
		char *eq = strchr(c->sets[i], '=');
		int rc;
		if (eq)
			*eq = '\0';
		rc = config_set(cfg, c->sets[i], eq ? eq + 1 : "yes", err, sizeof(err));
		if (rc < 0)	/* the key name only: the value may be a secret */
			fprintf(stderr, "bananafs: -o %s: %s\n", c->sets[i], err);
		else
			config_note_origin(cfg, c->sets[i], "-o");
		if (eq)
			*eq = '=';
		if (rc < 0)
			return -1;
	}
	return 0;
}

static int setup_config(struct bfs *b, struct cli *c)
{
	char err[1024], warn[512] = "";
	if (config_defaults(&b->cfg) < 0) {
		fprintf(stderr, "bananafs: cannot set defaults (no HOME?)\n");
		return -1;
	}
	char *path = c->config ? strdup(c->config) : config_default_path();
	if (path && config_load(&b->cfg, path, c->config != NULL, err, sizeof(err)) < 0) {
		fprintf(stderr, "bananafs: %s\n", err);
		free(path);
		return -1;
	}
	free(path);
	if (apply_sets(&b->cfg, c) < 0)
		return -1;
	if (!c->store && c->source && c->source[0] == '/')
		c->store = strdup(c->source);
	if (c->store && config_set(&b->cfg, "store_dir", c->store, err, sizeof(err)) < 0)
		goto bad;
	if (c->endpoint && config_set(&b->cfg, "endpoint", c->endpoint, err, sizeof(err)) < 0)
		goto bad;
	if (c->dry_run)
		b->cfg.dry_run = true;
	const struct model_info *fb = b->cfg.fallback_model ? models_find(b->cfg.fallback_model) : NULL;
	if (fb && model_retired(fb)) {
		model_retired_msg(fb, err, sizeof(err));
		fprintf(stderr, "bananafs: fallback_model: %s\n", err);
		return -1;
	}
	if (!http_url_allowed(b->cfg.endpoint)) {
		fprintf(stderr, "bananafs: endpoint %s refused: plain http:// is accepted only for "
			"loopback addresses; use https://\n", b->cfg.endpoint);
		return -1;
	}
	if (config_resolve_keys(&b->cfg, warn, sizeof(warn), err, sizeof(err)) < 0)
		goto bad;
	if (warn[0])
		fprintf(stderr, "bananafs: %s\n", warn);
	if (!b->cfg.api_key && !b->cfg.dry_run) {
		fprintf(stderr, "bananafs: no API key. Set GEMINI_API_KEY (or GOOGLE_API_KEY), or "
			"api_key_file / api_key_command in the config.\n"
			"bananafs: to try it offline, run 'make demo' (it mounts against the bundled "
			"emulator), or mount with --dry-run to price prompts without sending.\n");
		return -1;
	}
	return 0;
bad:
	fprintf(stderr, "bananafs: %s\n", err);
	return -1;
}

/* The session's request loop: one thread, or libfuse's pool. */
static int serve(struct fuse_session *se, int single)
{
	struct fuse_loop_config *lc = fuse_loop_cfg_create();
	int rc = single ? fuse_session_loop(se) : fuse_session_loop_mt(se, lc);
	fuse_loop_cfg_destroy(lc);
	return rc;
}

static int is_loopback(const char *url)
{
	return !strncmp(url, "http://127.", 11) || !strncmp(url, "http://localhost", 16) ||
	       !strncmp(url, "http://[::1]", 12);
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct cli c = { 0 };
	static struct bfs b;
	struct fuse_session *se = NULL;
	char err[1024];
	int rc = 1;

	b.tree_fd = -1;
	/*
	 * No core and no ptrace by other processes of the user: the key is in
	 * memory from the config step on.  This also makes /proc/PID/ of the
	 * daemon root's (environ, mem, fd of the daemon are closed to the
	 * user); the daemon's own /proc/self/fd paths keep working.
	 */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		fprintf(stderr, "bananafs: warning: cannot make the process non-dumpable: %s\n", strerror(errno));
	creds_init();
	if (fuse_opt_parse(&args, &c, cli_opts, cli_proc) < 0)
		goto out_args;
	if (c.help) {
		usage(stdout);
		rc = 0;
		goto out_args;
	}
	if (c.version) {
		printf("bananafs %s (FUSE %d.%d)\n", BANANAFS_VERSION, FUSE_MAJOR_VERSION, FUSE_MINOR_VERSION);
		rc = 0;
		goto out_args;
	}
	if (!c.mountpoint) {
		usage(stderr);
		goto out_args;
	}
	log_init("bananafs", c.foreground, c.debug);
	if (setup_config(&b, &c) < 0)
		goto out_config;

	char mp[PATH_MAX];
	struct stat st;
	if (deadmount_recover(c.mountpoint) < 0)
		goto out_config;
	if (!realpath(c.mountpoint, mp) || stat(mp, &st) < 0) {
		fprintf(stderr, "bananafs: mount point %s: %s\n", c.mountpoint, strerror(errno));
		goto out_config;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "bananafs: mount point %s: not a folder\n", c.mountpoint);
		goto out_config;
	}
	b.mountpoint = strdup(mp);
	b.offline = is_loopback(b.cfg.endpoint);

	if (http_global_init() < 0) {
		fprintf(stderr, "bananafs: libcurl failed to start\n");
		goto out_config;
	}
	if (store_open(&b.store, b.cfg.store_dir, err, sizeof(err)) < 0) {
		fprintf(stderr, "bananafs: store %s: %s\n", b.cfg.store_dir, err);
		goto out_http;
	}
	if (journal_init(&b.store) < 0) {
		fprintf(stderr, "bananafs: store %s: cannot open the job journal\n", b.cfg.store_dir);
		goto out_store;
	}
	b.tree_fd = open(b.store.tree_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (b.tree_fd < 0 || tree_prepare(b.tree_fd) < 0) {
		fprintf(stderr, "bananafs: store %s: %s\n", b.store.tree_dir, strerror(errno));
		goto out_store;
	}
	if (b.cfg.team_db) {
		int trc = team_db_open(&b.team, b.cfg.team_db, b.cfg.team_lease_s,
				       b.cfg.team_offline_cache_only, err, sizeof(err));

		if (trc < 0) {
			fprintf(stderr, "bananafs: %s\n", err);
			goto out_store;
		}
		if (trc > 0)
			fprintf(stderr, "bananafs: %s\nbananafs: team_offline = cache-only: serving cached "
				"images only; paid requests are refused until the team database is back\n",
				err);
	}
	/*
	 * Acting with a writer's rights (fs/creds.h) needs to pass through
	 * STORE/tree, which the daemon holds open: search only, no listing.
	 * STORE itself stays 0700, so nothing outside the mount reaches in.
	 */
	if (creds_can_switch() && b.cfg.allow_other && chmod(b.store.tree_dir, 0711) < 0) {
		fprintf(stderr, "bananafs: store %s: %s\n", b.store.tree_dir, strerror(errno));
		goto out_team;
	}
	if (fetch_open(&b.fetch, &b.cfg, &b.store, &clock_real, err, sizeof(err)) < 0) {
		fprintf(stderr, "bananafs: %s\n", err);
		goto out_team;
	}
	/* One pipeline, two backends: the team's replace the local ones. */
	if (b.cfg.team_db && team_attach(&b.fetch, &b.team, err, sizeof(err)) < 0) {
		fprintf(stderr, "bananafs: %s\n", err);
		goto out_fetch;
	}
	if (!(b.jobs = jobs_new(&b))) {
		fprintf(stderr, "bananafs: out of memory\n");
		goto out_fetch;
	}

	/* FUSE options: ours first, then whatever the user passed through. */
	fuse_opt_insert_arg(&args, 1, "-ofsname=bananafs,subtype=bananafs");
	/* Shared with other users: let the kernel check permissions against the store's modes. */
	if (b.cfg.allow_other)
		fuse_opt_add_arg(&args, "-oallow_other,default_permissions");
	if (!(se = ll_new(&args, &b))) {
		fprintf(stderr, "bananafs: FUSE refused the options\n");
		goto out_jobs;
	}
	if (fuse_session_mount(se, mp) != 0) {
		fprintf(stderr, "bananafs: cannot mount on %s (is /dev/fuse available? is it mounted already?)\n", mp);
		goto out_destroy;
	}
	if (b.offline)
		fprintf(stderr, "bananafs: OFFLINE: using the endpoint %s (the bundled emulator or another "
			"local server); what the bundled emulator answers is simulated spend (ledger: "
			"\"simulated\": true)\n", b.cfg.endpoint);
	if (b.cfg.dry_run)
		fprintf(stderr, "bananafs: DRY RUN: prompts are priced, nothing is sent\n");
	fprintf(stderr, "bananafs: mounted %s (store %s)\n", mp, b.store.dir);
	if (fuse_daemonize(c.foreground) != 0) {
		fprintf(stderr, "bananafs: cannot daemonize\n");
		goto out_unmount;
	}
	/* Not /: a core (if one were made) or a relative path lands in the store, not elsewhere. */
	if (chdir(b.store.dir) < 0)
		log_warn("cannot change to the store %s", b.store.dir);
	if (fuse_set_signal_handlers(se) != 0)
		goto out_unmount;
	if (b.cfg.team_db && team_db_start(&b.team, err, sizeof(err)) < 0) {
		log_warnx("%s", err);
		goto out_signals;
	}
	/* The batcher first: resumed jobs on the batch route need it. */
	if (batcher_start(&b.fetch, jobs_batch_done, b.jobs, err, sizeof(err)) < 0)
		log_warnx("batch route unavailable: %s", err);
	int workers = b.cfg.max_inflight * 2 + 2;
	if (jobs_start(b.jobs, workers) < 0) {
		log_warnx("cannot start workers");
		goto out_signals;
	}
	b.mounted = 1;
	int resumed = jobs_resume(b.jobs);
	if (resumed > 0)
		log_info("resumed %d journaled job(s) from an earlier run", resumed);

	rc = serve(se, c.single) ? 1 : 0;
	b.mounted = 0;
	{
		int busy = 0;
		int left = jobs_stop(b.jobs, 3, &busy);
		if (left)
			log_info("unmounted with %d job(s) pending; they stay journaled and resume at the next mount", left);
		if (busy) {
			/* Workers are still inside requests: end without freeing what they use. */
			fuse_remove_signal_handlers(se);
			fuse_session_unmount(se);
			_exit(rc);
		}
		/* Workers are gone; the batcher may still report into the jobs until it stops. */
		if (b.fetch.batcher)
			batcher_stop(&b.fetch);
		jobs_free(b.jobs);
		b.jobs = NULL;
	}
out_signals:
	fuse_remove_signal_handlers(se);
out_unmount:
	fuse_session_unmount(se);
out_destroy:
	fuse_session_destroy(se);
	ll_free();
out_jobs:
	if (b.jobs) {
		int busy = 0;
		jobs_stop(b.jobs, 0, &busy);
		jobs_free(b.jobs);
	}
out_fetch:
	fetch_close(&b.fetch);
out_team:
	team_db_close(&b.team);
out_store:
	if (b.tree_fd >= 0)
		close(b.tree_fd);
	store_close(&b.store);
out_http:
	http_global_cleanup();
out_config:
	config_free(&b.cfg);
	free(b.mountpoint);
out_args:
	for (int i = 0; i < c.nsets; i++)
		free(c.sets[i]);
	free(c.sets);
	free(c.store);
	free(c.endpoint);
	free(c.config);
	free(c.mountpoint);
	free(c.source);
	fuse_opt_free_args(&args);
	return rc;
}
