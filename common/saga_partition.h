/* Which partition a saga belongs to: the partition of its id under Apache
 * Kafka's default partitioner (Java's murmur2; librdkafka's
 * "murmur2_random" for keyed records). Every topic sagad consumes has the
 * same partition count, so a saga's start, replies and control messages
 * meet in one partition: one shard. Pure: no librdkafka. */
#ifndef SAGA_PARTITION_H
#define SAGA_PARTITION_H

#include <stddef.h>
#include <stdint.h>

/* Kafka's murmur2 of len bytes (org.apache.kafka.common.utils.Utils.murmur2),
 * as the signed 32-bit value Java returns. */
int32_t saga_murmur2(const void *data, size_t len);

/* The partition of key among partitions (> 0): toPositive(murmur2(key)) %
 * partitions, what Java's producer and librdkafka's murmur2_random choose. */
int saga_partition_of(const char *key, int partitions);

#endif
