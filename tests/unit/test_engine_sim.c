/* Randomized simulation of the pure engine: thousands of sagas on several
 * definition shapes, driven by random replies (success / failure / retry),
 * duplicates and replies for old attempts, timers from a fake timer table
 * (fed by SET_TIMER / CLEAR_TIMER effects) with a fake clock that jumps to
 * the next due timer, and operator abort / retry. Invariants are checked
 * after every event (see check_* below and docs in the report):
 *   (a) every saga ends in a terminal state within a bounded number of events;
 *   (b) compensation commands go exactly to the steps that succeeded or whose
 *       outcome is unknown and that have a compensation, in reverse completion
 *       order, one at a time, only when no action is in flight;
 *   (c) no action command after compensation began;
 *   (d) replaying the emitted events (saga_replay) gives the engine's saga;
 *   (e) seq is gap-free;
 *   (f) a stale event returns SAGA_ESTALE and changes nothing (saga bytes,
 *       JSON values, rng, no effects);
 *   (g) compensation_failed is only left by an operator retry;
 * and also: every timer in the table is accepted when it fires and every
 * other timer is stale; each running/waiting step has exactly its timer;
 * command message ids never repeat; an action starts only when its `after`
 * steps have succeeded.
 *
 * The invariant checks are in test_engine_sim_checks.c, the shapes and
 * main in test_engine_sim_shapes.c, the types they share with this driver
 * in test_engine_sim.h.
 *
 * Seed: random, printed; SAGA_SIM_SEED=<n> reproduces a run,
 * SAGA_SIM_SAGAS=<n> changes the number of sagas per shape,
 * SAGA_SIM_TRACE=1 prints every event of every saga. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_engine_sim.h"
#include "test_filter.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"
#include "flow.h"
#include "replay.h"
#include "saga_alloc.h"
#include "saga_clock.h"
#include "saga_error.h"

#define SAGAS_PER_SHAPE 1700 /* 6 shapes: 10,200 sagas */
#define EVENT_LIMIT 2000     /* (a): applied events per saga, stale ones included */
#define CALM_AFTER 40        /* then only successes and due timers: it must end soon */
#define MAX_OPERATOR_RETRIES 4

uint64_t g_seed;
int g_sagas = SAGAS_PER_SHAPE;
bool g_trace;
shape_t g_shape;

/* ---- one simulated saga ------------------------------------------------------ */

void trace(sim_t *s, const char *fmt, ...) {
    char *line = s->trace[s->ntrace++ % TRACE_LINES];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof s->trace[0], fmt, ap);
    va_end(ap);
    if (g_trace) fprintf(stderr, "[%s #%d] %s\n", g_shape.name, s->index, line);
}

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
void sim_fail(sim_t *s, const char *fmt, ...) {
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nSIM FAILURE shape=%s saga #%d (SAGA_SIM_SEED=%" PRIu64 ") after %ld events: %s\n",
            g_shape.name, s->index, g_seed, s->applied, msg);
    int first = s->ntrace > TRACE_LINES ? s->ntrace - TRACE_LINES : 0;
    fprintf(stderr, "last events:\n");
    for (int i = first; i < s->ntrace; i++) fprintf(stderr, "  %s\n", s->trace[i % TRACE_LINES]);
    fprintf(stderr, "state: status=%s seq=%lld\n", saga_status_name(s->saga.status), (long long)s->saga.seq);
    for (int i = 0; i < s->def->step_count; i++) {
        const saga_step_state_t *st = &s->saga.steps[i];
        fprintf(stderr, "  %s: %s attempt=%d comp_attempt=%d base=%d unknown=%d order=%d\n",
                s->def->steps[i].name, saga_step_status_name(st->status), st->attempt, st->comp_attempt,
                st->comp_budget_base, st->outcome_unknown, st->completion_order);
    }
    fail_msg("%s", msg);
}

