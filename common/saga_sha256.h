/* SHA-256 (FIPS 180-4), small and self-contained: used to fingerprint saga
 * definitions. Not for secrets (no constant-time claims needed there). */
#ifndef SAGA_SHA256_H
#define SAGA_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t state[8];
    uint64_t bytes;      /* total length so far */
    uint8_t block[64];
    size_t used;         /* bytes in block */
} saga_sha256_ctx_t;

void saga_sha256_init(saga_sha256_ctx_t *c);
void saga_sha256_update(saga_sha256_ctx_t *c, const void *data, size_t len);
void saga_sha256_final(saga_sha256_ctx_t *c, uint8_t out[32]);

/* One shot: lowercase hex digest, NUL-terminated, into out. */
void saga_sha256_hex(const void *data, size_t len, char out[65]);

#endif
