/* Restoring shards from the changelog topic at start (docs/DESIGN.md,
 * "Restoring a shard"), before any partition is consumed. For each shard p
 * of the data directory:
 *  - a leftover DIR/shard-NNN.db.restoring (a crash mid-restore) is deleted;
 *  - a shard file that fails `PRAGMA quick_check` (or does not open) is
 *    moved aside as shard-NNN.db.corrupt-<unix time>, then treated as missing;
 *  - a missing shard is rebuilt from saga.changelog[p] (offset 0 up to the
 *    end offset read at the start of its restore) into shard-NNN.db.restoring
 *    in bulk mode (sorted batches), fsynced and renamed into place: an empty
 *    partition gives an empty shard;
 *  - a shard whose changelog marker is below the end offset - 1 catches up in
 *    place, in durable batches, from marker + 1.
 * The changelog is read with a consumer of its own (assign, no group,
 * isolation.level=read_committed): on Apache Kafka aborted records are
 * skipped and offsets have gaps (transaction markers); the end offset is the
 * last stable offset. A corrupt record refuses the shard: err names the
 * shard, the offset and the key.
 * Test hook: SAGAD_CRASH_AT=during_restore with SAGAD_CRASH_AFTER=N makes
 * the process _exit(137) once N records of a shard are applied. */
#ifndef SAGAD_RESTORE_H
#define SAGAD_RESTORE_H

#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "saga_config.h"

typedef enum {
    SAGAD_RESTORE_NONE,     /* the shard was up to date */
    SAGAD_RESTORE_REBUILT,  /* missing or corrupt: rebuilt from the changelog */
    SAGAD_RESTORE_CAUGHT_UP /* behind its changelog: caught up in place */
} sagad_restore_kind_t;

typedef struct {
    sagad_restore_kind_t kind;
    bool in_progress;
    bool diverged;     /* rebuilt: another instance wrote the changelog after this file's marker
                        * while the file held commits that never reached it */
    uint64_t records;  /* changelog records applied */
    uint64_t sagas;    /* saga records among them */
    double seconds;    /* time the restore took */
    int64_t lost_before; /* > 0: the restore needed records before this offset, which the
                          * topic no longer holds (deleted by retention: the dev broker keeps
                          * the last 5 MB of a partition): sagas may be missing */
} sagad_restore_stat_t;

typedef struct {
    const char *dir;             /* the data directory */
    int partitions;              /* P */
    const char *bootstrap;
    const saga_kv_list_t *props; /* -X overrides */
    const char *topic;           /* the changelog topic */
    const char *synchronous;     /* the shards' synchronous mode */
    int timeout_ms;              /* per Kafka request (watermarks, a fetch without progress) */
    const char *writer;          /* this instance's id (the changelog records' writer header) */
} sagad_restore_config_t;

/* The changelog reader the restores use (assign, no group); NULL and err. */
rd_kafka_t *sagad_restore_consumer(const sagad_restore_config_t *cfg, char *err, size_t errlen);

/* Checks and restores shard p (see above) with that reader, before the
 * instance consumes its partitions — at start or when the group assigns
 * it. A file holding outbox rows whose changelog has records after its
 * marker written by another instance has diverged: rebuilt. 0, or a
 * negative code with err naming the shard. */
int sagad_restore_shard(rd_kafka_t *rk, const sagad_restore_config_t *cfg, int p, sagad_restore_stat_t *stat,
                        char *err, size_t errlen);

/* Checks and restores every shard of cfg->dir (see above); stats (P
 * entries, may be NULL) get what was done. 0, or a negative code with err
 * naming the shard and what to do. */
int sagad_restore_shards(const sagad_restore_config_t *cfg, sagad_restore_stat_t *stats, char *err,
                         size_t errlen);

/* The stats as a JSON array for the runtime snapshot ("restore"). */
json_t *sagad_restore_json(const sagad_restore_stat_t *stats, int partitions);

#endif
