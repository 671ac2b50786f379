/*
 * cmd_wait.c - "bananactl wait [--timeout seconds] path ...": polls each
 * prompt's user.bananafs.status xattr every 100 ms until it is finished.
 * Exit 0 when all succeeded, 1 when any failed, 2 on timeout or at once
 * when a path is not a prompt in a mount (it would never finish).
 */
#include <err.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "cache/prompt_state.h"
#include "tools/bananactl/ctl.h"
#include "tools/bananactl/parse.h"

#define POLL_NS (100 * 1000 * 1000L)

enum state { PENDING, RUNNING, SUCCEEDED, FAILED };

struct target {
	const char *path;
	enum state state;
	char status[32];		/* last status word seen; "" when none yet */
};

/*
 * Maps a status word (DESIGN.md section 1) to where the prompt stands: the
 * word becomes a prompt_state here, once, through bananafs's own name table.
 */
static enum state
state_of(const char *status)
{
	enum prompt_state ps;

	if (prompt_state_parse(status, &ps) < 0)
		return PENDING;		/* none yet, or a word this bananactl does not know */
	switch (prompt_state_end(ps)) {
	case PS_END_OK:
		return SUCCEEDED;
	case PS_END_FAILED:
		return FAILED;
	case PS_END_NONE:
		break;
	}
	return ps == PS_RUNNING ? RUNNING : PENDING;	/* queued, waiting-*, batch-pending */
}

/* Reads one xattr into buf; the length, 0 when absent, -1 on another error. */
static ssize_t
get_attr(const char *path, const char *name, char *buf, size_t len)
{
	ssize_t n = getxattr(path, name, buf, len - 1);

	if (n < 0) {
		buf[0] = '\0';
		return errno == ENODATA ? 0 : -1;
	}
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\0'))
		n--;
	buf[n] = '\0';
	return n;
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
progress(const struct target *t, int n)
{
	int done = 0, running = 0, failed = 0;

	for (int i = 0; i < n; i++) {
		done += t[i].state == SUCCEEDED;
		running += t[i].state == RUNNING;
		failed += t[i].state == FAILED;
	}
	fprintf(stderr, "\r%d/%d done, %d running", done, n, running);
	if (failed)
		fprintf(stderr, ", %d failed", failed);
	fputs("...\033[K", stderr);
}

int
cmd_wait(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "timeout", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 }
	};
	struct target *t;
	double timeout = -1, start;
	bool tty = isatty(STDERR_FILENO), timed_out = false;
	int ch, n, left, rc = 0;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch != 't' || parse_seconds(optarg, &timeout) < 0) {
			if (ch == 't')
				warnx("--timeout wants seconds, not \"%s\"", optarg);
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1)
		usage();
	/* A path that can never become a prompt would be waited on forever: refuse at once. */
	for (int i = 0; i < argc; i++) {
		char why[256], *mnt = NULL, *rel = ctl_prompt_path(argv[i], &mnt, why, sizeof(why));

		if (rel == NULL) {
			warnx("%s: %s", argv[i], why);
			rc = 2;
		}
		free(rel);
		free(mnt);
	}
	if (rc != 0)
		return rc;
	n = argc;
	t = xmalloc(sizeof(*t) * (size_t)n);
	left = n;
	for (int i = 0; i < n; i++) {
		t[i].path = argv[i];
		t[i].state = PENDING;
		t[i].status[0] = '\0';
	}

	start = now_s();
	while (left > 0) {
		for (int i = 0; i < n; i++) {
			ssize_t r;

			if (t[i].state == SUCCEEDED || t[i].state == FAILED)
				continue;
			r = get_attr(t[i].path, "user.bananafs.status", t[i].status, sizeof(t[i].status));
			if (r < 0) {
				if (errno == ENOTSUP)
					warnx("%s: no bananafs status (not on a bananafs mount?)", t[i].path);
				else
					warn("%s", t[i].path);
				t[i].state = FAILED;
				left--;
				continue;
			}
			t[i].state = state_of(t[i].status);
			if (t[i].state == SUCCEEDED || t[i].state == FAILED)
				left--;
		}
		if (tty)
			progress(t, n);
		if (left == 0)
			break;
		if (timeout >= 0 && now_s() - start >= timeout) {
			timed_out = true;
			break;
		}
		nanosleep(&(struct timespec){ 0, POLL_NS }, NULL);
	}
	if (tty)
		fputc('\n', stderr);

	for (int i = 0; i < n; i++) {
		char msg[1024];

		if (t[i].state == FAILED) {
			if (t[i].status[0] != '\0') {
				get_attr(t[i].path, "user.bananafs.error", msg, sizeof(msg));
				warnx("%s: %s%s%s", t[i].path, t[i].status, msg[0] ? ": " : "", msg);
			}
			rc = 1;
		} else if (t[i].state != SUCCEEDED) {
			warnx("%s: still %s after %gs", t[i].path,
			      t[i].status[0] ? t[i].status : "pending", timeout);
		}
	}
	free(t);
	/* A failure is the more useful answer; timeout only when nothing failed. */
	if (rc == 0 && timed_out)
		rc = 2;
	(void)c;
	return rc;
}
