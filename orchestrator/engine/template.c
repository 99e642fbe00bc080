/* Payload templates (see template.h and docs/DEFINITIONS.md).
 *
 * Grammar of a string, read left to right:
 *   "$${"          -> the literal text "${"
 *   "${" EXPR "}"  -> the value at EXPR, a dot-separated path into ctx
 *                     (segments may be array indexes: items.0.sku)
 *   "${" EXPR ":-" JSON "}"
 *                  -> the same, or the JSON literal JSON (null, true, 0,
 *                     "text", [], {}) when EXPR has no value (absent or null)
 *   anything else  -> itself
 * A string that is exactly one "${EXPR}" renders to the value with its
 * JSON type; otherwise every template is interpolated into the string. */
#include "template.h"

#include "saga_alloc.h"
#include "saga_json.h"
#include "saga_error.h"
#include "saga_json_parse.h"
#include "saga_utf8.h"

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

/* One "${...}" found in a string: the path, and the default after ":-"
 * when there is one (a JSON text, parsed when it is used). */
typedef struct {
    const char *path;
    size_t path_len;
    const char *dflt; /* NULL: no default */
    size_t dflt_len;
} tref_t;

/* Position of the "}" closing the template that starts at s[i] == '$',
 * s[i+1] == '{', with its parts in *r; or -1 (unterminated). The path ends
 * at the first ":-" or "}"; after ":-" the default is a JSON text, so its
 * own braces, brackets and strings (with escapes) are skipped over: the
 * template closes at the first "}" outside them. */
static long close_of(const char *s, size_t len, size_t i, tref_t *r) {
    size_t j = i + 2;
    r->path = s + j;
    r->dflt = NULL;
    r->dflt_len = 0;
    for (; j < len; j++) {
        if (s[j] == '}') {
            r->path_len = j - i - 2;
            return (long)j;
        }
        if (s[j] == ':' && j + 1 < len && s[j + 1] == '-') break;
    }
    if (j >= len) return -1;
    r->path_len = j - i - 2;
    j += 2;
    r->dflt = s + j;
    int depth = 0;
    bool in_str = false;
    for (; j < len; j++) {
        char c = s[j];
        if (in_str) {
            if (c == '\\') j++;
            else if (c == '"') in_str = false;
        } else if (c == '"') {
            in_str = true;
        } else if (c == '{' || c == '[') {
            depth++;
        } else if (c == ']') {
            depth--;
        } else if (c == '}') {
            if (depth == 0) {
                r->dflt_len = (size_t)(s + j - r->dflt);
                return (long)j;
            }
            depth--;
        }
    }
    return -1;
}

/* The default's value (new reference), or NULL when it is not one JSON
 * value (any type: null, true, 0, "text", [], {}); *oom tells an
 * allocation failure from a bad default. jansson does not always report a
 * failed allocation as one (one inside its lexer reads as a syntax error),
 * so a syntax error is confirmed by a second parse before it is believed. */
static json_t *parse_default(const tref_t *r, bool *oom) {
    *oom = false;
    json_t *v = saga_json_parse_fast(r->dflt, r->dflt_len);
    for (int attempt = 0; !v && attempt < 2; attempt++) {
        json_error_t jerr;
        memset(&jerr, 0, sizeof jerr); /* jansson leaves it unset when its first allocation fails */
        v = json_loadb(r->dflt, r->dflt_len, JSON_DECODE_ANY, &jerr);
        if (!v && (json_error_code(&jerr) == json_error_out_of_memory || jerr.text[0] == '\0')) {
            *oom = true;
            return NULL;
        }
    }
    return v;
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
    room = saga_utf8_prefix_n(expr, n, room);
    snprintf(err, errlen, "%s%.*s...%s", fmt_prefix, (int)room, expr, suffix);
}

/* ---- rendering ---- */

/* The value of the template r (new reference): the value at its path, or
 * its default when the path has no value (absent or null); NULL with err
 * when neither. */
static json_t *resolve(const tref_t *r, const json_t *ctx, char *err, size_t errlen) {
    json_t *v = lookup(ctx, r->path, r->path_len);
    if (!v && !r->dflt) {
        set_err(err, errlen, "${", r->path, r->path_len, "}: no such value");
        return NULL;
    }
    /* A default is parsed even when the value is there: a template with a
     * bad default fails whatever the context, as the scan says (the loader
     * refuses it; this keeps render and scan in agreement). */
    json_t *d = NULL;
    if (r->dflt) {
        bool oom;
        d = parse_default(r, &oom);
        if (!d) {
            if (oom) set_err(err, errlen, "${", r->path, r->path_len, "}: out of memory");
            else set_err(err, errlen, "${", r->path, r->path_len + 2 + r->dflt_len, "}: the default is not a JSON value");
            return NULL;
        }
        if (!v || json_is_null(v)) return d;
        json_decref(d);
    }
    json_t *copy = json_deep_copy(v);
    if (!copy) set_err(err, errlen, "${", r->path, r->path_len, "}: out of memory");
    return copy;
}

