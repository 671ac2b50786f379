/*
 * bfs.h - the daemon's state, shared by the FUSE operations, the job
 * workers and the control files.  Set up in main.c before mounting and
 * read-only afterwards, except where a field names its lock.
 */
#ifndef BANANAFS_FS_BFS_H
#define BANANAFS_FS_BFS_H

#include <stdatomic.h>
#include <stdbool.h>
#include "cache/config.h"
#include "cache/fetch.h"
#include "cache/store.h"
#include "cache/team_db.h"

struct jobs;

struct bfs {
	struct config cfg;
	struct store store;
	struct fetch_ctx fetch;
	struct team_db team;		/* team mode's connections; zeroed when team_db is unset */
	int tree_fd;			/* STORE/tree, O_PATH|O_DIRECTORY */
	char *mountpoint;		/* absolute; workers publish through it */
	atomic_int mounted;		/* 1 while the FUSE loop serves requests (read by workers) */
	bool offline;			/* endpoint is loopback: the bundled emulator */
	struct jobs *jobs;
	/*
	 * Set by a frontend that lets the kernel cache names: the daemon
	 * changed name in the store folder dirfd without going through the
	 * mount.  NULL when nothing needs telling.  Not from a FUSE request.
	 */
	void (*dir_changed)(struct bfs *b, int dirfd, const char *name);
	/*
	 * FUSE passthrough as the frontend negotiated it at mount: "on", or
	 * why it is off (for .bananafs/stats); and how many store files the
	 * kernel reads and writes itself right now (backing files open).
	 */
	const char *passthrough;
	atomic_int passthrough_files;
};

#endif
