/*
 * ll.c - the FUSE operations on libfuse's low-level API: every request
 * names an inode (fs/ll_inode.h), and below the size folders every
 * operation runs on that inode's O_PATH fd or its parent's, never on a
 * path from the mount root.  So hard links are one inode, an unlinked open
 * file lives on as on the store (no hidden file), and any path the store
 * accepts relative to the caller's folder works.
 *
 * The fixed tree refuses changes as fs/fixed.h says; copy-on-write, the
 * prompt trigger, xattrs and acting as the caller (fs/creds.h) are the
 * shared helpers of fs/.  The jobs still work by relative path, read back from
 * the inode when a prompt is triggered.
 *
 * Caching: every change below the size folders comes through here, so the
 * kernel keeps entries, attributes, pages and folder listings for long.
 * The daemon's own changes in the store (publishing when the mount is not
 * the way) are announced with fuse_lowlevel_notify_inval_*.
 *
 * Errno convention: helpers return 0 or a positive errno; each operation
 * replies exactly once.
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
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include "cache/beneath.h"
#include "cache/log.h"
#include "cache/prompt.h"
#include "fs/arrivals.h"
#include "fs/creds.h"
#include "fs/ctlfiles.h"
#include "fs/fixed.h"
#include "fs/ll.h"
#include "fs/ll_inode.h"
#include "fs/publish.h"
#include "fs/trigger.h"
#include "fs/xattr.h"

/* st_ino of a listed name whose number is not known yet (as libfuse's high-level API). */
#define UNKNOWN_INO 0xffffffffu

static struct fuse_session *ll_se;
static struct bfs *ll_b;		/* set once by ll_new */

/* ------------------------------------------------------------------ */
/* Handles                                                             */

/* fi->fh of every open: a struct fh, or a struct dirh (both start with the kind), or 0. */
enum fh_kind { FH_FILE = 1, FH_CTL, FH_DIR };

struct fh {
	enum fh_kind kind;
	int fd;				/* FH_FILE */
	dev_t dev;			/* FH_FILE: the backing inode at open */
	ino_t ino;
	char *buf;			/* FH_CTL snapshot */
	size_t len;
	int backing_id;			/* FH_FILE in FUSE passthrough mode; 0 otherwise */
	bool cached;			/* FH_FILE counted in its inode's cached_opens */
	bool uncached_write;		/* FH_FILE write-only, past the page cache (write_only_uncached) */
	bool wrote;			/* ... and written since the last FLUSH */
	bool control;			/* FH_CTL: .bananafs/control, write-only */
};

/* The file handle of fi; NULL for none or a folder's (fchmod on a folder comes with its fh). */
static struct fh *fh_of(const struct fuse_file_info *fi)
{
	struct fh *h = fi ? (struct fh *)(uintptr_t)fi->fh : NULL;
	return h && h->kind != FH_DIR ? h : NULL;
}

/* A store folder being listed. */
struct dirh {
	enum fh_kind kind;		/* FH_DIR */
	DIR *dp;
	off_t offset;
	struct dirent *entry;		/* read but not yet sent */
};

/*
 * Who made this request: the rights a prompt written by it is run with
 * (fs/creds.h).  False when the caller's groups could not all be read
 * (more than WRITER_MAX_GROUPS, or /proc did not answer).
 */
static bool caller_writer(fuse_req_t req, struct writer *w)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);
	if (!creds_writer_init(w, c->uid, c->gid))
		return true;
	int n = fuse_req_getgroups(req, WRITER_MAX_GROUPS, w->groups);
	w->ngroups = n < 0 ? 0 : n > WRITER_MAX_GROUPS ? WRITER_MAX_GROUPS : n;
	return n >= 0 && n <= WRITER_MAX_GROUPS;
}

/*
 * A control file's size is its text for this caller (.bananafs/jobs shows
 * each user their own prompts); ll_inode.c leaves it 0.
 */
static void ctl_size(fuse_req_t req, const struct ll_inode *n, struct stat *st)
{
	if (n->kind != NODE_CTL_FILE || ctl_is_live(n->ctl) || !strcmp(n->ctl, "ledger.jsonl"))
		return;
	struct writer w;
	size_t len = 0;
	caller_writer(req, &w);
	char *text = ctl_render(ll_b, n->ctl, &len, &w);
	st->st_size = text ? (off_t)len : 0;
	free(text);
}

/* ------------------------------------------------------------------ */
/* Replies                                                             */

static void reply_entry_or_err(fuse_req_t req, int rc, const struct fuse_entry_param *e)
{
	if (rc)
		fuse_reply_err(req, rc);
	else
		fuse_reply_entry(req, e);
}

static void reply_attr(fuse_req_t req, struct ll_inode *n)
{
	struct stat st;
	int rc = lli_stat(n, &st);
	if (rc)
		return (void)fuse_reply_err(req, rc);
	ctl_size(req, n, &st);
	fuse_reply_attr(req, &st, lli_timeout(n));
}

/*
 * Whether name may be created in parent: 0, or the errno of the fixed
 * tree (EEXIST for a fixed name, fs/fixed.h for the rest).
 */
static int may_create(struct ll_inode *parent, const char *name)
{
	enum node_kind k = lli_child_kind(parent, name, NULL);
	if (k == NODE_USER)
		return 0;
	return k == NODE_NONE ? fixed_create_errno(parent->kind) : FIXED_EXISTS_ERRNO;
}

/* Whether name in parent may be removed or renamed: 0 or an errno. */
static int may_change(struct ll_inode *parent, const char *name)
{
	enum node_kind k = lli_child_kind(parent, name, NULL);
	return k == NODE_USER ? 0 : fixed_change_errno(k);
}

/*
 * Names are created with the caller's rights (fs/creds.h), as on a local
 * disk: the store makes the new file the caller's, gives it a set-group-ID
 * folder's group, and keeps the set-id bits a local disk keeps for that
 * user (root creating and handing the file over would lose them: chown
 * drops set-user-ID).  The kernel has already checked the caller against
 * the folder (default_permissions), and the store's check on the same
 * modes agrees, given all of the caller's groups.  Without them, or when
 * the switch fails (logged), the daemon creates and hands the name over
 * (*hand, hand_over) rather than let the store refuse what the kernel
 * allowed.  w must live until creds_leave().
 */
static void enter_caller(fuse_req_t req, struct writer *w, bool *hand)
{
	*hand = !caller_writer(req, w) && creds_can_switch();
	if (!*hand && creds_enter(w) < 0)
		*hand = true;
}

/*
 * Not made as the caller (enter_caller): name in at ("" for at itself),
 * made by the daemon in folder, becomes the caller's.
 */
static void hand_over(fuse_req_t req, int folder, int at, const char *name)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);
	struct stat st;
	gid_t gid = fstat(folder, &st) == 0 && (st.st_mode & S_ISGID) ? (gid_t)-1 : c->gid;
	if (fchownat(at, name, c->uid, gid, *name ? AT_SYMLINK_NOFOLLOW : AT_EMPTY_PATH) < 0)
		log_warn("cannot give a new file to uid %u", (unsigned)c->uid);
}

enum make_kind { MAKE_NODE, MAKE_DIR, MAKE_SYMLINK };

/* mknod, mkdir and symlink: name made in parent as the caller, answered with its entry. */
static void make_name(fuse_req_t req, fuse_ino_t parent, const char *name, enum make_kind kind,
		      mode_t mode, dev_t rdev, const char *target)
{
	struct ll_inode *p = lli_get(parent);
	struct writer w;
	bool hand = false;
	int rc = may_create(p, name);
	if (!rc) {
		enter_caller(req, &w, &hand);
		int r = kind == MAKE_NODE ? mknodat(p->fd, name, mode, rdev)
			: kind == MAKE_DIR ? mkdirat(p->fd, name, mode)
			: symlinkat(target, p->fd, name);
		rc = r < 0 ? errno : 0;
		creds_leave();
	}
	if (rc)
		return (void)fuse_reply_err(req, rc);
	if (hand)
		hand_over(req, p->fd, p->fd, name);
	arrivals_note(p->dev, p->ino);	/* a copy tool filling a folder is seen by its new names */
	struct fuse_entry_param e;
	reply_entry_or_err(req, lli_lookup_store(p, name, &e), &e);
}

