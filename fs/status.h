/*
 * status.h - what each prompt is doing, for xattrs, .bananafs/jobs and the
 * job workers.  Keyed by the prompt's path relative to the tree.
 * All access goes through status_lock()/status_unlock().
 */
#ifndef BANANAFS_FS_STATUS_H
#define BANANAFS_FS_STATUS_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include "cache/prompt_state.h"
#include "cache/writer.h"

struct prompt_status {
	char *path;			/* relative to the tree; owned */
	enum prompt_state state;	/* its word only where it is shown (prompt_state.h) */
	char key[33];			/* cache key hex, "" when not known */
	double cost_usd;		/* estimated or settled; < 0 unknown */
	char *error;			/* one line, owned; NULL when none */
	char model[64];
	char size[8];
	time_t updated;
	time_t retry_at;		/* wall time a 429's pause ends while waiting-quota; 0 = none */
	uint64_t gen;			/* set by every trigger from a mount-wide counter */
	bool queued;			/* in the run queue now */
	bool run;			/* queued by "bananactl run": a deliberate send */
	int64_t job_id;			/* journal row */
	int batch_pending;		/* candidates recorded minus reported (may dip below 0) */
	int batch_failed;		/* some candidate of the batch failed */
	int batch_loop_done;		/* the job has recorded all its candidates */
	bool store_held;		/* failed because the store refused a paid image now held in
					   memory: the store watcher queues it again when there is room */
	char batch[128];		/* "batches/<id>" once known */
	struct writer owner;		/* who wrote it last: the job runs with these rights */
	double arrived;			/* CLOCK_MONOTONIC seconds of the last write or rename into place */
	uint64_t arrived_names;		/* the folder's arrivals_count then (fs/arrivals.h) */
	bool flushed;			/* arrival taken at FLUSH: RELEASE (later, async) keeps it */
	struct prompt_status *next;	/* hash chain */
};

void status_lock(void);
void status_unlock(void);
/* Under the lock.  get returns NULL when unknown; make creates. */
struct prompt_status *status_get(const char *path);
struct prompt_status *status_make(const char *path);
void status_drop(const char *path);
/* Moves an entry to a new path (rename of a prompt). */
void status_rename(const char *from, const char *to);
/* Sets the state; any other state than waiting-quota clears retry_at. */
void status_set(struct prompt_status *s, enum prompt_state st);
/* "2026-12-02T10:31:05Z" of s->retry_at into buf; false when there is none. */
bool status_retry_at(const struct prompt_status *s, char *buf, size_t len);
void status_set_error(struct prompt_status *s, const char *error);
/* Calls fn for each entry, under the lock. */
void status_foreach(void (*fn)(struct prompt_status *s, void *arg), void *arg);

#endif
