/* sagad's Kafka clients (bus.h): the consumer (group check, catch-up
 * watermarks, re-assignment) and the producer with per-row delivery reports. */
#include "bus.h"

#include <assert.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "saga_alloc.h"
#include "saga_clock.h"
#include "saga_error.h"
#include "saga_json.h"
#include "saga_kafka.h"
#include "saga_log.h"
#include "saga_util.h"

#include "bus_internal.h"


static char *dup_string(const char *s) {
    size_t n = strlen(s) + 1;
    char *c = saga_malloc(n);
    if (c) memcpy(c, s, n);
    return c;
}

/* The delivery report's opaque: outbox id and the attempt that sent it. */
#define OPAQUE(id, attempt) ((void *)(intptr_t)((id) * 256 + ((attempt) > 255 ? 255 : (attempt))))
#define OPAQUE_ID(o) ((int64_t)(intptr_t)(o) / 256)
#define OPAQUE_ATTEMPT(o) ((int)((int64_t)(intptr_t)(o) % 256))

static void note_failure(saga_bus_t *bus, int64_t id, int attempt, rd_kafka_resp_err_t err, bool at_once) {
    if (bus->failed_count == bus->failed_cap) {
        int cap = bus->failed_cap ? bus->failed_cap * 2 : 256;
        saga_bus_failure_t *bigger = saga_realloc(bus->failed, (size_t)cap * sizeof *bigger);
        if (!bigger) {
            /* Cannot remember it: the row stays in the outbox and is sent
             * again after a restart. */
            LOG_ERROR("bus", "out of memory: outbox row %lld is resent after a restart", (long long)id);
            return;
        }
        bus->failed = bigger;
        bus->failed_cap = cap;
    }
    bus->failed[bus->failed_count++] = (saga_bus_failure_t){.id = id, .attempt = attempt, .err = err, .at_once = at_once};
}

/* The shards this member owns follow the group's assignment (range
 * assignor: partition p of every consumed topic goes to one member, so a
 * shard's start, replies and control partitions stay together). A new
 * assignment is taken paused: the loop resumes each shard's partitions
 * once the shard is ready (restored or caught up from the changelog;
 * saga_bus_resume_shard). A revocation commits what the loop stored. */
static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts,
                         void *opaque) {
    saga_bus_t *bus = opaque;
    memset(bus->owned, 0, sizeof bus->owned);
    bus->owned_version++;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        int shards = 0;
        for (int i = 0; i < parts->cnt; i++) {
            int p = parts->elems[i].partition;
            if (p < 0 || p >= SAGA_BUS_MAX_MARKERS) continue;
            if (!bus->owned[p]) shards++;
            bus->owned[p] = true;
        }
        LOG_INFO("bus", "assigned %d partition(s): %d shard(s), paused until each is ready", parts->cnt, shards);
        rd_kafka_assign(rk, parts);
        rd_kafka_pause_partitions(rk, parts);
        bus->assigned = true;
        bus->holding = true;
        bus->assigned_at_us = saga_monotonic_us();
        bus->assignments++;
    } else {
        bool lost = rd_kafka_assignment_lost(rk);
        LOG_INFO("bus", "%s %d partition(s)", lost ? "lost (the session expired; their offsets are not committed)"
                                                   : "revoking", parts->cnt);
        bus->holding = false;
        if (!lost) rd_kafka_commit(rk, NULL, 0);
        rd_kafka_assign(rk, NULL);
    }
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    saga_bus_t *bus = opaque;
    int64_t id = OPAQUE_ID(m->_private);
    bus->in_flight--;
    if (m->err && bus->txn_id && (m->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE || m->err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT))
        return; /* purged by an abort: its row is produced again in a later transaction */
    if (m->err) {
        /* Only this row is sent again (or parked): rows after it that were
         * delivered are never sent twice. */
        note_failure(bus, id, OPAQUE_ATTEMPT(m->_private), m->err, false);
        return;
    }
    if (bus->acked_count == bus->acked_cap) {
        int cap = bus->acked_cap ? bus->acked_cap * 2 : 1024;
        int64_t *bigger = saga_realloc(bus->acked, (size_t)cap * sizeof *bigger);
        if (!bigger) {
            /* Cannot remember the ack: the row stays and is resent later,
             * which dedup absorbs. */
            return;
        }
        bus->acked = bigger;
        bus->acked_cap = cap;
    }
    bus->acked[bus->acked_count++] = id;
    if (bus->marker_topic && m->partition >= 0 && m->partition < SAGA_BUS_MAX_MARKERS && m->offset >= 0 &&
        !strcmp(rd_kafka_topic_name(m->rkt), bus->marker_topic)) {
        int64_t *slot = bus->txn_id ? &bus->marker_pending[m->partition] : &bus->marker_done[m->partition];
        if (m->offset > *slot) *slot = m->offset;
    }
}

