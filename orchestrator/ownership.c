/* Which shards this instance owns: taking and giving up shards as the consumer group assigns them (sagad.h). */
#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "saga_alloc.h"
#include "saga_clock.h"
#include "saga_error.h"
#include "saga_log.h"
#include "sagad.h"

#define RESTORE_RETRY_MS 1000

void sagad_offsets_drop_shard(rd_kafka_topic_partition_list_t *list, int p, int partitions) {
    for (int i = list ? list->cnt - 1 : -1; i >= 0; i--)
        if (sagad_shard_of_partition((int)list->elems[i].partition, partitions) == p)
            rd_kafka_topic_partition_list_del_by_idx(list, i);
}

int sagad_adopt_definitions(sagad_t *d, saga_registry_t *reg, int only) {
    char err[512];
    int64_t now = saga_now_ms();
    int rc = 0;
    /* Every shard holds every definition (its sagas load from it alone);
     * one transaction per shard, all checked before any commits. */
    for (int p = 0; !rc && p < d->shard_count; p++) {
        sagad_shard_t *sh = &d->shards[p];
        if (!sh->store || (only >= 0 && p != only)) continue;
        rc = sagad_shard_begin(sh);
        for (int i = 0; !rc && i < saga_registry_count(reg); i++) {
            const saga_definition_t *def = saga_registry_at(reg, i);
            rc = saga_store_put_definition(sh->store, def, now, err, sizeof err);
            if (rc == SAGA_EEXISTS) LOG_ERROR("sagad", "%s", err);
        }
    }
    if (!rc) rc = sagad_commit_shards(d);
    else sagad_rollback_shards(d);
    for (int p = 0; !rc && p < d->shard_count; p++) {
        if (!d->shards[p].store || (only >= 0 && p != only)) continue;
        if ((rc = saga_store_load_retired(d->shards[p].store, reg, err, sizeof err))) LOG_ERROR("sagad", "%s", err);
    }
    return rc;
}

/* Shard p leaves: its file closes (kept for a quick catch-up if p comes
 * back), no pending offset of its partitions is ever committed by us. */
static void release(sagad_t *d, int p) {
    sagad_shard_t *sh = &d->shards[p];
    assert(sh->store && !sh->in_tx);
    sagad_shard_close(sh);
    sagad_txnplan_forget_shard(&d->txnplan, p);
    for (int i = 0; i < d->txnplan.count; i++) sagad_offsets_drop_shard(d->txnplan.payload[i], p, d->shard_count);
    sagad_offsets_drop_shard(d->positions, p, d->shard_count);
    sagad_offsets_drop_shard(d->committed, p, d->shard_count);
    __atomic_store_n(&d->owned[p], 0, __ATOMIC_RELAXED);
    d->owned_count--;
    d->counters.shards_released++;
}

/* Shard p arrives: restored or caught up from the changelog, opened, given
 * the definitions, its partitions resumed. 0; 1 when the restore could not
 * read Kafka (tried again later); or a negative code. */
static int acquire(sagad_t *d, int p) {
    char err[1024];
    sagad_restore_stat_t *stat = &d->restore_stats[p];
    int rc = sagad_restore_shard(d->restorer, &d->restore_cfg, p, stat, err, sizeof err);
    if (rc) {
        LOG_ERROR("sagad", "%s%s", err, rc == SAGA_EKAFKA ? " (trying again in a second)" : "");
        return rc == SAGA_EKAFKA ? 1 : rc;
    }
    if (stat->diverged) d->counters.shards_diverged++;
    rc = sagad_shard_open(d->cfg.data_dir, d->shard_count, &d->store_opt, &d->shards[p], err, sizeof err);
    if (rc) {
        LOG_ERROR("sagad", "shard %d: %s", p, err);
        return rc;
    }
    rc = sagad_adopt_definitions(d, d->registry, p);
    if (rc) {
        sagad_shard_close(&d->shards[p]);
        return rc;
    }
    d->owned_count++;
    __atomic_store_n(&d->owned[p], 1, __ATOMIC_RELAXED);
    d->counters.shards_acquired++;
    saga_bus_resume_shard(d->bus, p);
    return 0;
}

static void log_owned(sagad_t *d) {
    char list[4096];
    size_t used = 0;
    list[0] = '\0';
    for (int p = 0; p < d->shard_count && used < sizeof list - 16; p++)
        if (d->shards[p].store) used += (size_t)snprintf(list + used, sizeof list - used, "%s%d", used ? "," : "", p);
    LOG_INFO("sagad", "owning %d of %d shard(s): [%s]%s", d->owned_count, d->shard_count, list,
             d->pending_count ? " (more assigned, not ready yet)" : "");
}

static int rebuild_flow(sagad_t *d) {
    saga_flow_free(&d->flow);
    d->flow = saga_flow_new(&d->flow_limits);
    d->engine.flow = d->flow;
    if (!d->flow) return SAGA_ENOMEM;
    return sagad_flow_recover(d);
}

void sagad_ownership_release_all(sagad_t *d, int64_t hold_ms) {
    for (int p = 0; p < d->shard_count; p++)
        if (d->shards[p].store) release(d, p);
    d->held = true;
    d->held_version = saga_bus_owned_version(d->bus);
    d->held_until_ms = saga_monotonic_us() / 1000 + hold_ms;
    if (rebuild_flow(d)) LOG_ERROR("sagad", "cannot rebuild the flow-control state");
    log_owned(d);
}

int sagad_ownership_sync(sagad_t *d) {
    uint64_t version = saga_bus_owned_version(d->bus);
    int64_t mono_ms = saga_monotonic_us() / 1000;
    if (d->held) {
        if (version == d->held_version && mono_ms < d->held_until_ms) return 0;
        d->held = false;
        d->owned_version = version - 1; /* act on the assignment as it stands */
    }
    if (version == d->owned_version && (d->pending_count == 0 || mono_ms < d->retry_ms)) return 0;
    d->owned_version = version;
    bool changed = false, losing = false;
    for (int p = 0; p < d->shard_count; p++) losing |= d->shards[p].store && !saga_bus_owns(d->bus, p);
    if (losing) {
        /* What committed transactions delivered leaves the outboxes (with the
         * changelog markers) before a shard goes: a file whose outbox holds
         * only rows that never reached Kafka is caught up in place, not
         * rebuilt, if the shard comes back after another owner wrote to it. */
        int rc = sagad_relay_acked(d);
        if (!rc) rc = sagad_commit_shards(d);
        else sagad_rollback_shards(d);
        if (rc) return rc;
    }
    for (int p = 0; p < d->shard_count; p++)
        if (d->shards[p].store && !saga_bus_owns(d->bus, p)) {
            release(d, p);
            changed = true;
        }
    d->pending_count = 0;
    for (int p = 0; p < d->shard_count; p++) {
        if (!saga_bus_owns(d->bus, p)) continue;
        if (d->shards[p].store) { /* kept through a revocation and a new assignment (paused by it) */
            saga_bus_resume_shard(d->bus, p);
            continue;
        }
        int rc = acquire(d, p);
        if (rc < 0) return rc;
        if (rc > 0) d->pending_count++;
        else changed = true;
    }
    if (d->pending_count) d->retry_ms = mono_ms + RESTORE_RETRY_MS;
    if (changed) {
        int rc = rebuild_flow(d);
        if (rc) {
            LOG_ERROR("sagad", "cannot rebuild the flow-control state: %s", saga_strerror(rc));
            return rc;
        }
        log_owned(d);
    }
    return 0;
}
