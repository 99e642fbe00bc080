/* The transactional producer's life (bus.h, "transactions"): begin,
 * commit with the consumer's offsets (KIP-447), abort, and what a fatal
 * error means: stop when fenced, else a new producer. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus_internal.h"
#include "saga_alloc.h"
#include "saga_error.h"
#include "saga_log.h"

static void note_fenced(saga_bus_t *bus) {
    if (bus->fenced) return;
    char why[512] = "";
    rd_kafka_resp_err_t code = rd_kafka_fatal_error(bus->producer, why, sizeof why);
    char msg[900];
    snprintf(msg, sizeof msg, "the transactional producer (transactional.id %s) hit a fatal error: %s (%s); "
             "another sagad with the same transactional.id probably took over: stopping",
             bus->txn_id, why[0] ? why : "unknown", rd_kafka_err2name(code));
    bus->fenced = saga_strdup(msg);
}

/* The producer's epoch was bumped under it: its transaction outlived
 * transaction.timeout.ms (a stall: the broker aborted it) or a process with
 * the same --instance-id started. Either way this instance may have lost its
 * shards: it gives them all up and goes on with a new producer (a duplicate
 * process is stopped by the group: its consumer gets FENCED_INSTANCE_ID). */
static bool fenced_epoch(rd_kafka_resp_err_t code) {
    return code == RD_KAFKA_RESP_ERR__FENCED || code == RD_KAFKA_RESP_ERR_PRODUCER_FENCED ||
           code == RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH;
}

/* Fatal errors that mean this instance may not use its transactional.id:
 * sagad must stop. Any other fatal error (e.g. a sequence desynchronisation
 * after a produce request timed out) ends only this producer: a new one,
 * after init_transactions, goes on. */
static bool stops_sagad(rd_kafka_resp_err_t code) {
    switch (code) {
    case RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_INVALID_TRANSACTION_TIMEOUT:
        return true;
    default:
        return false;
    }
}

void saga_bus_test_fatal(saga_bus_t *bus, bool fenced) {
    rd_kafka_resp_err_t code = fenced ? RD_KAFKA_RESP_ERR_PRODUCER_FENCED : RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER;
    if (rd_kafka_test_fatal_error(bus->producer, code, "a fatal error on purpose (SAGAD_FATAL_TXN, tests only)") ==
        RD_KAFKA_RESP_ERR_NO_ERROR)
        bus->fatal = 1;
}

/* The transactional producer hit a fatal error. Fenced: remembered, sagad
 * stops (SAGA_EKAFKA). Otherwise the producer is replaced: what the open
 * transaction held is dropped like an abort (its acks forgotten; its rows
 * go out again in a later transaction) and the next transaction begins
 * with init_transactions, which on Apache Kafka bumps the epoch and aborts
 * what the old producer left open. Returns SAGA_ESTALE then (the caller
 * rewinds as after an abort). */
int saga_bus_txn_fatal(saga_bus_t *bus) {
    if (bus->fenced) return SAGA_EKAFKA;
    char why[512] = "";
    rd_kafka_resp_err_t code = rd_kafka_fatal_error(bus->producer, why, sizeof why);
    if (stops_sagad(code)) {
        note_fenced(bus);
        return SAGA_EKAFKA;
    }
    if (fenced_epoch(code)) {
        LOG_ERROR("bus", "the transactional producer was fenced (%s: %s): this instance's open transaction was "
                  "aborted by the broker; giving up every shard, going on with a new producer",
                  rd_kafka_err2name(code), why);
        bus->stale_generation = true;
    }
    saga_bus_recreate_producer(bus);
    if (bus->fatal) return SAGA_EIO; /* not recreated: tried again at the next call */
    bus->in_txn = false;
    bus->txn_ready = false;
    bus->acked_count = bus->txn_acked;
    for (int p = 0; p < SAGA_BUS_MAX_MARKERS; p++) bus->marker_pending[p] = -1;
    return SAGA_ESTALE;
}

/* ---- transactions ---- */

bool saga_bus_transactional(const saga_bus_t *bus) { return bus->txn_id != NULL; }
const char *saga_bus_fenced(const saga_bus_t *bus) { return bus ? bus->fenced : NULL; }

bool saga_bus_take_stale_generation(saga_bus_t *bus) {
    bool stale = bus->stale_generation;
    bus->stale_generation = false;
    return stale;
}

/* A fatal transactional error: remembered, sagad stops. */
static int txn_error(saga_bus_t *bus, rd_kafka_error_t *e, const char *what) {
    bool fatal = rd_kafka_error_is_fatal(e);
    LOG_ERROR("bus", "%s: %s%s", what, rd_kafka_error_string(e), fatal ? " (fatal)" : "");
    rd_kafka_error_destroy(e);
    if (!fatal) return SAGA_EKAFKA;
    bus->fatal = 1;
    return saga_bus_txn_fatal(bus);
}

