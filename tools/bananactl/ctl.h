/*
 * ctl.h - what the bananactl commands share: the resolved mount and store,
 * reading the .bananafs/ control files, and the command entry points.
 * bananactl talks to a mount only through its files and xattrs.
 */
#ifndef BANANAFS_CTL_H
#define BANANAFS_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <cjson/cJSON.h>

struct ctl {
	const char *mount_opt;		/* -m as given, or NULL */
	const char *store_opt;		/* -s as given, or NULL */
	bool resolved;
	char *mount;			/* absolute mount root; NULL when none was found */
	char *store;			/* absolute or as configured; never NULL once resolved */
};

/*
 * Finds the mount (from -m, else by walking up from hint, else from the
 * current folder, else ctl_find_only_mount) and the store (-s, else the mount's stats, else the
 * config's store_dir).  Idempotent: the first call wins.  0, or -1 after a
 * message when -m names something that is not a bananafs mount.
 */
int ctl_resolve(struct ctl *c, const char *hint);
/*
 * The mount when no path leads to one: ./banana (the demo mount, from the
 * repository root), else the only bananafs mount of this user in
 * /proc/self/mounts.  malloc'd, or NULL (after a message when several).
 */
char *ctl_find_only_mount(void);
/* Like ctl_resolve, but a mount is required: -1 with a message when none. */
int ctl_need_mount(struct ctl *c, const char *hint);

struct config;
/*
 * Defaults, then the config file (config_default_path) over them; the
 * file's path in *pathp when not NULL (malloc'd).  -1 after a message when
 * the file is bad (cfg then holds the defaults and the lines before).
 * Free cfg with config_free either way.
 */
int ctl_load_config(struct config *cfg, char **pathp);

/* MOUNT/.bananafs/NAME, malloc'd (exits on OOM). */
char *ctl_mount_file(const struct ctl *c, const char *name);
/* STORE/NAME, malloc'd. */
char *ctl_store_file(const struct ctl *c, const char *name);
/* The ledger file: through the mount when mounted and no -s, else the store's. */
char *ctl_ledger_path(const struct ctl *c);

/*
 * Reads a whole file, whatever st_size says (the .bananafs files are
 * generated).  NUL-terminated, malloc'd; NULL with errno set.
 */
char *ctl_read_file(const char *path, size_t *len);
/* Parses MOUNT/.bananafs/stats; NULL after a message. */
cJSON *ctl_read_stats(const struct ctl *c);

/* Team mode (tools/bananactl/team.c): the team_db in use (the mount's, else the config's), malloc'd, or NULL. */
char *ctl_team_db(struct ctl *c);
/* Prints the team's line for status: claims in flight, mounts, spending, shared objects. */
void ctl_team_status(const char *conninfo);

/*
 * The path of an existing file or folder relative to the mount root ("" for
 * the root itself), malloc'd; NULL after a message when it is not below it.
 */
char *ctl_rel_path(const struct ctl *c, const char *path);

/*
 * When path is an existing prompt file in a bananafs mount (NAME.txt below
 * MODEL/SIZE/, as bananafs(1) says), returns its path relative to the
 * mount root and the root in *mount (both malloc'd).  Otherwise NULL, and
 * why in why (no errno is left to read).
 */
char *ctl_prompt_path(const char *path, char **mount, char *why, size_t whylen);

/* Allocation that exits on failure: bananactl is a short-lived tool. */
void *xmalloc(size_t n);
char *xstrdup(const char *s);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Commands: argv[0] is the command word; return the exit status. */
int cmd_status(struct ctl *c, int argc, char **argv);
int cmd_wait(struct ctl *c, int argc, char **argv);
int cmd_run(struct ctl *c, int argc, char **argv);
int cmd_cancel(struct ctl *c, int argc, char **argv);
int cmd_cost(struct ctl *c, int argc, char **argv);
int cmd_ledger(struct ctl *c, int argc, char **argv);
int cmd_cache(struct ctl *c, int argc, char **argv);
int cmd_regen(struct ctl *c, int argc, char **argv);
int cmd_prices(struct ctl *c, int argc, char **argv);
int cmd_doctor(struct ctl *c, int argc, char **argv);

/*
 * Picks word among words (exact, else a unique prefix).  Returns the index,
 * or -1 after printing the valid words ("what" names them: "command").
 */
int ctl_pick_word(const char *what, const char *word, const char *const *words, int n);

/* Prints the usage to stderr (or stdout when to_stdout), as in bananactl(1). */
void usage_print(bool to_stdout);
/* Usage error: the usage on stderr, exit 1. */
void usage(void) __attribute__((noreturn));

#endif