static void deep_copy_saga(saga_t *dst, const saga_t *src) {
    *dst = *src;
    dst->input = src->input ? json_deep_copy(src->input) : NULL;
    dst->search = src->search ? json_deep_copy(src->search) : NULL;
    dst->parent = src->parent ? json_deep_copy(src->parent) : NULL;
    for (int i = 0; i < SAGA_MAX_STEPS; i++) {
        dst->steps[i].output = src->steps[i].output ? json_deep_copy(src->steps[i].output) : NULL;
        dst->steps[i].signal = src->steps[i].signal ? json_deep_copy(src->steps[i].signal) : NULL;
    }
}

static void refresh_shadows(sim_t *s);

static void sim_init(sim_t *s, const saga_definition_t *def, int index, uint64_t seed, stats_t *stats) {
    memset(s, 0, sizeof *s);
    s->def = def;
    s->cfg.replies_topic = "saga.replies";
    if (g_shape.flow) {
        s->flow = saga_flow_new(&g_shape.limits);
        assert_non_null(s->flow);
        s->cfg.flow = s->flow;
    }
    s->saga_seed = seed;
    s->rng = seed;
    s->eng_rng = splitmix(&s->rng);
    s->now = 1700000000000 + rnd(&s->rng, 1000000);
    s->index = index;
    s->stats = stats;
    char id[64];
    snprintf(id, sizeof id, "sim-%d", index);
    json_t *input = json_pack("{s:s, s:i}", "order_id", id, "n", index);
    saga_init(&s->saga, id, def, input, "00-abc-def-01", s->now);
    json_decref(input);
    saga_replay_init(&s->replica, def, id);
    saga_effects_init(&s->fx);
    refresh_shadows(s);
}

static void sim_free(sim_t *s) {
    saga_effects_free(&s->fx);
    saga_flow_free(&s->flow);
    json_decref(s->shadow_input);
    json_decref(s->shadow_of_input);
    for (int i = 0; i < SAGA_MAX_STEPS; i++) {
        json_decref(s->shadow_outputs[i]);
        json_decref(s->shadow_of_outputs[i]);
    }
    saga_clear(&s->saga);
    saga_clear(&s->replica);
    if (s->have_snap) saga_clear(&s->snap);
    for (int i = 0; i < s->nev; i++) json_decref(s->events[i]);
    saga_free(s->events);
    saga_free(s->cmds);
}

static int64_t next_due(const sim_t *s, int *slot) {
    int64_t best = INT64_MAX;
    *slot = -2;
    for (int i = 0; i <= s->def->step_count; i++)
        if (s->timers[i].set && s->timers[i].due < best) {
            best = s->timers[i].due;
            *slot = i - 1;
        }
    return best;
}

static const char *event_text(const saga_event_t *ev, char *buf, size_t len) {
    static const char *const st[] = {"success", "failure", "retry"};
    switch (ev->kind) {
    case SAGA_EV_START: snprintf(buf, len, "start"); break;
    case SAGA_EV_REPLY:
        snprintf(buf, len, "reply s%d %s #%d %s", ev->step, saga_command_kind_name(ev->command_kind), ev->attempt,
                 st[ev->reply_status]);
        break;
    case SAGA_EV_TIMER:
        snprintf(buf, len, "timer slot %d %s #%d", ev->slot, saga_timer_kind_name(ev->timer_kind), ev->timer_attempt);
        break;
    case SAGA_EV_ABORT: snprintf(buf, len, "abort"); break;
    case SAGA_EV_RETRY: snprintf(buf, len, "operator retry"); break;
    case SAGA_EV_RESUME: snprintf(buf, len, "resume slot %d", ev->slot); break;
    case SAGA_EV_UNDELIVERABLE:
        snprintf(buf, len, "undeliverable s%d %s #%d", ev->step, saga_command_kind_name(ev->command_kind), ev->attempt);
        break;
    case SAGA_EV_SIGNAL: snprintf(buf, len, "signal s%d %s", ev->step, st[ev->reply_status]); break;
    case SAGA_EV_COMPENSATE: snprintf(buf, len, "parent compensates #%d", ev->attempt); break;
    }
    return buf;
}

