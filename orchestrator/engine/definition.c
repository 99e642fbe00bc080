/* Saga definitions: decoding and validation of sagas/NAME.json into
 * saga_definition_t (the registry is in registry.c). The contract is
 * schemas/saga-definition.schema.json and docs/DEFINITIONS.md; this code
 * rejects everything the schema rejects, plus what a schema cannot say
 * (references between steps, cycles, templates, max_backoff vs
 * initial_backoff). Every problem of a document is collected, each with
 * the RFC 6901 JSON pointer of where it is. Pure: no I/O. */
#include "definition.h"
#include "definition_internal.h"
#include "messages.h"
#include "template.h"

#include "saga_alloc.h"
#include "saga_clock.h"
#include "saga_error.h"
#include "saga_utf8.h"
#include "saga_sha256.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MS_SECOND 1000LL
#define MS_HOUR (3600LL * MS_SECOND)
#define MS_DAY (24LL * MS_HOUR)

#define STEP_TIMEOUT_MAX_MS MS_DAY
#define SAGA_TIMEOUT_MAX_MS (30LL * MS_DAY)
#define BACKOFF_MAX_MS MS_DAY

static const saga_retry_policy_t builtin_retry = {3, 100, 2.0, 10 * MS_SECOND, SAGA_JITTER_FULL};
static const saga_retry_policy_t builtin_comp_retry = {10, 200, 2.0, 30 * MS_SECOND, SAGA_JITTER_FULL};
static const int64_t builtin_step_timeout_ms = 10 * MS_SECOND;

/* ---- errors ---- */

/* Messages quote parts of the document cut to a fixed length, on a
 * character boundary (saga_utf8_prefix), and a message cut by its fixed
 * buffer loses the incomplete character at its end (saga_utf8_trim_cut).
 * A message that is not UTF-8 cannot go into JSON (sagactl --json, the
 * admin API, logs): any byte of a broken sequence left (a pointer cut by
 * its buffer) becomes '?' (saga_utf8_repair). */
static void add_error_at(saga_def_errors_t *errs, const char *pointer, int line, int column,
                         const char *fmt, va_list ap) {
    if (errs->count < (int)(sizeof errs->items / sizeof errs->items[0])) {
        saga_def_error_t *e = &errs->items[errs->count];
        memset(e, 0, sizeof *e);
        size_t n = strlen(pointer);
        if (n >= sizeof e->pointer) n = sizeof e->pointer - 1;
        memcpy(e->pointer, pointer, n);
        vsnprintf(e->message, sizeof e->message, fmt, ap);
        saga_utf8_trim_cut(e->message); /* a message too long is cut on a character boundary */
        saga_utf8_repair(e->pointer);
        saga_utf8_repair(e->message);
        e->line = line;
        e->column = column;
    }
    errs->count++;
}

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
void def_add_err(saga_def_errors_t *errs, const char *pointer, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    add_error_at(errs, pointer, 0, 0, fmt, ap);
    va_end(ap);
}

#if defined(__GNUC__)
__attribute__((format(printf, 5, 6)))
#endif
static void add_err_lc(saga_def_errors_t *errs, const char *pointer, int line, int column,
                       const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    add_error_at(errs, pointer, line, column, fmt, ap);
    va_end(ap);
}

/* ---- JSON pointers (RFC 6901) ---- */

static void ptr_append_raw(ptr_t *out, const char *text) {
    size_t len = strlen(out->s);
    for (const char *p = text; *p && len + 1 < sizeof out->s; p++) out->s[len++] = *p;
    out->s[len] = '\0';
}

/* base + "/" + escaped key */
ptr_t def_ptr_key(const ptr_t *base, const char *key) {
    ptr_t out = *base;
    ptr_append_raw(&out, "/");
    for (const char *p = key; *p; p++) {
        if (*p == '~') ptr_append_raw(&out, "~0");
        else if (*p == '/') ptr_append_raw(&out, "~1");
        else {
            char c[2] = {*p, '\0'};
            ptr_append_raw(&out, c);
        }
    }
    return out;
}

ptr_t def_ptr_idx(const ptr_t *base, size_t i) {
    char num[32];
    snprintf(num, sizeof num, "/%zu", i);
    ptr_t out = *base;
    ptr_append_raw(&out, num);
    return out;
}

/* ---- small validators ---- */

const char *def_type_name(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "?";
}

