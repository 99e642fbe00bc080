/* sagad's Kafka side: one consumer (start events and replies; offsets
 * committed with the relay transaction that completes their batch) and one
 * producer for the outbox relay — transactional when given a
 * transactional_id — whose delivery reports say which outbox rows may go. */
#ifndef SAGA_BUS_H
#define SAGA_BUS_H

#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stdint.h>

#include "saga_config.h"

typedef struct saga_bus saga_bus_t;

typedef struct {
    const char *bootstrap;
    const char *group;
    const char *client_id;
    const char *const *topics;   /* topics to consume */
    int topic_count;
    const saga_kv_list_t *props; /* -X overrides for both clients */
    const char *transactional_id; /* the producer's transactional.id (NULL: not transactional) */
    const char *instance_id;      /* group.instance.id (static membership) and the changelog writer header */
} saga_bus_config_t;


saga_bus_t *saga_bus_new(const saga_bus_config_t *cfg, char *err, size_t errlen);

/* Collects up to max messages, waiting at most timeout_ms for the first.
 * The caller destroys each with rd_kafka_message_destroy. Returns the count. */
int saga_bus_poll(saga_bus_t *bus, rd_kafka_message_t **msgs, int max, int timeout_ms);

/* Stores the offsets after these messages (call after the commit). */
void saga_bus_store_offsets(saga_bus_t *bus, rd_kafka_message_t **msgs, int n);

/* True once the consumer has been assigned partitions at least once. */
bool saga_bus_ready(const saga_bus_t *bus);
/* Shards (partition p of every consumed topic is shard p) this member is
 * assigned now; the version changes with every assignment and revocation.
 * An assigned shard's partitions are paused until saga_bus_resume_shard. */
bool saga_bus_owns(const saga_bus_t *bus, int shard);
uint64_t saga_bus_owned_version(const saga_bus_t *bus);
void saga_bus_resume_shard(saga_bus_t *bus, int shard);
/* True while partitions are assigned (false from a revocation to the next
 * assignment, e.g. while the group rebalances after a stall). */
bool saga_bus_consuming(const saga_bus_t *bus);
/* How many assignments there have been (changes on each one). */
uint64_t saga_bus_assignments(const saga_bus_t *bus);

/* Catch-up after a wake-up (stall, assignment, clock jump): records the
 * high watermark of every assigned partition of `topic` (asked of the
 * brokers, at most timeout_ms in all) as a target. Returns how many
 * messages the consumer is behind those targets (0: none, no catch-up). */
int64_t saga_bus_catchup_begin(saga_bus_t *bus, const char *topic, int timeout_ms);
/* True while the consumer's position has not reached every target, for at
 * most max_ms after the catch-up began (waited_ms: how long so far). */
bool saga_bus_catching_up(saga_bus_t *bus, int max_ms, int64_t *waited_ms);

/* Milliseconds since the last (re)assignment, -1 before the first. */
int64_t saga_bus_assigned_for_ms(const saga_bus_t *bus);

/* Queues one message; `opaque_id` (an outbox id) and `attempt` (how many
 * times the row was handed over before, 0 the first time) come back in its
 * delivery report, or in a failure (saga_bus_take_failed).
 * headers_json is an object of string values (may be NULL).
 * Returns 0, SAGA_EIO when the local queue is full (try again after serving
 * reports), or SAGA_EKAFKA when librdkafka refused it at once (too large,
 * unknown topic, ...): then it is reported as a failure too. */
int saga_bus_produce(saga_bus_t *bus, const char *topic, int partition, const char *key, const char *headers_json,
                     const void *payload, size_t len, int64_t opaque_id, int attempt);
/* (partition: the Kafka partition, -1: by key; payload NULL: a NULL value,
 * a tombstone of a compacted topic.) */

/* The changelog marker (issue 14): the highest offset delivered to `topic`
 * per partition is remembered; with a transactional producer only once the
 * transaction that carried it committed (an abort forgets it). */
#define SAGA_BUS_MAX_MARKERS 1000 /* SAGA_SHARD_MAX */
void saga_bus_set_marker_topic(saga_bus_t *bus, const char *topic);
/* The highest offset of partition delivered and committed since the last
 * call, -1 when none. */
int64_t saga_bus_take_marker(saga_bus_t *bus, int partition);

/* Serves delivery reports (non-blocking unless timeout_ms > 0); replaces
 * the producer after a fatal error (idempotence), its messages failed back. */
void saga_bus_serve(saga_bus_t *bus, int timeout_ms);

/* Moves the acknowledged ids (up to max) into ids; returns how many. */
int saga_bus_take_acked(saga_bus_t *bus, int64_t *ids, int max);
/* Acknowledged ids waiting to be taken. */
int saga_bus_acked_count(const saga_bus_t *bus);

