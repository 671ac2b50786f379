/*
 * jobs.h - the run queue of prompts and the worker threads that turn a
 * prompt into published images.  Runs outside FUSE threads: a worker may
 * block for minutes on HTTP without holding up the filesystem.
 */
#ifndef BANANAFS_FS_JOBS_H
#define BANANAFS_FS_JOBS_H

#include "cache/writer.h"
#include "fs/bfs.h"

/* Creates the queue; workers start with jobs_start (after daemonizing). */
struct jobs *jobs_new(struct bfs *b);
int jobs_start(struct jobs *j, int nworkers);
/* Re-queues what the journal holds from an earlier run. Returns how many. */
int jobs_resume(struct jobs *j);
/*
 * A folder was renamed: unfinished prompts below it are queued again at
 * their new place, and their old jobs become stale (a request already in
 * flight is paid once and then served from the cache).
 */
void jobs_folder_moved(struct jobs *j, const char *from, const char *to);
/*
 * A prompt at relpath was written or renamed into place by w (NULL: the
 * daemon itself): queue its job, which runs with w's rights.
 */
void jobs_trigger(struct jobs *j, const char *relpath, const struct writer *w);
/*
 * "bananactl run": queues the prompt as a deliberate, ledgered send (reason
 * FETCH_REASON_RUN), made even on a dry-run mount.  0, -EBUSY when its job
 * is unfinished, -EEXIST when it already has its image (regen is the way).
 * The job runs with w's rights (whoever asked).
 */
int jobs_run(struct jobs *j, const char *relpath, const struct writer *w);
/*
 * "bananactl cancel": stops the prompt's queued or running job (status
 * "cancelled", journal row removed).  0, or -EALREADY when none is.
 */
int jobs_cancel(struct jobs *j, const char *relpath);
/*
 * What the files beside a prompt say when no job state is known (after a
 * remount): PS_FAILED (NAME.error) or PS_DONE (an output) in *st and true;
 * false when they say nothing.
 */
bool jobs_status_on_disk(struct bfs *b, const char *relpath, enum prompt_state *st);
/*
 * A changed prompt was closed (FLUSH): journal it and mark it queued, so it
 * survives kill -9 before RELEASE and a job running for its old text stops
 * being current.  The job itself is queued by jobs_trigger on RELEASE.
 */
void jobs_written(struct jobs *j, const char *relpath, const struct writer *w);
/*
 * Stops the workers, waiting at most grace_s for those inside a request.
 * Returns the jobs left pending (they stay journaled).  *busy is the number
 * of workers still running: when it is not 0 the caller must not free
 * what the workers use.  j stays valid (the batcher may still report into
 * it) until jobs_free.
 */
int jobs_stop(struct jobs *j, double grace_s, int *busy);
void jobs_free(struct jobs *j);
/* The batcher's done callback (cache/batcher.h batch_done_fn); arg is the jobs. */
struct fetch_outcome;
void jobs_batch_done(void *arg, const char *job_ref, const struct fetch_outcome *out);
/* Counters for .bananafs/stats. */
void jobs_counts(struct jobs *j, int *queued, int *running, int *waiting, int *done, int *failed);

#endif
