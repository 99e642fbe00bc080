/* Routing of admin requests: a table of (method, path pattern, handler).
 * Patterns are literal segments and {param} segments; a path that matches
 * a pattern under another method answers 405 with an Allow header. Path
 * segments are percent-decoded one by one here (MHD is told not to decode,
 * so an id may contain an encoded '/'). */
#include "admin_route.h"

#include "saga_alloc.h"
#include "saga_error.h"
#include "saga_utf8.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define MAX_SEGMENTS 16
#define MAX_PARAMS 4

typedef struct {
    const char *value[MAX_PARAMS]; /* decoded, NUL-terminated */
    size_t len[MAX_PARAMS];
    size_t count;
} route_params_t;

typedef int (*route_handler_fn)(admin_ctx_t *ctx, const admin_request_t *req, const route_params_t *params,
                                const admin_query_t *q, admin_response_t *res);

typedef struct {
    const char *method;
    const char *pattern; /* "/v1/sagas/{id}" */
    const char *allow;   /* every method registered for this pattern */
    route_handler_fn handler;
    /* Query parameters the endpoint accepts (NULL-terminated); any other
     * one is a 400. NULL: the endpoint ignores the query string. */
    const char *const *query;
} route_t;

static int h_health(admin_ctx_t *ctx, const admin_request_t *req, const route_params_t *p,
                    const admin_query_t *q, admin_response_t *res) {
    return admin_get_health(ctx, res);
}

static int h_saga(admin_ctx_t *ctx, const admin_request_t *req, const route_params_t *p,
                  const admin_query_t *q, admin_response_t *res) {
    const char *at = admin_query_get(q, "at");
    return at ? admin_get_saga_at(ctx, p->value[0], at, res) : admin_get_saga(ctx, p->value[0], res);
}

/* scope: "cluster" (the default: every shard, admin_gather.c asks the other
 * owners) or "local" (this instance's shards only). The handlers read this
 * instance's shards either way. */
static int scope_error(const admin_query_t *q, admin_response_t *res) {
    const char *v = admin_query_get(q, "scope");
    if (!v || strcmp(v, "cluster") == 0 || strcmp(v, "local") == 0) return 0;
    admin_param_error(res, "scope", "parameter 'scope': '%.*s' is not a scope (cluster, local)", saga_utf8_prefix(v, 64), v);
    return 1;
}

static int h_list(admin_ctx_t *ctx, const admin_request_t *req, const route_params_t *p,
                  const admin_query_t *q, admin_response_t *res) {
    if (scope_error(q, res)) return res->body ? 0 : SAGA_ENOMEM;
    return admin_list_sagas(ctx, q, res);
}

static int h_metrics(admin_ctx_t *ctx, const admin_request_t *req, const route_params_t *p,
                     const admin_query_t *qp, admin_response_t *res) {
    return admin_get_metrics(ctx, res);
}

static int h_ready(admin_ctx_t *ctx, const admin_request_t *req, const route_params_t *p,
                   const admin_query_t *qp, admin_response_t *res) {
    return admin_get_ready(ctx, res);
}

static int h_reload(admin_ctx_t *ctx, const admin_request_t *req, const route_params_t *p,
                    const admin_query_t *q, admin_response_t *res) {
    return admin_post_reload(ctx, req, res);
}

static int h_stats(admin_ctx_t *ctx, const admin_request_t *req, const route_params_t *p,
                   const admin_query_t *q, admin_response_t *res) {
    if (scope_error(q, res)) return res->body ? 0 : SAGA_ENOMEM;
    return admin_get_stats(ctx, q, res);
}

static int h_defs(admin_ctx_t *ctx, const admin_request_t *req, const route_params_t *p,
                  const admin_query_t *q, admin_response_t *res) {
    return admin_get_definitions(ctx, p->count > 0 ? p->value[0] : NULL, p->count > 1 ? p->value[1] : NULL,
                                 res);
}

static int h_post_saga(admin_ctx_t *ctx, const admin_request_t *req, const route_params_t *p,
                       const admin_query_t *q, admin_response_t *res) {
    return admin_post_saga(ctx, req, res);
}

