/* The engine simulation's invariant checks (test_engine_sim.h; the
 * invariants (a)-(g) are listed in test_engine_sim.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_engine_sim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "replay.h"
#include "saga_alloc.h"
#include "saga_clock.h"
#include "saga_error.h"

/* (b) for a compensation command for step i (checked on the state after the apply) */
static void check_compensation_command(sim_t *s, int i, int attempt) {
    const saga_t *g = &s->saga;
    const saga_step_state_t *st = &g->steps[i];
    CHECK(s, s->def->steps[i].compensation[0], "compensation command for s%d which has no compensation", i);
    CHECK(s, st->completion_order > 0, "compensation command for s%d which never succeeded nor is unknown", i);
    CHECK(s, g->status == SAGA_STATUS_COMPENSATING, "compensation command while saga is %s",
          saga_status_name(g->status));
    CHECK(s, st->status == SAGA_STEP_COMPENSATING, "compensation command but s%d is %s", i,
          saga_step_status_name(st->status));
    for (int k = 0; k < s->def->step_count; k++) {
        saga_step_status_t o = g->steps[k].status;
        if (k != i) {
            CHECK(s, o != SAGA_STEP_COMPENSATING && o != SAGA_STEP_COMPENSATION_RETRY_WAIT &&
                         o != SAGA_STEP_COMPENSATION_FAILED && o != SAGA_STEP_COMPENSATION_QUEUED,
                  "compensation of s%d sent while s%d is %s (not one at a time)", i, k, saga_step_status_name(o));
            CHECK(s, o != SAGA_STEP_RUNNING && o != SAGA_STEP_RETRY_WAIT && o != SAGA_STEP_QUEUED,
                  "compensation of s%d sent while action s%d is %s", i, k, saga_step_status_name(o));
        }
        if (g->steps[k].completion_order > st->completion_order)
            CHECK(s, o == SAGA_STEP_COMPENSATED, "compensation of s%d (order %d) before s%d (order %d, %s)", i,
                  st->completion_order, k, g->steps[k].completion_order, saga_step_status_name(o));
    }
    bool seen = false;
    for (int k = 0; k < s->ncomp_steps; k++) seen |= s->comp_steps[k] == i;
    if (!seen) s->comp_steps[s->ncomp_steps++] = i; /* distinct steps, in the order compensated */
    s->stats->comp_commands++;
}

