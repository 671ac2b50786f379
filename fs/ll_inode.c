/*
 * ll_inode.c - see ll_inode.h.
 *
 * Lock order: tab_mu is a leaf; nothing else is taken while holding it.
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
#include <sys/xattr.h>
#include <unistd.h>
#include "cache/beneath.h"
#include "cache/prompt.h"
#include "fs/cow.h"
#include "fs/ctlfiles.h"
#include "fs/ll_inode.h"

/* Every change below the size folders comes through the daemon: the kernel may keep them. */
#define STORE_TIMEOUT 86400.0
/* The fixed tree never changes while mounted. */
#define FIXED_TIMEOUT 86400.0
/* Fixed st_ino values, far above any a store hands out. */
#define FIXED_INO_BASE ((ino_t)1 << 62)
#define NBUCKETS 65536

static struct bfs *lb;
static struct ll_inode *fixed;		/* fixed[0] is the root */
static size_t nfixed;
static char tree_abs[PATH_MAX];		/* the tree as /proc/self/fd shows it */
static size_t tree_abs_len;

static pthread_mutex_t tab_mu = PTHREAD_MUTEX_INITIALIZER;
static struct ll_inode *buckets[NBUCKETS];	/* protected by tab_mu */

static size_t bucket_of(dev_t dev, ino_t ino)
{
	uint64_t h = (uint64_t)ino * 0x9E3779B97F4A7C15ull ^ (uint64_t)dev;
	return (size_t)(h >> 48) % NBUCKETS;
}

static struct ll_inode *add_fixed(enum node_kind kind, struct ll_inode *parent, const char *name)
{
	struct ll_inode *n = &fixed[nfixed];
	n->kind = kind;
	n->parent = parent;
	n->name = name;
	n->fd = -1;
	n->fixed_ino = FIXED_INO_BASE + nfixed;
	nfixed++;
	return n;
}

int lli_init(struct bfs *b)
{
	lb = b;
	size_t cap = 2 + 2 * models_count();
	for (int i = 0; tree_ctl_files[i]; i++)
		cap++;
	if (!(fixed = calloc(cap, sizeof(*fixed))))
		return ENOMEM;
	struct ll_inode *root = add_fixed(NODE_ROOT, NULL, "");
	for (size_t i = 0; i < models_count(); i++)
		add_fixed(NODE_MODEL, root, models_at(i)->id)->model = models_at(i);
	for (size_t i = 0; i < models_count(); i++)
		if (models_at(i)->alias[0])
			add_fixed(NODE_ALIAS, root, models_at(i)->alias)->model = models_at(i);
	struct ll_inode *ctl = add_fixed(NODE_CTL_DIR, root, CTL_DIR_NAME);
	for (int i = 0; tree_ctl_files[i]; i++)
		add_fixed(NODE_CTL_FILE, ctl, tree_ctl_files[i])->ctl = tree_ctl_files[i];

	char proc[64];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", b->tree_fd);
	ssize_t r = readlink(proc, tree_abs, sizeof(tree_abs) - 1);
	if (r < 0 || (size_t)r >= sizeof(tree_abs) - 1)
		return r < 0 ? errno : ENAMETOOLONG;
	tree_abs[r] = '\0';
	tree_abs_len = (size_t)r;
	return 0;
}

void lli_fini(void)
{
	pthread_mutex_lock(&tab_mu);
	for (size_t i = 0; i < NBUCKETS; i++) {
		while (buckets[i]) {
			struct ll_inode *n = buckets[i];
			buckets[i] = n->next;
			close(n->fd);
			free(n->up_name);
			free(n);
		}
	}
	pthread_mutex_unlock(&tab_mu);
	free(fixed);
	fixed = NULL;
	nfixed = 0;
}

struct ll_inode *lli_get(fuse_ino_t id)
{
	return id == FUSE_ROOT_ID ? &fixed[0] : (struct ll_inode *)(uintptr_t)id;
}

fuse_ino_t lli_id(const struct ll_inode *n)
{
	return n == &fixed[0] ? FUSE_ROOT_ID : (fuse_ino_t)(uintptr_t)n;
}

