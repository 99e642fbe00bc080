/* Fixed-bucket latency histograms in seconds (Prometheus style): sagad's
 * loop timings and the participant library's stages. Not thread-safe: one
 * owner adds, and hands out copies or text. */
#ifndef SAGA_HISTOGRAM_H
#define SAGA_HISTOGRAM_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

#define SAGA_HIST_BUCKETS 14
typedef struct {
    const double *bounds;       /* SAGA_HIST_BUCKETS - 1 upper bounds; the last bucket is +Inf */
    uint64_t counts[SAGA_HIST_BUCKETS];
    double sum;
    uint64_t count;
} saga_histogram_t;

extern const double saga_hist_fast_bounds[SAGA_HIST_BUCKETS - 1]; /* 0.5 ms .. 5 s: commits, iterations, hops */
extern const double saga_hist_slow_bounds[SAGA_HIST_BUCKETS - 1]; /* 5 ms .. 1 h: steps, sagas */

void saga_histogram_add(saga_histogram_t *h, double seconds);
/* {"buckets":[[le, cumulative], ...], "sum": s, "count": n}; le of the last is "+Inf". */
json_t *saga_histogram_json(const saga_histogram_t *h);
/* The Prometheus text of h as `metric` (HELP, TYPE, cumulative buckets, sum, count). */
void saga_histogram_write(FILE *out, const char *metric, const char *help, const saga_histogram_t *h);

#endif