void check_command(sim_t *s, const saga_effect_t *e) {
    const char *type = json_string_value(json_object_get(e->message, "type"));
    const char *step = json_string_value(json_object_get(e->message, "step"));
    int i = saga_definition_step_index(s->def, step);
    int kind = saga_command_kind_parse(json_string_value(json_object_get(e->message, "kind")));
    int attempt = (int)json_integer_value(json_object_get(e->message, "attempt"));
    if (type && !strcmp(type, "saga.reply")) { /* a child saga answers its parent at an end */
        CHECK(s, s->saga.parent != NULL, "a saga without a parent answered one");
        CHECK(s, saga_status_is_terminal(s->saga.status), "answered its parent while %s", saga_status_name(s->saga.status));
        CHECK(s, !strcmp(e->key, "mom") && !strcmp(e->topic, "saga.replies"), "parent reply keyed %s on %s", e->key, e->topic);
        const char *k = json_string_value(json_object_get(e->message, "kind"));
        CHECK(s, !strcmp(k, s->parent_asked ? "compensation" : "action"), "parent reply of kind %s", k);
        return;
    }
    if (type && (!strcmp(type, "saga.start") || !strcmp(type, "saga.control"))) { /* a child step's */
        const char *command = json_string_value(json_object_get(e->message, "command"));
        i = e->slot;
        CHECK(s, i >= 0 && i < s->def->step_count && s->def->steps[i].kind == SAGA_STEP_KIND_CHILD,
              "a child message from s%d, not a child step", i);
        char child[SAGA_ID_MAX];
        saga_child_id(s->saga.id, s->def->steps[i].name, child, sizeof child);
        CHECK(s, !strcmp(e->key, child) && !strcmp(json_string_value(json_object_get(e->message, "saga_id")), child),
              "child message for %s, not %s", e->key, child);
        attempt = (int)json_integer_value(json_object_get(json_object_get(e->message, "parent"), "attempt"));
        if (command && !strcmp(command, "abort")) { /* a running child told to stop: it answers as its action */
            CHECK(s, s->saga.steps[i].status == SAGA_STEP_RUNNING && attempt == s->saga.steps[i].attempt,
                  "abort of child s%d which is %s", i, saga_step_status_name(s->saga.steps[i].status));
            return;
        }
        kind = !strcmp(type, "saga.start") ? SAGA_KIND_ACTION : SAGA_KIND_COMPENSATION;
        CHECK(s, kind == SAGA_KIND_ACTION || (command && !strcmp(command, "compensate")), "child command %s",
              command ? command : "?");
        step = s->def->steps[i].name;
        CHECK(s, !strcmp(e->topic, kind == SAGA_KIND_ACTION ? "saga.start" : "saga.control"), "child message on %s",
              e->topic);
    } else {
        CHECK(s, i >= 0 && kind >= 0 && attempt >= 1, "malformed command");
        CHECK(s, strcmp(e->topic, s->def->steps[i].topic) == 0, "command for s%d on topic %s", i, e->topic);
    }
    char mid[256];
    snprintf(mid, sizeof mid, "%s/%s/%s/%d", s->saga.id, step, saga_command_kind_name(kind), attempt);
    CHECK(s, strcmp(mid, json_string_value(json_object_get(e->message, "message_id"))) == 0,
          "message_id %s", json_string_value(json_object_get(e->message, "message_id")));
    for (int k = 0; k < s->ncmd; k++)
        CHECK(s, !(s->cmds[k].step == i && (int)s->cmds[k].kind == kind && s->cmds[k].attempt == attempt),
              "command %s sent twice", mid);
    if (s->ncmd == s->cap_cmd) {
        s->cap_cmd = s->cap_cmd ? s->cap_cmd * 2 : 32;
        s->cmds = saga_realloc(s->cmds, (size_t)s->cap_cmd * sizeof *s->cmds);
        assert_non_null(s->cmds);
    }
    s->cmds[s->ncmd++] = (cmd_t){i, (saga_command_kind_t)kind, attempt};
    if (kind == SAGA_KIND_ACTION) {
        CHECK(s, !s->comp_began, "(c) action command %s after compensation began", mid); /* (c) */
        CHECK(s, attempt == s->saga.steps[i].attempt, "action attempt %d, step says %d", attempt,
              s->saga.steps[i].attempt);
        const saga_step_def_t *d = &s->def->steps[i];
        for (int k = 0; k < d->after_count; k++)
            CHECK(s, s->saga.steps[d->after[k]].status == SAGA_STEP_SUCCEEDED,
                  "action s%d started before its dependency s%d succeeded", i, d->after[k]);
        CHECK(s, attempt <= d->retry.max_attempts, "action attempt %d over the budget %d", attempt,
              d->retry.max_attempts);
    } else {
        check_compensation_command(s, i, attempt);
    }
}

