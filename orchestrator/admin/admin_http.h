/* What every part of the admin API shares, below the handlers: the request,
 * response and context types, the error codes, and the helpers that build
 * answers (JSON errors, text that may not be UTF-8, query values, times,
 * SQLite columns), implemented in admin_http.c. Layers, each including
 * only the ones below it: admin_http.h <- admin_handlers.h (the endpoints,
 * admin_guard.c) <- admin_route.h (routing) <- admin.h/admin.c (the HTTP
 * server). Every response body is one JSON document; errors are
 * {"error":{"code":"...","message":"..."}}. */
#ifndef SAGA_ADMIN_HTTP_H
#define SAGA_ADMIN_HTTP_H

#include <jansson.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

/* Longest saga id accepted in a path, in bytes after percent-decoding. */
#define ADMIN_MAX_ID_LEN 127
/* Largest request body accepted (for the command endpoints to come). */
#define ADMIN_MAX_BODY (1024 * 1024)

/* Error codes of the API, with their HTTP status: one list, so the code
 * names and statuses cannot drift apart. */
#define ADMIN_ERROR_MAP(X)                          \
    X(BAD_REQUEST,        400, "bad_request")       \
    X(UNAUTHORIZED,       401, "unauthorized")      \
    X(FORBIDDEN,          403, "forbidden")         \
    X(INVALID_ID,         400, "invalid_id")        \
    X(NOT_FOUND,          404, "not_found")         \
    X(METHOD_NOT_ALLOWED, 405, "method_not_allowed")\
    X(CONFLICT,           409, "conflict")          \
    X(TOO_LARGE,          413, "payload_too_large") \
    X(URI_TOO_LONG,       414, "uri_too_long")      \
    X(UNSUPPORTED_MEDIA,  415, "unsupported_media_type") \
    X(MISDIRECTED,        421, "misdirected_request") \
    X(UNPROCESSABLE,      422, "unprocessable")     \
    X(HEADERS_TOO_LARGE,  431, "headers_too_large") \
    X(INTERNAL,           500, "internal")          \
    X(UNAVAILABLE,        503, "unavailable")

typedef enum {
#define ADMIN_ERR_ENUM(name, status, code) ADMIN_ERR_##name,
    ADMIN_ERROR_MAP(ADMIN_ERR_ENUM)
#undef ADMIN_ERR_ENUM
} admin_error_t;

typedef struct saga_command_queue saga_command_queue_t;

/* Extension point of GET /v1/stats for what only sagad's memory knows
 * (in-flight messages per topic, circuit breaker states): fills the reply's
 * "runtime" object (empty on entry; members are the caller's choice, e.g.
 * "in_flight": {"topic": n}, "circuits": {"topic": "open"}). Called on the
 * admin server's thread with the admin lock held: it must take its own lock
 * on the state it reads and not block. Returns 0, or SAGA_ENOMEM (500). */
typedef int (*admin_stats_runtime_fn)(void *arg, json_t *runtime);

/* One shard of sagad's data: the SQLite file of one partition (DIR/shard-NNN.db,
 * the full schema of orchestrator/store/schema.h), read through its own
 * read-only connection (admin_shard.c). */
typedef struct {
    sqlite3 *db;  /* NULL while the file is missing or cannot be opened */
    char *path;   /* owned; NULL: a connection handed in (tests), never checked or reopened */
    unsigned long long dev, ino; /* of the file db has open: a file replaced since is reopened */
} admin_shard_t;