/* Reports every member of obj not in allowed (NULL-terminated). */
static void check_keys(const json_t *obj, const ptr_t *at, const char *const *allowed,
                       saga_def_errors_t *errs) {
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)obj, key, val) {
        bool ok = false;
        for (const char *const *a = allowed; *a; a++)
            if (strcmp(*a, key) == 0) { ok = true; break; }
        if (!ok) {
            ptr_t p = def_ptr_key(at, key);
            def_add_err(errs, p.s, "unknown field '%.*s'", saga_utf8_prefix(key, 120), key);
        }
    }
}

typedef enum {
    CHARS_SAGA_NAME,  /* [a-z0-9_.-] */
    CHARS_STEP_NAME,  /* [a-z0-9_-]: no dots (template paths), no slashes (message ids) */
    CHARS_TOPIC,      /* Kafka: [a-zA-Z0-9._-] */
    CHARS_ACTION,     /* [A-Za-z0-9_.:-] */
} charset_t;

static bool char_ok(charset_t cs, char c) {
    bool lower_digit = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    bool upper = c >= 'A' && c <= 'Z';
    switch (cs) {
    case CHARS_SAGA_NAME: return lower_digit || c == '.';
    case CHARS_STEP_NAME: return lower_digit;
    case CHARS_TOPIC: return lower_digit || upper || c == '.';
    case CHARS_ACTION: return lower_digit || upper || c == '.' || c == ':';
    }
    return false;
}

static const char *charset_desc(charset_t cs) {
    switch (cs) {
    case CHARS_SAGA_NAME: return "lowercase letters, digits, '_', '.' and '-'";
    case CHARS_STEP_NAME: return "lowercase letters, digits, '_' and '-'";
    case CHARS_TOPIC: return "letters, digits, '_', '.' and '-'";
    case CHARS_ACTION: return "letters, digits, '_', '.', ':' and '-'";
    }
    return "?";
}

/* Validates an identifier-like string member. Copies it into out (size
 * outlen) when valid. Returns true when present and valid. */
static bool get_ident(const json_t *obj, const char *key, const ptr_t *at, bool required,
                      charset_t cs, size_t maxlen, char *out, size_t outlen,
                      saga_def_errors_t *errs) {
    json_t *v = json_object_get(obj, key);
    ptr_t p = def_ptr_key(at, key);
    if (!v) {
        if (required) def_add_err(errs, at->s, "missing required field '%s'", key);
        return false;
    }
    if (!json_is_string(v)) {
        def_add_err(errs, p.s, "must be a string, not %s", def_type_name(v));
        return false;
    }
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (len == 0) {
        def_add_err(errs, p.s, "must not be empty");
        return false;
    }
    /* characters first: they are ASCII, so the length below counts
     * characters (a long run of 'é' is a charset problem, not a length one) */
    for (size_t i = 0; i < len; i++) {
        if (!char_ok(cs, s[i])) {
            def_add_err(errs, p.s, "may contain only %s", charset_desc(cs));
            return false;
        }
    }
    if (len > maxlen) {
        def_add_err(errs, p.s, "must be at most %zu characters", maxlen);
        return false;
    }
    if (len >= outlen) len = outlen - 1; /* cannot happen: maxlen < outlen */
    memcpy(out, s, len);
    out[len] = '\0';
    return true;
}

/* Strict duration syntax: DIGITS [ "." DIGITS ] ("ms"|"s"|"m"|"h"). The
 * schema's pattern is the same; saga_parse_duration alone would also take
 * forms like "1e3s". */
static bool duration_syntax_ok(const char *s) {
    const char *p = s;
    if (!(*p >= '0' && *p <= '9')) return false;
    while (*p >= '0' && *p <= '9') p++;
    if (*p == '.') {
        p++;
        if (!(*p >= '0' && *p <= '9')) return false;
        while (*p >= '0' && *p <= '9') p++;
    }
    return strcmp(p, "ms") == 0 || strcmp(p, "s") == 0 || strcmp(p, "m") == 0 || strcmp(p, "h") == 0;
}

static void format_ms(int64_t ms, char *buf, size_t len) {
    if (ms != 0 && ms % MS_HOUR == 0) snprintf(buf, len, "%lldh", (long long)(ms / MS_HOUR));
    else if (ms != 0 && ms % 60000 == 0) snprintf(buf, len, "%lldm", (long long)(ms / 60000));
    else if (ms != 0 && ms % MS_SECOND == 0) snprintf(buf, len, "%llds", (long long)(ms / MS_SECOND));
    else snprintf(buf, len, "%lldms", (long long)ms);
}

