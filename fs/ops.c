/*
 * ops.c - the FUSE operations on libfuse's high-level (path) API: a thin
 * adapter.  Fixed parts of the tree refuse changes as fs/fixed.h says;
 * below a size folder every operation is passed through to STORE/tree with
 * the *at() calls on one folder fd.  Copy-on-write (fs/cow.h), the prompt
 * trigger (fs/trigger.h), the xattrs (fs/xattr.h) and creating as the
 * caller (fs/caller.h) live in their own files, shared with any frontend.
 *
 * Errno convention: high-level ops return -errno; the shared helpers
 * return a positive errno, negated here.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>
#include "cache/beneath.h"
#include "cache/log.h"
#include "fs/bfs.h"
#include "fs/caller.h"
#include "fs/cow.h"
#include "fs/creds.h"
#include "fs/ctlfiles.h"
#include "fs/fixed.h"
#include "fs/ops.h"
#include "fs/publish.h"
#include "fs/tree.h"
#include "fs/trigger.h"
#include "fs/xattr.h"

static struct bfs *ctx_bfs(void)
{
	return fuse_get_context()->private_data;
}

/* ------------------------------------------------------------------ */
/* Open files and the "written" trigger                                */

enum fh_kind { FH_FILE = 1, FH_CTL };

struct fh {
	enum fh_kind kind;
	int fd;				/* FH_FILE */
	dev_t dev;
	ino_t ino;
	char *buf;			/* FH_CTL snapshot */
	size_t len;
	bool control;			/* FH_CTL: .bananafs/control, write-only */
};

/* ------------------------------------------------------------------ */
/* Helpers                                                             */

/* The errno for changing a fixed node. */
static int fixed_err(const struct node *n)
{
	return -fixed_change_errno(n->kind);
}

/* For a name that does not exist in the fixed tree: the parent decides. */
static int create_err(const char *path)
{
	char parent[PATH_MAX];
	snprintf(parent, sizeof(parent), "%s", path);
	char *slash = strrchr(parent, '/');
	if (slash)
		*(slash == parent ? slash + 1 : slash) = '\0';
	struct node p;
	tree_classify(parent, &p);
	return -fixed_create_errno(p.kind);
}

/*
 * A backing name as the *at() calls take it: the parent folder opened
 * beneath the tree and the last component.  The kernel resolved the path
 * through the mount, but a folder on it may have been swapped for a
 * symlink since (by another user, with allow_other): opening the parent
 * with RESOLVE_BENEATH means no operation ever lands outside the tree.
 */
struct at {
	int fd;				/* the parent folder; owned */
	const char *name;		/* last component, points into buf */
	char buf[PATH_MAX];
	char proc[64];			/* "/proc/self/fd/N/" prefix for the path-only xattr calls */
};

/* 0, or -errno. */
static int at_get(struct bfs *b, const char *rel, struct at *a)
{
	if (snprintf(a->buf, sizeof(a->buf), "%s", rel) >= (int)sizeof(a->buf))
		return -ENAMETOOLONG;
	char *slash = strrchr(a->buf, '/');
	if (!slash) {
		a->name = a->buf;
		a->fd = fcntl(b->tree_fd, F_DUPFD_CLOEXEC, 0);
	} else {
		*slash = '\0';
		a->name = slash + 1;
		a->fd = open_beneath(b->tree_fd, a->buf, O_PATH | O_DIRECTORY | O_CLOEXEC);
	}
	if (a->fd < 0)
		return errno == ELOOP || errno == EXDEV ? -ENOENT : -errno;
	snprintf(a->proc, sizeof(a->proc), "/proc/self/fd/%d/", a->fd);
	return 0;
}

static void at_put(struct at *a)
{
	if (a->fd >= 0)
		close(a->fd);
	a->fd = -1;
}

/* "/proc/self/fd/N/name" for l*xattr(); -ENAMETOOLONG when it does not fit. */
static int at_path(const struct at *a, char *out, size_t len)
{
	int n = snprintf(out, len, "%s%s", a->proc, a->name);
	return (n < 0 || (size_t)n >= len) ? -ENAMETOOLONG : 0;
}

