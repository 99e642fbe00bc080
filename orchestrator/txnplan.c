/* Which consumed offsets a relay transaction covers (txnplan.h; pure). */
#include "txnplan.h"

#include "saga_alloc.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#define IDS(plan, i) ((plan)->max_ids + (size_t)(i) * (size_t)(plan)->shards)

int sagad_txnplan_init(sagad_txnplan_t *plan, int shards) {
    assert(shards > 0);
    memset(plan, 0, sizeof *plan);
    plan->shards = shards;
    plan->max_ids = saga_calloc((size_t)SAGAD_TXNPLAN_MAX * (size_t)shards, sizeof *plan->max_ids);
    return plan->max_ids ? 0 : -1;
}

void sagad_txnplan_free(sagad_txnplan_t *plan, void (*free_payload)(void *)) {
    if (plan->max_ids) sagad_txnplan_drop(plan, plan->count, free_payload);
    saga_free(plan->max_ids);
    plan->max_ids = NULL;
}

void sagad_txnplan_push(sagad_txnplan_t *plan, const int64_t *max_ids, void *payload, void **replaced) {
    *replaced = NULL;
    if (plan->count == SAGAD_TXNPLAN_MAX) {
        int last = plan->count - 1;
        for (int s = 0; s < plan->shards; s++)
            if (max_ids[s] > IDS(plan, last)[s]) IDS(plan, last)[s] = max_ids[s];
        *replaced = plan->payload[last];
        plan->payload[last] = payload;
        return;
    }
    memcpy(IDS(plan, plan->count), max_ids, (size_t)plan->shards * sizeof *max_ids);
    plan->payload[plan->count++] = payload;
}

int sagad_txnplan_covered(const sagad_txnplan_t *plan, const int64_t *through) {
    int newest = -1;
    for (int i = 0; i < plan->count; i++) {
        for (int s = 0; s < plan->shards; s++)
            if (IDS(plan, i)[s] > through[s]) return newest;
        newest = i;
    }
    return newest;
}

void sagad_txnplan_drop(sagad_txnplan_t *plan, int n, void (*free_payload)(void *)) {
    assert(n >= 0 && n <= plan->count);
    for (int i = 0; i < n; i++)
        if (free_payload) free_payload(plan->payload[i]);
    memmove(plan->max_ids, IDS(plan, n), (size_t)(plan->count - n) * (size_t)plan->shards * sizeof *plan->max_ids);
    memmove(plan->payload, plan->payload + n, (size_t)(plan->count - n) * sizeof plan->payload[0]);
    plan->count -= n;
}

void sagad_txnplan_forget_shard(sagad_txnplan_t *plan, int shard) {
    assert(shard >= 0 && shard < plan->shards);
    for (int i = 0; i < plan->count; i++) IDS(plan, i)[shard] = 0;
}