static int h_abort(admin_ctx_t *ctx, const admin_request_t *req, const route_params_t *p,
                   const admin_query_t *q, admin_response_t *res) {
    return admin_post_abort(ctx, p->value[0], req, res);
}

static int h_retry(admin_ctx_t *ctx, const admin_request_t *req, const route_params_t *p,
                   const admin_query_t *q, admin_response_t *res) {
    return admin_post_retry(ctx, p->value[0], req, res);
}

static int h_signal(admin_ctx_t *ctx, const admin_request_t *req, const route_params_t *p, const admin_query_t *q,
                    admin_response_t *res) {
    return admin_post_signal(ctx, p->value[0], p->value[1], req, res);
}

static int h_pause(admin_ctx_t *ctx, const admin_request_t *req, const route_params_t *p, const admin_query_t *q,
                   admin_response_t *res) {
    return admin_post_pause(ctx, p->value[0], true, req, res);
}

static int h_resume(admin_ctx_t *ctx, const admin_request_t *req, const route_params_t *p, const admin_query_t *q,
                    admin_response_t *res) {
    return admin_post_pause(ctx, p->value[0], false, req, res);
}

static int list_query(const char *query, admin_query_t *q, admin_response_t *res);

static int h_bulk_retry(admin_ctx_t *ctx, const admin_request_t *req, const route_params_t *p,
                        const admin_query_t *q, admin_response_t *res) {
    return admin_post_bulk(ctx, 1, req, list_query, res);
}

static int h_bulk_abort(admin_ctx_t *ctx, const admin_request_t *req, const route_params_t *p,
                        const admin_query_t *q, admin_response_t *res) {
    return admin_post_bulk(ctx, 0, req, list_query, res);
}

static int h_ui(admin_ctx_t *ctx, const admin_request_t *req, const route_params_t *p,
                const admin_query_t *q, admin_response_t *res) {
    return admin_get_ui(ctx, res);
}

static const char *const LIST_PARAMS[] = {"status", "definition", "created_after", "created_before",
                                          "updated_after", "updated_before", "step", "step_status",
                                          "error_code", "limit", "cursor", "scope", "shards", "search.NAME", NULL};
static const char *const NO_PARAMS[] = {NULL};
static const char *const SAGA_PARAMS[] = {"at", NULL};
static const char *const STATS_PARAMS[] = {"scope", "shards", NULL};

/* New endpoints go here; docs/ADMIN-API.md and docs/openapi.yaml describe them. */
static const route_t routes[] = {
    {"GET", "/healthz", "GET, HEAD", h_health, NULL},
    {"GET", "/v1/sagas", "GET, HEAD, POST", h_list, LIST_PARAMS},
    {"POST", "/v1/sagas", "GET, HEAD, POST", h_post_saga, NULL},
    /* before /v1/sagas/{id}: the filters go in the body, a query string is refused */
    {"POST", "/v1/sagas/retry", "POST", h_bulk_retry, NO_PARAMS},
    {"POST", "/v1/sagas/abort", "POST", h_bulk_abort, NO_PARAMS},
    {"GET", "/v1/sagas/{id}", "GET, HEAD", h_saga, SAGA_PARAMS},
    {"POST", "/v1/sagas/{id}/abort", "POST", h_abort, NULL},
    {"POST", "/v1/sagas/{id}/retry", "POST", h_retry, NULL},
    {"POST", "/v1/sagas/{id}/signals/{name}", "POST", h_signal, NULL},
    {"POST", "/v1/topics/{topic}/pause", "POST", h_pause, NULL},
    {"POST", "/v1/topics/{topic}/resume", "POST", h_resume, NULL},
    {"GET", "/v1/definitions", "GET, HEAD", h_defs, NO_PARAMS},
    {"POST", "/v1/definitions/reload", "POST", h_reload, NULL},
    {"GET", "/v1/definitions/{name}", "GET, HEAD", h_defs, NO_PARAMS},
    {"GET", "/v1/definitions/{name}/{version}", "GET, HEAD", h_defs, NO_PARAMS},
    {"GET", "/v1/stats", "GET, HEAD", h_stats, STATS_PARAMS},
    {"GET", "/metrics", "GET, HEAD", h_metrics, NULL},
    {"GET", "/readyz", "GET, HEAD", h_ready, NULL},
    {"GET", "/ui", "GET, HEAD", h_ui, NULL},
    {"GET", "/ui/", "GET, HEAD", h_ui, NULL},
};

