/* Cluster-wide lists and stats: while other sagad instances of the group
 * own some shards, GET /v1/sagas and GET /v1/stats on any instance gather
 * every shard. The instance asked fetches the owners' own answers (same
 * path and query with scope=local, over HTTP) and merges them with its
 * own: the list on (updated_at, id) with the same cursor, the stats summed.
 * Docs: docs/ADMIN-API.md ("Cluster: lists and stats over every shard",
 * "Cluster: Sagad-Proxy"). */
#ifndef SAGA_ADMIN_GATHER_H
#define SAGA_ADMIN_GATHER_H

#include "admin_http.h"

/* How long one owner may take to answer (connect included). */
#define ADMIN_PEER_TIMEOUT_MS 5000

typedef struct admin_gather admin_gather_t;

/* A GET of one saga (/v1/sagas/{id}, with ?at= too) sent with the header
 * "Sagad-Proxy: 1" (the web view sends it) whose shard another instance
 * owns is fetched from that owner and answered as it answered, instead of
 * the 307 a browser would not follow to another origin.
 *
 * NULL when req needs no gathering: not a GET of /v1/sagas or /v1/stats,
 * scope=local asked, no ownership set (one instance) or every shard owned
 * here. Otherwise fetches the other owners' answers now (blocking, each up
 * to ADMIN_PEER_TIMEOUT_MS): call it without the admin lock held, so that
 * two instances gathering at once can answer each other. *oom is set when
 * memory ran out (then NULL). ctx->owned and ctx->owner_of must be safe to
 * read from this thread (sagad: atomics and the registry's own lock). */
admin_gather_t *admin_gather_fetch(const admin_ctx_t *ctx, const admin_request_t *req, int *oom);

/* res holds this instance's answer to the same request. When it is a 200,
 * it becomes the cluster's answer, or a 503 naming the shards whose owner
 * is unknown or did not answer; any other status is left as it is. Frees
 * g (NULL: nothing to do). 0 or SAGA_ENOMEM. */
int admin_gather_finish(admin_gather_t *g, admin_response_t *res);

/* One GET of url (a whole URL) with a body limit; 0 with *status and
 * *body (NUL-terminated, saga_free) set, or -1 with the reason in why. */
int admin_peer_get(const char *url, long timeout_ms, unsigned *status, char **body, char *why, size_t whylen);

#endif
