/* libFuzzer target: what sagad does with a consumed record (scripts/fuzz,
 * docs/FUZZING.md), following orchestrator/loop.c without Kafka or SQLite:
 * saga_json_parse (its fast path and jansson), the start and the reply
 * parsers, then what handle_message does with a parsed message: a start
 * whose definition is in the registry (the repository's sagas/) starts a
 * saga; a reply to one of the sagas below (by saga_id) is applied to it
 * when it names one of its steps; in both cases the timers the engine set
 * then fire once; anything else becomes a dead letter. Every input goes to
 * both parsers (the type decides which one accepts it). Checks:
 *
 * - the fast parser and jansson agree: the fast path accepts only what
 *   jansson accepts, with an equal value and the same bytes when dumped;
 * - saga_json_dump writes exactly what json_dumps writes;
 * - each parser returns 0 with its required fields set, or an error
 *   message (non-empty), never both or neither;
 * - every dead letter's reason (the parsers' errors, and what the loop
 *   writes for an unknown definition, saga or step) is UTF-8, as it goes
 *   into the record's JSON headers;
 * - the names and ids of a parsed message (definition, saga_id, step) are
 *   1-127 printable ASCII bytes without '/', and a reply's attempt is >= 1;
 * - the engine answers 0 or SAGA_ESTALE (never SAGA_ESTATE: a transition
 *   transitions.h does not list); a start always changes the saga, and
 *   the same reply applied twice changes nothing the second time;
 * - its effects are what the store and the relay can write: commands and
 *   events are objects that dump, events carry gap-free seqs, an alert has
 *   a body, timers are in the future and name a slot of the saga;
 * - with a message size limit (issue 13): every command and event comes
 *   with the bytes to publish, within the limit: a command is its message
 *   dumped (one over the limit fails its step instead: PAYLOAD_TOO_LARGE),
 *   an event is its message dumped or a truncated copy saying
 *   "truncated": original size, with the same seq and event name;
 * - a refusal of a command by the broker (SAGA_EV_UNDELIVERABLE, with the
 *   step, kind and attempt of a fuzzed reply) gives 0 or SAGA_ESTALE, and
 *   the history still replays;
 * - replaying the events, as the store's history rows (detail dumped and
 *   read back), rebuilds the live saga exactly (saga_equal): what
 *   GET /v1/sagas/{id}?at= shows. */
#include "messages.h"
#include "replay.h"
#include "saga_alloc.h"
#include "saga_error.h"
#include "saga_json.h"
#include "saga_json_parse.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                 \
        }                                                                            \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define T0 1700000000000LL /* 2023-11-14T22:13:20Z */
#define TRACEPARENT "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
#define MAX_HISTORY 1024

static saga_registry_t *registry;
/* max_message_bytes is set for fuzzed starts only (the fixtures' replies
 * need their commands sent): a limit from the input's size, or none. */
static saga_engine_config_t engine = {.replies_topic = "saga.replies"};

/* ---- a saga driven like the loop drives it, with its history ---- */

typedef struct {
    saga_t s;
    uint64_t rng;
    int64_t now;
    json_t *history[MAX_HISTORY]; /* as saga_history_row_event gives them back */
    int n;
    int64_t timer_due[SAGA_MAX_STEPS + 1]; /* slot + 1; 0: none */
    saga_timer_kind_t timer_kind[SAGA_MAX_STEPS + 1];
    int timer_attempt[SAGA_MAX_STEPS + 1];
} run_t;

static run_t run;

static void check_utf8_json(const json_t *v) {
    char *text = saga_json_dump(v);
    CHECK(text != NULL);
    saga_free(text);
}

/* loop.c's dead_letter puts the reason into the record's JSON headers: it
 * must be UTF-8, or the transaction fails and sagad stops on the message
 * again after every restart. */
static void dead_letter(const char *reason) {
    CHECK(reason[0] != '\0');
    json_t *h = json_pack("{s:s}", "dlq_reason", reason);
    if (!h) fprintf(stderr, "dead letter reason is not UTF-8: %s\n", reason);
    CHECK(h != NULL);
    json_decref(h);
}

