/* librdkafka configuration with the project's safe defaults, bootstrap files, headers (saga_kafka.h). */
#include "saga_kafka.h"
#include "saga_alloc.h"
#include "saga_error.h"
#include "saga_util.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

char *saga_kafka_bootstrap(const char *bootstrap, const char *bootstrap_file, int wait_ms,
                           char *err, size_t errlen) {
    if (bootstrap && *bootstrap) return saga_strdup(bootstrap);
    if (!bootstrap_file || !*bootstrap_file) {
        snprintf(err, errlen, "no Kafka bootstrap servers: give --bootstrap or --bootstrap-file");
        return NULL;
    }
    for (int waited = 0;; waited += 50) {
        char *text = saga_read_file(bootstrap_file, NULL);
        if (text) {
            text[strcspn(text, "\r\n")] = '\0';
            if (*text) return text;
            saga_free(text);
        }
        if (waited >= wait_ms) break;
        usleep(50 * 1000);
    }
    snprintf(err, errlen, "bootstrap file '%s' is missing or empty", bootstrap_file);
    return NULL;
}

int saga_kafka_conf_set(rd_kafka_conf_t *conf, const char *key, const char *value, char *err,
                        size_t errlen) {
    char reason[256];
    if (rd_kafka_conf_set(conf, key, value, reason, sizeof reason) != RD_KAFKA_CONF_OK) {
        snprintf(err, errlen, "Kafka property %s=%s: %s", key, value, reason);
        return SAGA_EKAFKA;
    }
    return 0;
}

rd_kafka_conf_t *saga_kafka_conf_new(saga_kafka_role_t role, const char *bootstrap,
                                     const char *client_id, const char *group_id,
                                     const saga_kv_list_t *overrides, char *err, size_t errlen) {
    static const char *const producer_defaults[][2] = {
        {"enable.idempotence", "true"},
        {"acks", "all"},
        {"linger.ms", "0"}, /* a saga waits on every hop; under load batches form anyway */
        {"message.timeout.ms", "30000"},
        /* Keyed records land where Java's default partitioner puts them
         * (murmur2 of the key; librdkafka's own default is crc32): a saga's
         * records meet in its partition whatever client wrote them. */
        {"partitioner", "murmur2_random"},
    };
    static const char *const consumer_defaults[][2] = {
        /* Only what committed transactions wrote: sagad's outputs come in
         * transactions (librdkafka's default, said explicitly: Java's is
         * read_uncommitted). */
        {"isolation.level", "read_committed"},
        {"enable.auto.offset.store", "false"},
        {"enable.auto.commit", "true"},
        {"auto.commit.interval.ms", "500"},
        {"auto.offset.reset", "earliest"},
        {"fetch.wait.max.ms", "10"},
        {"session.timeout.ms", "6000"},
        {"heartbeat.interval.ms", "1000"},
        {"enable.partition.eof", "false"},
    };
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (saga_kafka_conf_set(conf, "bootstrap.servers", bootstrap, err, errlen) ||
        saga_kafka_conf_set(conf, "client.id", client_id, err, errlen))
        goto fail;
    /* Loopback dev brokers: do not wait for IPv6 resolution failures. */
    if (saga_kafka_conf_set(conf, "broker.address.family", "v4", err, errlen)) goto fail;
    /* Every hop of a saga is a small request: never held for an ACK. */
    if (saga_kafka_conf_set(conf, "socket.nagle.disable", "true", err, errlen)) goto fail;
    if (role == SAGA_KAFKA_PRODUCER) {
        for (size_t i = 0; i < sizeof producer_defaults / sizeof producer_defaults[0]; i++)
            if (saga_kafka_conf_set(conf, producer_defaults[i][0], producer_defaults[i][1], err, errlen))
                goto fail;
    } else {
        if (saga_kafka_conf_set(conf, "group.id", group_id, err, errlen)) goto fail;
        for (size_t i = 0; i < sizeof consumer_defaults / sizeof consumer_defaults[0]; i++)
            if (saga_kafka_conf_set(conf, consumer_defaults[i][0], consumer_defaults[i][1], err, errlen))
                goto fail;
    }
    for (size_t i = 0; overrides && i < overrides->count; i++) {
        /* A producer-only property set on a consumer (or the reverse) only
         * warns in librdkafka, so one -X list can serve both clients. */
        if (saga_kafka_conf_set(conf, overrides->keys[i], overrides->values[i], err, errlen)) goto fail;
    }
    return conf;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

int saga_kafka_header(const rd_kafka_message_t *m, const char *name, char *buf, size_t len) {
    rd_kafka_headers_t *hdrs = NULL;
    if (rd_kafka_message_headers(m, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR) return SAGA_ENOTFOUND;
    const void *value;
    size_t size;
    if (rd_kafka_header_get_last(hdrs, name, &value, &size) != RD_KAFKA_RESP_ERR_NO_ERROR || !value)
        return SAGA_ENOTFOUND;
    if (size + 1 > len) return SAGA_EINVAL;
    memcpy(buf, value, size);
    buf[size] = '\0';
    return 0;
}