/* Who made this request: the rights a prompt written by it is run with (fs/creds.h). */
static void caller_writer(struct writer *w)
{
	struct fuse_context *fc = fuse_get_context();
	if (creds_writer_init(w, fc->uid, fc->gid)) {
		int n = fuse_getgroups(WRITER_MAX_GROUPS, w->groups);
		w->ngroups = n < 0 ? 0 : n > WRITER_MAX_GROUPS ? WRITER_MAX_GROUPS : n;
	}
}

/* Hands a new name to the caller (fs/caller.h). */
static void give_to_caller(const struct at *a)
{
	struct fuse_context *fc = fuse_get_context();
	caller_take(a->fd, a->name, fc->uid, fc->gid);
}

/* Copy-on-write (fs/cow.h): 0 or -errno. */
static int cow(const struct at *a)
{
	return -cow_if_object(a->fd, a->name, NULL);
}

static void fill_fixed_dir(struct bfs *b, struct stat *st, mode_t mode)
{
	if (fstat(b->tree_fd, st) < 0)
		memset(st, 0, sizeof(*st));
	st->st_mode = S_IFDIR | mode;
	st->st_nlink = 2;
	st->st_size = 4096;
}

/* ------------------------------------------------------------------ */
/* Operations                                                          */

static void *bfs_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	(void)conn;
	struct bfs *b = ctx_bfs();
	cfg->use_ino = 0;
	cfg->kernel_cache = 1;		/* keep page cache between opens: all changes come through us */
	cfg->entry_timeout = 1.0;
	cfg->attr_timeout = 1.0;
	cfg->negative_timeout = 0;	/* NAME.png must show up at once */
	cfg->nullpath_ok = 0;		/* RELEASE needs the path for the trigger */
	/*
	 * The kernel has already applied the caller's umask to every mode it
	 * sends; ours would apply a second time (umask 002 gave 0644, not
	 * 0664).  Everything the daemon creates for itself names its mode.
	 */
	umask(0);
	return b;
}

static int bfs_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	struct bfs *b = ctx_bfs();
	struct node n;
	tree_classify(path, &n);
	if (fi && fi->fh) {
		struct fh *h = (struct fh *)(uintptr_t)fi->fh;
		if (h->kind == FH_FILE)
			return fstat(h->fd, st) < 0 ? -errno : 0;
	}
	switch (n.kind) {
	case NODE_ROOT:
	case NODE_MODEL:
		fill_fixed_dir(b, st, 0555);
		return 0;
	case NODE_CTL_DIR:
		fill_fixed_dir(b, st, 0555);
		return 0;
	case NODE_ALIAS:
		fill_fixed_dir(b, st, 0777);
		st->st_mode = S_IFLNK | 0777;
		st->st_nlink = 1;
		st->st_size = (off_t)strlen(n.model->id);
		return 0;
	case NODE_CTL_FILE: {
		fill_fixed_dir(b, st, 0444);
		st->st_mode = S_IFREG | (strcmp(n.ctl, "control") ? 0444 : 0222);
		st->st_nlink = 1;
		if (ctl_is_live(n.ctl)) {
			st->st_size = 0;	/* made at open (doctor asks the server), or write-only */
			return 0;
		}
		if (!strcmp(n.ctl, "ledger.jsonl")) {
			/* The ledger is a real file and can be large: stat it, don't read it. */
			struct stat lst;
			char lp[PATH_MAX];
			snprintf(lp, sizeof(lp), "%s/ledger.jsonl", b->store.dir);
			st->st_size = stat(lp, &lst) == 0 ? lst.st_size : 0;
			return 0;
		}
		size_t len = 0;
		struct writer w;
		caller_writer(&w);
		char *text = ctl_render(b, n.ctl, &len, &w);
		if (!text)
			return -errno;
		free(text);
		st->st_size = (off_t)len;
		return 0;
	}
	case NODE_SIZE:
	case NODE_USER: {
		struct at a;
		int rc = at_get(b, n.rel, &a);
		if (rc)
			return rc;
		rc = fstatat(a.fd, a.name, st, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
		at_put(&a);
		return rc;
	}
	default:
		return -ENOENT;
	}
}