static void refresh_shadow(json_t **shadow, json_t **of, json_t *value) {
    if (*of == value) return;
    json_decref(*shadow);
    json_decref(*of);
    *shadow = value ? json_deep_copy(value) : NULL;
    *of = json_incref(value);
}

static void refresh_shadows(sim_t *s) {
    refresh_shadow(&s->shadow_input, &s->shadow_of_input, s->saga.input);
    for (int i = 0; i < s->def->step_count; i++)
        refresh_shadow(&s->shadow_outputs[i], &s->shadow_of_outputs[i], s->saga.steps[i].output);
}

/* Applies one event and checks everything. Returns the engine's rc. */
static int sim_apply(sim_t *s, const saga_event_t *ev) {
    char text[128], why[256] = "";
    saga_status_t prev_status = s->saga.status;
    /* (f) snapshot: the struct's bytes, its JSON values, the rng */
    /* the bytes that can change: the header, the definition's steps, step_dirty */
    size_t head = offsetof(saga_t, steps), used = (size_t)s->def->step_count * sizeof s->saga.steps[0];
    memcpy(&s->before, &s->saga, head + used);
    memcpy(s->before.step_dirty, s->saga.step_dirty, sizeof s->saga.step_dirty);
    uint64_t rng_before = s->eng_rng;
    saga_flow_topic_stats_t flow_before[8];
    int nflow = 0;
    while (s->flow && nflow < 8 && saga_flow_stats(s->flow, nflow, &flow_before[nflow])) nflow++;

    saga_effects_clear(&s->fx);
    int rc = saga_engine_apply(&s->cfg, &s->saga, ev, s->now, &s->eng_rng, &s->fx, why, sizeof why);
    s->applied++;
    s->stats->events++;
    trace(s, "t=%lld %s -> %s%s%s", (long long)(s->now % 1000000), event_text(ev, text, sizeof text),
          rc == 0 ? "ok" : saga_errname(rc), rc ? ": " : "", rc ? why : "");
    if (rc == SAGA_ESTALE) {
        s->stats->stale++;
        CHECK(s, s->fx.count == 0, "(f) stale event left %d effects", s->fx.count);
        CHECK(s, memcmp(&s->before, &s->saga, head + used) == 0 &&
                     memcmp(s->before.step_dirty, s->saga.step_dirty, sizeof s->saga.step_dirty) == 0,
              "(f) stale event changed the saga's bytes");
        CHECK(s, s->eng_rng == rng_before, "(f) stale event advanced the rng");
        for (int k = 0; k < nflow; k++) {
            saga_flow_topic_stats_t now;
            saga_flow_stats(s->flow, k, &now);
            CHECK(s, now.in_flight == flow_before[k].in_flight && now.waiting == flow_before[k].waiting &&
                         now.breaker == flow_before[k].breaker &&
                         now.consecutive_failures == flow_before[k].consecutive_failures,
                  "(f) stale event changed the flow of %s", now.topic);
        }
        CHECK(s, (!s->shadow_input && !s->saga.input) || json_equal(s->shadow_input, s->saga.input),
              "(f) stale event changed the input");
        for (int i = 0; i < s->def->step_count; i++)
            CHECK(s, (!s->shadow_outputs[i] && !s->saga.steps[i].output) ||
                         json_equal(s->shadow_outputs[i], s->saga.steps[i].output),
                  "(f) stale event changed s%d's output", i);
        CHECK(s, why[0], "stale without a reason");
    } else {
        CHECK(s, rc == 0, "apply failed: %s", saga_errname(rc));
        CHECK(s, s->fx.count > 0, "a change without effects");
        /* (g) */
        if (prev_status == SAGA_STATUS_COMPENSATION_FAILED)
            CHECK(s, ev->kind == SAGA_EV_RETRY, "(g) compensation_failed left by a non-operator event");
        /* a final saga changes only when its parent asks a child to undo itself */
        CHECK(s, !(prev_status == SAGA_STATUS_COMPLETED || prev_status == SAGA_STATUS_COMPENSATED) ||
                     (ev->kind == SAGA_EV_COMPENSATE && s->saga.parent),
              "a final saga (%s) changed", saga_status_name(prev_status));
        int alerts = 0, events = 0;
        for (int k = 0; k < s->fx.count; k++) {
            const saga_effect_t *e = &s->fx.items[k];
            switch (e->kind) {
            case SAGA_FX_EVENT: check_event(s, ev, e->message); events++; break;
            case SAGA_FX_COMMAND: check_command(s, e); break;
            case SAGA_FX_SET_TIMER:
                CHECK(s, e->slot >= -1 && e->slot < s->def->step_count, "timer slot %d", e->slot);
                CHECK(s, e->due_at >= s->now, "timer due in the past");
                s->timers[e->slot + 1] = (tmr_t){true, e->timer_kind, e->timer_attempt, e->due_at};
                break;
            case SAGA_FX_CLEAR_TIMER:
                CHECK(s, e->slot >= -1 && e->slot < s->def->step_count, "timer slot %d", e->slot);
                s->timers[e->slot + 1].set = false;
                break;
            case SAGA_FX_ALERT: alerts++; break;
            case SAGA_FX_WAIT_FOR_ROOM:
                CHECK(s, s->flow != NULL, "wait for room without flow control");
                CHECK(s, strcmp(e->topic, s->def->steps[e->slot].topic) == 0, "wait for room on %s", e->topic);
                assert_int_equal(saga_flow_enqueue(s->flow, e->topic, s->saga.id, e->slot), 0);
                s->stats->queued++;
                break;
            }
        }
        CHECK(s, events > 0, "a change without a lifecycle event");
        CHECK(s, s->saga.seq == s->nev, "(e) saga seq %lld, %d events", (long long)s->saga.seq, s->nev);
        CHECK(s, (alerts > 0) == (s->saga.status == SAGA_STATUS_COMPENSATION_FAILED), "alert mismatch");
        if (ev->kind == SAGA_EV_RETRY) CHECK(s, prev_status == SAGA_STATUS_COMPENSATION_FAILED, "(g) retry");
        /* completion order as observed */
        for (int k = 0; k < s->ncompleted; k++)
            CHECK(s, s->saga.steps[s->completed[k]].completion_order == k + 1, "completion order of s%d",
                  s->completed[k]);
        /* (d) */
        char diff[300];
        CHECK(s, saga_equal(&s->saga, &s->replica, diff, sizeof diff), "(d) replay differs: %s", diff);
        check_timers(s);
        /* a snapshot of the state at this time, for the until_ms check */
        if (s->have_snap && s->snap_at == s->now) {
            saga_clear(&s->snap);
            deep_copy_saga(&s->snap, &s->saga);
        } else if (chance(&s->rng, 12)) {
            if (s->have_snap) saga_clear(&s->snap);
            deep_copy_saga(&s->snap, &s->saga);
            s->have_snap = true;
            s->snap_at = s->now;
        }
    }
    refresh_shadows(s);
    return rc;
}