int saga_bus_txn_begin(saga_bus_t *bus) {
    assert(bus->txn_id && !bus->in_txn);
    if (bus->fenced) return SAGA_EKAFKA;
    if (!bus->txn_ready) {
        /* Only now, after the group check of the first assignment passed:
         * on Apache Kafka init_transactions fences a previous sagad of the
         * group and aborts its open transaction — a second sagad started
         * by mistake must refuse before it can do that to the first. */
        rd_kafka_error_t *e = rd_kafka_init_transactions(bus->producer, 60000);
        if (e) {
            if (rd_kafka_error_is_fatal(e)) {
                int rc = txn_error(bus, e, "init_transactions");
                return rc == SAGA_ESTALE ? SAGA_EIO : rc; /* a new producer: nothing was produced */
            }
            LOG_WARN("bus", "init_transactions (transactional.id %s): %s (trying again)", bus->txn_id,
                     rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
            return SAGA_EIO;
        }
        bus->txn_ready = true;
        LOG_INFO("bus", "transactional producer ready (transactional.id %s)", bus->txn_id);
    }
    rd_kafka_error_t *e = rd_kafka_begin_transaction(bus->producer);
    if (e) {
        int rc = txn_error(bus, e, "begin_transaction");
        return rc == SAGA_ESTALE ? SAGA_EIO : rc;
    }
    bus->in_txn = true;
    return 0;
}

/* Aborts the open transaction: what it acknowledged is dropped (the rows
 * stay in the outbox and go out again in a later transaction). */
static int txn_abort(saga_bus_t *bus) {
    rd_kafka_error_t *e = rd_kafka_abort_transaction(bus->producer, 60000);
    bus->in_txn = false;
    rd_kafka_poll(bus->producer, 0);
    bus->acked_count = bus->txn_acked;
    for (int p = 0; p < SAGA_BUS_MAX_MARKERS; p++) bus->marker_pending[p] = -1;
    bus->in_flight = 0;
    if (e) return txn_error(bus, e, "abort_transaction");
    return SAGA_ESTALE;
}

int saga_bus_txn_abort(saga_bus_t *bus) {
    assert(bus->txn_id && bus->in_txn);
    if (bus->fenced) return SAGA_EKAFKA;
    return txn_abort(bus);
}

int saga_bus_txn_commit(saga_bus_t *bus, const rd_kafka_topic_partition_list_t *offsets, bool abort_on_purpose) {
    assert(bus->txn_id && bus->in_txn);
    if (bus->fenced) return SAGA_EKAFKA;
    /* Every row's delivery report first: a failed one makes the transaction abortable. */
    while (bus->in_flight > 0 && !bus->fatal) rd_kafka_flush(bus->producer, 100), rd_kafka_poll(bus->producer, 0);
    if (bus->fatal) return saga_bus_txn_fatal(bus);
    if (abort_on_purpose || bus->failed_count > 0) {
        if (abort_on_purpose) LOG_WARN("bus", "aborting the relay transaction on purpose (SAGAD_ABORT_TXN)");
        else LOG_WARN("bus", "%d delivery(ies) failed: aborting the relay transaction", bus->failed_count);
        return txn_abort(bus);
    }
    if (offsets && offsets->cnt > 0) {
        rd_kafka_consumer_group_metadata_t *md = rd_kafka_consumer_group_metadata(bus->consumer);
        rd_kafka_error_t *e = rd_kafka_send_offsets_to_transaction(bus->producer, offsets, md, 60000);
        rd_kafka_consumer_group_metadata_destroy(md);
        if (e) {
            if (rd_kafka_error_is_fatal(e)) return txn_error(bus, e, "send_offsets_to_transaction");
            LOG_WARN("bus", "send_offsets_to_transaction: %s: aborting", rd_kafka_error_string(e));
            rd_kafka_resp_err_t code = rd_kafka_error_code(e);
            /* KIP-447: the group moved on without this member (its session
             * expired): a zombie's transaction. */
            if (code == RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION || code == RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID ||
                code == RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID)
                bus->stale_generation = true;
            rd_kafka_error_destroy(e);
            return txn_abort(bus);
        }
    }
    rd_kafka_error_t *e = rd_kafka_commit_transaction(bus->producer, 60000);
    rd_kafka_poll(bus->producer, 0);
    if (e) {
        if (rd_kafka_error_is_fatal(e)) return txn_error(bus, e, "commit_transaction");
        LOG_WARN("bus", "commit_transaction: %s: aborting", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        return txn_abort(bus);
    }
    bus->in_txn = false;
    bus->txn_acked = bus->acked_count;
    for (int p = 0; p < SAGA_BUS_MAX_MARKERS; p++) {
        if (bus->marker_pending[p] > bus->marker_done[p]) bus->marker_done[p] = bus->marker_pending[p];
        bus->marker_pending[p] = -1;
    }
    return 0;
}

void saga_bus_offsets_merge(rd_kafka_topic_partition_list_t **acc, rd_kafka_message_t **msgs, int n) {
    if (n == 0) return;
    if (!*acc) *acc = rd_kafka_topic_partition_list_new(n);
    for (int i = 0; i < n; i++) {
        rd_kafka_topic_partition_t *p =
            rd_kafka_topic_partition_list_find(*acc, rd_kafka_topic_name(msgs[i]->rkt), msgs[i]->partition);
        if (!p) {
            p = rd_kafka_topic_partition_list_add(*acc, rd_kafka_topic_name(msgs[i]->rkt), msgs[i]->partition);
            p->offset = RD_KAFKA_OFFSET_INVALID;
        }
        if (msgs[i]->offset + 1 > p->offset) p->offset = msgs[i]->offset + 1;
    }
}

void saga_bus_commit_offsets(saga_bus_t *bus, const rd_kafka_topic_partition_list_t *offsets) {
    if (!offsets || offsets->cnt == 0) return;
    rd_kafka_topic_partition_list_t *copy = rd_kafka_topic_partition_list_copy(offsets);
    rd_kafka_resp_err_t rc = rd_kafka_offsets_store(bus->consumer, copy);
    if (rc) LOG_DEBUG("bus", "offsets store: %s", rd_kafka_err2str(rc));
    rc = rd_kafka_commit(bus->consumer, copy, 1);
    if (rc) LOG_DEBUG("bus", "offsets commit: %s", rd_kafka_err2str(rc));
    rd_kafka_topic_partition_list_destroy(copy);
}
