/*
 * trigger.c - see trigger.h.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "cache/prompt.h"
#include "fs/jobs.h"
#include "fs/status.h"
#include "fs/tree.h"
#include "fs/trigger.h"

/* Open handles per backing inode. */
struct open_rec {
	dev_t dev;
	ino_t ino;
	int opens;
	bool dirty;
	bool has_writer;
	struct writer w;		/* who last opened it for writing or closed it changed */
	struct open_rec *next;
};

static pthread_mutex_t open_mu = PTHREAD_MUTEX_INITIALIZER;
static struct open_rec *open_list;	/* protected by open_mu */

/* Under open_mu. */
static struct open_rec *open_find(dev_t dev, ino_t ino)
{
	for (struct open_rec *r = open_list; r; r = r->next)
		if (r->dev == dev && r->ino == ino)
			return r;
	return NULL;
}

bool trigger_is_prompt(const char *rel)
{
	struct node n;
	tree_classify(rel, &n);
	if (n.kind != NODE_USER)
		return false;
	const char *s = strrchr(rel, '/');
	return prompt_name_triggers(s ? s + 1 : rel);
}

void trigger_open(dev_t dev, ino_t ino, bool dirty, const struct writer *w)
{
	pthread_mutex_lock(&open_mu);
	struct open_rec *r = open_find(dev, ino);
	if (!r && (r = calloc(1, sizeof(*r)))) {
		r->dev = dev;
		r->ino = ino;
		r->next = open_list;
		open_list = r;
	}
	if (r) {
		r->opens++;
		r->dirty |= dirty;
		if (w) {
			r->w = *w;
			r->has_writer = true;
		}
	}
	pthread_mutex_unlock(&open_mu);
}

void trigger_dirty(dev_t dev, ino_t ino)
{
	pthread_mutex_lock(&open_mu);
	struct open_rec *r = open_find(dev, ino);
	if (r)
		r->dirty = true;
	pthread_mutex_unlock(&open_mu);
}

bool trigger_is_dirty(dev_t dev, ino_t ino)
{
	pthread_mutex_lock(&open_mu);
	struct open_rec *r = open_find(dev, ino);
	bool dirty = r && r->dirty;
	pthread_mutex_unlock(&open_mu);
	return dirty;
}

bool trigger_close(dev_t dev, ino_t ino, struct writer *w)
{
	bool fire = false;
	pthread_mutex_lock(&open_mu);
	for (struct open_rec **p = &open_list; *p; p = &(*p)->next) {
		struct open_rec *r = *p;
		if (r->dev == dev && r->ino == ino) {
			if (--r->opens == 0) {
				fire = r->dirty;
				if (r->has_writer)
					*w = r->w;
				else
					memset(w, 0, sizeof(*w));
				*p = r->next;
				free(r);
			}
			break;
		}
	}
	pthread_mutex_unlock(&open_mu);
	return fire;
}

void trigger_flush(struct bfs *b, const char *rel, dev_t dev, ino_t ino, const struct writer *w)
{
	if (!trigger_is_prompt(rel))
		return;
	pthread_mutex_lock(&open_mu);
	struct open_rec *r = open_find(dev, ino);
	bool dirty = r && r->dirty;
	if (dirty && w) {
		r->w = *w;
		r->has_writer = true;
	}
	pthread_mutex_unlock(&open_mu);
	if (dirty)
		jobs_written(b->jobs, rel, w);
}

void trigger_written(struct bfs *b, const char *rel, const struct writer *w)
{
	if (trigger_is_prompt(rel))
		jobs_trigger(b->jobs, rel, w);
}

void trigger_gone(const char *rel)
{
	if (!trigger_is_prompt(rel))
		return;
	status_lock();
	struct prompt_status *s = status_get(rel);
	if (s && !s->queued)
		status_drop(rel);
	status_unlock();
}

void trigger_renamed(struct bfs *b, const char *from, const char *to, bool is_dir, bool exchange,
		     const struct writer *w)
{
	trigger_gone(from);
	trigger_written(b, to, w);
	if (exchange)
		trigger_written(b, from, w);
	else if (is_dir)
		jobs_folder_moved(b->jobs, from, to);
}
