/* POST /v1/sagas/retry and /v1/sagas/abort: the retry or abort of every saga a GET /v1/sagas filter selects over the cluster, sent in bounded batches (docs/ADMIN-API.md, "Bulk retry and abort"). */
#include "admin_gather.h"
#include "admin_handlers.h"
#include "commands.h"
#include "engine.h"

#include <stdio.h>
#include <string.h>

#include "saga_alloc.h"
#include "saga_error.h"
#include "saga_json.h"
#include "saga_utf8.h"
#include "saga_util.h"

#define BULK_MAX 10000     /* default and largest "max" */
#define BULK_PAGE "500"    /* list page size while selecting (the list's largest) */
#define BULK_BATCH 100     /* commands handed to Kafka before waiting for their acknowledgements */
#define BULK_FIRST_IDS 20  /* ids shown in the answer */
#define BULK_MAX_REASON 1024
#define BULK_QUERY_ROOM (ADMIN_MAX_QUERY_LEN - 400) /* the filters; the rest: limit and cursor */

static const char *const MEMBERS[] = {"status",        "definition",     "step",          "step_status",
                                      "error_code",    "created_after",  "created_before", "updated_after",
                                      "updated_before", "search",        "dry_run",       "reason",
                                      "max",           NULL};
/* The members passed as they are to the list (strings). */
static const char *const TEXT_FILTERS[] = {"definition",    "step",           "step_status",   "error_code",
                                           "created_after", "created_before", "updated_after", "updated_before",
                                           NULL};

typedef struct {
    saga_command_kind_op_t kind;
    int dry_run;
    const char *reason;
    long max;
    char query[BULK_QUERY_ROOM]; /* the filters as a GET /v1/sagas query, without limit and cursor */
    size_t qlen;
    int too_long;
} bulk_t;

typedef struct {
    char **ids;
    size_t n, cap;
    int more; /* more sagas matched than max */
} selection_t;

static void selection_free(selection_t *s) {
    for (size_t i = 0; i < s->n; i++) saga_free(s->ids[i]);
    saga_free(s->ids);
    memset(s, 0, sizeof *s);
}