/* A duration member. min_ms: 0 allows "0s", 1 requires > 0. Returns true
 * and sets *out when present and valid. */
static bool get_duration(const json_t *obj, const char *key, const ptr_t *at, int64_t min_ms,
                         int64_t max_ms, int64_t *out, saga_def_errors_t *errs) {
    json_t *v = json_object_get(obj, key);
    if (!v) return false;
    ptr_t p = def_ptr_key(at, key);
    int64_t ms = 0;
    if (!json_is_string(v)) {
        def_add_err(errs, p.s, "must be a duration string like \"250ms\", \"10s\", \"5m\" or \"1h\", not %s",
                def_type_name(v));
        return false;
    }
    const char *s = json_string_value(v);
    if (!duration_syntax_ok(s) || saga_parse_duration(s, &ms) != 0) {
        def_add_err(errs, p.s, "must be a duration like \"250ms\", \"10s\", \"5m\" or \"1h\" (got \"%.*s\")", saga_utf8_prefix(s, 40), s);
        return false;
    }
    if (ms < min_ms) {
        if (min_ms == 1) def_add_err(errs, p.s, "must be greater than 0");
        else def_add_err(errs, p.s, "must be at least %lldms", (long long)min_ms);
        return false;
    }
    if (ms > max_ms) {
        char lim[32];
        format_ms(max_ms, lim, sizeof lim);
        def_add_err(errs, p.s, "must be at most %s", lim);
        return false;
    }
    *out = ms;
    return true;
}

/* ---- retry policies ---- */

/* Decodes a (partial) retry object at obj[key] over *policy (which holds
 * the inherited values). Returns false when the member is absent. */
static bool get_retry(const json_t *obj, const char *key, const ptr_t *at, saga_retry_policy_t *policy,
                      saga_def_errors_t *errs) {
    static const char *const keys[] = {"max_attempts", "initial_backoff", "multiplier", "max_backoff",
                                       "jitter", NULL};
    json_t *r = json_object_get(obj, key);
    if (!r) return false;
    ptr_t p = def_ptr_key(at, key);
    if (!json_is_object(r)) {
        def_add_err(errs, p.s, "must be an object, not %s", def_type_name(r));
        return true;
    }
    check_keys(r, &p, keys, errs);

    json_t *v = json_object_get(r, "max_attempts");
    if (v) {
        ptr_t q = def_ptr_key(&p, "max_attempts");
        if (!json_is_integer(v)) def_add_err(errs, q.s, "must be an integer, not %s", def_type_name(v));
        else if (json_integer_value(v) < 1) def_add_err(errs, q.s, "must be at least 1");
        /* an attempt above it could not be answered (saga.reply's limit) */
        else if (json_integer_value(v) > SAGA_ATTEMPT_MAX) def_add_err(errs, q.s, "must be at most %d", SAGA_ATTEMPT_MAX);
        else policy->max_attempts = (int)json_integer_value(v);
    }
    v = json_object_get(r, "multiplier");
    if (v) {
        ptr_t q = def_ptr_key(&p, "multiplier");
        if (!json_is_number(v)) def_add_err(errs, q.s, "must be a number, not %s", def_type_name(v));
        else if (json_number_value(v) < 1.0) def_add_err(errs, q.s, "must be at least 1");
        else policy->multiplier = json_number_value(v);
    }
    v = json_object_get(r, "jitter");
    if (v) {
        ptr_t q = def_ptr_key(&p, "jitter");
        const char *s = json_is_string(v) ? json_string_value(v) : NULL;
        if (s && strcmp(s, "full") == 0) policy->jitter = SAGA_JITTER_FULL;
        else if (s && strcmp(s, "none") == 0) policy->jitter = SAGA_JITTER_NONE;
        else def_add_err(errs, q.s, "must be one of \"full\", \"none\"");
    }
    bool init_ok = true, max_ok = true;
    bool has_init = json_object_get(r, "initial_backoff") != NULL;
    bool has_max = json_object_get(r, "max_backoff") != NULL;
    if (has_init)
        init_ok = get_duration(r, "initial_backoff", &p, 0, BACKOFF_MAX_MS, &policy->initial_backoff_ms, errs);
    if (has_max)
        max_ok = get_duration(r, "max_backoff", &p, 0, BACKOFF_MAX_MS, &policy->max_backoff_ms, errs);
    if ((has_init || has_max) && init_ok && max_ok && policy->max_backoff_ms < policy->initial_backoff_ms) {
        char a[32], b[32];
        format_ms(policy->initial_backoff_ms, a, sizeof a);
        format_ms(policy->max_backoff_ms, b, sizeof b);
        if (has_max) {
            ptr_t q = def_ptr_key(&p, "max_backoff");
            def_add_err(errs, q.s, "must be at least initial_backoff (%s%s)", a, has_init ? "" : ", inherited");
        } else {
            ptr_t q = def_ptr_key(&p, "initial_backoff");
            def_add_err(errs, q.s, "must be at most max_backoff (%s, inherited)", b);
        }
    }
    return true;
}

