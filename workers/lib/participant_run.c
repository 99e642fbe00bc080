/* The Kafka side of a participant: consume a batch of commands, process it
 * in one ledger transaction, produce the replies (idempotent producer), wait
 * for their delivery reports, and only then store the consumer offsets.
 * A crash anywhere in between re-delivers commands, which the ledger's
 * `processed` rows turn into re-sent stored replies. */
#include "participant.h"
#include "participant_internal.h"

#include "saga_alloc.h"
#include "saga_clock.h"
#include "saga_error.h"
#include "saga_histogram.h"
#include "saga_kafka.h"
#include "saga_log.h"
#include "saga_util.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define REASSIGN_DELAY_MS 1000

enum { DELIVERY_PENDING = 0, DELIVERY_OK = 1, DELIVERY_FAILED = 2 };

typedef struct {
    rd_kafka_message_t *msg;
    participant_reply_t reply;
    char traceparent[128];
    int has_traceparent;
    int delivery; /* DELIVERY_* */
} slot_t;

typedef struct {
    participant_t *p;
    const char *ready_file;
    int ready_written;
} run_state_t;

/* Where a command's time goes in the participant (--metrics-file). */
typedef struct {
    saga_histogram_t consume_lag, process, reply;
    unsigned long long commands, batches;
    int64_t written_ms;
} stages_t;

/* The command's timestamp (its producer's clock, CreateTime) to now. */
static void note_consume_lag(stages_t *st, const rd_kafka_message_t *m) {
    rd_kafka_timestamp_type_t type;
    int64_t ts = rd_kafka_message_timestamp(m, &type), now = saga_now_ms();
    if (ts > 0 && type == RD_KAFKA_TIMESTAMP_CREATE_TIME && now >= ts)
        saga_histogram_add(&st->consume_lag, (double)(now - ts) / 1000.0);
}

static void write_stages(const stages_t *st, const char *path, const char *name) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        LOG_WARN(name, "cannot write metrics file '%s'", tmp);
        return;
    }
    fprintf(f, "# HELP participant_commands_total Commands processed (duplicates included)\n"
               "# TYPE participant_commands_total counter\nparticipant_commands_total %llu\n"
               "# HELP participant_batches_total Batches processed (one ledger transaction each)\n"
               "# TYPE participant_batches_total counter\nparticipant_batches_total %llu\n",
            st->commands, st->batches);
    saga_histogram_write(f, "participant_consume_lag_seconds",
                         "A command's timestamp (its producer's clock) to the participant's poll", &st->consume_lag);
    saga_histogram_write(f, "participant_process_duration_seconds",
                         "A batch's handlers and ledger commit", &st->process);
    saga_histogram_write(f, "participant_reply_duration_seconds",
                         "A batch's replies produced until all are acknowledged", &st->reply);
    if (fclose(f) || rename(tmp, path)) LOG_WARN(name, "cannot write metrics file '%s'", path);
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts,
                         void *opaque) {
    run_state_t *rs = opaque;
    const char *name = rs->p->spec->name;
    int cooperative = !strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE");
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        rd_kafka_error_t *e = NULL;
        rd_kafka_resp_err_t r = RD_KAFKA_RESP_ERR_NO_ERROR;
        if (cooperative) e = rd_kafka_incremental_assign(rk, parts);
        else r = rd_kafka_assign(rk, parts);
        if (e) {
            LOG_ERROR(name, "partition assignment failed: %s", rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
        } else if (r) {
            LOG_ERROR(name, "partition assignment failed: %s", rd_kafka_err2str(r));
        }
        LOG_INFO(name, "assigned %d partition(s)", parts->cnt);
        if (rs->ready_file && !rs->ready_written) {
            if (saga_write_file_atomic(rs->ready_file, "READY\n"))
                LOG_ERROR(name, "cannot write ready file '%s'", rs->ready_file);
            else
                rs->ready_written = 1;
        }
    } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        LOG_INFO(name, "%d partition(s) revoked", parts->cnt);
        if (cooperative) {
            rd_kafka_error_t *e = rd_kafka_incremental_unassign(rk, parts);
            if (e) rd_kafka_error_destroy(e);
        } else {
            rd_kafka_assign(rk, NULL);
        }
    } else {
        LOG_ERROR(name, "rebalance error: %s", rd_kafka_err2str(err));
        rd_kafka_assign(rk, NULL);
    }
}

