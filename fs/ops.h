/*
 * ops.h - the FUSE operations table (high-level API, paths).
 */
#ifndef BANANAFS_FS_OPS_H
#define BANANAFS_FS_OPS_H

#include <fuse.h>

extern const struct fuse_operations bfs_ops;

#endif