/* ------------------------------------------------------------------ */
/* Inodes and names                                                    */

/*
 * FUSE passthrough (libfuse >= 3.17, Linux >= 6.9): reads and writes of an
 * open file go from the kernel to the store's file without the daemon.
 * The kernel keeps one backing file per inode and refuses (EIO) an open
 * in the other mode while an inode has opens in one: every open of an
 * inode is passthrough while one is, and cached while one is cached.
 * Cached, so that the daemon sees every write: prompts (the trigger) and
 * files with more than one link, which may be cache objects that a write
 * open first copies (copy-on-write), making a new file the old backing
 * file cannot stand for.  passthrough_mu protects the per-inode counts.
 */
#ifdef FUSE_CAP_PASSTHROUGH
static bool passthrough;		/* the kernel granted it (ll_init) */
static pthread_mutex_t passthrough_mu = PTHREAD_MUTEX_INITIALIZER;

/*
 * Whether a new backing file may be made for fd, known as rel (NULL: not
 * known).  Not for set-group-ID without group execute: a non-member's
 * write drops that bit (drop_setid_for), and only a write that comes here
 * can; the kernel drops the other set-id bits itself.
 */
static bool passthrough_may(const char *rel, int fd)
{
	struct stat st;
	return rel && !trigger_is_prompt(rel) && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	       st.st_nlink == 1 && (st.st_mode & (S_ISGID | S_IXGRP)) != S_ISGID;
}

/*
 * Puts the new open fi of inode n (on fd, known as rel, or NULL) in the
 * inode's mode: passthrough when it is, or when it has no open and may
 * be; else cached, and counted as such.
 */
static void passthrough_open(fuse_req_t req, struct ll_inode *n, const char *rel, int fd,
			     struct fuse_file_info *fi, struct fh *h)
{
	if (!passthrough)
		return;
	bool may = passthrough_may(rel, fd);
	pthread_mutex_lock(&passthrough_mu);
	if (may && !n->backing_id && n->cached_opens == 0) {
		int id = fuse_passthrough_open(req, fd);
		if (id > 0) {
			n->backing_id = id;
			n->backing_dev = h->dev;
			n->backing_ino = h->ino;
			atomic_fetch_add(&ll_b->passthrough_files, 1);
		}
	}
	/* A backing file is the store file of every open (no copy-on-write: one link). */
	if (n->backing_id && n->backing_dev == h->dev && n->backing_ino == h->ino) {
		n->backing_opens++;
		h->backing_id = n->backing_id;
		fi->backing_id = n->backing_id;
		fi->keep_cache = 0;	/* the kernel's pages are the store's now */
	} else {
		n->cached_opens++;
		h->cached = true;
	}
	pthread_mutex_unlock(&passthrough_mu);
}

static void passthrough_release(fuse_req_t req, struct ll_inode *n, struct fh *h)
{
	if (!h->cached && !h->backing_id)
		return;
	pthread_mutex_lock(&passthrough_mu);
	if (h->cached)
		n->cached_opens--;
	if (h->backing_id && --n->backing_opens == 0) {
		fuse_passthrough_close(req, n->backing_id);
		n->backing_id = 0;
		atomic_fetch_sub(&ll_b->passthrough_files, 1);
	}
	pthread_mutex_unlock(&passthrough_mu);
}
#endif

static void ll_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
#ifdef FUSE_CAP_PASSTHROUGH
	/* libfuse >= 3.17 takes flags in want_ext only: setting want too fails the mount. */
	fuse_set_feature_flag(conn, FUSE_CAP_CACHE_SYMLINKS);
	fuse_set_feature_flag(conn, FUSE_CAP_SPLICE_WRITE);	/* ll_read */
	passthrough = fuse_set_feature_flag(conn, FUSE_CAP_PASSTHROUGH);
	ll_b->passthrough = passthrough ? "on" : "off: the kernel does not offer it";
#else
	if (conn->capable & FUSE_CAP_CACHE_SYMLINKS)
		conn->want |= FUSE_CAP_CACHE_SYMLINKS;
	if (conn->capable & FUSE_CAP_SPLICE_WRITE)	/* ll_read */
		conn->want |= FUSE_CAP_SPLICE_WRITE;
#define LL_STR_(x) #x
#define LL_STR(x) LL_STR_(x)
	ll_b->passthrough = "off: built against libfuse " LL_STR(FUSE_MAJOR_VERSION) "."
			    LL_STR(FUSE_MINOR_VERSION) ", passthrough needs 3.17";
#endif
	log_info("FUSE passthrough %s", ll_b->passthrough);
	/*
	 * The kernel has already applied the caller's umask to every mode it
	 * sends; ours would apply a second time.  Everything the daemon
	 * creates for itself names its mode.
	 */
	umask(0);
}

static void ll_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e;
	int rc = lli_lookup(lli_get(parent), name, &e);
	if (!rc)
		ctl_size(req, lli_get(e.ino), &e.attr);
	reply_entry_or_err(req, rc, &e);
}

static void ll_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	lli_forget(lli_get(ino), nlookup);
	fuse_reply_none(req);
}

static void ll_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	for (size_t i = 0; i < count; i++)
		lli_forget(lli_get(forgets[i].ino), forgets[i].nlookup);
	fuse_reply_none(req);
}

static void ll_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fh *h = fh_of(fi);
	struct ll_inode *n = lli_get(ino);
	if (h && h->kind == FH_FILE) {
		struct stat st;
		if (fstat(h->fd, &st) < 0)
			fuse_reply_err(req, errno);
		else
			fuse_reply_attr(req, &st, lli_timeout(n));
		return;
	}
	reply_attr(req, n);
}

