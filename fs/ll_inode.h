/*
 * ll_inode.h - the inode table of the low-level frontend (fs/ll.c).
 *
 * Two kinds of inode:
 *  - fixed ones (root, model folders, aliases, .bananafs/ and its files)
 *    are built once at start-up and live until exit; FORGET ignores them;
 *  - store ones (size folders and everything below them) are keyed by the
 *    store's (dev, ino), hold an O_PATH fd on the store inode and live
 *    while the kernel holds a lookup count on them.  Two names of one
 *    store file are one inode, as on the store, except the names of a
 *    cache object (fs/cow.h): each is its own inode, keyed also by its
 *    folder and name, since writing one name copies it first and the
 *    other names must keep the object (the kernel opens an inode, not a
 *    name).
 *
 * A FUSE inode id is the address of its struct, except FUSE_ROOT_ID.
 * Store inodes remember no name: their path, when the jobs need one, is
 * read back from the kernel (/proc/self/fd/N), so it follows every rename.
 *
 * Errno convention: functions return 0 or a positive errno.
 */
#ifndef BANANAFS_FS_LL_INODE_H
#define BANANAFS_FS_LL_INODE_H

#include <fuse_lowlevel.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/stat.h>
#include "fs/bfs.h"
#include "fs/tree.h"

struct ll_inode {
	enum node_kind kind;		/* never NODE_NONE */
	const struct model_info *model;	/* MODEL, ALIAS, SIZE */
	const char *name;		/* fixed: its name in its parent */
	const char *ctl;		/* CTL_FILE: the control file's name */
	struct ll_inode *parent;	/* fixed: the folder holding it */
	ino_t fixed_ino;		/* fixed: the st_ino shown */
	int fd;				/* SIZE, USER: O_PATH on the store inode; else -1 */
	dev_t dev;			/* SIZE, USER: the key, protected by the table lock */
	ino_t ino;
	uint64_t nlookup;		/* SIZE, USER: kernel references, protected by the table lock */
	int backing_id;			/* FUSE passthrough: the kernel's backing file, or 0; */
	int backing_opens;		/* its opens; */
	int cached_opens;		/* opens not in passthrough mode; all three under fs/ll.c's passthrough_mu */
	dev_t backing_dev;		/* the store inode it was made from */
	ino_t backing_ino;
	dev_t up_dev;			/* USER: the folder it was last seen in and its name there, */
	ino_t up_ino;			/* to name it when its store path is too long for /proc; */
	char *up_name;			/* all three protected by the table lock */
	bool unnamed;			/* USER: a prompt written where no path names it; the table lock */
	bool per_name;			/* USER: a cache object's name, keyed by up_* too; the table lock */
	atomic_bool page_cached;	/* USER: opened through the page cache since looked up (fs/ll.c ll_flush) */
	atomic_bool maybe_prompt;	/* USER: lli_rel may name a prompt (lli_may_be_prompt); set under the table lock */
	struct ll_inode *next;		/* hash chain, protected by the table lock */
};

/* Builds the fixed inodes.  0 or an errno. */
int lli_init(struct bfs *b);
void lli_fini(void);

struct ll_inode *lli_get(fuse_ino_t id);
fuse_ino_t lli_id(const struct ll_inode *n);
/* The store part of the tree: a size folder or below. */
static inline int lli_is_store(const struct ll_inode *n)
{
	return n->kind == NODE_SIZE || n->kind == NODE_USER;
}

/*
 * The kind a name in parent has: NODE_USER below a size folder, the fixed
 * node's kind in the fixed tree (*fixed set when it is a fixed inode),
 * NODE_SIZE for a size folder of a model, NODE_NONE when the fixed tree
 * has no such name.
 */
enum node_kind lli_child_kind(const struct ll_inode *parent, const char *name,
			      struct ll_inode **fixed);

/*
 * LOOKUP of name in parent: fills e (attributes, timeouts, id) and counts
 * one kernel reference.  ENOENT when there is no such name.
 */
int lli_lookup(struct ll_inode *parent, const char *name, struct fuse_entry_param *e);
/* The same for a store name that was just created by an fd-based call. */
int lli_lookup_store(struct ll_inode *parent, const char *name, struct fuse_entry_param *e);
/*
 * The same for the file just created as name in parent: fd is an O_PATH fd
 * on it (taken over), st its attributes, so nothing is asked again.
 */
int lli_enter_created(struct ll_inode *parent, const char *name, int fd, const struct stat *st,
		      struct fuse_entry_param *e);
/* The same for an O_PATH fd (taken over) on a file no folder names yet (O_TMPFILE). */
int lli_enter_unnamed(int fd, struct fuse_entry_param *e);
/* Adds one kernel reference to a store inode (LINK). */
void lli_ref(struct ll_inode *n);
/* FORGET: drops n kernel references; the inode goes with the last one. */
void lli_forget(struct ll_inode *n, uint64_t count);

/* Attributes and how long the kernel may keep them. */
int lli_stat(const struct ll_inode *n, struct stat *st);
double lli_timeout(const struct ll_inode *n);

/* "/proc/self/fd/N" of a store inode, for calls that take a path. */
void lli_proc(const struct ll_inode *n, char *buf, size_t len);
/*
 * A store inode's path relative to the tree ("MODEL/SIZE/..."), or with a
 * name appended (name may be NULL).  ENOENT when it was unlinked,
 * ENAMETOOLONG past PATH_MAX.  Read from /proc/self/fd; when the store's
 * path is too long for that, or the name the handle was opened by is gone
 * while a hard link keeps the file, built from the folders the inode was
 * last seen in (lookups and renames) and checked to lead to it (else the
 * name its folder holds it under).
 */
int lli_rel(const struct ll_inode *n, const char *name, char *buf, size_t len);
/*
 * Whether lli_rel of n may name a prompt (trigger_is_prompt): false only
 * when no name n was ever seen under (looked up, created, linked, renamed
 * to) is a prompt's and it had no other link when looked up, so that
 * /proc/self/fd and the names it was last seen under can show only such
 * names.  Lets a close skip asking for the path of a file that cannot be
 * a prompt; a rename or link to a prompt's name through the mount sets it
 * before it replies.
 */
bool lli_may_be_prompt(const struct ll_inode *n);
/*
 * The inode of a cache object's name (per_name) now at name in parent, or
 * NULL; asked before a rename, since the rename changes the name it is keyed by.
 */
struct ll_inode *lli_named(struct ll_inode *parent, const char *name);
/*
 * name in parent (a store folder) was just renamed there: it is the last
 * place it was seen.  moved: lli_named of its old name (may be NULL).
 */
void lli_seen_at(struct ll_inode *parent, const char *name, struct ll_inode *moved);
/*
 * n was written and lli_rel cannot name it (its path is longer than
 * PATH_MAX even from the tree): when the name it was last seen under is a
 * prompt's, it is marked, and its xattrs say it was not sent.  No job can
 * run for it, since every step of a job names the prompt by its path.
 */
void lli_mark_unnamed(struct ll_inode *n);
bool lli_is_unnamed(struct ll_inode *n);

/*
 * Copy-on-write (fs/cow.h) of a store file before it changes; the inode
 * then refers to the private copy.
 */
int lli_cow(struct ll_inode *n);

/* The inode id of a store folder seen through dirfd, 0 when the kernel holds none. */
fuse_ino_t lli_find_fd(int dirfd);

#endif
