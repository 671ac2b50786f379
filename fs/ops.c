/*
 * ops.c - FUSE operations.  Fixed parts of the tree refuse changes with
 * EPERM (EROFS inside .bananafs/); below a size folder every operation is
 * passed through to STORE/tree with the *at() calls on one folder fd.
 *
 * Errno convention: high-level ops return -errno.
 *
 * A prompt counts as written on RELEASE (once, after the last close) when
 * some handle changed it, or when a rename puts it in place: see
 * open_track_*() below.  FLUSH may come several times per open and is
 * ignored for that purpose.
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
#include "cache/prompt.h"
#include "fs/bfs.h"
#include "fs/ctlfiles.h"
#include "fs/jobs.h"
#include "fs/ops.h"
#include "fs/publish.h"
#include "fs/status.h"
#include "fs/tree.h"

#define XATTR_PREFIX "user.bananafs."

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
};

/* Open handles per backing inode: the trigger fires when the last one closes. */
struct open_rec {
	dev_t dev;
	ino_t ino;
	int opens;
	int dirty;
	struct open_rec *next;
};

static pthread_mutex_t open_mu = PTHREAD_MUTEX_INITIALIZER;
static struct open_rec *open_list;	/* protected by open_mu */

static struct open_rec *open_find(dev_t dev, ino_t ino)
{
	for (struct open_rec *r = open_list; r; r = r->next)
		if (r->dev == dev && r->ino == ino)
			return r;
	return NULL;
}

static void open_track_open(struct fh *h, int dirty)
{
	pthread_mutex_lock(&open_mu);
	struct open_rec *r = open_find(h->dev, h->ino);
	if (!r && (r = calloc(1, sizeof(*r)))) {
		r->dev = h->dev;
		r->ino = h->ino;
		r->next = open_list;
		open_list = r;
	}
	if (r) {
		r->opens++;
		r->dirty |= dirty;
	}
	pthread_mutex_unlock(&open_mu);
}

static void open_track_dirty(struct fh *h)
{
	pthread_mutex_lock(&open_mu);
	struct open_rec *r = open_find(h->dev, h->ino);
	if (r)
		r->dirty = 1;
	pthread_mutex_unlock(&open_mu);
}

/* Returns 1 when this was the last close of a changed file. */
static int open_track_close(struct fh *h)
{
	int fire = 0;
	pthread_mutex_lock(&open_mu);
	for (struct open_rec **p = &open_list; *p; p = &(*p)->next) {
		struct open_rec *r = *p;
		if (r->dev == h->dev && r->ino == h->ino) {
			if (--r->opens == 0) {
				fire = r->dirty;
				*p = r->next;
				free(r);
			}
			break;
		}
	}
	pthread_mutex_unlock(&open_mu);
	return fire;
}

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

/* A prompt is a NAME.txt below a size folder. */
static int is_prompt(const struct node *n)
{
	return n->kind == NODE_USER && prompt_name_triggers(base_name(n->rel));
}

static void maybe_trigger(struct bfs *b, const char *path)
{
	struct node n;
	tree_classify(path, &n);
	if (is_prompt(&n))
		jobs_trigger(b->jobs, n.rel);
}

/* ------------------------------------------------------------------ */
/* Helpers                                                             */

