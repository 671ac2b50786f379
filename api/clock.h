/*
 * clock.h - the one clock of the core, injected.
 *
 * Every part of cache/ and api/ that needs the time asks a struct
 * clock_ops: the fetch pipeline, the batcher, the limiter, the budget
 * (day rollover, reservation expiry) and the in-flight leases.  Tests pass
 * a fake clock and drive time by hand (no sleeps); the daemon passes
 * clock_real.  `now` is monotonic (durations, back-off, the rpm window);
 * `wall` is seconds since the epoch (local midnight, lease and reservation
 * expiry that another process or machine must understand).
 */
#ifndef BANANAFS_API_CLOCK_H
#define BANANAFS_API_CLOCK_H

struct clock_ops {
	double (*now)(void *ctx);		/* seconds, monotonic */
	void (*sleep)(void *ctx, double s);	/* may return early */
	double (*random)(void *ctx);		/* uniform in [0,1) */
	double (*wall)(void *ctx);		/* seconds since the epoch */
	void *ctx;
};
extern const struct clock_ops clock_real;

#endif
