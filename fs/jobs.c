/*
 * jobs.c - prompt jobs.
 *
 * A changed prompt is journaled at its close (FLUSH, so kill -9 loses
 * nothing) and queued at RELEASE; each step bumps the prompt's generation
 * and the path is queued once.  A worker reads the prompt when it starts,
 * and asks again just before each request is sent, so a prompt rewritten
 * while it waits is paid for once, with its final text.  A worker publishes
 * only if the generation is unchanged (sshfs-style generation guard): a
 * prompt rewritten while running is handled by the newer job.  Batch
 * results come back through jobs_batch_done with the generation they were
 * asked for.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>
#include "api/errors.h"
#include "api/prices.h"
#include "cache/beneath.h"
#include "cache/failure.h"
#include "cache/folderconf.h"
#include "cache/journal.h"
#include "cache/key.h"
#include "cache/log.h"
#include "cache/prompt.h"
#include "fs/arrivals.h"
#include "fs/creds.h"
#include "fs/jobplan.h"
#include "fs/jobs.h"
#include "fs/publish.h"
#include "fs/settle.h"
#include "fs/status.h"
#include "fs/tree.h"

struct qitem {
	char *path;
	const char *reason;		/* why a resend: NULL, "resume after crash" */
	struct qitem *next;
};

struct jobs {
	struct bfs *b;
	pthread_t watcher;		/* the store watcher (below); joined by jobs_stop */
	pthread_cond_t watch_cv;	/* wakes the watcher at stop (workers wait on cv) */
	bool watching;
	pthread_mutex_t mu;		/* protects the queue and stop; never held with status_lock */
	pthread_cond_t cv;
	struct qitem *head, *tail;
	int stop;
	int nworkers;
	pthread_t *threads;
	int running;			/* workers inside a job; protected by mu */
};

struct jobs *jobs_new(struct bfs *b)
{
	struct jobs *j = calloc(1, sizeof(*j));
	if (!j)
		return NULL;
	j->b = b;
	pthread_mutex_init(&j->mu, NULL);
	pthread_cond_init(&j->cv, NULL);
	pthread_cond_init(&j->watch_cv, NULL);
	return j;
}

static void push(struct jobs *j, const char *path, const char *reason)
{
	struct qitem *q = calloc(1, sizeof(*q));
	if (!q || !(q->path = strdup(path))) {
		free(q);
		/* Not queued after all: a later trigger must queue it again.  It stays journaled. */
		log_warnx("out of memory queueing %s; it runs at the next mount", path);
		status_lock();
		struct prompt_status *s = status_get(path);
		if (s)
			s->queued = false;
		status_unlock();
		return;
	}
	q->reason = reason;
	pthread_mutex_lock(&j->mu);
	if (j->tail)
		j->tail->next = q;
	else
		j->head = q;
	j->tail = q;
	pthread_cond_signal(&j->cv);
	pthread_mutex_unlock(&j->mu);
}

/*
 * Generations come from one counter for the whole mount, never per entry:
 * a prompt deleted (its entry dropped) and written again gets a new entry,
 * and a per-entry count would start over and hand the new job the running
 * old job's number, letting the old job publish over the new text.
 * Protected by status_lock.
 */
static uint64_t last_gen;

/* The arrivals count of relpath's folder. */
static uint64_t folder_names(struct jobs *j, const char *relpath)
{
	char dir[PATH_MAX];
	struct arrivals a;
	const char *slash = strrchr(relpath, '/');
	snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - relpath) : 0, relpath);
	arrivals_get(j->b->tree_fd, dir, &a);
	return a.count;
}

/* Under status_lock: who wrote the prompt, and when it arrived (names: folder_names then). */
static void set_owner(struct prompt_status *s, const struct writer *w, uint64_t names)
{
	if (w)
		s->owner = *w;
	else
		memset(&s->owner, 0, sizeof(s->owner));
	if (s->flushed) {
		s->flushed = false;
		return;
	}
	s->arrived = settle_now();
	s->arrived_names = names;
}

/* run: a deliberate send asked for with jobs_run (it outlives a dry run). */
static void enqueue(struct jobs *j, const char *relpath, int64_t id, const char *reason, bool run,
		    const struct writer *w)
{
	bool need_push = false;
	uint64_t names = folder_names(j, relpath);
	status_lock();
	struct prompt_status *s = status_make(relpath);
	if (s) {
		s->gen = ++last_gen;
		s->job_id = id;
		s->run = run;
		set_owner(s, w, names);
		status_set(s, PS_QUEUED);
		status_set_error(s, NULL);
		s->store_held = false;
		if (!s->queued) {
			s->queued = true;
			need_push = true;
		}
	}
	status_unlock();
	if (need_push)
		push(j, relpath, reason);
}

void jobs_written(struct jobs *j, const char *relpath, const struct writer *w)
{
	int64_t id = journal_add(&j->b->store, relpath, 0, w);
	if (id < 0)
		log_warnx("journal: cannot record %s; it will not survive a crash", relpath);
	uint64_t names = folder_names(j, relpath);
	status_lock();
	struct prompt_status *s = status_make(relpath);
	if (s) {
		/* A job still running for the old text is no longer current. */
		s->gen = ++last_gen;
		s->flushed = false;
		set_owner(s, w, names);
		s->flushed = true;
		if (id > 0)
			s->job_id = id;
		s->run = false;
		status_set(s, PS_QUEUED);
		status_set_error(s, NULL);
	}
	status_unlock();
}

struct moved {
	const char *from;		/* "old/folder/" */
	size_t len;
	char **paths;			/* unfinished prompts below it */
	struct writer *owners;		/* and who wrote each */
	int n, cap;
};

