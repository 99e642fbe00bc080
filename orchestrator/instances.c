/* The cluster's instance registry on saga.instances: who owns which shard, and where its admin API is (instances.h). */
#include "instances.h"

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "saga_alloc.h"
#include "saga_clock.h"
#include "saga_json.h"
#include "saga_kafka.h"
#include "saga_log.h"

#define MAX_INSTANCES 256
#define PUBLISH_EVERY_MS 5000
#define FRESH_MS 30000

typedef struct {
    char key[400];       /* group/instance */
    char instance[256];
    char url[512];
    unsigned char *shards; /* [P] */
    int64_t at;
} entry_t;

struct sagad_instances {
    sagad_instances_config_t cfg;
    char *topic, *group, *self, *url, key[400];
    rd_kafka_t *producer, *consumer;
    pthread_t thread;
    pthread_mutex_t lock;
    volatile int stop;
    entry_t entries[MAX_INSTANCES];
    int count;
};

/* One acknowledgement awaited by sagad_instances_publish. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    rd_kafka_resp_err_t err;
} ack_t;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    (void)opaque;
    ack_t *ack = m->_private;
    if (!ack) return; /* the registry's own records */
    pthread_mutex_lock(&ack->mu);
    ack->err = m->err;
    ack->done = true;
    pthread_cond_signal(&ack->cv);
    pthread_mutex_unlock(&ack->mu);
}

static entry_t *find(sagad_instances_t *r, const char *key) {
    for (int i = 0; i < r->count; i++)
        if (!strcmp(r->entries[i].key, key)) return &r->entries[i];
    return NULL;
}

/* A record of the topic into the table (under the lock). */
static void apply(sagad_instances_t *r, const rd_kafka_message_t *m) {
    char key[400];
    if (!m->key || m->key_len == 0 || m->key_len >= sizeof key) return;
    memcpy(key, m->key, m->key_len);
    key[m->key_len] = '\0';
    pthread_mutex_lock(&r->lock);
    entry_t *e = find(r, key);
    if (!m->payload || m->len == 0) { /* tombstone: the instance stopped */
        if (e) {
            saga_free(e->shards);
            *e = r->entries[--r->count];
        }
        pthread_mutex_unlock(&r->lock);
        return;
    }
    json_t *doc = json_loadb(m->payload, m->len, 0, NULL);
    const char *group = json_string_value(json_object_get(doc, "group"));
    const char *inst = json_string_value(json_object_get(doc, "instance"));
    const char *url = json_string_value(json_object_get(doc, "admin_url"));
    json_t *shards = json_object_get(doc, "shards");
    if (group && !strcmp(group, r->group) && inst && url && json_is_array(shards)) {
        if (!e && r->count < MAX_INSTANCES) {
            e = &r->entries[r->count];
            memset(e, 0, sizeof *e);
            e->shards = saga_calloc((size_t)r->cfg.shards, 1);
            if (e->shards) r->count++;
            else e = NULL;
        }
        if (e) {
            snprintf(e->key, sizeof e->key, "%s", key);
            snprintf(e->instance, sizeof e->instance, "%s", inst);
            snprintf(e->url, sizeof e->url, "%s", url);
            e->at = json_integer_value(json_object_get(doc, "at"));
            memset(e->shards, 0, (size_t)r->cfg.shards);
            size_t i;
            json_t *v;
            json_array_foreach(shards, i, v) {
                json_int_t p = json_integer_value(v);
                if (p >= 0 && p < r->cfg.shards) e->shards[p] = 1;
            }
        }
    }
    json_decref(doc);
    pthread_mutex_unlock(&r->lock);
}

static void publish(sagad_instances_t *r, const unsigned char *owned) {
    json_t *shards = json_array();
    for (int p = 0; p < r->cfg.shards; p++)
        if (owned[p]) json_array_append_new(shards, json_integer(p));
    json_t *doc = json_pack("{s:s, s:s, s:s, s:o, s:I}", "group", r->group, "instance", r->self, "admin_url", r->url,
                            "shards", shards, "at", (json_int_t)saga_now_ms());
    char *text = doc ? saga_json_dump(doc) : NULL;
    json_decref(doc);
    if (!text) return;
    rd_kafka_resp_err_t e = rd_kafka_producev(r->producer, RD_KAFKA_V_TOPIC(r->topic), RD_KAFKA_V_PARTITION(0),
                                              RD_KAFKA_V_KEY(r->key, strlen(r->key)),
                                              RD_KAFKA_V_VALUE(text, strlen(text)),
                                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    if (e) LOG_WARN("instances", "publishing this instance to %s: %s", r->topic, rd_kafka_err2str(e));
    saga_free(text);
}

static void *run(void *arg) {
    sagad_instances_t *r = arg;
    unsigned char *seen = saga_calloc((size_t)r->cfg.shards, 1), *now = saga_calloc((size_t)r->cfg.shards, 1);
    int64_t last = 0;
    while (!r->stop && seen && now) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(r->consumer, 100);
        if (m) {
            if (!m->err) apply(r, m);
            rd_kafka_message_destroy(m);
        }
        for (int p = 0; p < r->cfg.shards; p++) now[p] = __atomic_load_n(&r->cfg.owned[p], __ATOMIC_RELAXED);
        int64_t t = saga_monotonic_us() / 1000;
        if (memcmp(now, seen, (size_t)r->cfg.shards) || t - last >= PUBLISH_EVERY_MS) {
            publish(r, now);
            memcpy(seen, now, (size_t)r->cfg.shards);
            last = t;
        }
        rd_kafka_poll(r->producer, 0);
    }
    saga_free(seen);
    saga_free(now);
    return NULL;
}

