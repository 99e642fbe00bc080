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
#define MAX_MESSAGE 512

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

static int h_list(admin_ctx_t *ctx, const admin_request_t *req, const route_params_t *p,
                  const admin_query_t *q, admin_response_t *res) {
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
    return admin_get_stats(ctx, res);
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

static int h_ui(admin_ctx_t *ctx, const admin_request_t *req, const route_params_t *p,
                const admin_query_t *q, admin_response_t *res) {
    return admin_get_ui(ctx, res);
}

static const char *const LIST_PARAMS[] = {"status", "definition", "created_after", "created_before",
                                          "updated_after", "updated_before", "step", "step_status",
                                          "error_code", "limit", "cursor", NULL};
static const char *const NO_PARAMS[] = {NULL};
static const char *const SAGA_PARAMS[] = {"at", NULL};

/* New endpoints go here; docs/ADMIN-API.md and docs/openapi.yaml describe them. */
static const route_t routes[] = {
    {"GET", "/healthz", "GET, HEAD", h_health, NULL},
    {"GET", "/v1/sagas", "GET, HEAD, POST", h_list, LIST_PARAMS},
    {"POST", "/v1/sagas", "GET, HEAD, POST", h_post_saga, NULL},
    {"GET", "/v1/sagas/{id}", "GET, HEAD", h_saga, SAGA_PARAMS},
    {"POST", "/v1/sagas/{id}/abort", "POST", h_abort, NULL},
    {"POST", "/v1/sagas/{id}/retry", "POST", h_retry, NULL},
    {"GET", "/v1/definitions", "GET, HEAD", h_defs, NO_PARAMS},
    {"POST", "/v1/definitions/reload", "POST", h_reload, NULL},
    {"GET", "/v1/definitions/{name}", "GET, HEAD", h_defs, NO_PARAMS},
    {"GET", "/v1/definitions/{name}/{version}", "GET, HEAD", h_defs, NO_PARAMS},
    {"GET", "/v1/stats", "GET, HEAD", h_stats, NO_PARAMS},
    {"GET", "/metrics", "GET, HEAD", h_metrics, NULL},
    {"GET", "/readyz", "GET, HEAD", h_ready, NULL},
    {"GET", "/ui", "GET, HEAD", h_ui, NULL},
    {"GET", "/ui/", "GET, HEAD", h_ui, NULL},
};

/* ---- errors ---- */

static const struct {
    unsigned status;
    const char *code;
} error_table[] = {
#define ADMIN_ERR_ROW(name, status, code) {status, code},
    ADMIN_ERROR_MAP(ADMIN_ERR_ROW)
#undef ADMIN_ERR_ROW
};

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    size_t need;
    unsigned min;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) { need = 2; min = 0x80; }
    else if (c >= 0xE0 && c <= 0xEF) { need = 3; min = 0x800; }
    else if (c >= 0xF0 && c <= 0xF4) { need = 4; min = 0x10000; }
    else return 0;
    if (n < need) return 0;
    unsigned cp = c & (0x7F >> need);
    for (size_t i = 1; i < need; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return need;
}

/* Valid UTF-8, control characters allowed (JSON escapes them). */
static int utf8_valid_allow_ctl(const char *s, size_t len) {
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        size_t k = utf8_seq(u + i, len - i);
        if (!k) return 0;
        i += k;
    }
    return 1;
}

int admin_text_ok(const char *s, size_t len) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        if (u[i] < 0x20 || u[i] == 0x7F) return 0;
        size_t k = utf8_seq(u + i, len - i);
        if (!k) return 0;
        i += k;
    }
    return 1;
}

/* Copies s into dst (size cap) replacing invalid UTF-8 and control bytes with '?'. */
static void sanitize(const char *s, char *dst, size_t cap) {
    const unsigned char *u = (const unsigned char *)s;
    size_t n = strlen(s), i = 0, o = 0;
    while (i < n && o + 1 < cap) {
        size_t k = (u[i] < 0x20 || u[i] == 0x7F) ? 0 : utf8_seq(u + i, n - i);
        if (!k) { dst[o++] = '?'; i++; continue; }
        if (o + k >= cap) break;
        memcpy(dst + o, s + i, k);
        o += k;
        i += k;
    }
    dst[o] = '\0';
}

json_t *admin_json_text(const char *s, size_t len) {
    if (utf8_valid_allow_ctl(s, len)) return json_stringn_nocheck(s, len);
    char *copy = saga_malloc(len + 1);
    if (!copy) return NULL;
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, o = 0;
    while (i < len) {
        size_t k = utf8_seq(u + i, len - i);
        if (!k) { copy[o++] = '?'; i++; continue; }
        memcpy(copy + o, s + i, k);
        o += k;
        i += k;
    }
    json_t *v = json_stringn_nocheck(copy, o);
    saga_free(copy);
    return v;
}

