/*
 * arrivals.c - see arrivals.h.
 */
#include <fcntl.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <unistd.h>
#include "cache/beneath.h"
#include "fs/arrivals.h"

#define SLOTS 1024

static atomic_uint_fast64_t counts[SLOTS];

static unsigned slot(dev_t dev, ino_t ino)
{
	uint64_t h = ((uint64_t)dev * 0x9e3779b97f4a7c15ull) ^ ((uint64_t)ino * 0xc2b2ae3d27d4eb4full);
	return (unsigned)(h >> 54) % SLOTS;
}

void arrivals_note(int dirfd)
{
	struct stat st;
	if (fstat(dirfd, &st) == 0)
		atomic_fetch_add(&counts[slot(st.st_dev, st.st_ino)], 1);
}

uint64_t arrivals_count(int tree_fd, const char *dir)
{
	struct stat st;
	int fd = dir[0] ? open_beneath(tree_fd, dir, O_PATH | O_DIRECTORY | O_CLOEXEC)
			: fcntl(tree_fd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	int rc = fstat(fd, &st);
	close(fd);
	return rc == 0 ? atomic_load(&counts[slot(st.st_dev, st.st_ino)]) : 0;
}