/* utimensat on a store inode; a symlink is reached through its folder. */
static int set_times(struct ll_inode *n, const struct timespec tv[2])
{
	struct stat st;
	char proc[64], rel[PATH_MAX];
	if (fstatat(n->fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
		return errno;
	if (!S_ISLNK(st.st_mode)) {
		lli_proc(n, proc, sizeof(proc));
		return utimensat(AT_FDCWD, proc, tv, 0) < 0 ? errno : 0;
	}
	int rc = lli_rel(n, NULL, rel, sizeof(rel));
	if (rc)
		return rc;
	char *slash = strrchr(rel, '/');
	if (!slash)
		return EPERM;
	*slash = '\0';
	int dfd = open_beneath(ll_b->tree_fd, rel, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return errno;
	rc = utimensat(dfd, slash + 1, tv, AT_SYMLINK_NOFOLLOW) < 0 ? errno : 0;
	close(dfd);
	return rc;
}

/*
 * A write, truncation, fallocate or copy_file_range into the file by a
 * user outside the file's group drops a set-group-ID bit the group may not
 * execute on, as a local disk does since Linux 6.2.  The kernel's FUSE
 * client drops set-user-ID and set-group-ID with group execute itself (a
 * SETATTR of the mode before the change), but not this one, and the
 * store's own write, done as root, keeps it.  An open with O_TRUNC is
 * different: the kernel leaves the whole truncation to the OPEN
 * (atomic_o_trunc) and sends no SETATTR, so there every set-id bit a local
 * disk drops is dropped here (all).  So is a write through a write-only
 * open (write_only_uncached): past the page cache the kernel only flags
 * the WRITE (FUSE_WRITE_KILL_SUIDGID, which libfuse 3.14 does not pass
 * on).  A daemon that is not root needs none of this: the store drops the
 * bits for its own writes.
 */
static void drop_setid_for(fuse_req_t req, int fd, bool all)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);
	struct stat st;
	if (c->uid == 0 || !creds_can_switch() || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return;
	mode_t drop = 0;
	if (all && (st.st_mode & S_ISUID))
		drop |= S_ISUID;
	if (all && (st.st_mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP))
		drop |= S_ISGID;
	if ((st.st_mode & (S_ISGID | S_IXGRP)) == S_ISGID && c->gid != st.st_gid) {
		struct writer w;
		bool member = false;
		caller_writer(req, &w);
		for (int i = 0; i < w.ngroups && !member; i++)
			member = w.groups[i] == st.st_gid;
		if (!member)
			drop |= S_ISGID;
	}
	if (drop && fchmod(fd, st.st_mode & 07777 & ~drop) < 0)
		log_warn("cannot drop a set-id bit after a change by another user");
}

static void ll_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int valid,
		       struct fuse_file_info *fi)
{
	struct ll_inode *n = lli_get(ino);
	struct fh *h = fh_of(fi);
	char proc[64];
	int rc = 0;
	if (n->kind == NODE_CTL_FILE && !strcmp(n->ctl, "control") &&
	    !(valid & ~(FUSE_SET_ATTR_SIZE | FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME |
			FUSE_SET_ATTR_ATIME_NOW | FUSE_SET_ATTR_MTIME_NOW | FUSE_SET_ATTR_CTIME))) {
		reply_attr(req, n);	/* "echo run X > control" truncates first: nothing to cut */
		return;
	}
	if (!lli_is_store(n))
		return (void)fuse_reply_err(req, fixed_change_errno(n->kind));
	if (h && h->kind != FH_FILE)
		return (void)fuse_reply_err(req, EROFS);
	int fd = h ? h->fd : -1;
	/*
	 * chown(-1, -1) comes with nothing to set (the kernel keeps ctime for
	 * the daemon to move); a local disk moves it, so the store does it
	 * here.  Only ctime changes: nothing to copy first.
	 */
	if (!(valid & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID | FUSE_SET_ATTR_SIZE |
		       FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME))) {
		if (fchownat(fd >= 0 ? fd : n->fd, "", (uid_t)-1, (gid_t)-1,
			     AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
			return (void)fuse_reply_err(req, errno);
	} else if (!h) {
		rc = lli_cow(n);	/* metadata changes must not reach the cache either */
	}
	lli_proc(n, proc, sizeof(proc));
	if (!rc && (valid & FUSE_SET_ATTR_MODE)) {
		struct stat st;
		if (fd >= 0)
			rc = fchmod(fd, attr->st_mode) < 0 ? errno : 0;
		else if (fstatat(n->fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == 0 &&
			 S_ISLNK(st.st_mode))
			rc = EOPNOTSUPP;	/* Linux symlinks have no mode */
		else
			rc = chmod(proc, attr->st_mode) < 0 ? errno : 0;
	}
	if (!rc && (valid & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID))) {
		uid_t uid = (valid & FUSE_SET_ATTR_UID) ? attr->st_uid : (uid_t)-1;
		gid_t gid = (valid & FUSE_SET_ATTR_GID) ? attr->st_gid : (gid_t)-1;
		rc = fchownat(n->fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0 ? errno : 0;
	}
	if (!rc && (valid & FUSE_SET_ATTR_SIZE)) {
		if (fd >= 0) {
			rc = ftruncate(fd, attr->st_size) < 0 ? errno : 0;
			if (!rc) {
				drop_setid_for(req, fd, false);
				trigger_dirty(h->dev, h->ino);
			}
		} else {
			int wfd = open(proc, O_WRONLY | O_CLOEXEC);
			rc = wfd < 0 ? errno : ftruncate(wfd, attr->st_size) < 0 ? errno : 0;
			if (!rc)
				drop_setid_for(req, wfd, false);
			if (wfd >= 0)
				close(wfd);
		}
	}
	if (!rc && (valid & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME))) {
		struct timespec tv[2] = { { 0, UTIME_OMIT }, { 0, UTIME_OMIT } };
		if (valid & FUSE_SET_ATTR_ATIME_NOW)
			tv[0].tv_nsec = UTIME_NOW;
		else if (valid & FUSE_SET_ATTR_ATIME)
			tv[0] = attr->st_atim;
		if (valid & FUSE_SET_ATTR_MTIME_NOW)
			tv[1].tv_nsec = UTIME_NOW;
		else if (valid & FUSE_SET_ATTR_MTIME)
			tv[1] = attr->st_mtim;
		if (fd >= 0)
			rc = futimens(fd, tv) < 0 ? errno : 0;
		else
			rc = set_times(n, tv);
	}
	if (rc)
		return (void)fuse_reply_err(req, rc);
	if (h) {
		struct stat st;
		if (fstat(h->fd, &st) < 0)
			return (void)fuse_reply_err(req, errno);
		return (void)fuse_reply_attr(req, &st, lli_timeout(n));
	}
	reply_attr(req, n);
}

static void ll_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct ll_inode *n = lli_get(ino);
	char buf[PATH_MAX + 1];
	if (n->kind == NODE_ALIAS)
		return (void)fuse_reply_readlink(req, n->model->id);
	if (n->kind != NODE_USER)
		return (void)fuse_reply_err(req, EINVAL);
	ssize_t r = readlinkat(n->fd, "", buf, sizeof(buf) - 1);
	if (r < 0)
		return (void)fuse_reply_err(req, errno);
	buf[r] = '\0';
	fuse_reply_readlink(req, buf);
}

static void ll_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	make_name(req, parent, name, MAKE_NODE, mode, rdev, NULL);
}

static void ll_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	make_name(req, parent, name, MAKE_DIR, mode, 0, NULL);
}

static void ll_symlink(fuse_req_t req, const char *target, fuse_ino_t parent, const char *name)
{
	make_name(req, parent, name, MAKE_SYMLINK, 0, 0, target);
}

static void remove_name(fuse_req_t req, fuse_ino_t parent, const char *name, int flags)
{
	struct ll_inode *p = lli_get(parent);
	char rel[PATH_MAX];
	int rc = may_change(p, name);
	if (rc)
		return (void)fuse_reply_err(req, rc);
	/* Only a prompt's name has a status to forget (trigger_gone): others need no path. */
	bool known = prompt_name_triggers(name) && lli_rel(p, name, rel, sizeof(rel)) == 0;
	if (unlinkat(p->fd, name, flags) < 0)
		return (void)fuse_reply_err(req, errno);
	if (known)
		trigger_gone(rel);
	fuse_reply_err(req, 0);
}

static void ll_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_name(req, parent, name, 0);
}

static void ll_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_name(req, parent, name, AT_REMOVEDIR);
}

static void ll_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	struct ll_inode *pf = lli_get(parent), *pt = lli_get(newparent);
	char from[PATH_MAX], to[PATH_MAX];
	int rc = may_change(pf, name);
	if (!rc) {
		enum node_kind kt = lli_child_kind(pt, newname, NULL);
		if (kt != NODE_USER)
			rc = kt == NODE_NONE ? fixed_create_errno(pt->kind) : fixed_change_errno(kt);
	}
	if (rc)
		return (void)fuse_reply_err(req, rc);
	bool known = lli_rel(pf, name, from, sizeof(from)) == 0 &&
		     lli_rel(pt, newname, to, sizeof(to)) == 0;
	struct ll_inode *moved = lli_named(pf, name);
	struct ll_inode *swapped = flags & RENAME_EXCHANGE ? lli_named(pt, newname) : NULL;
	if (renameat2(pf->fd, name, pt->fd, newname, flags) < 0)
		return (void)fuse_reply_err(req, errno);
	lli_seen_at(pt, newname, moved);
	if (flags & RENAME_EXCHANGE)
		lli_seen_at(pf, name, swapped);
	if (known) {
		struct stat st;
		bool is_dir = !(flags & RENAME_EXCHANGE) &&
			      fstatat(pt->fd, newname, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			      S_ISDIR(st.st_mode);
		struct writer w;
		caller_writer(req, &w);
		trigger_renamed(ll_b, from, to, is_dir, flags & RENAME_EXCHANGE, &w);
	}
	fuse_reply_err(req, 0);
}

