/*
 * creds.h - acting with a writer's rights (DESIGN.md 6).
 *
 * A root daemon serving other users (allow_other) does every file
 * operation for a user with that user's rights: this thread's fsuid,
 * fsgid and supplementary groups become theirs.  All three are per
 * thread on Linux when set by the raw system calls (glibc's setgroups
 * would change every thread of the process), so a worker acting for
 * nobody does not change what a FUSE thread acting for root may do.
 * Changing fsuid away from 0 also drops the file capabilities
 * (CAP_DAC_OVERRIDE, CAP_FOWNER, ...), so the kernel checks modes as it
 * would for the writer.  A daemon that is not root cannot switch: it
 * runs the jobs of its own user (and root's) and refuses other users'
 * (creds_may_act).
 *
 * Usage: creds_enter(&w); ...open, create, rename...; creds_leave();
 * Not nested: creds_leave returns to the daemon's own rights.  Code that
 * must briefly act as the daemon inside (reading a cache object, opening
 * the mount point) uses creds_suspend()/creds_resume().
 */
#ifndef BANANAFS_FS_CREDS_H
#define BANANAFS_FS_CREDS_H

#include <stdbool.h>
#include "cache/writer.h"

/* Saves the daemon's own groups.  Call once in main, before any thread. */
void creds_init(void);
/* True when this daemon can act as other users (it runs as root). */
bool creds_can_switch(void);
/*
 * Starts w for a request from uid/gid (no groups yet).  Returns true when
 * the frontend should fill w->groups/w->ngroups (fuse_getgroups or
 * fuse_req_getgroups, cut at WRITER_MAX_GROUPS): only for a user other than
 * the daemon's, so a mount of one user never reads /proc for them.
 */
bool creds_writer_init(struct writer *w, uid_t uid, gid_t gid);
/* True when w is the daemon itself (or unset). */
bool creds_is_daemon(const struct writer *w);
/*
 * True when a job for w may run: the daemon can take w's rights, or w is
 * the daemon's own user, or root (who may read anything the daemon may).
 * A daemon that is not root never acts for another user with its own
 * rights: it could read files that user may not (DESIGN.md 6).
 */
bool creds_may_act(const struct writer *w);
/*
 * This thread's file rights become w's (nothing happens for the daemon's
 * own user or an unset w).  0, or -1 with errno when the switch failed: the
 * caller must not go on, and the thread is back to the daemon's rights.
 */
int creds_enter(const struct writer *w);
void creds_leave(void);
/*
 * Could w open rel (below the tree) for reading?  Asked with w's rights
 * when the daemon can switch; otherwise from the mode bits of the file and
 * of every folder on the way.
 */
bool creds_may_read(int tree_fd, const char *rel, const struct writer *w);
/* The writer this thread acts for, or NULL. */
const struct writer *creds_current(void);
/* Back to the daemon's rights for a moment; returns what creds_resume takes. */
const struct writer *creds_suspend(void);
void creds_resume(const struct writer *w);

#endif