/* The errno for changing a fixed node. */
static int fixed_err(const struct node *n)
{
	return (n->kind == NODE_CTL_DIR || n->kind == NODE_CTL_FILE) ? -EROFS : -EPERM;
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
	if (p.kind == NODE_CTL_DIR)
		return -EROFS;
	if (p.kind == NODE_NONE || p.kind == NODE_CTL_FILE)
		return -ENOENT;
	return -EPERM;
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


/*
 * A root daemon serving other users (allow_other) creates their files as
 * root and then hands them over: the store stays 0700 and private to the
 * daemon (so switching fsuid to the caller would not even reach it), while
 * each file belongs to its maker.  The kernel has already checked the
 * caller against the parent folder (default_permissions).  A setgid
 * folder's group is kept, as a local disk would.
 */
static void give_to_caller(const struct at *a)
{
	struct fuse_context *fc = fuse_get_context();
	if (geteuid() != 0 || fc->uid == 0)
		return;
	struct stat st;
	gid_t gid = fc->gid;
	if (fstat(a->fd, &st) == 0 && (st.st_mode & S_ISGID))
		gid = (gid_t)-1;
	if (fchownat(a->fd, a->name, fc->uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
		log_warn("cannot give %s to uid %u", a->name, (unsigned)fc->uid);
}

/*
 * Copy-on-write for published outputs: a hard link to a cache object gets
 * its own copy before anyone writes to it, so edits never reach the cache.
 */
static int cow_if_object(const struct at *a)
{
	struct stat st;
	char abs[PATH_MAX], tmp[PATH_MAX];
	if (fstatat(a->fd, a->name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode) ||
	    st.st_nlink < 2)
		return 0;
	if (at_path(a, abs, sizeof(abs)) < 0)
		return -ENAMETOOLONG;
	if (lgetxattr(abs, "user.bananafs.object", NULL, 0) < 0)
		return 0;
	snprintf(tmp, sizeof(tmp), PUB_TMP_PREFIX "cow.%ld", (long)gettid());
	int in = openat(a->fd, a->name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (in < 0)
		return -errno;
	int out = openat(a->fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, st.st_mode & 07777);
	if (out < 0) {
		int e = errno;
		close(in);
		return -e;
	}
	int rc = 0;
	char buf[65536];
	ssize_t r;
	while ((r = read(in, buf, sizeof(buf))) > 0) {
		for (ssize_t off = 0; off < r;) {
			ssize_t w = write(out, buf + off, (size_t)(r - off));
			if (w < 0) {
				rc = -errno;
				goto out_close;
			}
			off += w;
		}
	}
	if (r < 0)
		rc = -errno;
	if (!rc && fsync(out) < 0)
		rc = -errno;
	if (!rc && fchown(out, st.st_uid, st.st_gid) < 0 && errno != EPERM)
		rc = -errno;
out_close:
	close(in);
	close(out);
	if (!rc && renameat(a->fd, tmp, a->fd, a->name) < 0)
		rc = -errno;
	if (rc)
		unlinkat(a->fd, tmp, 0);
	return rc;
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
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
		if (!strcmp(n.ctl, "ledger.jsonl")) {
			/* The ledger is a real file and can be large: stat it, don't read it. */
			struct stat lst;
			char lp[PATH_MAX];
			snprintf(lp, sizeof(lp), "%s/ledger.jsonl", b->store.dir);
			st->st_size = stat(lp, &lst) == 0 ? lst.st_size : 0;
			return 0;
		}
		size_t len = 0;
		char *text = ctl_render(b, n.ctl, &len);
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
		return n.kind == NODE_NONE ? create_err(path) : -EEXIST;
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
		return n.kind == NODE_NONE ? create_err(path) : -EEXIST;
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
	if (is_prompt(&n)) {
		status_lock();
		struct prompt_status *s = status_get(n.rel);
		if (s && !s->queued)
			status_drop(n.rel);
		status_unlock();
	}
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
		return n.kind == NODE_NONE ? create_err(path) : -EEXIST;
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
	if (is_prompt(&nf)) {
		status_lock();
		struct prompt_status *s = status_get(nf.rel);
		if (s && !s->queued)
			status_drop(nf.rel);
		status_unlock();
	}
	maybe_trigger(b, to);
	if (flags & RENAME_EXCHANGE)
		maybe_trigger(b, from);
	struct stat st;
	if (!(flags & RENAME_EXCHANGE) && at_get(b, nt.rel, &at) == 0) {
		if (fstatat(at.fd, at.name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode))
			jobs_folder_moved(b->jobs, nf.rel, nt.rel);
		at_put(&at);
	}
	return 0;
}

static int bfs_link(const char *from, const char *to)
{
	struct bfs *b = ctx_bfs();
	struct node nf, nt;
	tree_classify(from, &nf);
	tree_classify(to, &nt);
	if (nf.kind != NODE_USER)
		return nf.kind == NODE_NONE ? -ENOENT : -EPERM;
	if (nt.kind != NODE_USER)
		return nt.kind == NODE_NONE ? create_err(to) : -EEXIST;
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
		rc = cow_if_object(&a);	/* metadata changes must not reach the cache either */
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
		rc = cow_if_object(&a);	/* metadata changes must not reach the cache either */
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
		open_track_dirty(h);
		return 0;
	}
	struct node n;
	tree_classify(path, &n);
	if (n.kind != NODE_USER)
		return n.kind == NODE_NONE ? -ENOENT : fixed_err(&n);
	struct at a;
	int rc = at_get(b, n.rel, &a);
	if (rc)
		return rc;
	rc = cow_if_object(&a);
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
	open_track_open(h, dirty);
	return 0;
}

static int bfs_open(const char *path, struct fuse_file_info *fi)
{
	struct bfs *b = ctx_bfs();
	struct node n;
	tree_classify(path, &n);
	if (n.kind == NODE_CTL_FILE) {
		if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC))
			return -EROFS;
		struct fh *h = calloc(1, sizeof(*h));
		if (!h)
			return -ENOMEM;
		h->kind = FH_CTL;
		h->buf = ctl_render(b, n.ctl, &h->len);
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
		rc = cow_if_object(&a);
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
	if (h->kind != FH_FILE)
		return -EROFS;
	ssize_t r = pwrite(h->fd, buf, size, off);
	if (r < 0)
		return -errno;
	open_track_dirty(h);
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
	int fire = open_track_close(h);
	free(h);
	if (fire && path)
		maybe_trigger(b, path);
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
	pthread_mutex_lock(&open_mu);
	struct open_rec *r = open_find(h->dev, h->ino);
	int dirty = r && r->dirty;
	pthread_mutex_unlock(&open_mu);
	struct node n;
	tree_classify(path, &n);
	if (dirty && is_prompt(&n))
		jobs_written(ctx_bfs()->jobs, n.rel);
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

/*
 * user.bananafs.* on a prompt: status, key, cost_usd, error.  After a
 * restart the table is empty, so a prompt with NAME.png beside it reads
 * as done and one with NAME.error as failed.
 */
static int our_xattr(struct bfs *b, const struct node *n, const char *name, char *val, size_t vlen)
{
	const char *field = name + strlen(XATTR_PREFIX);
	char out[1024] = "";
	int found = 0;
	status_lock();
	struct prompt_status *s = status_get(n->rel);
	if (s) {
		if (!strcmp(field, "status")) {
			snprintf(out, sizeof(out), "%s", s->status);
			found = 1;
		} else if (!strcmp(field, "key") && s->key[0]) {
			snprintf(out, sizeof(out), "%s", s->key);
			found = 1;
		} else if (!strcmp(field, "cost_usd") && s->cost_usd >= 0) {
			snprintf(out, sizeof(out), "%.4f", s->cost_usd);
			found = 1;
		} else if (!strcmp(field, "error") && s->error) {
			snprintf(out, sizeof(out), "%s", s->error);
			found = 1;
		} else if (!strcmp(field, "batch") && s->batch[0]) {
			snprintf(out, sizeof(out), "%s", s->batch);
			found = 1;
		} else if (!strcmp(field, "model") && s->model[0]) {
			snprintf(out, sizeof(out), "%s", s->model);
			found = 1;
		}
	}
	status_unlock();
	if (!s && !strcmp(field, "status")) {
		/*
		 * A success removes NAME.error, so NAME.error beside an older
		 * image means the last run failed.  Outputs: NAME.png, NAME-1.png
		 * (n > 1), .jpg/.webp with output_format = original.
		 */
		static const char *const outs[] = { ".png", "-1.png", ".jpg", "-1.jpg", ".webp", "-1.webp" };
		char stem[PATH_MAX], p[PATH_MAX + 8];
		snprintf(stem, sizeof(stem), "%.*s", (int)(strlen(n->rel) - 4), n->rel);
		snprintf(p, sizeof(p), "%s.error", stem);
		if (faccessat(b->tree_fd, p, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
			snprintf(out, sizeof(out), "failed");
			found = 1;
		}
		for (size_t i = 0; i < sizeof(outs) / sizeof(outs[0]) && !found; i++) {
			snprintf(p, sizeof(p), "%s%s", stem, outs[i]);
			if (faccessat(b->tree_fd, p, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
				snprintf(out, sizeof(out), "done");
				found = 1;
			}
		}
	}
	if (!found)
		return -ENODATA;
	size_t len = strlen(out);
	if (vlen == 0)
		return (int)len;
	if (vlen < len)
		return -ERANGE;
	memcpy(val, out, len);
	return (int)len;
}

/* setxattr, or removexattr when remove is set, of a user file. */
static int xattr_change(const char *path, const char *name, bool remove, const char *value,
			size_t size, int flags)
{
	struct bfs *b = ctx_bfs();
	struct node n;
	char abs[PATH_MAX];
	tree_classify(path, &n);
	if (n.kind != NODE_USER)
		return n.kind == NODE_NONE ? -ENOENT : fixed_err(&n);
	if (!strncmp(name, XATTR_PREFIX, strlen(XATTR_PREFIX)))
		return -EPERM;
	struct at a;
	int rc = at_get(b, n.rel, &a);
	if (rc)
		return rc;
	rc = cow_if_object(&a);
	if (!rc)
		rc = at_path(&a, abs, sizeof(abs));
	if (!rc && (remove ? lremovexattr(abs, name) : lsetxattr(abs, name, value, size, flags)) < 0)
		rc = -errno;
	at_put(&a);
	return rc;
}

static int bfs_setxattr(const char *path, const char *name, const char *value, size_t size, int flags)
{
	return xattr_change(path, name, false, value, size, flags);
}

static int bfs_getxattr(const char *path, const char *name, char *value, size_t size)
{
	struct bfs *b = ctx_bfs();
	struct node n;
	char abs[PATH_MAX];
	tree_classify(path, &n);
	if (n.kind != NODE_USER)
		return n.kind == NODE_NONE ? -ENOENT : -ENODATA;
	if (!strncmp(name, XATTR_PREFIX, strlen(XATTR_PREFIX)))
		return is_prompt(&n) ? our_xattr(b, &n, name, value, size) : -ENODATA;
	struct at a;
	int rc = at_get(b, n.rel, &a);
	if (rc)
		return rc;
	rc = at_path(&a, abs, sizeof(abs));
	ssize_t r = rc ? rc : lgetxattr(abs, name, value, size);
	if (!rc && r < 0)
		rc = -errno;
	at_put(&a);
	return rc ? rc : (int)r;
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
	if ((rc = at_path(&a, abs, sizeof(abs))) != 0) {
		at_put(&a);
		return rc;
	}
	ssize_t r = llistxattr(abs, NULL, 0);
	if (r < 0)
		r = 0;
	char *raw = malloc((size_t)r + 1);
	if (!raw) {
		at_put(&a);
		return -ENOMEM;
	}
	if (r > 0 && (r = llistxattr(abs, raw, (size_t)r)) < 0)
		r = 0;
	at_put(&a);
	/* Our own names replace whatever the store holds under the prefix. */
	char out[65536];
	size_t len = 0;
	for (ssize_t i = 0; i < r; i += (ssize_t)strlen(raw + i) + 1) {
		const char *nm = raw + i;
		size_t l = strlen(nm) + 1;
		if (!strncmp(nm, XATTR_PREFIX, strlen(XATTR_PREFIX)) || len + l > sizeof(out))
			continue;
		memcpy(out + len, nm, l);
		len += l;
	}
	free(raw);
	if (is_prompt(&n)) {
		static const char *const fields[] = { "status", "key", "cost_usd", "error", "model", "batch" };
		for (size_t i = 0; i < 6; i++) {
			char full[64];
			snprintf(full, sizeof(full), XATTR_PREFIX "%s", fields[i]);
			if (our_xattr(b, &n, full, NULL, 0) < 0)
				continue;
			size_t l = strlen(full) + 1;
			if (len + l > sizeof(out))
				return -E2BIG;	/* as a local disk past XATTR_LIST_MAX */
			memcpy(out + len, full, l);
			len += l;
		}
	}
	if (size == 0)
		return (int)len;
	if (size < len)
		return -ERANGE;
	memcpy(list, out, len);
	return (int)len;
}

static int bfs_removexattr(const char *path, const char *name)
{
	return xattr_change(path, name, true, NULL, 0, 0);
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
			fill(buf, models_at(i)->id, NULL, 0, 0);
		for (size_t i = 0; i < models_count(); i++)
			if (models_at(i)->alias[0])
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
	case NODE_CTL_DIR:
	case NODE_CTL_FILE:
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
		rc = cow_if_object(&a);	/* metadata changes must not reach the cache either */
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
	open_track_dirty(h);
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
	open_track_dirty(ho);
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
