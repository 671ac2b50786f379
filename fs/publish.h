/*
 * publish.h - making results appear beside the prompt.  Files are prepared
 * under a hidden temp name in the backing folder and renamed into place
 * through the mount itself, so the kernel raises inotify events and file
 * managers see NAME.png appear; when the mount is not serving (start-up,
 * unmount) the rename happens in the store directly.
 *
 * Every step runs with the writer's rights (fs/creds.h): the files are
 * created as the writer and owned by them, and a folder the writer may not
 * change is not changed.  For the daemon's own user an image is a hard link
 * to the cache object (free); for anyone else it is the writer's own copy
 * (a reflink where the filesystem has them, else one image's worth of disk
 * and a copy's time), since a link would be the daemon's file.
 *
 * bananafs replaces only what it published itself: a file carrying
 * OUTPUT_MARK (set only by the daemon; the mount neither shows nor accepts
 * user.bananafs.* names).  Anything else at an output name is kept, and the
 * publish fails with EEXIST.
 */
#ifndef BANANAFS_FS_PUBLISH_H
#define BANANAFS_FS_PUBLISH_H

#include "cache/writer.h"
#include "fs/bfs.h"
#include "fs/cow.h"

#define PUB_TMP_PREFIX ".bananafs-pub."
/* On every published file: the cache key of an image, or "error". */
#define OUTPUT_MARK COW_OBJECT_XATTR

enum output_state {
	OUT_FREE,			/* nothing there */
	OUT_OURS,			/* a file bananafs published */
	OUT_FOREIGN,			/* anything else: never replaced */
};

/* What holds name in the store folder dirfd.  Reads metadata only. */
enum output_state output_state(int dirfd, const char *name);

/*
 * Checks, with w's rights and before anything is paid, that every name in
 * names (in the folder dir, relative to the tree) can be placed: the
 * folder takes new files from w, and each name is free or an earlier
 * output w may replace.  0, or -1 with a sentence for NAME.error in why.
 */
int publish_check(struct bfs *b, const char *dir, const char *const *names, int n,
		  const struct writer *w, char *why, size_t len);

/*
 * Places object o as dir/name (dir relative to the tree) for w.  0, or -1
 * with errno: EEXIST when the name holds a file bananafs did not publish.
 */
int publish_object(struct bfs *b, const char *dir, const char *name, const struct object_info *o,
		   const char *keyhex, const struct writer *w);
/* Writes text as dir/name atomically for w.  0 or -1 (errno, EEXIST as above). */
int publish_text(struct bfs *b, const char *dir, const char *name, const char *text,
		 const struct writer *w);
/*
 * A create with O_EXCL (cp) found name in the store folder dirfd taken:
 * when it is bananafs's own output and the caller may remove it, it is
 * removed (with the caller's rights) so the create goes ahead.  0 when
 * removed, -1 otherwise.
 */
int publish_yield(int dirfd, const char *name, const struct writer *caller);
/*
 * Does name in dir (relative to the tree) hold, byte for byte, the cache
 * object at object_path?  Read with w's rights.  A folder copied or
 * duplicated with its images holds the very images its prompts make: not a
 * name taken by someone else.
 */
bool publish_holds_object(struct bfs *b, const char *dir, const char *name, const char *object_path,
			  const struct writer *w);
/* Removes dir/name if bananafs published it. */
void publish_remove(struct bfs *b, const char *dir, const char *name, const struct writer *w);

#endif
