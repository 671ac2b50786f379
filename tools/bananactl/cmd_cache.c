/*
 * cmd_cache.c - "bananactl cache stats|verify|gc": the object store seen
 * from outside the daemon.  gc never removes an object that is still
 * linked into the tree (st_nlink > 1): that file is a published image.
 */
#include <err.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "api/image.h"
#include "cache/key.h"
#include "cache/store.h"
#include "tools/bananactl/ctl.h"
#include "tools/bananactl/parse.h"

/* Opens the store only when it exists: bananactl never creates one. */
static int
open_store(struct ctl *c, struct store *s)
{
	struct stat st;
	char errbuf[512];

	if (ctl_resolve(c, NULL) < 0)
		return -1;
	if (stat(c->store, &st) < 0 || !S_ISDIR(st.st_mode)) {
		warnx("no store at %s (give one with -s)", c->store);
		return -1;
	}
	if (store_open(s, c->store, errbuf, sizeof(errbuf)) < 0) {
		warnx("%s: %s", c->store, errbuf);
		return -1;
	}
	return 0;
}

/* The object's files: the original, and the published file when it is another. */
static int
object_files(const struct object_info *o, const char *files[2])
{
	files[0] = o->orig_path;
	if (o->path[0] != '\0' && strcmp(o->path, o->orig_path) != 0) {
		files[1] = o->path;
		return 2;
	}
	return 1;
}

static const char *
file_ext(const char *path)
{
	const char *slash = strrchr(path, '/'), *dot = strrchr(path, '.');

	return dot && (!slash || dot > slash) ? dot + 1 : "";
}

/* ---- stats --------------------------------------------------------------- */

struct ext_total {
	char ext[16];
	long files;
	long long bytes;
};

struct stats {
	long objects;
	long long bytes;
	struct ext_total ext[16];
	int next;
};

static int
stats_one(const char *keyhex, const struct object_info *o, void *arg)
{
	struct stats *t = arg;
	const char *files[2];
	int nf = object_files(o, files);

	(void)keyhex;
	t->objects++;
	for (int i = 0; i < nf; i++) {
		struct stat st;
		const char *ext = file_ext(files[i]);
		int j;

		if (stat(files[i], &st) < 0)
			continue;
		t->bytes += st.st_size;
		for (j = 0; j < t->next; j++)
			if (strcmp(t->ext[j].ext, ext) == 0)
				break;
		if (j == t->next) {
			if (t->next == (int)(sizeof(t->ext) / sizeof(t->ext[0])))
				continue;
			snprintf(t->ext[j].ext, sizeof(t->ext[j].ext), "%s", ext);
			t->next++;
		}
		t->ext[j].files++;
		t->ext[j].bytes += st.st_size;
	}
	return 0;
}

static int
cache_stats(struct store *s)
{
	struct stats t = { 0 };
	char b[32];

	if (store_foreach(s, stats_one, &t) < 0) {
		warnx("%s: cannot read the object index", s->dir);
		return 1;
	}
	fmt_bytes(t.bytes, b, sizeof(b));
	printf("%ld objects, %lld bytes (%s) in %s\n", t.objects, t.bytes, b, s->objects_dir);
	for (int j = 0; j < t.next; j++) {
		fmt_bytes(t.ext[j].bytes, b, sizeof(b));
		printf("  %-5s %6ld files  %12lld bytes (%s)\n", t.ext[j].ext[0] ? t.ext[j].ext : "-",
		       t.ext[j].files, t.ext[j].bytes, b);
	}
	return 0;
}

/* ---- verify -------------------------------------------------------------- */

struct verify {
	long checked, corrupt;
};

/* Checks one file: present, a well-formed image of the indexed pixel size. 0, or -1 with why. */
static int
check_file(const char *path, const struct object_info *o, long long *size, char *why, size_t len)
{
	unsigned char *b;
	size_t n;
	int w = 0, h = 0;
	char ierr[256];

	if ((b = (unsigned char *)ctl_read_file(path, &n)) == NULL) {
		snprintf(why, len, "%s: %s", path, strerror(errno));
		return -1;
	}
	*size = (long long)n;
	if (image_check(b, n, &w, &h, ierr, sizeof(ierr)) < 0) {
		snprintf(why, len, "%s: not a valid image: %s", path, ierr);
		free(b);
		return -1;
	}
	free(b);
	if (o->width > 0 && o->height > 0 && (w != o->width || h != o->height)) {
		snprintf(why, len, "%s: %dx%d pixels, the index says %dx%d", path, w, h, o->width, o->height);
		return -1;
	}
	return 0;
}

static const char *
base_name(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}

static int
verify_one(const char *keyhex, const struct object_info *o, void *arg)
{
	struct verify *v = arg;
	const char *files[2];
	int nf = object_files(o, files);
	long long size[2] = { -1, -1 };
	char why[8192] = "";
	bool bad = false;

	v->checked++;
	for (int i = 0; i < nf && !bad; i++)
		bad = check_file(files[i], o, &size[i], why, sizeof(why)) < 0;
	/* The index records the byte count of the published file (the last one). */
	if (!bad && o->bytes > 0 && size[nf - 1] != o->bytes) {
		snprintf(why, sizeof(why), "%s: %lld bytes, the index says %lld", base_name(files[nf - 1]),
			 size[nf - 1], o->bytes);
		bad = true;
	}
	if (bad) {
		printf("corrupt %s  %s\n", keyhex, why);
		v->corrupt++;
	}
	return 0;
}

static int
cache_verify(struct store *s)
{
	struct verify v = { 0 };

	if (store_foreach(s, verify_one, &v) < 0) {
		warnx("%s: cannot read the object index", s->dir);
		return 1;
	}
	printf("%ld objects checked, %ld corrupt\n", v.checked, v.corrupt);
	return v.corrupt ? 1 : 0;
}