static void ll_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	struct ll_inode *n = lli_get(ino), *p = lli_get(newparent);
	char proc[64];
	int rc = n->kind == NODE_USER ? 0 : fixed_change_errno(n->kind);
	if (!rc)
		rc = may_create(p, newname);
	if (rc)
		return (void)fuse_reply_err(req, rc);
	lli_proc(n, proc, sizeof(proc));
	if (linkat(AT_FDCWD, proc, p->fd, newname, AT_SYMLINK_FOLLOW) < 0)
		return (void)fuse_reply_err(req, errno);
	if (n->per_name) {	/* a cache object's new name is an inode of its own (fs/ll_inode.h) */
		struct fuse_entry_param e;
		return reply_entry_or_err(req, lli_lookup_store(p, newname, &e), &e);
	}
	lli_seen_at(p, newname, n);	/* the name jobs find it by, also when it had none (O_TMPFILE) */
	struct fuse_entry_param e = { .ino = ino };
	if ((rc = lli_stat(n, &e.attr)) != 0)
		return (void)fuse_reply_err(req, rc);
	e.attr_timeout = e.entry_timeout = lli_timeout(n);
	lli_ref(n);
	fuse_reply_entry(req, &e);
}

/* ------------------------------------------------------------------ */
/* Files                                                               */

/*
 * Wraps an open backing fd in a handle and counts it for the trigger; st:
 * fd's attributes when the caller has them, else NULL.  0 or an errno.
 */
static int fh_new(fuse_req_t req, int fd, struct fuse_file_info *fi, bool dirty, const struct stat *st)
{
	struct stat own;
	struct fh *h = calloc(1, sizeof(*h));
	if (!h || (!st && fstat(fd, &own) < 0)) {
		int e = h ? errno : ENOMEM;
		free(h);
		close(fd);
		return e;
	}
	if (!st)
		st = &own;
	h->kind = FH_FILE;
	h->fd = fd;
	h->dev = st->st_dev;
	h->ino = st->st_ino;
	fi->fh = (uintptr_t)h;
	/*
	 * Every change comes through us: the pages stay right, and a warm read
	 * is the kernel's page-cache copy with no request to us.  That copy is
	 * the floor: Linux 6.18's fuse_init_file_inode() gives FUSE files no
	 * large folios (4 KiB pages whatever max_pages, read_ahead_kb or
	 * writeback_cache; ext4's large folios copy ~1.4x faster here), so no
	 * INIT or OPEN setting speeds it; direct_io is slower and refuses
	 * MAP_SHARED on libfuse 3.14.  Only passthrough reads the store's pages.
	 */
	fi->keep_cache = 1;
	struct writer w;
	bool writing = (fi->flags & O_ACCMODE) != O_RDONLY || dirty;
	if (writing)
		caller_writer(req, &w);
	trigger_open(h->dev, h->ino, dirty, writing ? &w : NULL);
	return 0;
}

/*
 * The backing file is opened without O_DIRECT: the kernel already does
 * direct I/O for such an open (our buffers are not aligned for the store's).
 */
#define BACKING_FLAGS(f) ((f) & ~(O_CREAT | O_EXCL | O_NOFOLLOW | O_DIRECT))

/*
 * A write-only open (not in FUSE passthrough mode) writes past the
 * kernel's page cache (FOPEN_DIRECT_IO): each write(2) is one WRITE with
 * the caller's pages, one copy fewer, and without the page-cache write's
 * file_remove_privs, which asks the security.capability xattr before
 * every write(2), a round trip of its own (libfuse 3.14 cannot turn on
 * FUSE_HANDLE_KILLPRIV_V2, with which the kernel would stop asking).
 * Measured here: 64 MiB in 1 MiB writes in about 0.7x the time of the
 * page-cache way.  Nothing reads or maps through such an open, so only
 * pages other opens cached can go stale: newer kernels (6.18 here) drop
 * them at each such write; for older ones ll_flush drops them before
 * close() returns (an open reading while the writer writes may see the old
 * bytes until then).
 * The set-id bits a write drops are dropped by ll_write_buf here.
 */
static void write_only_uncached(struct fuse_file_info *fi, struct fh *h, struct ll_inode *n)
{
	if ((fi->flags & O_ACCMODE) != O_WRONLY || h->backing_id) {
		atomic_store(&n->page_cached, true);
		return;
	}
	fi->direct_io = 1;
	h->uncached_write = true;
}

/*
 * A file opened for reading is read ahead twice as far in the store
 * (POSIX_FADV_SEQUENTIAL doubles the store's readahead window for fd).
 * The kernel asks the daemon 128 KiB at a time, a round trip each, and a
 * store window no larger than that leaves the disk idle between them:
 * with the common 128 KiB window, a cold 64 MiB read through the mount
 * took 114 ms, with this 61 ms (native 45; medians of 7 paired rounds).
 * With this machine's 8 MiB window it changed nothing.  The window still
 * grows only while reads stay sequential: reading a file's header costs
 * what it did.
 */
static void read_ahead_further(int fd, const struct fuse_file_info *fi)
{
	if ((fi->flags & O_ACCMODE) != O_WRONLY)
		(void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
}

static void ll_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct ll_inode *n = lli_get(ino);
	char proc[64];
	if (n->kind == NODE_CTL_FILE) {
		bool control = !strcmp(n->ctl, "control");
		if (control ? (fi->flags & O_ACCMODE) != O_WRONLY
			    : ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)))
			return (void)fuse_reply_err(req, control ? EACCES : EROFS);
		struct fh *h = calloc(1, sizeof(*h));
		if (!h)
			return (void)fuse_reply_err(req, ENOMEM);
		h->kind = FH_CTL;
		h->control = control;
		struct writer w;
		caller_writer(req, &w);
		if (!control && !(h->buf = ctl_render(ll_b, n->ctl, &h->len, &w))) {
			int e = errno;
			free(h);
			return (void)fuse_reply_err(req, e);
		}
		fi->fh = (uintptr_t)h;
		fi->direct_io = 1;	/* the size changes between snapshots */
		return (void)fuse_reply_open(req, fi);
	}
	if (n->kind != NODE_USER)
		return (void)fuse_reply_err(req, EISDIR);
	bool writing = (fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC);
	int rc = writing ? lli_cow(n) : 0;
	if (rc)
		return (void)fuse_reply_err(req, rc);
	lli_proc(n, proc, sizeof(proc));
	int fd = open(proc, BACKING_FLAGS(fi->flags) | O_CLOEXEC);
	if (fd < 0)
		return (void)fuse_reply_err(req, errno);
	if (writing && (fi->flags & O_TRUNC))
		drop_setid_for(req, fd, true);
	read_ahead_further(fd, fi);
	if ((rc = fh_new(req, fd, fi, (fi->flags & O_TRUNC) != 0, NULL)) != 0)
		return (void)fuse_reply_err(req, rc);
	/*
	 * close() of a read-only open has nothing to tell the trigger (the
	 * writers' own FLUSH does): the kernel skips that round trip.
	 */
	fi->noflush = !writing;
	struct fh *h = fh_of(fi);
#ifdef FUSE_CAP_PASSTHROUGH
	char rel[PATH_MAX];
	if (passthrough)
		passthrough_open(req, n, lli_rel(n, NULL, rel, sizeof(rel)) == 0 ? rel : NULL, fd, fi, h);
	/*
	 * Writes in passthrough mode never reach ll_write_buf: for an inode
	 * passed through before the bit was set, drop it at the open instead.
	 */
	if (h->backing_id && writing)
		drop_setid_for(req, fd, false);
