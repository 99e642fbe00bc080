/* Rebuilds a saga from its lifecycle events. Mirrors, event by event, what
 * engine.c does to saga_t next to each set_status/set_step_status call, so
 * the result is exactly the engine's state (tests/unit/test_engine_sim.c
 * checks that after every event of 10,000 random sagas). */
#include "replay.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "saga_alloc.h"
#include "saga_clock.h"
#include "saga_error.h"
#include "saga_utf8.h"
#include "transitions.h"

#define SIGNAL_KEPT -2 /* signal.received: a signal kept with its pending step, no status change */

/* What each event name does to the saga or step status. */
static const struct {
    const char *name;
    int saga_status; /* -1: a step event */
    int step_status; /* -1: a saga event */
} EVENTS[] = {
    {"saga.started", SAGA_STATUS_RUNNING, -1},
    {"saga.scheduled", SAGA_STATUS_SCHEDULED, -1},
    {"saga.completed", SAGA_STATUS_COMPLETED, -1},
    {"saga.compensating", SAGA_STATUS_COMPENSATING, -1},
    {"saga.compensated", SAGA_STATUS_COMPENSATED, -1},
    {"saga.compensation_failed", SAGA_STATUS_COMPENSATION_FAILED, -1},
    {"saga.retried", SAGA_STATUS_COMPENSATING, -1},
    {"step.started", -1, SAGA_STEP_RUNNING},
    {"step.waiting", -1, SAGA_STEP_WAITING},
    {"signal.received", -1, SIGNAL_KEPT},
    {"step.succeeded", -1, SAGA_STEP_SUCCEEDED},
    {"step.failed", -1, SAGA_STEP_FAILED},
    {"step.unknown", -1, SAGA_STEP_UNKNOWN},
    {"step.retry_scheduled", -1, SAGA_STEP_RETRY_WAIT},
    {"step.cancelled", -1, SAGA_STEP_CANCELLED},
    {"step.queued", -1, SAGA_STEP_QUEUED},
    {"compensation.queued", -1, SAGA_STEP_COMPENSATION_QUEUED},
    {"compensation.started", -1, SAGA_STEP_COMPENSATING},
    {"compensation.succeeded", -1, SAGA_STEP_COMPENSATED},
    {"compensation.skipped", -1, SAGA_STEP_COMPENSATED},
    {"compensation.retry_scheduled", -1, SAGA_STEP_COMPENSATION_RETRY_WAIT},
    {"compensation.failed", -1, SAGA_STEP_COMPENSATION_FAILED},
};
#define EVENT_COUNT (int)(sizeof EVENTS / sizeof EVENTS[0])

/* ---- helpers -------------------------------------------------------------- */

typedef struct {
    char *err;
    size_t errlen;
    long long seq;
    const char *name;
} ctx_t;

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static int fail(ctx_t *c, const char *fmt, ...) {
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (c->err && c->errlen)
        snprintf(c->err, c->errlen, "event seq %lld (%s): %s", c->seq, c->name ? c->name : "?", what);
    return SAGA_EPARSE;
}

static bool get_int(const json_t *obj, const char *key, int64_t *out) {
    const json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v)) return false;
    *out = (int64_t)json_integer_value(v);
    return true;
}

/* detail.attempt, required. */
static int need_attempt(ctx_t *c, const json_t *detail, int *out) {
    int64_t v;
    if (!get_int(detail, "attempt", &v)) return fail(c, "detail.attempt missing or not an integer");
    if (v < 1 || v > 1000000000) return fail(c, "detail.attempt %lld out of range", (long long)v);
    *out = (int)v;
    return 0;
}

/* Copies detail.code / detail.message into a step's error, as
 * set_step_error does (same buffers, same truncation). */
static int take_error(ctx_t *c, const json_t *detail, char *code, size_t code_len, char *msg,
                      size_t msg_len, bool required) {
    const json_t *jc = json_object_get(detail, "code"), *jm = json_object_get(detail, "message");
    if (!jc && !required) return 0;
    if (!json_is_string(jc)) return fail(c, "detail.code missing or not a string");
    if (jm && !json_is_string(jm)) return fail(c, "detail.message is not a string");
    saga_utf8_copy(code, code_len, json_string_value(jc));
    saga_utf8_copy(msg, msg_len, jm ? json_string_value(jm) : "");
    return 0;
}

