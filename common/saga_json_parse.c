/* A parser for the common case of the messages sagad reads: ASCII JSON with
 * integers. jansson's json_loadb reads a character at a time through a
 * stream with look-ahead and was the second largest cost of a saga
 * transition (docs/BENCHMARKS.md). Anything this parser does not handle
 * exactly like jansson (reals, non-ASCII, big integers, errors of any kind)
 * makes it give up, and saga_json_parse asks jansson instead: the values and
 * the error messages are always jansson's (tests/unit/test_json.c). */
#include "saga_json_parse.h"

#include <stdlib.h>
#include <string.h>

#include "saga_alloc.h"

#define FAST_MAX_DEPTH 1024 /* below jansson's 2048: deeper input is jansson's to judge */

typedef struct {
    const char *p, *end;
    char *scratch; /* decoded strings with escapes */
    size_t scratch_cap;
} fast_t;

static void skip_blanks(fast_t *f) {
    while (f->p < f->end && (*f->p == ' ' || *f->p == '\t' || *f->p == '\n' || *f->p == '\r')) f->p++;
}

static int hex4(const char *p) {
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= c - '0';
        else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
        else return -1;
    }
    return v;
}

/* A string at f->p (after the opening quote). *out points to its bytes
 * (into the input, or into scratch when it had escapes). */
static int fast_string(fast_t *f, const char **out, size_t *len) {
    const char *s = f->p;
    while (f->p < f->end && *f->p != '"' && *f->p != '\\') {
        unsigned char c = (unsigned char)*f->p;
        if (c < 0x20 || c >= 0x80) return -1;
        f->p++;
    }
    if (f->p >= f->end) return -1;
    if (*f->p == '"') {
        *out = s;
        *len = (size_t)(f->p++ - s);
        return 0;
    }
    /* Escapes: decode into scratch (the decoded text is never longer). */
    size_t need = (size_t)(f->end - s) + 1;
    if (need > f->scratch_cap) {
        char *nb = saga_realloc(f->scratch, need);
        if (!nb) return -1;
        f->scratch = nb;
        f->scratch_cap = need;
    }
    size_t n = (size_t)(f->p - s);
    memcpy(f->scratch, s, n);
    while (f->p < f->end && *f->p != '"') {
        unsigned char c = (unsigned char)*f->p;
        if (c < 0x20 || c >= 0x80) return -1;
        if (c != '\\') {
            f->scratch[n++] = (char)c;
            f->p++;
            continue;
        }
        if (f->end - f->p < 2) return -1;
        char e = f->p[1];
        f->p += 2;
        switch (e) {
        case '"': case '\\': case '/': f->scratch[n++] = e; break;
        case 'b': f->scratch[n++] = '\b'; break;
        case 'f': f->scratch[n++] = '\f'; break;
        case 'n': f->scratch[n++] = '\n'; break;
        case 'r': f->scratch[n++] = '\r'; break;
        case 't': f->scratch[n++] = '\t'; break;
        case 'u': {
            if (f->end - f->p < 4) return -1;
            int cp = hex4(f->p);
            if (cp < 0 || cp >= 0x80) return -1; /* beyond ASCII: jansson's UTF-8 rules */
            f->scratch[n++] = (char)cp;
            f->p += 4;
            break;
        }
        default: return -1;
        }
    }
    if (f->p >= f->end) return -1;
    f->p++;
    *out = f->scratch;
    *len = n;
    return 0;
}

static json_t *fast_value(fast_t *f, int depth);

static json_t *fast_object(fast_t *f, int depth) {
    json_t *o = json_object();
    if (!o) return NULL;
    skip_blanks(f);
    if (f->p < f->end && *f->p == '}') {
        f->p++;
        return o;
    }
    for (;;) {
        skip_blanks(f);
        const char *k;
        size_t klen;
        if (f->p >= f->end || *f->p++ != '"' || fast_string(f, &k, &klen)) break;
        if (memchr(k, '\0', klen)) break; /* jansson refuses NUL in keys */
        char key[256];
        if (klen >= sizeof key) break;
        memcpy(key, k, klen);
        key[klen] = '\0';
        if (json_object_get(o, key)) break; /* duplicate: jansson's error */
        skip_blanks(f);
        if (f->p >= f->end || *f->p++ != ':') break;
        json_t *v = fast_value(f, depth + 1);
        if (!v || json_object_set_new_nocheck(o, key, v)) break;
        skip_blanks(f);
        if (f->p < f->end && *f->p == ',') {
            f->p++;
            continue;
        }
        if (f->p < f->end && *f->p == '}') {
            f->p++;
            return o;
        }
        break;
    }
    json_decref(o);
    return NULL;
}

static json_t *fast_array(fast_t *f, int depth) {
    json_t *a = json_array();
    if (!a) return NULL;
    skip_blanks(f);
    if (f->p < f->end && *f->p == ']') {
        f->p++;
        return a;
    }
    for (;;) {
        json_t *v = fast_value(f, depth + 1);
        if (!v || json_array_append_new(a, v)) break;
        skip_blanks(f);
        if (f->p < f->end && *f->p == ',') {
            f->p++;
            continue;
        }
        if (f->p < f->end && *f->p == ']') {
            f->p++;
            return a;
        }
        break;
    }
    json_decref(a);
    return NULL;
}

static json_t *fast_integer(fast_t *f) {
    const char *s = f->p;
    if (f->p < f->end && *f->p == '-') f->p++;
    const char *digits = f->p;
    while (f->p < f->end && *f->p >= '0' && *f->p <= '9') f->p++;
    size_t n = (size_t)(f->p - digits);
    if (n == 0 || n > 18 || (n > 1 && *digits == '0')) return NULL; /* big ones: jansson's range check */
    if (f->p < f->end && (*f->p == '.' || *f->p == 'e' || *f->p == 'E')) return NULL; /* a real */
    json_int_t v = 0;
    for (const char *d = digits; d < f->p; d++) v = v * 10 + (*d - '0');
    return json_integer(*s == '-' ? -v : v);
}

static int literal(fast_t *f, const char *word, size_t n) {
    if ((size_t)(f->end - f->p) < n || memcmp(f->p, word, n)) return -1;
    f->p += n;
    return 0;
}

static json_t *fast_value(fast_t *f, int depth) {
    if (depth > FAST_MAX_DEPTH) return NULL;
    skip_blanks(f);
    if (f->p >= f->end) return NULL;
    switch (*f->p) {
    case '{': f->p++; return fast_object(f, depth);
    case '[': f->p++; return fast_array(f, depth);
    case '"': {
        f->p++;
        const char *s;
        size_t n;
        return fast_string(f, &s, &n) ? NULL : json_stringn_nocheck(s, n);
    }
    case 't': return literal(f, "true", 4) ? NULL : json_true();
    case 'f': return literal(f, "false", 5) ? NULL : json_false();
    case 'n': return literal(f, "null", 4) ? NULL : json_null();
    default: return fast_integer(f);
    }
}

json_t *saga_json_parse_fast(const char *buf, size_t len) {
    fast_t f = {.p = buf, .end = buf + len};
    json_t *v = fast_value(&f, 0);
    skip_blanks(&f);
    if (v && f.p != f.end) { /* trailing bytes: jansson's error */
        json_decref(v);
        v = NULL;
    }
    saga_free(f.scratch);
    return v;
}