static int bfs_readlink(const char *path, char *buf, size_t size)
{
	struct bfs *b = ctx_bfs();
	struct node n;
	tree_classify(path, &n);
	if (size == 0)
		return -EINVAL;
	if (n.kind == NODE_ALIAS) {
		snprintf(buf, size, "%s", n.model->id);
		return 0;
	}
	if (n.kind != NODE_USER)
		return n.kind == NODE_NONE ? -ENOENT : -EINVAL;
	struct at a;
	int rc = at_get(b, n.rel, &a);
	if (rc)
		return rc;
	ssize_t r = readlinkat(a.fd, a.name, buf, size - 1);
	int e = errno;
	at_put(&a);
	if (r < 0)
		return -e;
	buf[r] = '\0';
	return 0;
}

static int bfs_mknod(const char *path, mode_t mode, dev_t rdev)
{
	struct bfs *b = ctx_bfs();
	struct node n;
	tree_classify(path, &n);
	if (n.kind != NODE_USER)
		return n.kind == NODE_NONE ? create_err(path) : -FIXED_EXISTS_ERRNO;
	struct at a;
	int rc = at_get(b, n.rel, &a);
	if (rc)
		return rc;
	rc = mknodat(a.fd, a.name, mode, rdev) < 0 ? -errno : 0;
	if (!rc)
		give_to_caller(&a);
	at_put(&a);
	return rc;
}

static int bfs_mkdir(const char *path, mode_t mode)
{
	struct bfs *b = ctx_bfs();
	struct node n;
	tree_classify(path, &n);
	if (n.kind != NODE_USER)
		return n.kind == NODE_NONE ? create_err(path) : -FIXED_EXISTS_ERRNO;
	struct at a;
	int rc = at_get(b, n.rel, &a);
	if (rc)
		return rc;
	rc = mkdirat(a.fd, a.name, mode) < 0 ? -errno : 0;
	if (!rc)
		give_to_caller(&a);
	at_put(&a);
	return rc;
}

static int bfs_unlink(const char *path)
{
	struct bfs *b = ctx_bfs();
	struct node n;
	tree_classify(path, &n);
	if (n.kind != NODE_USER)
		return n.kind == NODE_NONE ? -ENOENT : fixed_err(&n);
	struct at a;
	int rc = at_get(b, n.rel, &a);
	if (rc)
		return rc;
	rc = unlinkat(a.fd, a.name, 0) < 0 ? -errno : 0;
	at_put(&a);
	if (rc)
		return rc;
	if (n.kind == NODE_USER)
		trigger_gone(n.rel);
	return 0;
}

static int bfs_rmdir(const char *path)
{
	struct bfs *b = ctx_bfs();
	struct node n;
	tree_classify(path, &n);
	if (n.kind != NODE_USER)
		return n.kind == NODE_NONE ? -ENOENT : fixed_err(&n);
	struct at a;
	int rc = at_get(b, n.rel, &a);
	if (rc)
		return rc;
	rc = unlinkat(a.fd, a.name, AT_REMOVEDIR) < 0 ? -errno : 0;
	at_put(&a);
	return rc;
}

static int bfs_symlink(const char *target, const char *path)
{
	struct bfs *b = ctx_bfs();
	struct node n;
	tree_classify(path, &n);
	if (n.kind != NODE_USER)
		return n.kind == NODE_NONE ? create_err(path) : -FIXED_EXISTS_ERRNO;
	struct at a;
	int rc = at_get(b, n.rel, &a);
	if (rc)
		return rc;
	rc = symlinkat(target, a.fd, a.name) < 0 ? -errno : 0;
	if (!rc)
		give_to_caller(&a);
	at_put(&a);
	return rc;
}