static int parse_at(ctx_t *c, const json_t *ev, int64_t *at) {
    const json_t *v = json_object_get(ev, "at");
    if (json_is_integer(v)) {
        *at = (int64_t)json_integer_value(v);
        return 0;
    }
    if (json_is_string(v) && saga_parse_time(json_string_value(v), at) == 0) return 0;
    return fail(c, "'at' missing or not an RFC 3339 time / integer milliseconds");
}

static int event_index(const char *name) {
    for (int i = 0; name && i < EVENT_COUNT; i++)
        if (strcmp(EVENTS[i].name, name) == 0) return i;
    return -1;
}

/* ---- one event -------------------------------------------------------------- */

void saga_replay_init(saga_t *s, const saga_definition_t *def, const char *saga_id) {
    saga_init(s, saga_id, def, NULL, "", 0);
}

static int saga_event(ctx_t *c, saga_t *s, int kind, const json_t *detail, int64_t at) {
    const char *name = EVENTS[kind].name;
    bool started = strcmp(name, "saga.started") == 0, scheduled = strcmp(name, "saga.scheduled") == 0;
    if (s->seq == 0 && !started && !scheduled)
        return fail(c, "the first event must be saga.started or saga.scheduled");
    if (s->seq > 0 && scheduled) return fail(c, "saga.scheduled after the first event");
    if (s->seq > 0 && started && s->status != SAGA_STATUS_SCHEDULED) return fail(c, "saga.started again");
    saga_status_t to = (saga_status_t)EVENTS[kind].saga_status;
    if (s->seq > 0 && !saga_transition_allowed(s->status, to, name))
        return fail(c, "the saga cannot go from %s to %s by %s", saga_status_name(s->status), saga_status_name(to),
                    name);

    if (scheduled) { /* a delayed start: the input now, the deadline when it begins */
        const json_t *input = json_object_get(detail, "input");
        int64_t begin_at;
        if (!input) return fail(c, "detail.input missing");
        if (!get_int(detail, "begin_at", &begin_at)) return fail(c, "detail.begin_at missing or not an integer");
        json_t *copy = json_deep_copy(input);
        if (!copy) return SAGA_ENOMEM;
        json_decref(s->input);
        s->input = copy;
        s->created_at = at;
    } else if (started) {
        const json_t *input = json_object_get(detail, "input");
        if (!input) return fail(c, "detail.input missing");
        int64_t deadline;
        if (!get_int(detail, "deadline_at", &deadline))
            /* older history: the engine computes it this way */
            deadline = s->def->timeout_ms > 0 ? at + s->def->timeout_ms : 0;
        json_t *copy = json_deep_copy(input);
        if (!copy) return SAGA_ENOMEM;
        json_decref(s->input);
        s->input = copy;
        if (s->seq == 0) s->created_at = at; /* a scheduled saga was created when it was scheduled */
        s->deadline_at = deadline;
    } else if (strcmp(name, "saga.compensating") == 0) {
        const json_t *code = json_object_get(detail, "code"), *msg = json_object_get(detail, "message");
        if (!json_is_string(code)) return fail(c, "detail.code missing or not a string");
        if (msg && !json_is_string(msg)) return fail(c, "detail.message is not a string");
        saga_utf8_copy(s->error_code, sizeof s->error_code, json_string_value(code));
        saga_utf8_copy(s->error_message, sizeof s->error_message, msg ? json_string_value(msg) : "");
    } else if (strcmp(name, "saga.retried") == 0) {
        int i = 0;
        while (i < s->def->step_count && s->steps[i].status != SAGA_STEP_COMPENSATION_FAILED) i++;
        if (i == s->def->step_count) return fail(c, "no step is compensation_failed");
        s->steps[i].comp_budget_base = s->steps[i].comp_attempt;
    }
    s->status = to;
    return 0;
}

