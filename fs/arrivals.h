/*
 * arrivals.h - what users have created in each folder, for the settle wait
 * (fs/settle.h).  A copy tool filling a folder (cp -r, mv, tar -x, rsync, a
 * file manager) shows up as new names, counted with none of the
 * clock-granularity doubt of the folder's ctime, and with the times of the
 * last two.  A process that creates names with O_EXCL is remembered too:
 * that is how copy tools create (and why a name bananafs filled first
 * makes them fail with EEXIST), and while it runs the folder may still be
 * receiving images.  Records live in a fixed table keyed by the folder's
 * (dev, ino); two folders sharing a slot only make a job wait more.
 */
#ifndef BANANAFS_FS_ARRIVALS_H
#define BANANAFS_FS_ARRIVALS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* A name was created in the folder dirfd (every create, via caller_take). */
void arrivals_note(int dirfd);
/* The process pid (0: unknown) created a name in dirfd with O_EXCL. */
void arrivals_exclusive(int dirfd, pid_t pid);

struct arrivals {
	uint64_t count;			/* names created so far */
	double last, prev;		/* CLOCK_MONOTONIC seconds of the last two (0: none) */
	bool copier_running;		/* the last O_EXCL creator is still running */
};
/* The record of the folder dir (relative to the tree fd); all zero when it cannot be read. */
void arrivals_get(int tree_fd, const char *dir, struct arrivals *a);

#endif