/* ---- gc ------------------------------------------------------------------ */

struct obj {
	char key[KEY_HEX_LEN];
	char files[2][4096];
	int nf;
	long long bytes;		/* on disk, all files of the object */
	time_t mtime;			/* objects are never rewritten: this is when it was made */
	bool linked;			/* some file has st_nlink > 1: published in the tree */
	bool remove;
};

struct gc {
	struct obj *o;
	int n;
};

static int
gc_collect(const char *keyhex, const struct object_info *oi, void *arg)
{
	struct gc *g = arg;
	const char *files[2];
	struct obj *o, *no;
	int nf = object_files(oi, files);

	if ((no = realloc(g->o, sizeof(*no) * (size_t)(g->n + 1))) == NULL)
		err(1, "realloc");
	g->o = no;
	o = &g->o[g->n++];
	memset(o, 0, sizeof(*o));
	snprintf(o->key, sizeof(o->key), "%s", keyhex);
	o->nf = nf;
	for (int i = 0; i < nf; i++) {
		struct stat st;

		snprintf(o->files[i], sizeof(o->files[i]), "%s", files[i]);
		if (stat(files[i], &st) < 0)
			continue;
		o->bytes += st.st_size;
		if (st.st_nlink > 1)
			o->linked = true;
		if (i == 0 || st.st_mtime < o->mtime)
			o->mtime = st.st_mtime;
	}
	return 0;
}

static int
oldest_first(const void *a, const void *b)
{
	const struct obj *x = a, *y = b;

	return (x->mtime > y->mtime) - (x->mtime < y->mtime);
}

/* The store drops the index row first: a file without a row is never served. */
static int
gc_remove(struct store *s, struct obj *o)
{
	if (store_forget(s, o->key) < 0) {
		warnx("%s: cannot remove the index row", o->key);
		return -1;
	}
	for (int i = 0; i < o->nf; i++)
		if (unlink(o->files[i]) < 0 && errno != ENOENT)
			warn("%s", o->files[i]);
	return 0;
}

static int
cache_gc(struct store *s, long long keep_days, long long max_size)
{
	struct gc g = { 0 };
	long long total = 0, freed = 0;
	long removed = 0, kept_linked = 0;
	time_t now = time(NULL);
	char b[32];
	int rc = 0;

	if (store_foreach(s, gc_collect, &g) < 0) {
		warnx("%s: cannot read the object index", s->dir);
		free(g.o);
		return 1;
	}
	qsort(g.o, (size_t)g.n, sizeof(*g.o), oldest_first);
	for (int i = 0; i < g.n; i++) {
		total += g.o[i].bytes;
		if (keep_days >= 0 && now - g.o[i].mtime > keep_days * 86400)
			g.o[i].remove = true;
	}
	if (max_size >= 0) {
		long long left = total;

		for (int i = 0; i < g.n; i++)
			if (g.o[i].remove)
				left -= g.o[i].bytes;
		for (int i = 0; i < g.n && left > max_size; i++) {
			if (g.o[i].remove || g.o[i].linked)
				continue;
			g.o[i].remove = true;
			left -= g.o[i].bytes;
		}
	}
	for (int i = 0; i < g.n; i++) {
		struct obj *o = &g.o[i];

		if (!o->remove)
			continue;
		if (o->linked) {
			kept_linked++;
			continue;
		}
		if (gc_remove(s, o) < 0) {
			rc = 1;
			continue;
		}
		fmt_bytes(o->bytes, b, sizeof(b));
		printf("removed %s  %s  %lld days old\n", o->key, b, (long long)(now - o->mtime) / 86400);
		removed++;
		freed += o->bytes;
	}
	fmt_bytes(freed, b, sizeof(b));
	printf("%ld objects removed, %lld bytes (%s) freed", removed, freed, b);
	if (kept_linked)
		printf("; %ld kept because they are still linked in the tree", kept_linked);
	putchar('\n');
	if (max_size >= 0 && total - freed > max_size) {
		fmt_bytes(total - freed, b, sizeof(b));
		printf("the cache still holds %s: the rest is published in the tree\n", b);
	}
	free(g.o);
	return rc;
}

int
cmd_cache(struct ctl *c, int argc, char **argv)
{
	static const char *const subs[] = { "stats", "verify", "gc" };
	static const struct option opts[] = {
		{ "keep-days", required_argument, NULL, 'k' },
		{ "max-size", required_argument, NULL, 'M' },
		{ NULL, 0, NULL, 0 }
	};
	long long keep_days = -1, max_size = -1;
	const char *errstr;
	struct store s;
	int sub, ch, rc;

	if (argc < 2)
		usage();
	if ((sub = ctl_pick_word("cache command", argv[1], subs, 3)) < 0)
		return 1;
	argc--;
	argv++;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (sub != 2)
			usage();
		switch (ch) {
		case 'k':
			if (parse_num(optarg, 0, 100000, &keep_days, &errstr) < 0) {
				warnx("--keep-days is %s: %s", errstr, optarg);
				return 1;
			}
			break;
		case 'M':
			if (parse_size(optarg, &max_size) < 0) {
				warnx("--max-size wants a size such as 500M, 2G or 10K, not \"%s\"", optarg);
				return 1;
			}
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	if (sub == 2 && keep_days < 0 && max_size < 0) {
		warnx("cache gc needs --keep-days or --max-size");
		return 1;
	}
	if (open_store(c, &s) < 0)
		return 1;
	if (sub == 0)
		rc = cache_stats(&s);
	else if (sub == 1)
		rc = cache_verify(&s);
	else
		rc = cache_gc(&s, keep_days, max_size);
	store_close(&s);
	return rc;
}