/* signal.received: the signal is kept with its pending step (engine.c on_signal). */
static int signal_kept(ctx_t *c, saga_t *s, int i, const json_t *detail) {
    saga_step_state_t *st = &s->steps[i];
    if (s->def->steps[i].kind != SAGA_STEP_KIND_SIGNAL) return fail(c, "step '%s' is not a signal step", s->def->steps[i].name);
    if (st->status != SAGA_STEP_PENDING || st->signal) return fail(c, "step '%s' cannot keep a signal now", s->def->steps[i].name);
    const char *status = json_string_value(json_object_get(detail, "status"));
    if (!status || (strcmp(status, "success") && strcmp(status, "failure")))
        return fail(c, "detail.status must be success or failure");
    json_t *copy = json_deep_copy(detail);
    if (!copy) return SAGA_ENOMEM;
    json_object_del(copy, "signal"); /* the engine keeps the signal without its name */
    st->signal = copy;
    return 0;
}

static int step_event(ctx_t *c, saga_t *s, int kind, int i, const json_t *detail, int64_t at) {
    const char *name = EVENTS[kind].name;
    saga_step_state_t *st = &s->steps[i];
    if (EVENTS[kind].step_status == SIGNAL_KEPT) {
        if (s->seq == 0) return fail(c, "the first event must be saga.started or saga.scheduled");
        if (s->status != SAGA_STATUS_RUNNING && s->status != SAGA_STATUS_SCHEDULED)
            return fail(c, "signal kept while the saga is %s", saga_status_name(s->status));
        return signal_kept(c, s, i, detail);
    }
    saga_step_status_t prev = st->status, to = (saga_step_status_t)EVENTS[kind].step_status;
    int attempt = 0, rc = 0;
    if (s->seq == 0) return fail(c, "the first event must be saga.started or saga.scheduled");
    if (saga_status_is_terminal(s->status)) return fail(c, "step event after the saga became %s",
                                                        saga_status_name(s->status));
    if (!saga_step_transition_allowed(prev, to, name))
        return fail(c, "step '%s' cannot go from %s to %s by %s", s->def->steps[i].name,
                    saga_step_status_name(prev), saga_step_status_name(to), name);

    /* step.cancelled and step.queued carry no attempt; step.unknown has one
     * unless it comes from giving up a retry wait or a queue */
    if (strncmp(name, "step.", 5) == 0 && strcmp(name, "step.cancelled") != 0 && strcmp(name, "step.queued") != 0 &&
        (strcmp(name, "step.unknown") != 0 || json_object_get(detail, "attempt"))) {
        if ((rc = need_attempt(c, detail, &attempt))) return rc;
        bool is_started = strcmp(name, "step.started") == 0 || strcmp(name, "step.waiting") == 0;
        bool is_failed = strcmp(name, "step.failed") == 0; /* also a template failure: a new attempt */
        if (is_started ? attempt != st->attempt + 1
                       : !(attempt == st->attempt || (is_failed && attempt == st->attempt + 1)))
            return fail(c, "attempt %d does not follow attempt %d", attempt, st->attempt);
        if (st->attempt == 0) st->started_at = at;
        st->attempt = attempt;
    }
    if (strncmp(name, "compensation.", 13) == 0 && strcmp(name, "compensation.skipped") != 0 &&
        strcmp(name, "compensation.queued") != 0) {
        if ((rc = need_attempt(c, detail, &attempt))) return rc;
        bool is_started = strcmp(name, "compensation.started") == 0;
        bool is_failed = strcmp(name, "compensation.failed") == 0;
        if (is_started ? attempt != st->comp_attempt + 1
                       : !(attempt == st->comp_attempt || (is_failed && attempt == st->comp_attempt + 1)))
            return fail(c, "compensation attempt %d does not follow attempt %d", attempt, st->comp_attempt);
        st->comp_attempt = attempt;
    }

    switch (to) {
    case SAGA_STEP_SUCCEEDED: {
        const json_t *output = json_object_get(detail, "output");
        if (!output) return fail(c, "detail.output missing");
        json_t *copy = json_deep_copy(output);
        if (!copy) return SAGA_ENOMEM;
        json_decref(st->output);
        st->output = copy;
        st->error_code[0] = st->error_message[0] = '\0';
        st->finished_at = at;
        st->completion_order = ++s->completions;
        break;
    }
    case SAGA_STEP_FAILED:
        rc = take_error(c, detail, st->error_code, sizeof st->error_code, st->error_message,
                        sizeof st->error_message, true);
        st->finished_at = at;
        break;
    case SAGA_STEP_UNKNOWN:
        rc = take_error(c, detail, st->error_code, sizeof st->error_code, st->error_message,
                        sizeof st->error_message, false);
        st->finished_at = at;
        st->outcome_unknown = true;
        st->completion_order = ++s->completions;
        break;
    case SAGA_STEP_RETRY_WAIT: {
        rc = take_error(c, detail, st->error_code, sizeof st->error_code, st->error_message,
                        sizeof st->error_message, true);
        const json_t *unknown = json_object_get(detail, "outcome_unknown");
        if (json_is_boolean(unknown))
            st->outcome_unknown = json_is_true(unknown);
        else if (strcmp(st->error_code, "STEP_TIMEOUT") == 0) /* history written before the flag */
            st->outcome_unknown = true;
        break;
    }
    case SAGA_STEP_CANCELLED: /* a step that was waiting to (re)start: it had started */
        if (prev == SAGA_STEP_RETRY_WAIT || prev == SAGA_STEP_QUEUED || prev == SAGA_STEP_WAITING) st->finished_at = at;
        break;
    case SAGA_STEP_COMPENSATED:
        if (strcmp(name, "compensation.succeeded") == 0) st->error_code[0] = st->error_message[0] = '\0';
        break;
    case SAGA_STEP_COMPENSATION_RETRY_WAIT:
    case SAGA_STEP_COMPENSATION_FAILED:
        rc = take_error(c, detail, st->error_code, sizeof st->error_code, st->error_message,
                        sizeof st->error_message, true);
        break;
    default: /* RUNNING, QUEUED, COMPENSATING, COMPENSATION_QUEUED */
        break;
    }
    if (rc) return rc;
    st->status = to;
    st->updated_at = at;
    return 0;
}