/* What a handler needs. */
typedef struct {
    /* The shards in partition order (shard p holds the sagas whose id
     * saga_partition_of() maps to p among shard_count); used by one thread
     * at a time. NULL: `db` is the only shard (tests, fuzzers). */
    admin_shard_t *shards;
    int shard_count;
    sqlite3 *db;                    /* the one read-only connection when shards is NULL */
    saga_command_queue_t *commands; /* into the main loop; NULL: mutating endpoints answer 503 */
    const char *token;              /* bearer token of the mutating endpoints; NULL: they answer 503 */
    /* Host names a request may name (lower case, without port; "[::1]"
     * for IPv6), NULL-terminated; NULL: the Host header is not checked
     * (tests). An Origin must name one of them too. */
    const char *const *hosts;
    int any_ip_host;                /* any IP-literal Host is accepted (wildcard listen address) */
    admin_stats_runtime_fn stats_runtime; /* NULL: "runtime" is null in GET /v1/stats */
    void *stats_runtime_arg;
    const unsigned char *owned;     /* per shard, 1 while this instance owns it (NULL: every shard) */
    /* The admin URL of the instance owning shard p (0), or -1: none known. */
    int (*owner_of)(void *arg, int shard, char *url, size_t len);
    void *owner_arg;
    /* Hands an operator command for shard p (a saga.control message,
     * key: the saga id) to Kafka and waits for the acknowledgement: 0, or
     * -1 with why (the answer is then 503). NULL: commands go through
     * `commands` (tests). */
    int (*publish)(void *arg, int shard, const char *key, const char *payload, char *why, size_t whylen);
    void *publish_arg;
    /* publish for n commands at once (publish_arg): produces them all, then
     * waits for every acknowledgement; failed[i] is set for each one not
     * acknowledged. Returns how many failed (why: the first reason). NULL:
     * the bulk commands (admin_bulk.c) call publish one at a time. */
    int (*publish_batch)(void *arg, int n, const int *shards, const char *const *keys, const char *const *payloads,
                         unsigned char *failed, char *why, size_t whylen);
    /* The lock admin.c handles requests under, held while a handler runs; a
     * long handler (the bulk commands) lets go of it while it waits for the
     * other instances and between its Kafka batches. NULL: none (tests). */
    pthread_mutex_t *lock;
} admin_ctx_t;

typedef struct {
    const char *method; /* "GET", "HEAD", "POST", ... */
    const char *path;   /* raw path as sent, NOT percent-decoded, without the query */
    const char *query;  /* raw query after '?', NOT decoded; NULL or "" when there is none */
    const char *body;   /* may be NULL when body_len == 0 */
    size_t body_len;
    const char *authorization; /* the Authorization header, or NULL */
    const char *host;          /* the Host header, or NULL (HTTP/1.0) */
    const char *origin;        /* the Origin header, or NULL */
    const char *content_type;  /* the Content-Type header, or NULL */
    const char *proxy;         /* the Sagad-Proxy header, or NULL (admin_gather.h) */
} admin_request_t;

typedef struct {
    unsigned status;   /* HTTP status */
    char *body;        /* NUL-terminated JSON; owned by the caller, free with saga_free */
    size_t body_len;
    const char *allow; /* static "Allow" header value for a 405, else NULL */
    const char *content_type; /* static; NULL: application/json */
    char location[1200];      /* "Location" of a 307 ("": none) */
} admin_response_t;

/* Fills *res with status of `err` and {"error":{"code","message"}}. The
 * message is made valid UTF-8 (bad bytes become '?') and is cut at 512
 * bytes. Returns 0 or SAGA_ENOMEM. */