void saga_bus_set_marker_topic(saga_bus_t *bus, const char *topic) {
    saga_free(bus->marker_topic);
    bus->marker_topic = topic ? dup_string(topic) : NULL;
    for (int p = 0; p < SAGA_BUS_MAX_MARKERS; p++) bus->marker_pending[p] = bus->marker_done[p] = -1;
}

int64_t saga_bus_take_marker(saga_bus_t *bus, int partition) {
    if (partition < 0 || partition >= SAGA_BUS_MAX_MARKERS) return -1;
    int64_t o = bus->marker_done[partition];
    bus->marker_done[partition] = -1;
    return o;
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
    saga_bus_t *bus = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL && rk == bus->producer) bus->fatal = 1;
    if (err == RD_KAFKA_RESP_ERR__FATAL && rk == bus->consumer && !bus->fenced) {
        /* e.g. FENCED_INSTANCE_ID: another process joined the group under
         * this instance's id; this one must stop. */
        char msg[700];
        snprintf(msg, sizeof msg, "the consumer hit a fatal error: %s; another sagad with the same --instance-id "
                 "probably joined the group: stopping", reason);
        bus->fenced = saga_strdup(msg);
    }
    LOG_WARN("bus", "%s: %s", rd_kafka_name(rk), reason);
}

static rd_kafka_t *new_producer(saga_bus_t *bus, char *err, size_t errlen) {
    char reason[512];
    rd_kafka_conf_t *pconf = saga_kafka_conf_new(SAGA_KAFKA_PRODUCER, bus->bootstrap, bus->client_id, NULL,
                                                 bus->props, err, errlen);
    if (!pconf) return NULL;
    if (bus->txn_id && saga_kafka_conf_set(pconf, "transactional.id", bus->txn_id, err, errlen)) {
        rd_kafka_conf_destroy(pconf);
        return NULL;
    }
    /* A relay transaction lasts milliseconds. When its instance dies and is
     * not started again (its transactional.id would abort it at once), the
     * broker aborts it after transaction.timeout.ms, and until then every
     * read_committed consumer of the partitions it wrote waits at the LSO:
     * 10 s, not librdkafka's 60 s (-X overrides both). */
    bool user_txn_timeout = false, user_msg_timeout = false;
    for (size_t i = 0; bus->props && i < bus->props->count; i++) {
        user_txn_timeout |= !strcmp(bus->props->keys[i], "transaction.timeout.ms");
        user_msg_timeout |= !strcmp(bus->props->keys[i], "message.timeout.ms");
    }
    if (bus->txn_id && ((!user_txn_timeout && saga_kafka_conf_set(pconf, "transaction.timeout.ms", "10000", err, errlen)) ||
                        (!user_msg_timeout && saga_kafka_conf_set(pconf, "message.timeout.ms", "10000", err, errlen)))) {
        rd_kafka_conf_destroy(pconf);
        return NULL;
    }
    rd_kafka_conf_set_opaque(pconf, bus);
    rd_kafka_conf_set_dr_msg_cb(pconf, on_delivery);
    rd_kafka_conf_set_error_cb(pconf, on_error);
    rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, pconf, reason, sizeof reason);
    if (!p) {
        rd_kafka_conf_destroy(pconf);
        snprintf(err, errlen, "Kafka producer: %s", reason);
    }
    return p;
}