/* The bytes the relay would publish for e, under the engine's limit. */
static void check_text(const saga_effect_t *e) {
    if (!engine.max_message_bytes) {
        CHECK(e->text == NULL);
        return;
    }
    CHECK(e->text != NULL);
    size_t len = strlen(e->text);
    CHECK(len <= engine.max_message_bytes - SAGA_MESSAGE_RESERVE);
    char *whole = saga_json_dump(e->message);
    CHECK(whole != NULL);
    if (e->kind == SAGA_FX_COMMAND) {
        CHECK(strcmp(whole, e->text) == 0);
    } else if (strcmp(whole, e->text) != 0) {
        json_t *pub = json_loads(e->text, 0, NULL);
        CHECK(json_is_object(pub));
        CHECK(json_integer_value(json_object_get(pub, "truncated")) == (json_int_t)strlen(whole));
        CHECK(json_equal(json_object_get(pub, "seq"), json_object_get(e->message, "seq")));
        CHECK(json_equal(json_object_get(pub, "event"), json_object_get(e->message, "event")));
        json_decref(pub);
    }
    saga_free(whole);
}

/* What save_effect (store.c) does with each effect, minus SQLite. */
static void take_effects(run_t *r, const saga_effects_t *fx) {
    for (int i = 0; i < fx->count; i++) {
        const saga_effect_t *e = &fx->items[i];
        switch (e->kind) {
        case SAGA_FX_COMMAND:
            CHECK(e->topic && json_is_object(e->message));
            check_utf8_json(e->message);
            check_text(e);
            break;
        case SAGA_FX_EVENT: {
            const json_t *ev = e->message;
            CHECK(json_is_object(ev));
            check_utf8_json(ev);
            check_text(e);
            CHECK(json_integer_value(json_object_get(ev, "seq")) == r->n + 1);
            CHECK(r->n < MAX_HISTORY);
            const char *step = json_string_value(json_object_get(ev, "step"));
            const char *status = json_string_value(json_object_get(ev, "step_status"));
            char *detail = saga_json_dump(json_object_get(ev, "detail"));
            CHECK(detail != NULL);
            char err[256] = "";
            json_t *row = saga_history_row_event(r->s.id, r->n + 1, r->now,
                                                 json_string_value(json_object_get(ev, "event")), step,
                                                 status ? status : json_string_value(json_object_get(ev, "status")),
                                                 detail, err, sizeof err);
            if (!row) fprintf(stderr, "history row: %s\n", err);
            CHECK(row != NULL);
            saga_free(detail);
            r->history[r->n++] = row;
            break;
        }
        case SAGA_FX_ALERT:
            CHECK(json_is_object(e->message));
            check_utf8_json(e->message);
            break;
        case SAGA_FX_SET_TIMER:
            CHECK(e->slot >= -1 && e->slot < r->s.def->step_count);
            CHECK(e->due_at >= r->now);
            r->timer_due[e->slot + 1] = e->due_at;
            r->timer_kind[e->slot + 1] = e->timer_kind;
            r->timer_attempt[e->slot + 1] = e->timer_attempt;
            break;
        case SAGA_FX_CLEAR_TIMER:
            CHECK(e->slot >= -1 && e->slot < r->s.def->step_count);
            r->timer_due[e->slot + 1] = 0;
            break;
        case SAGA_FX_WAIT_FOR_ROOM:
            CHECK(0); /* no flow control here */
            break;
        }
    }
}

/* Applies ev as apply_and_save does; returns 0 or SAGA_ESTALE. */
static int apply(run_t *r, const saga_event_t *ev) {
    saga_effects_t fx;
    char why[512] = "";
    saga_effects_init(&fx);
    int rc = saga_engine_apply(&engine, &r->s, ev, r->now, &r->rng, &fx, why, sizeof why);
    if (rc != 0 && rc != SAGA_ESTALE) fprintf(stderr, "apply: %s: %s\n", saga_errname(rc), why);
    CHECK(rc == 0 || rc == SAGA_ESTALE);
    if (rc == SAGA_ESTALE) CHECK(fx.count == 0 && why[0]);
    if (rc == 0) take_effects(r, &fx);
    saga_effects_free(&fx);
    return rc;
}