static void collect_moved(struct prompt_status *s, void *arg)
{
	struct moved *m = arg;
	if (!prompt_state_unfinished(s->state) || strncmp(s->path, m->from, m->len) != 0)
		return;
	if (m->n == m->cap) {
		int cap = m->cap ? m->cap * 2 : 16;
		char **np = realloc(m->paths, sizeof(*np) * (size_t)cap);
		if (np)
			m->paths = np;
		struct writer *no = np ? realloc(m->owners, sizeof(*no) * (size_t)cap) : NULL;
		if (!no)
			return;
		m->owners = no;
		m->cap = cap;
	}
	m->owners[m->n] = s->owner;
	if ((m->paths[m->n] = strdup(s->path)))
		m->n++;
}

void jobs_folder_moved(struct jobs *j, const char *from, const char *to)
{
	char prefix[PATH_MAX + 1], path[2 * PATH_MAX + 2];
	snprintf(prefix, sizeof(prefix), "%s/", from);
	struct moved m = { .from = prefix, .len = strlen(prefix) };
	status_foreach(collect_moved, &m);
	/* Without an entry, a job for the old place is stale: it neither sends nor publishes. */
	status_lock();
	for (int i = 0; i < m.n; i++) {
		struct prompt_status *ps = status_get(m.paths[i]);
		if (ps && ps->job_id > 0)
			journal_finish(&j->b->store, ps->job_id);
		status_drop(m.paths[i]);
	}
	status_unlock();
	for (int i = 0; i < m.n; i++) {
		snprintf(path, sizeof(path), "%s/%s", to, m.paths[i] + m.len);
		jobs_trigger(j, path, &m.owners[i]);
		free(m.paths[i]);
	}
	free(m.paths);
	free(m.owners);
}

void jobs_trigger(struct jobs *j, const char *relpath, const struct writer *w)
{
	int64_t id = journal_add(&j->b->store, relpath, 0, w);
	if (id < 0)
		log_warnx("journal: cannot record %s; it will not survive a crash", relpath);
	log_debug("trigger %s (job %" PRId64 ")", relpath, id);
	enqueue(j, relpath, id, NULL, false, w);
}

/*
 * Writes how the job ended to the journal's outcomes, so the prompt's
 * xattrs (key, cost, model) survive a remount.  Under status_lock.
 */
static void remember(struct bfs *b, const struct prompt_status *s)
{
	struct journal_outcome o = {
		.relpath = s->path, .state = s->state, .key = s->key, .model = s->model,
		.error = s->error, .cost_usd = s->cost_usd,
	};
	if (journal_outcome_put(&b->store, &o) < 0)
		log_warnx("journal: cannot record how %s ended; its xattrs will not survive a remount", s->path);
}

struct resume_ctx {
	struct jobs *j;
	int n;
};

static int resume_one(int64_t id, const char *relpath, int regen, int attempts, const struct writer *w,
		      void *arg)
{
	struct resume_ctx *rc = arg;
	/* A "bananactl run" outlives a crash: its journal row carries regen = 1. */
	enqueue(rc->j, relpath, id, attempts > 0 ? "resume after crash" : NULL, regen != 0, w);
	rc->n++;
	return 0;
}

int jobs_resume(struct jobs *j)
{
	struct resume_ctx rc = { .j = j };
	journal_pending(&j->b->store, resume_one, &rc);
	return rc.n;
}

