/* The loop's runtime snapshot (counters, flow, timings) handed to the admin thread (runtime.h). */
#include "runtime.h"

#include <pthread.h>
#include <stdbool.h>

#include "saga_alloc.h"
#include "saga_error.h"

struct sagad_runtime {
    pthread_mutex_t lock;
    json_t *snapshot;
};

sagad_runtime_t *sagad_runtime_new(void) {
    sagad_runtime_t *rt = saga_calloc(1, sizeof *rt);
    if (rt) pthread_mutex_init(&rt->lock, NULL);
    return rt;
}

void sagad_runtime_free(sagad_runtime_t **prt) {
    sagad_runtime_t *rt = *prt;
    if (!rt) return;
    json_decref(rt->snapshot);
    pthread_mutex_destroy(&rt->lock);
    saga_free(rt);
    *prt = NULL;
}

void sagad_runtime_publish(sagad_runtime_t *rt, json_t *snapshot) {
    pthread_mutex_lock(&rt->lock);
    json_t *old = rt->snapshot;
    rt->snapshot = snapshot;
    pthread_mutex_unlock(&rt->lock);
    json_decref(old);
}

int sagad_runtime_fill(void *arg, json_t *into) {
    sagad_runtime_t *rt = arg;
    pthread_mutex_lock(&rt->lock);
    /* Deep copy: the loop replaces, never mutates, a published snapshot,
     * but jansson refcounts are not atomic across threads. */
    bool have = rt->snapshot != NULL;
    json_t *copy = have ? json_deep_copy(rt->snapshot) : NULL;
    pthread_mutex_unlock(&rt->lock);
    if (have && !copy) return SAGA_ENOMEM;
    int rc = copy ? json_object_update(into, copy) : 0;
    json_decref(copy);
    return rc ? SAGA_ENOMEM : 0;
}