/* ---- steps ---- */

static void decode_step(saga_definition_t *def, int i, const json_t *s, const ptr_t *at,
                        int64_t default_timeout, const saga_retry_policy_t *default_retry,
                        const saga_retry_policy_t *default_comp_retry, int *name_ok,
                        saga_def_errors_t *errs) {
    static const char *const keys[] = {"name", "kind", "timeout", "topic", "action", "compensation", "payload",
                                       "compensation_payload", "retry", "compensation_retry", "after",
                                       NULL};
    static const char *const signal_keys[] = {"name", "kind", "signal", "timeout", "after", NULL};
    static const char *const child_keys[] = {"name", "kind", "saga", "version", "input", "timeout", "after", NULL};
    saga_step_def_t *st = &def->steps[i];
    st->timeout_ms = default_timeout;
    st->retry = *default_retry;
    st->compensation_retry = *default_comp_retry;
    if (!json_is_object(s)) {
        def_add_err(errs, at->s, "must be an object, not %s", def_type_name(s));
        return;
    }
    json_t *kind = json_object_get(s, "kind");
    if (kind) {
        ptr_t p = def_ptr_key(at, "kind");
        const char *k = json_string_value(kind);
        if (!json_is_string(kind)) def_add_err(errs, p.s, "must be a string, not %s", def_type_name(kind));
        else if (strcmp(k, "signal") == 0) st->kind = SAGA_STEP_KIND_SIGNAL;
        else if (strcmp(k, "saga") == 0) st->kind = SAGA_STEP_KIND_CHILD;
        else if (strcmp(k, "command") != 0)
            def_add_err(errs, p.s, "must be \"command\" (the default), \"signal\" or \"saga\", not \"%.*s\"",
                        saga_utf8_prefix(k, 40), k);
    }
    if (st->kind == SAGA_STEP_KIND_CHILD) { /* runs a child saga: its start is the action, its compensation the undo */
        check_keys(s, at, child_keys, errs);
        name_ok[i] = get_ident(s, "name", at, true, CHARS_STEP_NAME, SAGA_NAME_MAX - 1, st->name, sizeof st->name, errs);
        for (int j = 0; name_ok[i] && j < i; j++)
            if (name_ok[j] && strcmp(def->steps[j].name, st->name) == 0) {
                ptr_t p = def_ptr_key(at, "name");
                def_add_err(errs, p.s, "duplicate step name '%s' (also /steps/%d)", st->name, j);
                name_ok[i] = 0;
            }
        get_ident(s, "saga", at, true, CHARS_SAGA_NAME, SAGA_NAME_MAX - 1, st->child, sizeof st->child, errs);
        json_t *v = json_object_get(s, "version");
        if (v && (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 2147483647)) {
            ptr_t p = def_ptr_key(at, "version");
            def_add_err(errs, p.s, "must be an integer from 1 to 2147483647");
        } else if (v) {
            st->child_version = (int)json_integer_value(v);
        }
        v = json_object_get(s, "input");
        if (v && !json_is_object(v)) {
            ptr_t p = def_ptr_key(at, "input");
            def_add_err(errs, p.s, "must be an object, not %s", def_type_name(v));
        }
        st->timeout_ms = 0;
        get_duration(s, "timeout", at, 1, SAGA_TIMEOUT_MAX_MS, &st->timeout_ms, errs);
        st->retry.max_attempts = 1; /* a child is started once; its own steps retry */
        snprintf(st->compensation, sizeof st->compensation, "saga.compensate");
        return;
    }
    if (st->kind == SAGA_STEP_KIND_SIGNAL) { /* waits for a signal: no command, nothing to undo, no retry */
        check_keys(s, at, signal_keys, errs);
        get_ident(s, "name", at, true, CHARS_STEP_NAME, SAGA_NAME_MAX - 1, st->name, sizeof st->name, errs);
        get_ident(s, "signal", at, true, CHARS_STEP_NAME, SAGA_NAME_MAX - 1, st->signal, sizeof st->signal, errs);
        st->timeout_ms = 0;
        get_duration(s, "timeout", at, 1, SAGA_TIMEOUT_MAX_MS, &st->timeout_ms, errs);
        st->retry.max_attempts = 1;
        name_ok[i] = st->name[0] != '\0';
        for (int j = 0; name_ok[i] && j < i; j++)
            if (name_ok[j] && strcmp(def->steps[j].name, st->name) == 0) {
                ptr_t p = def_ptr_key(at, "name");
                def_add_err(errs, p.s, "duplicate step name '%s' (also /steps/%d)", st->name, j);
                name_ok[i] = 0;
            }
        for (int j = 0; st->signal[0] && j < i; j++)
            if (def->steps[j].kind == SAGA_STEP_KIND_SIGNAL && strcmp(def->steps[j].signal, st->signal) == 0) {
                ptr_t p = def_ptr_key(at, "signal");
                def_add_err(errs, p.s, "signal '%s' is already awaited by /steps/%d (signal names are unique)",
                            st->signal, j);
            }
        return;
    }
    check_keys(s, at, keys, errs);
    if (get_ident(s, "name", at, true, CHARS_STEP_NAME, SAGA_NAME_MAX - 1, st->name, sizeof st->name, errs)) {
        name_ok[i] = 1;
        for (int j = 0; j < i; j++) {
            if (name_ok[j] && strcmp(def->steps[j].name, st->name) == 0) {
                ptr_t p = def_ptr_key(at, "name");
                def_add_err(errs, p.s, "duplicate step name '%s' (also /steps/%d)", st->name, j);
                name_ok[i] = 0;
                break;
            }
        }
    }
    get_ident(s, "topic", at, true, CHARS_TOPIC, 249, st->topic, sizeof st->topic, errs);
    get_ident(s, "action", at, true, CHARS_ACTION, SAGA_NAME_MAX - 1, st->action, sizeof st->action, errs);
    bool has_comp = get_ident(s, "compensation", at, false, CHARS_ACTION, SAGA_NAME_MAX - 1,
                              st->compensation, sizeof st->compensation, errs);
    json_t *v = json_object_get(s, "payload");
    if (v && !json_is_object(v)) {
        ptr_t p = def_ptr_key(at, "payload");
        def_add_err(errs, p.s, "must be an object, not %s", def_type_name(v));
    }
    v = json_object_get(s, "compensation_payload");
    if (v) {
        ptr_t p = def_ptr_key(at, "compensation_payload");
        if (!json_is_object(v)) def_add_err(errs, p.s, "must be an object, not %s", def_type_name(v));
        else if (!has_comp && !json_object_get(s, "compensation"))
            def_add_err(errs, p.s, "given but the step has no 'compensation'");
    }
    get_duration(s, "timeout", at, 1, STEP_TIMEOUT_MAX_MS, &st->timeout_ms, errs);
    get_retry(s, "retry", at, &st->retry, errs);
    get_retry(s, "compensation_retry", at, &st->compensation_retry, errs);
}

