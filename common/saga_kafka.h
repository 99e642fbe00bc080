/* librdkafka set-up shared by sagad, the workers and the tools, so every
 * client gets the same safe defaults (see docs/DESIGN.md, "Kafka"). */
#ifndef SAGA_KAFKA_H
#define SAGA_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

#include "saga_config.h"

typedef enum { SAGA_KAFKA_PRODUCER, SAGA_KAFKA_CONSUMER } saga_kafka_role_t;

/* The bootstrap list: `bootstrap` when non-empty, else the first line of
 * `bootstrap_file`, waiting up to wait_ms for that file to appear.
 * Returns a string the caller frees with saga_free, or NULL with err set. */
char *saga_kafka_bootstrap(const char *bootstrap, const char *bootstrap_file, int wait_ms,
                           char *err, size_t errlen);

/* A configuration with the project defaults for the role, then every -X
 * override. Producer: idempotent, acks=all, linger.ms=0,
 * partitioner=murmur2_random (Java's default for keyed records). Consumer: offsets
 * stored by the application only (enable.auto.offset.store=false) and
 * auto-committed, auto.offset.reset=earliest, fetch.wait.max.ms=10,
 * session.timeout.ms=6000. `group_id` is used for consumers only.
 * Returns a new conf (caller owns it until rd_kafka_new takes it) or NULL
 * with err naming the bad property. */
rd_kafka_conf_t *saga_kafka_conf_new(saga_kafka_role_t role, const char *bootstrap,
                                     const char *client_id, const char *group_id,
                                     const saga_kv_list_t *overrides, char *err, size_t errlen);

/* Sets one property; 0 or SAGA_EKAFKA with err "key=value: reason". */
int saga_kafka_conf_set(rd_kafka_conf_t *conf, const char *key, const char *value, char *err,
                        size_t errlen);

/* The header naming the sagad instance (--instance-id) that wrote a
 * saga.changelog record: a shard that comes back to an instance tells its
 * own records from another owner's. */
#define SAGA_KAFKA_WRITER_HEADER "sagad-instance"

/* Copies header `name` of m as a NUL-terminated string into buf.
 * Returns 0, SAGA_ENOTFOUND, or SAGA_EINVAL when it does not fit. */
int saga_kafka_header(const rd_kafka_message_t *m, const char *name, char *buf, size_t len);

#endif