enum node_kind lli_child_kind(const struct ll_inode *parent, const char *name,
			      struct ll_inode **fixed_out)
{
	if (fixed_out)
		*fixed_out = NULL;
	if (lli_is_store(parent))
		return NODE_USER;
	if (parent->kind == NODE_MODEL) {
		for (int i = 0; i < parent->model->nsizes; i++)
			if (!strcmp(parent->model->sizes[i], name))
				return NODE_SIZE;
		return NODE_NONE;
	}
	for (size_t i = 1; i < nfixed; i++) {
		if (fixed[i].model && model_retired(fixed[i].model))
			continue;	/* shut down: not shown */
		if (fixed[i].parent == parent && !strcmp(fixed[i].name, name)) {
			if (fixed_out)
				*fixed_out = &fixed[i];
			return fixed[i].kind;
		}
	}
	return NODE_NONE;
}

static void fill_fixed_dir(struct stat *st, mode_t mode)
{
	if (fstat(lb->tree_fd, st) < 0)
		memset(st, 0, sizeof(*st));
	st->st_mode = S_IFDIR | mode;
	st->st_nlink = 2;
	st->st_size = 4096;
}

int lli_stat(const struct ll_inode *n, struct stat *st)
{
	if (lli_is_store(n))
		return fstatat(n->fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0 ? errno : 0;
	switch (n->kind) {
	case NODE_ROOT:
	case NODE_MODEL:
	case NODE_CTL_DIR:
		fill_fixed_dir(st, 0555);
		break;
	case NODE_ALIAS:
		fill_fixed_dir(st, 0777);
		st->st_mode = S_IFLNK | 0777;
		st->st_nlink = 1;
		st->st_size = (off_t)strlen(n->model->id);
		break;
	case NODE_CTL_FILE:
		fill_fixed_dir(st, 0444);
		st->st_mode = S_IFREG | (strcmp(n->ctl, "control") ? 0444 : 0222);
		st->st_nlink = 1;
		if (ctl_is_live(n->ctl)) {
			st->st_size = 0;	/* made at open (doctor asks the server), or write-only */
		} else if (!strcmp(n->ctl, "ledger.jsonl")) {
			/* The ledger is a real file and can be large: stat it, don't read it. */
			struct stat lst;
			char lp[PATH_MAX];
			snprintf(lp, sizeof(lp), "%s/ledger.jsonl", lb->store.dir);
			st->st_size = stat(lp, &lst) == 0 ? lst.st_size : 0;
		} else {
			st->st_size = 0;	/* depends on the caller: fs/ll.c fills it in */
		}
		break;
	default:
		return ENOENT;
	}
	st->st_ino = n->fixed_ino;
	return 0;
}

double lli_timeout(const struct ll_inode *n)
{
	if (lli_is_store(n))
		return STORE_TIMEOUT;
	return n->kind == NODE_CTL_FILE ? 0 : FIXED_TIMEOUT;
}

/* Under tab_mu: the inode of (dev, ino), or with parent set, of that cache object's name. */
static struct ll_inode *find_name_locked(dev_t dev, ino_t ino, const struct ll_inode *parent, const char *name)
{
	for (struct ll_inode *n = buckets[bucket_of(dev, ino)]; n; n = n->next) {
		if (n->dev != dev || n->ino != ino || n->per_name != (parent != NULL))
			continue;
		if (!parent || (n->up_name && n->up_dev == parent->dev && n->up_ino == parent->ino &&
				!strcmp(n->up_name, name)))
			return n;
	}
	return NULL;
}

static struct ll_inode *find_locked(dev_t dev, ino_t ino)
{
	return find_name_locked(dev, ino, NULL, NULL);
}

/* A regular file with other links that carries the cache object mark (fs/cow.h). */
static bool is_object_link(int fd, const struct stat *st)
{
	char proc[64];
	if (!S_ISREG(st->st_mode) || st->st_nlink < 2)
		return false;
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	return getxattr(proc, COW_OBJECT_XATTR, NULL, 0) >= 0;
}

static void seen_locked(struct ll_inode *n, const struct ll_inode *parent, const char *name);

/*
 * Enters the store inode behind fd (O_PATH, owned), found as name in
 * parent (both NULL for a size folder), into the table with one more
 * kernel reference and fills e, with st as its attributes when given.
 * fd is closed when the inode is known.
 */
static int enter(int fd, const struct stat *st, enum node_kind kind, const struct model_info *model,
		 const struct ll_inode *parent, const char *name, struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	if (st) {
		e->attr = *st;
	} else if (fstatat(fd, "", &e->attr, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0) {
		int err = errno;
		close(fd);
		return err;
	}
	bool per_name = parent && is_object_link(fd, &e->attr);
	pthread_mutex_lock(&tab_mu);
	struct ll_inode *n = find_name_locked(e->attr.st_dev, e->attr.st_ino, per_name ? parent : NULL, name);
	if (n) {
		close(fd);
	} else {
		if (!(n = calloc(1, sizeof(*n)))) {
			pthread_mutex_unlock(&tab_mu);
			close(fd);
			return ENOMEM;
		}
		n->kind = kind;
		n->model = model;
		n->fd = fd;
		n->dev = e->attr.st_dev;
		n->ino = e->attr.st_ino;
		n->per_name = per_name;
		size_t bkt = bucket_of(n->dev, n->ino);
		n->next = buckets[bkt];
		buckets[bkt] = n;
	}
	if (parent)
		seen_locked(n, parent, name);
	if (e->attr.st_nlink > 1)	/* lli_rel may find it under another name (other_name) */
		atomic_store(&n->maybe_prompt, true);
	n->nlookup++;
	pthread_mutex_unlock(&tab_mu);
	e->ino = lli_id(n);
	e->attr_timeout = e->entry_timeout = STORE_TIMEOUT;
	return 0;
}

/* Under tab_mu: n was seen as name in parent. */
static void seen_locked(struct ll_inode *n, const struct ll_inode *parent, const char *name)
{
	if (prompt_name_triggers(name))
		atomic_store(&n->maybe_prompt, true);
	if (n->up_name && n->up_dev == parent->dev && n->up_ino == parent->ino && !strcmp(n->up_name, name))
		return;
	char *copy = strdup(name);
	if (!copy)
		return;
	free(n->up_name);
	n->up_name = copy;
	n->up_dev = parent->dev;
	n->up_ino = parent->ino;
}

int lli_lookup_store(struct ll_inode *parent, const char *name, struct fuse_entry_param *e)
{
	int fd = openat(parent->fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno;
	return enter(fd, NULL, NODE_USER, NULL, parent, name, e);
}

int lli_enter_created(struct ll_inode *parent, const char *name, int fd, const struct stat *st,
		      struct fuse_entry_param *e)
{
	return enter(fd, st, NODE_USER, NULL, parent, name, e);
}

int lli_enter_unnamed(int fd, struct fuse_entry_param *e)
{
	return enter(fd, NULL, NODE_USER, NULL, NULL, NULL, e);
}

bool lli_may_be_prompt(const struct ll_inode *n)
{
	return atomic_load(&n->maybe_prompt);
}

void lli_mark_unnamed(struct ll_inode *n)
{
	pthread_mutex_lock(&tab_mu);
	n->unnamed = n->kind == NODE_USER && n->up_name && prompt_name_triggers(n->up_name);
	pthread_mutex_unlock(&tab_mu);
}

bool lli_is_unnamed(struct ll_inode *n)
{
	pthread_mutex_lock(&tab_mu);
	bool u = n->unnamed;
	pthread_mutex_unlock(&tab_mu);
	return u;
}

struct ll_inode *lli_named(struct ll_inode *parent, const char *name)
{
	struct stat st;
	if (!lli_is_store(parent) || fstatat(parent->fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
	    !S_ISREG(st.st_mode) || st.st_nlink < 2)
		return NULL;
	pthread_mutex_lock(&tab_mu);
	struct ll_inode *n = find_name_locked(st.st_dev, st.st_ino, parent, name);
	pthread_mutex_unlock(&tab_mu);
	return n;
}

void lli_seen_at(struct ll_inode *parent, const char *name, struct ll_inode *moved)
{
	struct stat st;
	if (!lli_is_store(parent) || fstatat(parent->fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return;
	pthread_mutex_lock(&tab_mu);
	struct ll_inode *n = moved ? moved : find_locked(st.st_dev, st.st_ino);
	if (n && n->kind == NODE_USER)
		seen_locked(n, parent, name);
	pthread_mutex_unlock(&tab_mu);
}

int lli_lookup(struct ll_inode *parent, const char *name, struct fuse_entry_param *e)
{
	struct ll_inode *f;
	enum node_kind k = lli_child_kind(parent, name, &f);
	if (k == NODE_USER)
		return lli_lookup_store(parent, name, e);
	if (k == NODE_SIZE) {
		char rel[PATH_MAX];
		snprintf(rel, sizeof(rel), "%s/%s", parent->model->id, name);
		int fd = openat(lb->tree_fd, rel, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return errno;
		return enter(fd, NULL, NODE_SIZE, parent->model, NULL, NULL, e);
	}
	if (!f)
		return parent->kind == NODE_ALIAS || parent->kind == NODE_CTL_FILE ? ENOTDIR : ENOENT;
	memset(e, 0, sizeof(*e));
	int rc = lli_stat(f, &e->attr);
	if (rc)
		return rc;
	e->ino = lli_id(f);
	e->attr_timeout = lli_timeout(f);
	e->entry_timeout = FIXED_TIMEOUT;
	return 0;
}

void lli_ref(struct ll_inode *n)
{
	pthread_mutex_lock(&tab_mu);
	n->nlookup++;
	pthread_mutex_unlock(&tab_mu);
}

void lli_forget(struct ll_inode *n, uint64_t count)
{
	if (!lli_is_store(n))
		return;
	pthread_mutex_lock(&tab_mu);
	n->nlookup = count < n->nlookup ? n->nlookup - count : 0;
	if (n->nlookup) {
		pthread_mutex_unlock(&tab_mu);
		return;
	}
	for (struct ll_inode **p = &buckets[bucket_of(n->dev, n->ino)]; *p; p = &(*p)->next) {
		if (*p == n) {
			*p = n->next;
			break;
		}
	}
	pthread_mutex_unlock(&tab_mu);
	close(n->fd);
	free(n->up_name);
	free(n);
}

void lli_proc(const struct ll_inode *n, char *buf, size_t len)
{
	snprintf(buf, len, "/proc/self/fd/%d", n->fd);
}

/* n's path from /proc/self/fd, relative to the tree; ENAMETOOLONG when /proc cannot show it. */
static int proc_rel(const struct ll_inode *n, char *buf, size_t len)
{
	char proc[64], abs[PATH_MAX];
	lli_proc(n, proc, sizeof(proc));
	ssize_t r = readlink(proc, abs, sizeof(abs) - 1);
	if (r < 0)
		return errno;
	if ((size_t)r >= sizeof(abs) - 1)
		return ENAMETOOLONG;
	abs[r] = '\0';
	if (strncmp(abs, tree_abs, tree_abs_len) || abs[tree_abs_len] != '/')
		return ENOENT;
	int w = snprintf(buf, len, "%s", abs + tree_abs_len + 1);
	return w < 0 || (size_t)w >= len ? ENAMETOOLONG : 0;
}

/* Replaces the last name of buf (after slash) with a name its folder holds n under. */
static int other_name(char *buf, size_t len, char *slash, const struct ll_inode *n)
{
	*slash = '\0';
	int fd = openat(lb->tree_fd, buf, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	*slash = '/';
	DIR *d = fd < 0 ? NULL : fdopendir(fd);
	if (!d) {
		if (fd >= 0)
			close(fd);
		return ENAMETOOLONG;
	}
	int rc = ENAMETOOLONG;
	struct dirent *de;
	struct stat st;
	size_t room = len - (size_t)(slash + 1 - buf);
	while ((de = readdir(d)) != NULL) {
		if (de->d_ino == n->ino && fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    st.st_dev == n->dev && st.st_ino == n->ino) {
			rc = snprintf(slash + 1, room, "%s", de->d_name) < (int)room ? 0 : ENAMETOOLONG;
			break;
		}
	}
	closedir(d);
	return rc;
}

/*
 * n's path when its store path is longer than /proc/self/fd can show: the
 * names it was last seen under, up to the first folder /proc can name.
 */
static int rel_by_parents(const struct ll_inode *n, char *buf, size_t len)
{
	char tail[PATH_MAX] = "";
	size_t tlen = 0;
	int rc = ENAMETOOLONG;
	pthread_mutex_lock(&tab_mu);
	for (const struct ll_inode *cur = n; cur;) {
		if (cur != n && (rc = proc_rel(cur, buf, len)) != ENAMETOOLONG)
			break;
		size_t nl = cur->up_name ? strlen(cur->up_name) : 0;
		if (cur->kind != NODE_USER || !nl || tlen + nl + 1 >= sizeof(tail)) {
			rc = ENAMETOOLONG;
			break;
		}
		memmove(tail + nl + 1, tail, tlen + 1);
		tail[0] = '/';
		memcpy(tail + 1, cur->up_name, nl);
		tlen += nl + 1;
		cur = find_locked(cur->up_dev, cur->up_ino);
	}
	pthread_mutex_unlock(&tab_mu);
	if (rc)
		return rc;
	size_t blen = strlen(buf);
	if (blen + tlen >= len)
		return ENAMETOOLONG;
	memcpy(buf + blen, tail, tlen + 1);
	struct stat st;
	if (fstatat(lb->tree_fd, buf, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_dev == n->dev &&
	    st.st_ino == n->ino)
		return 0;
	/*
	 * The name it was seen under is gone since (the other name of a hard
	 * link removed, maybe another file made there): its folder may hold it
	 * under its other name; else it cannot be named.
	 */
	char *slash = strrchr(buf, '/');
	return slash ? other_name(buf, len, slash, n) : ENAMETOOLONG;
}

static bool is_deleted_name(const char *rel)
{
	static const char deleted[] = " (deleted)";
	size_t l = strlen(rel);
	return l >= sizeof(deleted) - 1 && !strcmp(rel + l - (sizeof(deleted) - 1), deleted);
}

int lli_rel(const struct ll_inode *n, const char *name, char *buf, size_t len)
{
	struct stat st;
	if (!lli_is_store(n))
		return EINVAL;
	if (fstatat(n->fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
		return errno;
	if (st.st_nlink == 0)
		return ENOENT;
	int rc = proc_rel(n, buf, len);
	if (rc == ENAMETOOLONG) {
		rc = rel_by_parents(n, buf, len);
	} else if (!rc && is_deleted_name(buf)) {
		/*
		 * The name the handle was opened by is gone while another hard
		 * link keeps the file: /proc shows that name with " (deleted)".
		 */
		char alt[PATH_MAX];
		if (rel_by_parents(n, alt, sizeof(alt)) == 0 && strlen(alt) < len)
			strcpy(buf, alt);
	}
	if (rc || !name)
		return rc;
	size_t blen = strlen(buf);
	int w = snprintf(buf + blen, len - blen, "/%s", name);
	return w < 0 || (size_t)w >= len - blen ? ENAMETOOLONG : 0;
}

int lli_cow(struct ll_inode *n)
{
	struct stat st;
	char rel[PATH_MAX];
	if (n->kind != NODE_USER)
		return 0;
	if (fstatat(n->fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
		return errno;
	if (!S_ISREG(st.st_mode))
		return 0;
	if (st.st_nlink < 2) {
		/*
		 * The common case, no path needed.  An output that is no link (a
		 * copy) becomes the user's file once changed: unmarked, so that
		 * bananafs never replaces it (fs/publish.h).
		 */
		char proc[64];
		lli_proc(n, proc, sizeof(proc));
		if (removexattr(proc, COW_OBJECT_XATTR) < 0 && errno != ENODATA && errno != ENOTSUP)
			return errno;
		return 0;
	}
	int rc = lli_rel(n, NULL, rel, sizeof(rel));
	if (rc)
		return rc == ENOENT ? 0 : rc;
	char *slash = strrchr(rel, '/');
	if (!slash)
		return 0;
	*slash = '\0';
	int dfd = open_beneath(lb->tree_fd, rel, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return errno;
	int copied = 0;
	rc = cow_if_object(dfd, slash + 1, &copied);
	int nfd = rc || !copied ? -1 : openat(dfd, slash + 1, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	close(dfd);
	if (rc || !copied)
		return rc;
	if (nfd < 0 || fstatat(nfd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0) {
		rc = errno;
		if (nfd >= 0)
			close(nfd);
		return rc;
	}
	/*
	 * The name now holds the copy: the inode follows it.  dup2 swaps the
	 * file behind n->fd at once, so a thread using n->fd right now sees
	 * the old or the new file, never a closed or reused number.
	 */
	pthread_mutex_lock(&tab_mu);
	for (struct ll_inode **p = &buckets[bucket_of(n->dev, n->ino)]; *p; p = &(*p)->next) {
		if (*p == n) {
			*p = n->next;
			break;
		}
	}
	dup3(nfd, n->fd, O_CLOEXEC);
	n->dev = st.st_dev;
	n->ino = st.st_ino;
	n->per_name = false;	/* a file of its own now: its hard links, if any come, share it */
	size_t bkt = bucket_of(n->dev, n->ino);
	n->next = buckets[bkt];
	buckets[bkt] = n;
	pthread_mutex_unlock(&tab_mu);
	close(nfd);
	return 0;
}

fuse_ino_t lli_find_fd(int dirfd)
{
	struct stat st;
	if (fstat(dirfd, &st) < 0)
		return 0;
	pthread_mutex_lock(&tab_mu);
	struct ll_inode *n = find_locked(st.st_dev, st.st_ino);
	fuse_ino_t id = n ? lli_id(n) : 0;
	pthread_mutex_unlock(&tab_mu);
	return id;
}