/* A request for one saga whose shard another instance owns: 307 to that
 * instance's admin API (same path and query; a client re-sends the token),
 * or 503 naming the shard while none is known (the group is moving it). */
int admin_elsewhere(admin_ctx_t *ctx, const admin_request_t *req, int shard, admin_response_t *res) {
    char url[600], name[400];
    if (!ctx->owner_of || ctx->owner_of(ctx->owner_arg, shard, url, sizeof url) != 0)
        return admin_shard_error(res, ADMIN_ERR_UNAVAILABLE, shard,
                                 "%s is owned by another sagad instance of the group, and none is known to own it "
                                 "right now (it is moving): try again in a few seconds",
                                 admin_shard_name(ctx, shard, name, sizeof name));
    int n = snprintf(res->location, sizeof res->location, "%s%s%s%s", url, req->path,
                     req->query && *req->query ? "?" : "", req->query && *req->query ? req->query : "");
    if (n < 0 || (size_t)n >= sizeof res->location) {
        res->location[0] = '\0';
        return admin_error(res, ADMIN_ERR_URI_TOO_LONG, "the redirect to shard %d's owner would be too long", shard);
    }
    json_t *doc = json_pack("{s:{s:s, s:s, s:i, s:s}}", "error", "code", "moved", "message",
                            "this saga's shard is owned by another sagad instance: follow the Location", "shard",
                            shard, "location", res->location);
    int rc = doc ? admin_json_response(res, 307, doc) : SAGA_ENOMEM;
    json_decref(doc);
    return rc;
}

/* ---- paths ---- */

typedef struct {
    char *buf; /* decoded segments, each NUL-terminated */
    const char *seg[MAX_SEGMENTS];
    size_t len[MAX_SEGMENTS];
    size_t count;
} path_t;

/* 0, SAGA_EPARSE (malformed escape), SAGA_EINVAL (not absolute or too many
 * segments: no route can match), SAGA_ENOMEM. */
static int split_path(const char *path, path_t *p) {
    memset(p, 0, sizeof *p);
    if (!path || path[0] != '/') return SAGA_EINVAL;
    size_t n = strlen(path);
    p->buf = saga_malloc(n + 1);
    if (!p->buf) return SAGA_ENOMEM;
    char *out = p->buf;
    const char *s = path + 1;
    for (;;) {
        const char *slash = strchr(s, '/');
        size_t raw = slash ? (size_t)(slash - s) : strlen(s);
        if (p->count == MAX_SEGMENTS) return SAGA_EINVAL;
        long dl = admin_percent_decode(s, raw, out);
        if (dl < 0) return SAGA_EPARSE;
        p->seg[p->count] = out;
        p->len[p->count] = (size_t)dl;
        p->count++;
        out += dl + 1;
        if (!slash) break;
        s = slash + 1;
    }
    return 0;
}

/* 1 when the pattern matches the segments; params collected. */
static int match(const char *pattern, const path_t *p, route_params_t *params) {
    params->count = 0;
    const char *s = pattern + 1;
    size_t i = 0;
    for (;; i++) {
        const char *slash = strchr(s, '/');
        size_t plen = slash ? (size_t)(slash - s) : strlen(s);
        if (i >= p->count) return 0;
        if (plen >= 2 && s[0] == '{' && s[plen - 1] == '}') {
            if (p->len[i] == 0 || params->count == MAX_PARAMS) return 0;
            params->value[params->count] = p->seg[i];
            params->len[params->count] = p->len[i];
            params->count++;
        } else if (plen != p->len[i] || memcmp(s, p->seg[i], plen) != 0) {
            return 0;
        }
        if (!slash) break;
        s = slash + 1;
    }
    return i + 1 == p->count;
}

