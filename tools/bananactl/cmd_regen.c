/*
 * cmd_regen.c - "bananactl regen path": knowingly pays for a new image of
 * an unchanged prompt by raising its header's variant (which enters the
 * cache key) and writing the prompt back through the mount.  The old image
 * stays in the cache under its own key.
 */
#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache/prompt.h"
#include "tools/bananactl/ctl.h"
#include "tools/bananactl/parse.h"

/* Writes all of buf; 0 or -1 with errno. */
static int
write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

int
cmd_regen(struct ctl *c, int argc, char **argv)
{
	const char *path, *base;
	char *text = NULL, *out = NULL, *rel = NULL, errbuf[256];
	size_t len, outlen;
	int variant, fd, rc = 1;

	if (argc != 2)
		usage();
	path = argv[1];
	if (ctl_need_mount(c, path) < 0)
		return 1;
	/* Only a prompt below the mount starts a generation when written. */
	if ((rel = ctl_rel_path(c, path)) == NULL)
		goto out;
	base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	if (!prompt_name_triggers(base)) {
		warnx("%s: not a prompt file (a prompt is NAME.txt)", path);
		goto out;
	}
	if ((text = ctl_read_file(path, &len)) == NULL) {
		warn("%s", path);
		goto out;
	}
	if ((out = regen_rewrite(text, len, &outlen, &variant, errbuf, sizeof(errbuf))) == NULL) {
		warnx("%s: %s", path, errbuf);
		goto out;
	}
	if (outlen > PROMPT_MAX_BYTES) {
		warnx("%s: the prompt would pass %d bytes", path, PROMPT_MAX_BYTES);
		goto out;
	}
	/* One open, write, close: the daemon starts the job on the last close. */
	if ((fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC)) < 0) {
		warn("%s", path);
		goto out;
	}
	if (write_all(fd, out, outlen) < 0) {
		warn("%s", path);
		close(fd);
		goto out;
	}
	if (close(fd) < 0) {
		warn("%s", path);
		goto out;
	}
	printf("%s: variant %d; a new image will be generated and billed "
	       "(the earlier image stays in the cache)\n", rel, variant);
	rc = 0;
out:
	free(rel);
	free(out);
	free(text);
	return rc;
}
