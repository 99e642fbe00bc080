/* sagad's start-up check of the topics it consumes (topics.h): every one has
 * --partitions partitions; missing ones are created with that many. */
#include "topics.h"

#include <assert.h>
#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "saga_alloc.h"
#include "saga_clock.h"
#include "saga_error.h"
#include "saga_kafka.h"
#include "saga_log.h"

#define METADATA_TIMEOUT_MS 5000
#define WAIT_WARN_MS 10000
#define CREATED_VISIBLE_MS 30000

enum { TOPIC_MISSING = -1, TOPIC_UNKNOWN = -2 };

/* Appends to a bounded buffer (truncates quietly). */
static void append(char *buf, size_t len, const char *fmt, const char *a, int b) {
    size_t used = strlen(buf);
    if (used + 1 < len) snprintf(buf + used, len - used, fmt, a, b);
}

/* One metadata request for every topic (no auto-creation): counts[i] = the
 * partition count of topics[i], TOPIC_MISSING when the brokers do not know
 * it. Returns 0, or 1 when the answer is not usable yet (no answer, a topic
 * with an error such as a leader election) with the reason in why. */
static int read_counts(rd_kafka_t *rk, const saga_topics_check_t *cfg, int *counts, char *why, size_t whylen) {
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 1, NULL, &md, METADATA_TIMEOUT_MS);
    if (e) {
        snprintf(why, whylen, "metadata request: %s", rd_kafka_err2str(e));
        return 1;
    }
    int rc = 0;
    for (int i = 0; i < cfg->topic_count; i++) {
        counts[i] = TOPIC_MISSING;
        for (int t = 0; t < md->topic_cnt; t++) {
            const struct rd_kafka_metadata_topic *mt = &md->topics[t];
            if (strcmp(mt->topic, cfg->topics[i])) continue;
            if (mt->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) break;
            if (mt->err) {
                snprintf(why, whylen, "topic '%s': %s", mt->topic, rd_kafka_err2str(mt->err));
                counts[i] = TOPIC_UNKNOWN;
                rc = 1;
            } else {
                counts[i] = mt->partition_cnt;
            }
            break;
        }
    }
    rd_kafka_metadata_destroy(md);
    return rc;
}

/* Reads the counts until the brokers answer; warns every WAIT_WARN_MS.
 * until_ms > 0: gives up after that long (returns 1). */
static int wait_counts(rd_kafka_t *rk, const saga_topics_check_t *cfg, int *counts, int64_t until_ms) {
    int64_t start = saga_monotonic_us() / 1000, warned = start;
    char why[512] = "";
    for (;;) {
        if (read_counts(rk, cfg, counts, why, sizeof why) == 0) return 0;
        int64_t now = saga_monotonic_us() / 1000;
        if (until_ms > 0 && now - start >= until_ms) return 1;
        if (now - warned >= WAIT_WARN_MS) {
            LOG_WARN("sagad", "waiting for the brokers to describe the topics sagad consumes (%s)", why);
            warned = now;
        }
        usleep(200 * 1000);
    }
}

/* Creates the topics with counts[i] == TOPIC_MISSING with P partitions.
 * failed[i] gets the reason of each one that could not be created. */