static int method_is(const char *route_method, const char *method) {
    if (strcmp(route_method, method) == 0) return 1;
    return strcmp(route_method, "GET") == 0 && strcmp(method, "HEAD") == 0;
}

/* ---- query strings ---- */

/* Decodes one key or value of a query: '+' is a space, then %HH. */
static long query_decode(char *src, size_t len, char *dst) {
    for (size_t i = 0; i < len; i++)
        if (src[i] == '+') src[i] = ' ';
    return admin_percent_decode(src, len, dst);
}

static void list_names(const char *const *names, char *buf, size_t len) {
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; names[i] && o + 1 < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%s%s", i ? ", " : "", names[i]);
}

/* 1 when key belongs to the family an accepted name "prefix.NAME" stands
 * for (search.NAME: search.order_id, search.customer, ...). */
static int family_member(const char *accepted, const char *key) {
    const char *dot = strchr(accepted, '.');
    if (!dot || strcmp(dot, ".NAME") != 0) return 0;
    size_t n = (size_t)(dot - accepted) + 1;
    return strncmp(accepted, key, n) == 0 && key[n] != '\0';
}

/* Parses req->query into *q for an endpoint accepting `accepted`.
 * Returns 0 with q filled, 0 with res filled (400), or SAGA_ENOMEM. */
static int parse_query(const char *query, const char *const *accepted, admin_query_t *q,
                       admin_response_t *res) {
    memset(q, 0, sizeof *q);
    if (!query || !*query) return 0;
    size_t n = strlen(query);
    if (n > ADMIN_MAX_QUERY_LEN)
        return admin_error(res, ADMIN_ERR_BAD_REQUEST, "query string is %zu bytes long; at most %d are allowed", n,
                           ADMIN_MAX_QUERY_LEN);
    /* The raw copy ('+' made ' ' in place), then the decoded keys and values,
     * each NUL-terminated: at most 2n+1 bytes ("a&b": a, "", b, ""). */
    q->buf = saga_malloc(3 * n + 3);
    if (!q->buf) return SAGA_ENOMEM;
    char *raw = q->buf, *out = q->buf + n + 1;
    memcpy(raw, query, n + 1);
    char names[300];
    char *s = raw;
    for (;;) {
        char *amp = strchr(s, '&');
        size_t plen = amp ? (size_t)(amp - s) : strlen(s);
        if (plen > 0) { /* "a&&b" and a trailing '&' are harmless */
            char *eq = memchr(s, '=', plen);
            size_t klen = eq ? (size_t)(eq - s) : plen;
            long kl = query_decode(s, klen, out);
            if (kl < 0) return admin_error(res, ADMIN_ERR_BAD_REQUEST, "malformed percent-escape in the query");
            char *key = out;
            out += kl + 1;
            if (kl == 0 || !admin_text_ok(key, (size_t)kl))
                return admin_error(res, ADMIN_ERR_BAD_REQUEST, "query parameter names must be non-empty text");
            size_t k = 0;
            while (accepted[k] && strcmp(accepted[k], key) != 0 && !family_member(accepted[k], key)) k++;
            if (!accepted[k]) {
                list_names(accepted, names, sizeof names);
                if (!accepted[0])
                    return admin_param_error(res, key, "unknown parameter '%.*s' (this endpoint takes none)", saga_utf8_prefix(key, 64), key);
                return admin_param_error(res, key, "unknown parameter '%.*s' (accepted: %s)", saga_utf8_prefix(key, 64), key, names);
            }
            for (size_t i = 0; i < q->count; i++)
                if (strcmp(q->key[i], key) == 0)
                    return admin_param_error(res, key, "parameter '%s' is given more than once", key);
            char *vsrc = eq ? eq + 1 : s + plen;
            size_t vraw = eq ? plen - klen - 1 : 0;
            long vl = query_decode(vsrc, vraw, out);
            if (vl < 0)
                return admin_param_error(res, key, "parameter '%s': malformed percent-escape", key);
            if (!admin_text_ok(out, (size_t)vl))
                return admin_param_error(res, key, "parameter '%s' must be UTF-8 text without control characters", key);
            if (q->count == ADMIN_MAX_QUERY_PARAMS)
                return admin_error(res, ADMIN_ERR_BAD_REQUEST, "too many query parameters");
            q->key[q->count] = key;
            q->value[q->count] = out;
            q->count++;
            out += vl + 1;
        }
        if (!amp) break;
        s = amp + 1;
    }
    return 0;
}