static void start(run_t *r, const char *id, const saga_definition_t *def, json_t *input) {
    memset(r->timer_due, 0, sizeof r->timer_due);
    r->n = 0;
    r->rng = 42;
    r->now = T0;
    saga_init(&r->s, id, def, input, TRACEPARENT, r->now);
    saga_event_t ev = {.kind = SAGA_EV_START};
    CHECK(apply(r, &ev) == 0);
    CHECK(apply(r, &ev) == SAGA_ESTALE);
}

/* The reply to the command step has out (its action or its compensation,
 * whichever runs, at its current attempt). */
static int reply(run_t *r, const char *step, saga_reply_status_t status, const json_t *output) {
    int i = saga_definition_step_index(r->s.def, step);
    CHECK(i >= 0);
    const saga_step_state_t *st = &r->s.steps[i];
    int comp = st->status == SAGA_STEP_COMPENSATING;
    saga_event_t ev = {.kind = SAGA_EV_REPLY, .step = i, .command_kind = comp ? SAGA_KIND_COMPENSATION : SAGA_KIND_ACTION,
                       .attempt = comp ? st->comp_attempt : st->attempt, .reply_status = status, .output = output,
                       .error_code = "E", .error_message = "fixture"};
    return apply(r, &ev);
}

/* The loop's fire_timer for the timer in slot + 1 (-1: the deadline). */
static int fire_slot(run_t *r, int k) {
    saga_event_t ev = {.kind = SAGA_EV_TIMER, .slot = k - 1, .timer_kind = r->timer_kind[k],
                       .timer_attempt = r->timer_attempt[k]};
    if (r->timer_due[k] > r->now) r->now = r->timer_due[k];
    r->timer_due[k] = 0; /* saga_store_timer_delete */
    return apply(r, &ev);
}

/* Fires the timer of step (its backoff). */
static void fire(run_t *r, const char *step) {
    int k = saga_definition_step_index(r->s.def, step) + 1;
    CHECK(k > 0 && r->timer_due[k]);
    CHECK(fire_slot(r, k) == 0);
}

/* Every timer set, earliest first, once each. */
static void fire_timers(run_t *r) {
    bool fired[SAGA_MAX_STEPS + 1] = {0};
    for (;;) {
        int next = -1;
        for (int k = 0; k <= SAGA_MAX_STEPS; k++)
            if (r->timer_due[k] && !fired[k] && (next < 0 || r->timer_due[k] < r->timer_due[next])) next = k;
        if (next < 0) return;
        fired[next] = true;
        fire_slot(r, next);
    }
}

/* What GET /v1/sagas/{id}?at= rebuilds must be the saga itself. */
static void check_replay(run_t *r) {
    saga_t back;
    char err[512] = "";
    int rc = saga_replay(r->s.def, r->s.id, (const json_t *const *)r->history, r->n, INT64_MAX, &back, err,
                         sizeof err);
    if (rc) fprintf(stderr, "replay: %s\n", err);
    CHECK(rc == 0);
    char diff[512] = "";
    bool same = saga_equal(&r->s, &back, diff, sizeof diff);
    if (!same) fprintf(stderr, "replay differs: %s\n", diff);
    CHECK(same);
    saga_clear(&back);
}

static void finish(run_t *r) {
    fire_timers(r);
    check_replay(r);
    for (int i = 0; i < r->n; i++) json_decref(r->history[i]);
    r->n = 0;
    saga_clear(&r->s);
}

/* ---- the sagas a reply may address ---- */

typedef enum { FX_STARTED, FX_COMPENSATING, FX_LAST_STEP, FX_RETRIED, FX_LAST_ATTEMPT, FX_LAST_COMP_ATTEMPT } fixture_kind_t;