static int bfs_rename(const char *from, const char *to, unsigned int flags)
{
	struct bfs *b = ctx_bfs();
	struct node nf, nt;
	tree_classify(from, &nf);
	tree_classify(to, &nt);
	if (nf.kind != NODE_USER)
		return nf.kind == NODE_NONE ? -ENOENT : fixed_err(&nf);
	if (nt.kind != NODE_USER)
		return nt.kind == NODE_NONE ? create_err(to) : fixed_err(&nt);
	struct at af, at;
	int rc = at_get(b, nf.rel, &af);
	if (rc)
		return rc;
	rc = at_get(b, nt.rel, &at);
	if (rc) {
		at_put(&af);
		return rc;
	}
	rc = renameat2(af.fd, af.name, at.fd, at.name, flags) < 0 ? -errno : 0;
	at_put(&af);
	at_put(&at);
	if (rc)
		return rc;
	bool is_dir = false;
	struct stat st;
	if (!(flags & RENAME_EXCHANGE) && at_get(b, nt.rel, &at) == 0) {
		is_dir = fstatat(at.fd, at.name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
		at_put(&at);
	}
	struct writer w;
	caller_writer(&w);
	trigger_renamed(b, nf.rel, nt.rel, is_dir, flags & RENAME_EXCHANGE, &w);
	return 0;
}

static int bfs_link(const char *from, const char *to)
{
	struct bfs *b = ctx_bfs();
	struct node nf, nt;
	tree_classify(from, &nf);
	tree_classify(to, &nt);
	if (nf.kind != NODE_USER)
		return fixed_err(&nf);
	if (nt.kind != NODE_USER)
		return nt.kind == NODE_NONE ? create_err(to) : -FIXED_EXISTS_ERRNO;
	struct at af, at;
	int rc = at_get(b, nf.rel, &af);
	if (rc)
		return rc;
	rc = at_get(b, nt.rel, &at);
	if (!rc) {
		rc = linkat(af.fd, af.name, at.fd, at.name, 0) < 0 ? -errno : 0;
		at_put(&at);
	}
	at_put(&af);
	return rc;
}

static int bfs_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	struct bfs *b = ctx_bfs();
	if (fi && fi->fh && ((struct fh *)(uintptr_t)fi->fh)->kind == FH_FILE)
		return fchmod(((struct fh *)(uintptr_t)fi->fh)->fd, mode) < 0 ? -errno : 0;
	struct node n;
	tree_classify(path, &n);
	/* Size folders may change owner and mode (to share them); the rest is fixed. */
	if (n.kind != NODE_USER && n.kind != NODE_SIZE)
		return n.kind == NODE_NONE ? -ENOENT : fixed_err(&n);
	struct at a;
	int rc = at_get(b, n.rel, &a);
	if (rc)
		return rc;
	if (n.kind == NODE_USER)
		rc = cow(&a);	/* metadata changes must not reach the cache either */
	/* fchmodat cannot act on a symlink itself; Linux symlinks have no mode anyway. */
	struct stat st;
	if (!rc && fstatat(a.fd, a.name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
		rc = -EOPNOTSUPP;
	if (!rc && fchmodat(a.fd, a.name, mode, 0) < 0)
		rc = -errno;
	at_put(&a);
	return rc;
}

static int bfs_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
	struct bfs *b = ctx_bfs();
	if (fi && fi->fh && ((struct fh *)(uintptr_t)fi->fh)->kind == FH_FILE)
		return fchown(((struct fh *)(uintptr_t)fi->fh)->fd, uid, gid) < 0 ? -errno : 0;
	struct node n;
	tree_classify(path, &n);
	/* Size folders may change owner and mode (to share them); the rest is fixed. */
	if (n.kind != NODE_USER && n.kind != NODE_SIZE)
		return n.kind == NODE_NONE ? -ENOENT : fixed_err(&n);
	struct at a;
	int rc = at_get(b, n.rel, &a);
	if (rc)
		return rc;
	if (n.kind == NODE_USER)
		rc = cow(&a);	/* metadata changes must not reach the cache either */
	if (!rc && fchownat(a.fd, a.name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
		rc = -errno;
	at_put(&a);
	return rc;
}

static int bfs_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	struct bfs *b = ctx_bfs();
	if (fi && fi->fh && ((struct fh *)(uintptr_t)fi->fh)->kind == FH_FILE) {
		struct fh *h = (struct fh *)(uintptr_t)fi->fh;
		if (ftruncate(h->fd, size) < 0)
			return -errno;
		trigger_dirty(h->dev, h->ino);
		return 0;
	}
	struct node n;
	tree_classify(path, &n);
	if (n.kind == NODE_CTL_FILE && !strcmp(n.ctl, "control"))
		return 0;	/* "echo run X > control" truncates first; there is nothing to cut */
	if (n.kind != NODE_USER)
		return n.kind == NODE_NONE ? -ENOENT : fixed_err(&n);
	struct at a;
	int rc = at_get(b, n.rel, &a);
	if (rc)
		return rc;
	rc = cow(&a);
	int fd = rc ? -1 : openat(a.fd, a.name, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
	if (!rc && fd < 0)
		rc = -errno;
	if (fd >= 0) {
		rc = ftruncate(fd, size) < 0 ? -errno : 0;
		close(fd);
	}
	at_put(&a);
	return rc;
}

/* Wraps an open backing fd in a handle and counts it for the RELEASE trigger. */
static int open_common(int fd, struct fuse_file_info *fi, int dirty)
{
	struct stat st;
	struct fh *h = calloc(1, sizeof(*h));
	if (!h || fstat(fd, &st) < 0) {
		int e = h ? errno : ENOMEM;
		free(h);
		close(fd);
		return -e;
	}
	h->kind = FH_FILE;
	h->fd = fd;
	h->dev = st.st_dev;
	h->ino = st.st_ino;
	fi->fh = (uintptr_t)h;
	struct writer w;
	bool writing = (fi->flags & O_ACCMODE) != O_RDONLY || dirty;
	if (writing)
		caller_writer(&w);
	trigger_open(h->dev, h->ino, dirty, writing ? &w : NULL);
	return 0;
}

static int bfs_open(const char *path, struct fuse_file_info *fi)
{
	struct bfs *b = ctx_bfs();
	struct node n;
	tree_classify(path, &n);
	if (n.kind == NODE_CTL_FILE) {
		bool control = !strcmp(n.ctl, "control");
		if (control ? (fi->flags & O_ACCMODE) != O_WRONLY
			    : ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)))
			return control ? -EACCES : -EROFS;
		struct fh *h = calloc(1, sizeof(*h));
		if (!h)
			return -ENOMEM;
		h->kind = FH_CTL;
		if (control) {
			h->control = true;
			fi->fh = (uintptr_t)h;
			fi->direct_io = 1;
			return 0;
		}
		struct writer w;
		caller_writer(&w);
		h->buf = ctl_render(b, n.ctl, &h->len, &w);
		if (!h->buf) {
			int e = errno;
			free(h);
			return -e;
		}
		fi->fh = (uintptr_t)h;
		fi->direct_io = 1;	/* the size changes between snapshots */
		return 0;
	}
	if (n.kind != NODE_USER)
		return n.kind == NODE_NONE ? -ENOENT : -EISDIR;
	int writing = (fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC);
	struct at a;
	int rc = at_get(b, n.rel, &a);
	if (rc)
		return rc;
	if (writing)
		rc = cow(&a);
	/* The kernel follows symlinks itself: one here was swapped in since. */
	int fd = rc ? -1 : openat(a.fd, a.name, (fi->flags & ~O_CREAT) | O_CLOEXEC | O_NOFOLLOW);
	if (!rc && fd < 0)
		rc = -errno;
	at_put(&a);
	return rc ? rc : open_common(fd, fi, (fi->flags & O_TRUNC) != 0);
}

static int bfs_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	struct bfs *b = ctx_bfs();
	struct node n;
	tree_classify(path, &n);
	if (n.kind != NODE_USER)
		return n.kind == NODE_NONE ? create_err(path) : fixed_err(&n);
	struct at a;
	int rc = at_get(b, n.rel, &a);
	if (rc)
		return rc;
	int fd = openat(a.fd, a.name, fi->flags | O_CREAT | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0 && errno == EEXIST && (fi->flags & O_EXCL)) {
		/* cp creates with O_EXCL: a file at the name of our own output takes its place. */
		struct writer w;
		caller_writer(&w);
		if (publish_yield(a.fd, a.name, &w) == 0)
			fd = openat(a.fd, a.name, fi->flags | O_CREAT | O_CLOEXEC | O_NOFOLLOW, mode);
		else
			errno = EEXIST;
	}
	if (fd < 0)
		rc = -errno;
	else
		give_to_caller(&a);
	at_put(&a);
	return rc ? rc : open_common(fd, fi, 1);
}