void check_event(sim_t *s, const saga_event_t *in, const json_t *ev) {
    int64_t seq = (int64_t)json_integer_value(json_object_get(ev, "seq"));
    CHECK(s, seq == s->nev + 1, "(e) seq %lld after %d events", (long long)seq, s->nev); /* (e) */
    if (s->nev == s->cap_ev) {
        s->cap_ev = s->cap_ev ? s->cap_ev * 2 : 64;
        s->events = saga_realloc(s->events, (size_t)s->cap_ev * sizeof *s->events);
        assert_non_null(s->events);
    }
    s->events[s->nev++] = json_incref((json_t *)ev);
    const char *name = json_string_value(json_object_get(ev, "event"));
    const char *step = json_string_value(json_object_get(ev, "step"));
    int i = step ? saga_definition_step_index(s->def, step) : -1;
    trace(s, "    -> %lld %s %s", (long long)seq, name, step ? step : "");
    if (strcmp(name, "saga.compensating") == 0) s->comp_began = true;
    if (strcmp(name, "step.succeeded") == 0 && s->def->steps[i].kind == SAGA_STEP_KIND_SIGNAL) {
        /* its success signal now, or kept from before the step started */
        const json_t *kept = s->saga.steps[i].signal;
        const char *ks = json_string_value(json_object_get(kept, "status"));
        CHECK(s, (in->kind == SAGA_EV_SIGNAL && in->step == i && in->reply_status == SAGA_REPLY_SUCCESS) ||
                     (ks && strcmp(ks, "success") == 0),
              "step.succeeded for signal step s%d without a success signal", i);
        s->completed[s->ncompleted++] = i;
    } else if (strcmp(name, "step.succeeded") == 0) {
        CHECK(s, in->kind == SAGA_EV_REPLY && in->step == i && in->reply_status == SAGA_REPLY_SUCCESS &&
                     in->command_kind == SAGA_KIND_ACTION,
              "step.succeeded for s%d without a success reply", i);
        s->completed[s->ncompleted++] = i;
    }
    if (strcmp(name, "step.unknown") == 0) {
        CHECK(s, s->timed_out[i], "step.unknown for s%d which never timed out", i);
        s->completed[s->ncompleted++] = i;
    }
    if (strcmp(name, "step.failed") == 0 &&
        strcmp(json_string_value(json_object_get(json_object_get(ev, "detail"), "code")), "TEMPLATE") == 0)
        s->stats->template_failures++;
    /* (d) incremental replay */
    char err[300];
    int rc = saga_replay_event(&s->replica, ev, err, sizeof err);
    CHECK(s, rc == 0, "(d) replay of seq %lld failed: %s", (long long)seq, err);
}

/* Each step in a waiting status has exactly its timer; terminal steps none. */
void check_timers(sim_t *s) {
    const saga_t *g = &s->saga;
    bool live = !saga_status_is_terminal(g->status);
    const tmr_t *dl = &s->timers[0];
    if (g->status == SAGA_STATUS_RUNNING && g->deadline_at)
        CHECK(s, dl->set && dl->kind == SAGA_TIMER_DEADLINE && dl->due == g->deadline_at, "deadline timer missing");
    else if (g->status == SAGA_STATUS_SCHEDULED)
        CHECK(s, dl->set && dl->kind == SAGA_TIMER_START, "a scheduled saga has no begin timer");
    else
        CHECK(s, !dl->set, "deadline timer left while saga is %s", saga_status_name(g->status));
    bool any = false;
    for (int i = 0; i < s->def->step_count; i++) {
        const saga_step_state_t *st = &g->steps[i];
        const tmr_t *t = &s->timers[i + 1];
        any |= t->set;
        if (st->status == SAGA_STEP_QUEUED || st->status == SAGA_STEP_COMPENSATION_QUEUED) {
            CHECK(s, s->flow, "s%d queued without flow control", i);
            any = true; /* the flow resumes it (checked by the driver) */
        }
        if (s->def->steps[i].kind == SAGA_STEP_KIND_CHILD && s->def->steps[i].timeout_ms == 0 &&
            (st->status == SAGA_STEP_RUNNING || st->status == SAGA_STEP_COMPENSATING)) {
            CHECK(s, !t->set || t->kind == SAGA_TIMER_BACKOFF, "child s%d without a timeout has a timeout timer", i);
            any = true; /* its child answers (the driver delivers it) */
            continue;
        }
        switch (st->status) {
        case SAGA_STEP_RUNNING:
            CHECK(s, t->set && t->kind == SAGA_TIMER_STEP_TIMEOUT && t->attempt == st->attempt,
                  "s%d running without its timeout timer", i);
            break;
        case SAGA_STEP_RETRY_WAIT:
            CHECK(s, t->set && t->kind == SAGA_TIMER_BACKOFF && t->attempt == st->attempt,
                  "s%d retry_wait without its backoff timer", i);
            break;
        case SAGA_STEP_WAITING: /* for its signal: its timeout, if it has one */
            if (s->def->steps[i].timeout_ms > 0)
                CHECK(s, t->set && t->kind == SAGA_TIMER_STEP_TIMEOUT && t->attempt == st->attempt,
                      "s%d waiting without its timeout timer", i);
            else
                CHECK(s, !t->set, "s%d waits without a timeout but has a timer", i);
            any |= g->deadline_at > 0; /* nobody may answer: the deadline ends it */
            break;
        case SAGA_STEP_COMPENSATING:
            CHECK(s, t->set && t->kind == SAGA_TIMER_STEP_TIMEOUT && t->attempt == st->comp_attempt,
                  "s%d compensating without its timeout timer", i);
            break;
        case SAGA_STEP_COMPENSATION_RETRY_WAIT:
            CHECK(s, t->set && t->kind == SAGA_TIMER_BACKOFF && t->attempt == st->comp_attempt,
                  "s%d compensation_retry_wait without its backoff timer", i);
            break;
        default:
            CHECK(s, !t->set, "timer (%s #%d) left for s%d which is %s", saga_timer_kind_name(t->kind), t->attempt,
                  i, saga_step_status_name(st->status));
        }
    }
    if (live) CHECK(s, any || dl->set, "saga %s with no timer: it would be stuck", saga_status_name(g->status));
}

