/* The endpoints of the admin API and the guards in front of them, one
 * source file per group (named below); admin_route.c dispatches to them. */
#ifndef SAGA_ADMIN_HANDLERS_H
#define SAGA_ADMIN_HANDLERS_H

#include "admin_http.h"

#include <stdbool.h>

/* Guards (admin_guard.c). admin_guard_request: a Host that is not one of
 * ctx->hosts answers 421, an Origin that is not http(s)://<that Host> 403.
 * admin_guard_mutation: no commands queue or no token 503, no bearer token
 * 401, another one 403 (compared in constant time), a Content-Type other
 * than application/json 415. Both return 0 with res untouched when the
 * request may go on, 0 with res filled when it is refused, or SAGA_ENOMEM. */
int admin_guard_request(const admin_ctx_t *ctx, const admin_request_t *req, admin_response_t *res);
int admin_guard_mutation(const admin_ctx_t *ctx, const admin_request_t *req, admin_response_t *res);
/* 1 when the two NUL-terminated strings are equal; the time taken depends
 * on their lengths only, not on where they differ. */
int admin_token_equal(const char *want, const char *given);

/* The handlers (admin_sagas.c). `id` is decoded and checked. */
int admin_get_saga(admin_ctx_t *ctx, const char *id, admin_response_t *res);
int admin_get_health(admin_ctx_t *ctx, admin_response_t *res);

/* Lists (admin_list.c): GET /v1/sagas with filters and cursor pagination,
 * and GET /v1/stats, over the shards admin_shard_selection gives (this
 * instance's, or ?shards=). */
int admin_list_sagas(admin_ctx_t *ctx, const admin_query_t *q, admin_response_t *res);
int admin_get_stats(admin_ctx_t *ctx, const admin_query_t *q, admin_response_t *res);
/* The list cursor of a row at (updated_at ms, id[0..idlen)) into out
 * (outlen >= 4 * (ADMIN_MAX_ID_LEN + 40) / 3 + 4); -1 when the id cannot be
 * carried by a cursor (admin_gather.c merges pages of several instances). */
int admin_list_cursor(int64_t updated_at, const char *id, size_t idlen, char *out, size_t outlen);
/* obj with its members in key order (as one shard's ORDER BY gives them),
 * for stats summed over shards or instances; a new reference, NULL on ENOMEM. */
json_t *admin_json_sorted(json_t *obj);
/* admin_metrics.c: Prometheus text; readiness (SQLite answers, Kafka assigned). */
int admin_get_metrics(admin_ctx_t *ctx, admin_response_t *res);
/* admin_at.c: the saga as it was at an RFC 3339 time, replayed from history. */
int admin_get_saga_at(admin_ctx_t *ctx, const char *id, const char *at, admin_response_t *res);
int admin_get_ready(admin_ctx_t *ctx, admin_response_t *res);

/* admin_ui.c: GET /ui, the web view (docs/ui/index.html, compiled in):
 * 200 with content_type "text/html; charset=utf-8". */
int admin_get_ui(admin_ctx_t *ctx, admin_response_t *res);

/* Definitions (admin_defs.c): GET /v1/definitions[/{name}[/{version}]];
 * name and version NULL when not in the path (version still raw text). */
int admin_get_definitions(admin_ctx_t *ctx, const char *name, const char *version, admin_response_t *res);

/* The command handlers (admin_commands.c): they check what they can in the
 * read-only database and queue the command for the loop (202 Accepted).
 * admin_route has already run admin_guard_mutation. */
int admin_post_saga(admin_ctx_t *ctx, const admin_request_t *req, admin_response_t *res);
int admin_post_abort(admin_ctx_t *ctx, const char *id, const admin_request_t *req, admin_response_t *res);
int admin_post_retry(admin_ctx_t *ctx, const char *id, const admin_request_t *req, admin_response_t *res);
/* POST /v1/topics/{topic}/pause (paused) and /resume: body {"reason"?}. */
int admin_post_pause(admin_ctx_t *ctx, const char *topic, bool paused, const admin_request_t *req,
                     admin_response_t *res);
/* POST /v1/sagas/{id}/signals/{name}: body {"status", "output"?, "error"?, "message_id"?}. */
int admin_post_signal(admin_ctx_t *ctx, const char *id, const char *name, const admin_request_t *req,
                      admin_response_t *res);
int admin_post_reload(admin_ctx_t *ctx, const admin_request_t *req, admin_response_t *res);
/* The saga.control message of an operator command (kind: a
 * saga_command_kind_op_t; start: the saga.start body of a start, the
 * saga.signal message of a signal, else NULL; reason may be NULL) as JSON
 * text (saga_free); NULL on ENOMEM. */
char *admin_control_message(int kind, const char *message_id, const char *id, const json_t *start,
                            const char *reason);

/* Bulk commands (admin_bulk.c): POST /v1/sagas/retry (retry != 0) and
 * /v1/sagas/abort. The body holds GET /v1/sagas's filters as JSON; the
 * sagas are selected over the cluster with the list (parse turns a query
 * string into the list's admin_query_t, as admin_route does: 0, 0 with res
 * filled, or SAGA_ENOMEM), then each gets the single command's saga.control
 * message, BULK_BATCH at a time. Lets go of ctx->lock while it waits for
 * other instances and between batches. */
typedef int (*admin_list_query_fn)(const char *query, admin_query_t *q, admin_response_t *res);
int admin_post_bulk(admin_ctx_t *ctx, int retry, const admin_request_t *req, admin_list_query_fn parse,
                    admin_response_t *res);

#endif
