/*
 * ctlfiles.h - the files of .bananafs/: jobs, ledger.jsonl, stats, prices,
 * config and doctor are read-only, and each open takes a snapshot, so a
 * reader sees one consistent text however long it takes to read; control
 * is write-only ("run PATH" / "cancel PATH" lines from bananactl).
 */
#ifndef BANANAFS_FS_CTLFILES_H
#define BANANAFS_FS_CTLFILES_H

#include <stdbool.h>
#include <stddef.h>
#include "cache/writer.h"
#include "fs/bfs.h"

/*
 * Renders the named file into a malloc'd buffer; NULL with errno.  caller
 * (NULL: the owner) decides what is shown: for anyone but the mount's
 * owner, jobs and ledger.jsonl hold only lines of prompts they may read,
 * and stats does not name the store.  config never shows a secret.
 */
char *ctl_render(struct bfs *b, const char *name, size_t *len, const struct writer *caller);
/*
 * True for the files whose text is not computed on stat: doctor (its
 * render makes a network call) and control (write-only).  They show size
 * 0 and are read with direct_io.
 */
bool ctl_is_live(const char *name);
/*
 * Runs the lines of one write(2) to .bananafs/control: "run REL" or
 * "cancel REL", REL the prompt's path below the mount root.  The caller
 * must be able to write the prompt.  Returns len, or -errno of the first
 * line that failed (later lines are not run): EINVAL, ENOENT, EACCES,
 * EBUSY, EEXIST (run); EALREADY (cancel).
 */
int ctl_command(struct bfs *b, const char *buf, size_t len, const struct writer *caller);

#endif
