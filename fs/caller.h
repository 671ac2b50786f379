/*
 * caller.h - files created as the caller.  Every frontend calls this right
 * after it created a name for a request, with the uid/gid the request came
 * from.
 */
#ifndef BANANAFS_FS_CALLER_H
#define BANANAFS_FS_CALLER_H

#include <sys/types.h>

/*
 * A root daemon serving other users (allow_other) creates their files as
 * root and then hands them over: the store stays 0700 and private to the
 * daemon (so switching fsuid to the caller would not even reach it), while
 * each file belongs to its maker.  The kernel has already checked the
 * caller against the parent folder (default_permissions).  A setgid
 * folder's group is kept, as a local disk would.  Failure is logged only.
 */
void caller_take(int dirfd, const char *name, uid_t uid, gid_t gid);

#endif