sagad_instances_t *sagad_instances_start(const sagad_instances_config_t *cfg, char *err, size_t errlen) {
    err[0] = '\0';
    sagad_instances_t *r = saga_calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    r->cfg = *cfg;
    pthread_mutex_init(&r->lock, NULL);
    r->topic = saga_strdup(cfg->topic);
    r->group = saga_strdup(cfg->group);
    r->self = saga_strdup(cfg->instance_id);
    r->url = saga_strdup(cfg->admin_url);
    snprintf(r->key, sizeof r->key, "%s/%s", cfg->group, cfg->instance_id);
    char reason[512];
    rd_kafka_conf_t *pc = saga_kafka_conf_new(SAGA_KAFKA_PRODUCER, cfg->bootstrap, "sagad-instances", NULL, cfg->props,
                                              err, errlen);
    if (pc) rd_kafka_conf_set_dr_msg_cb(pc, on_delivery);
    if (pc && !(r->producer = rd_kafka_new(RD_KAFKA_PRODUCER, pc, reason, sizeof reason))) {
        rd_kafka_conf_destroy(pc);
        snprintf(err, errlen, "instance registry producer: %s", reason);
    }
    rd_kafka_conf_t *cc = r->producer ? saga_kafka_conf_new(SAGA_KAFKA_CONSUMER, cfg->bootstrap, "sagad-instances",
                                                            "sagad-instances", cfg->props, err, errlen)
                                      : NULL;
    if (cc && saga_kafka_conf_set(cc, "enable.auto.commit", "false", err, errlen)) {
        rd_kafka_conf_destroy(cc);
        cc = NULL;
    }
    if (cc && !(r->consumer = rd_kafka_new(RD_KAFKA_CONSUMER, cc, reason, sizeof reason))) {
        rd_kafka_conf_destroy(cc);
        snprintf(err, errlen, "instance registry consumer: %s", reason);
    }
    if (!r->topic || !r->group || !r->self || !r->url || !r->producer || !r->consumer) {
        if (r->topic && r->group && r->self && r->url && !err[0]) snprintf(err, errlen, "out of memory");
        sagad_instances_stop(&r);
        return NULL;
    }
    rd_kafka_topic_partition_list_t *tp = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(tp, r->topic, 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(r->consumer, tp);
    rd_kafka_topic_partition_list_destroy(tp);
    if (pthread_create(&r->thread, NULL, run, r)) {
        snprintf(err, errlen, "cannot start the instance registry thread");
        rd_kafka_destroy(r->consumer);
        r->consumer = NULL;
        sagad_instances_stop(&r);
        return NULL;
    }
    return r;
}

int sagad_instances_publish(void *registry, int shard, const char *key, const char *payload, char *why, size_t whylen) {
    sagad_instances_t *r = registry;
    ack_t ack = {.done = false};
    pthread_mutex_init(&ack.mu, NULL);
    pthread_cond_init(&ack.cv, NULL);
    rd_kafka_resp_err_t e = rd_kafka_producev(
        r->producer, RD_KAFKA_V_TOPIC(r->cfg.control_topic), RD_KAFKA_V_PARTITION(shard), RD_KAFKA_V_KEY(key, strlen(key)),
        RD_KAFKA_V_VALUE((void *)payload, strlen(payload)), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_OPAQUE(&ack), RD_KAFKA_V_END);
    if (e) {
        snprintf(why, whylen, "%s: %s", r->cfg.control_topic, rd_kafka_err2str(e));
    } else {
        /* The registry's thread serves the delivery reports (rd_kafka_poll);
         * one always comes, at the latest after message.timeout.ms. */
        pthread_mutex_lock(&ack.mu);
        while (!ack.done) pthread_cond_wait(&ack.cv, &ack.mu);
        pthread_mutex_unlock(&ack.mu);
        e = ack.err;
        if (e) snprintf(why, whylen, "%s [%d]: %s", r->cfg.control_topic, shard, rd_kafka_err2str(e));
    }
    pthread_mutex_destroy(&ack.mu);
    pthread_cond_destroy(&ack.cv);
    return e ? -1 : 0;
}

int sagad_instances_publish_batch(void *registry, int n, const int *shards, const char *const *keys,
                                  const char *const *payloads, unsigned char *failed, char *why, size_t whylen) {
    sagad_instances_t *r = registry;
    ack_t *acks = saga_calloc((size_t)(n > 0 ? n : 1), sizeof *acks);
    if (!acks) {
        snprintf(why, whylen, "out of memory");
        memset(failed, 1, (size_t)n);
        return n;
    }
    for (int i = 0; i < n; i++) {
        pthread_mutex_init(&acks[i].mu, NULL);
        pthread_cond_init(&acks[i].cv, NULL);
        rd_kafka_resp_err_t e = rd_kafka_producev(
            r->producer, RD_KAFKA_V_TOPIC(r->cfg.control_topic), RD_KAFKA_V_PARTITION(shards[i]),
            RD_KAFKA_V_KEY(keys[i], strlen(keys[i])), RD_KAFKA_V_VALUE((void *)payloads[i], strlen(payloads[i])),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(&acks[i]), RD_KAFKA_V_END);
        if (e) { /* no delivery report comes for it */
            acks[i].err = e;
            acks[i].done = true;
        }
    }
    int nfailed = 0;
    for (int i = 0; i < n; i++) { /* every report comes, at the latest after message.timeout.ms */
        pthread_mutex_lock(&acks[i].mu);
        while (!acks[i].done) {
            /* served here too (the queue is thread-safe; on_delivery runs on
             * whichever thread polls): the registry's thread polls the
             * producer only between its 100 ms consumer polls */
            pthread_mutex_unlock(&acks[i].mu);
            rd_kafka_poll(r->producer, 5);
            pthread_mutex_lock(&acks[i].mu);
        }
        pthread_mutex_unlock(&acks[i].mu);
        failed[i] = acks[i].err != RD_KAFKA_RESP_ERR_NO_ERROR;
        if (failed[i] && nfailed++ == 0)
            snprintf(why, whylen, "%s [%d]: %s", r->cfg.control_topic, shards[i], rd_kafka_err2str(acks[i].err));
        pthread_mutex_destroy(&acks[i].mu);
        pthread_cond_destroy(&acks[i].cv);
    }
    saga_free(acks);
    return nfailed;
}

int sagad_instances_owner(void *registry, int shard, char *url, size_t len) {
    sagad_instances_t *r = registry;
    if (!r || shard < 0 || shard >= r->cfg.shards) return -1;
    int64_t now = saga_now_ms(), best_at = -1;
    pthread_mutex_lock(&r->lock);
    for (int i = 0; i < r->count; i++) {
        entry_t *e = &r->entries[i];
        if (!strcmp(e->key, r->key) || !e->shards[shard] || now - e->at > FRESH_MS || e->at <= best_at) continue;
        best_at = e->at;
        snprintf(url, len, "%s", e->url);
    }
    pthread_mutex_unlock(&r->lock);
    return best_at >= 0 ? 0 : -1;
}

json_t *sagad_instances_json(sagad_instances_t *r) {
    json_t *a = json_array();
    int64_t now = saga_now_ms();
    pthread_mutex_lock(&r->lock);
    for (int i = 0; a && i < r->count; i++) {
        entry_t *e = &r->entries[i];
        json_t *shards = json_array();
        for (int p = 0; p < r->cfg.shards; p++)
            if (e->shards[p]) json_array_append_new(shards, json_integer(p));
        json_array_append_new(a, json_pack("{s:s, s:s, s:o, s:I, s:b}", "instance", e->instance, "admin_url", e->url,
                                           "shards", shards, "age_ms", (json_int_t)(now - e->at), "self",
                                           !strcmp(e->key, r->key)));
    }
    pthread_mutex_unlock(&r->lock);
    return a;
}

void sagad_instances_stop(sagad_instances_t **pr) {
    sagad_instances_t *r = *pr;
    if (!r) return;
    if (r->consumer) {
        r->stop = 1;
        pthread_join(r->thread, NULL);
        rd_kafka_destroy(r->consumer);
    }
    if (r->producer) {
        /* The tombstone: nobody is sent here any more. */
        rd_kafka_producev(r->producer, RD_KAFKA_V_TOPIC(r->topic), RD_KAFKA_V_PARTITION(0),
                          RD_KAFKA_V_KEY(r->key, strlen(r->key)), RD_KAFKA_V_VALUE(NULL, 0), RD_KAFKA_V_END);
        rd_kafka_flush(r->producer, 2000);
        rd_kafka_destroy(r->producer);
    }
    for (int i = 0; i < r->count; i++) saga_free(r->entries[i].shards);
    pthread_mutex_destroy(&r->lock);
    saga_free(r->topic);
    saga_free(r->group);
    saga_free(r->self);
    saga_free(r->url);
    saga_free(r);
    *pr = NULL;
}