int saga_replay_event(saga_t *s, const json_t *ev, char *err, size_t errlen) {
    ctx_t c = {.err = err, .errlen = errlen, .seq = -1};
    if (err && errlen) err[0] = '\0';
    if (!json_is_object(ev)) return fail(&c, "not a JSON object");
    int64_t seq, at;
    if (!get_int(ev, "seq", &seq)) return fail(&c, "'seq' missing or not an integer");
    c.seq = (long long)seq;
    const json_t *jname = json_object_get(ev, "event");
    c.name = json_string_value(jname);
    if (!c.name) return fail(&c, "'event' missing or not a string");
    int kind = event_index(c.name);
    if (kind < 0) return fail(&c, "unknown event name");
    if (seq != s->seq + 1) {
        if (seq <= s->seq) return fail(&c, "duplicate or out of order: seq %lld already applied", (long long)seq);
        return fail(&c, "missing event: expected seq %lld", (long long)(s->seq + 1));
    }
    int rc = parse_at(&c, ev, &at);
    if (rc) return rc;
    const char *sid = json_string_value(json_object_get(ev, "saga_id"));
    if (json_object_get(ev, "saga_id") && (!sid || strcmp(sid, s->id) != 0))
        return fail(&c, "saga_id '%s' is not '%s'", sid ? sid : "(not a string)", s->id);
    const char *defname = json_string_value(json_object_get(ev, "definition"));
    if (json_object_get(ev, "definition") && (!defname || strcmp(defname, s->def->name) != 0))
        return fail(&c, "definition '%s' is not '%s'", defname ? defname : "(not a string)", s->def->name);
    int64_t version;
    if (json_object_get(ev, "version") && (!get_int(ev, "version", &version) || version != s->def->version))
        return fail(&c, "version is not %d", s->def->version);
    const json_t *detail = json_object_get(ev, "detail");
    json_t *empty = NULL;
    if (detail && !json_is_object(detail)) return fail(&c, "'detail' is not an object");
    if (!detail) detail = empty = json_object();
    if (!detail) return SAGA_ENOMEM;

    const json_t *jstep = json_object_get(ev, "step");
    const char *step_name = json_string_value(jstep);
    if (EVENTS[kind].saga_status >= 0) {
        if (jstep && !json_is_null(jstep)) rc = fail(&c, "a saga event names step '%s'", step_name ? step_name : "?");
        else rc = saga_event(&c, s, kind, detail, at);
    } else {
        int i = step_name ? saga_definition_step_index(s->def, step_name) : -1;
        if (!step_name) rc = fail(&c, "'step' missing on a step event");
        else if (i < 0) rc = fail(&c, "step '%s' is not in %s v%d", step_name, s->def->name, s->def->version);
        else rc = step_event(&c, s, kind, i, detail, at);
        if (!rc) {
            const char *ss = json_string_value(json_object_get(ev, "step_status"));
            if (json_object_get(ev, "step_status") && (!ss || saga_step_status_parse(ss) != (int)s->steps[i].status))
                rc = fail(&c, "step_status '%s' does not match the event (%s)", ss ? ss : "?",
                          saga_step_status_name(s->steps[i].status));
        }
    }
    json_decref(empty);
    if (rc) return rc;
    const char *status = json_string_value(json_object_get(ev, "status"));
    if (json_object_get(ev, "status") && (!status || saga_status_parse(status) != (int)s->status))
        return fail(&c, "status '%s' does not match the saga's (%s)", status ? status : "?",
                    saga_status_name(s->status));
    s->seq = seq;
    s->updated_at = at;
    return 0;
}

