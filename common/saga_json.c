/* jansson helpers and the compact JSON writer with its fast paths (saga_json.h). */
#include "saga_json.h"
#include "saga_utf8.h"
#include "saga_error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "saga_alloc.h"
#include "saga_json_parse.h"

json_t *saga_json_parse(const char *buf, size_t len, char *err, size_t errlen) {
    json_t *fast = saga_json_parse_fast(buf, len);
    if (fast) return fast;
    json_error_t jerr = {0}; /* jansson leaves it unset when its first allocation fails */
    json_t *v = json_loadb(buf, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (!v && err) {
        snprintf(err, errlen, "line %d, column %d: %s", jerr.line, jerr.column, jerr.text);
        /* jansson quotes the input near the error, cut anywhere (even inside
         * a UTF-8 character): keep the reason ASCII, as it goes into JSON
         * (a dead letter's headers, a failure reply) which refuses bad UTF-8. */
        for (char *p = err; *p; p++)
            if ((unsigned char)*p >= 0x80) *p = '?';
    }
    return v;
}

const char *saga_json_str(const json_t *obj, const char *key) {
    json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

int saga_json_int(const json_t *obj, const char *key, long long *out) {
    json_t *v = json_object_get(obj, key);
    if (!v) return SAGA_ENOTFOUND;
    if (!json_is_integer(v)) return SAGA_EINVAL;
    *out = json_integer_value(v);
    return 0;
}

/* A compact writer: jansson's json_dumps goes through a callback per
 * fragment and decodes UTF-8 per code point, which made it the largest
 * single cost of a saga transition (docs/BENCHMARKS.md). It writes what
 * json_dumps(JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER) writes,
 * byte for byte, except for reals: those keep their shortest round-trip form
 * (0.1, not jansson's %.17g 0.10000000000000001, which made a start of many
 * such numbers five times larger once re-encoded; see saga_json_format_real).
 * Invalid UTF-8 (only json_stringn_nocheck can make it) and nesting deeper
 * than DUMP_MAX_DEPTH are left to jansson (tests/unit/test_json.c and the
 * fuzz_messages target compare the two). */
/* v at precision prec, as jansson writes reals: a dot or an exponent, so
 * it reads back as a real; no '+' and no leading zeros in the exponent.
 * Returns the length, or -1 when buf (at least 32 bytes) is too small. */
static int format_real_at(double v, int prec, char *buf, size_t len) {
    int n = snprintf(buf, len, "%.*g", prec, v);
    if (n <= 0 || (size_t)n >= len) return -1;
    if (!strchr(buf, '.') && !strchr(buf, 'e')) {
        if ((size_t)n + 3 > len) return -1;
        memcpy(buf + n, ".0", 3);
        n += 2;
    }
    char *e = strchr(buf, 'e');
    if (e) {
        char *from = e + 1, *to = e + 1;
        if (*from == '+') from++;
        else if (*from == '-') to++, from++;
        while (*from == '0' && from[1]) from++;
        memmove(to, from, strlen(from) + 1);
        n = (int)strlen(buf);
    }
    return n;
}

int saga_json_format_real(double v, char *buf, size_t len) {
    if (len < 32 || v != v || v - v != 0) return -1; /* NaN, infinities: JSON has none */
    int n = 0, prec;
    /* A normal double's shortest form has at most 15 digits whenever it has
     * fewer than 16, and %.15g then finds it; a subnormal has less precision
     * (5e-324 would be 4.94065645841247e-324): try every precision. */
    int first = v != 0 && v > -2.2250738585072014e-308 && v < 2.2250738585072014e-308 ? 1 : 15;
    for (prec = first; prec <= 17; prec++) {
        n = format_real_at(v, prec, buf, len);
        if (n < 0) return -1;
        if (strtod(buf, NULL) == v) break;
    }
    /* More digits can be shorter text when they drop the exponent:
     * 7.777777777777778e16 (16 digits) against 77777777777777776.0 (17),
     * which is what jansson writes. The shortest text wins, never longer
     * than jansson's. */
    for (int p = prec + 1; strchr(buf, 'e') && p <= 17; p++) {
        char alt[40];
        int m = format_real_at(v, p, alt, sizeof alt);
        if (m > 0 && m < n && strtod(alt, NULL) == v) {
            memcpy(buf, alt, (size_t)m + 1);
            n = m;
        }
    }
    return n;
}

#define DUMP_MAX_DEPTH 2048

static int dump_reserve(saga_json_buf_t *b, size_t more) {
    if (b->len + more <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + more) cap *= 2;
    char *nb = saga_realloc(b->buf, cap);
    if (!nb) {
        b->fallback = -1;
        return -1;
    }
    b->buf = nb;
    b->cap = cap;
    return 0;
}

static void dump_raw(saga_json_buf_t *b, const char *s, size_t n) {
    if (dump_reserve(b, n)) return;
    memcpy(b->buf + b->len, s, n);
    b->len += n;
}

static void dump_string(saga_json_buf_t *b, const char *s, size_t n) {
    static const char hex[] = "0123456789ABCDEF";
    if (dump_reserve(b, n * 6 + 2)) return; /* the worst case: six bytes per input byte */
    char *o = b->buf + b->len;
    *o++ = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80) {
            size_t k = saga_utf8_seq((const unsigned char *)s + i, n - i);
            if (!k) {
                b->fallback = 1; /* invalid UTF-8: jansson refuses it (NULL) */
                return;
            }
            memcpy(o, s + i, k);
            o += k;
            i += k - 1;
            continue;
        }
        if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = (char)c;
        } else if (c < 0x20) {
            *o++ = '\\';
            switch (c) {
            case '\b': *o++ = 'b'; break;
            case '\f': *o++ = 'f'; break;
            case '\n': *o++ = 'n'; break;
            case '\r': *o++ = 'r'; break;
            case '\t': *o++ = 't'; break;
            default:
                memcpy(o, "u00", 3);
                o[3] = hex[c >> 4];
                o[4] = hex[c & 15];
                o += 5;
            }
        } else {
            *o++ = (char)c;
        }
    }
    *o++ = '"';
    b->len = (size_t)(o - b->buf);
}