/* Resolves `after` of every step into indexes. */
static void decode_after(saga_definition_t *def, const json_t *steps, const int *name_ok,
                         saga_def_errors_t *errs) {
    for (int i = 0; i < def->step_count; i++) {
        saga_step_def_t *st = &def->steps[i];
        json_t *s = json_array_get(steps, (size_t)i);
        json_t *after = json_is_object(s) ? json_object_get(s, "after") : NULL;
        st->after_count = 0;
        if (!after) {
            if (i > 0) st->after[st->after_count++] = i - 1;
            continue;
        }
        ptr_t at = {"/steps"};
        at = def_ptr_idx(&at, (size_t)i);
        ptr_t pa = def_ptr_key(&at, "after");
        if (!json_is_array(after)) {
            def_add_err(errs, pa.s, "must be an array of step names, not %s", def_type_name(after));
            continue;
        }
        size_t k;
        json_t *name;
        json_array_foreach(after, k, name) {
            ptr_t pk = def_ptr_idx(&pa, k);
            if (!json_is_string(name)) {
                def_add_err(errs, pk.s, "must be a string, not %s", def_type_name(name));
                continue;
            }
            const char *n = json_string_value(name);
            int j = -1;
            for (int m = 0; m < def->step_count; m++)
                if (name_ok[m] && strcmp(def->steps[m].name, n) == 0) { j = m; break; }
            bool dup = false;
            for (size_t m = 0; m < k; m++) {
                json_t *prev = json_array_get(after, m);
                if (json_is_string(prev) && strcmp(json_string_value(prev), n) == 0) {
                    def_add_err(errs, pk.s, "duplicate entry '%.*s' (also %s/%zu)", saga_utf8_prefix(n, 100), n, pa.s, m);
                    dup = true;
                    break;
                }
            }
            if (dup) continue;
            if (j < 0) def_add_err(errs, pk.s, "unknown step '%.*s'", saga_utf8_prefix(n, 100), n);
            else if (j == i) def_add_err(errs, pk.s, "a step cannot run after itself");
            else if (st->after_count < SAGA_MAX_STEPS) st->after[st->after_count++] = j;
        }
    }
}