/* librdkafka 2.0.2 can leave assigned partitions without a fetcher when
 * the OffsetFetch of their committed offsets fails at the request level
 * with a coordinator error (NOT_COORDINATOR after the coordinator moved):
 * the partitions are neither queried again nor started, they only stay
 * "assigned" (confluentinc/librdkafka#5586), and the worker stops
 * consuming them while looking healthy. The error reaches the application
 * as a consumer error; the cure is to assign the same partitions again,
 * which fetches their committed offsets anew (from the new coordinator). */
static int offset_fetch_stuck(rd_kafka_resp_err_t err) {
    return err == RD_KAFKA_RESP_ERR_NOT_COORDINATOR || err == RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE;
}

/* Assigns the current assignment again (see above); offsets are re-read
 * from the committed ones (the stored ones of the old assignment are
 * committed first by librdkafka). Returns 0 or the librdkafka error. */
static rd_kafka_resp_err_t reassign(rd_kafka_t *rk, const char *name) {
    rd_kafka_topic_partition_list_t *parts = NULL;
    rd_kafka_resp_err_t err = rd_kafka_assignment(rk, &parts);
    if (err) return err;
    if (parts->cnt == 0) {
        rd_kafka_topic_partition_list_destroy(parts);
        return RD_KAFKA_RESP_ERR_NO_ERROR;
    }
    for (int i = 0; i < parts->cnt; i++) parts->elems[i].offset = RD_KAFKA_OFFSET_INVALID; /* committed */
    if (!strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE")) {
        rd_kafka_error_t *e = rd_kafka_incremental_unassign(rk, parts);
        if (!e) e = rd_kafka_incremental_assign(rk, parts);
        if (e) {
            err = rd_kafka_error_code(e);
            rd_kafka_error_destroy(e);
        }
    } else {
        err = rd_kafka_assign(rk, parts);
    }
    if (!err) LOG_WARN(name, "re-assigned %d partition(s) after a failed fetch of committed offsets", parts->cnt);
    rd_kafka_topic_partition_list_destroy(parts);
    return err;
}

/* A reply_partition the topic does not have: the reply is sent again keyed
 * by saga_id (murmur2), so sagad still gets it. */
static void forget_partition(participant_reply_t *r) {
    LOG_WARN("participant", "reply_partition %d is not a partition of %s: the reply for saga %s is "
             "produced keyed by its saga_id instead", r->partition, r->topic, r->key);
    r->partition = -1;
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    (void)opaque;
    slot_t *s = m->_private;
    if (!s) return;
    if (m->err) {
        LOG_WARN("participant", "reply to %s not delivered: %s", rd_kafka_topic_name(m->rkt),
                 rd_kafka_err2str(m->err));
        if (m->err == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION && s->reply.partition >= 0)
            forget_partition(&s->reply);
        s->delivery = DELIVERY_FAILED;
    } else {
        s->delivery = DELIVERY_OK;
    }
}

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    (void)rk;
    if (level <= 3) LOG_ERROR("rdkafka", "%s: %s", fac, buf);
    else if (level <= 5) LOG_WARN("rdkafka", "%s: %s", fac, buf);
    else LOG_DEBUG("rdkafka", "%s: %s", fac, buf);
}

/* Produces the reply to its command's reply_partition when it has one,
 * else keyed by saga_id (the producer's partitioner is murmur2_random, as
 * Java's default). */