static void create_missing(rd_kafka_t *rk, const saga_topics_check_t *cfg, const int *counts,
                           char (*failed)[256]) {
    rd_kafka_NewTopic_t **nt = saga_calloc((size_t)cfg->topic_count, sizeof *nt);
    int *index = saga_calloc((size_t)cfg->topic_count, sizeof *index);
    int n = 0;
    char e[256];
    for (int i = 0; nt && index && i < cfg->topic_count; i++) {
        if (counts[i] != TOPIC_MISSING) continue;
        /* -1: the broker's default replication factor (KIP-464, Kafka >= 2.4) */
        nt[n] = rd_kafka_NewTopic_new(cfg->topics[i], cfg->partitions, -1, e, sizeof e);
        if (!nt[n]) { snprintf(failed[i], sizeof failed[i], "%s", e); continue; }
        if (cfg->compacted && !strcmp(cfg->compacted, cfg->topics[i]))
            rd_kafka_NewTopic_set_config(nt[n], "cleanup.policy", "compact");
        index[n++] = i;
        LOG_INFO("sagad", "topic '%s' does not exist: creating it with %d partitions%s", cfg->topics[i],
                 cfg->partitions, cfg->compacted && !strcmp(cfg->compacted, cfg->topics[i]) ? " (compacted)" : "");
    }
    if (n > 0) {
        rd_kafka_AdminOptions_t *opt = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
        rd_kafka_AdminOptions_set_request_timeout(opt, cfg->create_timeout_ms, e, sizeof e);
        rd_kafka_AdminOptions_set_operation_timeout(opt, cfg->create_timeout_ms, e, sizeof e);
        rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
        rd_kafka_CreateTopics(rk, nt, (size_t)n, opt, q);
        rd_kafka_event_t *ev = rd_kafka_queue_poll(q, cfg->create_timeout_ms + 5000);
        const rd_kafka_CreateTopics_result_t *res = ev ? rd_kafka_event_CreateTopics_result(ev) : NULL;
        size_t rn = 0;
        const rd_kafka_topic_result_t **tr = res ? rd_kafka_CreateTopics_result_topics(res, &rn) : NULL;
        for (int k = 0; k < n; k++) {
            int i = index[k];
            const char *reason = !ev ? "no answer" : rd_kafka_event_error(ev) ? rd_kafka_event_error_string(ev) : NULL;
            for (size_t r = 0; !reason && r < rn; r++) {
                if (strcmp(rd_kafka_topic_result_name(tr[r]), cfg->topics[i])) continue;
                rd_kafka_resp_err_t te = rd_kafka_topic_result_error(tr[r]);
                if (te && te != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
                    reason = rd_kafka_topic_result_error_string(tr[r]) ? rd_kafka_topic_result_error_string(tr[r])
                                                                       : rd_kafka_err2str(te);
            }
            if (reason) snprintf(failed[i], sizeof failed[i], "%s", reason);
        }
        if (ev) rd_kafka_event_destroy(ev);
        rd_kafka_queue_destroy(q);
        rd_kafka_AdminOptions_destroy(opt);
    }
    for (int k = 0; k < n; k++) rd_kafka_NewTopic_destroy(nt[k]);
    saga_free(nt);
    saga_free(index);
}

/* Warns when the compacted topic's cleanup.policy is not compact. Silent
 * when the brokers cannot say (the dev broker has no DescribeConfigs). */
static void check_compacted(rd_kafka_t *rk, const char *topic, const char *what, int timeout_ms) {
    rd_kafka_ConfigResource_t *res = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *opt = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS);
    char e[256];
    rd_kafka_AdminOptions_set_request_timeout(opt, timeout_ms, e, sizeof e);
    rd_kafka_DescribeConfigs(rk, &res, 1, opt, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, timeout_ms + 2000);
    const rd_kafka_DescribeConfigs_result_t *r = ev ? rd_kafka_event_DescribeConfigs_result(ev) : NULL;
    size_t n = 0;
    const rd_kafka_ConfigResource_t **rs = r && !rd_kafka_event_error(ev) ? rd_kafka_DescribeConfigs_result_resources(r, &n) : NULL;
    const char *policy = NULL;
    for (size_t i = 0; rs && i < n; i++) {
        if (rd_kafka_ConfigResource_error(rs[i])) continue;
        size_t cn = 0;
        const rd_kafka_ConfigEntry_t **ce = rd_kafka_ConfigResource_configs(rs[i], &cn);
        for (size_t k = 0; k < cn; k++)
            if (!strcmp(rd_kafka_ConfigEntry_name(ce[k]), "cleanup.policy")) policy = rd_kafka_ConfigEntry_value(ce[k]);
        if (policy && !strstr(policy, "compact"))
            LOG_WARN("sagad", "%s topic '%s' has cleanup.policy=%s, not compact: its records are deleted "
                     "after retention.ms%s; set it with "
                     "kafka-configs.sh --alter --entity-type topics --entity-name %s --add-config "
                     "cleanup.policy=compact (docs/OPERATIONS.md)", what ? what : "the changelog", topic, policy,
                     what ? "" : " and a lost shard can then not be restored whole", topic);
        else if (policy)
            LOG_INFO("sagad", "%s topic '%s' is compacted (cleanup.policy=%s)", what ? what : "the changelog", topic,
                     policy);
    }
    if (!policy) LOG_DEBUG("sagad", "the brokers did not describe the configuration of '%s'", topic);
    if (ev) rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(opt);
    rd_kafka_queue_destroy(q);
    rd_kafka_ConfigResource_destroy(res);
}