/* Appends "key=value&" percent-encoded (key encoded too, but for its '.'). */
static void add_param(bulk_t *b, const char *key, const char *value) {
    static const char hex[] = "0123456789ABCDEF";
    const char *parts[2] = {key, value};
    for (int p = 0; p < 2 && !b->too_long; p++) {
        for (const unsigned char *c = (const unsigned char *)parts[p]; *c; c++) {
            if (b->qlen + 4 >= sizeof b->query) {
                b->too_long = 1;
                return;
            }
            if ((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-' ||
                *c == '_' || *c == '.' || *c == '~') {
                b->query[b->qlen++] = (char)*c;
            } else {
                b->query[b->qlen++] = '%';
                b->query[b->qlen++] = hex[*c >> 4];
                b->query[b->qlen++] = hex[*c & 15];
            }
        }
        b->query[b->qlen++] = p == 0 ? '=' : '&';
    }
    b->query[b->qlen] = '\0';
}

/* The statuses the command acts on: retry compensation_failed, abort
 * running (and scheduled, where sagad has that status). */
static int status_allowed(saga_command_kind_op_t kind, const char *s) {
    if (kind == SAGA_CMD_RETRY) return strcmp(s, "compensation_failed") == 0;
    return strcmp(s, "running") == 0 || (strcmp(s, "scheduled") == 0 && saga_status_parse("scheduled") >= 0);
}

static const char *allowed_names(saga_command_kind_op_t kind) {
    if (kind == SAGA_CMD_RETRY) return "compensation_failed";
    return saga_status_parse("scheduled") >= 0 ? "running, scheduled" : "running";
}

static int status_error(admin_response_t *res, saga_command_kind_op_t kind, const char *s) {
    const char *verb = saga_command_op_name(kind);
    return admin_param_error(res, "status",
                             "member 'status': '%.*s' is not a status %s acts on (%s); omit 'status' for all of them",
                             saga_utf8_prefix(s, 64), s, verb, allowed_names(kind));
}

/* The body into *b: 0, or 0 with res filled (400 naming the member), or SAGA_ENOMEM. */
static int parse_body(const json_t *doc, bulk_t *b, admin_response_t *res) {
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)doc, key, v) {
        size_t k = 0;
        while (MEMBERS[k] && strcmp(MEMBERS[k], key) != 0) k++;
        if (!MEMBERS[k])
            return admin_param_error(res, key,
                                     "unknown member '%.*s' (accepted: status, definition, step, step_status, "
                                     "error_code, created_after, created_before, updated_after, updated_before, "
                                     "search, dry_run, reason, max)",
                                     saga_utf8_prefix(key, 64), key);
    }
    /* status: a string or an array of strings, each one the command acts on */
    json_t *st = json_object_get(doc, "status");
    char statuses[256] = "";
    size_t so = 0;
    if (st && !json_is_string(st) && !json_is_array(st))
        return admin_param_error(res, "status", "member 'status' must be a string or an array of strings");
    if (json_is_array(st) && json_array_size(st) == 0)
        return admin_param_error(res, "status", "member 'status' names no status");
    for (size_t i = 0, n = json_is_array(st) ? json_array_size(st) : st ? 1 : 0; i < n; i++) {
        json_t *e = json_is_array(st) ? json_array_get(st, i) : st;
        if (!json_is_string(e))
            return admin_param_error(res, "status", "member 'status' must be a string or an array of strings");
        const char *s = json_string_value(e);
        if (!status_allowed(b->kind, s)) return status_error(res, b->kind, s);
        so += (size_t)snprintf(statuses + so, sizeof statuses - so, "%s%s", so ? "," : "", s);
        if (so >= sizeof statuses) return admin_param_error(res, "status", "member 'status' is too long");
    }
    if (!st) snprintf(statuses, sizeof statuses, "%s", b->kind == SAGA_CMD_RETRY ? "compensation_failed"
                                                       : saga_status_parse("scheduled") >= 0 ? "running,scheduled"
                                                                                              : "running");
    add_param(b, "status", statuses);
    for (size_t i = 0; TEXT_FILTERS[i]; i++) {
        const char *name = TEXT_FILTERS[i];
        v = json_object_get(doc, name);
        if (!v) continue;
        if (!json_is_string(v)) return admin_param_error(res, name, "member '%s' must be a string", name);
        const char *s = json_string_value(v);
        if (!admin_text_ok(s, json_string_length(v)) || !*s)
            return admin_param_error(res, name, "member '%s' must be non-empty UTF-8 text without control characters",
                                     name);
        int64_t ms;
        if (strstr(name, "_after") || strstr(name, "_before")) {
            if (admin_parse_time(s, &ms) != 0)
                return admin_param_error(res, name, "member '%s': '%.*s' is not an RFC 3339 time like 2023-11-14T22:13:20Z",
                                         name, saga_utf8_prefix(s, 64), s);
        }
        add_param(b, name, s);
    }
    v = json_object_get(doc, "search");
    if (v && !json_is_object(v))
        return admin_param_error(res, "search", "member 'search' must be an object of strings {\"NAME\": \"VALUE\"}");
    json_t *sv;
    json_object_foreach(v, key, sv) {
        if (!json_is_string(sv))
            return admin_param_error(res, "search", "member 'search': '%.*s' must be a string", saga_utf8_prefix(key, 64),
                                     key);
        if (!*key || !admin_text_ok(key, strlen(key)) || !admin_text_ok(json_string_value(sv), json_string_length(sv)))
            return admin_param_error(res, "search",
                                     "member 'search': names and values must be UTF-8 text without control characters");
        char name[300];
        if (snprintf(name, sizeof name, "search.%s", key) >= (int)sizeof name)
            return admin_param_error(res, "search", "member 'search': a name is too long");
        add_param(b, name, json_string_value(sv));
    }
    if (b->too_long) return admin_error(res, ADMIN_ERR_BAD_REQUEST, "the filters are too long (at most about %d bytes)",
                                        BULK_QUERY_ROOM);
    v = json_object_get(doc, "dry_run");
    if (v && !json_is_boolean(v)) return admin_param_error(res, "dry_run", "member 'dry_run' must be true or false");
    b->dry_run = json_is_true(v);
    v = json_object_get(doc, "reason");
    if (v && !json_is_string(v)) return admin_param_error(res, "reason", "member 'reason' must be a string");
    if (v && json_string_length(v) > BULK_MAX_REASON)
        return admin_param_error(res, "reason", "member 'reason' is longer than %d bytes", BULK_MAX_REASON);
    b->reason = json_string_value(v);
    v = json_object_get(doc, "max");
    b->max = BULK_MAX;
    if (v && (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > BULK_MAX))
        return admin_param_error(res, "max", "member 'max' must be a whole number from 1 to %d", BULK_MAX);
    if (v) b->max = (long)json_integer_value(v);
    return 0;
}

