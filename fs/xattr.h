/*
 * xattr.h - extended attributes as the mount shows them.  user.bananafs.*
 * on a prompt are ours (status, key, cost_usd, error, model, batch),
 * computed from the job status; setting or removing them is accepted and
 * ignored (cp -a and rsync -X copy them from files read out of a mount), and
 * nothing under the prefix ever reaches the store; every
 * other name is the store's.
 *
 * rel is the file's path relative to the tree (it decides whether it is a
 * prompt); path names the backing file for the l*xattr() calls, e.g.
 * "/proc/self/fd/N/name" (not followed) or "/proc/self/fd/N" (followed).  Getters return a length or -errno; changers
 * return 0 or a positive errno.
 */
#ifndef BANANAFS_FS_XATTR_H
#define BANANAFS_FS_XATTR_H

#include <stdbool.h>
#include <sys/types.h>
#include "fs/bfs.h"

#define XATTR_PREFIX "user.bananafs."

/*
 * Passed as rel for a prompt written where no path within PATH_MAX names
 * it (fs/ll_inode.h lli_mark_unnamed): its status is failed and its error
 * says why; it was never sent.
 */
extern const char XATTR_UNNAMED_PROMPT[];

/* name is under user.bananafs. */
bool xattr_is_ours(const char *name);
/*
 * Namespaces the drive does not carry (security.*, system.posix_acl_*):
 * a frontend answers EOPNOTSUPP at once, and GNU ls then stops asking for
 * the whole filesystem.
 */
bool xattr_not_carried(const char *name);
/* getxattr: size 0 asks for the length. */
ssize_t xattr_get(struct bfs *b, const char *rel, const char *path, const char *name, char *value,
		  size_t size);
/* listxattr: the store's names without ours, then ours that have a value. */
ssize_t xattr_list(struct bfs *b, const char *rel, const char *path, char *list, size_t size);
/* setxattr, or removexattr when remove is set.  The caller has done copy-on-write. */
int xattr_change(const char *path, const char *name, bool remove, const char *value, size_t size,
		 int flags);

#endif