static int bfs_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
	(void)path;
	struct fh *h = (struct fh *)(uintptr_t)fi->fh;
	if (h->kind == FH_CTL) {
		if ((size_t)off >= h->len)
			return 0;
		size_t n = h->len - (size_t)off < size ? h->len - (size_t)off : size;
		memcpy(buf, h->buf + off, n);
		return (int)n;
	}
	ssize_t r = pread(h->fd, buf, size, off);
	return r < 0 ? -errno : (int)r;
}

static int bfs_write(const char *path, const char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
	(void)path;
	struct fh *h = (struct fh *)(uintptr_t)fi->fh;
	if (h->kind == FH_CTL && h->control) {
		struct writer w;
		caller_writer(&w);
		return ctl_command(ctx_bfs(), buf, size, &w);
	}
	if (h->kind != FH_FILE)
		return -EROFS;
	ssize_t r = pwrite(h->fd, buf, size, off);
	if (r < 0)
		return -errno;
	trigger_dirty(h->dev, h->ino);
	return (int)r;
}

static int bfs_statfs(const char *path, struct statvfs *st)
{
	(void)path;
	struct bfs *b = ctx_bfs();
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s", b->store.tree_dir);
	return statvfs(p, st) < 0 ? -errno : 0;
}

static int bfs_release(const char *path, struct fuse_file_info *fi)
{
	struct bfs *b = ctx_bfs();
	struct fh *h = (struct fh *)(uintptr_t)fi->fh;
	if (!h)
		return 0;
	if (h->kind == FH_CTL) {
		free(h->buf);
		free(h);
		return 0;
	}
	close(h->fd);
	struct writer w;
	bool fire = trigger_close(h->dev, h->ino, &w);
	free(h);
	if (fire && path) {
		struct node n;
		tree_classify(path, &n);
		if (n.kind == NODE_USER)
			trigger_written(b, n.rel, &w);
	}
	return 0;
}

