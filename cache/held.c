/*
 * held.c - paid answers kept in memory until the store takes them (see held.h).
 *
 * The publishable file lives in a memfd: write_pub (the PNG writer with the
 * provenance chunks) writes to /proc/self/fd/N like to any path, and
 * held_store copies it into the store's temp file.  store_put is called
 * without the lock held (a slow disk must not stall other keys); the entry
 * is marked busy meanwhile, so a second caller for the same key is told
 * to come back instead of racing it.
 */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/errbuf.h"
#include "cache/held.h"

struct held_entry {
	struct held_entry *next;
	struct cache_key key;
	unsigned char *orig;
	size_t len;
	char orig_ext[8], pub_ext[8];
	int pub_fd;			/* memfd with the publishable file; -1 = publish the original */
	size_t pub_len;
	int width, height;
	bool busy;			/* a held_store is using it (under mu) */
};

void held_init(struct held *h, size_t cap)
{
	pthread_mutex_init(&h->mu, NULL);
	h->head = NULL;
	h->bytes = 0;
	h->cap = cap;
}

static void entry_free(struct held_entry *e)
{
	if (e->pub_fd >= 0)
		close(e->pub_fd);
	free(e->orig);
	free(e);
}

void held_destroy(struct held *h)
{
	struct held_entry *e, *next;

	for (e = h->head; e; e = next) {
		next = e->next;
		entry_free(e);
	}
	h->head = NULL;
	pthread_mutex_destroy(&h->mu);
}

static struct held_entry *find(struct held *h, const struct cache_key *k)
{
	for (struct held_entry *e = h->head; e; e = e->next)
		if (memcmp(e->key.b, k->b, sizeof(k->b)) == 0)
			return e;
	return NULL;
}

int held_put(struct held *h, const struct cache_key *k, const unsigned char *orig, size_t len,
	     const char *orig_ext, const char *pub_ext, int (*write_pub)(const char *path, void *arg),
	     void *arg, int width, int height, char *err, size_t errlen)
{
	struct held_entry *e = calloc(1, sizeof(*e));
	char path[64];
	struct stat st;

	if (!e || !(e->orig = malloc(len ? len : 1))) {
		free(e);
		errbuf_set(err, errlen, "out of memory");
		return -1;
	}
	memcpy(e->orig, orig, len);
	e->len = len;
	e->key = *k;
	e->width = width;
	e->height = height;
	e->pub_fd = -1;
	snprintf(e->orig_ext, sizeof(e->orig_ext), "%s", orig_ext);
	snprintf(e->pub_ext, sizeof(e->pub_ext), "%s", pub_ext);
	if (write_pub) {
		e->pub_fd = memfd_create("bananafs-held", MFD_CLOEXEC);
		snprintf(path, sizeof(path), "/proc/self/fd/%d", e->pub_fd);
		if (e->pub_fd < 0 || write_pub(path, arg) < 0 || fstat(e->pub_fd, &st) < 0) {
			errbuf_set(err, errlen, "cannot build the image in memory: %s",
				   e->pub_fd < 0 ? strerror(errno) : "the PNG writer failed");
			entry_free(e);
			return -1;
		}
		e->pub_len = (size_t)st.st_size;
	}
	pthread_mutex_lock(&h->mu);
	if (find(h, k)) {
		pthread_mutex_unlock(&h->mu);
		entry_free(e);		/* the first answer is kept */
		return 0;
	}
	if (h->bytes + e->len + e->pub_len > h->cap) {
		pthread_mutex_unlock(&h->mu);
		errbuf_set(err, errlen, "%zu MB of paid images are already waiting for the store",
			   h->bytes >> 20);
		entry_free(e);
		return -1;
	}
	h->bytes += e->len + e->pub_len;
	e->next = h->head;
	h->head = e;
	pthread_mutex_unlock(&h->mu);
	return 0;
}

/* write_pub for store_put: the memfd's bytes into the store's temp file. */
static int copy_pub(const char *tmp_path, void *arg)
{
	const struct held_entry *e = arg;
	char buf[65536];
	off_t off = 0;
	ssize_t n;
	int out = open(tmp_path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	int rc = 0;

	if (out < 0)
		return -1;
	while ((n = pread(e->pub_fd, buf, sizeof(buf), off)) > 0) {
		for (ssize_t done = 0; done < n;) {
			ssize_t w = write(out, buf + done, (size_t)(n - done));

			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0) {
				rc = -1;
				goto out_close;
			}
			done += w;
		}
		off += n;
	}
	if (n < 0)
		rc = -1;
out_close:
	if (close(out) < 0)
		rc = -1;
	return rc;
}

int held_store(struct held *h, struct store *s, const struct cache_key *k, struct object_info *info,
	       char *err, size_t errlen)
{
	struct held_entry *e, **pp;
	int rc;

	pthread_mutex_lock(&h->mu);
	e = find(h, k);
	if (e && e->busy) {
		pthread_mutex_unlock(&h->mu);
		errbuf_set(err, errlen, "the image is being stored right now");
		return -1;
	}
	if (e)
		e->busy = true;		/* only its user frees it: e stays valid unlocked */
	pthread_mutex_unlock(&h->mu);
	if (!e)
		return 0;
	rc = store_put(s, k, e->orig, e->len, e->orig_ext, e->pub_ext, e->pub_fd >= 0 ? copy_pub : NULL, e,
		       e->width, e->height, info, err, errlen);
	pthread_mutex_lock(&h->mu);
	if (rc < 0) {
		e->busy = false;
		pthread_mutex_unlock(&h->mu);
		return -1;
	}
	for (pp = &h->head; *pp && *pp != e; pp = &(*pp)->next)
		;
	if (*pp) {
		*pp = e->next;
		h->bytes -= e->len + e->pub_len;
		entry_free(e);
	}
	pthread_mutex_unlock(&h->mu);
	return 1;
}

int held_count(struct held *h)
{
	int n = 0;

	pthread_mutex_lock(&h->mu);
	for (struct held_entry *e = h->head; e; e = e->next)
		n++;
	pthread_mutex_unlock(&h->mu);
	return n;
}

size_t held_bytes(struct held *h)
{
	size_t n;

	pthread_mutex_lock(&h->mu);
	n = h->bytes;
	pthread_mutex_unlock(&h->mu);
	return n;
}
