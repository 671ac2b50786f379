/*
 * publish.c - see publish.h.  Invariant: a published name never shows a
 * half-written file; it is always the result of a rename.
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
#include "cache/log.h"
#include "fs/publish.h"

static atomic_ulong pub_counter;

static void tmp_name(char *buf, size_t len)
{
	snprintf(buf, len, PUB_TMP_PREFIX "%ld.%lu", (long)getpid(), atomic_fetch_add(&pub_counter, 1));
}

/* Renames dir/tmp to dir/name through the mount when it serves, else in the store. */
static int rename_into_place(struct bfs *b, const char *dir, const char *tmp, const char *name)
{
	char from[PATH_MAX], to[PATH_MAX];
	if (b->mounted && b->mountpoint && b->cfg.publish_via_mount) {
		int n1 = snprintf(from, sizeof(from), "%s/%s/%s", b->mountpoint, dir, tmp);
		int n2 = snprintf(to, sizeof(to), "%s/%s/%s", b->mountpoint, dir, name);
		if (n1 > 0 && n2 > 0 && (size_t)n1 < sizeof(from) && (size_t)n2 < sizeof(to) &&
		    rename(from, to) == 0)
			return 0;
		log_debug("publish through the mount failed (%s); renaming in the store", strerror(errno));
	}
	int n1 = snprintf(from, sizeof(from), "%s/%s", dir, tmp);
	int n2 = snprintf(to, sizeof(to), "%s/%s", dir, name);
	if (n1 < 0 || n2 < 0 || (size_t)n1 >= sizeof(from) || (size_t)n2 >= sizeof(to)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return renameat(b->tree_fd, from, b->tree_fd, to);
}

int publish_object(struct bfs *b, const char *dir, const char *name, const struct object_info *o,
		   const char *keyhex)
{
	char tmp[64], abs_tmp[PATH_MAX];
	tmp_name(tmp, sizeof(tmp));
	int n = snprintf(abs_tmp, sizeof(abs_tmp), "%s/%s/%s", b->store.tree_dir, dir, tmp);
	if (n < 0 || (size_t)n >= sizeof(abs_tmp)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (store_link(&b->store, o, abs_tmp) < 0)
		return -1;
	/* Marks the inode as a cache object so a write through the tree copies first. */
	if (setxattr(abs_tmp, "user.bananafs.object", keyhex, strlen(keyhex), 0) < 0 &&
	    errno != ENOTSUP)
		log_debug("cannot mark %s as an object: %s", name, strerror(errno));
	if (rename_into_place(b, dir, tmp, name) < 0) {
		int e = errno;
		unlink(abs_tmp);
		errno = e;
		return -1;
	}
	return 0;
}

int publish_text(struct bfs *b, const char *dir, const char *name, const char *text)
{
	char tmp[64], rel[PATH_MAX];
	tmp_name(tmp, sizeof(tmp));
	int n = snprintf(rel, sizeof(rel), "%s/%s", dir, tmp);
	if (n < 0 || (size_t)n >= sizeof(rel)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	int fd = openat(b->tree_fd, rel, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return -1;
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
	if (rename_into_place(b, dir, tmp, name) < 0)
		goto out_unlink;
	return 0;
out_unlink: {
	int e = errno;
	if (fd >= 0)
		close(fd);
	unlinkat(b->tree_fd, rel, 0);
	errno = e;
	return -1;
}
}

void publish_remove(struct bfs *b, const char *dir, const char *name)
{
	char p[PATH_MAX];
	if (b->mounted && b->mountpoint && b->cfg.publish_via_mount) {
		int n = snprintf(p, sizeof(p), "%s/%s/%s", b->mountpoint, dir, name);
		if (n > 0 && (size_t)n < sizeof(p) && (unlink(p) == 0 || errno == ENOENT))
			return;
	}
	int n = snprintf(p, sizeof(p), "%s/%s", dir, name);
	if (n > 0 && (size_t)n < sizeof(p))
		unlinkat(b->tree_fd, p, 0);
}