static void shuffle(uint64_t *rng, const json_t **a, int n) {
    for (int i = n - 1; i > 0; i--) {
        int j = rnd(rng, i + 1);
        const json_t *t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

/* (d) again, from scratch: shuffled events, history rows, until_ms. */
static void check_full_replays(sim_t *s) {
    char err[300], diff[300];
    saga_t r;
    const json_t **evs = saga_malloc((size_t)s->nev * sizeof *evs);
    assert_non_null(evs);
    for (int i = 0; i < s->nev; i++) evs[i] = s->events[i];
    shuffle(&s->rng, evs, s->nev);
    int rc = saga_replay(s->def, s->saga.id, evs, s->nev, INT64_MAX, &r, err, sizeof err);
    CHECK(s, rc == 0, "(d) full replay: %s", err);
    CHECK(s, saga_equal(&s->saga, &r, diff, sizeof diff), "(d) full replay differs: %s", diff);
    saga_clear(&r);

    /* as the store keeps them: history rows (one saga in four: it is the
     * slowest check, and row conversion does not depend on the shape) */
    int nrows = s->index % 4 == 0 ? s->nev : 0;
    json_t **rows = saga_malloc((size_t)s->nev * sizeof *rows);
    assert_non_null(rows);
    for (int i = 0; i < nrows; i++) {
        const json_t *e = s->events[i];
        int64_t at;
        assert_int_equal(saga_parse_time(json_string_value(json_object_get(e, "at")), &at), 0);
        const char *step = json_string_value(json_object_get(e, "step"));
        char *detail = json_dumps(json_object_get(e, "detail"), JSON_COMPACT);
        rows[i] = saga_history_row_event(
            s->saga.id, json_integer_value(json_object_get(e, "seq")), at,
            json_string_value(json_object_get(e, "event")), step,
            json_string_value(json_object_get(e, step ? "step_status" : "status")), detail, err, sizeof err);
        free(detail);
        CHECK(s, rows[i] != NULL, "history row: %s", err);
    }
    if (nrows) {
        rc = saga_replay(s->def, s->saga.id, (const json_t *const *)rows, nrows, INT64_MAX, &r, err, sizeof err);
        CHECK(s, rc == 0, "(d) replay from history rows: %s", err);
        CHECK(s, saga_equal(&s->saga, &r, diff, sizeof diff), "(d) replay from history rows differs: %s", diff);
        saga_clear(&r);
        s->stats->replays++;
    }

    if (s->have_snap) {
        rc = saga_replay(s->def, s->saga.id, evs, s->nev, s->snap_at, &r, err, sizeof err);
        CHECK(s, rc == 0, "(d) replay until %lld: %s", (long long)s->snap_at, err);
        CHECK(s, saga_equal(&s->snap, &r, diff, sizeof diff), "(d) replay until %lld differs: %s",
              (long long)s->snap_at, diff);
        saga_clear(&r);
    }
    int64_t first_at;
    saga_parse_time(json_string_value(json_object_get(s->events[0], "at")), &first_at);
    rc = saga_replay(s->def, s->saga.id, evs, s->nev, first_at - 1, &r, err, sizeof err);
    CHECK(s, rc == SAGA_ENOTFOUND, "replay before the start gave %d", rc);
    saga_clear(&r);
    for (int i = 0; i < nrows; i++) json_decref(rows[i]);
    saga_free(rows);
    saga_free(evs);
    s->stats->replays += 2 + s->have_snap;
}

/* (a), (b) at the end, and a barrage of stale events on the final saga. */
void check_final(sim_t *s) {
    const saga_t *g = &s->saga;
    CHECK(s, saga_status_is_terminal(g->status), "(a) not terminal after %ld events", s->applied);
    /* the expected compensation order: reverse completion, steps with a compensation */
    int expect[SAGA_MAX_STEPS], nexpect = 0;
    for (int k = s->ncompleted - 1; k >= 0; k--)
        if (s->def->steps[s->completed[k]].compensation[0]) expect[nexpect++] = s->completed[k];
    for (int i = 0; i < s->def->step_count; i++) {
        const saga_step_state_t *st = &g->steps[i];
        if (st->completion_order == 0)
            CHECK(s, st->comp_attempt == 0, "(b) s%d compensated but it never completed", i);
        if (!s->def->steps[i].compensation[0]) CHECK(s, st->comp_attempt == 0, "(b) s%d has no compensation", i);
    }
    switch (g->status) {
    case SAGA_STATUS_COMPLETED:
        s->stats->completed++;
        CHECK(s, !s->comp_began && s->ncomp_steps == 0, "completed after compensating");
        for (int i = 0; i < s->def->step_count; i++)
            CHECK(s, g->steps[i].status == SAGA_STEP_SUCCEEDED, "completed with s%d %s", i,
                  saga_step_status_name(g->steps[i].status));
        break;
    case SAGA_STATUS_COMPENSATED:
        s->stats->compensated++;
        CHECK(s, s->ncomp_steps == nexpect, "(b) %d steps compensated, expected %d", s->ncomp_steps, nexpect);
        for (int k = 0; k < nexpect; k++)
            CHECK(s, s->comp_steps[k] == expect[k], "(b) compensation #%d went to s%d, expected s%d", k,
                  s->comp_steps[k], expect[k]);
        for (int i = 0; i < s->def->step_count; i++) {
            saga_step_status_t st = g->steps[i].status;
            if (g->steps[i].completion_order > 0)
                CHECK(s, st == SAGA_STEP_COMPENSATED, "(b) s%d left %s", i, saga_step_status_name(st));
            else
                CHECK(s, st == SAGA_STEP_FAILED || st == SAGA_STEP_CANCELLED, "s%d ended %s", i,
                      saga_step_status_name(st));
        }
        break;
    default:
        s->stats->comp_failed_final++;
        CHECK(s, s->ncomp_steps <= nexpect, "(b) too many compensations");
        for (int k = 0; k < s->ncomp_steps; k++)
            CHECK(s, s->comp_steps[k] == expect[k], "(b) compensation #%d went to s%d, expected s%d", k,
                  s->comp_steps[k], expect[k]);
    }
    for (int i = 0; i <= s->def->step_count; i++) CHECK(s, !s->timers[i].set, "timer left on a final saga");
    if (s->flow) { /* stale waiters are drained; then nothing may be left in flight */
        s->now += 3600000;
        while (resume_ready(s)) {}
        saga_flow_topic_stats_t t;
        for (int i = 0; saga_flow_stats(s->flow, i, &t); i++)
            CHECK(s, t.in_flight == 0 && t.waiting == 0, "flow of %s leaked: %d in flight, %d waiting", t.topic,
                  t.in_flight, t.waiting);
    }
    check_full_replays(s);
    /* everything is stale now (but an operator retry of compensation_failed) */
    for (int k = 0; k < 6; k++) {
        int r = rnd(&s->rng, 4);
        if (r == 0 && s->ncmd) deliver_reply(s, &s->cmds[rnd(&s->rng, s->ncmd)], rnd(&s->rng, 3));
        else if (r == 1) stale_timer(s);
        else if (r == 2) op_event(s, SAGA_EV_ABORT);
        else if (g->status != SAGA_STATUS_COMPENSATION_FAILED) op_event(s, SAGA_EV_RETRY);
    }
}
