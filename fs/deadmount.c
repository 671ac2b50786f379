/*
 * deadmount.c - mounting again over a dead bananafs mount point.
 *
 * After kill -9 the kernel keeps the FUSE mount; stat() of the mount point
 * fails with ENOTCONN ("Transport endpoint is not connected") until someone
 * unmounts it.  A systemd restart or a user typing the same command again
 * should just work, so bananafs detaches such a mount first, but only one
 * that /proc/self/mounts shows as ours (type fuse.bananafs), and says so.
 */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <mntent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fs/deadmount.h"

/* The absolute form of path as /proc/self/mounts shows it: realpath of its folder + its name. */
static int mount_path(const char *path, char *out, size_t outlen)
{
	char a[PATH_MAX], b[PATH_MAX], dir[PATH_MAX];

	if (snprintf(a, sizeof(a), "%s", path) >= (int)sizeof(a) ||
	    snprintf(b, sizeof(b), "%s", path) >= (int)sizeof(b))
		return -1;
	if (!realpath(dirname(a), dir))
		return -1;
	const char *name = basename(b);
	if (strcmp(dir, "/") == 0)
		return snprintf(out, outlen, "/%s", name) < (int)outlen ? 0 : -1;
	return snprintf(out, outlen, "%s/%s", dir, name) < (int)outlen ? 0 : -1;
}

/* The type of the last mount at mp ("" when none). */
static void mount_type(const char *mp, char *type, size_t len)
{
	FILE *f = setmntent("/proc/self/mounts", "r");
	struct mntent *e;

	type[0] = '\0';
	if (!f)
		return;
	while ((e = getmntent(f)) != NULL)
		if (strcmp(e->mnt_dir, mp) == 0)
			snprintf(type, len, "%s", e->mnt_type);
	endmntent(f);
}

static int detach(const char *mp)
{
	if (geteuid() == 0)
		return umount2(mp, MNT_DETACH);
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		execlp("fusermount3", "fusermount3", "-uz", mp, (char *)NULL);
		_exit(127);
	}
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

int deadmount_recover(const char *path)
{
	struct stat st;
	char mp[PATH_MAX], type[64];

	if (stat(path, &st) == 0 || errno != ENOTCONN)
		return 0;	/* alive, or a problem the caller reports */
	if (mount_path(path, mp, sizeof(mp)) < 0) {
		fprintf(stderr, "bananafs: mount point %s: %s\n", path, strerror(ENOTCONN));
		return -1;
	}
	mount_type(mp, type, sizeof(type));
	if (strcmp(type, "fuse.bananafs") != 0) {
		fprintf(stderr, "bananafs: mount point %s: %s: a dead %s mount that is not bananafs's; "
			"unmount it first (fusermount3 -uz %s)\n", mp, strerror(ENOTCONN),
			type[0] ? type : "FUSE", mp);
		return -1;
	}
	fprintf(stderr, "bananafs: %s is a dead bananafs mount (%s): detaching it lazily first\n",
		mp, strerror(ENOTCONN));
	if (detach(mp) < 0 || (stat(path, &st) < 0 && errno == ENOTCONN)) {
		fprintf(stderr, "bananafs: could not detach the dead mount at %s; try: fusermount3 -uz %s\n",
			mp, mp);
		return -1;
	}
	return 0;
}
