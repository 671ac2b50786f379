/*
 * cmd_run.c - "bananactl run path ..." and "bananactl cancel path ...":
 * each writes one line ("run REL" or "cancel REL") to the write-only
 * MOUNT/.bananafs/control of the prompt's mount.  The daemon checks that
 * the caller may write the prompt and answers with the write's errno.
 */
#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache/prompt_state.h"
#include "tools/bananactl/ctl.h"

/* What the daemon's errno means for each verb (bananafs(1), .bananafs/control). */
static const char *
explain(const char *verb, int e)
{
	bool run = strcmp(verb, "run") == 0;

	switch (e) {
	case EACCES:
	case EPERM:
		return "you may not write this prompt, so you may not run or cancel it";
	case EBUSY:
		return "already queued or running";
	case EEXIST:
		return "already has its image; \"bananactl regen\" knowingly pays for a new one";
	case EALREADY:
		return "nothing queued or running for it";
	case ENOENT:
		return run ? "no such prompt in the mount" : "no job for this prompt";
	case EROFS:
		return "this mount has no control file (an older bananafs?)";
	default:
		return strerror(e);
	}
}

/* Sends "verb rel" to the mount's control file; 0, or errno. */
static int
send_line(const char *mount, const char *verb, const char *rel)
{
	char *path = xasprintf("%s/.bananafs/control", strcmp(mount, "/") == 0 ? "" : mount);
	char *line = xasprintf("%s %s\n", verb, rel);
	size_t len = strlen(line);
	int fd, e = 0;

	if ((fd = open(path, O_WRONLY | O_CLOEXEC)) < 0)
		e = errno == ENOENT ? EROFS : errno;
	else {
		ssize_t w = write(fd, line, len);

		if (w < 0)
			e = errno;
		else if ((size_t)w != len)
			e = EIO;
		if (close(fd) < 0 && e == 0)
			e = errno;
	}
	free(line);
	free(path);
	return e;
}

static int
each_prompt(struct ctl *c, int argc, char **argv, const char *verb, enum prompt_state st)
{
	const char *done = prompt_state_name(st);	/* the status the prompt now shows */
	int rc = 0;

	(void)c;
	if (argc >= 2 && strcmp(argv[1], "--") == 0) {
		argc--;
		argv++;
	}
	if (argc < 2)
		usage();
	for (int i = 1; i < argc; i++) {
		char why[256], *mnt = NULL, *rel = ctl_prompt_path(argv[i], &mnt, why, sizeof(why));
		int e;

		if (rel == NULL) {
			warnx("%s: %s", argv[i], why);
			rc = 1;
			continue;
		}
		if ((e = send_line(mnt, verb, rel)) != 0) {
			warnx("%s: not %s: %s", argv[i], done, explain(verb, e));
			rc = 1;
		} else
			printf("%s: %s\n", argv[i], done);
		free(rel);
		free(mnt);
	}
	return rc;
}

int
cmd_run(struct ctl *c, int argc, char **argv)
{
	return each_prompt(c, argc, argv, "run", PS_QUEUED);
}

int
cmd_cancel(struct ctl *c, int argc, char **argv)
{
	return each_prompt(c, argc, argv, "cancel", PS_CANCELLED);
}