/* A GET /v1/sagas query string as the list endpoint takes it (admin_bulk.c selects with it). */
static int list_query(const char *query, admin_query_t *q, admin_response_t *res) {
    return parse_query(query, LIST_PARAMS, q, res);
}

int admin_route(admin_ctx_t *ctx, const admin_request_t *req, admin_response_t *res) {
    memset(res, 0, sizeof *res);
    const char *method = req->method ? req->method : "";
    int rc = admin_guard_request(ctx, req, res);
    if (rc != 0 || res->body) return rc;
    path_t p;
    rc = split_path(req->path, &p);
    if (rc == SAGA_ENOMEM) {
        saga_free(p.buf);
        return rc;
    }
    if (rc == SAGA_EPARSE) {
        saga_free(p.buf);
        return admin_error(res, ADMIN_ERR_BAD_REQUEST, "malformed percent-escape in path");
    }
    if (rc != 0) {
        saga_free(p.buf);
        return admin_error(res, ADMIN_ERR_NOT_FOUND, "no endpoint %s %.*s", method, saga_utf8_prefix(req->path ? req->path : "", 200), req->path ? req->path : "");
    }

    const route_t *found = NULL, *path_only = NULL;
    route_params_t params = {0};
    for (size_t i = 0; i < sizeof routes / sizeof routes[0] && !found; i++) {
        route_params_t tmp;
        if (!match(routes[i].pattern, &p, &tmp)) continue;
        if (method_is(routes[i].method, method)) {
            found = &routes[i];
            params = tmp;
        } else if (!path_only) {
            path_only = &routes[i];
        }
    }

    if (!found && path_only) {
        rc = admin_error(res, ADMIN_ERR_METHOD_NOT_ALLOWED, "method %.*s not allowed on %.*s (allowed: %s)", saga_utf8_prefix(method, 20), method, saga_utf8_prefix(req->path, 200), req->path, path_only->allow);
        res->allow = path_only->allow;
    } else if (!found) {
        rc = admin_error(res, ADMIN_ERR_NOT_FOUND, "no endpoint %.*s %.*s", saga_utf8_prefix(method, 20), method, saga_utf8_prefix(req->path, 200), req->path);
    } else {
        rc = 0;
        for (size_t i = 0; i < params.count && rc == 0 && !res->body; i++) {
            if (params.len[i] > ADMIN_MAX_ID_LEN)
                rc = admin_error(res, ADMIN_ERR_INVALID_ID, "id is %zu bytes long; at most %d are allowed",
                                 params.len[i], ADMIN_MAX_ID_LEN);
            else if (!admin_text_ok(params.value[i], params.len[i]))
                rc = admin_error(res, ADMIN_ERR_INVALID_ID,
                                 "id must be UTF-8 text without control characters");
        }
        admin_query_t q;
        memset(&q, 0, sizeof q);
        /* Every POST mutates: token and JSON body first, whatever the endpoint. */
        if (rc == 0 && !res->body && strcmp(found->method, "POST") == 0) rc = admin_guard_mutation(ctx, req, res);
        if (rc == 0 && !res->body && strncmp(found->pattern, "/v1/sagas/{id}", 14) == 0 && ctx->shards &&
            !admin_shard_owned(ctx, admin_shard_of(ctx, params.value[0])))
            rc = admin_elsewhere(ctx, req, admin_shard_of(ctx, params.value[0]), res);
        if (rc == 0 && !res->body && found->query) rc = parse_query(req->query, found->query, &q, res);
        if (rc == 0 && !res->body) rc = found->handler(ctx, req, &params, &q, res);
        saga_free(q.buf);
    }
    saga_free(p.buf);
    return rc;
}
