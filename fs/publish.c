/*
 * publish.c - see publish.h.  Invariants: a published name never shows a
 * half-written file (it is always the result of a rename), and a file
 * bananafs did not publish is never replaced or removed.
 *
 * The prompt's folder is opened beneath the tree (and beneath the mount
 * when publishing through it) once, and every step works on that folder
 * fd: a folder swapped for a symlink while the request ran cannot send
 * the result (or an unlink) anywhere outside the tree.
 *
 * Replacing an earlier output is an exchange, not a plain rename: the new
 * file and the old one swap names atomically, and only if what came out
 * is ours is it removed; otherwise (a user's file slipped in since the
 * check) the swap is undone.  So even a race never destroys a user's file.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>
#include "cache/beneath.h"
#include "cache/log.h"
#include "fs/creds.h"
#include "fs/publish.h"

static atomic_ulong pub_counter;

static void tmp_name(char *buf, size_t len)
{
	snprintf(buf, len, PUB_TMP_PREFIX "%ld.%lu", (long)getpid(), atomic_fetch_add(&pub_counter, 1));
}

static bool has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && !strcmp(s + n - m, suffix);
}

/*
 * NAME.error files written before outputs were marked: the daemon's own
 * file, starting with our words.  Nobody else can make a file the daemon
 * owns through the mount.
 */
static bool legacy_error_file(int dirfd, const char *name, const struct stat *st)
{
	if (!has_suffix(name, ".error") || st->st_uid != geteuid() || !S_ISREG(st->st_mode))
		return false;
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return false;
	char head[10];
	ssize_t r = read(fd, head, sizeof(head));
	close(fd);
	return r == (ssize_t)sizeof(head) && !memcmp(head, "bananafs: ", sizeof(head));
}

