/*
 * settle.c - see settle.h.
 */
#include <errno.h>
#include <time.h>
#include "fs/arrivals.h"
#include "fs/settle.h"

/* While a copier runs, how often to look whether it has exited. */
#define POLL_S 0.02

double settle_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void nap(double s)
{
	struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

void settle_wait(int tree_fd, const char *rel, const char *dir, const struct settle_mark *m,
		 double settle_s, bool paid, bool (*stop)(void *), void *arg)
{
	struct arrivals a;
	if (settle_s <= 0)
		return;
	if (paid) {
		double left = m->arrived + COPY_GRACE_S - settle_now();
		if (left > 0)
			nap(left);
	}
	arrivals_get(tree_fd, dir, &a);
	bool copier = arrivals_copier_running(tree_fd, rel);
	/* prev: the name before the newest, which is the prompt's own when it was created */
	bool busy = copier || (paid && (a.count != m->names ||
					(a.prev > 0 && m->arrived - a.prev < settle_s)));
	double start = settle_now();
	while (busy && (!stop || !stop(arg)) && settle_now() - start < SETTLE_CAP_S) {
		if (copier && !arrivals_copier_running(tree_fd, rel))
			return;		/* the copy tool has finished */
		arrivals_get(tree_fd, dir, &a);
		double quiet = settle_now() - a.last;
		if (quiet >= settle_s)
			return;
		double left = settle_s - quiet;
		nap(copier && left > POLL_S ? POLL_S : left);
	}
}