/* A row whose delivery failed: the relay resends it alone (transient) or
 * parks it (permanent); rows delivered after it are never sent again. */
typedef struct {
    int64_t id;
    int attempt;              /* as given to saga_bus_produce */
    rd_kafka_resp_err_t err;
    bool at_once;             /* librdkafka refused it in saga_bus_produce (it never left) */
} saga_bus_failure_t;
int saga_bus_take_failed(saga_bus_t *bus, saga_bus_failure_t *out, int max);
int saga_bus_failed_count(const saga_bus_t *bus);
/* Producers replaced after a fatal error. */
uint64_t saga_bus_producers_recreated(const saga_bus_t *bus);

typedef enum {
    SAGA_BUS_TRANSIENT,     /* retry with backoff */
    SAGA_BUS_UNKNOWN_TOPIC, /* retry a few times, then permanent */
    SAGA_BUS_PERMANENT,     /* the broker refuses these bytes for good: park */
    SAGA_BUS_TOO_LARGE,     /* permanent if refused at once (message.max.bytes); from the broker
                               it may be the batch: sent alone again a few times, then parked */
} saga_bus_error_class_t;
saga_bus_error_class_t saga_bus_classify(rd_kafka_resp_err_t err);

/* Messages produced and not yet reported. */
int saga_bus_in_flight(const saga_bus_t *bus);

/* Consumer lag per topic (high watermark minus position, summed over the
 * assigned partitions, from librdkafka's cached watermarks: no broker
 * round trip). Adds {topic: lag} to `out` and, when by_partition is not
 * NULL, {"<partition>": lag summed over the topics} to it. */
void saga_bus_lag(saga_bus_t *bus, json_t *out, json_t *by_partition);

/* Waits up to timeout_ms for in-flight messages to be reported. */
void saga_bus_flush(saga_bus_t *bus, int timeout_ms);

/* ---- transactions (docs/DESIGN.md, "The commit sequence") ----
 * With a transactional_id the producer is transactional: the relay wraps
 * each pass in saga_bus_txn_begin / saga_bus_txn_commit, and acknowledged
 * rows are only handed to the loop (saga_bus_take_acked) once the
 * transaction that carried them committed. */
bool saga_bus_transactional(const saga_bus_t *bus);
/* Begins a transaction; the first call runs init_transactions (after the
 * group check: it fences an earlier sagad of the group on Apache Kafka).
 * 0, SAGA_EIO (init_transactions failed for now, or the producer was
 * replaced after a fatal error: try again later), or SAGA_EKAFKA (fenced:
 * see saga_bus_fenced). */
int saga_bus_txn_begin(saga_bus_t *bus);
/* Flushes, adds `offsets` (the consumer positions to commit with it, may be
 * NULL) and commits. 0: committed, the pass's acks are released;
 * SAGA_ESTALE: it had to be aborted (a delivery failed, or abort_on_purpose,
 * or the producer hit a fatal error other than fencing and was replaced):
 * aborted, its acks dropped, the failed rows reported as usual;
 * SAGA_EKAFKA: fenced by a newer sagad (or not authorised): sagad must stop. */
int saga_bus_txn_commit(saga_bus_t *bus, const rd_kafka_topic_partition_list_t *offsets, bool abort_on_purpose);
/* Aborts the open transaction (what it produced never becomes visible, its
 * acks are dropped): SAGA_ESTALE, or what a fatal error returns as above. */
int saga_bus_txn_abort(saga_bus_t *bus);
/* Why the transactional producer cannot go on (fenced), or NULL. */
const char *saga_bus_fenced(const saga_bus_t *bus);
/* True once after a transaction was aborted because its offsets carried a
 * stale group generation (this member lost its partitions: KIP-447). */
bool saga_bus_take_stale_generation(saga_bus_t *bus);
/* Tests (SAGAD_FATAL_TXN): the producer hits a fatal error now, a fencing
 * one (PRODUCER_FENCED) or not (OUT_OF_ORDER_SEQUENCE_NUMBER). */
void saga_bus_test_fatal(saga_bus_t *bus, bool fenced);
/* Adds the positions after these messages into *acc (created if NULL). */
void saga_bus_offsets_merge(rd_kafka_topic_partition_list_t **acc, rd_kafka_message_t **msgs, int n);
/* Stores offsets and commits them asynchronously with a plain commit (the
 * dev broker drops TxnOffsetCommit; on Apache Kafka the same values). */
void saga_bus_commit_offsets(saga_bus_t *bus, const rd_kafka_topic_partition_list_t *offsets);

/* Closes the consumer (committing stored offsets) and destroys both clients. */
void saga_bus_close(saga_bus_t **bus);

#endif
