/*
 * clock.c - the real clock: the only place in cache/ and api/ that reads
 * the system time (see api/clock.h).
 */
#include <stdint.h>
#include <time.h>

#include "api/clock.h"

static double real_now(void *ctx)
{
	struct timespec ts;
	(void)ctx;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void real_sleep(void *ctx, double s)
{
	(void)ctx;
	if (!(s > 0))
		return;
	struct timespec ts;
	ts.tv_sec = (time_t)s;
	ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
	nanosleep(&ts, NULL);	/* an early return (signal) is allowed by the contract */
}

/* Per-thread xorshift64*, seeded from the clock and the thread's own address. */
static double real_random(void *ctx)
{
	static __thread uint64_t state;
	(void)ctx;
	if (state == 0) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		state = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^
			(uint64_t)(uintptr_t)&state;
		if (state == 0)
			state = 0x9E3779B97F4A7C15ull;
	}
	state ^= state >> 12;
	state ^= state << 25;
	state ^= state >> 27;
	uint64_t r = state * 0x2545F4914F6CDD1Dull;
	return (double)(r >> 11) / 9007199254740992.0;	/* 53 bits -> [0,1) */
}

static double real_wall(void *ctx)
{
	struct timespec ts;
	(void)ctx;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

const struct clock_ops clock_real = {
	.now = real_now, .sleep = real_sleep, .random = real_random, .wall = real_wall, .ctx = NULL,
};

