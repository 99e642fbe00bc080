/* Routing of admin requests: a table of (method, path pattern, handler).
 * Patterns are literal segments and {param} segments; a path that matches
 * a pattern under another method answers 405 with an Allow header. Path
 * segments are percent-decoded one by one here (MHD is told not to decode,
 * so an id may contain an encoded '/'). */
#include "admin_route.h"

#include "saga_alloc.h"
#include "saga_error.h"

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

typedef int (*route_handler_fn)(admin_ctx_t *ctx, const admin_request_t *req,
                                const route_params_t *params, admin_response_t *res);

typedef struct {
    const char *method;
    const char *pattern; /* "/v1/sagas/{id}" */
    const char *allow;   /* every method registered for this pattern */
    route_handler_fn handler;
} route_t;

static int h_health(admin_ctx_t *ctx, const admin_request_t *req, const route_params_t *p,
                    admin_response_t *res) {
    return admin_get_health(ctx, res);
}

static int h_saga(admin_ctx_t *ctx, const admin_request_t *req, const route_params_t *p,
                  admin_response_t *res) {
    return admin_get_saga(ctx, p->value[0], res);
}

static int h_post_saga(admin_ctx_t *ctx, const admin_request_t *req, const route_params_t *p,
                       admin_response_t *res) {
    return admin_post_saga(ctx, req, res);
}

static int h_abort(admin_ctx_t *ctx, const admin_request_t *req, const route_params_t *p,
                   admin_response_t *res) {
    return admin_post_abort(ctx, p->value[0], req, res);
}

static int h_retry(admin_ctx_t *ctx, const admin_request_t *req, const route_params_t *p,
                   admin_response_t *res) {
    return admin_post_retry(ctx, p->value[0], req, res);
}

/* New endpoints go here (list, definitions, stats). */
static const route_t routes[] = {
    {"GET", "/healthz", "GET, HEAD", h_health},
    {"GET", "/v1/sagas/{id}", "GET, HEAD", h_saga},
    {"POST", "/v1/sagas", "POST", h_post_saga},
    {"POST", "/v1/sagas/{id}/abort", "POST", h_abort},
    {"POST", "/v1/sagas/{id}/retry", "POST", h_retry},
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

int admin_error(admin_response_t *res, admin_error_t err, const char *fmt, ...) {
    char raw[MAX_MESSAGE * 2], msg[MAX_MESSAGE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    sanitize(raw, msg, sizeof msg);

    res->status = error_table[err].status;
    res->body = NULL;
    res->body_len = 0;
    json_t *doc = json_pack("{s:{s:s,s:s}}", "error", "code", error_table[err].code, "message", msg);
    if (!doc) return SAGA_ENOMEM;
    res->body = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(doc);
    if (!res->body) return SAGA_ENOMEM;
    res->body_len = strlen(res->body);
    return 0;
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
        return admin_error(res, ADMIN_ERR_NOT_FOUND, "no endpoint %s %.200s", method,
                           req->path ? req->path : "");
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
        rc = admin_error(res, ADMIN_ERR_METHOD_NOT_ALLOWED, "method %.20s not allowed on %.200s (allowed: %s)",
                         method, req->path, path_only->allow);
        res->allow = path_only->allow;
    } else if (!found) {
        rc = admin_error(res, ADMIN_ERR_NOT_FOUND, "no endpoint %.20s %.200s", method, req->path);
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
        if (rc == 0 && !res->body) rc = found->handler(ctx, req, &params, res);
    }
    saga_free(p.buf);
    return rc;
}
