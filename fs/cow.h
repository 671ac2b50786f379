/*
 * cow.h - copy-on-write for published outputs.  A published NAME.png is a
 * hard link to a cache object (marked with the xattr user.bananafs.object);
 * before anything changes it, data or metadata, the name gets its own copy
 * so edits never reach the cache.  The copy is unmarked: a changed output
 * is the user's file, which bananafs never replaces (fs/publish.h); an
 * output that is already a private copy (nlink 1) just loses the mark.
 */
#ifndef BANANAFS_FS_COW_H
#define BANANAFS_FS_COW_H

#define COW_OBJECT_XATTR "user.bananafs.object"

/*
 * When dirfd/name is a cache object, replaces it by a private copy (same
 * mode and owner) under the same name.  0 when done or not needed, else a
 * positive errno.  *copied (may be NULL) says whether the name now holds a
 * new inode.
 */
int cow_if_object(int dirfd, const char *name, int *copied);

#endif
