/*
 * ctlfiles.h - the read-only files of .bananafs/: jobs, ledger.jsonl,
 * stats, prices, config.  Each open takes a snapshot, so a reader sees one
 * consistent text however long it takes to read.
 */
#ifndef BANANAFS_FS_CTLFILES_H
#define BANANAFS_FS_CTLFILES_H

#include <stddef.h>
#include "fs/bfs.h"

/* Renders the named file into a malloc'd buffer; NULL with errno. */
char *ctl_render(struct bfs *b, const char *name, size_t *len);

#endif