/* An idempotent producer that hit a fatal error (e.g. the broker lost its
 * sequence state) refuses everything from then on: every message it holds
 * is failed back to the loop (resent by the new one) and it is replaced. */
void saga_bus_recreate_producer(saga_bus_t *bus) {
    char why[512] = "";
    rd_kafka_resp_err_t code = rd_kafka_fatal_error(bus->producer, why, sizeof why);
    LOG_ERROR("bus", "producer fatal error (%s: %s): recreating the producer; %d message(s) in flight are resent",
              rd_kafka_err2name(code), why, bus->in_flight);
    rd_kafka_purge(bus->producer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT | RD_KAFKA_PURGE_F_NON_BLOCKING);
    rd_kafka_poll(bus->producer, 0); /* their delivery reports: failures, resent one by one */
    rd_kafka_t *old = bus->producer;
    char err[512];
    rd_kafka_t *fresh = new_producer(bus, err, sizeof err);
    if (!fresh) {
        LOG_ERROR("bus", "cannot recreate the producer: %s (trying again)", err);
        return;
    }
    bus->producer = fresh;
    bus->fatal = 0;
    rd_kafka_destroy(old);
    bus->in_flight = 0; /* whatever the old one still held was reported or is lost: resent from the failures */
    bus->producers_recreated++;
}

