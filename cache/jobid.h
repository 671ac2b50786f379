/*
 * jobid.h - job ids that are unique across mounts and machines.
 */
#ifndef BANANAFS_CACHE_JOBID_H
#define BANANAFS_CACHE_JOBID_H

#include <stdint.h>
#include "api/clock.h"

#define JOBID_LEN 27			/* 26 characters of a ULID + NUL */

/*
 * A ULID (ulid/spec): 48 bits of milliseconds since 1970 (clk's wall time)
 * and 80 random bits, in Crockford base32, so ids sort by creation time and
 * two machines never pick the same one.  0, or -1 when getrandom() gave no
 * randomness.
 */
int jobid_make(const struct clock_ops *clk, char out[JOBID_LEN]);
/* The encoding alone: ms since 1970 and 10 random bytes. */
void jobid_format(uint64_t ms, const unsigned char random[10], char out[JOBID_LEN]);

#endif
