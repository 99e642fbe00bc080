/* Payload templates (see template.h and docs/DEFINITIONS.md).
 *
 * Grammar of a string, read left to right:
 *   "$${"          -> the literal text "${"
 *   "${" EXPR "}"  -> the value at EXPR, a dot-separated path into ctx
 *                     (segments may be array indexes: items.0.sku)
 *   anything else  -> itself
 * A string that is exactly one "${EXPR}" renders to the value with its
 * JSON type; otherwise every template is interpolated into the string. */
#include "template.h"

#include "saga_alloc.h"
#include "saga_json.h"
#include "saga_error.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a small growable string buffer ---- */

typedef struct {
    char *data;
    size_t len, cap;
    bool oom;
} tbuf_t;

static void tbuf_put(tbuf_t *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (b->len + n + 1 > cap) cap *= 2;
        char *p = saga_realloc(b->data, cap);
        if (!p) { b->oom = true; return; }
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

/* ---- path lookup ---- */

static bool is_index(const char *seg, size_t n, size_t *out) {
    if (n == 0 || n > 9) return false;
    size_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (seg[i] < '0' || seg[i] > '9') return false;
        v = v * 10 + (size_t)(seg[i] - '0');
    }
    if (n > 1 && seg[0] == '0') return false; /* no leading zeros */
    *out = v;
    return true;
}

/* Borrowed value at the dot path expr[0..n) inside ctx, or NULL. */
static json_t *lookup(const json_t *ctx, const char *expr, size_t n) {
    json_t *cur = (json_t *)ctx;
    size_t i = 0;
    while (cur) {
        size_t start = i;
        while (i < n && expr[i] != '.') i++;
        size_t seglen = i - start;
        const char *seg = expr + start;
        if (seglen == 0) return NULL;
        size_t idx;
        if (json_is_object(cur)) {
            cur = json_object_getn(cur, seg, seglen);
        } else if (json_is_array(cur) && is_index(seg, seglen, &idx)) {
            cur = json_array_get(cur, idx);
        } else {
            return NULL;
        }
        if (i >= n) return cur;
        i++; /* skip '.' */
        if (i >= n) return NULL; /* trailing dot */
    }
    return NULL;
}

/* Position of the "}" closing the template that starts at s[i] == '$',
 * s[i+1] == '{'; or -1. */
static long close_of(const char *s, size_t len, size_t i) {
    for (size_t j = i + 2; j < len; j++)
        if (s[j] == '}') return (long)j;
    return -1;
}

/* err = prefix + expr[0..n) + suffix. When that does not fit, the
 * expression is cut (at a UTF-8 character boundary, followed by "...") so
 * the reason in the suffix is never lost and the message stays UTF-8. */
static void set_err(char *err, size_t errlen, const char *fmt_prefix, const char *expr, size_t n,
                    const char *suffix) {
    if (!err || !errlen) return;
    size_t fixed = strlen(fmt_prefix) + strlen(suffix);
    if (fixed + n < errlen) {
        snprintf(err, errlen, "%s%.*s%s", fmt_prefix, (int)n, expr, suffix);
        return;
    }
    size_t room = errlen > fixed + 4 ? errlen - fixed - 4 : 0; /* "..." and the NUL */
    while (room > 0 && ((unsigned char)expr[room] & 0xC0) == 0x80) room--;
    snprintf(err, errlen, "%s%.*s...%s", fmt_prefix, (int)room, expr, suffix);
}

/* ---- rendering ---- */

static json_t *render_string(const char *s, size_t len, const json_t *ctx, char *err, size_t errlen) {
    /* Exactly one template: keep the value's type. */
    if (len >= 3 && s[0] == '$' && s[1] == '{' && close_of(s, len, 0) == (long)len - 1) {
        const char *expr = s + 2;
        size_t n = len - 3;
        json_t *v = lookup(ctx, expr, n);
        if (!v) {
            set_err(err, errlen, "${", expr, n, "}: no such value");
            return NULL;
        }
        json_t *copy = json_deep_copy(v);
        if (!copy) set_err(err, errlen, "${", expr, n, "}: out of memory");
        return copy;
    }
    tbuf_t b = {0};
    tbuf_put(&b, "", 0);
    size_t i = 0, lit = 0; /* s[lit..i) is pending literal text */
    while (i < len) {
        if (s[i] == '$' && i + 2 < len && s[i + 1] == '$' && s[i + 2] == '{') {
            tbuf_put(&b, s + lit, i - lit);
            tbuf_put(&b, "${", 2);
            i += 3;
            lit = i;
        } else if (s[i] == '$' && i + 1 < len && s[i + 1] == '{') {
            long close = close_of(s, len, i);
            if (close < 0) {
                set_err(err, errlen, "", s + i, len - i, ": unterminated '${'");
                saga_free(b.data);
                return NULL;
            }
            tbuf_put(&b, s + lit, i - lit);
            const char *expr = s + i + 2;
            size_t n = (size_t)close - i - 2;
            json_t *v = lookup(ctx, expr, n);
            if (!v) {
                set_err(err, errlen, "${", expr, n, "}: no such value");
                saga_free(b.data);
                return NULL;
            }
            if (json_is_string(v)) {
                tbuf_put(&b, json_string_value(v), json_string_length(v));
            } else {
                char *dump = saga_json_dump(v); /* numbers in their shortest form */
                if (!dump) b.oom = true;
                else tbuf_put(&b, dump, strlen(dump));
                saga_free(dump);
            }
            i = (size_t)close + 1;
            lit = i;
        } else {
            i++;
        }
    }
    tbuf_put(&b, s + lit, len - lit);
    json_t *out = b.oom ? NULL : json_stringn(b.data, b.len);
    saga_free(b.data);
    if (!out) set_err(err, errlen, "", "", 0, "out of memory");
    return out;
}