saga_bus_t *saga_bus_new(const saga_bus_config_t *cfg, char *err, size_t errlen) {
    saga_bus_t *bus = saga_calloc(1, sizeof *bus);
    if (bus)
        for (int p = 0; p < SAGA_BUS_MAX_MARKERS; p++) bus->marker_pending[p] = bus->marker_done[p] = -1;
    if (!bus) { snprintf(err, errlen, "out of memory"); return NULL; }
    char reason[512];
    bus->bootstrap = saga_strdup(cfg->bootstrap);
    bus->client_id = saga_strdup(cfg->client_id ? cfg->client_id : "sagad");
    bus->group = dup_string(cfg->group ? cfg->group : "");
    bus->props = cfg->props;
    bus->txn_id = cfg->transactional_id ? saga_strdup(cfg->transactional_id) : NULL;
    bus->instance_id = cfg->instance_id ? saga_strdup(cfg->instance_id) : NULL;
    bus->topics = saga_calloc((size_t)(cfg->topic_count > 0 ? cfg->topic_count : 1), sizeof *bus->topics);
    if (!bus->topics || (cfg->instance_id && !bus->instance_id)) { snprintf(err, errlen, "out of memory"); goto fail; }
    for (int i = 0; i < cfg->topic_count; i++, bus->topic_count++)
        if (!(bus->topics[i] = saga_strdup(cfg->topics[i]))) { snprintf(err, errlen, "out of memory"); goto fail; }
    if (cfg->transactional_id && !bus->txn_id) { snprintf(err, errlen, "out of memory"); goto fail; }
    if (!bus->bootstrap || !bus->client_id || !bus->group) { snprintf(err, errlen, "out of memory"); goto fail; }
    bus->producer = new_producer(bus, err, errlen);
    if (!bus->producer) goto fail;

    rd_kafka_conf_t *cconf = saga_kafka_conf_new(SAGA_KAFKA_CONSUMER, cfg->bootstrap, cfg->client_id, cfg->group,
                                                 cfg->props, err, errlen);
    if (!cconf) goto fail;
    /* range: partition p of every topic to the same member (a shard);
     * group.instance.id: a restart within the session keeps its shards (KIP-345). */
    if (saga_kafka_conf_set(cconf, "partition.assignment.strategy", "range", err, errlen) ||
        (cfg->instance_id && saga_kafka_conf_set(cconf, "group.instance.id", cfg->instance_id, err, errlen))) {
        rd_kafka_conf_destroy(cconf);
        goto fail;
    }
    rd_kafka_conf_set_opaque(cconf, bus);
    rd_kafka_conf_set_rebalance_cb(cconf, on_rebalance);
    rd_kafka_conf_set_error_cb(cconf, on_error);
    bus->consumer = rd_kafka_new(RD_KAFKA_CONSUMER, cconf, reason, sizeof reason);
    if (!bus->consumer) {
        rd_kafka_conf_destroy(cconf);
        snprintf(err, errlen, "Kafka consumer: %s", reason);
        goto fail;
    }
    rd_kafka_poll_set_consumer(bus->consumer);
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(cfg->topic_count);
    for (int i = 0; i < cfg->topic_count; i++)
        rd_kafka_topic_partition_list_add(topics, cfg->topics[i], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t rc = rd_kafka_subscribe(bus->consumer, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (rc) {
        snprintf(err, errlen, "Kafka subscribe: %s", rd_kafka_err2str(rc));
        goto fail;
    }
    return bus;
fail:
    saga_bus_close(&bus);
    return NULL;
}

/* Assigns the current assignment again: each partition from the position
 * the loop reached (none yet: the committed offset, fetched anew). */
static void reassign(saga_bus_t *bus) {
    rd_kafka_topic_partition_list_t *parts = NULL;
    if (rd_kafka_assignment(bus->consumer, &parts) || !parts) return;
    if (parts->cnt > 0) {
        for (int i = 0; i < parts->cnt; i++) parts->elems[i].offset = RD_KAFKA_OFFSET_INVALID;
        rd_kafka_position(bus->consumer, parts); /* INVALID where nothing was consumed */
        rd_kafka_commit(bus->consumer, NULL, 0); /* what the loop stored, before it is forgotten */
        rd_kafka_resp_err_t e1 = rd_kafka_assign(bus->consumer, NULL);
        rd_kafka_resp_err_t e2 = rd_kafka_assign(bus->consumer, parts);
        LOG_WARN("bus", "fetching committed offsets failed (%s): %d partition(s) assigned again (%s)",
                 rd_kafka_err2name(bus->reassign_err), parts->cnt, e1 || e2 ? rd_kafka_err2str(e1 ? e1 : e2) : "ok");
        bus->assigned_at_us = saga_monotonic_us();
        bus->assignments++;
    }
    rd_kafka_topic_partition_list_destroy(parts);
}

int saga_bus_poll(saga_bus_t *bus, rd_kafka_message_t **msgs, int max, int timeout_ms) {
    int n = 0;
    while (n < max) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(bus->consumer, n == 0 ? timeout_ms : 0);
        if (!m) break;
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                LOG_WARN("bus", "consumer: %s", rd_kafka_message_errstr(m));
            /* librdkafka 2.0.2 can stop fetching the partitions whose
             * OffsetFetch failed with a coordinator error (NOT_COORDINATOR
             * when the coordinator moved; COORDINATOR_NOT_AVAILABLE and
             * COORDINATOR_LOAD_IN_PROGRESS stop them the same way on the
             * dev broker): assign them again, from where we stand, half a
             * second later — and again while the error comes back. */
            if ((m->err == RD_KAFKA_RESP_ERR_NOT_COORDINATOR || m->err == RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE ||
                 m->err == RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS) &&
                bus->holding && !bus->reassign_after_us) {
                bus->reassign_after_us = saga_monotonic_us() + 500000;
                bus->reassign_err = m->err;
            }
            rd_kafka_message_destroy(m);
            if (n == 0) timeout_ms = 0;
            continue;
        }
        msgs[n++] = m;
    }
    if (bus->reassign_after_us && saga_monotonic_us() >= bus->reassign_after_us) {
        bus->reassign_after_us = 0;
        if (bus->holding) reassign(bus);
    }
    return n;
}

