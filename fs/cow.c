/*
 * cow.c - see cow.h.  The copy is written under a hidden temp name in the
 * same folder, fsynced and renamed over the name: a crash leaves either
 * the object link or the full copy, never a half file.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>
#include "fs/cow.h"
#include "fs/publish.h"

static int is_object(int dirfd, const char *name)
{
	char abs[PATH_MAX];
	int n = snprintf(abs, sizeof(abs), "/proc/self/fd/%d/%s", dirfd, name);
	if (n < 0 || (size_t)n >= sizeof(abs))
		return -ENAMETOOLONG;
	return lgetxattr(abs, COW_OBJECT_XATTR, NULL, 0) >= 0;
}

static int copy_fd(int in, int out)
{
	char buf[65536];
	ssize_t r;
	while ((r = read(in, buf, sizeof(buf))) > 0) {
		for (ssize_t off = 0; off < r;) {
			ssize_t w = write(out, buf + off, (size_t)(r - off));
			if (w < 0)
				return errno;
			off += w;
		}
	}
	return r < 0 ? errno : 0;
}

int cow_if_object(int dirfd, const char *name, int *copied)
{
	struct stat st;
	char tmp[64];
	if (copied)
		*copied = 0;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
		return 0;
	int obj = is_object(dirfd, name);
	if (obj <= 0)
		return obj < 0 ? -obj : 0;
	if (st.st_nlink < 2) {
		/*
		 * The writer's own copy (fs/publish.h) or an object gc'ed since:
		 * no cache to protect, but once changed it is the user's file,
		 * which bananafs must never replace.  Unmark it.
		 */
		char abs[PATH_MAX];
		snprintf(abs, sizeof(abs), "/proc/self/fd/%d/%s", dirfd, name);
		if (lremovexattr(abs, COW_OBJECT_XATTR) < 0 && errno != ENODATA)
			return errno;
		return 0;
	}
	snprintf(tmp, sizeof(tmp), PUB_TMP_PREFIX "cow.%ld", (long)gettid());
	int in = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (in < 0)
		return errno;
	int out = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, st.st_mode & 07777);
	if (out < 0) {
		int e = errno;
		close(in);
		return e;
	}
	int rc = copy_fd(in, out);
	if (!rc && fsync(out) < 0)
		rc = errno;
	if (!rc && fchown(out, st.st_uid, st.st_gid) < 0 && errno != EPERM)
		rc = errno;
	close(in);
	close(out);
	if (!rc && renameat(dirfd, tmp, dirfd, name) < 0)
		rc = errno;
	if (rc)
		unlinkat(dirfd, tmp, 0);
	else if (copied)
		*copied = 1;
	return rc;
}
