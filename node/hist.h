/*
 * Histograms for the metrics (Prometheus buckets): fixed upper bounds, an
 * observation count per bucket, a count and a sum. No allocation; the
 * bounds are borrowed.
 */
#ifndef TENDERD_HIST_H
#define TENDERD_HIST_H

#include <stdint.h>

#define HIST_BUCKETS_MAX 16

struct hist {
	const double *le; /* upper bounds, increasing; +Inf is implicit */
	uint32_t n;
	uint64_t buckets[HIST_BUCKETS_MAX]; /* not cumulative: observations in (le[i-1], le[i]] */
	uint64_t count;
	double sum;
};

/* Seconds from 0.5 ms to 10 s: request, write and sync latencies. */
extern const double hist_latency_le[];
#define HIST_LATENCY_N 14

/* An empty histogram over the n (at most HIST_BUCKETS_MAX) bounds le. */
void hist_init(struct hist *h, const double *le, uint32_t n);
void hist_observe(struct hist *h, double v);

#endif
