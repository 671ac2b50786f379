/*
 * arrivals.h - what users have created in each folder, for the settle wait
 * (fs/settle.h).  A copy tool filling a folder (cp -r, mv, tar -x, rsync, a
 * file manager) shows up as new names, counted with none of the
 * clock-granularity doubt of the folder's ctime, and with the times of the
 * last two.  The process that created a file with O_EXCL is remembered
 * with the file: that is how copy tools create (and why a name bananafs
 * filled first makes them fail with EEXIST), so while the process that
 * made a prompt that way runs, its image may still be on the way.  An
 * editor that probes a folder with O_EXCL (vim's 4913) made another file,
 * not the prompt.  Records live in fixed tables keyed by (dev, ino); two
 * folders or files sharing a slot only make a job wait more.
 */
#ifndef BANANAFS_FS_ARRIVALS_H
#define BANANAFS_FS_ARRIVALS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

/* A name was created in the folder (dev, ino) (every create of fs/ll.c). */
void arrivals_note(dev_t dev, ino_t ino);
/*
 * The process pid (0: unknown) created a file with O_EXCL; sx is its
 * statx (STATX_INO, and STATX_BTIME when the store keeps it).
 */
void arrivals_exclusive(const struct statx *sx, pid_t pid);

struct arrivals {
	uint64_t count;			/* names created so far */
	double last, prev;		/* CLOCK_MONOTONIC seconds of the last two (0: none) */
};
/* The record of the folder dir (relative to the tree fd); all zero when it cannot be read. */
void arrivals_get(int tree_fd, const char *dir, struct arrivals *a);
/* Is the process that created the file rel (relative to the tree fd) with O_EXCL still running? */
bool arrivals_copier_running(int tree_fd, const char *rel);

#endif