static void unlock(admin_ctx_t *ctx) {
    if (ctx->lock) pthread_mutex_unlock(ctx->lock);
}

static void relock(admin_ctx_t *ctx) {
    if (ctx->lock) pthread_mutex_lock(ctx->lock);
}

/* One page of GET /v1/sagas?query over the cluster, as admin.c answers it:
 * this instance's shards (under the lock), then the other owners' (without
 * it, admin_gather.c), merged. 0 with *page filled (any status), or SAGA_ENOMEM. */
static int list_page(admin_ctx_t *ctx, const admin_request_t *req, admin_list_query_fn parse, const char *query,
                     admin_response_t *page) {
    admin_query_t q;
    memset(page, 0, sizeof *page);
    int rc = parse(query, &q, page);
    if (rc == 0 && !page->body) rc = admin_list_sagas(ctx, &q, page);
    saga_free(q.buf);
    if (rc != 0 || page->status != 200) return rc;
    admin_request_t greq = {.method = "GET", .path = "/v1/sagas", .query = query, .host = req->host,
                            .origin = req->origin};
    int oom = 0;
    unlock(ctx);
    admin_gather_t *g = admin_gather_fetch(ctx, &greq, &oom);
    relock(ctx);
    if (oom) return SAGA_ENOMEM;
    return admin_gather_finish(g, page);
}

/* Pages through the list (500 a page, following next_cursor) until max ids
 * are collected or the pages end: 0 with sel filled, 0 with res filled (an
 * error of the list: 400, 503), or SAGA_ENOMEM. */
static int select_sagas(admin_ctx_t *ctx, const admin_request_t *req, admin_list_query_fn parse, const bulk_t *b,
                        selection_t *sel, admin_response_t *res) {
    char query[ADMIN_MAX_QUERY_LEN + 1];
    char cursor[600] = "";
    for (;;) {
        int n = snprintf(query, sizeof query, "%slimit=" BULK_PAGE "%s%s", b->query, cursor[0] ? "&cursor=" : "",
                         cursor);
        if (n < 0 || (size_t)n >= sizeof query) return admin_error(res, ADMIN_ERR_INTERNAL, "the list query is too long");
        admin_response_t page;
        int rc = list_page(ctx, req, parse, query, &page);
        if (rc != 0 || page.status != 200) {
            if (rc == 0) *res = page; /* the list's own error, as it gave it */
            else saga_free(page.body);
            return rc;
        }
        json_t *doc = json_loadb(page.body, page.body_len, 0, NULL);
        saga_free(page.body);
        json_t *items = json_object_get(doc, "sagas"), *item;
        if (!json_is_array(items)) {
            json_decref(doc);
            return doc ? admin_error(res, ADMIN_ERR_INTERNAL, "the list's answer has no sagas") : SAGA_ENOMEM;
        }
        size_t i;
        json_array_foreach(items, i, item) {
            const char *id = json_string_value(json_object_get(item, "id"));
            if (!id) continue;
            if ((long)sel->n == b->max) {
                sel->more = 1;
                break;
            }
            if (sel->n == sel->cap) {
                size_t cap = sel->cap ? sel->cap * 2 : 512;
                char **grown = saga_realloc(sel->ids, cap * sizeof *grown);
                if (!grown) {
                    json_decref(doc);
                    return SAGA_ENOMEM;
                }
                sel->ids = grown;
                sel->cap = cap;
            }
            if (!(sel->ids[sel->n] = saga_strdup(id))) {
                json_decref(doc);
                return SAGA_ENOMEM;
            }
            sel->n++;
        }
        const char *next = json_string_value(json_object_get(doc, "next_cursor"));
        if (next && (long)sel->n == b->max) sel->more = 1;
        if (!next || sel->more || (long)sel->n == b->max || strlen(next) * 3 >= sizeof cursor) {
            json_decref(doc);
            return 0;
        }
        snprintf(cursor, sizeof cursor, "%s", next); /* base64url: no escaping needed */
        json_decref(doc);
    }
}