void saga_bus_store_offsets(saga_bus_t *bus, rd_kafka_message_t **msgs, int n) {
    if (n == 0) return;
    rd_kafka_topic_partition_list_t *offsets = rd_kafka_topic_partition_list_new(n);
    for (int i = 0; i < n; i++) {
        rd_kafka_topic_partition_t *p = rd_kafka_topic_partition_list_find(
            offsets, rd_kafka_topic_name(msgs[i]->rkt), msgs[i]->partition);
        if (!p) p = rd_kafka_topic_partition_list_add(offsets, rd_kafka_topic_name(msgs[i]->rkt),
                                                      msgs[i]->partition);
        if (msgs[i]->offset + 1 > p->offset) p->offset = msgs[i]->offset + 1;
    }
    rd_kafka_resp_err_t rc = rd_kafka_offsets_store(bus->consumer, offsets);
    if (rc) /* e.g. the partition was revoked meanwhile: its new owner re-reads, dedup absorbs */
        LOG_DEBUG("bus", "offsets store: %s", rd_kafka_err2str(rc));
    rd_kafka_topic_partition_list_destroy(offsets);
}

bool saga_bus_ready(const saga_bus_t *bus) { return bus->assigned; }

bool saga_bus_owns(const saga_bus_t *bus, int shard) {
    return shard >= 0 && shard < SAGA_BUS_MAX_MARKERS && bus->owned[shard];
}

uint64_t saga_bus_owned_version(const saga_bus_t *bus) { return bus->owned_version; }

void saga_bus_resume_shard(saga_bus_t *bus, int shard) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(bus->topic_count);
    for (int i = 0; i < bus->topic_count; i++) rd_kafka_topic_partition_list_add(l, bus->topics[i], shard);
    rd_kafka_resp_err_t e = rd_kafka_resume_partitions(bus->consumer, l);
    if (e) LOG_WARN("bus", "resuming shard %d's partitions: %s", shard, rd_kafka_err2str(e));
    rd_kafka_topic_partition_list_destroy(l);
}

uint64_t saga_bus_assignments(const saga_bus_t *bus) { return bus->assignments; }

bool saga_bus_consuming(const saga_bus_t *bus) { return bus->holding; }

static void catchup_clear(saga_bus_t *bus) {
    if (bus->catchup) rd_kafka_topic_partition_list_destroy(bus->catchup);
    bus->catchup = NULL;
    saga_free(bus->catchup_base);
    bus->catchup_base = NULL;
}

static int64_t remaining_ms(int64_t deadline_us) {
    int64_t left = (deadline_us - saga_monotonic_us()) / 1000;
    return left > 0 ? left : 0;
}

