/*
 * Histograms for the metrics (see hist.h).
 */
#include <stdlib.h>
#include <string.h>

#include "hist.h"

const double hist_latency_le[HIST_LATENCY_N] = { 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
						 0.1,    0.25,  0.5,    1,     2.5,  5,     10 };

void hist_init(struct hist *h, const double *le, uint32_t n)
{
	if (n > HIST_BUCKETS_MAX)
		abort(); /* a caller's bug: bounds are fixed tables */
	memset(h, 0, sizeof(*h));
	h->le = le;
	h->n = n;
}

void hist_observe(struct hist *h, double v)
{
	uint32_t i = 0;
	while (i < h->n && v > h->le[i])
		i++;
	if (i < h->n)
		h->buckets[i]++;
	h->count++;
	h->sum += v;
}