static int produce_reply(rd_kafka_t *producer, slot_t *s, volatile sig_atomic_t *stop) {
    participant_reply_t *r = &s->reply;
    s->delivery = DELIVERY_PENDING;
    for (;;) {
        rd_kafka_resp_err_t err;
        int32_t partition = r->partition >= 0 ? r->partition : RD_KAFKA_PARTITION_UA;
        if (s->has_traceparent)
            err = rd_kafka_producev(
                producer, RD_KAFKA_V_TOPIC(r->topic), RD_KAFKA_V_PARTITION(partition),
                RD_KAFKA_V_KEY(r->key, strlen(r->key)),
                RD_KAFKA_V_VALUE(r->body, strlen(r->body)), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                RD_KAFKA_V_HEADER("saga_id", r->key, -1),
                RD_KAFKA_V_HEADER("content-type", "application/json", -1),
                RD_KAFKA_V_HEADER("traceparent", s->traceparent, -1), RD_KAFKA_V_OPAQUE(s),
                RD_KAFKA_V_END);
        else
            err = rd_kafka_producev(
                producer, RD_KAFKA_V_TOPIC(r->topic), RD_KAFKA_V_PARTITION(partition),
                RD_KAFKA_V_KEY(r->key, strlen(r->key)),
                RD_KAFKA_V_VALUE(r->body, strlen(r->body)), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                RD_KAFKA_V_HEADER("saga_id", r->key, -1),
                RD_KAFKA_V_HEADER("content-type", "application/json", -1), RD_KAFKA_V_OPAQUE(s),
                RD_KAFKA_V_END);
        if (!err) return 0;
        if (err == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION && r->partition >= 0) {
            forget_partition(r);
            continue;
        }
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL && !*stop) {
            rd_kafka_poll(producer, 50);
            continue;
        }
        LOG_ERROR("participant", "cannot produce reply to %s: %s", r->topic, rd_kafka_err2str(err));
        s->delivery = DELIVERY_FAILED;
        return SAGA_EKAFKA;
    }
}

/* Sends every reply of the batch and waits until all are acknowledged.
 * Failed deliveries are produced again (the reply is deterministic) until
 * they succeed or we are asked to stop. Returns 1 when all were delivered. */
static int deliver_all(rd_kafka_t *producer, slot_t *slots, int n, volatile sig_atomic_t *stop) {
    for (int i = 0; i < n; i++) {
        slots[i].delivery = DELIVERY_OK;
        if (slots[i].reply.body) produce_reply(producer, &slots[i], stop);
    }
    for (int round = 0;; round++) {
        rd_kafka_flush(producer, 10 * 1000);
        int pending = 0, failed = 0;
        for (int i = 0; i < n; i++) {
            if (slots[i].delivery == DELIVERY_PENDING) pending++;
            if (slots[i].delivery == DELIVERY_FAILED) failed++;
        }
        if (!pending && !failed) return 1;
        if (*stop && round > 0) {
            LOG_WARN("participant", "stopping with %d reply(ies) undelivered: offsets not stored, "
                     "the commands will be re-delivered and answered from the ledger", pending + failed);
            return 0;
        }
        if (failed) {
            usleep(200 * 1000);
            for (int i = 0; i < n; i++)
                if (slots[i].delivery == DELIVERY_FAILED) produce_reply(producer, &slots[i], stop);
        }
    }
}

static void store_offsets(rd_kafka_t *consumer, slot_t *slots, int n, const char *name) {
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(n);
    for (int i = 0; i < n; i++) {
        rd_kafka_message_t *m = slots[i].msg;
        const char *topic = rd_kafka_topic_name(m->rkt);
        rd_kafka_topic_partition_t *tp = rd_kafka_topic_partition_list_find(list, topic, m->partition);
        if (!tp) tp = rd_kafka_topic_partition_list_add(list, topic, m->partition);
        if (tp->offset < m->offset + 1) tp->offset = m->offset + 1;
    }
    rd_kafka_resp_err_t err = rd_kafka_offsets_store(consumer, list);
    if (err) {
        /* Typically a partition revoked meanwhile: its commands are
         * re-delivered to the new owner and answered from the ledger. */
        LOG_WARN(name, "storing offsets: %s", rd_kafka_err2str(err));
    }
    rd_kafka_topic_partition_list_destroy(list);
}

