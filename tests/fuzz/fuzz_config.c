/*
 * fuzz_config.c - config_load on a file holding the input (a memfd, opened
 * by path through /proc/self/fd), then config_render of what it accepted.
 * Keys are never resolved here: api_key_command must not run.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "cache/config.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static int cfg_fd = -1;
static char cfg_path[64];

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	struct config c;
	char err[512];

	if (cfg_fd < 0) {
		cfg_fd = memfd_create("fuzz-config", 0);
		if (cfg_fd < 0)
			abort();
		snprintf(cfg_path, sizeof(cfg_path), "/proc/self/fd/%d", cfg_fd);
	}
	if (ftruncate(cfg_fd, 0) != 0 || (size && pwrite(cfg_fd, data, size, 0) != (ssize_t)size))
		abort();

	memset(&c, 0, sizeof(c));
	if (config_defaults(&c) != 0)
		abort();
	err[0] = '\0';
	if (config_load(&c, cfg_path, true, err, sizeof(err)) == 0) {
		char *text = config_render(&c);
		free(text);
	} else if (!err[0]) {
		abort();	/* the contract: a refused file always says why */
	}
	config_free(&c);
	return 0;
}