static bool reply_is_current(const sim_t *s, const cmd_t *c) {
    const saga_step_state_t *st = &s->saga.steps[c->step];
    if (saga_status_is_terminal(s->saga.status)) return false;
    if (c->kind == SAGA_KIND_ACTION) return st->status == SAGA_STEP_RUNNING && st->attempt == c->attempt;
    return st->status == SAGA_STEP_COMPENSATING && st->comp_attempt == c->attempt;
}

static const char *const CODES[] = {"E_BUSY", "PAYMENT_DECLINED", "STEP_TIMEOUT", NULL, ""};

void deliver_reply(sim_t *s, const cmd_t *c, int status) {
    char msg[400];
    int which = rnd(&s->rng, 8);
    if (which == 0) { /* longer than the state keeps */
        memset(msg, 'x', 300);
        msg[300] = '\0';
    } else {
        snprintf(msg, sizeof msg, "error %d", which);
    }
    json_t *out = json_pack("{s:i, s:i}", "step", c->step, "attempt", c->attempt);
    if (chance(&s->rng, 90)) json_object_set_new(out, "tok", json_sprintf("t-%d", c->step));
    saga_event_t ev = {.kind = SAGA_EV_REPLY, .step = c->step, .command_kind = c->kind, .attempt = c->attempt,
                       .reply_status = (saga_reply_status_t)status,
                       .output = chance(&s->rng, 5) ? NULL : out,
                       .error_code = status == SAGA_REPLY_SUCCESS ? NULL : CODES[rnd(&s->rng, 5)],
                       .error_message = chance(&s->rng, 10) ? NULL : msg};
    bool current = reply_is_current(s, c);
    int rc = sim_apply(s, &ev);
    CHECK(s, (rc == 0) == current, "reply (current=%d) got rc %d", current, rc);
    json_decref(out);
}

