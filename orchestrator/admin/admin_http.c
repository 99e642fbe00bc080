/* Helpers shared by the admin handlers (admin_http.h): JSON error bodies,
 * UTF-8 checks and repair, percent-decoding, query values, RFC 3339 times
 * and SQLite columns. */
#include "admin_http.h"

#include "saga_alloc.h"
#include "saga_clock.h"
#include "saga_error.h"
#include "saga_log.h"
#include "saga_utf8.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define COMPONENT "admin"
#define MAX_MESSAGE 512

/* ---- errors ---- */

static const struct {
    unsigned status;
    const char *code;
} error_table[] = {
#define ADMIN_ERR_ROW(name, status, code) {status, code},
    ADMIN_ERROR_MAP(ADMIN_ERR_ROW)
#undef ADMIN_ERR_ROW
};

/* Valid UTF-8, control characters allowed (JSON escapes them). */
static int utf8_valid_allow_ctl(const char *s, size_t len) {
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        size_t k = saga_utf8_seq(u + i, len - i);
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
        size_t k = saga_utf8_seq(u + i, len - i);
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
        size_t k = (u[i] < 0x20 || u[i] == 0x7F) ? 0 : saga_utf8_seq(u + i, n - i);
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
        size_t k = saga_utf8_seq(u + i, len - i);
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

static int error_v(admin_response_t *res, admin_error_t err, const char *param, int shard, const char *fmt,
                   va_list ap) {
    char raw[MAX_MESSAGE * 2], msg[MAX_MESSAGE], pname[128];
    vsnprintf(raw, sizeof raw, fmt, ap);
    saga_utf8_trim_cut(raw); /* a cut character would become '?' */
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
    if (doc && shard >= 0 && json_object_set_new(json_object_get(doc, "error"), "shard", json_integer(shard)) != 0) {
        json_decref(doc);
        doc = NULL;
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
    int rc = error_v(res, err, NULL, -1, fmt, ap);
    va_end(ap);
    return rc;
}

int admin_shard_error(admin_response_t *res, admin_error_t err, int shard, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = error_v(res, err, NULL, shard, fmt, ap);
    va_end(ap);
    return rc;
}

int admin_param_error(admin_response_t *res, const char *param, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = error_v(res, ADMIN_ERR_BAD_REQUEST, param, -1, fmt, ap);
    va_end(ap);
    return rc;
}

/* ---- paths and queries ---- */

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

const char *admin_query_get(const admin_query_t *q, const char *key) {
    for (size_t i = 0; q && i < q->count; i++)
        if (strcmp(q->key[i], key) == 0) return q->value[i][0] ? q->value[i] : NULL;
    return NULL;
}

/* ---- times ---- */

int admin_parse_time(const char *s, int64_t *ms_out) { return saga_parse_rfc3339(s, ms_out) == 0 ? 0 : -1; }

/* ---- SQLite ---- */

json_t *admin_col_text(sqlite3_stmt *st, int i) {
    const unsigned char *t = sqlite3_column_text(st, i);
    if (!t) return json_null();
    return admin_json_text((const char *)t, (size_t)sqlite3_column_bytes(st, i));
}

json_t *admin_col_time(sqlite3_stmt *st, int i) {
    if (sqlite3_column_type(st, i) == SQLITE_NULL) return json_null();
    char buf[40];
    saga_format_time((int64_t)sqlite3_column_int64(st, i), buf, sizeof buf);
    return json_string(buf);
}

json_t *admin_col_json(sqlite3_stmt *st, int i, const char *what) {
    const char *t = (const char *)sqlite3_column_text(st, i);
    if (!t) return json_null();
    size_t n = (size_t)sqlite3_column_bytes(st, i);
    json_error_t jerr = {0};
    memset(&jerr, 0, sizeof jerr);
    /* ALLOW_NUL: the loop takes "\u0000" inside strings (saga_json_parse),
     * so inputs, outputs and history details may hold it. */
    json_t *v = json_loadb(t, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (v) return v;
    /* jansson leaves the error unset when an early allocation fails, and
     * reports a failed allocation inside the lexer as a syntax error: only
     * a second failure means the text really is not JSON. */
    if (json_error_code(&jerr) == json_error_out_of_memory || !jerr.text[0]) return NULL;
    v = json_loadb(t, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (v) return v;
    LOG_WARN(COMPONENT, "column %s holds invalid JSON (%s); returned as a string", what, jerr.text);
    return admin_json_text(t, n);
}