#endif
	write_only_uncached(fi, h, n);
	if (fuse_reply_open(req, fi) == -ENOENT) {	/* the open was interrupted */
#ifdef FUSE_CAP_PASSTHROUGH
		passthrough_release(req, n, h);
#endif
		struct writer w;
		trigger_close(h->dev, h->ino, &w);
		close(h->fd);
		free(h);
	}
}

/*
 * A create without O_EXCL for a name that exists in the store, though the
 * kernel's lookup just found none: bananafs published an output there in
 * between.  Opened as ll_open opens a file, a cache object copied first, so
 * the writer's bytes never reach the cache (nor is the file handed over
 * as if the caller had made it).  The fd, with e filled and one lookup
 * taken, or a negative errno.
 */
static int open_existing(fuse_req_t req, struct ll_inode *p, const char *name, struct fuse_file_info *fi,
			 struct fuse_entry_param *e)
{
	char proc[64];
	int rc = lli_lookup_store(p, name, e);
	if (rc)
		return -rc;
	struct ll_inode *n = lli_get(e->ino);
	bool writing = (fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC);
	if (!S_ISREG(e->attr.st_mode))
		rc = EEXIST;		/* a folder or a link came in between: as if the create lost the race */
	else if (writing)
		rc = lli_cow(n);
	int fd = -1;
	if (!rc) {
		lli_proc(n, proc, sizeof(proc));
		fd = open(proc, BACKING_FLAGS(fi->flags) | O_CLOEXEC);
		rc = fd < 0 ? errno : 0;
	}
	if (!rc && writing && (fi->flags & O_TRUNC))
		drop_setid_for(req, fd, true);	/* as ll_open */
	if (!rc)
		rc = lli_stat(n, &e->attr);
	if (rc) {
		if (fd >= 0)
			close(fd);
		lli_forget(n, 1);
		return -rc;
	}
	return fd;
}

/* statx's answer as stat(2) gives it. */
static void stat_from_statx(const struct statx *sx, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_dev = makedev(sx->stx_dev_major, sx->stx_dev_minor);
	st->st_ino = sx->stx_ino;
	st->st_mode = sx->stx_mode;
	st->st_nlink = sx->stx_nlink;
	st->st_uid = sx->stx_uid;
	st->st_gid = sx->stx_gid;
	st->st_rdev = makedev(sx->stx_rdev_major, sx->stx_rdev_minor);
	st->st_size = (off_t)sx->stx_size;
	st->st_blksize = (blksize_t)sx->stx_blksize;
	st->st_blocks = (blkcnt_t)sx->stx_blocks;
	st->st_atim = (struct timespec){ sx->stx_atime.tv_sec, sx->stx_atime.tv_nsec };
	st->st_mtim = (struct timespec){ sx->stx_mtime.tv_sec, sx->stx_mtime.tv_nsec };
	st->st_ctim = (struct timespec){ sx->stx_ctime.tv_sec, sx->stx_ctime.tv_nsec };
}

/*
 * An O_PATH fd on the file fd, just created as name in p (attributes st):
 * opened by its name, checked to be that file, else (another has taken
 * the name since) from fd itself.  Not from fd at once: opening
 * /proc/self/fd/N took 5 us in this many-threaded daemon, against about
 * 1 us for the name and the check.  The fd, or -1 with errno.
 */
static int created_path_fd(struct ll_inode *p, const char *name, int fd, const struct stat *st)
{
	struct stat now;
	char proc[64];
	int pfd = openat(p->fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (pfd >= 0 && fstatat(pfd, "", &now, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == 0 &&
	    now.st_dev == st->st_dev && now.st_ino == st->st_ino)
		return pfd;
	if (pfd >= 0)
		close(pfd);
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	return open(proc, O_PATH | O_CLOEXEC);
}

/*
 * The file fd just created as name in p enters the inode table (one
 * kernel reference, e filled, *st its attributes) and the folder's
 * arrivals.  One statx answers the reply, the handle and the arrivals;
 * the inode is the created file even when another has taken the name
 * since.  0 or an errno.
 */
static int enter_created(fuse_req_t req, struct ll_inode *p, const char *name, int fd,
			 const struct fuse_file_info *fi, struct stat *st, struct fuse_entry_param *e)
{
	struct statx sx;
	if (statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS | STATX_BTIME, &sx) < 0)
		return errno;
	stat_from_statx(&sx, st);
	arrivals_note(p->dev, p->ino);
	if (fi->flags & O_EXCL)		/* how copy tools create: fs/settle.h */
		arrivals_exclusive(&sx, fuse_req_ctx(req)->pid);
	int pfd = created_path_fd(p, name, fd, st);
	if (pfd < 0)
		return errno;
	return lli_enter_created(p, name, pfd, st, e);
}

/* openat(O_CREAT) in parent as the caller (enter_caller): the fd, or -1 with errno. */
static int create_as_caller(fuse_req_t req, struct writer *w, bool *hand, struct ll_inode *parent,
			    const char *name, int flags, mode_t mode)
{
	enter_caller(req, w, hand);
	int fd = openat(parent->fd, name, flags, mode);
	int e = errno;
	creds_leave();
	errno = e;
	return fd;
}

static void ll_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	struct ll_inode *p = lli_get(parent);
	int rc = may_create(p, name);
	if (rc == FIXED_EXISTS_ERRNO)
		rc = fixed_change_errno(lli_child_kind(p, name, NULL));
	if (rc)
		return (void)fuse_reply_err(req, rc);
	/* Always exclusive here: a name that exists is never handed to the caller as if made. */
	int flags = BACKING_FLAGS(fi->flags) | O_EXCL | O_CREAT | O_NOFOLLOW | O_CLOEXEC;
	struct writer w;
	bool hand = false;
	int fd = create_as_caller(req, &w, &hand, p, name, flags, mode);
	struct fuse_entry_param e;
	bool existed = false;
	if (fd < 0 && errno == EEXIST && (fi->flags & O_EXCL)) {
		/* cp creates with O_EXCL: a file at the name of our own output takes its place. */
		if (publish_yield(p->fd, name, &w) == 0)
			fd = create_as_caller(req, &w, &hand, p, name, flags, mode);
		else
			errno = EEXIST;
	} else if (fd < 0 && errno == EEXIST) {
		existed = true;
		if ((fd = open_existing(req, p, name, fi, &e)) < 0)
			return (void)fuse_reply_err(req, -fd);
	}
	if (fd < 0)
		return (void)fuse_reply_err(req, errno);
	struct stat st;
	if (!existed) {
		if (hand)
			hand_over(req, p->fd, p->fd, name);
		if ((rc = enter_created(req, p, name, fd, fi, &st, &e)) != 0) {
			close(fd);
			return (void)fuse_reply_err(req, rc);
		}
	}
	if ((rc = fh_new(req, fd, fi, !existed || (fi->flags & O_TRUNC), existed ? NULL : &st)) != 0) {
		lli_forget(lli_get(e.ino), 1);
		return (void)fuse_reply_err(req, rc);
	}
#ifdef FUSE_CAP_PASSTHROUGH
	char rel[PATH_MAX];
	if (passthrough)
		passthrough_open(req, lli_get(e.ino), lli_rel(p, name, rel, sizeof(rel)) == 0 ? rel : NULL,
				 fd, fi, fh_of(fi));
#endif
	write_only_uncached(fi, fh_of(fi), lli_get(e.ino));
	fuse_reply_create(req, &e, fi);
}

#if FUSE_MAJOR_VERSION > 3 || FUSE_MINOR_VERSION >= 17
/*
 * O_TMPFILE (libfuse >= 3.17): a file no folder names, made in parent as
 * the caller; linkat(2) through the mount names it later (ll_link).
 */