static int random_status(sim_t *s, saga_command_kind_t kind) {
    int r = rnd(&s->rng, 100);
    if (kind == SAGA_KIND_COMPENSATION) {
        if (r >= g_shape.comp_fail_pct) return SAGA_REPLY_SUCCESS;
        return chance(&s->rng, 50) ? SAGA_REPLY_FAILURE : SAGA_REPLY_RETRY;
    }
    if (r < g_shape.fail_pct) return SAGA_REPLY_FAILURE;
    if (r < g_shape.fail_pct + g_shape.retry_pct) return SAGA_REPLY_RETRY;
    return SAGA_REPLY_SUCCESS;
}

static bool fire_next_timer(sim_t *s) {
    int slot;
    int64_t due = next_due(s, &slot);
    if (slot < -1) return false;
    tmr_t t = s->timers[slot + 1];
    if (due > s->now) s->now = due;
    s->timers[slot + 1].set = false; /* the loop deletes a due timer before applying it */
    if (t.kind == SAGA_TIMER_STEP_TIMEOUT && s->saga.steps[slot].status == SAGA_STEP_RUNNING) {
        s->timed_out[slot] = true;
        s->stats->step_timeouts++;
    }
    if (t.kind == SAGA_TIMER_DEADLINE) s->stats->deadlines++;
    saga_event_t ev = {.kind = SAGA_EV_TIMER, .slot = slot, .timer_kind = t.kind, .timer_attempt = t.attempt};
    int rc = sim_apply(s, &ev);
    CHECK(s, rc == 0, "a timer from the table was stale: slot %d %s #%d", slot, saga_timer_kind_name(t.kind),
          t.attempt);
    return true;
}

static int waiting_total(const sim_t *s) {
    saga_flow_topic_stats_t t;
    int n = 0;
    for (int i = 0; s->flow && saga_flow_stats(s->flow, i, &t); i++) n += t.waiting;
    return n;
}

/* The loop resumes a waiter as soon as its topic has room; a stale one
 * (its step moved on) gives the room back. */
bool resume_ready(sim_t *s) {
    saga_flow_waiter_t w;
    if (!s->flow || !saga_flow_next_ready(s->flow, s->now, &w)) return false;
    CHECK(s, strcmp(w.saga_id, s->saga.id) == 0, "waiter of another saga");
    const saga_step_state_t *st = &s->saga.steps[w.slot];
    bool ok = (st->status == SAGA_STEP_QUEUED && s->saga.status == SAGA_STATUS_RUNNING) ||
              (st->status == SAGA_STEP_COMPENSATION_QUEUED && s->saga.status == SAGA_STATUS_COMPENSATING);
    saga_event_t ev = {.kind = SAGA_EV_RESUME, .slot = w.slot};
    int rc = sim_apply(s, &ev);
    CHECK(s, (rc == 0) == ok, "resume of s%d (%s) gave %d", w.slot, saga_step_status_name(st->status), rc);
    if (rc == SAGA_ESTALE) {
        saga_flow_release(s->flow, w.topic);
        s->stats->stale_resumes++;
    } else {
        s->stats->resumes++;
    }
    return true;
}