/* Depth-first search for cycles; reports each cycle once, at the `after`
 * of the step where it was found, or, when that step's `after` is the
 * implicit "previous step" (not in the file), at the first step of the
 * cycle that has an explicit `after` (every cycle has one: implicit edges
 * only point backwards). */
static void find_cycles(const saga_definition_t *def, const json_t *steps, saga_def_errors_t *errs) {
    enum { WHITE, GREY, BLACK };
    int color[SAGA_MAX_STEPS] = {0};
    int stack[SAGA_MAX_STEPS], edge[SAGA_MAX_STEPS];
    for (int root = 0; root < def->step_count; root++) {
        if (color[root] != WHITE) continue;
        int depth = 0;
        stack[0] = root;
        edge[0] = 0;
        color[root] = GREY;
        while (depth >= 0) {
            int u = stack[depth];
            if (edge[depth] >= def->steps[u].after_count) {
                color[u] = BLACK;
                depth--;
                continue;
            }
            int v = def->steps[u].after[edge[depth]++];
            if (color[v] == WHITE) {
                color[v] = GREY;
                depth++;
                stack[depth] = v;
                edge[depth] = 0;
            } else if (color[v] == GREY) {
                /* cycle: v ... u -> v (u runs after v, which runs after ... u) */
                char path[200] = "";
                int start = depth;
                while (start > 0 && stack[start] != v) start--;
                size_t len = 0;
                for (int d = start; d <= depth + 1; d++) {
                    const char *nm = d <= depth ? def->steps[stack[d]].name : def->steps[v].name;
                    int w = snprintf(path + len, sizeof path - len, "%s%s", d == start ? "" : " -> ", nm);
                    if (w < 0 || (size_t)w >= sizeof path - len) { len = sizeof path - 1; break; }
                    len += (size_t)w;
                }
                int where = u;
                for (int d = start; d <= depth && !json_object_get(json_array_get(steps, (size_t)where), "after");
                     d++)
                    where = stack[d];
                ptr_t at = {"/steps"};
                at = def_ptr_idx(&at, (size_t)where);
                at = def_ptr_key(&at, "after");
                def_add_err(errs, at.s, "dependency cycle: %s", path);
            }
        }
    }
}

/* ancestors[i]: bit j set when step j must succeed before step i runs. */
static void compute_ancestors(const saga_definition_t *def, uint64_t *anc) {
    for (int i = 0; i < def->step_count; i++) {
        anc[i] = 0;
        for (int k = 0; k < def->steps[i].after_count; k++) anc[i] |= (uint64_t)1 << def->steps[i].after[k];
    }
    bool changed = true;
    while (changed) {
        changed = false;
        for (int i = 0; i < def->step_count; i++) {
            uint64_t a = anc[i];
            for (int j = 0; j < def->step_count; j++)
                if (anc[i] & ((uint64_t)1 << j)) a |= anc[j];
            if (a != anc[i]) { anc[i] = a; changed = true; }
        }
    }
}

/* ---- the definition ---- */

static void definition_release(saga_definition_t *def) {
    for (int i = 0; i < SAGA_MAX_STEPS; i++) {
        json_decref(def->steps[i].payload);
        json_decref(def->steps[i].compensation_payload);
    }
    json_decref(def->source);
    saga_free(def);
}

void saga_definition_free(saga_definition_t **def) {
    if (!def || !*def) return;
    definition_release(*def);
    *def = NULL;
}