int64_t saga_bus_catchup_begin(saga_bus_t *bus, const char *topic, int timeout_ms) {
    catchup_clear(bus);
    rd_kafka_topic_partition_list_t *all = NULL;
    if (!bus->assigned || rd_kafka_assignment(bus->consumer, &all) || !all) return 0;
    int64_t deadline = saga_monotonic_us() + (int64_t)timeout_ms * 1000;
    rd_kafka_topic_partition_list_t *t = rd_kafka_topic_partition_list_new(all->cnt > 0 ? all->cnt : 1);
    for (int i = 0; i < all->cnt; i++)
        if (!strcmp(all->elems[i].topic, topic)) rd_kafka_topic_partition_list_add(t, topic, all->elems[i].partition);
    rd_kafka_topic_partition_list_destroy(all);
    int64_t *base = saga_calloc((size_t)(t->cnt > 0 ? t->cnt : 1), sizeof *base);
    if (!base || t->cnt == 0) {
        saga_free(base);
        rd_kafka_topic_partition_list_destroy(t);
        return 0;
    }
    /* Where the consumer stands: its position, else (nothing consumed since
     * the assignment) the committed offset, else the low watermark. */
    rd_kafka_topic_partition_list_t *pos = rd_kafka_topic_partition_list_copy(t);
    rd_kafka_position(bus->consumer, pos);
    bool need_committed = false;
    for (int i = 0; i < pos->cnt; i++) {
        base[i] = pos->elems[i].offset;
        if (base[i] < 0) need_committed = true;
    }
    if (need_committed && remaining_ms(deadline) > 0) {
        rd_kafka_topic_partition_list_t *com = rd_kafka_topic_partition_list_copy(t);
        if (rd_kafka_committed(bus->consumer, com, (int)remaining_ms(deadline)) == RD_KAFKA_RESP_ERR_NO_ERROR)
            for (int i = 0; i < com->cnt; i++)
                if (base[i] < 0 && !com->elems[i].err && com->elems[i].offset >= 0) base[i] = com->elems[i].offset;
        rd_kafka_topic_partition_list_destroy(com);
    }
    rd_kafka_topic_partition_list_destroy(pos);
    int64_t behind = 0;
    rd_kafka_topic_partition_list_t *keep = rd_kafka_topic_partition_list_new(t->cnt);
    int kept = 0;
    for (int i = 0; i < t->cnt; i++) {
        int64_t lo = -1, hi = -1;
        int64_t left = remaining_ms(deadline);
        rd_kafka_resp_err_t e = left > 0 ? rd_kafka_query_watermark_offsets(bus->consumer, topic, t->elems[i].partition,
                                                                             &lo, &hi, (int)left)
                                         : RD_KAFKA_RESP_ERR__TIMED_OUT;
        if (e) e = rd_kafka_get_watermark_offsets(bus->consumer, topic, t->elems[i].partition, &lo, &hi);
        if (e || hi < 0) {
            LOG_WARN("bus", "catch-up: no high watermark for %s [%d]: %s", topic, (int)t->elems[i].partition,
                     rd_kafka_err2str(e));
            continue;
        }
        int64_t at = base[i] >= 0 ? base[i] : lo;
        if (at >= hi) continue; /* nothing waiting there */
        rd_kafka_topic_partition_list_add(keep, topic, t->elems[i].partition)->offset = hi;
        base[kept++] = base[i];
        behind += hi - at;
    }
    rd_kafka_topic_partition_list_destroy(t);
    if (kept == 0) {
        saga_free(base);
        rd_kafka_topic_partition_list_destroy(keep);
        return 0;
    }
    t = keep;
    bus->catchup = t;
    bus->catchup_base = base;
    bus->catchup_started_us = saga_monotonic_us();
    return behind;
}

bool saga_bus_catching_up(saga_bus_t *bus, int max_ms, int64_t *waited_ms) {
    if (!bus->catchup) return false;
    int64_t waited = (saga_monotonic_us() - bus->catchup_started_us) / 1000;
    if (waited_ms) *waited_ms = waited;
    bool behind = false;
    rd_kafka_topic_partition_list_t *pos = rd_kafka_topic_partition_list_copy(bus->catchup);
    for (int i = 0; i < pos->cnt; i++) pos->elems[i].offset = RD_KAFKA_OFFSET_INVALID;
    rd_kafka_position(bus->consumer, pos);
    for (int i = 0; i < pos->cnt && !behind; i++) {
        if (pos->elems[i].err) continue; /* no longer ours */
        int64_t at = pos->elems[i].offset >= 0 ? pos->elems[i].offset : bus->catchup_base[i];
        if (at < bus->catchup->elems[i].offset) behind = true;
        LOG_DEBUG("bus", "catch-up: %s [%d] at %lld (position %lld), target %lld", pos->elems[i].topic,
                  (int)pos->elems[i].partition, (long long)at, (long long)pos->elems[i].offset,
                  (long long)bus->catchup->elems[i].offset);
    }
    rd_kafka_topic_partition_list_destroy(pos);
    if (!behind) {
        catchup_clear(bus);
        return false;
    }
    if (waited >= max_ms) {
        LOG_WARN("bus", "catch-up: the replies were not read up to their high watermark within %d ms: "
                 "due timers fire now", max_ms);
        catchup_clear(bus);
        return false;
    }
    return true;
}

int64_t saga_bus_assigned_for_ms(const saga_bus_t *bus) {
    return bus->assigned ? (saga_monotonic_us() - bus->assigned_at_us) / 1000 : -1;
}

