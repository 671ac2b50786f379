/*
 * arrivals.c - see arrivals.h.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>
#include "cache/beneath.h"
#include "fs/arrivals.h"

#define SLOTS 1024

/* A folder's arrivals. */
struct slot {
	uint64_t count;
	double last, prev;
};

/* A file created with O_EXCL, and by whom. */
struct maker {
	dev_t dev;			/* the file: a number the file system may give again */
	ino_t ino;
	struct statx_timestamp born;	/* so its birth time too, when known */
	pid_t pid;			/* 0 for none */
	unsigned long long start;	/* its start time: a reused pid is another process */
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct slot slots[SLOTS];	/* these four protected by mu */
static struct maker makers[SLOTS];
static pid_t last_pid;			/* the last O_EXCL creator: one /proc read per copy, not per file */
static unsigned long long last_start;

static unsigned slot_of(const struct stat *st)
{
	uint64_t h = ((uint64_t)st->st_dev * 0x9e3779b97f4a7c15ull) ^
		     ((uint64_t)st->st_ino * 0xc2b2ae3d27d4eb4full);
	return (unsigned)(h >> 54) % SLOTS;
}

static double mono_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The start time of pid (field 22 of /proc/PID/stat), or 0 when it has gone. */
static unsigned long long start_time(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	/* After the command name, which may hold anything: the state is field 3. */
	char *p = strrchr(buf, ')');
	unsigned long long t = 0;
	char state = 0;
	if (!p || sscanf(p + 1, " %c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d "
			 "%*d %*d %llu", &state, &t) != 2 || state == 'Z' || state == 'X')
		return 0;
	return t;
}

void arrivals_note(dev_t dev, ino_t ino)
{
	struct stat st = { .st_dev = dev, .st_ino = ino };
	double now = mono_now();
	pthread_mutex_lock(&mu);
	struct slot *s = &slots[slot_of(&st)];
	s->count++;
	s->prev = s->last;
	s->last = now;
	pthread_mutex_unlock(&mu);
}

/* A file's statx as a maker record's key. */
static void statx_key(const struct statx *sx, struct maker *k)
{
	memset(k, 0, sizeof(*k));
	k->dev = makedev(sx->stx_dev_major, sx->stx_dev_minor);
	k->ino = sx->stx_ino;
	if (sx->stx_mask & STATX_BTIME)
		k->born = sx->stx_btime;
}

/* The file name in dirfd as a maker record's key; false when it cannot be read. */
static bool file_key(int dirfd, const char *name, struct maker *k)
{
	struct statx sx;
	if (statx(dirfd, name, AT_SYMLINK_NOFOLLOW, STATX_INO | STATX_BTIME, &sx) < 0)
		return false;
	statx_key(&sx, k);
	return true;
}

static unsigned maker_slot(const struct maker *k)
{
	struct stat st = { .st_dev = k->dev, .st_ino = k->ino };
	return slot_of(&st);
}

void arrivals_exclusive(const struct statx *sx, pid_t pid)
{
	struct maker k;
	if (pid <= 0)
		return;
	statx_key(sx, &k);
	pthread_mutex_lock(&mu);
	bool known = pid == last_pid;
	unsigned long long t = last_start;
	pthread_mutex_unlock(&mu);
	if (!known)
		t = start_time(pid);
	k.pid = t ? pid : 0;
	k.start = t;
	pthread_mutex_lock(&mu);
	last_pid = pid;
	last_start = t;
	makers[maker_slot(&k)] = k;
	pthread_mutex_unlock(&mu);
}

bool arrivals_copier_running(int tree_fd, const char *rel)
{
	struct maker k;
	if (!file_key(tree_fd, rel, &k))
		return false;
	pthread_mutex_lock(&mu);
	struct maker m = makers[maker_slot(&k)];
	pthread_mutex_unlock(&mu);
	return m.pid > 0 && m.dev == k.dev && m.ino == k.ino && m.born.tv_sec == k.born.tv_sec &&
	       m.born.tv_nsec == k.born.tv_nsec && start_time(m.pid) == m.start;
}

void arrivals_get(int tree_fd, const char *dir, struct arrivals *a)
{
	struct stat st;
	memset(a, 0, sizeof(*a));
	int fd = dir[0] ? open_beneath(tree_fd, dir, O_PATH | O_DIRECTORY | O_CLOEXEC)
			: fcntl(tree_fd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0)
		return;
	int rc = fstat(fd, &st);
	close(fd);
	if (rc < 0)
		return;
	pthread_mutex_lock(&mu);
	struct slot s = slots[slot_of(&st)];
	pthread_mutex_unlock(&mu);
	a->count = s.count;
	a->last = s.last;
	a->prev = s.prev;
}
