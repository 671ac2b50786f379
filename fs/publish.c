/*
 * publish.c - see publish.h.  Invariant: a published name never shows a
 * half-written file; it is always the result of a rename.
 *
 * The prompt's folder is opened beneath the tree (and beneath the mount
 * when publishing through it) once, and every step works on that folder
 * fd: a folder swapped for a symlink while the request ran cannot send
 * the result (or an unlink) anywhere outside the tree.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>
#include "cache/beneath.h"
#include "cache/log.h"
#include "fs/cow.h"
#include "fs/publish.h"

static atomic_ulong pub_counter;

static void tmp_name(char *buf, size_t len)
{
	snprintf(buf, len, PUB_TMP_PREFIX "%ld.%lu", (long)getpid(), atomic_fetch_add(&pub_counter, 1));
}

/* The folder dir (relative to the tree) in the store; an O_PATH fd or -1. */
static int store_dir_fd(struct bfs *b, const char *dir)
{
	if (!dir[0])
		return fcntl(b->tree_fd, F_DUPFD_CLOEXEC, 0);
	return open_beneath(b->tree_fd, dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
}

/* The same folder seen through the mount when publishing through it; -1 otherwise. */
static int mount_dir_fd(struct bfs *b, const char *dir)
{
	if (!b->mounted || !b->mountpoint || !b->cfg.publish_via_mount)
		return -1;
	int root = open(b->mountpoint, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root < 0 || !dir[0])
		return root;
	int fd = open_beneath(root, dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	int e = errno;
	close(root);
	errno = e;
	return fd;
}

/* Renames tmp to name in the folder: through the mount when it serves, else in the store. */
static int rename_into_place(struct bfs *b, int sfd, const char *dir, const char *tmp, const char *name)
{
	int mfd = mount_dir_fd(b, dir);
	if (mfd >= 0) {
		int rc = renameat(mfd, tmp, mfd, name);
		int e = errno;
		close(mfd);
		if (rc == 0)
			return 0;
		log_debug("publish through the mount failed (%s); renaming in the store", strerror(e));
	}
	return renameat(sfd, tmp, sfd, name);
}

int publish_object(struct bfs *b, const char *dir, const char *name, const struct object_info *o,
		   const char *keyhex)
{
	char tmp[64], abs_tmp[PATH_MAX];
	int sfd = store_dir_fd(b, dir);
	if (sfd < 0)
		return -1;
	tmp_name(tmp, sizeof(tmp));
	/* store_link takes a path: name the folder by its fd, so nothing is resolved again. */
	snprintf(abs_tmp, sizeof(abs_tmp), "/proc/self/fd/%d/%s", sfd, tmp);
	if (store_link(&b->store, o, abs_tmp) < 0) {
		int e = errno;
		close(sfd);
		errno = e;
		return -1;
	}
	/* Marks the inode as a cache object so a write through the tree copies first. */
	if (setxattr(abs_tmp, COW_OBJECT_XATTR, keyhex, strlen(keyhex), 0) < 0 &&
	    errno != ENOTSUP)
		log_debug("cannot mark %s as an object: %s", name, strerror(errno));
	if (rename_into_place(b, sfd, dir, tmp, name) < 0) {
		int e = errno;
		unlinkat(sfd, tmp, 0);
		close(sfd);
		errno = e;
		return -1;
	}
	close(sfd);
	return 0;
}

int publish_text(struct bfs *b, const char *dir, const char *name, const char *text)
{
	char tmp[64];
	int sfd = store_dir_fd(b, dir);
	if (sfd < 0)
		return -1;
	tmp_name(tmp, sizeof(tmp));
	int fd = openat(sfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0) {
		int e = errno;
		close(sfd);
		errno = e;
		return -1;
	}
	size_t len = strlen(text), off = 0;
	while (off < len) {
		ssize_t w = write(fd, text + off, len - off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			goto out_unlink;
		}
		off += (size_t)w;
	}
	if (fsync(fd) < 0)
		goto out_unlink;
	close(fd);
	fd = -1;
	if (rename_into_place(b, sfd, dir, tmp, name) < 0)
		goto out_unlink;
	close(sfd);
	return 0;
out_unlink: {
	int e = errno;
	if (fd >= 0)
		close(fd);
	unlinkat(sfd, tmp, 0);
	close(sfd);
	errno = e;
	return -1;
}
}

void publish_remove(struct bfs *b, const char *dir, const char *name)
{
	int mfd = mount_dir_fd(b, dir);
	if (mfd >= 0) {
		int rc = unlinkat(mfd, name, 0);
		int e = errno;
		close(mfd);
		if (rc == 0 || e == ENOENT)
			return;
	}
	int sfd = store_dir_fd(b, dir);
	if (sfd >= 0) {
		unlinkat(sfd, name, 0);
		close(sfd);
	}
}