json_t *saga_template_render(const json_t *tmpl, const json_t *ctx, char *err, size_t errlen) {
    if (!tmpl) {
        set_err(err, errlen, "", "", 0, "no template");
        return NULL;
    }
    if (json_is_string(tmpl))
        return render_string(json_string_value(tmpl), json_string_length(tmpl), ctx, err, errlen);
    if (json_is_object(tmpl)) {
        json_t *out = json_object();
        if (!out) { set_err(err, errlen, "", "", 0, "out of memory"); return NULL; }
        const char *key;
        json_t *val;
        json_object_foreach((json_t *)tmpl, key, val) {
            json_t *r = saga_template_render(val, ctx, err, errlen);
            if (!r || json_object_set_new(out, key, r) != 0) {
                if (r) set_err(err, errlen, "", "", 0, "out of memory");
                json_decref(out);
                return NULL;
            }
        }
        return out;
    }
    if (json_is_array(tmpl)) {
        json_t *out = json_array();
        if (!out) { set_err(err, errlen, "", "", 0, "out of memory"); return NULL; }
        size_t i;
        json_t *val;
        json_array_foreach(tmpl, i, val) {
            json_t *r = saga_template_render(val, ctx, err, errlen);
            if (!r || json_array_append_new(out, r) != 0) {
                if (r) set_err(err, errlen, "", "", 0, "out of memory");
                json_decref(out);
                return NULL;
            }
        }
        return out;
    }
    json_t *copy = json_deep_copy(tmpl);
    if (!copy) set_err(err, errlen, "", "", 0, "out of memory");
    return copy;
}

/* ---- scanning ---- */

static int scan_string(const char *s, size_t len, int (*visit)(const char *, void *), void *user,
                       char *err, size_t errlen) {
    size_t i = 0;
    while (i < len) {
        if (s[i] == '$' && i + 2 < len && s[i + 1] == '$' && s[i + 2] == '{') {
            i += 3;
        } else if (s[i] == '$' && i + 1 < len && s[i + 1] == '{') {
            long close = close_of(s, len, i);
            if (close < 0) {
                set_err(err, errlen, "", s + i, len - i, ": unterminated '${'");
                return SAGA_EPARSE;
            }
            size_t n = (size_t)close - i - 2;
            char stackbuf[256];
            char *expr = n < sizeof stackbuf ? stackbuf : saga_malloc(n + 1);
            if (!expr) {
                set_err(err, errlen, "", "", 0, "out of memory");
                return SAGA_ENOMEM;
            }
            memcpy(expr, s + i + 2, n);
            expr[n] = '\0';
            int rc = visit ? visit(expr, user) : 0;
            if (expr != stackbuf) saga_free(expr);
            if (rc != 0) return rc;
            i = (size_t)close + 1;
        } else {
            i++;
        }
    }
    return 0;
}

int saga_template_scan(const json_t *tmpl, int (*visit)(const char *expr, void *user), void *user,
                       char *err, size_t errlen) {
    if (json_is_string(tmpl))
        return scan_string(json_string_value(tmpl), json_string_length(tmpl), visit, user, err, errlen);
    if (json_is_object(tmpl)) {
        const char *key;
        json_t *val;
        json_object_foreach((json_t *)tmpl, key, val) {
            int rc = saga_template_scan(val, visit, user, err, errlen);
            if (rc) return rc;
        }
    } else if (json_is_array(tmpl)) {
        size_t i;
        json_t *val;
        json_array_foreach(tmpl, i, val) {
            int rc = saga_template_scan(val, visit, user, err, errlen);
            if (rc) return rc;
        }
    }
    return 0;
}
