/*
 * settle.h - waiting for a copy into a prompt's folder to finish.
 *
 * Copy tools (cp -r, cp -a, mv, rsync, tar -x, file managers) bring a
 * folder of prompts with their images, often the prompt first.  A prompt
 * about to be paid must not be sent when its image is about to arrive; a
 * cache hit must not be placed first either, because cp and mv create
 * each file of a folder they made with O_EXCL, and a name the kernel
 * already knows fails there with EEXIST before bananafs is asked.  So a
 * job waits while its folder is receiving a copy, and not otherwise: a
 * lone `echo > fox.txt` is not delayed.
 *
 * Receiving a copy (fs/arrivals.h): the process that created the prompt
 * with O_EXCL, as copy tools do, is still running; or, for a paid prompt,
 * other names arrived in the folder within settle_s before it or in the
 * short grace after it.  The wait ends when that process has exited or no
 * name has arrived for settle_s, at most SETTLE_CAP_S.  A cache hit written
 * the usual way (O_TRUNC, as editors and scripts do) is placed at once: a
 * copy that is not exclusive overwrites the output and keeps it.
 */
#ifndef BANANAFS_FS_SETTLE_H
#define BANANAFS_FS_SETTLE_H

#include <stdbool.h>
#include <stdint.h>

/* The longest a job waits for a folder being filled to go quiet. */
#define SETTLE_CAP_S 30.0
/*
 * How long after a prompt arrives a paid one looks for a copy tool's next
 * name: cp writes its next file within microseconds of closing this one,
 * unless the machine is busy.
 */
#define COPY_GRACE_S 0.025

/* When the prompt arrived (CLOCK_MONOTONIC) and its folder's arrivals count then. */
struct settle_mark {
	double arrived;
	uint64_t names;
};

double settle_now(void);
/*
 * Waits while the folder dir of the prompt rel (both relative to the tree
 * fd) is receiving a copy (above); paid for a prompt about to be paid,
 * false for a cache hit.  stop (may be NULL) ends the wait early.
 */
void settle_wait(int tree_fd, const char *rel, const char *dir, const struct settle_mark *m,
		 double settle_s, bool paid, bool (*stop)(void *), void *arg);

#endif