static void process_batch(participant_t *p, slot_t *slots, int n) {
    char where[300];
    int began = participant_batch_begin(p) == 0;
    for (int i = 0; began && i < n; i++) {
        rd_kafka_message_t *m = slots[i].msg;
        snprintf(where, sizeof where, "%s[%d]@%lld", rd_kafka_topic_name(m->rkt), (int)m->partition,
                 (long long)m->offset);
        participant_batch_process(p, m->payload ? m->payload : "", m->len, where, &slots[i].reply);
    }
    if (began && participant_batch_commit(p) == 0) return;
    /* The group commit failed and was rolled back: one transaction per
     * command, so one bad command cannot hold the others back. */
    LOG_WARN(p->spec->name, "batch of %d rolled back; processing its commands one by one", n);
    for (int i = 0; i < n; i++) {
        rd_kafka_message_t *m = slots[i].msg;
        participant_reply_clear(&slots[i].reply);
        snprintf(where, sizeof where, "%s[%d]@%lld", rd_kafka_topic_name(m->rkt), (int)m->partition,
                 (long long)m->offset);
        participant_process(p, m->payload ? m->payload : "", m->len, where, &slots[i].reply);
    }
}

int participant_run(participant_t *p, const participant_run_opts_t *o, char *err, size_t errlen) {
    const char *name = p->spec->name;
    const char *client_id = o->client_id ? o->client_id : p->spec->program;
    int batch_max = o->batch_max > 0 ? o->batch_max : 500;
    /* --delay-ms simulates a slow worker: one command at a time, so each
     * reply is delayed by delay-ms rather than by a whole batch of them. */
    if (p->faults.delay_ms > 0) batch_max = 1;
    run_state_t rs = {p, o->ready_file, 0};
    int rc = 0;
    slot_t *slots = NULL; /* freed after the final flush: delivery reports point into it */

    rd_kafka_conf_t *pconf = saga_kafka_conf_new(SAGA_KAFKA_PRODUCER, o->bootstrap, client_id, NULL,
                                                 o->kafka_props, err, errlen);
    if (!pconf) return SAGA_ECONFIG;
    rd_kafka_conf_set_dr_msg_cb(pconf, on_delivery);
    rd_kafka_conf_set_log_cb(pconf, on_log);
    char kerr[512];
    rd_kafka_t *producer = rd_kafka_new(RD_KAFKA_PRODUCER, pconf, kerr, sizeof kerr);
    if (!producer) {
        rd_kafka_conf_destroy(pconf);
        snprintf(err, errlen, "cannot create producer: %s", kerr);
        return SAGA_EKAFKA;
    }

    rd_kafka_conf_t *cconf = saga_kafka_conf_new(SAGA_KAFKA_CONSUMER, o->bootstrap, client_id, o->group,
                                                 o->kafka_props, err, errlen);
    if (!cconf) { rd_kafka_destroy(producer); return SAGA_ECONFIG; }
    rd_kafka_conf_set_rebalance_cb(cconf, on_rebalance);
    rd_kafka_conf_set_log_cb(cconf, on_log);
    rd_kafka_conf_set_opaque(cconf, &rs);
    rd_kafka_t *consumer = rd_kafka_new(RD_KAFKA_CONSUMER, cconf, kerr, sizeof kerr);
    if (!consumer) {
        rd_kafka_conf_destroy(cconf);
        rd_kafka_destroy(producer);
        snprintf(err, errlen, "cannot create consumer: %s", kerr);
        return SAGA_EKAFKA;
    }
    rd_kafka_poll_set_consumer(consumer);

    rd_kafka_topic_partition_list_t *subs = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(subs, o->topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t kr = rd_kafka_subscribe(consumer, subs);
    rd_kafka_topic_partition_list_destroy(subs);
    if (kr) {
        snprintf(err, errlen, "cannot subscribe to %s: %s", o->topic, rd_kafka_err2str(kr));
        rc = SAGA_EKAFKA;
        goto out;
    }
    LOG_INFO(name, "consuming %s as group %s (bootstrap %s)", o->topic, o->group, o->bootstrap);

    slots = saga_calloc((size_t)batch_max, sizeof *slots);
    if (!slots) { snprintf(err, errlen, "out of memory"); rc = SAGA_ENOMEM; goto out; }

    stages_t stages = {.consume_lag.bounds = saga_hist_fast_bounds, .process.bounds = saga_hist_fast_bounds,
                       .reply.bounds = saga_hist_fast_bounds}; /* this run's, from zero */
    int64_t reassign_at = 0; /* 0: none due */
    while (!*o->stop) {
        int n = 0;
        if (reassign_at && saga_now_ms() >= reassign_at) {
            /* between batches: no message of the old assignment is held */
            rd_kafka_resp_err_t re = reassign(consumer, name);
            if (re) LOG_ERROR(name, "re-assigning partitions: %s", rd_kafka_err2str(re));
            reassign_at = 0;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(consumer, 100);
        while (m) {
            if (m->err) {
                if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                    LOG_WARN(name, "consumer: %s", rd_kafka_message_errstr(m));
                /* once per second at most: the coordinator may take a
                 * moment to be found again, and each failed fetch says so */
                if (offset_fetch_stuck(m->err) && !reassign_at)
                    reassign_at = saga_now_ms() + REASSIGN_DELAY_MS;
                rd_kafka_message_destroy(m);
            } else {
                memset(&slots[n], 0, sizeof slots[n]);
                slots[n].msg = m;
                note_consume_lag(&stages, m);
                slots[n].has_traceparent =
                    saga_kafka_header(m, "traceparent", slots[n].traceparent, sizeof slots[n].traceparent) == 0;
                n++;
            }
            if (n >= batch_max) break;
            m = rd_kafka_consumer_poll(consumer, 0);
        }
        rd_kafka_poll(producer, 0);
        if (o->metrics_file && saga_monotonic_us() / 1000 - stages.written_ms >= 1000) {
            write_stages(&stages, o->metrics_file, name);
            stages.written_ms = saga_monotonic_us() / 1000;
        }
        if (n == 0) continue;

        int64_t t0 = saga_monotonic_us();
        process_batch(p, slots, n);
        int64_t t1 = saga_monotonic_us();
        int delivered = deliver_all(producer, slots, n, o->stop);
        saga_histogram_add(&stages.process, (double)(t1 - t0) / 1e6);
        saga_histogram_add(&stages.reply, (double)(saga_monotonic_us() - t1) / 1e6);
        stages.commands += (unsigned long long)n;
        stages.batches++;
        if (delivered) store_offsets(consumer, slots, n, name);
        LOG_DEBUG(name, "batch of %d commands done", n);
        for (int i = 0; i < n; i++) {
            participant_reply_clear(&slots[i].reply);
            rd_kafka_message_destroy(slots[i].msg);
        }
        char fatal[256];
        if (rd_kafka_fatal_error(producer, fatal, sizeof fatal) ||
            rd_kafka_fatal_error(consumer, fatal, sizeof fatal)) {
            snprintf(err, errlen, "fatal Kafka error: %s", fatal);
            rc = SAGA_EKAFKA;
            break;
        }
    }
    LOG_INFO(name, "stopping: %lld commands processed", participant_processed_count(p));
    if (o->metrics_file) write_stages(&stages, o->metrics_file, name);

out:
    rd_kafka_flush(producer, 10 * 1000);
    rd_kafka_purge(producer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_poll(producer, 0); /* the purged ones' reports, while slots still exist */
    saga_free(slots);
    rd_kafka_consumer_close(consumer); /* commits the stored offsets */
    rd_kafka_destroy(consumer);
    rd_kafka_destroy(producer);
    participant_drop_statements(p->db); /* cached by this thread */
    return rc;
}