int saga_bus_produce(saga_bus_t *bus, const char *topic, int partition, const char *key, const char *headers_json,
                     const void *payload, size_t len, int64_t opaque_id, int attempt) {
    rd_kafka_headers_t *hdrs = rd_kafka_headers_new(4);
    rd_kafka_header_add(hdrs, "content-type", -1, "application/json", -1);
    saga_json_pair_t pairs[8];
    int npairs = saga_json_flat_object(headers_json, pairs, 8);
    for (int i = 0; i < npairs; i++)
        rd_kafka_header_add(hdrs, pairs[i].key, (ssize_t)pairs[i].key_len, pairs[i].value, (ssize_t)pairs[i].value_len);
    /* Who wrote a changelog record: a shard that comes back to an instance
     * tells its own records from another owner's (restore.c). */
    if (bus->instance_id && bus->marker_topic && !strcmp(topic, bus->marker_topic))
        rd_kafka_header_add(hdrs, SAGA_KAFKA_WRITER_HEADER, -1, bus->instance_id, -1);
    if (npairs < 0 && headers_json) { /* not our compact form: the general parser */
        json_t *h = json_loads(headers_json, 0, NULL);
        const char *name;
        json_t *value;
        json_object_foreach(h, name, value) {
            if (json_is_string(value)) rd_kafka_header_add(hdrs, name, -1, json_string_value(value), -1);
        }
        json_decref(h);
    }
    rd_kafka_resp_err_t rc = rd_kafka_producev(
        bus->producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, key ? strlen(key) : 0),
        RD_KAFKA_V_PARTITION(partition >= 0 ? partition : RD_KAFKA_PARTITION_UA),
        RD_KAFKA_V_VALUE((void *)payload, payload ? len : 0), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE(OPAQUE(opaque_id, attempt)), RD_KAFKA_V_END);
    if (rc) {
        rd_kafka_headers_destroy(hdrs);
        if (rc == RD_KAFKA_RESP_ERR__QUEUE_FULL) return SAGA_EIO;
        /* Refused before it left (too large for message.max.bytes, unknown
         * topic, fatal producer state): reported like a failed delivery. */
        LOG_WARN("bus", "produce of outbox row %lld to %s: %s", (long long)opaque_id, topic, rd_kafka_err2str(rc));
        note_failure(bus, opaque_id, attempt, rc, true);
        if (rc == RD_KAFKA_RESP_ERR__FATAL) bus->fatal = 1;
        return SAGA_EKAFKA;
    }
    bus->in_flight++;
    return 0;
}

void saga_bus_serve(saga_bus_t *bus, int timeout_ms) {
    rd_kafka_poll(bus->producer, timeout_ms);
    if (!bus->fatal) return;
    if (!bus->txn_id) saga_bus_recreate_producer(bus);
    else if (!bus->in_txn) saga_bus_txn_fatal(bus); /* in a transaction: its commit deals with it */
}

int saga_bus_take_acked(saga_bus_t *bus, int64_t *ids, int max) {
    int avail = bus->txn_id ? bus->txn_acked : bus->acked_count;
    int n = avail < max ? avail : max;
    if (n <= 0) return 0; /* bus->acked may still be NULL */
    memcpy(ids, bus->acked, (size_t)n * sizeof *ids);
    memmove(bus->acked, bus->acked + n, (size_t)(bus->acked_count - n) * sizeof *ids);
    bus->acked_count -= n;
    if (bus->txn_id) bus->txn_acked -= n;
    return n;
}

int saga_bus_acked_count(const saga_bus_t *bus) { return bus->txn_id ? bus->txn_acked : bus->acked_count; }

int saga_bus_take_failed(saga_bus_t *bus, saga_bus_failure_t *out, int max) {
    int n = bus->failed_count < max ? bus->failed_count : max;
    if (n <= 0) return 0;
    memcpy(out, bus->failed, (size_t)n * sizeof *out);
    memmove(bus->failed, bus->failed + n, (size_t)(bus->failed_count - n) * sizeof *out);
    bus->failed_count -= n;
    return n;
}