/* Each is checked to be where its comment says: `step` is `status`. */
static const struct {
    const char *id, *definition;
    fixture_kind_t kind;
    const char *step;
    saga_step_status_t status;
    int attempt;
} fixtures[] = {
    /* create_order running, attempt 1 */
    {"s-1", "order_fulfillment", FX_STARTED, "create_order", SAGA_STEP_RUNNING, 1},
    /* payment declined: reserve_inventory compensating (its first attempt) */
    {"s-2", "order_fulfillment", FX_COMPENSATING, "reserve_inventory", SAGA_STEP_COMPENSATING, 1},
    /* notify running */
    {"s-3", "order_fulfillment", FX_LAST_STEP, "notify", SAGA_STEP_RUNNING, 1},
    /* flight and hotel running in parallel */
    {"s-4", "trip_booking", FX_STARTED, "reserve_hotel", SAGA_STEP_RUNNING, 1},
    /* hotel retried (attempt 2 running), flight done */
    {"s-5", "trip_booking", FX_RETRIED, "reserve_hotel", SAGA_STEP_RUNNING, 2},
    /* create_order at its last attempt (5): one more retry gives up */
    {"s-6", "order_fulfillment", FX_LAST_ATTEMPT, "create_order", SAGA_STEP_RUNNING, 5},
    /* reserve_inventory's compensation at its last attempt (10): one more
     * failure makes the saga compensation_failed (an alert) */
    {"s-7", "order_fulfillment", FX_LAST_COMP_ATTEMPT, "reserve_inventory", SAGA_STEP_COMPENSATING, 10},
    /* an approval saga: its signal step manager_approval not reached yet (a signal is kept) */
    {"s-8", "order_approval", FX_STARTED, "create_order", SAGA_STEP_RUNNING, 1},
};

static void build_fixture(run_t *r, size_t k) {
    const saga_definition_t *def = saga_registry_get(registry, fixtures[k].definition, 0);
    CHECK(def != NULL);
    json_t *input = json_pack("{s:s, s:s, s:i, s:[{s:s, s:i}], s:s, s:s, s:s, s:s}", "order_id", "o-1", "customer",
                              "c-1", "amount", 1999, "items", "sku", "a", "qty", 2, "trip_id", "t-1", "traveller", "ada",
                              "flight", "LH 400", "hotel", "Adlon");
    CHECK(input != NULL);
    start(r, fixtures[k].id, def, input);
    json_decref(input);
    json_t *out = json_pack("{s:s, s:s}", "payment_id", "p-1", "booking_id", "b-1");
    CHECK(out != NULL);
    fixture_kind_t kind = fixtures[k].kind;
    switch (kind) {
    case FX_STARTED:
        break;
    case FX_COMPENSATING:
    case FX_LAST_STEP:
    case FX_LAST_COMP_ATTEMPT:
        CHECK(reply(r, "create_order", SAGA_REPLY_SUCCESS, out) == 0);
        CHECK(reply(r, "reserve_inventory", SAGA_REPLY_SUCCESS, out) == 0);
        CHECK(reply(r, "charge_payment", kind == FX_LAST_STEP ? SAGA_REPLY_SUCCESS : SAGA_REPLY_FAILURE, out) == 0);
        for (int a = 1; kind == FX_LAST_COMP_ATTEMPT && a < 10; a++) {
            CHECK(reply(r, "reserve_inventory", SAGA_REPLY_FAILURE, NULL) == 0);
            fire(r, "reserve_inventory");
        }
        break;
    case FX_RETRIED:
        CHECK(reply(r, "reserve_hotel", SAGA_REPLY_RETRY, NULL) == 0);
        CHECK(reply(r, "reserve_flight", SAGA_REPLY_SUCCESS, out) == 0);
        fire(r, "reserve_hotel");
        break;
    case FX_LAST_ATTEMPT:
        for (int a = 1; a < 5; a++) {
            CHECK(reply(r, "create_order", SAGA_REPLY_RETRY, NULL) == 0);
            fire(r, "create_order");
        }
        break;
    }
    json_decref(out);
    const saga_step_state_t *st = &r->s.steps[saga_definition_step_index(r->s.def, fixtures[k].step)];
    CHECK(st->status == fixtures[k].status);
    CHECK((st->status == SAGA_STEP_COMPENSATING ? st->comp_attempt : st->attempt) == fixtures[k].attempt);
}

