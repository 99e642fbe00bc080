/* Kafka's murmur2 partitioner, byte for byte as Java's Utils.murmur2. */
#include "saga_partition.h"

#include <assert.h>
#include <string.h>

int32_t saga_murmur2(const void *data, size_t len) {
    const uint8_t *p = data;
    const uint32_t seed = 0x9747b28cu, m = 0x5bd1e995u;
    const int r = 24;
    uint32_t h = seed ^ (uint32_t)len;
    size_t blocks = len / 4;
    for (size_t i = 0; i < blocks; i++) {
        /* little-endian 4-byte blocks, as Java assembles them */
        uint32_t k = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 | (uint32_t)p[4 * i + 2] << 16 |
                     (uint32_t)p[4 * i + 3] << 24;
        k *= m;
        k ^= k >> r;
        k *= m;
        h *= m;
        h ^= k;
    }
    const uint8_t *tail = p + blocks * 4;
    switch (len & 3) {
    case 3: h ^= (uint32_t)tail[2] << 16; /* fall through */
    case 2: h ^= (uint32_t)tail[1] << 8;  /* fall through */
    case 1: h ^= tail[0]; h *= m;
    }
    h ^= h >> 13;
    h *= m;
    h ^= h >> 15;
    int32_t out;
    memcpy(&out, &h, sizeof out); /* two's complement reinterpretation, like Java's int */
    return out;
}

int saga_partition_of(const char *key, int partitions) {
    assert(partitions > 0);
    uint32_t positive = (uint32_t)saga_murmur2(key, strlen(key)) & 0x7fffffffu; /* Utils.toPositive */
    return (int)(positive % (uint32_t)partitions);
}