/* ---- a whole history ---------------------------------------------------------- */

static int by_seq(const void *a, const void *b) {
    json_int_t x = json_integer_value(json_object_get(*(const json_t *const *)a, "seq"));
    json_int_t y = json_integer_value(json_object_get(*(const json_t *const *)b, "seq"));
    return x < y ? -1 : x > y;
}

int saga_replay(const saga_definition_t *def, const char *saga_id, const json_t *const *events, int n,
                int64_t until_ms, saga_t *out, char *err, size_t errlen) {
    saga_replay_init(out, def, saga_id);
    if (!err) errlen = 0; /* snprintf(NULL, 0, ...) is fine */
    if (errlen) err[0] = '\0';
    if (n < 0 || (n > 0 && !events)) {
        snprintf(err, errlen, "no events given");
        return SAGA_EINVAL;
    }
    const json_t **sorted = saga_malloc((size_t)(n ? n : 1) * sizeof *sorted);
    if (!sorted) return SAGA_ENOMEM;
    for (int i = 0; i < n; i++) {
        if (!json_is_integer(json_object_get(events[i], "seq"))) {
            snprintf(err, errlen, "event #%d: not an object with an integer 'seq'", i);
            saga_free(sorted);
            return SAGA_EPARSE;
        }
        sorted[i] = events[i];
    }
    qsort(sorted, (size_t)n, sizeof *sorted, by_seq);
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        int64_t at;
        ctx_t c = {.err = err, .errlen = errlen, .seq = (long long)json_integer_value(json_object_get(sorted[i], "seq")),
                   .name = json_string_value(json_object_get(sorted[i], "event"))};
        if ((rc = parse_at(&c, sorted[i], &at))) break;
        if (at > until_ms) break; /* `at` never decreases along seq */
        rc = saga_replay_event(out, sorted[i], err, errlen);
    }
    saga_free(sorted);
    if (!rc && out->seq == 0) {
        snprintf(err, errlen, "saga '%s' has no event at or before %lld", saga_id, (long long)until_ms);
        rc = SAGA_ENOTFOUND;
    }
    if (rc) {
        saga_clear(out);
        saga_replay_init(out, def, saga_id);
    }
    return rc;
}

/* ---- comparison --------------------------------------------------------------- */