/*
 * FLUSH comes with every close(2), synchronously; RELEASE comes later and
 * asynchronously.  A changed prompt is journaled and marked queued here, so
 * that once close() has returned the job survives kill -9 (DESIGN.md 7) and
 * a script reading its status never sees the previous outcome; the job
 * itself starts on RELEASE (or at the next mount).
 */
static int bfs_flush(const char *path, struct fuse_file_info *fi)
{
	struct fh *h = (struct fh *)(uintptr_t)fi->fh;
	if (!h || h->kind != FH_FILE || !path)
		return 0;
	struct node n;
	tree_classify(path, &n);
	if (n.kind == NODE_USER && trigger_is_dirty(h->dev, h->ino)) {
		struct writer w;
		caller_writer(&w);
		trigger_flush(ctx_bfs(), n.rel, h->dev, h->ino, &w);
	}
	return 0;
}

static int bfs_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	(void)path;
	struct fh *h = (struct fh *)(uintptr_t)fi->fh;
	if (!h || h->kind != FH_FILE)
		return 0;
	return (datasync ? fdatasync(h->fd) : fsync(h->fd)) < 0 ? -errno : 0;
}

/* ------------------------------------------------------------------ */
/* Extended attributes                                                 */

/* setxattr, or removexattr when remove is set, of a user file. */
static int xattr_set_or_remove(const char *path, const char *name, bool remove, const char *value,
			       size_t size, int flags)
{
	struct bfs *b = ctx_bfs();
	struct node n;
	char abs[PATH_MAX];
	tree_classify(path, &n);
	if (n.kind != NODE_USER)
		return fixed_err(&n);
	if (xattr_is_ours(name))
		return 0;	/* accepted and ignored (fs/xattr.h) */
	struct at a;
	int rc = at_get(b, n.rel, &a);
	if (rc)
		return rc;
	rc = cow(&a);
	if (!rc)
		rc = at_path(&a, abs, sizeof(abs));
	if (!rc)
		rc = -xattr_change(abs, name, remove, value, size, flags);
	at_put(&a);
	return rc;
}

static int bfs_setxattr(const char *path, const char *name, const char *value, size_t size, int flags)
{
	return xattr_set_or_remove(path, name, false, value, size, flags);
}

static int bfs_getxattr(const char *path, const char *name, char *value, size_t size)
{
	struct bfs *b = ctx_bfs();
	struct node n;
	char abs[PATH_MAX];
	tree_classify(path, &n);
	if (n.kind != NODE_USER)
		return n.kind == NODE_NONE ? -ENOENT : -ENODATA;
	if (xattr_is_ours(name))	/* no store access needed */
		return (int)xattr_get(b, n.rel, "", name, value, size);
	struct at a;
	int rc = at_get(b, n.rel, &a);
	if (rc)
		return rc;
	rc = at_path(&a, abs, sizeof(abs));
	ssize_t r = rc ? rc : xattr_get(b, n.rel, abs, name, value, size);
	at_put(&a);
	return (int)r;
}