static void load_registry(void) {
    if (registry) return;
    registry = saga_registry_new();
    CHECK(registry != NULL);
    char report[1024] = "";
    int failed = saga_registry_load_dir(registry, SAGA_SOURCE_DIR "/sagas", report, sizeof report);
    if (failed) fprintf(stderr, "sagas/: %s\n", report);
    CHECK(failed == 0 && saga_registry_count(registry) >= 2);
}

/* start_saga: the definition from the registry, then saga.started. */
static void on_start(const saga_start_msg_t *m) {
    const saga_definition_t *def = saga_registry_get(registry, m->definition, m->version);
    if (!def) {
        char err[256];
        snprintf(err, sizeof err, "saga.start: unknown definition '%.100s'%s", m->definition,
                 m->version ? " at that version" : "");
        dead_letter(err);
        return;
    }
    json_t *input = m->input ? json_incref((json_t *)m->input) : json_object();
    CHECK(input != NULL);
    start(&run, m->saga_id ? m->saga_id : "s-0123456789abcdef", def, input);
    json_decref(input);
    finish(&run);
    engine.max_message_bytes = 0;
}

/* handle_reply: the saga by id (else a dead letter), the step by name (else
 * a dead letter), then the event. */
static void on_reply(const saga_reply_msg_t *m) {
    size_t k = 0;
    while (k < sizeof fixtures / sizeof fixtures[0] && strcmp(fixtures[k].id, m->saga_id) != 0) k++;
    if (k == sizeof fixtures / sizeof fixtures[0]) {
        char reason[700];
        snprintf(reason, sizeof reason, "saga.reply: unknown saga '%.128s'", m->saga_id);
        dead_letter(reason);
        return;
    }
    build_fixture(&run, k);
    int step = saga_definition_step_index(run.s.def, m->step);
    if (step < 0) {
        char err[512];
        snprintf(err, sizeof err, "saga.reply: saga '%.128s' has no step '%.128s'", m->saga_id, m->step);
        dead_letter(err);
    } else {
        run.now += 1000;
        saga_event_t ev = {.kind = SAGA_EV_REPLY, .step = step, .command_kind = m->kind, .attempt = m->attempt,
                           .reply_status = m->status, .output = m->output, .error_code = m->error_code,
                           .error_message = m->error_message};
        if (apply(&run, &ev) == 0) CHECK(apply(&run, &ev) == SAGA_ESTALE);
        /* the broker refuses that command for good (the relay parks it) */
        saga_event_t refused = {.kind = SAGA_EV_UNDELIVERABLE, .step = step, .command_kind = m->kind,
                                .attempt = m->attempt, .error_code = m->error_code,
                                .error_message = m->error_message};
        if (apply(&run, &refused) == 0) CHECK(apply(&run, &refused) == SAGA_ESTALE);
    }
    finish(&run);
}

/* handle_signal (signals.c): the saga by id, the signal step by name (else
 * dead letters), then the event; the same signal again changes nothing. */
static void on_signal(const saga_signal_msg_t *m) {
    size_t k = 0;
    while (k < sizeof fixtures / sizeof fixtures[0] && strcmp(fixtures[k].id, m->saga_id) != 0) k++;
    if (k == sizeof fixtures / sizeof fixtures[0]) {
        char reason[700];
        snprintf(reason, sizeof reason, "saga.signal: unknown saga '%.128s'", m->saga_id);
        dead_letter(reason);
        return;
    }
    build_fixture(&run, k);
    int step = saga_definition_signal_step(run.s.def, m->signal);
    if (step < 0) {
        char err[512];
        snprintf(err, sizeof err, "saga.signal: saga '%.128s' waits for no signal '%.128s'", m->saga_id, m->signal);
        dead_letter(err);
    } else {
        run.now += 1000;
        saga_event_t ev = {.kind = SAGA_EV_SIGNAL, .step = step, .reply_status = m->status, .output = m->output,
                           .error_code = m->error_code, .error_message = m->error_message};
        if (apply(&run, &ev) == 0) CHECK(apply(&run, &ev) == SAGA_ESTALE);
    }
    finish(&run);
}