static void ll_tmpfile(fuse_req_t req, fuse_ino_t parent, mode_t mode, struct fuse_file_info *fi)
{
	struct ll_inode *p = lli_get(parent);
	if (!lli_is_store(p))
		return (void)fuse_reply_err(req, fixed_create_errno(p->kind));
	struct writer w;
	bool hand = false;
	enter_caller(req, &w, &hand);
	int fd = openat(p->fd, ".", BACKING_FLAGS(fi->flags) | O_TMPFILE | O_CLOEXEC, mode);
	int rc = fd < 0 ? errno : 0;
	creds_leave();
	if (rc)
		return (void)fuse_reply_err(req, rc);
	if (hand)
		hand_over(req, p->fd, fd, "");
	char proc[64];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	int pfd = open(proc, O_PATH | O_CLOEXEC);
	struct fuse_entry_param e;
	if (pfd < 0 || (rc = lli_enter_unnamed(pfd, &e)) != 0) {
		rc = pfd < 0 ? errno : rc;
		close(fd);
		return (void)fuse_reply_err(req, rc);
	}
	if ((rc = fh_new(req, fd, fi, true, NULL)) != 0) {
		lli_forget(lli_get(e.ino), 1);
		return (void)fuse_reply_err(req, rc);
	}
#ifdef FUSE_CAP_PASSTHROUGH
	if (passthrough)
		passthrough_open(req, lli_get(e.ino), NULL, fd, fi, fh_of(fi));
#endif
	write_only_uncached(fi, fh_of(fi), lli_get(e.ino));
	fuse_reply_create(req, &e, fi);
}
#endif

static void ll_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	(void)ino;
	struct fh *h = fh_of(fi);
	if (h->kind == FH_CTL) {
		if ((size_t)off >= h->len)
			return (void)fuse_reply_buf(req, NULL, 0);
		size_t n = h->len - (size_t)off < size ? h->len - (size_t)off : size;
		/*
		 * Replied from a copy: the reader may close (and RELEASE free
		 * the snapshot) the moment the reply is in, while writev here
		 * has not returned yet.
		 */
		char *copy = malloc(n);
		if (!copy)
			return (void)fuse_reply_err(req, ENOMEM);
		memcpy(copy, h->buf + off, n);
		fuse_reply_buf(req, copy, n);
		free(copy);
		return;
	}
	/*
	 * Spliced from the store's file (FUSE_CAP_SPLICE_WRITE, ll_init): its
	 * pages go through a pipe to /dev/fuse, not copied into a buffer first.
	 * 64 MiB read through the mount with the store's file in the page
	 * cache: 32 ms against 43 ms from a pread buffer; from the disk 54
	 * against 64 ms (medians of 9-11 paired rounds).  libfuse copies into
	 * a buffer itself where splice cannot serve (under two pages, a pipe
	 * it cannot grow, a store that refuses splice).  Not SPLICE_MOVE: the
	 * kernel copies the pages anyway, and asking to steal them measured
	 * 5-12 % slower.
	 */
	struct fuse_bufvec buf = FUSE_BUFVEC_INIT(size);
	buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	buf.buf[0].fd = h->fd;
	buf.buf[0].pos = off;
	fuse_reply_data(req, &buf, 0);
}

/* A write to .bananafs/control: its lines are commands run as the writer. */
static void control_write(fuse_req_t req, struct fuse_bufvec *in)
{
	size_t len = fuse_buf_size(in);
	struct fuse_bufvec mem = FUSE_BUFVEC_INIT(len);
	if (!(mem.buf[0].mem = malloc(len + 1)))
		return (void)fuse_reply_err(req, ENOMEM);
	ssize_t r = fuse_buf_copy(&mem, in, 0);
	if (r < 0) {
		free(mem.buf[0].mem);
		return (void)fuse_reply_err(req, (int)-r);
	}
	struct writer w;
	caller_writer(req, &w);
	int rc = ctl_command(ll_b, mem.buf[0].mem, (size_t)r, &w);
	free(mem.buf[0].mem);
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_write(req, (size_t)rc);
}

static void ll_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *in, off_t off,
			 struct fuse_file_info *fi)
{
	(void)ino;
	struct fh *h = fh_of(fi);
	if (h->kind == FH_CTL && h->control) {
		control_write(req, in);
		return;
	}
	if (h->kind != FH_FILE)
		return (void)fuse_reply_err(req, EROFS);
	struct fuse_bufvec out = FUSE_BUFVEC_INIT(fuse_buf_size(in));
	out.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	out.buf[0].fd = h->fd;
	out.buf[0].pos = off;
	ssize_t r = fuse_buf_copy(&out, in, 0);
	if (r < 0)
		return (void)fuse_reply_err(req, (int)-r);
	drop_setid_for(req, h->fd, h->uncached_write);
	trigger_dirty(h->dev, h->ino);
	h->wrote = h->uncached_write;
	fuse_reply_write(req, (size_t)r);
}

/*
 * FLUSH comes with every close(2), synchronously; RELEASE comes later and
 * asynchronously.  A changed prompt is journaled and marked queued here, so
 * that once close() has returned the job survives kill -9 (DESIGN.md 7);
 * the job itself starts on RELEASE (or at the next mount).
 */
static void ll_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fh *h = fh_of(fi);
	struct ll_inode *n = lli_get(ino);
	char rel[PATH_MAX];
	/*
	 * The kernel holds no lock of the inode while it waits for FLUSH.  Only
	 * an inode opened through the page cache can have pages to drop: a file
	 * only ever written write-only (a copy, a new prompt) skips the notice.
	 */
	if (h && h->wrote) {
		h->wrote = false;
		if (atomic_load(&n->page_cached))
			fuse_lowlevel_notify_inval_inode(ll_se, ino, 0, 0);
	}
	/* A file no prompt's name ever reached (a copy, a small file) is not asked for its path. */
	if (h && h->kind == FH_FILE && lli_may_be_prompt(n) && trigger_is_dirty(h->dev, h->ino) &&
	    lli_rel(n, NULL, rel, sizeof(rel)) == 0)
	{
		struct writer w;
		caller_writer(req, &w);
		trigger_flush(ll_b, rel, h->dev, h->ino, &w);
	}
	fuse_reply_err(req, 0);
}

static void ll_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fh *h = fh_of(fi);
	char rel[PATH_MAX];
	if (h->kind == FH_CTL) {
		free(h->buf);
	} else {
#ifdef FUSE_CAP_PASSTHROUGH
		passthrough_release(req, lli_get(ino), h);
#endif
		close(h->fd);
		struct writer w;
		if (trigger_close(h->dev, h->ino, &w) && lli_may_be_prompt(lli_get(ino))) {
			int rc = lli_rel(lli_get(ino), NULL, rel, sizeof(rel));
			if (!rc)
				trigger_written(ll_b, rel, &w);
			else if (rc == ENAMETOOLONG)
				lli_mark_unnamed(lli_get(ino));
		}
	}
	free(h);
	fuse_reply_err(req, 0);
}

static void ll_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	(void)ino;
	struct fh *h = fh_of(fi);
	int rc = 0;
	if (h && h->kind == FH_FILE && (datasync ? fdatasync(h->fd) : fsync(h->fd)) < 0)
		rc = errno;
	fuse_reply_err(req, rc);
}

static void ll_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
			 struct fuse_file_info *fi)
{
	(void)ino;
	struct fh *h = fh_of(fi);
	if (!h || h->kind != FH_FILE)
		return (void)fuse_reply_err(req, EROFS);
	if (fallocate(h->fd, mode, off, len) < 0)
		return (void)fuse_reply_err(req, errno);
	drop_setid_for(req, h->fd, false);
	trigger_dirty(h->dev, h->ino);
	fuse_reply_err(req, 0);
}

