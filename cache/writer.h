/*
 * writer.h - who wrote a prompt: the rights every file operation done for
 * it runs with (DESIGN.md 6).  Plain data, recorded when the prompt is
 * written (from the FUSE request) and journaled with the job, so a job
 * resumed after a restart keeps them.
 */
#ifndef BANANAFS_CACHE_WRITER_H
#define BANANAFS_CACHE_WRITER_H

#include <stdbool.h>
#include <sys/types.h>

/* More groups than this are cut: the job then has fewer rights, never more. */
#define WRITER_MAX_GROUPS 32

struct writer {
	bool set;			/* false: the daemon's own rights (old journal rows, start-up) */
	uid_t uid;
	gid_t gid;
	int ngroups;
	gid_t groups[WRITER_MAX_GROUPS];
};

/* "g1,g2,..." for the journal; out must hold WRITER_MAX_GROUPS * 11 + 1 bytes. */
void writer_groups_format(const struct writer *w, char *out, size_t len);
/* Parses what writer_groups_format wrote.  0 or -1. */
int writer_groups_parse(struct writer *w, const char *text);

#endif
