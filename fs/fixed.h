/*
 * fixed.h - the one errno table for the fixed tree (root, model and size
 * folders, alias symlinks, .bananafs/).  Every frontend asks here, so the
 * same change of the same node fails the same way whichever call tried it.
 *
 * Errno convention: these return a positive errno.
 */
#ifndef BANANAFS_FS_FIXED_H
#define BANANAFS_FS_FIXED_H

#include "fs/tree.h"

/*
 * Changing an existing fixed node of kind k: unlink, rmdir, rename from or
 * over it, link from it, chmod/chown/utimens/truncate, an xattr change,
 * opening it for writing.  EROFS inside .bananafs/, EPERM elsewhere,
 * ENOENT for NODE_NONE.
 */
int fixed_change_errno(enum node_kind k);
/*
 * Creating a name that is not in the fixed tree inside a folder of kind
 * parent (mkdir, mknod, create, symlink, link to, rename to): EROFS in
 * .bananafs/, ENOENT below a file or nothing, EPERM elsewhere.
 */
int fixed_create_errno(enum node_kind parent);
/* Creating (mkdir, mknod, symlink, link to) over an existing fixed name. */
#define FIXED_EXISTS_ERRNO EEXIST

#endif