/* v in decimal, as "%lld" writes it (snprintf is ten times slower), two
 * digits per division. */
static void dump_int(saga_json_buf_t *b, long long v) {
    static const char pairs[] = "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
                                "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
                                "8081828384858687888990919293949596979899";
    char num[24], *e = num + sizeof num, *p = e;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    while (u >= 100) {
        unsigned d = (unsigned)(u % 100) * 2;
        u /= 100;
        *--p = pairs[d + 1];
        *--p = pairs[d];
    }
    if (u >= 10) {
        *--p = pairs[u * 2 + 1];
        *--p = pairs[u * 2];
    } else {
        *--p = (char)('0' + u);
    }
    if (v < 0) *--p = '-';
    dump_raw(b, p, (size_t)(e - p));
}

static void dump_value(saga_json_buf_t *b, const json_t *v, int depth) {
    if (b->fallback) return;
    if (depth > DUMP_MAX_DEPTH) {
        b->fallback = 1;
        return;
    }
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *key;
        size_t key_len;
        json_t *member;
        int first = 1;
        dump_raw(b, "{", 1);
        json_object_keylen_foreach((json_t *)v, key, key_len, member) {
            if (!first) dump_raw(b, ",", 1);
            first = 0;
            dump_string(b, key, key_len);
            dump_raw(b, ":", 1);
            dump_value(b, member, depth + 1);
            if (b->fallback) return;
        }
        dump_raw(b, "}", 1);
        break;
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(v);
        dump_raw(b, "[", 1);
        for (size_t i = 0; i < n && !b->fallback; i++) {
            if (i) dump_raw(b, ",", 1);
            dump_value(b, json_array_get(v, i), depth + 1);
        }
        dump_raw(b, "]", 1);
        break;
    }
    case JSON_STRING: dump_string(b, json_string_value(v), json_string_length(v)); break;
    case JSON_INTEGER: dump_int(b, json_integer_value(v)); break;
    case JSON_TRUE: dump_raw(b, "true", 4); break;
    case JSON_FALSE: dump_raw(b, "false", 5); break;
    case JSON_NULL: dump_raw(b, "null", 4); break;
    case JSON_REAL: {
        char num[40];
        int n = saga_json_format_real(json_real_value(v), num, sizeof num);
        if (n < 0) b->fallback = 1;
        else dump_raw(b, num, (size_t)n);
        break;
    }
    default: b->fallback = 1;
    }
}

char *saga_json_dump(const json_t *value) {
    if (!value) return NULL;
    saga_json_buf_t b = {0};
    dump_value(&b, value, 0);
    if (!b.fallback) dump_raw(&b, "", 1);
    if (!b.fallback) return b.buf;
    saga_free(b.buf);
    if (b.fallback < 0) return NULL;
    /* jansson allocates with the functions installed by saga_alloc. */
    return json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
}

/* ---- the text writer (saga_json_buf_t) ----------------------------------------- */

void saga_json_buf_reserve(saga_json_buf_t *b, size_t n) {
    if (!b->fallback) dump_reserve(b, n);
}

void saga_json_buf_raw(saga_json_buf_t *b, const char *s, size_t n) {
    if (!b->fallback) dump_raw(b, s, n);
}

void saga_json_buf_string(saga_json_buf_t *b, const char *s, size_t n) {
    if (!b->fallback) dump_string(b, s, n);
}

void saga_json_buf_int(saga_json_buf_t *b, long long v) {
    if (!b->fallback) dump_int(b, v);
}

int saga_json_buf_json(saga_json_buf_t *b, const char *s, size_t n) {
    if (b->fallback) return 0; /* failed before: the first error stands */
    if (!saga_json_valid(s, n)) {
        b->fallback = 1;
        return SAGA_EPARSE;
    }
    dump_raw(b, s, n);
    return 0;
}