/* Nothing to reply to: whatever comes next in time (a resume, a timer, or
 * the breaker's cool-down running out). */
static void next_in_time(sim_t *s) {
    if (resume_ready(s)) return;
    int slot;
    int64_t due = next_due(s, &slot);
    if (waiting_total(s) > 0 && (slot < -1 || due > s->now + g_shape.limits.breaker_cooldown_ms)) {
        /* an open breaker lets a probe through after its cool-down; a full
         * bulkhead waits for the next timer */
        s->now += g_shape.limits.breaker_cooldown_ms;
        s->stats->breaker_waits++;
        if (slot < -1)
            CHECK(s, saga_flow_has_ready(s->flow, s->now), "(a) waiters, nothing in flight, and no room after the cool-down");
        return;
    }
    CHECK(s, fire_next_timer(s), "(a) nothing can move the saga: stuck");
}

/* A timer the engine did not set (or not any more): must be stale. */
void stale_timer(sim_t *s) {
    int slot = rnd(&s->rng, s->def->step_count + 1) - 1;
    saga_timer_kind_t kind = (saga_timer_kind_t)rnd(&s->rng, SAGA_TIMER__COUNT);
    int attempt = slot < 0 ? 0 : rnd(&s->rng, s->saga.steps[slot].attempt + 2); /* deadline: attempt unused */
    const tmr_t *t = &s->timers[slot + 1];
    if (t->set && t->kind == kind && t->attempt == attempt) return;
    saga_event_t ev = {.kind = SAGA_EV_TIMER, .slot = slot, .timer_kind = kind, .timer_attempt = attempt};
    int rc = sim_apply(s, &ev);
    CHECK(s, rc == SAGA_ESTALE, "a timer the engine did not set was accepted");
}

/* Advances the clock a little, never past the next due timer. */
static void tick(sim_t *s) {
    int slot;
    int64_t due = next_due(s, &slot);
    int64_t to = s->now + rnd(&s->rng, 300);
    s->now = to < due ? to : (due > s->now ? due : s->now);
}

void op_event(sim_t *s, saga_event_kind_t kind) {
    bool ok = kind == SAGA_EV_ABORT ? s->saga.status == SAGA_STATUS_RUNNING || s->saga.status == SAGA_STATUS_SCHEDULED
                                    : s->saga.status == SAGA_STATUS_COMPENSATION_FAILED;
    saga_event_t ev = {.kind = kind, .reason = chance(&s->rng, 50) ? "sim operator" : NULL};
    int rc = sim_apply(s, &ev);
    CHECK(s, (rc == 0) == ok, "operator %s rc %d", kind == SAGA_EV_ABORT ? "abort" : "retry", rc);
    if (ok && kind == SAGA_EV_ABORT) s->stats->aborts++;
    if (ok && kind == SAGA_EV_RETRY) {
        s->op_retries++;
        s->stats->op_retries++;
    }
}

/* A signal for signal step i (success unless fail): accepted exactly when
 * the step waits, or has not started and keeps no signal yet. */
static void deliver_signal(sim_t *s, int i, bool fail) {
    const saga_t *g = &s->saga;
    const saga_step_state_t *st = &g->steps[i];
    bool ok = !saga_status_is_terminal(g->status) &&
              (st->status == SAGA_STEP_WAITING ||
               (st->status == SAGA_STEP_PENDING && !st->signal &&
                (g->status == SAGA_STATUS_RUNNING || g->status == SAGA_STATUS_SCHEDULED)));
    json_t *out = json_pack("{s:i}", "sig", i);
    saga_event_t ev = {.kind = SAGA_EV_SIGNAL, .step = i, .reply_status = fail ? SAGA_REPLY_FAILURE : SAGA_REPLY_SUCCESS,
                       .output = fail ? NULL : out, .error_code = fail ? "REJECTED" : NULL,
                       .error_message = fail ? "sim says no" : NULL};
    int rc = sim_apply(s, &ev);
    json_decref(out);
    CHECK(s, (rc == 0) == ok, "signal for s%d (%s) rc %d", i, saga_step_status_name(st->status), rc);
    if (ok) s->stats->signals++;
}