int admin_json_response(admin_response_t *res, unsigned status, const json_t *doc) {
    res->status = status;
    res->body = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!res->body) return SAGA_ENOMEM;
    res->body_len = strlen(res->body);
    return 0;
}

static int error_v(admin_response_t *res, admin_error_t err, const char *param, const char *fmt, va_list ap) {
    char raw[MAX_MESSAGE * 2], msg[MAX_MESSAGE], pname[128];
    vsnprintf(raw, sizeof raw, fmt, ap);
    sanitize(raw, msg, sizeof msg);

    res->status = error_table[err].status;
    res->body = NULL;
    res->body_len = 0;
    json_t *doc = json_pack("{s:{s:s,s:s}}", "error", "code", error_table[err].code, "message", msg);
    if (doc && param) {
        sanitize(param, pname, sizeof pname);
        if (json_object_set_new(json_object_get(doc, "error"), "parameter", json_string(pname)) != 0) {
            json_decref(doc);
            doc = NULL;
        }
    }
    if (!doc) return SAGA_ENOMEM;
    res->body = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(doc);
    if (!res->body) return SAGA_ENOMEM;
    res->body_len = strlen(res->body);
    return 0;
}

int admin_error(admin_response_t *res, admin_error_t err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = error_v(res, err, NULL, fmt, ap);
    va_end(ap);
    return rc;
}

int admin_param_error(admin_response_t *res, const char *param, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = error_v(res, ADMIN_ERR_BAD_REQUEST, param, fmt, ap);
    va_end(ap);
    return rc;
}

/* ---- paths ---- */

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

long admin_percent_decode(const char *src, size_t len, char *dst) {
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] == '%') {
            if (i + 2 >= len) return -1;
            int hi = hexval(src[i + 1]), lo = hexval(src[i + 2]);
            if (hi < 0 || lo < 0) return -1;
            char c = (char)(hi * 16 + lo);
            if (c == '\0') return -1;
            dst[o++] = c;
            i += 2;
        } else if (src[i] == '\0') {
            return -1;
        } else {
            dst[o++] = src[i];
        }
    }
    dst[o] = '\0';
    return (long)o;
}

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

const char *admin_query_get(const admin_query_t *q, const char *key) {
    for (size_t i = 0; q && i < q->count; i++)
        if (strcmp(q->key[i], key) == 0) return q->value[i][0] ? q->value[i] : NULL;
    return NULL;
}

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
            while (accepted[k] && strcmp(accepted[k], key) != 0) k++;
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

/* ---- times ---- */

static int digits(const char *s, int n, int *out) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

int admin_parse_time(const char *s, int64_t *ms_out) {
    int y, mo, d, h, mi, sec;
    if (strlen(s) < 20 || digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) || s[7] != '-' ||
        digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't') || digits(s + 11, 2, &h) || s[13] != ':' ||
        digits(s + 14, 2, &mi) || s[16] != ':' || digits(s + 17, 2, &sec))
        return -1;
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || sec > 60) return -1;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo == 2 && d == 29 && !leap) return -1;
    const char *p = s + 19;
    int64_t frac = 0;
    if (*p == '.') {
        int nd = 0;
        for (p++; *p >= '0' && *p <= '9'; p++, nd++)
            if (nd < 3) frac = frac * 10 + (*p - '0');
        if (nd == 0 || nd > 9) return -1;
        for (; nd < 3; nd++) frac *= 10;
    }
    int offset_min = 0;
    if ((p[0] == 'Z' || p[0] == 'z') && p[1] == '\0') {
        offset_min = 0;
    } else if ((p[0] == '+' || p[0] == '-') && strlen(p) == 6 && p[3] == ':') {
        int oh, om;
        if (digits(p + 1, 2, &oh) || digits(p + 4, 2, &om) || oh > 23 || om > 59) return -1;
        offset_min = (oh * 60 + om) * (p[0] == '-' ? -1 : 1);
    } else {
        return -1;
    }
    /* days from civil (Howard Hinnant's algorithm) */
    int yy = mo <= 2 ? y - 1 : y;
    int era = yy / 400;
    int yoe = yy - era * 400;
    int doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    int64_t days = (int64_t)era * 146097 + doe - 719468;
    int64_t secs = days * 86400 + h * 3600 + mi * 60 + (sec == 60 ? 59 : sec) - (int64_t)offset_min * 60;
    *ms_out = secs * 1000 + frac;
    return 0;
}

int admin_route(admin_ctx_t *ctx, const admin_request_t *req, admin_response_t *res) {
    memset(res, 0, sizeof *res);
    const char *method = req->method ? req->method : "";
    path_t p;
    int rc = split_path(req->path, &p);
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
        if (rc == 0 && !res->body && found->query) rc = parse_query(req->query, found->query, &q, res);
        if (rc == 0 && !res->body) rc = found->handler(ctx, req, &params, &q, res);
        saga_free(q.buf);
    }
    saga_free(p.buf);
    return rc;
}