int saga_json_buf_error(const saga_json_buf_t *b) {
    return b->fallback < 0 ? SAGA_ENOMEM : b->fallback ? SAGA_EPARSE : 0;
}

char *saga_json_buf_finish(saga_json_buf_t *b, size_t *len) {
    saga_json_buf_raw(b, "", 1);
    if (b->fallback) {
        saga_json_buf_free(b);
        return NULL;
    }
    char *text = b->buf;
    *len = b->len - 1;
    *b = (saga_json_buf_t){0};
    return text;
}

void saga_json_buf_free(saga_json_buf_t *b) {
    saga_free(b->buf);
    *b = (saga_json_buf_t){0};
}

/* ---- syntax check (saga_json_valid) ---------------------------------------------- */

static const char *valid_blank(const char *p, const char *e) {
    while (p < e && (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')) p++;
    return p;
}

static int is_digit(const char *p, const char *e) { return p < e && *p >= '0' && *p <= '9'; }

static int is_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

/* p at the opening quote; the byte after the closing one, or NULL. */
static const char *valid_string(const char *p, const char *e) {
    for (p++; p < e;) {
        unsigned char c = (unsigned char)*p;
        if (c == '"') return p + 1;
        if (c < 0x20) return NULL;
        if (c >= 0x80) {
            size_t k = saga_utf8_seq((const unsigned char *)p, (size_t)(e - p));
            if (!k) return NULL;
            p += k;
        } else if (c != '\\') {
            p++;
        } else if (++p < e && strchr("\"\\/bfnrt", *p) && *p) {
            p++;
        } else if (p < e && *p == 'u' && e - p >= 5 && is_hex(p[1]) && is_hex(p[2]) && is_hex(p[3]) && is_hex(p[4])) {
            p += 5;
        } else {
            return NULL;
        }
    }
    return NULL;
}

static const char *valid_number(const char *p, const char *e) {
    if (p < e && *p == '-') p++;
    if (p < e && *p == '0') p++;
    else if (is_digit(p, e)) while (is_digit(p, e)) p++;
    else return NULL;
    if (p < e && *p == '.') {
        if (!is_digit(++p, e)) return NULL;
        while (is_digit(p, e)) p++;
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        if (++p < e && (*p == '+' || *p == '-')) p++;
        if (!is_digit(p, e)) return NULL;
        while (is_digit(p, e)) p++;
    }
    return p;
}

static const char *valid_literal(const char *p, const char *e, const char *word, size_t n) {
    return (size_t)(e - p) >= n && !memcmp(p, word, n) ? p + n : NULL;
}

/* One value from p (blanks before it skipped); the byte after it, or NULL. */
static const char *valid_value(const char *p, const char *e, int depth) {
    if (depth > DUMP_MAX_DEPTH || (p = valid_blank(p, e)) >= e) return NULL;
    char close = *p == '{' ? '}' : ']';
    switch (*p) {
    case '{':
    case '[':
        if ((p = valid_blank(p + 1, e)) < e && *p == close) return p + 1;
        for (;;) {
            if (close == '}') {
                if (p >= e || *p != '"' || !(p = valid_string(p, e))) return NULL;
                if ((p = valid_blank(p, e)) >= e || *p++ != ':') return NULL;
            }
            if (!(p = valid_value(p, e, depth + 1)) || (p = valid_blank(p, e)) >= e) return NULL;
            if (*p == close) return p + 1;
            if (*p++ != ',') return NULL;
            p = valid_blank(p, e);
        }
    case '"': return valid_string(p, e);
    case 't': return valid_literal(p, e, "true", 4);
    case 'f': return valid_literal(p, e, "false", 5);
    case 'n': return valid_literal(p, e, "null", 4);
    default: return valid_number(p, e);
    }
}

int saga_json_valid(const char *s, size_t n) {
    if (!s) return 0;
    const char *e = s + n, *p = valid_value(s, e, 0);
    return p && valid_blank(p, e) == e;
}

/* One "..." token without escapes or control bytes; returns the byte after
 * the closing quote, or NULL. */
static const char *flat_token(const char *p, const char **start, size_t *len) {
    if (*p != '"') return NULL;
    const char *s = ++p;
    while (*p && *p != '"') {
        if (*p == '\\' || (unsigned char)*p < 0x20) return NULL;
        p++;
    }
    if (*p != '"') return NULL;
    *start = s;
    *len = (size_t)(p - s);
    return p + 1;
}

int saga_json_flat_object(const char *text, saga_json_pair_t *pairs, int max) {
    const char *p = text;
    if (!p || *p++ != '{') return -1;
    int n = 0;
    if (*p == '}') return p[1] ? -1 : 0;
    for (;;) {
        if (n == max) return -1;
        saga_json_pair_t *kv = &pairs[n++];
        if (!(p = flat_token(p, &kv->key, &kv->key_len)) || *p++ != ':') return -1;
        if (!(p = flat_token(p, &kv->value, &kv->value_len))) return -1;
        if (*p == ',') {
            p++;
            continue;
        }
        return *p == '}' && p[1] == '\0' ? n : -1;
    }
}
