/*
 * arrivals.h - how many names users have created in each folder.  A job
 * compares the count of its prompt's folder at the prompt's arrival with
 * the count now: a copy tool filling the folder (cp -r, mv, tar -x) shows
 * up as new names, with none of the clock-granularity doubt of the
 * folder's ctime.  Counts live in a fixed table keyed by the folder's
 * (dev, ino); two folders sharing a slot only make a job wait more.
 */
#ifndef BANANAFS_FS_ARRIVALS_H
#define BANANAFS_FS_ARRIVALS_H

#include <stdint.h>
#include <sys/types.h>

/* A name was created in the folder dirfd (every frontend, via caller_take). */
void arrivals_note(int dirfd);
/* The count of the folder dir (relative to the tree fd); 0 when it cannot be read. */
uint64_t arrivals_count(int tree_fd, const char *dir);

#endif