/* A random signal step of the definition, or -1. */
static int some_signal_step(sim_t *s) {
    int idx[SAGA_MAX_STEPS], n = 0;
    for (int i = 0; i < s->def->step_count; i++)
        if (s->def->steps[i].kind == SAGA_STEP_KIND_SIGNAL) idx[n++] = i;
    return n ? idx[rnd(&s->rng, n)] : -1;
}

/* No timer set and nothing waiting for room: only a reply can move the saga. */
static bool nothing_due(sim_t *s) {
    int slot;
    return next_due(s, &slot) == INT64_MAX && !(s->flow && saga_flow_has_ready(s->flow, s->now)) && waiting_total(s) == 0;
}

/* One step of the driver; returns false when the saga is done. */
static bool drive(sim_t *s) {
    saga_t *g = &s->saga;
    bool calm = s->applied > CALM_AFTER;
    if (g->status == SAGA_STATUS_COMPLETED && g->parent && !s->parent_asked && chance(&s->rng, 50)) {
        /* a child saga whose parent compensates: it undoes its steps in reverse */
        s->parent_asked = true;
        s->comp_began = true;
        saga_event_t ev = {.kind = SAGA_EV_COMPENSATE, .attempt = 1};
        CHECK(s, sim_apply(s, &ev) == 0, "a completed child refused its parent's compensate");
        CHECK(s, g->status == SAGA_STATUS_COMPENSATING || g->status == SAGA_STATUS_COMPENSATED,
              "a completed child asked to compensate is %s", saga_status_name(g->status));
        return true;
    }
    if (g->status == SAGA_STATUS_COMPLETED || g->status == SAGA_STATUS_COMPENSATED) return false;
    if (g->status == SAGA_STATUS_COMPENSATION_FAILED) {
        if (s->op_retries >= MAX_OPERATOR_RETRIES || (!calm && chance(&s->rng, 20))) return false;
        if (chance(&s->rng, 30)) { /* the operator looks later: other events come first, all stale */
            if (s->ncmd) deliver_reply(s, &s->cmds[rnd(&s->rng, s->ncmd)], random_status(s, SAGA_KIND_ACTION));
            else stale_timer(s);
            return true;
        }
        s->now += rnd(&s->rng, 60000);
        op_event(s, SAGA_EV_RETRY);
        return true;
    }
    /* the current commands: their replies move the saga */
    int cur[SAGA_MAX_STEPS * 2], ncur = 0;
    for (int k = 0; k < s->ncmd; k++)
        if (reply_is_current(s, &s->cmds[k])) cur[ncur++] = k;
    int r = rnd(&s->rng, 1000);
    if (calm) {
        for (int i = 0; i < s->def->step_count; i++)
            if (g->steps[i].status == SAGA_STEP_WAITING) { /* its signal comes: it must end soon */
                tick(s);
                deliver_signal(s, i, false);
                return true;
            }
        if (ncur) {
            tick(s);
            deliver_reply(s, &s->cmds[cur[rnd(&s->rng, ncur)]], SAGA_REPLY_SUCCESS);
        } else {
            next_in_time(s);
        }
        return true;
    }
    if (s->flow && saga_flow_has_ready(s->flow, s->now) && chance(&s->rng, 60)) {
        resume_ready(s);
        return true;
    }
    int sig = some_signal_step(s);
    if (sig >= 0 && chance(&s->rng, 12)) { /* early, on time, late or twice: a signal from outside */
        tick(s);
        deliver_signal(s, sig, chance(&s->rng, 25));
        return true;
    }
    if (r < g_shape.abort_pct) {
        op_event(s, SAGA_EV_ABORT);
    } else if (r < g_shape.abort_pct + 5) {
        saga_event_t ev = {.kind = SAGA_EV_START};
        CHECK(s, sim_apply(s, &ev) == SAGA_ESTALE, "a second start was accepted");
    } else if (r < g_shape.abort_pct + 15) {
        op_event(s, SAGA_EV_RETRY); /* not compensation_failed: stale */
    } else if (r < 100) {
        stale_timer(s);
    } else if (r < 250 && s->ncmd) {
        /* a duplicate or a reply for an old attempt (reordering) */
        const cmd_t *c = &s->cmds[rnd(&s->rng, s->ncmd)];
        tick(s);
        deliver_reply(s, c, random_status(s, c->kind));
    } else if ((r < 450 || !ncur) && !(ncur && nothing_due(s))) {
        next_in_time(s); /* (a child step without a timeout has no timer: its answer comes instead) */
    } else {
        const cmd_t *c = &s->cmds[cur[rnd(&s->rng, ncur)]];
        tick(s);
        deliver_reply(s, c, random_status(s, c->kind));
    }
    return true;
}