enum output_state output_state(int dirfd, const char *name)
{
	const struct writer *w = creds_suspend();	/* metadata of any file, as the daemon */
	enum output_state st = OUT_FOREIGN;
	struct stat sb;
	char path[PATH_MAX];
	if (fstatat(dirfd, name, &sb, AT_SYMLINK_NOFOLLOW) < 0) {
		st = errno == ENOENT ? OUT_FREE : OUT_FOREIGN;
		goto out;
	}
	if (!S_ISREG(sb.st_mode))
		goto out;
	if (snprintf(path, sizeof(path), "/proc/self/fd/%d/%s", dirfd, name) >= (int)sizeof(path))
		goto out;
	if (lgetxattr(path, OUTPUT_MARK, NULL, 0) >= 0 || legacy_error_file(dirfd, name, &sb))
		st = OUT_OURS;
out:
	creds_resume(w);
	return st;
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
	/* The mount point's own parents may be closed to the writer: open it as the daemon. */
	const struct writer *w = creds_suspend();
	int root = open(b->mountpoint, O_PATH | O_DIRECTORY | O_CLOEXEC);
	creds_resume(w);
	if (root < 0 || !dir[0])
		return root;
	int fd = open_beneath(root, dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	int e = errno;
	close(root);
	errno = e;
	return fd;
}

/* Renames in the folder: through the mount when it serves, else in the store. */
static int rename_in(struct bfs *b, int sfd, const char *dir, const char *from, const char *to,
		     unsigned flags)
{
	int mfd = mount_dir_fd(b, dir);
	if (mfd >= 0) {
		int rc = renameat2(mfd, from, mfd, to, flags);
		int e = errno;
		close(mfd);
		if (rc == 0 || e == EEXIST || e == EACCES || e == EPERM) {
			errno = e;
			return rc;
		}
		log_debug("publish through the mount failed (%s); renaming in the store", strerror(e));
	}
	if (renameat2(sfd, from, sfd, to, flags) < 0)
		return -1;
	if (b->dir_changed) {		/* the kernel may hold the old names for long */
		b->dir_changed(b, sfd, to);
		b->dir_changed(b, sfd, from);
	}
	return 0;
}

/* May w replace (or remove) name in a folder with attributes dst?  The sticky-folder rule. */
static bool may_replace(const struct stat *dst, const struct stat *fst, const struct writer *w)
{
	if (creds_is_daemon(w) || !creds_can_switch() || w->uid == 0)
		return true;
	return !(dst->st_mode & S_ISVTX) || fst->st_uid == w->uid || dst->st_uid == w->uid;
}

/* Moves the prepared tmp to name unless name holds a file we did not publish. */
static int place(struct bfs *b, int sfd, const char *dir, const char *tmp, const char *name)
{
	for (int tries = 0; tries < 3; tries++) {
		switch (output_state(sfd, name)) {
		case OUT_FOREIGN:
			errno = EEXIST;
			return -1;
		case OUT_FREE:
			if (rename_in(b, sfd, dir, tmp, name, RENAME_NOREPLACE) == 0)
				return 0;
			if (errno != EEXIST)
				return -1;
			continue;	/* something arrived meanwhile: look again */
		case OUT_OURS:
			if (rename_in(b, sfd, dir, tmp, name, RENAME_EXCHANGE) < 0)
				return -1;
			if (output_state(sfd, tmp) == OUT_OURS) {
				unlinkat(sfd, tmp, 0);
				return 0;
			}
			/* A user's file slipped in: give it its name back. */
			if (rename_in(b, sfd, dir, tmp, name, RENAME_EXCHANGE) < 0) {
				log_warn("%s: could not undo a swap; the user's file is at %s", name, tmp);
				return -1;
			}
			continue;
		}
	}
	errno = EEXIST;
	return -1;
}

/* Copies the object into the new file out: a reflink where possible, else bytes. */
static int copy_object(const char *src, int out)
{
	const struct writer *w = creds_suspend();	/* the object store is the daemon's */
	int in = open(src, O_RDONLY | O_CLOEXEC);
	int e = errno;
	creds_resume(w);
	if (in < 0) {
		errno = e;
		return -1;
	}
	int rc = 0;
	if (ioctl(out, FICLONE, in) == 0)
		goto out;
	for (;;) {
		ssize_t n = copy_file_range(in, NULL, out, NULL, 1 << 30, 0);
		if (n == 0)
			goto out;
		if (n > 0)
			continue;
		if (errno == EINTR)
			continue;
		if (errno != EXDEV && errno != ENOSYS && errno != EOPNOTSUPP && errno != EINVAL) {
			rc = -1;
			goto out;
		}
		break;
	}
	/* No copy_file_range here: plain reads and writes from where it stopped. */
	char buf[65536];
	ssize_t r;
	while ((r = read(in, buf, sizeof(buf))) > 0) {
		for (ssize_t off = 0; off < r;) {
			ssize_t wr = write(out, buf + off, (size_t)(r - off));
			if (wr < 0 && errno == EINTR)
				continue;
			if (wr < 0) {
				rc = -1;
				goto out;
			}
			off += wr;
		}
	}
	if (r < 0)
		rc = -1;
out:
	e = errno;
	close(in);
	errno = e;
	return rc;
}

static void mark(int fd, const char *value)
{
	if (fsetxattr(fd, OUTPUT_MARK, value, strlen(value), 0) < 0 && errno != ENOTSUP)
		log_debug("cannot mark an output: %s", strerror(errno));
}

/* Opens dir in the store with w's rights; on failure the thread is the daemon again. */
static int enter_dir(struct bfs *b, const char *dir, const struct writer *w)
{
	if (creds_enter(w) < 0)
		return -1;
	int sfd = store_dir_fd(b, dir);
	if (sfd < 0) {
		int e = errno;
		creds_leave();
		errno = e;
	}
	return sfd;
}

static int leave_dir(int sfd, int rc)
{
	int e = errno;
	close(sfd);
	creds_leave();
	errno = e;
	return rc;
}

int publish_check(struct bfs *b, const char *dir, const char *const *names, int n,
		  const struct writer *w, char *why, size_t len)
{
	int sfd = enter_dir(b, dir, w);
	if (sfd < 0) {
		snprintf(why, len, "the prompt's folder cannot be opened with your rights (%s)", strerror(errno));
		return -1;
	}
	/*
	 * The folder must take new files from the writer.  Asked, not tried:
	 * a trial file would change the folder's times, which tell a folder
	 * being filled by a copy tool (fs/jobs.c).  AT_EACCESS asks with this
	 * thread's fsuid and groups.
	 */
	if (faccessat(sfd, ".", W_OK | X_OK, AT_EACCESS) < 0) {
		snprintf(why, len, "you may not create files in the prompt's folder (%s), so the image "
			 "could not be placed; nothing was sent", strerror(errno));
		return leave_dir(sfd, -1);
	}
	struct stat dst, fst;
	if (fstat(sfd, &dst) < 0)
		memset(&dst, 0, sizeof(dst));
	for (int i = 0; i < n; i++) {
		enum output_state st = output_state(sfd, names[i]);
		if (st == OUT_FOREIGN) {
			snprintf(why, len, "%s is taken by a file bananafs did not make; it was kept and "
				 "nothing was sent. Rename or remove that file and save the prompt again, "
				 "or rename the prompt", names[i]);
			return leave_dir(sfd, -1);
		}
		if (st == OUT_OURS && fstatat(sfd, names[i], &fst, AT_SYMLINK_NOFOLLOW) == 0 &&
		    !may_replace(&dst, &fst, w)) {
			snprintf(why, len, "%s is an earlier image that belongs to uid %u, and this sticky "
				 "folder lets only its owner replace it; nothing was sent. Ask them to remove "
				 "it, or rename the prompt", names[i], (unsigned)fst.st_uid);
			return leave_dir(sfd, -1);
		}
	}
	return leave_dir(sfd, 0);
}

int publish_object(struct bfs *b, const char *dir, const char *name, const struct object_info *o,
		   const char *keyhex, const struct writer *w)
{
	char tmp[64], abs_tmp[PATH_MAX];
	int sfd = enter_dir(b, dir, w);
	if (sfd < 0)
		return -1;
	tmp_name(tmp, sizeof(tmp));
	if (creds_current() == NULL) {
		/* The daemon's own output: a hard link to the object, no copy. */
		snprintf(abs_tmp, sizeof(abs_tmp), "/proc/self/fd/%d/%s", sfd, tmp);
		if (store_link(&b->store, o, abs_tmp) < 0)
			return leave_dir(sfd, -1);
		/* Marks the inode as a cache object so a write through the tree copies first. */
		if (setxattr(abs_tmp, OUTPUT_MARK, keyhex, strlen(keyhex), 0) < 0 && errno != ENOTSUP)
			log_debug("cannot mark %s as an object: %s", name, strerror(errno));
	} else {
		int fd = openat(sfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
		if (fd < 0)
			return leave_dir(sfd, -1);
		if (copy_object(o->path, fd) < 0 || fsync(fd) < 0) {
			int e = errno;
			close(fd);
			unlinkat(sfd, tmp, 0);
			errno = e;
			return leave_dir(sfd, -1);
		}
		mark(fd, keyhex);
		close(fd);
	}
	if (place(b, sfd, dir, tmp, name) < 0) {
		int e = errno;
		unlinkat(sfd, tmp, 0);
		errno = e;
		return leave_dir(sfd, -1);
	}
	return leave_dir(sfd, 0);
}

int publish_text(struct bfs *b, const char *dir, const char *name, const char *text,
		 const struct writer *w)
{
	char tmp[64];
	int sfd = enter_dir(b, dir, w);
	if (sfd < 0)
		return -1;
	tmp_name(tmp, sizeof(tmp));
	int fd = openat(sfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return leave_dir(sfd, -1);
	size_t len = strlen(text), off = 0;
	while (off < len) {
		ssize_t wr = write(fd, text + off, len - off);
		if (wr < 0) {
			if (errno == EINTR)
				continue;
			goto out_unlink;
		}
		off += (size_t)wr;
	}
	if (fsync(fd) < 0)
		goto out_unlink;
	mark(fd, "error");
	close(fd);
	fd = -1;
	if (place(b, sfd, dir, tmp, name) < 0)
		goto out_unlink;
	return leave_dir(sfd, 0);
out_unlink: {
	int e = errno;
	if (fd >= 0)
		close(fd);
	unlinkat(sfd, tmp, 0);
	errno = e;
	return leave_dir(sfd, -1);
}
}

/* Equal contents of two open files (read from their starts); sizes already equal. */
static bool same_bytes(int a, int b)
{
	static _Thread_local char ba[65536], bb[65536];
	for (off_t off = 0;;) {
		ssize_t ra = pread(a, ba, sizeof(ba), off), rb = pread(b, bb, sizeof(bb), off);
		if (ra < 0 || ra != rb || memcmp(ba, bb, (size_t)ra) != 0)
			return false;
		if (ra == 0)
			return true;
		off += ra;
	}
}

bool publish_holds_object(struct bfs *b, const char *dir, const char *name, const char *object_path,
			  const struct writer *w)
{
	struct stat fs, os;
	bool same = false;
	int sfd = enter_dir(b, dir, w);
	if (sfd < 0)
		return false;
	int fd = openat(sfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	const struct writer *was = creds_suspend();	/* the object store is the daemon's */
	int ofd = open(object_path, O_RDONLY | O_CLOEXEC);
	creds_resume(was);
	if (fd >= 0 && ofd >= 0 && fstat(fd, &fs) == 0 && fstat(ofd, &os) == 0 && S_ISREG(fs.st_mode) &&
	    fs.st_size == os.st_size)
		same = same_bytes(fd, ofd);
	if (fd >= 0)
		close(fd);
	if (ofd >= 0)
		close(ofd);
	leave_dir(sfd, 0);
	return same;
}

int publish_yield(int dirfd, const char *name, const struct writer *caller)
{
	if (output_state(dirfd, name) != OUT_OURS || creds_enter(caller) < 0)
		return -1;
	int rc = unlinkat(dirfd, name, 0);
	creds_leave();
	return rc;
}

void publish_remove(struct bfs *b, const char *dir, const char *name, const struct writer *w)
{
	int sfd = enter_dir(b, dir, w);
	if (sfd < 0)
		return;
	if (output_state(sfd, name) == OUT_OURS) {
		int mfd = mount_dir_fd(b, dir);
		int rc = mfd >= 0 ? unlinkat(mfd, name, 0) : -1;
		if (mfd >= 0)
			close(mfd);
		if (rc < 0 && (mfd < 0 || errno != ENOENT) && unlinkat(sfd, name, 0) == 0 &&
		    b->dir_changed)
			b->dir_changed(b, sfd, name);
	}
	leave_dir(sfd, 0);
}
