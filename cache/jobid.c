/*
 * jobid.c - ULIDs for jobs.
 *
 * A job id joins the ledger lines of one job (its "sent", its retries, its
 * outcome, a resume after a crash).  The journal's row number cannot do it:
 * SQLite reuses row numbers once a table is empty, so ids restarted at 1 on
 * every mount.  A ULID is made once when a job is journaled and kept in its
 * row, so a resumed job keeps its id; it reveals nothing but the time.
 */
#include "cache/jobid.h"

#include <errno.h>
#include <sys/random.h>

static const char crockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

void jobid_format(uint64_t ms, const unsigned char random[10], char out[JOBID_LEN])
{
	/* 128 bits, big-endian: 6 bytes of time, 10 of randomness. */
	unsigned char b[16];

	for (int i = 0; i < 6; i++)
		b[i] = (unsigned char)(ms >> (8 * (5 - i)));
	for (int i = 0; i < 10; i++)
		b[6 + i] = random[i];
	/* 26 characters of 5 bits: the first holds only the top 3 bits (130 - 128 = 2 pad bits). */
	for (int c = 0; c < 26; c++) {
		int v = 0;

		for (int k = 0; k < 5; k++) {
			int pos = c * 5 + k - 2;	/* bit index into b, -2 and -1 are padding */

			v <<= 1;
			if (pos >= 0)
				v |= (b[pos / 8] >> (7 - pos % 8)) & 1;
		}
		out[c] = crockford[v];
	}
	out[26] = '\0';
}

int jobid_make(const struct clock_ops *clk, char out[JOBID_LEN])
{
	unsigned char r[10];
	size_t got = 0;
	double wall = clk->wall(clk->ctx);

	while (got < sizeof(r)) {
		ssize_t n = getrandom(r + got, sizeof(r) - got, 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		got += (size_t)n;
	}
	jobid_format(wall > 0 ? (uint64_t)(wall * 1000) : 0, r, out);
	return 0;
}