bool jobs_status_on_disk(struct bfs *b, const char *relpath, enum prompt_state *st)
{
	/*
	 * A success removes NAME.error, so NAME.error beside an older image
	 * means the last run failed.  Outputs: NAME.png, NAME-1.png (n > 1),
	 * .jpg/.webp with output_format = original.
	 */
	static const char *const outs[] = { ".png", "-1.png", ".jpg", "-1.jpg", ".webp", "-1.webp" };
	char stem[PATH_MAX], p[PATH_MAX + 8];
	size_t len = strlen(relpath);
	if (len < 4 || len - 4 >= sizeof(stem))
		return false;
	snprintf(stem, sizeof(stem), "%.*s", (int)(len - 4), relpath);
	snprintf(p, sizeof(p), "%s.error", stem);
	if (faccessat(b->tree_fd, p, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
		*st = PS_FAILED;
		return true;
	}
	for (size_t i = 0; i < sizeof(outs) / sizeof(outs[0]); i++) {
		snprintf(p, sizeof(p), "%s%s", stem, outs[i]);
		if (faccessat(b->tree_fd, p, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
			*st = PS_DONE;
			return true;
		}
	}
	return false;
}

int jobs_run(struct jobs *j, const char *relpath, const struct writer *w)
{
	int rc = 0;
	bool ended_well;
	status_lock();
	struct prompt_status *s = status_get(relpath);
	/* Unknown (after a remount) counts as ended well: the files beside it decide. */
	ended_well = !s || s->state == PS_DONE || s->state == PS_CACHED;
	if (s && prompt_state_unfinished(s->state))
		rc = -EBUSY;
	status_unlock();
	/* Its image is there: nothing to send.  Deleted since: run places it again (from the cache). */
	if (!rc && ended_well) {
		enum prompt_state st;
		if (jobs_status_on_disk(j->b, relpath, &st) && st == PS_DONE)
			rc = -EEXIST;
	}
	if (rc)
		return rc;
	int64_t id = journal_add(&j->b->store, relpath, 1, w);
	if (id < 0)
		log_warnx("journal: cannot record %s; it will not survive a crash", relpath);
	log_info("bananactl run %s (job %" PRId64 ")", relpath, id);
	enqueue(j, relpath, id, NULL, true, w);
	return 0;
}

int jobs_cancel(struct jobs *j, const char *relpath)
{
	status_lock();
	struct prompt_status *s = status_get(relpath);
	if (!s || !prompt_state_unfinished(s->state)) {
		status_unlock();
		return -EALREADY;
	}
	/*
	 * A new generation makes the job stale: a queued one is skipped, a
	 * waiting one abandons its request before it is sent, and a request
	 * already on the wire publishes nothing (its image, once paid, is
	 * still cached).  The fetch status callback answers non-zero from
	 * now on, which is the hook a background interaction's poll loop
	 * uses to cancel it remotely.
	 */
	s->gen = ++last_gen;
	s->run = false;
	struct failure f;
	failure_init(&f, "cancelled with bananactl cancel; bananactl run sends it again");
	char *line = failure_render(&f, FAILURE_LINE);
	status_set(s, PS_CANCELLED);
	status_set_error(s, line ? line : f.headline);
	free(line);
	if (s->job_id > 0)
		journal_finish(&j->b->store, s->job_id);
	s->job_id = -1;
	remember(j->b, s);
	status_unlock();
	log_info("bananactl cancel %s", relpath);
	return 0;
}

/* ------------------------------------------------------------------ */

struct job_ctx {
	struct jobs *j;
	const char *path;
	uint64_t gen;
	struct writer owner;		/* the job's rights (fs/creds.h) */
	double arrived;			/* CLOCK_MONOTONIC time the prompt arrived */
	uint64_t arrived_names;		/* the folder's arrivals_count when it arrived */
	const char *dir, *stem;		/* the prompt's folder (relative to the tree) and name without .txt */
	const char *const *names;	/* the output names checked before paying */
	int nnames;
	bool settled;			/* the settle wait is over */
	char taken[600];		/* set when an output name was found taken just before paying */
};

/* Reads the prompt file beneath the tree; NULL with errno on failure. */
static char *read_prompt(int tree_fd, const char *relpath, size_t *len, size_t *file_size)
{
	int fd = open_beneath(tree_fd, relpath, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		errno = EINVAL;
		return NULL;
	}
	/* One byte over the limit is enough for prompt_parse to refuse it. */
	size_t cap = PROMPT_MAX_BYTES + 1;
	*file_size = (size_t)st.st_size;	/* for the message: the whole file, not what was read */
	char *buf = malloc(cap + 1);
	size_t off = 0;
	while (buf && off < cap) {
		ssize_t r = read(fd, buf + off, cap - off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		off += (size_t)r;
	}
	close(fd);
	if (buf)
		buf[off] = '\0';
	*len = off;
	return buf;
}

static void split_path(const char *relpath, char *dir, size_t dlen, char *stem, size_t slen)
{
	const char *slash = strrchr(relpath, '/');
	size_t n = slash ? (size_t)(slash - relpath) : 0;
	snprintf(dir, dlen, "%.*s", (int)n, relpath);
	const char *base = slash ? slash + 1 : relpath;
	size_t blen = strlen(base);
	if (blen > 4 && strcmp(base + blen - 4, ".txt") == 0)
		blen -= 4;
	snprintf(stem, slen, "%.*s", (int)blen, base);
}

/* True when the job is still the newest for its prompt. */
static bool current(struct job_ctx *c)
{
	status_lock();
	struct prompt_status *s = status_get(c->path);
	bool cur = s && s->gen == c->gen;
	status_unlock();
	return cur;
}

/* The prompt file is still there: a removed or renamed-away prompt gets no output. */
static bool prompt_present(struct bfs *b, const char *relpath)
{
	struct stat st;
	return fstatat(b->tree_fd, relpath, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static bool stopping(struct jobs *j)
{
	pthread_mutex_lock(&j->mu);
	int stop = j->stop;
	pthread_mutex_unlock(&j->mu);
	return stop != 0;
}

static bool stopping_cb(void *arg)
{
	return stopping(arg);
}

/* Waits, once per job, while the prompt's folder is receiving a copy (fs/settle.h). */
static void settle(struct job_ctx *c, bool paid)
{
	struct settle_mark m = { .arrived = c->arrived, .names = c->arrived_names };
	if (c->settled)
		return;
	c->settled = true;
	settle_wait(c->j->b->tree_fd, c->path, c->dir, &m, c->j->b->cfg.settle_s, paid, stopping_cb,
		    c->j);
}

/* retry_at: when a 429's pause ends, with PS_WAITING_QUOTA (0: not said). */
static void set_status(struct job_ctx *c, enum prompt_state st, time_t retry_at)
{
	status_lock();
	struct prompt_status *s = status_get(c->path);
	if (s && s->gen == c->gen) {
		status_set(s, st);
		if (st == PS_WAITING_QUOTA)
			s->retry_at = retry_at;
	}
	status_unlock();
}

/*
 * Just before a request is sent: abandons it for a prompt rewritten or
 * cancelled since the job read it (fetch.h), and, after the settle wait, for an output name a copy tool
 * filled meanwhile (the image that came along is kept, nothing is paid).
 */
static int on_fetch_status(void *arg, enum prompt_state st, time_t retry_at)
{
	struct job_ctx *c = arg;
	if (!current(c))
		return 1;
	if (st == PS_RUNNING) {
		settle(c, true);
		if (!current(c) || !prompt_present(c->j->b, c->path))
			return 1;
		if (publish_check(c->j->b, c->dir, c->names, c->nnames, &c->owner, c->taken,
				  sizeof(c->taken)) < 0)
			return 1;
	}
	set_status(c, st, retry_at);
	return 0;
}

/* Ends the job: final state, the failure's line (NULL: none), journal row (only if still current). */
static void finish(struct job_ctx *c, enum prompt_state st, const char *error, const char *key, double cost,
		   const char *made_by)
{
	status_lock();
	struct prompt_status *s = status_get(c->path);
	if (s && s->gen == c->gen) {
		if (made_by && made_by[0])
			snprintf(s->model, sizeof(s->model), "%s", made_by);
		status_set(s, st);
		status_set_error(s, error);
		if (key)
			snprintf(s->key, sizeof(s->key), "%s", key);
		s->cost_usd = cost;
		if (s->job_id > 0)
			journal_finish(&c->j->b->store, s->job_id);
		s->job_id = -1;
		remember(c->j->b, s);
	}
	status_unlock();
}

/*
 * A failure rendered (cache/failure.h) for NAME.error (text) and for the
 * xattr and jobs file (line); either may be NULL after out of memory.
 */
struct told {
	char *text, *line;
};

static void tell(struct told *t, const struct failure *f)
{
	free(t->text);
	free(t->line);
	t->text = failure_render(f, FAILURE_FILE);
	t->line = failure_render(f, FAILURE_LINE);
}

static void told_free(struct told *t)
{
	free(t->text);
	free(t->line);
	t->text = t->line = NULL;
}

static bool told_any(const struct told *t)
{
	return t->text || t->line;
}

/* The xattr's line; a fixed word when rendering ran out of memory. */
static const char *told_line(const struct told *t)
{
	return t->line ? t->line : "failed (out of memory while saying why)";
}

/* Ends the job as failed without a NAME.error: nothing beside the prompt to tell it to. */
static void fail_quietly(struct job_ctx *c, const struct failure *f)
{
	struct told t = { 0 };
	tell(&t, f);
	finish(c, PS_FAILED, told_line(&t), NULL, -1, NULL);
	told_free(&t);
}

/* Writes NAME.error (when the name fits and is not someone else's) and ends the job as failed. */
static void fail_told(struct job_ctx *c, const char *dir, const char *stem, const struct told *t)
{
	struct bfs *b = c->j->b;
	char name[NAME_MAX + 32];
	snprintf(name, sizeof(name), "%s.error", stem);
	if (t->text && strlen(name) <= NAME_MAX && current(c) && prompt_present(b, c->path) &&
	    publish_text(b, dir, name, t->text, &c->owner) < 0)
		log_warn("cannot write %s/%s", dir, name);
	finish(c, PS_FAILED, told_line(t), NULL, -1, NULL);
}

static void fail_job(struct job_ctx *c, const char *dir, const char *stem, const struct failure *f)
{
	struct told t = { 0 };
	tell(&t, f);
	fail_told(c, dir, stem, &t);
	told_free(&t);
}

/* Publishes one made image as NAME.EXT, or NAME-i.EXT for n > 1.  0 or -1 (EEXIST: taken). */
static int place_image(struct bfs *b, const char *dir, const char *stem, int i, int n,
		       const struct fetch_outcome *out, const struct writer *w)
{
	char name[NAME_MAX + 32];
	jobplan_output_name(name, sizeof(name), stem, i, n, out->obj.ext);
	if (strlen(name) > NAME_MAX) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (publish_object(b, dir, name, &out->obj, out->key_hex, w) < 0) {
		if (errno != EEXIST)
			log_warn("cannot publish %s/%s", dir, name);
		return -1;
	}
	return 0;
}

/* An image made (and cached) that could not be published: ours to retry. */
static void unplaced(struct failure *f)
{
	failure_init(f, "the image was made and cached, but could not be placed beside the prompt");
	f->whose = WHOSE_BANANAFS;
	f->next_move = "save the prompt again (the cached image is free)";
}

/* An output name holds a file bananafs did not make (why says which). */
static void taken(struct failure *f, const char *why)
{
	failure_init(f, "the image was not placed");
	f->what = why;
	f->whose = WHOSE_USER;
	failure_problem(f, "request");
	f->next_move = "move that file away (or rename the prompt) and save the prompt again; an image "
		       "already made is in the cache and costs nothing";
}

#define TAKEN_WHY "an output name is taken by a file bananafs did not make; it was kept"

/*
 * Ends a batch job once every candidate has reported and the job's loop
 * has ended.  Under status_lock.  Returns 1 when it ended in success.
 */
static int batch_finish_locked(struct bfs *b, struct prompt_status *s, const char *error)
{
	status_set(s, s->batch_failed ? PS_FAILED : PS_DONE);
	status_set_error(s, s->batch_failed ? error : NULL);
	if (s->job_id > 0)
		journal_finish(&b->store, s->job_id);
	s->job_id = -1;
	remember(b, s);
	return !s->batch_failed;
}

/* The job paid for an image the store refused: the store watcher queues it again when there is room. */
static void set_store_held(struct job_ctx *c)
{
	status_lock();
	struct prompt_status *ps = status_get(c->path);
	if (ps && ps->gen == c->gen)
		ps->store_held = true;
	status_unlock();
}

/*
 * Takes the queued job of relpath: marks it running and copies what the
 * job needs (generation, owner, arrival) into c.  False when there is none
 * to run (cancelled while queued, or forgotten).  *jid: its journal row.
 */
static bool job_claim(struct job_ctx *c, int64_t *jid, bool *run)
{
	status_lock();
	struct prompt_status *s = status_get(c->path);
	if (s && s->state == PS_CANCELLED) {
		/* Cancelled while it waited in the queue. */
		s->queued = false;
		s = NULL;
	}
	if (s) {
		struct node sn;
		char sp[PATH_MAX + 1];
		snprintf(sp, sizeof(sp), "/%s", c->path);
		tree_classify(sp, &sn);
		if (sn.model)
			snprintf(s->model, sizeof(s->model), "%s", sn.model->id);
		if (sn.size)
			snprintf(s->size, sizeof(s->size), "%s", sn.size);
		s->queued = false;
		c->gen = s->gen;
		c->owner = s->owner;
		c->arrived = s->arrived;
		c->arrived_names = s->arrived_names;
		*jid = s->job_id;
		*run = s->run;
		s->batch_pending = 0;
		s->batch_failed = 0;
		s->batch_loop_done = 0;
		status_set(s, PS_RUNNING);
	}
	status_unlock();
	return s != NULL;
}

/* What a job holds from reading its prompt to its end. */
struct job_input {
	struct prompt p;
	struct folder_conf fc;
	struct jobplan_in in;
	struct jobplan plan;
	struct ref_image refs[PROMPT_MAX_INPUTS];
	int nrefs;
	const char *names[JOBPLAN_MAX_NAMES];	/* plan.names, for publish_check */
};

static void job_input_free(struct job_input *ji)
{
	prompt_free_inputs(ji->refs, ji->nrefs);
	prompt_free(&ji->p);
}


/*
 * The output names hold, byte for byte, the images this prompt makes and
 * the cache has: a folder copied or duplicated with its images.  Nothing
 * to place and nothing wrong; key gets the last candidate's key.
 */
static bool images_came_along(struct job_ctx *c, const struct job_input *ji, char *key)
{
	struct bfs *b = c->j->b;
	const struct jobplan *pl = &ji->plan;
	for (int i = 1; i <= pl->n; i++) {
		struct gen_request rq;
		struct cache_key k;
		struct object_info o;
		char name[NAME_MAX + 32];
		jobplan_request(pl, i, ji->refs, ji->nrefs, c->path, &rq);
		key_compute(&rq, &k);
		if (store_lookup(&b->store, &k, &o) != 1)
			return false;
		jobplan_output_name(name, sizeof(name), c->stem, i, pl->n, o.ext);
		if (!publish_holds_object(b, c->dir, name, o.path, &c->owner))
			return false;
		key_hex(&k, key);
	}
	return true;
}
/*
 * Reads the prompt with its writer's rights, plans the job (fs/jobplan.h:
 * settings, validation, candidates), loads its input images and checks
 * that its output names are free or ours.  0, or -1 when the job has
 * already ended (failed, or its prompt is gone); free ji either way.
 */
static int job_prepare(struct job_ctx *c, const struct node *n, struct job_input *ji)
{
	struct bfs *b = c->j->b;
	struct failure f;
	char err[1024];

	if (!creds_may_act(&c->owner)) {
		snprintf(err, sizeof(err), "this mount's daemon runs as uid %u, not as root, so it cannot "
			 "read or write files with your rights (uid %u); nothing was read and nothing was sent",
			 (unsigned)geteuid(), (unsigned)c->owner.uid);
		jobplan_refuse(&f, err, "write your prompts in a mount you started yourself, or in one "
			       "started by root");
		failure_problem(&f, "setup");
		fail_job(c, c->dir, c->stem, &f);
		return -1;
	}
	/* Everything read for the prompt is read with its writer's rights. */
	if (creds_enter(&c->owner) < 0) {
		failure_init(&f, "cannot act with the rights of the prompt's writer");
		f.whose = WHOSE_BANANAFS;
		fail_quietly(c, &f);
		return -1;
	}
	size_t len = 0, file_size = 0;
	char *buf = n->kind == NODE_USER ? read_prompt(b->tree_fd, c->path, &len, &file_size) : NULL;
	if (!buf) {
		creds_leave();
		/* Gone (deleted or renamed away) before it ran: nothing to do. */
		log_debug("prompt %s vanished before it ran", c->path);
		failure_init(&f, "prompt file vanished before it ran");
		fail_quietly(c, &f);
		status_lock();
		if (status_get(c->path) && status_get(c->path)->gen == c->gen)
			status_drop(c->path);
		status_unlock();
		return -1;
	}
	enum prompt_err pe = prompt_parse(buf, len, &ji->p, err, sizeof(err));
	free(buf);
	if (pe == PROMPT_TOO_BIG && file_size > len)
		prompt_too_big_msg(file_size, err, sizeof(err));
	if (pe == PROMPT_EMPTY) {
		creds_leave();
		failure_init(&f, "empty prompt: nothing was sent and nothing was billed");
		f.whose = WHOSE_USER;
		f.next_move = "write the text of the image you want into the file";
		fail_job(c, c->dir, c->stem, &f);
		return -1;
	}
	if (pe != PROMPT_OK) {
		creds_leave();
		jobplan_refuse(&f, err, "fix the prompt file and save it again");
		fail_job(c, c->dir, c->stem, &f);
		return -1;
	}
	if (folder_conf_load(b->tree_fd, c->dir, &ji->fc, err, sizeof(err)) < 0) {
		creds_leave();
		jobplan_refuse(&f, err, "fix the folder's .bananafs.conf and save the prompt again");
		fail_job(c, c->dir, c->stem, &f);
		return -1;
	}
	ji->in = (struct jobplan_in){
		.prompt = &ji->p, .folder = &ji->fc, .cfg = &b->cfg, .model = n->model->id, .size = n->size,
		.dir = c->dir, .stem = c->stem, .mount_len = b->mountpoint ? strlen(b->mountpoint) : 0,
	};
	if (jobplan_make(&ji->in, &ji->plan, &f) < 0) {
		creds_leave();
		fail_job(c, c->dir, c->stem, &f);
		return -1;
	}
	if (ji->p.ninputs && prompt_load_inputs(&ji->p, b->tree_fd, c->dir, ji->refs, err, sizeof(err)) < 0) {
		creds_leave();
		jobplan_refuse(&f, err, "fix the prompt file and save it again");
		fail_job(c, c->dir, c->stem, &f);
		return -1;
	}
	creds_leave();
	ji->nrefs = ji->p.ninputs;

	/* Before anything is paid: every output name is free or ours to replace. */
	for (int i = 0; i < ji->plan.nnames; i++)
		ji->names[i] = ji->plan.names[i];
	c->names = ji->names;
	c->nnames = ji->plan.nnames;
	if (publish_check(b, c->dir, c->names, c->nnames, &c->owner, err, sizeof(err)) < 0) {
		char key[KEY_HEX_LEN];
		settle(c, false);	/* a copy tool may still be writing the image it brought */
		if (images_came_along(c, ji, key)) {
			finish(c, PS_CACHED, NULL, key, 0, NULL);
			return -1;
		}
		taken(&f, err);
		fail_job(c, c->dir, c->stem, &f);
		return -1;
	}
	return 0;
}

/* How the candidates of a job went. */
struct job_tally {
	int ok, cached, dry, pending;
	double cost;
	char batch_name[128];
	char lastkey[KEY_HEX_LEN];
	char made_by[64];		/* the model that made it, when not the one asked for */
	struct told told;		/* the last failure of a candidate */
};

/*
 * Walks each candidate of the plan through the pipeline (cache/fetch.h)
 * and places what it made.  Stops early when the job is no longer current
 * or an output name was taken while it waited.
 */
static void job_walk(struct job_ctx *c, struct job_input *ji, const char *job_id, const char *reason,
		     struct job_tally *t)
{
	struct bfs *b = c->j->b;
	const struct jobplan *pl = &ji->plan;
	struct failure f;

	for (int i = 1; i <= pl->n; i++) {
		struct gen_request rq;
		struct fetch_outcome out;

		jobplan_request(pl, i, ji->refs, ji->nrefs, c->path, &rq);
		if (pl->route == ROUTE_BATCH) {
			/* The batcher calls on_batch_done with this reference later. */
			char ref[PATH_MAX + 64];
			snprintf(ref, sizeof(ref), "%" PRIu64 "/%d/%d:%s", c->gen, i, pl->n, c->path);
			fetch_image_batch(&b->fetch, &rq, job_id, ref, on_fetch_status, c, &out);
			if (out.result == FETCH_BATCH_PENDING) {
				/* Counted now: the batcher may report before this loop ends. */
				status_lock();
				struct prompt_status *ps = status_get(c->path);
				if (ps && ps->gen == c->gen)
					ps->batch_pending++;
				status_unlock();
			}
		} else {
			fetch_image(&b->fetch, &rq, job_id, reason, on_fetch_status, c, &out);
		}
		snprintf(t->lastkey, sizeof(t->lastkey), "%s", out.key_hex);
		if (out.cost_usd > 0)
			t->cost += out.cost_usd;
		if (out.result == FETCH_OK) {
			if (out.fallback || strcmp(out.model_used, rq.model) != 0)
				snprintf(t->made_by, sizeof(t->made_by), "%s", out.model_used);	/* fallback, or Google's routing */
			/* A cache hit in a folder a copy tool is filling waits for it to finish. */
			if (out.source != SRC_GENERATED)
				settle(c, false);
			if (!current(c) || !prompt_present(b, c->path)) {
				fetch_outcome_free(&out);
				break;
			}
			if (place_image(b, c->dir, c->stem, i, pl->n, &out, &c->owner) < 0) {
				bool was_taken = errno == EEXIST;
				char name[NAME_MAX + 32];
				jobplan_output_name(name, sizeof(name), c->stem, i, pl->n, out.obj.ext);
				if (was_taken && publish_holds_object(b, c->dir, name, out.obj.path, &c->owner)) {
					t->ok++;	/* a copy brought this very image along */
					t->cached++;
				} else {
					if (was_taken)
						taken(&f, TAKEN_WHY);
					else
						unplaced(&f);
					tell(&t->told, &f);
				}
			} else {
				t->ok++;
				if (out.source != SRC_GENERATED)
					t->cached++;
			}
		} else if (out.result == FETCH_DRY_RUN) {
			t->dry++;
		} else if (out.result == FETCH_BATCH_PENDING) {
			t->pending++;
			if (out.batch_name[0])
				snprintf(t->batch_name, sizeof(t->batch_name), "%s", out.batch_name);
		} else if (c->taken[0]) {
			/* Abandoned before sending: a copy tool brought the image along. */
			taken(&f, c->taken);
			tell(&t->told, &f);
			fetch_outcome_free(&out);
			break;
		} else {
			fetch_failure(&out, &rq, &f);
			tell(&t->told, &f);	/* before out is freed: f borrows its strings */
			if (out.res.cls == ERR_STORE)
				set_store_held(c);	/* paid and held in memory: the store watcher retries */
		}
		fetch_outcome_free(&out);
	}
}

/* Ends the job from its tally: pending in a batch, dry run, failed, done, or superseded. */
static void job_end(struct job_ctx *c, struct job_tally *t)
{
	struct bfs *b = c->j->b;
	char ename[NAME_MAX + 32];
	snprintf(ename, sizeof(ename), "%s.error", c->stem);
	bool ename_fits = strlen(ename) <= NAME_MAX;
	if (t->pending) {
		/* The journal row stays until the batcher reports every candidate. */
		int all_done = 0;
		status_lock();
		struct prompt_status *ps = status_get(c->path);
		if (ps && ps->gen == c->gen) {
			status_set(ps, PS_BATCH_PENDING);
			ps->batch_failed |= told_any(&t->told);
			ps->batch_loop_done = 1;
			snprintf(ps->key, sizeof(ps->key), "%s", t->lastkey);
			if (t->batch_name[0])
				snprintf(ps->batch, sizeof(ps->batch), "%s", t->batch_name);
			ps->cost_usd = t->cost;
			if (ps->batch_pending <= 0)
				all_done = batch_finish_locked(b, ps, told_any(&t->told) ? told_line(&t->told) : NULL);
		}
		status_unlock();
		if (all_done && ename_fits)
			publish_remove(b, c->dir, ename, &c->owner);
		if (t->told.text && ename_fits && current(c))
			publish_text(b, c->dir, ename, t->told.text, &c->owner);
	} else if (t->dry) {
		finish(c, PS_DRY_RUN, NULL, t->lastkey, t->cost, NULL);
	} else if (told_any(&t->told)) {
		fail_told(c, c->dir, c->stem, &t->told);
	} else if (t->ok) {
		if (current(c) && ename_fits)
			publish_remove(b, c->dir, ename, &c->owner);
		finish(c, t->cached == t->ok ? PS_CACHED : PS_DONE, NULL, t->lastkey, t->cost, t->made_by);
	} else {
		struct failure f;
		struct told told = { 0 };
		failure_init(&f, "superseded");
		tell(&told, &f);
		finish(c, PS_FAILED, told_line(&told), t->lastkey, t->cost, NULL);
		told_free(&told);
	}
}

static void run_job(struct jobs *j, const char *relpath, const char *reason)
{
	struct bfs *b = j->b;
	struct job_ctx c = { .j = j, .path = relpath };
	char dir[PATH_MAX], stem[NAME_MAX + 1], abs[PATH_MAX + 1], job_id[JOBID_LEN];
	int64_t jid = -1;
	bool run = false;

	if (!job_claim(&c, &jid, &run))
		return;
	if (jid > 0)
		journal_start(&b->store, jid);
	if (run)
		reason = FETCH_REASON_RUN;
	split_path(relpath, dir, sizeof(dir), stem, sizeof(stem));
	c.dir = dir;
	c.stem = stem;
	snprintf(abs, sizeof(abs), "/%s", relpath);
	struct node n;
	tree_classify(abs, &n);

	struct job_input ji = { 0 };
	if (job_prepare(&c, &n, &ji) < 0) {
		job_input_free(&ji);
		return;
	}
	/* Unique across mounts and machines, and the same for a resumed job. */
	if ((jid <= 0 || journal_job_uid(&b->store, jid, job_id) < 0) && jobid_make(b->fetch.clk, job_id) < 0)
		snprintf(job_id, sizeof(job_id), "-");
	struct job_tally t = { 0 };
	job_walk(&c, &ji, job_id, reason, &t);
	job_input_free(&ji);
	job_end(&c, &t);
	told_free(&t.told);
}

/*
 * The batcher's report for one candidate ("gen/i/n:relpath").  Reports for
 * an older generation of the prompt (rewritten since, or from before a
 * remount) publish nothing: the current job publishes its own result, and
 * a resumed job finds the image in the cache.
 */
void jobs_batch_done(void *arg, const char *ref, const struct fetch_outcome *out)
{
	struct jobs *j = arg;
	struct bfs *b = j->b;
	uint64_t gen;
	int i, n, off = 0;
	if (sscanf(ref, "%" SCNu64 "/%d/%d:%n", &gen, &i, &n, &off) != 3 || off == 0 || i < 1 || n < i)
		return;
	const char *relpath = ref + off;
	struct writer owner;
	status_lock();
	struct prompt_status *cur = status_get(relpath);
	bool stale = !cur || cur->gen != gen;
	if (!stale)
		owner = cur->owner;
	status_unlock();
	if (stale || !prompt_present(b, relpath))
		return;

	char dir[PATH_MAX], stem[NAME_MAX + 1];
	split_path(relpath, dir, sizeof(dir), stem, sizeof(stem));
	struct failure f;
	struct told told = { 0 };
	if (out->result == FETCH_OK) {
		if (place_image(b, dir, stem, i, n, out, &owner) < 0) {
			if (errno == EEXIST)
				taken(&f, TAKEN_WHY);
			else
				unplaced(&f);
			tell(&told, &f);
		}
	} else {
		struct node nd;
		char abs[PATH_MAX + 1];
		snprintf(abs, sizeof(abs), "/%s", relpath);
		tree_classify(abs, &nd);
		struct gen_request rq = {
			.model = nd.model ? nd.model->id : "", .size = nd.size ? nd.size : "",
			.aspect = "", .n = n, .index = i, .route = ROUTE_BATCH,
		};
		fetch_failure(out, &rq, &f);
		tell(&told, &f);
	}
	char ename[NAME_MAX + 32];
	snprintf(ename, sizeof(ename), "%s.error", stem);
	bool ename_fits = strlen(ename) <= NAME_MAX;
	if (told.text && ename_fits)
		publish_text(b, dir, ename, told.text, &owner);

	int all_done = 0;
	status_lock();
	struct prompt_status *s = status_get(relpath);
	if (s && s->gen == gen) {
		if (told_any(&told))
			s->batch_failed = 1;
		if (out->batch_name[0])
			snprintf(s->batch, sizeof(s->batch), "%s", out->batch_name);
		s->batch_pending--;
		if (s->batch_pending <= 0 && s->batch_loop_done)
			all_done = batch_finish_locked(b, s, told_any(&told) ? told_line(&told) : NULL);
	}
	status_unlock();
	if (all_done && ename_fits)
		publish_remove(b, dir, ename, &owner);
	told_free(&told);
}

static void *worker(void *arg)
{
	struct jobs *j = arg;
	for (;;) {
		pthread_mutex_lock(&j->mu);
		while (!j->head && !j->stop)
			pthread_cond_wait(&j->cv, &j->mu);
		if (j->stop) {
			pthread_mutex_unlock(&j->mu);
			return NULL;
		}
		struct qitem *q = j->head;
		j->head = q->next;
		if (!j->head)
			j->tail = NULL;
		j->running++;
		pthread_mutex_unlock(&j->mu);

		run_job(j, q->path, q->reason);
		free(q->path);
		free(q);

		pthread_mutex_lock(&j->mu);
		j->running--;
		pthread_mutex_unlock(&j->mu);
	}
}

/*
 * The store watcher: paid images the store refused (no space, read-only)
 * wait in memory (cache/held.h).  Every couple of seconds, when some do and
 * the store has room for them, their prompts are queued again: the walk
 * finds the held answer at gate 3 and stores and publishes it, with no new
 * request.  While the store stays full nothing is retried, so the prompt
 * keeps saying why.
 */
#define STORE_WATCH_S 2

struct held_prompts {
	char **paths;
	struct writer *owners;
	int n, cap;
};

static void collect_held(struct prompt_status *s, void *arg)
{
	struct held_prompts *h = arg;

	if (!s->store_held || s->state != PS_FAILED)
		return;
	if (h->n == h->cap) {
		int cap = h->cap ? h->cap * 2 : 8;
		char **np = realloc(h->paths, sizeof(*np) * (size_t)cap);
		if (np)
			h->paths = np;
		struct writer *no = np ? realloc(h->owners, sizeof(*no) * (size_t)cap) : NULL;
		if (!no)
			return;
		h->owners = no;
		h->cap = cap;
	}
	h->owners[h->n] = s->owner;
	if ((h->paths[h->n] = strdup(s->path))) {
		s->store_held = false;
		h->n++;
	}
}

static bool store_has_room(struct bfs *b)
{
	struct statvfs st;

	if (statvfs(b->store.dir, &st) < 0)
		return false;
	return (unsigned long long)st.f_bavail * st.f_frsize >
	       (unsigned long long)held_bytes(&b->fetch.held) + (1ull << 20);
}

static void *store_watcher(void *arg)
{
	struct jobs *j = arg;
	struct timespec until;

	pthread_mutex_lock(&j->mu);
	while (!j->stop) {
		clock_gettime(CLOCK_REALTIME, &until);	/* the condvar's clock; a nap, not a decision */
		until.tv_sec += STORE_WATCH_S;
		pthread_cond_timedwait(&j->watch_cv, &j->mu, &until);
		if (j->stop || held_count(&j->b->fetch.held) == 0)
			continue;
		pthread_mutex_unlock(&j->mu);
		if (store_has_room(j->b)) {
			struct held_prompts h = { 0 };

			status_foreach(collect_held, &h);
			for (int i = 0; i < h.n; i++) {
				log_info("the store has room again: storing the paid image of %s", h.paths[i]);
				jobs_trigger(j, h.paths[i], &h.owners[i]);
				free(h.paths[i]);
			}
			free(h.paths);
			free(h.owners);
		}
		pthread_mutex_lock(&j->mu);
	}
	pthread_mutex_unlock(&j->mu);
	return NULL;
}

int jobs_start(struct jobs *j, int nworkers)
{
	if (pthread_create(&j->watcher, NULL, store_watcher, j) != 0)
		return -1;
	j->watching = true;
	j->threads = calloc((size_t)nworkers, sizeof(*j->threads));
	if (!j->threads)
		return -1;
	for (int i = 0; i < nworkers; i++) {
		if (pthread_create(&j->threads[i], NULL, worker, j) != 0)
			return -1;
		j->nworkers++;
	}
	return 0;
}

int jobs_stop(struct jobs *j, double grace_s, int *busy)
{
	pthread_mutex_lock(&j->mu);
	j->stop = 1;
	pthread_cond_broadcast(&j->cv);
	pthread_cond_broadcast(&j->watch_cv);
	pthread_mutex_unlock(&j->mu);
	/*
	 * A worker may be inside a long request or a back-off sleep.  Its job is
	 * journaled, so rather than hold the unmount, wait a little and let the
	 * process end around it; the next mount resumes the job.
	 */
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += (time_t)grace_s;
	int stuck = 0;
	if (j->watching) {	/* it never blocks for long: always joined */
		pthread_join(j->watcher, NULL);
		j->watching = false;
	}
	for (int i = 0; i < j->nworkers; i++)
		if (pthread_timedjoin_np(j->threads[i], NULL, &until) != 0)
			stuck++;
	int left = 0;
	pthread_mutex_lock(&j->mu);
	left = j->running;
	for (struct qitem *q = j->head; q; q = q->next)
		left++;
	pthread_mutex_unlock(&j->mu);
	*busy = stuck;
	return left;
}

void jobs_free(struct jobs *j)
{
	while (j->head) {
		struct qitem *q = j->head;
		j->head = q->next;
		free(q->path);
		free(q);
	}
	free(j->threads);
	pthread_mutex_destroy(&j->mu);
	pthread_cond_destroy(&j->cv);
	pthread_cond_destroy(&j->watch_cv);
	free(j);
}

struct counts {
	int queued, running, waiting, done, failed;
};

static void count_one(struct prompt_status *s, void *arg)
{
	struct counts *c = arg;
	switch (s->state) {
	case PS_QUEUED: c->queued++; break;
	case PS_RUNNING: c->running++; break;
	case PS_WAITING_SLOT: case PS_WAITING_QUOTA: case PS_BATCH_PENDING: c->waiting++; break;
	case PS_DONE: case PS_CACHED: c->done++; break;
	case PS_FAILED: c->failed++; break;
	case PS_DRY_RUN: case PS_CANCELLED: case PS_COUNT: break;	/* not counted */
	}
}

void jobs_counts(struct jobs *j, int *queued, int *running, int *waiting, int *done, int *failed)
{
	(void)j;
	struct counts c = { 0 };
	status_foreach(count_one, &c);
	if (queued) *queued = c.queued;
	if (running) *running = c.running;
	if (waiting) *waiting = c.waiting;
	if (done) *done = c.done;
	if (failed) *failed = c.failed;
}