#define DIFF(...) do { if (diff && len) snprintf(diff, len, __VA_ARGS__); return false; } while (0)
#define CMP_INT(prefix, a, b, field)                                                            \
    if ((a).field != (b).field)                                                                 \
        DIFF("%s" #field ": %lld != %lld", prefix, (long long)(a).field, (long long)(b).field)
#define CMP_STR(prefix, a, b, field)                                                            \
    if (strcmp((a).field, (b).field) != 0) DIFF("%s" #field ": '%s' != '%s'", prefix, (a).field, (b).field)

static bool json_same(const json_t *a, const json_t *b) {
    if (!a || !b) return a == b;
    return json_equal((json_t *)a, (json_t *)b);
}

bool saga_equal(const saga_t *a, const saga_t *b, char *diff, size_t len) {
    if (diff && len) diff[0] = '\0';
    CMP_STR("", *a, *b, id);
    if (!a->def || !b->def) {
        if (a->def != b->def) DIFF("def: one is NULL");
    } else if (strcmp(a->def->name, b->def->name) != 0 || a->def->version != b->def->version) {
        DIFF("def: %s v%d != %s v%d", a->def->name, a->def->version, b->def->name, b->def->version);
    }
    if (a->status != b->status)
        DIFF("status: %s != %s", saga_status_name(a->status), saga_status_name(b->status));
    if (!json_same(a->input, b->input)) DIFF("input differs");
    CMP_INT("", *a, *b, created_at);
    CMP_INT("", *a, *b, updated_at);
    CMP_INT("", *a, *b, deadline_at);
    CMP_INT("", *a, *b, seq);
    CMP_INT("", *a, *b, completions);
    CMP_STR("", *a, *b, error_code);
    CMP_STR("", *a, *b, error_message);
    int steps = a->def ? a->def->step_count : 0;
    for (int i = 0; i < steps; i++) {
        const saga_step_state_t *x = &a->steps[i], *y = &b->steps[i];
        char p[SAGA_NAME_MAX + 32];
        snprintf(p, sizeof p, "steps[%d] (%s).", i, a->def->steps[i].name);
        if (x->status != y->status)
            DIFF("%sstatus: %s != %s", p, saga_step_status_name(x->status), saga_step_status_name(y->status));
        CMP_INT(p, *x, *y, attempt);
        CMP_INT(p, *x, *y, comp_attempt);
        CMP_INT(p, *x, *y, comp_budget_base);
        CMP_INT(p, *x, *y, outcome_unknown);
        if (!json_same(x->output, y->output)) DIFF("%soutput differs", p);
        if (!json_same(x->signal, y->signal)) DIFF("%skept signal differs", p);
        CMP_STR(p, *x, *y, error_code);
        CMP_STR(p, *x, *y, error_message);
        CMP_INT(p, *x, *y, started_at);
        CMP_INT(p, *x, *y, finished_at);
        CMP_INT(p, *x, *y, updated_at);
        CMP_INT(p, *x, *y, completion_order);
    }
    return true;
}

/* ---- history rows -------------------------------------------------------------- */

json_t *saga_history_row_event(const char *saga_id, int64_t seq, int64_t at_ms, const char *event,
                               const char *step, const char *status, const char *detail_json, char *err,
                               size_t errlen) {
    json_t *detail;
    if (!detail_json || !*detail_json) {
        detail = json_object();
    } else {
        json_error_t je = {0};
        /* ALLOW_NUL: inputs and outputs come in through saga_json_parse,
         * which takes "\u0000" inside strings, and the store keeps them so. */
        detail = json_loads(detail_json, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
        if (!json_is_object(detail)) {
            if (err && errlen)
                snprintf(err, errlen, "history row seq %lld (%s): detail is not a JSON object%s%s",
                         (long long)seq, event ? event : "?", detail ? "" : ": ", detail ? "" : je.text);
            json_decref(detail);
            return NULL;
        }
    }
    char at[40];
    json_t *ev = json_pack("{s:s, s:I, s:s, s:s?, s:o}", "saga_id", saga_id ? saga_id : "", "seq",
                           (json_int_t)seq, "at", saga_format_time(at_ms, at, sizeof at), "event", event,
                           "detail", detail);
    if (!ev) {
        if (err && errlen) snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (step) {
        json_object_set_new(ev, "step", json_string(step));
        if (status) json_object_set_new(ev, "step_status", json_string(status));
    } else if (status) {
        json_object_set_new(ev, "status", json_string(status));
    }
    return ev;
}