/* {"dry_run", "matched", "first_ids", "more"} plus the caller's members. */
static json_t *answer_doc(const bulk_t *b, const selection_t *sel) {
    json_t *first = json_array();
    for (size_t i = 0; first && i < sel->n && i < BULK_FIRST_IDS; i++)
        if (json_array_append_new(first, admin_json_text(sel->ids[i], strlen(sel->ids[i]))) != 0) {
            json_decref(first);
            first = NULL;
        }
    return first ? json_pack("{s:b, s:I, s:o, s:b}", "dry_run", b->dry_run, "matched", (json_int_t)sel->n,
                             "first_ids", first, "more", sel->more)
                 : NULL;
}

static int answer(admin_response_t *res, unsigned status, json_t *doc) {
    int rc = doc ? admin_json_response(res, status, doc) : SAGA_ENOMEM;
    json_decref(doc);
    return rc;
}

/* The saga.control message of sagas[i] (the one the single command sends):
 * its message_id is the request's id and i, unique per saga per request,
 * so a batch sent twice is applied once. NULL on ENOMEM. */
static char *control_payload(const bulk_t *b, const char *request_id, size_t i, const char *id) {
    char message_id[80];
    snprintf(message_id, sizeof message_id, "%s-%zu", request_id, i);
    return admin_control_message(b->kind, message_id, id, NULL, b->reason);
}

/* Hands sagas [from, to) to Kafka (publish_batch, else publish one by one)
 * or, without a publisher, to the command queue. Returns how many of them
 * were not taken (0: all), with the first reason in why and its shard in
 * *shard; -1 on ENOMEM. */
static long send_batch(admin_ctx_t *ctx, const bulk_t *b, const char *request_id, const selection_t *sel, size_t from,
                       size_t to, char *why, size_t whylen, int *shard) {
    size_t n = to - from;
    if (!ctx->publish) {
        for (size_t i = from; i < to; i++) {
            int rc = saga_command_push(ctx->commands, b->kind, sel->ids[i], NULL, b->reason);
            if (rc == SAGA_ENOMEM) return -1;
            if (rc) {
                snprintf(why, whylen, "too many commands waiting for the loop");
                *shard = -1;
                return (long)(to - i);
            }
        }
        return 0;
    }
    char *payloads[BULK_BATCH] = {0};
    int shards[BULK_BATCH];
    unsigned char failed[BULK_BATCH] = {0};
    long bad = 0;
    for (size_t k = 0; k < n; k++) {
        shards[k] = admin_shard_of(ctx, sel->ids[from + k]);
        if (!(payloads[k] = control_payload(b, request_id, from + k, sel->ids[from + k]))) bad = -1;
    }
    if (bad == 0 && ctx->publish_batch) {
        bad = ctx->publish_batch(ctx->publish_arg, (int)n, shards, (const char *const *)(sel->ids + from),
                                 (const char *const *)payloads, failed, why, whylen);
        for (size_t k = 0; k < n && bad > 0; k++)
            if (failed[k]) {
                *shard = shards[k];
                break;
            }
    } else if (bad == 0) {
        for (size_t k = 0; k < n; k++)
            if (ctx->publish(ctx->publish_arg, shards[k], sel->ids[from + k], payloads[k], why, whylen) != 0) {
                *shard = shards[k];
                bad = (long)(n - k);
                break;
            }
    }
    for (size_t k = 0; k < n; k++) saga_free(payloads[k]);
    return bad;
}