int saga_topics_check(const saga_topics_check_t *cfg, char *err, size_t errlen) {
    assert(cfg->partitions > 0 && cfg->topic_count > 0);
    err[0] = '\0';
    rd_kafka_conf_t *conf = saga_kafka_conf_new(SAGA_KAFKA_PRODUCER, cfg->bootstrap, cfg->client_id, NULL,
                                                cfg->props, err, errlen);
    if (!conf) return SAGA_ECONFIG;
    /* Metadata and CreateTopics only: no producer id to ask for. */
    if (saga_kafka_conf_set(conf, "enable.idempotence", "false", err, errlen)) {
        rd_kafka_conf_destroy(conf);
        return SAGA_ECONFIG;
    }
    char reason[256];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, reason, sizeof reason);
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        snprintf(err, errlen, "Kafka client for the topic check: %s", reason);
        return SAGA_EKAFKA;
    }
    int *counts = saga_calloc((size_t)cfg->topic_count, sizeof *counts);
    char (*failed)[256] = saga_calloc((size_t)cfg->topic_count, sizeof *failed);
    if (!counts || !failed) {
        saga_free(counts);
        saga_free(failed);
        rd_kafka_destroy(rk);
        snprintf(err, errlen, "out of memory");
        return SAGA_ENOMEM;
    }
    wait_counts(rk, cfg, counts, 0);
    bool missing = false;
    for (int i = 0; i < cfg->topic_count; i++) missing |= counts[i] == TOPIC_MISSING;
    if (missing) {
        create_missing(rk, cfg, counts, failed);
        /* A created topic shows in the metadata a moment later. */
        int64_t until = saga_monotonic_us() / 1000 + CREATED_VISIBLE_MS;
        for (;;) {
            bool pending = false;
            wait_counts(rk, cfg, counts, CREATED_VISIBLE_MS);
            for (int i = 0; i < cfg->topic_count; i++) pending |= counts[i] == TOPIC_MISSING && !failed[i][0];
            if (!pending || saga_monotonic_us() / 1000 >= until) break;
            usleep(200 * 1000);
        }
    }
    if (cfg->compacted) check_compacted(rk, cfg->compacted, cfg->what, 1500); /* the dev broker never answers */
    rd_kafka_destroy(rk);

    int bad = 0;
    char list[1536] = "";
    for (int i = 0; i < cfg->topic_count; i++) {
        const char *sep = list[0] ? "; " : "";
        if (counts[i] == cfg->partitions) {
            append(list, sizeof list, "%s", sep, 0);
            append(list, sizeof list, "'%s' has %d (ok)", cfg->topics[i], counts[i]);
            continue;
        }
        bad++;
        append(list, sizeof list, "%s", sep, 0);
        if (counts[i] >= 0) {
            append(list, sizeof list, "'%s' has %d partitions", cfg->topics[i], counts[i]);
        } else if (counts[i] == TOPIC_UNKNOWN) {
            append(list, sizeof list, "'%s' has no usable metadata after it was created", cfg->topics[i], 0);
        } else {
            append(list, sizeof list, "'%s' does not exist and could not be created with %d partitions",
                   cfg->topics[i], cfg->partitions);
            append(list, sizeof list, " (%s)", failed[i][0] ? failed[i] : "not visible after creation", 0);
        }
    }
    saga_free(counts);
    saga_free(failed);
    if (!bad) {
        if (cfg->what)
            LOG_INFO("sagad", "%s checked: %s", cfg->what, list);
        else
            LOG_INFO("sagad", "topics checked: %s (--partitions %d)", list, cfg->partitions);
        return 0;
    }
    if (cfg->what) {
        snprintf(err, errlen, "refusing to start: %s must have %d partition(s): %s", cfg->what, cfg->partitions,
                 list);
        return SAGA_ECONFIG;
    }
    snprintf(err, errlen,
             "refusing to start: every topic sagad consumes (and its changelog) must have --partitions %d partitions (a saga's "
             "partition is murmur2(saga_id) %% %d): %s. Start sagad with the --partitions its topics have, or "
             "create the topics with %d partitions (kafka-topics.sh --create --partitions %d; sagabroker "
             "--partitions %d); adding partitions to a topic in use moves sagas to other partitions",
             cfg->partitions, cfg->partitions, list, cfg->partitions, cfg->partitions, cfg->partitions);
    return SAGA_ECONFIG;
}
