/*
 * status.c - a hash table of prompt states behind one mutex.  The table is
 * small next to the work each entry stands for (an HTTP request), so one
 * lock is enough.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>
#include "fs/status.h"

#define NBUCKETS 4096

static pthread_mutex_t status_mu = PTHREAD_MUTEX_INITIALIZER;
static struct prompt_status *buckets[NBUCKETS];	/* protected by status_mu */

void status_lock(void) { pthread_mutex_lock(&status_mu); }
void status_unlock(void) { pthread_mutex_unlock(&status_mu); }

static struct prompt_status **slot(const char *path)
{
	return &buckets[XXH3_64bits(path, strlen(path)) % NBUCKETS];
}

struct prompt_status *status_get(const char *path)
{
	for (struct prompt_status *s = *slot(path); s; s = s->next)
		if (strcmp(s->path, path) == 0)
			return s;
	return NULL;
}

struct prompt_status *status_make(const char *path)
{
	struct prompt_status *s = status_get(path);
	if (s)
		return s;
	s = calloc(1, sizeof(*s));
	if (!s || !(s->path = strdup(path))) {
		free(s);
		return NULL;
	}
	s->cost_usd = -1;
	s->job_id = -1;
	struct prompt_status **b = slot(path);
	s->next = *b;
	*b = s;
	return s;
}

static struct prompt_status *unlink_entry(const char *path)
{
	for (struct prompt_status **p = slot(path); *p; p = &(*p)->next)
		if (strcmp((*p)->path, path) == 0) {
			struct prompt_status *s = *p;
			*p = s->next;
			return s;
		}
	return NULL;
}

void status_drop(const char *path)
{
	struct prompt_status *s = unlink_entry(path);
	if (s) {
		free(s->path);
		free(s->error);
		free(s);
	}
}

void status_rename(const char *from, const char *to)
{
	struct prompt_status *s = unlink_entry(from);
	if (!s)
		return;
	status_drop(to);
	char *np = strdup(to);
	if (!np) {
		free(s->path);
		free(s->error);
		free(s);
		return;
	}
	free(s->path);
	s->path = np;
	struct prompt_status **b = slot(to);
	s->next = *b;
	*b = s;
}

void status_set(struct prompt_status *s, enum prompt_state st)
{
	s->state = st;
	s->updated = time(NULL);
	if (st != PS_WAITING_QUOTA)
		s->retry_at = 0;
}

bool status_retry_at(const struct prompt_status *s, char *buf, size_t len)
{
	struct tm tm;

	if (!s->retry_at || s->state != PS_WAITING_QUOTA)
		return false;
	gmtime_r(&s->retry_at, &tm);
	return strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) > 0;
}

void status_set_error(struct prompt_status *s, const char *error)
{
	free(s->error);
	s->error = error ? strdup(error) : NULL;
}

void status_foreach(void (*fn)(struct prompt_status *s, void *arg), void *arg)
{
	status_lock();
	for (int i = 0; i < NBUCKETS; i++)
		for (struct prompt_status *s = buckets[i]; s; s = s->next)
			fn(s, arg);
	status_unlock();
}