static void ll_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, struct fuse_file_info *fi)
{
	(void)ino;
	struct fh *h = fh_of(fi);
	if (!h || h->kind != FH_FILE)
		return (void)fuse_reply_err(req, EINVAL);
	off_t r = lseek(h->fd, off, whence);
	if (r < 0)
		return (void)fuse_reply_err(req, errno);
	fuse_reply_lseek(req, r);
}

static void ll_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
			       struct fuse_file_info *fi_in, fuse_ino_t ino_out, off_t off_out,
			       struct fuse_file_info *fi_out, size_t len, int flags)
{
	(void)ino_in;
	(void)ino_out;
	struct fh *hi = fh_of(fi_in), *ho = fh_of(fi_out);
	if (!hi || !ho || hi->kind != FH_FILE || ho->kind != FH_FILE)
		return (void)fuse_reply_err(req, EINVAL);
	ssize_t r = copy_file_range(hi->fd, &off_in, ho->fd, &off_out, len, (unsigned)flags);
	if (r < 0)
		return (void)fuse_reply_err(req, errno);
	drop_setid_for(req, ho->fd, false);
	trigger_dirty(ho->dev, ho->ino);
	fuse_reply_write(req, (size_t)r);
}

static void ll_statfs(fuse_req_t req, fuse_ino_t ino)
{
	(void)ino;
	struct statvfs st;
	if (statvfs(ll_b->store.tree_dir, &st) < 0)
		return (void)fuse_reply_err(req, errno);
	fuse_reply_statfs(req, &st);
}

static void ll_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	struct ll_inode *n = lli_get(ino);
	char proc[64];
	int rc = 0;
	if (lli_is_store(n)) {
		lli_proc(n, proc, sizeof(proc));
		rc = faccessat(AT_FDCWD, proc, mask, 0) < 0 ? errno : 0;
	} else if (n->kind == NODE_CTL_FILE && !strcmp(n->ctl, "control")) {
		rc = (mask & (R_OK | X_OK)) ? EACCES : 0;
	} else if (mask & W_OK) {
		rc = n->kind == NODE_CTL_DIR || n->kind == NODE_CTL_FILE ? EROFS : EACCES;
	}
	fuse_reply_err(req, rc);
}

/* ------------------------------------------------------------------ */
/* Extended attributes                                                 */

static void ll_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct ll_inode *n = lli_get(ino);
	char proc[64], rel[PATH_MAX] = "";
	if (xattr_not_carried(name))
		return (void)fuse_reply_err(req, EOPNOTSUPP);
	if (n->kind != NODE_USER)
		return (void)fuse_reply_err(req, ENODATA);
	const char *at = rel;
	if (xattr_is_ours(name) && lli_rel(n, NULL, rel, sizeof(rel)) != 0) {
		if (!lli_is_unnamed(n))
			return (void)fuse_reply_err(req, ENODATA);
		at = XATTR_UNNAMED_PROMPT;
	}
	lli_proc(n, proc, sizeof(proc));
	char *buf = size ? malloc(size) : NULL;
	if (size && !buf)
		return (void)fuse_reply_err(req, ENOMEM);
	ssize_t r = xattr_get(ll_b, at, proc, name, buf, size);
	if (r < 0)
		fuse_reply_err(req, (int)-r);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)r);
	else
		fuse_reply_buf(req, buf, (size_t)r);
	free(buf);
}

/*
 * The fixed folders, the aliases and the size folders carry no xattrs and
 * say so with EOPNOTSUPP: GNU ls -l of newer coreutils (9.7 in Debian 13)
 * lists the xattrs of every name it shows, one round trip each, until one
 * answers EOPNOTSUPP, and then asks no more on that file system.  Below the
 * size folders the list is the store's (empty when it is), since getfattr
 * and tar --xattrs complain about EOPNOTSUPP on a file that has none.
 */
static void ll_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct ll_inode *n = lli_get(ino);
	char proc[64], rel[PATH_MAX] = "";
	if (n->kind == NODE_CTL_FILE)
		return (void)(size ? fuse_reply_buf(req, NULL, 0) : fuse_reply_xattr(req, 0));
	if (n->kind != NODE_USER)	/* fixed folders, aliases and size folders carry none */
		return (void)fuse_reply_err(req, EOPNOTSUPP);
	const char *at = rel;	/* "" when gone: only the store's names */
	if (lli_rel(n, NULL, rel, sizeof(rel)) != 0 && lli_is_unnamed(n))
		at = XATTR_UNNAMED_PROMPT;
	lli_proc(n, proc, sizeof(proc));
	char *buf = size ? malloc(size) : NULL;
	if (size && !buf)
		return (void)fuse_reply_err(req, ENOMEM);
	ssize_t r = xattr_list(ll_b, at, proc, buf, size);
	if (r < 0)
		fuse_reply_err(req, (int)-r);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)r);
	else
		fuse_reply_buf(req, buf, (size_t)r);
	free(buf);
}

static void xattr_set_or_remove(fuse_req_t req, fuse_ino_t ino, const char *name, bool remove,
				const char *value, size_t size, int flags)
{
	struct ll_inode *n = lli_get(ino);
	char proc[64];
	if (n->kind != NODE_USER)
		return (void)fuse_reply_err(req, fixed_change_errno(n->kind));
	if (xattr_is_ours(name))
		return (void)fuse_reply_err(req, 0);	/* accepted and ignored (fs/xattr.h) */
	if (xattr_not_carried(name))
		return (void)fuse_reply_err(req, EOPNOTSUPP);
	int rc = lli_cow(n);
	lli_proc(n, proc, sizeof(proc));
	if (!rc)
		rc = xattr_change(proc, name, remove, value, size, flags);
	fuse_reply_err(req, rc);
}

static void ll_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			size_t size, int flags)
{
	xattr_set_or_remove(req, ino, name, false, value, size, flags);
}

static void ll_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	xattr_set_or_remove(req, ino, name, true, NULL, 0, 0);
}

/* ------------------------------------------------------------------ */
/* Folders                                                             */

static void ll_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct ll_inode *n = lli_get(ino);
	char proc[64];
	fi->fh = 0;
	/* Changes through the kernel drop its cached listing itself; ours are notified. */
	fi->cache_readdir = 1;
	fi->keep_cache = 1;
	if (n->kind == NODE_ALIAS || n->kind == NODE_CTL_FILE)
		return (void)fuse_reply_err(req, ENOTDIR);
	if (!lli_is_store(n))
		return (void)fuse_reply_open(req, fi);
	struct dirh *d = calloc(1, sizeof(*d));
	if (!d)
		return (void)fuse_reply_err(req, ENOMEM);
	d->kind = FH_DIR;
	lli_proc(n, proc, sizeof(proc));
	int fd = open(proc, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || !(d->dp = fdopendir(fd))) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		free(d);
		return (void)fuse_reply_err(req, e);
	}
	fi->fh = (uintptr_t)d;
	if (fuse_reply_open(req, fi) == -ENOENT) {
		closedir(d->dp);
		free(d);
	}
}

/* The names of a fixed folder, "." and ".." first.  Returns how many (at most max). */
static size_t fixed_names(struct ll_inode *n, const char **names, size_t max)
{
	size_t k = 0;
	names[k++] = ".";
	names[k++] = "..";
	if (n->kind == NODE_MODEL) {
		for (int i = 0; i < n->model->nsizes && k < max; i++)
			names[k++] = n->model->sizes[i];
		return k;
	}
	if (n->kind == NODE_ROOT) {
		for (size_t i = 0; i < models_count() && k < max; i++)
			if (!model_retired(models_at(i)))
				names[k++] = models_at(i)->id;
		for (size_t i = 0; i < models_count() && k < max; i++)
			if (models_at(i)->alias[0] && !model_retired(models_at(i)))
				names[k++] = models_at(i)->alias;
		if (k < max)
			names[k++] = CTL_DIR_NAME;
	} else if (n->kind == NODE_CTL_DIR) {
		for (int i = 0; tree_ctl_files[i] && k < max; i++)
			names[k++] = tree_ctl_files[i];
	}
	return k;
}

