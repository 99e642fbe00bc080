/* What sagad's loop knows that its database does not (counters, flow
 * control, timings), published for the admin API's thread: the loop builds
 * a JSON snapshot about twice a second; GET /v1/stats ("runtime") and GET
 * /metrics read the latest one under a mutex. */
#ifndef SAGAD_RUNTIME_H
#define SAGAD_RUNTIME_H

#include <jansson.h>
#include <stdint.h>

#include "saga_histogram.h"

typedef struct sagad_runtime sagad_runtime_t;

sagad_runtime_t *sagad_runtime_new(void);
void sagad_runtime_free(sagad_runtime_t **rt);
/* Replaces the snapshot; steals it. */
void sagad_runtime_publish(sagad_runtime_t *rt, json_t *snapshot);
/* admin_stats_runtime_fn: copies the snapshot's members into `into`. */
int sagad_runtime_fill(void *rt, json_t *into);

#endif
