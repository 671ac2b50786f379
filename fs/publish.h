/*
 * publish.h - making results appear beside the prompt.  Files are prepared
 * under a hidden temp name in the backing folder and renamed into place
 * through the mount itself, so the kernel raises inotify events and file
 * managers see NAME.png appear; when the mount is not serving (start-up,
 * unmount) the rename happens in the store directly.
 */
#ifndef BANANAFS_FS_PUBLISH_H
#define BANANAFS_FS_PUBLISH_H

#include "fs/bfs.h"

#define PUB_TMP_PREFIX ".bananafs-pub."

/* Places object o as dir/name (dir relative to the tree).  0 or -1 (errno). */
int publish_object(struct bfs *b, const char *dir, const char *name, const struct object_info *o,
		   const char *keyhex);
/* Writes text as dir/name atomically.  0 or -1 (errno). */
int publish_text(struct bfs *b, const char *dir, const char *name, const char *text);
/* Removes dir/name if it exists. */
void publish_remove(struct bfs *b, const char *dir, const char *name);

#endif