/* 1-127 printable ASCII bytes without '/'. */
static void check_id(const char *id) {
    CHECK(id != NULL);
    size_t n = strlen(id);
    CHECK(n >= 1 && n <= 127 && !strchr(id, '/'));
    for (size_t i = 0; i < n; i++) CHECK(id[i] > 0x20 && id[i] < 0x7f);
}

static int has_real(const json_t *v) {
    const char *k;
    json_t *m;
    size_t i;
    if (json_is_real(v)) return 1;
    if (json_is_object(v)) json_object_foreach((json_t *)v, k, m) if (has_real(m)) return 1;
    if (json_is_array(v)) json_array_foreach(v, i, m) if (has_real(m)) return 1;
    return 0;
}

/* Byte for byte what jansson writes, but for reals: those are in their
 * shortest round-trip form, never longer than %.17g, read back equal. */
static void check_dump(const json_t *v) {
    char *ours = saga_json_dump(v);
    char *theirs = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
    CHECK((ours == NULL) == (theirs == NULL));
    if (ours && !has_real(v)) CHECK(strcmp(ours, theirs) == 0);
    if (ours && has_real(v)) {
        CHECK(strlen(ours) <= strlen(theirs));
        json_t *back = json_loads(ours, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        CHECK(back != NULL && json_equal(back, v));
        json_decref(back);
    }
    saga_free(ours);
    saga_free(theirs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    load_registry();
    const char *text = (const char *)data;
    json_error_t jerr;
    json_t *theirs = json_loadb(text, size, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    json_t *fast = saga_json_parse_fast(text, size);
    if (fast) {
        CHECK(theirs != NULL);
        CHECK(json_equal(fast, theirs));
        char *a = saga_json_dump(fast), *b = saga_json_dump(theirs);
        CHECK(a && b && strcmp(a, b) == 0);
        saga_free(a);
        saga_free(b);
    }
    char err[256] = "";
    json_t *root = saga_json_parse(text, size, err, sizeof err);
    CHECK((root != NULL) == (theirs != NULL));
    CHECK(root || err[0]);
    if (!root && size > 0) {
        char reason[300];
        snprintf(reason, sizeof reason, "invalid JSON: %s", err);
        dead_letter(reason);
    }
    if (root) {
        check_dump(root);
        saga_start_msg_t start_msg;
        char why[512] = "";
        if (saga_parse_start(root, &start_msg, why, sizeof why) == 0) {
            CHECK(start_msg.message_id && start_msg.message_id[0]);
            check_id(start_msg.definition);
            if (start_msg.saga_id) check_id(start_msg.saga_id);
            /* odd sizes: a limit of 2-6 KB (commands often over it, events truncated) */
            engine.max_message_bytes = size % 2 ? 2048 + 64 * (size % 64) : 0;
            on_start(&start_msg);
        } else {
            dead_letter(why);
        }
        saga_reply_msg_t reply_msg;
        why[0] = '\0';
        if (saga_parse_reply(root, &reply_msg, why, sizeof why) == 0) {
            CHECK(reply_msg.message_id && reply_msg.message_id[0]);
            check_id(reply_msg.saga_id);
            check_id(reply_msg.step);
            CHECK(reply_msg.attempt >= 1);
            on_reply(&reply_msg);
        } else {
            dead_letter(why);
        }
        saga_signal_msg_t signal_msg;
        why[0] = '\0';
        if (saga_parse_signal(root, &signal_msg, why, sizeof why) == 0) {
            check_id(signal_msg.saga_id);
            check_id(signal_msg.signal);
            CHECK(signal_msg.status == SAGA_REPLY_SUCCESS || signal_msg.status == SAGA_REPLY_FAILURE);
            CHECK(!signal_msg.output || signal_msg.status == SAGA_REPLY_SUCCESS);
            on_signal(&signal_msg);
        } else {
            dead_letter(why);
        }
    }
    json_decref(root);
    json_decref(fast);
    json_decref(theirs);
    return 0;
}
