/* Internals of the bus shared by bus.c (the clients, delivery reports,
 * polling) and bus_txn.c (the transactional producer's life): the bus's
 * state and the two calls each side needs of the other. Not for callers
 * outside orchestrator/bus (they use bus.h). */
#ifndef SAGA_BUS_INTERNAL_H
#define SAGA_BUS_INTERNAL_H

#include "bus.h"

struct saga_bus {
    rd_kafka_t *consumer;
    rd_kafka_t *producer;
    char *group;
    bool assigned;
    bool holding;            /* partitions assigned now (false between a revocation and the next assignment) */
    bool owned[SAGA_BUS_MAX_MARKERS]; /* shard p's partitions are in the current assignment */
    uint64_t owned_version;  /* changes with every assignment and revocation */
    char **topics;           /* the consumed topics (partition p of each is shard p) */
    int topic_count;
    char *instance_id;       /* group.instance.id, and the writer header of changelog records */
    uint64_t assignments;    /* assignments so far */
    int64_t assigned_at_us;  /* monotonic time of the last assignment */
    int64_t reassign_after_us; /* a coordinator error on OffsetFetch: re-assign at this time (0: no) */
    rd_kafka_resp_err_t reassign_err; /* that error, for the log */
    /* Catch-up: the replies partitions' high watermarks at a wake-up, and
     * where the consumer stood when nothing had been consumed yet. */
    rd_kafka_topic_partition_list_t *catchup; /* offset = target; NULL: none */
    int64_t *catchup_base;
    int64_t catchup_started_us;
    int in_flight;
    int64_t *acked;       /* delivered outbox ids, taken by the loop */
    int acked_count, acked_cap;
    saga_bus_failure_t *failed; /* rows whose delivery failed, taken by the loop */
    int failed_count, failed_cap;
    volatile int fatal;   /* the producer hit a fatal error: recreate it (or stop, fenced) */
    uint64_t producers_recreated;
    char *bootstrap, *client_id;     /* to recreate the producer */
    const saga_kv_list_t *props;
    char *txn_id;         /* transactional.id, NULL: not transactional */
    bool in_txn;
    bool txn_ready;       /* init_transactions done */
    int txn_acked;        /* acked[0..txn_acked) belong to committed transactions */
    char *marker_topic;   /* saga.changelog: the offsets delivered to it are remembered */
    int64_t marker_pending[SAGA_BUS_MAX_MARKERS]; /* highest offset per partition, open transaction (-1: none) */
    int64_t marker_done[SAGA_BUS_MAX_MARKERS];    /* the same, of committed transactions, not yet taken */
    char *fenced;         /* the transactional producer's (or the consumer's) fatal error */
    bool stale_generation; /* a transaction's offsets were refused for a stale group generation */
};

/* Replaces a producer that hit a fatal error (bus.c): purges it, creates a
 * new one with the same settings; bus->fatal stays set if that failed. */
void saga_bus_recreate_producer(saga_bus_t *bus);
/* The transactional producer hit a fatal error (bus_txn.c): SAGA_EKAFKA
 * when fenced (sagad stops), else the producer is replaced and the open
 * transaction dropped like an abort: SAGA_ESTALE (SAGA_EIO when the new
 * producer could not be created yet). */
int saga_bus_txn_fatal(saga_bus_t *bus);

#endif