/* A 503 saying how far the commands got; res filled. */
static int partial_error(admin_response_t *res, const bulk_t *b, const selection_t *sel, size_t queued, int shard,
                         const char *why) {
    const char *verb = saga_command_op_name(b->kind);
    int rc = admin_shard_error(res, ADMIN_ERR_UNAVAILABLE, shard,
                               "%zu of the %zu selected %s commands were handed over; the rest could not be (%s): "
                               "send the same request again (sagas a command already reached no longer match)",
                               queued, sel->n, verb, why);
    if (rc) return rc;
    json_t *doc = json_loadb(res->body, res->body_len, 0, NULL);
    if (!doc) return 0;
    json_object_set_new(doc, "matched", json_integer((json_int_t)sel->n));
    json_object_set_new(doc, "queued", json_integer((json_int_t)queued));
    saga_free(res->body);
    res->body = NULL;
    return answer(res, 503, doc);
}

int admin_post_bulk(admin_ctx_t *ctx, int retry, const admin_request_t *req, admin_list_query_fn parse,
                    admin_response_t *res) {
    char err[200];
    json_t *doc = req->body_len ? saga_json_parse(req->body, req->body_len, err, sizeof err) : json_object();
    if (!doc) return admin_error(res, ADMIN_ERR_BAD_REQUEST, "body is not valid JSON: %s", err);
    if (!json_is_object(doc)) {
        json_decref(doc);
        return admin_error(res, ADMIN_ERR_BAD_REQUEST, "body must be a JSON object of the filters of GET /v1/sagas");
    }
    bulk_t *b = saga_calloc(1, sizeof *b);
    if (!b) {
        json_decref(doc);
        return SAGA_ENOMEM;
    }
    b->kind = retry ? SAGA_CMD_RETRY : SAGA_CMD_ABORT;
    selection_t sel = {0};
    int rc = parse_body(doc, b, res);
    if (rc == 0 && !res->body) rc = select_sagas(ctx, req, parse, b, &sel, res);
    if (rc != 0 || res->body) goto out;
    if (b->dry_run) {
        rc = answer(res, 200, answer_doc(b, &sel));
        goto out;
    }
    char request_id[40];
    saga_random_id("bulk-", request_id, sizeof request_id);
    size_t queued = 0;
    int kafka = ctx->publish != NULL; /* sagad's way; it is taken away when sagad stops */
    while (queued < sel.n) {
        if (queued > 0) { /* between batches other requests get their turn */
            unlock(ctx);
            relock(ctx);
        }
        if ((kafka && !ctx->publish) || !ctx->commands) { /* sagad is stopping */
            rc = partial_error(res, b, &sel, queued, -1, "sagad is stopping");
            goto out;
        }
        size_t to = sel.n - queued > BULK_BATCH ? queued + BULK_BATCH : sel.n;
        char why[512] = "";
        int shard = -1;
        long bad = send_batch(ctx, b, request_id, &sel, queued, to, why, sizeof why, &shard);
        if (bad < 0) {
            rc = SAGA_ENOMEM;
            goto out;
        }
        if (bad > 0) {
            rc = partial_error(res, b, &sel, queued + (to - queued) - (size_t)bad, shard, why);
            goto out;
        }
        queued = to;
    }
    json_t *ans = answer_doc(b, &sel);
    char msg[400];
    snprintf(msg, sizeof msg,
             "%zu %s command(s) handed to sagad%s; the loop applies them in its normal batches: follow with "
             "GET /v1/stats or GET /v1/sagas",
             queued, saga_command_op_name(b->kind),
             sel.more ? " (more sagas matched than max: send the request again for the next ones)" : "");
    if (ans && (json_object_set_new(ans, "queued", json_integer((json_int_t)queued)) ||
                json_object_set_new(ans, "message", json_string(msg)))) {
        json_decref(ans);
        ans = NULL;
    }
    rc = answer(res, 202, ans);
out:
    selection_free(&sel);
    saga_free(b);
    json_decref(doc);
    return rc;
}