int admin_error(admin_response_t *res, admin_error_t err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A 400 bad_request naming a query parameter: the error object gets a
 * "parameter" member besides code and message. */
int admin_param_error(admin_response_t *res, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Decodes %HH escapes of src[0..len) into dst (room for len + 1 bytes);
 * '+' stays '+'. Returns the decoded length, or -1 for a malformed escape
 * or a decoded NUL byte. */
long admin_percent_decode(const char *src, size_t len, char *dst);

/* 1 when s[0..len) is valid UTF-8 without control characters. */
int admin_text_ok(const char *s, size_t len);

/* A JSON string of s[0..len); bytes that are not valid UTF-8 become '?'
 * (SQLite text is not guaranteed to be UTF-8). New reference, NULL only
 * on allocation failure. */
json_t *admin_json_text(const char *s, size_t len);

/* Fills *res with 200 (or `status`) and the compact dump of doc (not
 * consumed). Returns 0 or SAGA_ENOMEM. */
int admin_json_response(admin_response_t *res, unsigned status, const json_t *doc);

/* A decoded query string: '+' is a space, %HH escapes are decoded, every
 * key and value is UTF-8 without control characters, no key appears twice
 * and every key is one the endpoint accepts (admin_route checks all that
 * and answers 400 naming the parameter otherwise). */
#define ADMIN_MAX_QUERY_PARAMS 16
#define ADMIN_MAX_QUERY_LEN 4096
typedef struct {
    char *buf; /* owns the decoded strings */
    const char *key[ADMIN_MAX_QUERY_PARAMS];
    const char *value[ADMIN_MAX_QUERY_PARAMS]; /* "" for "key" or "key=" */
    size_t count;
} admin_query_t;

/* The value of key, or NULL when absent. An empty value counts as absent,
 * so an HTML form's empty fields mean "no filter". */
const char *admin_query_get(const admin_query_t *q, const char *key);

/* Parses an RFC 3339 time (YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM),
 * 'T'/'Z' in either case) into ms since the epoch. 0 or -1. */
int admin_parse_time(const char *s, int64_t *ms_out);

/* Like admin_error, with a "shard" member (the shard's number) in the
 * error object when shard >= 0. */
int admin_shard_error(admin_response_t *res, admin_error_t err, int shard, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Shards (admin_shard.c). */
/* How many shards the API reads (1 when ctx->shards is NULL). */
int admin_shard_count(const admin_ctx_t *ctx);
/* 1 when this instance owns shard i (sagad's group gave it the shard's
 * partitions): only those are read; another instance answers for the rest. */
int admin_shard_owned(const admin_ctx_t *ctx, int i);
/* A request for a saga of shard i, which another instance owns: 307 to its
 * admin API (same path and query), or 503 naming the shard when no owner
 * is known (admin_route.c). */
int admin_elsewhere(admin_ctx_t *ctx, const admin_request_t *req, int shard, admin_response_t *res);
/* The shards a list or stats reads, as admin_shard_count(ctx) flags
 * (saga_free): those this instance owns, or with ?shards=1,4 (what one
 * instance asks another when gathering, admin_gather.c) exactly those,
 * each of which must be owned here. NULL with res filled (400 for a bad
 * list, 503 naming a shard not owned here) and *rc its return, or NULL
 * with *rc = SAGA_ENOMEM. */
unsigned char *admin_shard_selection(const admin_ctx_t *ctx, const admin_query_t *q, admin_response_t *res,
                                     int *rc);
/* The shard of saga id: saga_partition_of(id, admin_shard_count(ctx)). */
int admin_shard_of(const admin_ctx_t *ctx, const char *id);
/* "shard 2 (/data/shard-002.db)" into buf when the API reads more than one
 * shard, else "database (/data/sagad.db)" or "database"; returns buf. */
const char *admin_shard_name(const admin_ctx_t *ctx, int i, char *buf, size_t len);
/* The connection of shard i, checked first when it has a path: a file
 * that is gone closes the connection (its data are stale), a file replaced
 * since it was opened (a restore) is opened again, a missing connection is
 * opened when the file is back. NULL with the reason (naming the shard and
 * its file) in why when the shard cannot be read. */
sqlite3 *admin_shard_check(admin_ctx_t *ctx, int i, char *why, size_t whylen);
/* admin_shard_check that answers for the handler: NULL with res filled
 * (503 unavailable naming the shard, "shard" member) and *rc set to
 * admin_error's return. */
sqlite3 *admin_shard_db(admin_ctx_t *ctx, int i, admin_response_t *res, int *rc);
/* Opens path read-only into s (and checks it is an SQLite database);
 * 0, or SAGA_ESTORE with the reason in err (s->db NULL, s->path set). */
int admin_shard_open(admin_shard_t *s, const char *path, char *err, size_t errlen);
void admin_shard_close(admin_shard_t *s);

/* Reading SQLite rows. */
/* An SQLite error rc on shard i while doing `what`: 503 for a busy
 * database or a shard that cannot be read (not a database, corrupt, I/O
 * error, cannot open; naming the shard), else 500 naming `what`; logs. */
int admin_db_error(admin_ctx_t *ctx, int shard, admin_response_t *res, int rc, const char *what);
/* Column i as a JSON string (bad UTF-8 replaced) or null; NULL on ENOMEM. */
json_t *admin_col_text(sqlite3_stmt *st, int i);
/* Column i (ms since the epoch) as an RFC 3339 string; NULL on ENOMEM. */
json_t *admin_col_time(sqlite3_stmt *st, int i);
/* Column i parsed as JSON (null when NULL); text that is not JSON is logged
 * (naming `what`, e.g. "sagas.input") and returned as a string. NULL on ENOMEM. */
json_t *admin_col_json(sqlite3_stmt *st, int i, const char *what);

#endif
