/*
 * beneath.h - opening a path that must stay beneath a folder.
 */
#ifndef BANANAFS_CACHE_BENEATH_H
#define BANANAFS_CACHE_BENEATH_H

/*
 * Opens path (relative) beneath dirfd with flags (O_NOFOLLOW is added):
 * openat2 with RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS.  Where openat2 is
 * missing (ENOSYS: old kernels, valgrind) it walks the path one component
 * at a time with O_NOFOLLOW, after resolving ".." lexically: stricter (no
 * symlink anywhere on the way), never weaker.  Returns an fd or -1 (errno;
 * EXDEV when the path would leave dirfd, ELOOP for a symlink).
 */
int open_beneath(int dirfd, const char *path, int flags);

#endif
