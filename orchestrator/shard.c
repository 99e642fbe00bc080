/* sagad's shards (shard.h): routing of sagas and messages to partitions, and the shard set's life. */
#include "shard.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "datadir.h"
#include "saga_alloc.h"
#include "saga_error.h"
#include "saga_partition.h"
#include "saga_util.h"

int sagad_shard_of_saga(const char *saga_id, int partitions) {
    assert(partitions > 0);
    return saga_partition_of(saga_id, partitions);
}

int sagad_shard_of_partition(int kafka_partition, int partitions) {
    assert(partitions > 0);
    return kafka_partition >= 0 ? kafka_partition % partitions : 0;
}

int sagad_route_start(const char *saga_id, const char *message_id, int kafka_partition, int partitions) {
    if (saga_id) return sagad_shard_of_saga(saga_id, partitions);
    if (kafka_partition >= 0) return sagad_shard_of_partition(kafka_partition, partitions);
    return sagad_shard_of_saga(message_id ? message_id : "", partitions);
}

void sagad_saga_id_for_partition(int partition, int partitions, char *out, size_t len) {
    assert(partition >= 0 && partition < partitions);
    /* 1/P of the random ids fit: a few tries for small P */
    do saga_random_id("s-", out, len);
    while (saga_partition_of(out, partitions) != partition);
}

sagad_shard_t *sagad_shards_new(int partitions) {
    sagad_shard_t *shards = saga_calloc((size_t)partitions, sizeof *shards);
    for (int p = 0; shards && p < partitions; p++) shards[p].partition = p;
    return shards;
}

int sagad_shard_open(const char *dir, int partitions, const saga_store_options_t *opt, sagad_shard_t *sh, char *err,
                     size_t errlen) {
    assert(!sh->store);
    sh->store = saga_datadir_open_shard(dir, sh->partition, partitions, opt, err, errlen);
    return sh->store ? 0 : SAGA_ESTORE;
}

void sagad_shard_close(sagad_shard_t *sh) {
    assert(!sh->in_tx);
    saga_store_close(&sh->store);
    saga_free(sh->resend);
    for (int i = 0; i < sh->deferred_count; i++) saga_free(sh->deferred[i].value);
    saga_free(sh->deferred);
    saga_free(sh->touched);
    for (int i = 0; i < sh->defs_written_count; i++) saga_free(sh->defs_written[i]);
    saga_free(sh->defs_written);
    int p = sh->partition;
    memset(sh, 0, sizeof *sh);
    sh->partition = p;
}

void sagad_shards_close(sagad_shard_t **pshards, int partitions) {
    sagad_shard_t *shards = *pshards;
    if (!shards) return;
    for (int p = 0; p < partitions; p++) {
        shards[p].in_tx = false;
        sagad_shard_close(&shards[p]);
    }
    saga_free(shards);
    *pshards = NULL;
}

int sagad_shard_begin(sagad_shard_t *shard) {
    if (shard->in_tx) return 0;
    int rc = saga_store_begin(shard->store);
    if (!rc) shard->in_tx = true;
    return rc;
}

int sagad_shard_touch(sagad_shard_t *shard, const char *id, const char *def, int version) {
    if (shard->touched_count > 0 && !strcmp(shard->touched[shard->touched_count - 1].id, id)) return 0;
    if (shard->touched_count == shard->touched_cap) {
        int cap = shard->touched_cap ? shard->touched_cap * 2 : 256;
        sagad_touched_t *bigger = saga_realloc(shard->touched, (size_t)cap * sizeof *bigger);
        if (!bigger) return SAGA_ENOMEM;
        shard->touched = bigger;
        shard->touched_cap = cap;
    }
    sagad_touched_t *t = &shard->touched[shard->touched_count++];
    snprintf(t->id, sizeof t->id, "%s", id);
    snprintf(t->def, sizeof t->def, "%s", def ? def : "");
    t->version = version;
    return 0;
}
