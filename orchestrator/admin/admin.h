/* The admin HTTP API (libmicrohttpd). It reads sagad's shards (one SQLite
 * file per partition) through its own read-only connections and never
 * writes state itself; commands
 * (start, abort, retry) will be handed to the orchestrator loop.
 * Endpoints and error format: docs/ADMIN-API.md. */
#ifndef SAGA_ADMIN_H
#define SAGA_ADMIN_H

#include <jansson.h>
#include <stddef.h>

typedef struct saga_admin saga_admin_t;

/* Starts the HTTP server on addr:port (a numeric IPv4/IPv6 address or a
 * host name resolving to one; port 0 = any free port) with one internal
 * polling thread and its own read-only connection to each of the `count`
 * shard files paths[0..count) (sagad's DIR/shard-000.db ... in partition
 * order: a saga lives in shard saga_partition_of(id, count); one path is
 * a single database). Every file must exist and be an SQLite database; a
 * file that goes missing or is replaced later is noticed per request
 * (503 naming the shard; reopened when it is back). Returns NULL with the
 * reason (naming the shard) in err on failure. Owned by the caller:
 * release with saga_admin_stop. */
saga_admin_t *saga_admin_start(const char *addr, int port, const char *const *paths, int count, char *err,
                               size_t errlen);

/* saga_admin_start on sagad's data directory: DIR/shard-000.db ...
 * DIR/shard-<partitions - 1>.db (saga_shard_file, common/saga_shard_files.h). */
saga_admin_t *saga_admin_start_dir(const char *addr, int port, const char *dir, int partitions, char *err,
                                   size_t errlen);

typedef struct saga_command_queue saga_command_queue_t;

/* Enables the mutating endpoints (POST): they queue commands into
 * `commands` for the main loop, and always need "Authorization: Bearer
 * <token>" (401 without, 403 with another one) and a JSON body (415).
 * Without a token they answer 503. Both are borrowed and must outlive the
 * server. */
void saga_admin_set_commands(saga_admin_t *a, saga_command_queue_t *commands, const char *token);

/* owned[p] (one per shard, written by sagad's loop with __atomic stores,
 * kept alive by the caller) says which shards this instance owns: lists,
 * stats and health cover those; a request for one saga of another shard
 * (GET, ?at=, abort, retry) answers 307 to the admin URL owner_of gives
 * for its shard, or 503 naming the shard when none is known. */
/* Operator commands (start, abort, retry) become saga.control messages
 * handed to publish (to shard p's partition, acknowledged before the 202):
 * the instance owning the saga applies them in its transaction, even after
 * a failover between the answer and the apply. Without it they go through
 * the command queue (saga_admin_set_commands). */
void saga_admin_set_publish(saga_admin_t *a,
                            int (*publish)(void *arg, int shard, const char *key, const char *payload, char *why,
                                           size_t whylen),
                            void *arg);
/* The bulk commands (POST /v1/sagas/retry, /abort) hand their messages
 * over BULK_BATCH at a time with this (arg: publish's), waiting for the
 * acknowledgements of a batch before the next; NULL: one at a time with
 * publish. */
void saga_admin_set_publish_batch(saga_admin_t *a,
                                  int (*publish_batch)(void *arg, int n, const int *shards, const char *const *keys,
                                                       const char *const *payloads, unsigned char *failed, char *why,
                                                       size_t whylen));
void saga_admin_set_owned(saga_admin_t *a, const unsigned char *owned,
                          int (*owner_of)(void *arg, int shard, char *url, size_t len), void *owner_arg);

/* Lowers the request body limit below ADMIN_MAX_BODY (sagad: below its
 * --max-message-bytes, so a start the API accepts can be published). */
void saga_admin_set_max_body(saga_admin_t *a, size_t bytes);

/* Fills the "runtime" member of GET /v1/stats and the process metrics of
 * GET /metrics: fn(arg, object) adds what the main loop published. It is
 * called on the server's thread and must do its own locking. */
void saga_admin_set_runtime(saga_admin_t *a, int (*fn)(void *arg, json_t *into), void *arg);

/* Requests must name the server: a Host header other than the listen
 * address (as given and as a number), "localhost" (loopback or wildcard
 * address), any IP literal (wildcard address) or a name added here answers
 * 421, and an Origin other than http(s)://<that Host> 403. Adds the names
 * of a comma-separated list (e.g. "sagad.internal,sagad"; the port is not
 * checked). 0, or -1 with the reason in err. */
int saga_admin_add_hosts(saga_admin_t *a, const char *names, char *err, size_t errlen);

/* 1 when the server listens on a loopback address (127.0.0.0/8, ::1): the
 * address it bound, never judged by the name it was given. */
int saga_admin_loopback(const saga_admin_t *a);
/* The same for an address not yet bound: 1 loopback, 0 not, -1 when it
 * does not resolve. "127.x.example" is a name like any other. */
int saga_admin_addr_loopback(const char *addr);

/* The token of sagad's admin token file at path (admin_token.c): the
 * file's when it holds one (64 lower-case hex digits), is a regular file of
 * this user and no one else may read it; else 32 new random bytes (hex)
 * written to a 0600 temporary file renamed over path, with *created = 1
 * and, when an unusable file was replaced, why in err. NULL with the
 * reason in err when it cannot be written. saga_free the result. */
char *saga_admin_token_file(const char *path, int *created, char *err, size_t errlen);

/* The bound port (useful after port 0), or -1. */
int saga_admin_port(const saga_admin_t *a);

/* Stops the server (waits for the request in progress), closes the shards and
 * sets *a to NULL. NULL or *a == NULL is a no-op. */
void saga_admin_stop(saga_admin_t **a);

#endif
