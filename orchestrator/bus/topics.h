/* sagad's check of the topics it consumes, before it consumes anything:
 * each has exactly P partitions (a saga's partition is murmur2(saga_id) % P,
 * so a start, its replies and its shard meet only when every consumed topic
 * has the same count). A topic that does not exist is created with P
 * partitions (the broker's default replication factor); when that fails
 * sagad refuses to run, naming the topic. */
#ifndef SAGA_TOPICS_H
#define SAGA_TOPICS_H

#include <stddef.h>

#include "saga_config.h"

typedef struct {
    const char *bootstrap;
    const char *client_id;
    const saga_kv_list_t *props;   /* -X overrides (security settings etc.) */
    const char *const *topics;     /* the consumed topics */
    int topic_count;
    int partitions;                /* P (> 0) */
    int create_timeout_ms;         /* how long a CreateTopics may take */
    const char *compacted;         /* NULL, or one of topics (the changelog): created with
                                      cleanup.policy=compact, and a warning when it exists
                                      without it (DescribeConfigs; a broker that cannot
                                      answer, such as the dev broker, is not checked) */
    const char *what;              /* NULL: sagad's consumed topics and changelog; else what
                                      the topics are, for the messages (e.g. "the instance
                                      registry (--instances-topic)") */
} saga_topics_check_t;

/* Reads the brokers' metadata (waiting, with a warning every 10 s, until
 * they answer), creates the missing topics with P partitions and compares
 * every count with P. Returns 0 when all match; SAGA_ECONFIG with one line
 * in err naming each topic, its partition count and P when a count differs
 * or a topic could not be created; SAGA_EKAFKA when no client could be made. */
int saga_topics_check(const saga_topics_check_t *cfg, char *err, size_t errlen);

#endif
