/* What sagad's loop knows that its database does not (counters, flow
 * control, timings), published for the admin API's thread: the loop builds
 * a JSON snapshot about twice a second; GET /v1/stats ("runtime") and GET
 * /metrics read the latest one under a mutex. */
#ifndef SAGAD_RUNTIME_H
#define SAGAD_RUNTIME_H

#include <jansson.h>
#include <stdint.h>

/* Fixed-bucket histogram in seconds (Prometheus style, cumulative on output). */
#define SAGAD_HIST_BUCKETS 14
typedef struct {
    const double *bounds;       /* SAGAD_HIST_BUCKETS - 1 upper bounds; the last bucket is +Inf */
    uint64_t counts[SAGAD_HIST_BUCKETS];
    double sum;
    uint64_t count;
} sagad_histogram_t;

extern const double sagad_fast_bounds[SAGAD_HIST_BUCKETS - 1]; /* 0.5 ms .. 5 s: commits, iterations */
extern const double sagad_slow_bounds[SAGAD_HIST_BUCKETS - 1]; /* 5 ms .. 1 h: steps, sagas */

void sagad_histogram_add(sagad_histogram_t *h, double seconds);
/* {"buckets":[[le, cumulative], ...], "sum": s, "count": n}; le of the last is "+Inf". */
json_t *sagad_histogram_json(const sagad_histogram_t *h);

typedef struct sagad_runtime sagad_runtime_t;

sagad_runtime_t *sagad_runtime_new(void);
void sagad_runtime_free(sagad_runtime_t **rt);
/* Replaces the snapshot; steals it. */
void sagad_runtime_publish(sagad_runtime_t *rt, json_t *snapshot);
/* admin_stats_runtime_fn: copies the snapshot's members into `into`. */
int sagad_runtime_fill(void *rt, json_t *into);

#endif