static int bfs_listxattr(const char *path, char *list, size_t size)
{
	struct bfs *b = ctx_bfs();
	struct node n;
	char abs[PATH_MAX];
	tree_classify(path, &n);
	if (n.kind != NODE_USER)
		return n.kind == NODE_NONE ? -ENOENT : 0;
	struct at a;
	int rc = at_get(b, n.rel, &a);
	if (rc)
		return rc;
	rc = at_path(&a, abs, sizeof(abs));
	ssize_t r = rc ? rc : xattr_list(b, n.rel, abs, list, size);
	at_put(&a);
	return (int)r;
}

static int bfs_removexattr(const char *path, const char *name)
{
	return xattr_set_or_remove(path, name, true, NULL, 0, 0);
}

/* ------------------------------------------------------------------ */
/* Directories                                                         */

static int bfs_opendir(const char *path, struct fuse_file_info *fi)
{
	struct bfs *b = ctx_bfs();
	struct node n;
	tree_classify(path, &n);
	fi->fh = 0;
	if (n.kind == NODE_NONE || n.kind == NODE_CTL_FILE || n.kind == NODE_ALIAS)
		return -ENOENT;
	if (n.kind != NODE_SIZE && n.kind != NODE_USER)
		return 0;
	struct at a;
	int rc = at_get(b, n.rel, &a);
	if (rc)
		return rc;
	int fd = openat(a.fd, a.name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	rc = fd < 0 ? -errno : 0;
	at_put(&a);
	if (rc)
		return rc;
	DIR *d = fdopendir(fd);
	if (!d) {
		int e = errno;
		close(fd);
		return -e;
	}
	fi->fh = (uintptr_t)d;
	return 0;
}

static int bfs_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
		       struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	(void)off;
	(void)flags;
	struct node n;
	tree_classify(path, &n);
	struct stat st = { 0 };
	if (fi->fh) {
		DIR *d = (DIR *)(uintptr_t)fi->fh;
		rewinddir(d);
		struct dirent *e;
		while ((e = readdir(d))) {
			if (!strncmp(e->d_name, PUB_TMP_PREFIX, strlen(PUB_TMP_PREFIX)))
				continue;
			st.st_ino = e->d_ino;
			st.st_mode = (mode_t)DTTOIF(e->d_type);
			if (fill(buf, e->d_name, &st, 0, 0))
				break;
		}
		return 0;
	}
	fill(buf, ".", NULL, 0, 0);
	fill(buf, "..", NULL, 0, 0);
	if (n.kind == NODE_ROOT) {
		for (size_t i = 0; i < models_count(); i++)
			if (!model_retired(models_at(i)))
				fill(buf, models_at(i)->id, NULL, 0, 0);
		for (size_t i = 0; i < models_count(); i++)
			if (models_at(i)->alias[0] && !model_retired(models_at(i)))
				fill(buf, models_at(i)->alias, NULL, 0, 0);
		fill(buf, CTL_DIR_NAME, NULL, 0, 0);
	} else if (n.kind == NODE_MODEL) {
		for (int i = 0; i < n.model->nsizes; i++)
			fill(buf, n.model->sizes[i], NULL, 0, 0);
	} else if (n.kind == NODE_CTL_DIR) {
		for (int i = 0; tree_ctl_files[i]; i++)
			fill(buf, tree_ctl_files[i], NULL, 0, 0);
	}
	return 0;
}

static int bfs_releasedir(const char *path, struct fuse_file_info *fi)
{
	(void)path;
	if (fi->fh)
		closedir((DIR *)(uintptr_t)fi->fh);
	return 0;
}

