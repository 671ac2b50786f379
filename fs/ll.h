/*
 * ll.h - the FUSE frontend: libfuse's low-level (inode) API, fuse_lowlevel.h,
 * over the inode table of fs/ll_inode.h.
 */
#ifndef BANANAFS_FS_LL_H
#define BANANAFS_FS_LL_H

#include <fuse_lowlevel.h>
#include "fs/bfs.h"

/*
 * Creates the session (args as for fuse_session_new) serving b; NULL with
 * a message on stderr.  Sets b->dir_changed so that publishing in the
 * store directly invalidates what the kernel cached.
 */
struct fuse_session *ll_new(struct fuse_args *args, struct bfs *b);
/* Frees what ll_new built, after fuse_session_destroy. */
void ll_free(void);

#endif
