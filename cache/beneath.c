/*
 * beneath.c - see beneath.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "cache/beneath.h"

/* Lexical normalisation: drops "." and empty parts, resolves "..", refuses escapes. */
static int normalise(const char *path, char *out, size_t len)
{
	char buf[PATH_MAX];
	size_t n = 0;
	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf) || path[0] == '/')
		return -1;
	out[0] = '\0';
	for (char *save = NULL, *part = strtok_r(buf, "/", &save); part;
	     part = strtok_r(NULL, "/", &save)) {
		if (!strcmp(part, "."))
			continue;
		if (!strcmp(part, "..")) {
			if (n == 0)
				return -1;	/* would leave the folder */
			char *slash = strrchr(out, '/');
			n = slash ? (size_t)(slash - out) : 0;
			out[n] = '\0';
			continue;
		}
		int w = snprintf(out + n, len - n, "%s%s", n ? "/" : "", part);
		if (w < 0 || (size_t)w >= len - n)
			return -1;
		n += (size_t)w;
	}
	return n ? 0 : -1;
}

static int walk(int dirfd, const char *path, int flags)
{
	char norm[PATH_MAX];
	if (normalise(path, norm, sizeof(norm)) < 0) {
		errno = EXDEV;
		return -1;
	}
	int cur = dirfd;
	char *p = norm;
	for (;;) {
		char *slash = strchr(p, '/');
		if (!slash) {
			int fd = openat(cur, p, flags | O_NOFOLLOW);
			int e = errno;
			if (cur != dirfd)
				close(cur);
			errno = e;
			return fd;
		}
		*slash = '\0';
		int next = openat(cur, p, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		int e = errno;
		if (cur != dirfd)
			close(cur);
		if (next < 0) {
			errno = e == ENOTDIR ? ELOOP : e;
			return -1;
		}
		cur = next;
		p = slash + 1;
	}
}

int open_beneath(int dirfd, const char *path, int flags)
{
	struct open_how how = {
		.flags = (unsigned long long)(flags | O_NOFOLLOW),
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
	};
	int fd = (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
	if (fd < 0 && errno == ENOSYS)
		return walk(dirfd, path, flags);
	return fd;
}
