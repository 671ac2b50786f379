/*
 * trigger.h - when a prompt counts as written.  A prompt (NAME.txt below a
 * size folder) counts as written on the last close of the backing inode
 * when some handle changed it, or when a rename puts it in place.  FLUSH
 * (every close(2), synchronous) journals a changed prompt so it survives
 * kill -9; RELEASE (the last close, asynchronous) queues the job.
 *
 * Open handles are counted per backing inode (dev, ino), not per name, so
 * two names of one file share one count.  Paths are relative to the tree.
 *
 * w is who made the request (the frontend fills it from its request
 * context, fs/creds.h); the job runs with those rights.  RELEASE carries
 * no caller, so the writer seen at the last writing open or changed FLUSH
 * is kept per inode and handed back by trigger_close.
 */
#ifndef BANANAFS_FS_TRIGGER_H
#define BANANAFS_FS_TRIGGER_H

#include <stdbool.h>
#include <sys/types.h>
#include "cache/writer.h"
#include "fs/bfs.h"

/* rel (relative to the tree) names a prompt. */
bool trigger_is_prompt(const char *rel);

/*
 * A handle on (dev, ino) was opened; dirty when it already changed it
 * (O_TRUNC, create).  w: the opener when opened for writing, else NULL.
 */
void trigger_open(dev_t dev, ino_t ino, bool dirty, const struct writer *w);
/* A handle on (dev, ino) changed it (write, truncate, fallocate, copy). */
void trigger_dirty(dev_t dev, ino_t ino);
/* The inode is open and changed. */
bool trigger_is_dirty(dev_t dev, ino_t ino);
/* A handle was closed; true when it was the last one of a changed inode, with its writer in *w. */
bool trigger_close(dev_t dev, ino_t ino, struct writer *w);

/* FLUSH of a handle on (dev, ino) known as rel: journal a changed prompt. */
void trigger_flush(struct bfs *b, const char *rel, dev_t dev, ino_t ino, const struct writer *w);
/* rel was written or renamed into place: queue its job when it is a prompt. */
void trigger_written(struct bfs *b, const char *rel, const struct writer *w);
/*
 * from was renamed to to (both below a size folder): the prompt at from is
 * gone, the one at to is written (both when exchanged), and unfinished
 * prompts below a moved folder follow it.
 */
void trigger_renamed(struct bfs *b, const char *from, const char *to, bool is_dir, bool exchange,
		     const struct writer *w);
/* The prompt at rel was unlinked or renamed away: forget a status not in the queue. */
void trigger_gone(const char *rel);

#endif
