/*
 * arrivals.c - see arrivals.h.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "cache/beneath.h"
#include "fs/arrivals.h"

#define SLOTS 1024

struct slot {
	uint64_t count;
	double last, prev;
	pid_t excl_pid;			/* the last O_EXCL creator, 0 for none */
	unsigned long long excl_start;	/* its start time: a reused pid is another process */
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct slot slots[SLOTS];	/* protected by mu */

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

void arrivals_note(int dirfd)
{
	struct stat st;
	if (fstat(dirfd, &st) < 0)
		return;
	double now = mono_now();
	pthread_mutex_lock(&mu);
	struct slot *s = &slots[slot_of(&st)];
	s->count++;
	s->prev = s->last;
	s->last = now;
	pthread_mutex_unlock(&mu);
}

void arrivals_exclusive(int dirfd, pid_t pid)
{
	struct stat st;
	if (pid <= 0 || fstat(dirfd, &st) < 0)
		return;
	unsigned i = slot_of(&st);
	pthread_mutex_lock(&mu);
	bool known = slots[i].excl_pid == pid;
	pthread_mutex_unlock(&mu);
	if (known)		/* one /proc read per copier and folder, not per file */
		return;
	unsigned long long t = start_time(pid);
	pthread_mutex_lock(&mu);
	slots[i].excl_pid = t ? pid : 0;
	slots[i].excl_start = t;
	pthread_mutex_unlock(&mu);
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
	a->copier_running = s.excl_pid > 0 && start_time(s.excl_pid) == s.excl_start;
}