int saga_definition_signal_step(const saga_definition_t *def, const char *name) {
    if (!def || !name) return -1;
    for (int i = 0; i < def->step_count; i++)
        if (def->steps[i].kind == SAGA_STEP_KIND_SIGNAL && strcmp(def->steps[i].signal, name) == 0) return i;
    return -1;
}

int saga_definition_step_index(const saga_definition_t *def, const char *name) {
    if (!def || !name) return -1;
    for (int i = 0; i < def->step_count; i++)
        if (strcmp(def->steps[i].name, name) == 0) return i;
    return -1;
}

static void validate(saga_definition_t *def, const json_t *json, saga_def_errors_t *errs) {
    static const char *const keys[] = {"$schema", "name", "version", "description", "timeout",
                                       "defaults", "steps", "search", "output", NULL};
    static const char *const default_keys[] = {"timeout", "retry", "compensation_retry", NULL};
    const ptr_t root = {""};
    if (!json_is_object(json)) {
        def_add_err(errs, "", "must be an object, not %s", def_type_name(json));
        return;
    }
    check_keys(json, &root, keys, errs);

    json_t *v = json_object_get(json, "$schema");
    if (v && !json_is_string(v)) def_add_err(errs, "/$schema", "must be a string, not %s", def_type_name(v));

    get_ident(json, "name", &root, true, CHARS_SAGA_NAME, SAGA_NAME_MAX - 1, def->name, sizeof def->name, errs);

    v = json_object_get(json, "version");
    if (!v) def_add_err(errs, "", "missing required field 'version'");
    else if (!json_is_integer(v)) def_add_err(errs, "/version", "must be an integer, not %s", def_type_name(v));
    else if (json_integer_value(v) < 1) def_add_err(errs, "/version", "must be at least 1");
    else if (json_integer_value(v) > 2147483647) def_add_err(errs, "/version", "must be at most 2147483647");
    else def->version = (int)json_integer_value(v);

    v = json_object_get(json, "description");
    if (v) {
        if (!json_is_string(v)) def_add_err(errs, "/description", "must be a string, not %s", def_type_name(v));
        else if (json_string_length(v) >= sizeof def->description)
            def_add_err(errs, "/description", "must be at most %zu bytes", sizeof def->description - 1);
        else if (strlen(json_string_value(v)) != json_string_length(v))
            def_add_err(errs, "/description", "must not contain NUL characters");
        else memcpy(def->description, json_string_value(v), json_string_length(v) + 1);
    }

    get_duration(json, "timeout", &root, 0, SAGA_TIMEOUT_MAX_MS, &def->timeout_ms, errs);

    int64_t default_timeout = builtin_step_timeout_ms;
    saga_retry_policy_t default_retry = builtin_retry, default_comp_retry = builtin_comp_retry;
    v = json_object_get(json, "defaults");
    if (v) {
        ptr_t pd = def_ptr_key(&root, "defaults");
        if (!json_is_object(v)) {
            def_add_err(errs, pd.s, "must be an object, not %s", def_type_name(v));
        } else {
            check_keys(v, &pd, default_keys, errs);
            get_duration(v, "timeout", &pd, 1, STEP_TIMEOUT_MAX_MS, &default_timeout, errs);
            get_retry(v, "retry", &pd, &default_retry, errs);
            get_retry(v, "compensation_retry", &pd, &default_comp_retry, errs);
        }
    }

    def_decode_search(def, json, errs);

    json_t *steps = json_object_get(json, "steps");
    if (!steps) {
        def_add_err(errs, "", "missing required field 'steps'");
        return;
    }
    if (!json_is_array(steps)) {
        def_add_err(errs, "/steps", "must be an array, not %s", def_type_name(steps));
        return;
    }
    size_t count = json_array_size(steps);
    if (count < 1) {
        def_add_err(errs, "/steps", "must have at least 1 step");
        return;
    }
    if (count > SAGA_MAX_STEPS) {
        def_add_err(errs, "/steps", "must have at most %d steps", SAGA_MAX_STEPS);
        return;
    }
    def->step_count = (int)count;
    int name_ok[SAGA_MAX_STEPS] = {0};
    const ptr_t psteps = {"/steps"};
    for (int i = 0; i < def->step_count; i++) {
        ptr_t at = def_ptr_idx(&psteps, (size_t)i);
        decode_step(def, i, json_array_get(steps, (size_t)i), &at, default_timeout, &default_retry,
                    &default_comp_retry, name_ok, errs);
    }
    decode_after(def, steps, name_ok, errs);
    find_cycles(def, steps, errs);

    uint64_t anc[SAGA_MAX_STEPS];
    compute_ancestors(def, anc);
    for (int i = 0; i < def->step_count; i++) {
        json_t *s = json_array_get(steps, (size_t)i);
        if (!json_is_object(s)) continue;
        ptr_t at = def_ptr_idx(&psteps, (size_t)i);
        tmpl_check_t t = {.def = def, .step = i, .ancestors = anc[i], .errs = errs};
        json_t *payload = json_object_get(s, def->steps[i].kind == SAGA_STEP_KIND_CHILD ? "input" : "payload");
        if (json_is_object(payload)) {
            ptr_t p = def_ptr_key(&at, "payload");
            def_check_templates(payload, &p, &t);
        }
        json_t *cp = json_object_get(s, "compensation_payload");
        if (json_is_object(cp)) {
            ptr_t p = def_ptr_key(&at, "compensation_payload");
            t.compensation = true;
            def_check_templates(cp, &p, &t);
        }
    }
    json_t *output = json_object_get(json, "output");
    if (output) { /* rendered when the saga completes: every step has run */
        ptr_t p = def_ptr_key(&root, "output");
        if (!json_is_object(output)) {
            def_add_err(errs, p.s, "must be an object, not %s", def_type_name(output));
        } else {
            tmpl_check_t t = {.def = def, .step = -1, .ancestors = ~(uint64_t)0, .errs = errs};
            def_check_templates(output, &p, &t);
        }
    }
}

