/*
 * creds.c - see creds.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <grp.h>
#include <limits.h>
#include <string.h>
#include <stdlib.h>
#include <sys/fsuid.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "cache/beneath.h"
#include "cache/log.h"
#include "fs/creds.h"

static uid_t own_uid;
static gid_t own_gid;
static int own_ngroups;
static gid_t own_groups[256];
static _Thread_local const struct writer *acting;	/* this thread's writer, NULL for the daemon */

void creds_init(void)
{
	own_uid = geteuid();
	own_gid = getegid();
	int n = getgroups(sizeof(own_groups) / sizeof(own_groups[0]), own_groups);
	own_ngroups = n < 0 ? 0 : n;
}

bool creds_can_switch(void)
{
	return own_uid == 0;
}

bool creds_writer_init(struct writer *w, uid_t uid, gid_t gid)
{
	w->set = true;
	w->uid = uid;
	w->gid = gid;
	w->ngroups = 0;
	return uid != own_uid;
}

bool creds_is_daemon(const struct writer *w)
{
	return !w || !w->set || w->uid == own_uid;
}

bool creds_may_act(const struct writer *w)
{
	return creds_can_switch() || creds_is_daemon(w) || w->uid == 0;
}

/* The raw calls: per thread (see creds.h). */
static int set_groups(int n, const gid_t *g)
{
	return (int)syscall(SYS_setgroups, (size_t)n, g);
}

static void back_to_daemon(void)
{
	setfsuid(own_uid);
	setfsgid(own_gid);
	if (set_groups(own_ngroups, own_groups) < 0)
		log_warn("cannot restore the daemon's groups");
	acting = NULL;
}

int creds_enter(const struct writer *w)
{
	if (!creds_can_switch() || creds_is_daemon(w))
		return 0;
	if (set_groups(w->ngroups, w->groups) < 0)
		goto fail;
	/* setfsuid/setfsgid report the old value: ask again to learn whether it took. */
	setfsgid(w->gid);
	if ((gid_t)setfsgid(w->gid) != w->gid)
		goto fail;
	setfsuid(w->uid);
	if ((uid_t)setfsuid(w->uid) != w->uid)
		goto fail;
	acting = w;
	return 0;
fail: {
	int e = errno ? errno : EPERM;
	back_to_daemon();
	log_warnx("cannot take the rights of uid %u", (unsigned)w->uid);
	errno = e;
	return -1;
}
}

void creds_leave(void)
{
	if (acting)
		back_to_daemon();
}

/* Would the kernel give w the access bit (4 read, 1 search) on a file with st's modes? */
static bool modes_allow(const struct stat *st, const struct writer *w, unsigned bit)
{
	if (w->uid == st->st_uid)
		return st->st_mode & (bit << 6);
	bool in_group = w->gid == st->st_gid;
	for (int i = 0; i < w->ngroups; i++)
		in_group |= w->groups[i] == st->st_gid;
	return st->st_mode & (in_group ? bit << 3 : bit);
}

/*
 * From the modes alone, for a daemon that cannot take w's rights: search
 * on every folder on the way, read on the file, and no symlink anywhere
 * (where it leads is not judged).
 */
static bool modes_may_read(int tree_fd, const char *rel, const struct writer *w)
{
	char prefix[PATH_MAX];
	struct stat st;
	size_t len = strlen(rel);
	if (len >= sizeof(prefix))
		return false;
	for (size_t i = 0; i <= len; i++) {
		if (rel[i] != '/' && rel[i] != '\0')
			continue;
		if (i == 0)
			continue;
		memcpy(prefix, rel, i);
		prefix[i] = '\0';
		if (fstatat(tree_fd, prefix, &st, AT_SYMLINK_NOFOLLOW) < 0 || S_ISLNK(st.st_mode))
			return false;
		bool last = rel[i] == '\0';
		if (w->uid != 0 && !modes_allow(&st, w, last ? 4 : 1))
			return false;
		if (!last && !S_ISDIR(st.st_mode))
			return false;
	}
	return true;
}

bool creds_may_read(int tree_fd, const char *rel, const struct writer *w)
{
	if (creds_is_daemon(w))
		return true;
	if (!creds_can_switch())
		return modes_may_read(tree_fd, rel, w);
	const struct writer *was = creds_suspend();
	bool ok = false;
	if (creds_enter(w) == 0) {
		int fd = open_beneath(tree_fd, rel, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
		ok = fd >= 0;
		if (fd >= 0)
			close(fd);
		creds_leave();
	}
	creds_resume(was);
	return ok;
}

const struct writer *creds_current(void)
{
	return acting;
}

const struct writer *creds_suspend(void)
{
	const struct writer *w = acting;
	creds_leave();
	return w;
}

void creds_resume(const struct writer *w)
{
	if (w && creds_enter(w) < 0)
		log_warnx("lost the writer's rights in a publish step");
}