static int bfs_access(const char *path, int mask)
{
	struct bfs *b = ctx_bfs();
	struct node n;
	tree_classify(path, &n);
	switch (n.kind) {
	case NODE_NONE:
		return -ENOENT;
	case NODE_SIZE:
	case NODE_USER: {
		struct at a;
		int rc = at_get(b, n.rel, &a);
		if (rc)
			return rc;
		rc = faccessat(a.fd, a.name, mask, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
		at_put(&a);
		return rc;
	}
	case NODE_CTL_FILE:
		if (!strcmp(n.ctl, "control"))
			return (mask & (R_OK | X_OK)) ? -EACCES : 0;
		return (mask & W_OK) ? -EROFS : 0;
	case NODE_CTL_DIR:
		return (mask & W_OK) ? -EROFS : 0;
	default:
		return (mask & W_OK) ? -EACCES : 0;
	}
}

static int bfs_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
	struct bfs *b = ctx_bfs();
	if (fi && fi->fh && ((struct fh *)(uintptr_t)fi->fh)->kind == FH_FILE)
		return futimens(((struct fh *)(uintptr_t)fi->fh)->fd, tv) < 0 ? -errno : 0;
	struct node n;
	tree_classify(path, &n);
	if (n.kind != NODE_USER && n.kind != NODE_SIZE)
		return n.kind == NODE_NONE ? -ENOENT : fixed_err(&n);
	struct at a;
	int rc = at_get(b, n.rel, &a);
	if (rc)
		return rc;
	if (n.kind == NODE_USER)
		rc = cow(&a);	/* metadata changes must not reach the cache either */
	if (!rc && utimensat(a.fd, a.name, tv, AT_SYMLINK_NOFOLLOW) < 0)
		rc = -errno;
	at_put(&a);
	return rc;
}

static int bfs_fallocate(const char *path, int mode, off_t off, off_t len, struct fuse_file_info *fi)
{
	(void)path;
	struct fh *h = (struct fh *)(uintptr_t)fi->fh;
	if (!h || h->kind != FH_FILE)
		return -EROFS;
	if (fallocate(h->fd, mode, off, len) < 0)
		return -errno;
	trigger_dirty(h->dev, h->ino);
	return 0;
}

static off_t bfs_lseek(const char *path, off_t off, int whence, struct fuse_file_info *fi)
{
	(void)path;
	struct fh *h = (struct fh *)(uintptr_t)fi->fh;
	if (!h || h->kind != FH_FILE)
		return -EINVAL;
	off_t r = lseek(h->fd, off, whence);
	return r < 0 ? -errno : r;
}

static ssize_t bfs_copy_file_range(const char *pin, struct fuse_file_info *fin, off_t oin,
				   const char *pout, struct fuse_file_info *fout, off_t oout,
				   size_t len, int flags)
{
	(void)pin;
	(void)pout;
	struct fh *hi = (struct fh *)(uintptr_t)fin->fh, *ho = (struct fh *)(uintptr_t)fout->fh;
	if (!hi || !ho || hi->kind != FH_FILE || ho->kind != FH_FILE)
		return -EINVAL;
	ssize_t r = copy_file_range(hi->fd, &oin, ho->fd, &oout, len, (unsigned)flags);
	if (r < 0)
		return -errno;
	trigger_dirty(ho->dev, ho->ino);
	return r;
}

const struct fuse_operations bfs_ops = {
	.init = bfs_init,
	.getattr = bfs_getattr,
	.readlink = bfs_readlink,
	.mknod = bfs_mknod,
	.mkdir = bfs_mkdir,
	.unlink = bfs_unlink,
	.rmdir = bfs_rmdir,
	.symlink = bfs_symlink,
	.rename = bfs_rename,
	.link = bfs_link,
	.chmod = bfs_chmod,
	.chown = bfs_chown,
	.truncate = bfs_truncate,
	.open = bfs_open,
	.create = bfs_create,
	.read = bfs_read,
	.write = bfs_write,
	.statfs = bfs_statfs,
	.flush = bfs_flush,
	.release = bfs_release,
	.fsync = bfs_fsync,
	.setxattr = bfs_setxattr,
	.getxattr = bfs_getxattr,
	.listxattr = bfs_listxattr,
	.removexattr = bfs_removexattr,
	.opendir = bfs_opendir,
	.readdir = bfs_readdir,
	.releasedir = bfs_releasedir,
	.access = bfs_access,
	.utimens = bfs_utimens,
	.fallocate = bfs_fallocate,
	.lseek = bfs_lseek,
	.copy_file_range = bfs_copy_file_range,
};