static void run_one(int index, uint64_t seed, stats_t *stats) {
    static sim_t s; /* large: keep it off the stack */
    sim_init(&s, &g_shape.def, index, seed, stats);
    saga_event_t start = {.kind = SAGA_EV_START};
    if (chance(&s.rng, 15)) start.begin_at = s.now + 1 + rnd(&s.rng, 60000); /* a delayed start */
    if (!strcmp(g_shape.name, "children") && chance(&s.rng, 40)) /* itself a child saga */
        s.saga.parent = json_pack("{s:s, s:s, s:i, s:i}", "saga_id", "mom", "step", "kid", "attempt", 1, "partition", 3);
    CHECK(&s, sim_apply(&s, &start) == 0, "start refused");
    CHECK(&s, (s.saga.status == SAGA_STATUS_SCHEDULED) == (start.begin_at > 0), "a delayed start is not scheduled");
    stats->scheduled += start.begin_at > 0;
    for (int loops = 0; drive(&s); loops++)
        CHECK(&s, s.applied < EVENT_LIMIT && loops < 2 * EVENT_LIMIT, "(a) no end after %d events", EVENT_LIMIT);
    check_final(&s);
    stats->sagas++;
    stats->calm += s.applied > CALM_AFTER;
    if (s.applied > stats->max_events) stats->max_events = s.applied;
    sim_free(&s);
}

void run_shape(int shape_no) {
    stats_t stats = {0};
    int64_t t0 = saga_monotonic_us();
    uint64_t base = g_seed ^ ((uint64_t)shape_no << 56);
    for (int i = 0; i < g_sagas; i++) {
        uint64_t x = base + (uint64_t)i;
        run_one(i, splitmix(&x), &stats);
    }
    double secs = (double)(saga_monotonic_us() - t0) / 1e6;
    printf("sim %-10s seed=%" PRIu64 " sagas=%ld (calmed %ld) events=%ld (stale %ld, max/saga %ld) completed=%ld "
           "compensated=%ld compensation_failed=%ld operator_retries=%ld aborts=%ld deadlines=%ld "
           "step_timeouts=%ld template_failures=%ld compensation_commands=%ld full_replays=%ld queued=%ld "
           "resumes=%ld stale_resumes=%ld breaker_waits=%ld scheduled=%ld signals=%ld %.2fs\n",
           g_shape.name, g_seed, stats.sagas, stats.calm, stats.events, stats.stale, stats.max_events, stats.completed,
           stats.compensated, stats.comp_failed_final, stats.op_retries, stats.aborts, stats.deadlines,
           stats.step_timeouts, stats.template_failures, stats.comp_commands, stats.replays, stats.queued,
           stats.resumes, stats.stale_resumes, stats.breaker_waits, stats.scheduled, stats.signals, secs);
    assert_int_equal(stats.sagas, g_sagas);
}