/* Copies payloads and the source, computes the hash. 0 or SAGA_ENOMEM. */
static int finish(saga_definition_t *def, const json_t *json) {
    json_t *steps = json_object_get(json, "steps");
    for (int i = 0; i < def->step_count; i++) {
        json_t *s = json_array_get(steps, (size_t)i);
        json_t *p = json_object_get(s, def->steps[i].kind == SAGA_STEP_KIND_CHILD ? "input" : "payload");
        def->steps[i].payload = p ? json_deep_copy(p) : json_object();
        if (!def->steps[i].payload) return SAGA_ENOMEM;
        p = json_object_get(s, "compensation_payload");
        if (p) {
            def->steps[i].compensation_payload = json_deep_copy(p);
            if (!def->steps[i].compensation_payload) return SAGA_ENOMEM;
        }
    }
    def->source = json_deep_copy(json);
    if (!def->source) return SAGA_ENOMEM;
    const json_t *search = json_object_get(def->source, "search");
    for (int i = 0; i < def->search_count; i++) def->search[i].tmpl = json_object_get(search, def->search[i].name);
    def->output = json_object_get(def->source, "output");
    char *canon = json_dumps(json, JSON_COMPACT | JSON_SORT_KEYS);
    if (!canon) return SAGA_ENOMEM;
    saga_sha256_hex(canon, strlen(canon), def->hash);
    json_free_t jfree;
    json_get_alloc_funcs(NULL, &jfree);
    jfree(canon);
    return 0;
}

saga_definition_t *saga_definition_from_json(json_t *json, saga_def_errors_t *errs) {
    saga_def_errors_t local;
    if (!errs) {
        memset(&local, 0, sizeof local);
        errs = &local;
    }
    int before = errs->count;
    saga_definition_t *def = saga_calloc(1, sizeof *def);
    if (!def) {
        def_add_err(errs, "", "out of memory");
        return NULL;
    }
    if (!json) def_add_err(errs, "", "no document");
    else validate(def, json, errs);
    if (errs->count != before) {
        definition_release(def);
        return NULL;
    }
    if (finish(def, json) != 0) {
        def_add_err(errs, "", "out of memory");
        definition_release(def);
        return NULL;
    }
    return def;
}

saga_definition_t *saga_definition_parse(const char *text, size_t len, saga_def_errors_t *errs) {
    saga_def_errors_t local;
    if (!errs) {
        memset(&local, 0, sizeof local);
        errs = &local;
    }
    json_error_t jerr = {0}; /* jansson leaves it unset when its first allocation fails */
    json_t *json = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (!json) {
        /* jansson leaves the error empty when its first allocation fails */
        if (json_error_code(&jerr) == json_error_out_of_memory || jerr.text[0] == '\0')
            def_add_err(errs, "", "out of memory");
        else add_err_lc(errs, "", jerr.line, jerr.column, "%s", jerr.text);
        return NULL;
    }
    saga_definition_t *def = saga_definition_from_json(json, errs);
    json_decref(json);
    return def;
}