static json_t *render_string(const char *s, size_t len, const json_t *ctx, char *err, size_t errlen) {
    tref_t r;
    /* Exactly one template: keep the value's type. */
    if (len >= 3 && s[0] == '$' && s[1] == '{' && close_of(s, len, 0, &r) == (long)len - 1)
        return resolve(&r, ctx, err, errlen);
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
            long close = close_of(s, len, i, &r);
            if (close < 0) {
                set_err(err, errlen, "", s + i, len - i, ": unterminated '${'");
                saga_free(b.data);
                return NULL;
            }
            tbuf_put(&b, s + lit, i - lit);
            json_t *v = resolve(&r, ctx, err, errlen);
            if (!v) {
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
            json_decref(v);
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

typedef struct {
    int (*visit)(const char *, void *);
    int (*visit_ref)(const saga_template_ref_t *, void *);
    void *user;
} scan_t;

static int scan_string(const char *s, size_t len, const scan_t *sc, char *err, size_t errlen) {
    size_t i = 0;
    while (i < len) {
        if (s[i] == '$' && i + 2 < len && s[i + 1] == '$' && s[i + 2] == '{') {
            i += 3;
        } else if (s[i] == '$' && i + 1 < len && s[i + 1] == '{') {
            tref_t r;
            long close = close_of(s, len, i, &r);
            if (close < 0) {
                set_err(err, errlen, "", s + i, len - i, ": unterminated '${'");
                return SAGA_EPARSE;
            }
            if (r.dflt) {
                bool oom;
                json_t *d = parse_default(&r, &oom);
                if (!d && oom) {
                    set_err(err, errlen, "", "", 0, "out of memory");
                    return SAGA_ENOMEM;
                }
                if (!d) {
                    set_err(err, errlen, "${", r.path, r.path_len + 2 + r.dflt_len,
                            "}: the default is not a JSON value (null, true, 0, \"text\", [], {})");
                    return SAGA_EPARSE;
                }
                json_decref(d);
            }
            size_t n = r.path_len;
            char stackbuf[256];
            char *expr = n < sizeof stackbuf ? stackbuf : saga_malloc(n + 1);
            if (!expr) {
                set_err(err, errlen, "", "", 0, "out of memory");
                return SAGA_ENOMEM;
            }
            memcpy(expr, r.path, n);
            expr[n] = '\0';
            int rc = 0;
            if (sc->visit) rc = sc->visit(expr, sc->user);
            if (!rc && sc->visit_ref) {
                saga_template_ref_t ref = {expr, r.dflt != NULL};
                rc = sc->visit_ref(&ref, sc->user);
            }
            if (expr != stackbuf) saga_free(expr);
            if (rc != 0) return rc;
            i = (size_t)close + 1;
        } else {
            i++;
        }
    }
    return 0;
}

static int scan_tree(const json_t *tmpl, const scan_t *sc, char *err, size_t errlen) {
    if (json_is_string(tmpl))
        return scan_string(json_string_value(tmpl), json_string_length(tmpl), sc, err, errlen);
    if (json_is_object(tmpl)) {
        const char *key;
        json_t *val;
        json_object_foreach((json_t *)tmpl, key, val) {
            int rc = scan_tree(val, sc, err, errlen);
            if (rc) return rc;
        }
    } else if (json_is_array(tmpl)) {
        size_t i;
        json_t *val;
        json_array_foreach(tmpl, i, val) {
            int rc = scan_tree(val, sc, err, errlen);
            if (rc) return rc;
        }
    }
    return 0;
}

int saga_template_scan(const json_t *tmpl, int (*visit)(const char *expr, void *user), void *user,
                       char *err, size_t errlen) {
    scan_t sc = {visit, NULL, user};
    return scan_tree(tmpl, &sc, err, errlen);
}

int saga_template_scan_refs(const json_t *tmpl, int (*visit)(const saga_template_ref_t *ref, void *user),
                            void *user, char *err, size_t errlen) {
    scan_t sc = {NULL, visit, user};
    return scan_tree(tmpl, &sc, err, errlen);
}