int saga_bus_failed_count(const saga_bus_t *bus) { return bus->failed_count; }

uint64_t saga_bus_producers_recreated(const saga_bus_t *bus) { return bus->producers_recreated; }

saga_bus_error_class_t saga_bus_classify(rd_kafka_resp_err_t err) {
    switch (err) {
    /* The broker will refuse these bytes whatever we do. */
    /* A broker checks the size of the whole batch: small messages batched
     * with a large one are refused with it. */
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
        return SAGA_BUS_TOO_LARGE;
    case RD_KAFKA_RESP_ERR_INVALID_RECORD:
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION: /* invalid topic name */
    case RD_KAFKA_RESP_ERR_INVALID_REQUIRED_ACKS:
    case RD_KAFKA_RESP_ERR_UNSUPPORTED_FOR_MESSAGE_FORMAT:
    case RD_KAFKA_RESP_ERR_UNSUPPORTED_COMPRESSION_TYPE:
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
        return SAGA_BUS_PERMANENT;
    /* No such topic: librdkafka already waited topic.metadata.propagation.max.ms;
     * the caller still tries a few times before it gives up. */
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
        return SAGA_BUS_UNKNOWN_TOPIC;
    default: /* timeouts, broker down, leader changes, purged by a producer reset, ... */
        return SAGA_BUS_TRANSIENT;
    }
}

int saga_bus_in_flight(const saga_bus_t *bus) { return bus->in_flight; }

void saga_bus_lag(saga_bus_t *bus, json_t *out, json_t *by_partition) {
    rd_kafka_topic_partition_list_t *parts = NULL;
    if (rd_kafka_assignment(bus->consumer, &parts) || !parts) return;
    if (rd_kafka_position(bus->consumer, parts) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        for (int i = 0; i < parts->cnt; i++) {
            const rd_kafka_topic_partition_t *p = &parts->elems[i];
            int64_t lo, hi;
            json_int_t lag = 0;
            if (rd_kafka_get_watermark_offsets(bus->consumer, p->topic, p->partition, &lo, &hi) ==
                    RD_KAFKA_RESP_ERR_NO_ERROR && hi >= 0) {
                /* No position yet (nothing consumed): everything from the low mark is behind. */
                int64_t pos = p->offset >= 0 ? p->offset : lo;
                lag = hi > pos ? (json_int_t)(hi - pos) : 0;
            }
            json_t *cur = json_object_get(out, p->topic);
            json_object_set_new(out, p->topic, json_integer(json_integer_value(cur) + lag));
            if (by_partition) {
                char key[16];
                snprintf(key, sizeof key, "%d", (int)p->partition);
                cur = json_object_get(by_partition, key);
                json_object_set_new(by_partition, key, json_integer(json_integer_value(cur) + lag));
            }
        }
    }
    rd_kafka_topic_partition_list_destroy(parts);
}

void saga_bus_flush(saga_bus_t *bus, int timeout_ms) {
    rd_kafka_flush(bus->producer, timeout_ms);
}

void saga_bus_close(saga_bus_t **pbus) {
    saga_bus_t *bus = *pbus;
    if (!bus) return;
    if (bus->consumer) {
        rd_kafka_consumer_close(bus->consumer);
        rd_kafka_destroy(bus->consumer);
    }
    if (bus->producer) rd_kafka_destroy(bus->producer);
    catchup_clear(bus);
    for (int i = 0; i < bus->topic_count; i++) saga_free(bus->topics[i]);
    saga_free(bus->topics);
    saga_free(bus->instance_id);
    saga_free(bus->group);
    saga_free(bus->acked);
    saga_free(bus->marker_topic);
    saga_free(bus->failed);
    saga_free(bus->bootstrap);
    saga_free(bus->client_id);
    saga_free(bus->txn_id);
    saga_free(bus->fenced);
    saga_free(bus);
    *pbus = NULL;
}