/*
 * A fixed folder's listing.  With plus the entries carry attributes but no
 * inode (id 0): the kernel looks the few names up itself when it needs them.
 */
static void readdir_fixed(fuse_req_t req, struct ll_inode *n, size_t size, off_t off, bool plus)
{
	const char *names[256];
	size_t k = fixed_names(n, names, sizeof(names) / sizeof(names[0]));
	char *buf = calloc(1, size), *p = buf;
	size_t rem = size;
	if (!buf)
		return (void)fuse_reply_err(req, ENOMEM);
	for (size_t i = (size_t)off; i < k; i++) {
		struct fuse_entry_param e = { 0 };
		struct ll_inode *f;
		enum node_kind kind = i < 2 ? NODE_ROOT : lli_child_kind(n, names[i], &f);
		e.attr.st_mode = kind == NODE_ALIAS ? S_IFLNK : kind == NODE_CTL_FILE ? S_IFREG : S_IFDIR;
		/* A size folder's number is the store's: unknown until looked up. */
		e.attr.st_ino = i == 0 ? n->fixed_ino : i == 1 ? (n->parent ? n->parent : n)->fixed_ino
			      : f ? f->fixed_ino : UNKNOWN_INO;
		size_t len = plus ? fuse_add_direntry_plus(req, p, rem, names[i], &e, (off_t)i + 1)
				  : fuse_add_direntry(req, p, rem, names[i], &e.attr, (off_t)i + 1);
		if (len > rem)
			break;
		p += len;
		rem -= len;
	}
	fuse_reply_buf(req, buf, size - rem);
	free(buf);
}

static bool is_dot(const char *name)
{
	return name[0] == '.' && (!name[1] || (name[1] == '.' && !name[2]));
}

/*
 * A store folder's listing.  READDIRPLUS looks every name up exactly as
 * LOOKUP does (one fstatat each), so `ls -l` needs no further round trip.
 */
static void readdir_store(fuse_req_t req, struct ll_inode *n, size_t size, off_t off,
			  struct dirh *d, bool plus)
{
	/* Not zeroed: fuse_add_direntry{,_plus} write every byte they use, padding too. */
	char *buf = malloc(size), *p = buf;
	size_t rem = size;
	int err = 0;
	if (!buf)
		return (void)fuse_reply_err(req, ENOMEM);
	if (off != d->offset) {
		seekdir(d->dp, off);
		d->entry = NULL;
		d->offset = off;
	}
	for (;;) {
		if (!d->entry) {
			errno = 0;
			if (!(d->entry = readdir(d->dp))) {
				err = errno;
				break;
			}
		}
		struct dirent *de = d->entry;
		off_t next = de->d_off;
		if (!strncmp(de->d_name, PUB_TMP_PREFIX, strlen(PUB_TMP_PREFIX))) {
			d->entry = NULL;
			d->offset = next;
			continue;
		}
		struct fuse_entry_param e = { 0 };
		size_t len;
		if (plus && !is_dot(de->d_name)) {
			int rc = lli_lookup_store(n, de->d_name, &e);
			if (rc == ENOENT) {	/* gone since readdir saw it */
				d->entry = NULL;
				d->offset = next;
				continue;
			}
			if (rc) {
				err = rc;
				break;
			}
		} else {
			e.attr.st_ino = de->d_ino;
			e.attr.st_mode = (mode_t)DTTOIF(de->d_type);
		}
		len = plus ? fuse_add_direntry_plus(req, p, rem, de->d_name, &e, next)
			   : fuse_add_direntry(req, p, rem, de->d_name, &e.attr, next);
		if (len > rem) {
			if (e.ino)	/* not sent: the kernel never saw this reference */
				lli_forget(lli_get(e.ino), 1);
			break;
		}
		p += len;
		rem -= len;
		d->entry = NULL;
		d->offset = next;
	}
	if (err && rem == size)
		fuse_reply_err(req, err);
	else
		fuse_reply_buf(req, buf, size - rem);
	free(buf);
}

static void ll_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	struct ll_inode *n = lli_get(ino);
	if (fi->fh)
		readdir_store(req, n, size, off, (struct dirh *)(uintptr_t)fi->fh, false);
	else
		readdir_fixed(req, n, size, off, false);
}

static void ll_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	struct ll_inode *n = lli_get(ino);
	if (fi->fh)
		readdir_store(req, n, size, off, (struct dirh *)(uintptr_t)fi->fh, true);
	else
		readdir_fixed(req, n, size, off, true);
}

static void ll_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	struct dirh *d = (struct dirh *)(uintptr_t)fi->fh;
	if (d) {
		closedir(d->dp);
		free(d);
	}
	fuse_reply_err(req, 0);
}

static void ll_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	(void)ino;
	struct dirh *d = (struct dirh *)(uintptr_t)fi->fh;
	int rc = 0;
	if (d && (datasync ? fdatasync(dirfd(d->dp)) : fsync(dirfd(d->dp))) < 0)
		rc = errno;
	fuse_reply_err(req, rc);
}

static const struct fuse_lowlevel_ops ll_ops = {
	.init = ll_init,
	.lookup = ll_lookup,
	.forget = ll_forget,
	.forget_multi = ll_forget_multi,
	.getattr = ll_getattr,
	.setattr = ll_setattr,
	.readlink = ll_readlink,
	.mknod = ll_mknod,
	.mkdir = ll_mkdir,
	.unlink = ll_unlink,
	.rmdir = ll_rmdir,
	.symlink = ll_symlink,
	.rename = ll_rename,
	.link = ll_link,
	.open = ll_open,
	.create = ll_create,
	.read = ll_read,
	.write_buf = ll_write_buf,
	.flush = ll_flush,
	.release = ll_release,
	.fsync = ll_fsync,
	.fallocate = ll_fallocate,
	.lseek = ll_lseek,
#if FUSE_MAJOR_VERSION > 3 || FUSE_MINOR_VERSION >= 17
	.tmpfile = ll_tmpfile,
#endif
	.copy_file_range = ll_copy_file_range,
	.statfs = ll_statfs,
	.access = ll_access,
	.getxattr = ll_getxattr,
	.listxattr = ll_listxattr,
	.setxattr = ll_setxattr,
	.removexattr = ll_removexattr,
	.opendir = ll_opendir,
	.readdir = ll_readdir,
	.readdirplus = ll_readdirplus,
	.releasedir = ll_releasedir,
	.fsyncdir = ll_fsyncdir,
};

/* ------------------------------------------------------------------ */
/* Session                                                             */

/*
 * The daemon changed dir/name in the store itself (not through the mount):
 * the kernel forgets the name and the folder's cached listing.  Called
 * from job workers, never from a FUSE request.
 */
static void ll_dir_changed(struct bfs *b, int dirfd, const char *name)
{
	if (!b->mounted || !ll_se)
		return;
	fuse_ino_t id = lli_find_fd(dirfd);
	if (!id)
		return;
	fuse_lowlevel_notify_inval_entry(ll_se, id, name, strlen(name));
	fuse_lowlevel_notify_inval_inode(ll_se, id, 0, 0);
}

/* One O_PATH fd per inode the kernel holds: lift the soft limit to the hard one. */
static void raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			log_warn("cannot raise the open-file limit");
	}
}

struct fuse_session *ll_new(struct fuse_args *args, struct bfs *b)
{
	int rc = lli_init(b);
	if (rc) {
		fprintf(stderr, "bananafs: cannot set up the inode table: %s\n", strerror(rc));
		return NULL;
	}
	ll_b = b;
	raise_nofile();
	ll_se = fuse_session_new(args, &ll_ops, sizeof(ll_ops), b);
	if (!ll_se)
		return NULL;
	b->dir_changed = ll_dir_changed;
	return ll_se;
}

void ll_free(void)
{
	ll_se = NULL;
	lli_fini();
}
