/* A shard: one partition of the consumed topics (saga.start, saga.replies)
 * and everything sagad keeps for it — its SQLite file (sagas, steps,
 * timers, dedup, outbox), the relay's position in that outbox and its
 * resend list, and the saga the loop is working on. The loop (loop.c)
 * routes each message, timer and operator command to one shard and opens
 * at most one transaction per shard per iteration (docs/DESIGN.md,
 * "Shards"). The routing helpers below are pure. */
#ifndef SAGAD_SHARD_H
#define SAGAD_SHARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "store.h"

/* An outbox row to send again after a transient delivery failure. */
typedef struct {
    int64_t id;      /* the row's id in its shard's outbox */
    int attempt;     /* deliveries tried so far */
    int64_t due_ms;  /* not before (backoff) */
    bool alone;      /* the broker refused its batch as too large: sent with nothing else in flight */
} sagad_resend_t;

/* A changelog record row (SAGA_OUTBOX_RECORD) the relay has read but not
 * sent: it goes out, encoded from the shard's state, in a pass that sends
 * every other row of the shard too (relay.c, send_records). */
typedef struct {
    int64_t id;
    int attempt;
    char key[SAGA_ID_MAX]; /* the saga's id */
    bool encoded;          /* value holds the record as encoded at the start of this pass */
    char *value;           /* NULL when encoded: a tombstone (the saga is gone) */
    size_t len;
} sagad_deferred_t;

/* A saga the current iteration changed in a shard: it gets one
 * saga.changelog record at the shard's commit (changelog_out.c). */
typedef struct {
    char id[SAGA_ID_MAX];
    char def[SAGA_NAME_MAX]; /* its definition ("" when unknown) and version */
    int version;
} sagad_touched_t;

typedef struct sagad_shard {
    int partition;             /* = its index in sagad_t.shards */
    saga_store_t *store;
    bool in_tx;                /* a transaction is open on store in this iteration */
    int64_t relay_after;       /* highest outbox id handed to the producer (goes back when a transaction aborts) */
    int64_t pass_start;        /* relay_after when the current relay pass began */
    int64_t pass_low;          /* lowest outbox id produced in the current relay transaction (0: none) */
    sagad_resend_t *resend;    /* rows whose delivery failed, sent again one by one */
    int resend_count, resend_cap;
    sagad_deferred_t *deferred; /* changelog record rows waiting for a pass that sends the whole shard */
    int deferred_count, deferred_cap;
    int64_t prefetched_through; /* this pass put every record row in (relay_after, this] in deferred */
    saga_t scratch;            /* the saga the loop is working on in this shard */
    sagad_touched_t *touched;  /* sagas changed in this iteration (repeats allowed) */
    int touched_count, touched_cap;
    char **defs_written;       /* def/NAME/VERSION records known to be in this shard's changelog */
    int defs_written_count, defs_written_cap;
    int defs_committed;        /* defs_written[0..defs_committed) were committed (a rollback forgets the rest) */
} sagad_shard_t;

/* The shard (= partition of saga.start) a saga belongs to: Kafka's murmur2
 * of its id, as saga_partition_of. */
int sagad_shard_of_saga(const char *saga_id, int partitions);

/* The shard of a message that names no saga (a start without saga_id,
 * something to dead-letter): the partition it was read from. A partition
 * beyond P (sagad checks the topics' partition counts) folds back in. */
int sagad_shard_of_partition(int kafka_partition, int partitions);

/* The shard of a start: its saga's when it names one (saga_id), else the
 * partition it was read from (kafka_partition >= 0), else, for an
 * operator's start (kafka_partition < 0), the partition of its message_id.
 * The route depends on the message alone, so a start read again goes to the
 * same shard and meets its dedup row there. */
int sagad_route_start(const char *saga_id, const char *message_id, int kafka_partition, int partitions);

/* A new random saga id ("s-" and 16 hex digits) that hashes to partition:
 * a start without saga_id stays in the shard of the partition it arrived
 * on, so that its dedup row is found there when it is read again. */
void sagad_saga_id_for_partition(int partition, int partitions, char *out, size_t len);

/* The producer's delivery id of a shard's outbox row (bus.h opaque_id),
 * and back. Row ids stay below 2^40. */
#define SAGAD_OPAQUE_SHIFT 40
static inline int64_t sagad_opaque(int shard, int64_t row) { return ((int64_t)shard << SAGAD_OPAQUE_SHIFT) | row; }
static inline int sagad_opaque_shard(int64_t opaque) { return (int)(opaque >> SAGAD_OPAQUE_SHIFT); }
static inline int64_t sagad_opaque_row(int64_t opaque) { return opaque & (((int64_t)1 << SAGAD_OPAQUE_SHIFT) - 1); }

/* The P shards of an instance, none open: shard p is opened when the
 * group assigns partition p to it (ownership.c) and closed when it goes.
 * NULL when out of memory. */
sagad_shard_t *sagad_shards_new(int partitions);
/* Opens sh's file in dir (prepared or restored; its shard_meta must say
 * partition sh->partition of P). 0, or an error with err set. */
int sagad_shard_open(const char *dir, int partitions, const saga_store_options_t *opt, sagad_shard_t *sh, char *err,
                     size_t errlen);
/* Closes sh's file and forgets its relay and iteration state (no
 * transaction open); sh->store is NULL after: not owned. */
void sagad_shard_close(sagad_shard_t *sh);
/* Closes every open shard and frees the array (shutdown). */
void sagad_shards_close(sagad_shard_t **shards, int partitions);

/* Notes that saga id (definition def at version; def NULL: unknown) changed
 * in this iteration. 0 or SAGA_ENOMEM. */
int sagad_shard_touch(sagad_shard_t *shard, const char *id, const char *def, int version);

/* Opens shard's transaction unless it is open already in this iteration. */
int sagad_shard_begin(sagad_shard_t *shard);

#endif
