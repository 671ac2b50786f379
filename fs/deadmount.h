/*
 * deadmount.h - recovering a mount point whose bananafs died (kill -9, OOM):
 * the kernel keeps the mount and every access fails with ENOTCONN.
 */
#ifndef BANANAFS_FS_DEADMOUNT_H
#define BANANAFS_FS_DEADMOUNT_H

/*
 * When path is a dead bananafs mount, detaches it lazily (umount2 MNT_DETACH
 * as root, else fusermount3 -uz) and says so on stderr.  0 when path needs
 * nothing or was detached; -1 with a message on stderr otherwise (a dead
 * mount of another filesystem is never touched).
 */
int deadmount_recover(const char *path);

#endif
