/* The saga state machine. Pure: everything it needs (time, randomness,
 * the definition, the saga's state) is passed in; everything it decides is
 * appended to an effects list for the caller to make durable. */
#include "engine_internal.h"

#include <stdio.h>
#include <string.h>

#include "saga_alloc.h"
#include "saga_clock.h"
#include "saga_error.h"
#include "saga_json.h"
#include "saga_partition.h"
#include "template.h"
#include "flow.h"
#include "messages.h"
#include "transitions.h"
#include "saga_utf8.h"

/* ---- commands ----------------------------------------------------------- */

json_t *eng_template_context(const saga_t *s) {
    json_t *steps = json_object();
    for (int i = 0; steps && i < s->def->step_count; i++)
        if (s->steps[i].output)
            json_object_set_new(steps, s->def->steps[i].name,
                                json_pack("{s:O}", "output", s->steps[i].output));
    return json_pack("{s:O, s:o, s:{s:s, s:s}}", "input", s->input ? s->input : json_null(),
                     "steps", steps, "saga", "id", s->id, "definition", s->def->name);
}

/* Builds and emits the command for step i; returns 0, or SAGA_ETEMPLATE
 * with the reason in err when the payload cannot be rendered, or
 * SAGA_EPARSE with the reason in err when the command is over the message
 * size limit (PAYLOAD_TOO_LARGE). */
static int send_command(apply_ctx_t *c, int i, saga_command_kind_t kind, char *err, size_t errlen) {
    saga_t *s = c->saga;
    const saga_step_def_t *d = &s->def->steps[i];
    saga_step_state_t *st = &s->steps[i];
    int attempt = kind == SAGA_KIND_ACTION ? st->attempt : st->comp_attempt;
    const json_t *tmpl = kind == SAGA_KIND_COMPENSATION && d->compensation_payload
                             ? d->compensation_payload : d->payload;
    json_t *ctx = eng_template_context(s);
    if (!ctx) { c->err = SAGA_ENOMEM; return SAGA_ENOMEM; }
    json_t *payload = saga_template_render(tmpl, ctx, err, errlen);
    json_decref(ctx);
    if (!payload) return SAGA_ETEMPLATE;
    if (kind == SAGA_KIND_COMPENSATION)
        json_object_set(payload, "action_output", st->output ? st->output : json_null());

    const char *kind_name = saga_command_kind_name(kind);
    char message_id[SAGA_ID_MAX + SAGA_NAME_MAX + 48], key[SAGA_ID_MAX + SAGA_NAME_MAX + 32];
    char deadline[40];
    snprintf(key, sizeof key, "%s/%s/%s", s->id, d->name, kind_name);
    snprintf(message_id, sizeof message_id, "%s/%d", key, attempt);
    json_t *cmd = json_object();
    cmd = eng_put(cmd, "type", json_string_nocheck("saga.command"));
    cmd = eng_put(cmd, "message_id", json_string(message_id));
    cmd = eng_put(cmd, "saga_id", json_string(s->id));
    cmd = eng_put(cmd, "definition", json_string(s->def->name));
    cmd = eng_put(cmd, "step", json_string(d->name));
    cmd = eng_put(cmd, "kind", json_string_nocheck(kind_name));
    cmd = eng_put(cmd, "action", json_string(kind == SAGA_KIND_ACTION ? d->action : d->compensation));
    cmd = eng_put(cmd, "attempt", json_integer(attempt));
    cmd = eng_put(cmd, "idempotency_key", json_string(key));
    cmd = eng_put(cmd, "payload", payload);
    cmd = eng_put(cmd, "reply_to", json_string(c->cfg->replies_topic));
    if (c->cfg->partitions > 0)
        cmd = eng_put(cmd, "reply_partition", json_integer(saga_partition_of(s->id, c->cfg->partitions)));
    cmd = eng_put(cmd, "deadline", json_string_nocheck(saga_format_time(c->now + d->timeout_ms, deadline, sizeof deadline)));
    if (!cmd) { c->err = SAGA_ENOMEM; return SAGA_ENOMEM; }
    char *text = NULL;
    size_t limit = eng_message_limit(c);
    if (limit) {
        text = saga_json_dump(cmd);
        if (!text) {
            json_decref(cmd);
            c->err = SAGA_ENOMEM;
            return SAGA_ENOMEM;
        }
        size_t len = strlen(text);
        if (len > limit) {
            /* It can never be sent: no retry, the step fails now. */
            snprintf(err, errlen, "the %s command of step '%s' is %zu bytes, over the %zu-byte message limit",
                     kind_name, d->name, len, limit);
            saga_free(text);
            json_decref(cmd);
            return SAGA_EPARSE;
        }
    }
    eng_fx_push(c, (saga_effect_t){.kind = SAGA_FX_COMMAND, .topic = d->topic, .message = cmd, .slot = i, .text = text});
    eng_set_timer(c, i, SAGA_TIMER_STEP_TIMEOUT, attempt, c->now + d->timeout_ms);
    return 0;
}

/* ---- forward path ------------------------------------------------------- */


/* ---- flow control (bulkhead, circuit breaker) ----------------------------- */

static bool flow_acquire(apply_ctx_t *c, int i) {
    return !c->cfg->flow || saga_flow_acquire(c->cfg->flow, c->saga->def->steps[i].topic, c->now);
}

static void flow_release(apply_ctx_t *c, int i) {
    if (c->cfg->flow) saga_flow_release(c->cfg->flow, c->saga->def->steps[i].topic);
}

/* A command's outcome is known: ok unless it timed out or asked for a retry. */
static void flow_done(apply_ctx_t *c, int i, bool ok) {
    if (c->cfg->flow) saga_flow_done(c->cfg->flow, c->saga->def->steps[i].topic, ok, c->now);
}

/* The step waits for room on its topic; the caller resumes it (SAGA_EV_RESUME). */
static void wait_for_room(apply_ctx_t *c, int i, saga_step_status_t status, const char *event) {
    eng_fx_push(c, (saga_effect_t){.kind = SAGA_FX_WAIT_FOR_ROOM, .slot = i, .topic = c->saga->def->steps[i].topic});
    eng_set_step_status(c, i, status, event, json_pack("{s:s}", "topic", c->saga->def->steps[i].topic));
}


/* room_taken: the caller already holds a slot on the step's topic. */
static void start_attempt(apply_ctx_t *c, int i, bool room_taken) {
    saga_step_state_t *st = &c->saga->steps[i];
    char err[300];
    if (c->saga->def->steps[i].kind == SAGA_STEP_KIND_SIGNAL) {
        eng_start_signal_wait(c, i);
        return;
    }
    if (c->saga->def->steps[i].kind == SAGA_STEP_KIND_CHILD) { /* no bulkhead: its child's steps have theirs */
        st->attempt++;
        if (st->attempt == 1) st->started_at = c->now;
        int rc = eng_start_child(c, i, err, sizeof err);
        if (rc == SAGA_ETEMPLATE) {
            eng_set_step_error(st, "TEMPLATE", err);
            st->finished_at = c->now;
            eng_set_step_status(c, i, SAGA_STEP_FAILED, "step.failed", eng_error_detail("TEMPLATE", err, st->attempt));
            eng_begin_compensation(c, "TEMPLATE", err);
            return;
        }
        if (rc) return;
        char child[SAGA_ID_MAX];
        saga_child_id(c->saga->id, c->saga->def->steps[i].name, child, sizeof child);
        eng_set_step_status(c, i, SAGA_STEP_RUNNING, "step.started", json_pack("{s:i, s:s}", "attempt", st->attempt, "child", child));
        return;
    }
    if (!room_taken && !flow_acquire(c, i)) {
        wait_for_room(c, i, SAGA_STEP_QUEUED, "step.queued");
        return;
    }
    st->attempt++;
    if (st->attempt == 1) st->started_at = c->now;
    int rc = send_command(c, i, SAGA_KIND_ACTION, err, sizeof err);
    if (rc == SAGA_ETEMPLATE || rc == SAGA_EPARSE) {
        /* The payload can never render, or never fit in a message: a
         * business failure, not a retry. */
        const char *code = rc == SAGA_ETEMPLATE ? "TEMPLATE" : "PAYLOAD_TOO_LARGE";
        flow_release(c, i);
        eng_set_step_error(st, code, err);
        st->finished_at = c->now;
        eng_set_step_status(c, i, SAGA_STEP_FAILED, "step.failed", eng_error_detail(code, err, st->attempt));
        eng_begin_compensation(c, code, err);
        return;
    }
    if (rc) return;
    eng_set_step_status(c, i, SAGA_STEP_RUNNING, "step.started", json_pack("{s:i}", "attempt", st->attempt));
}

static bool deps_succeeded(const saga_t *s, int i) {
    const saga_step_def_t *d = &s->def->steps[i];
    for (int k = 0; k < d->after_count; k++)
        if (s->steps[d->after[k]].status != SAGA_STEP_SUCCEEDED) return false;
    return true;
}

/* Starts every step whose dependencies have succeeded; completes the saga
 * when all steps have. */
void eng_advance(apply_ctx_t *c) {
    saga_t *s = c->saga;
    bool all_done = true;
    for (int i = 0; i < s->def->step_count && s->status == SAGA_STATUS_RUNNING; i++) {
        if (s->steps[i].status == SAGA_STEP_PENDING && deps_succeeded(s, i)) start_attempt(c, i, false);
        if (s->steps[i].status != SAGA_STEP_SUCCEEDED) all_done = false;
    }
    if (all_done && s->status == SAGA_STATUS_RUNNING) {
        if (s->deadline_at) eng_clear_timer(c, -1);
        eng_set_status(c, SAGA_STATUS_COMPLETED, "saga.completed", NULL);
    }
}

/* The step's outcome is final and it may have run: it joins the
 * compensation order. */

/* A transient problem with an action (retry reply or timeout). */
static void action_transient(apply_ctx_t *c, int i, const char *code, const char *message) {
    saga_t *s = c->saga;
    saga_step_state_t *st = &s->steps[i];
    const saga_step_def_t *d = &s->def->steps[i];
    eng_set_step_error(st, code, message);
    if (s->status == SAGA_STATUS_RUNNING && st->attempt < d->retry.max_attempts) {
        int64_t delay = saga_backoff_ms(&d->retry, st->attempt, c->rng);
        eng_set_timer(c, i, SAGA_TIMER_BACKOFF, st->attempt, c->now + delay);
        json_t *detail = eng_error_detail(code, message, st->attempt);
        if (detail) {
            json_object_set_new(detail, "backoff_ms", json_integer(delay));
            /* replay needs it: a participant may reply "retry" with any code */
            json_object_set_new(detail, "outcome_unknown", json_boolean(st->outcome_unknown));
        }
        eng_set_step_status(c, i, SAGA_STEP_RETRY_WAIT, "step.retry_scheduled", detail);
        return;
    }
    eng_clear_timer(c, i);
    st->finished_at = c->now;
    if (st->outcome_unknown) {
        eng_mark_completed(s, i);
        eng_set_step_status(c, i, SAGA_STEP_UNKNOWN, "step.unknown", eng_error_detail(code, message, st->attempt));
    } else {
        eng_set_step_status(c, i, SAGA_STEP_FAILED, "step.failed", eng_error_detail(code, message, st->attempt));
    }
    if (s->status == SAGA_STATUS_RUNNING) {
        char why[300];
        snprintf(why, sizeof why, "step '%s' gave up after %d attempts: %s", d->name, st->attempt,
                 message && *message ? message : code);
        saga_utf8_trim_cut(why);
        eng_begin_compensation(c, "RETRIES_EXHAUSTED", why);
    } else {
        eng_begin_compensation(c, NULL, NULL);
    }
}

/* ---- compensation ------------------------------------------------------- */

/* A compensation that can never be sent (its payload does not render, is
 * over the message size limit, or the broker refused it for good):
 * retrying cannot help, an operator must look. */
static void compensation_impossible(apply_ctx_t *c, int i, const char *code, const char *err) {
    saga_t *s = c->saga;
    saga_step_state_t *st = &s->steps[i];
    eng_set_step_error(st, code, err);
    eng_set_step_status(c, i, SAGA_STEP_COMPENSATION_FAILED, "compensation.failed",
                    eng_error_detail(code, err, st->comp_attempt));
    eng_set_status(c, SAGA_STATUS_COMPENSATION_FAILED, "saga.compensation_failed",
               json_pack("{s:s, s:s, s:s}", "step", s->def->steps[i].name, "code", code, "reason", err));
    eng_fx_push(c, (saga_effect_t){.kind = SAGA_FX_ALERT, .slot = i,
                               .message = json_pack("{s:s, s:s, s:s, s:s}", "saga_id", s->id, "step",
                                                    s->def->steps[i].name, "code", code, "reason", err)});
}

static void start_compensation(apply_ctx_t *c, int i, bool room_taken) {
    saga_t *s = c->saga;
    saga_step_state_t *st = &s->steps[i];
    char err[300];
    if (s->def->steps[i].kind == SAGA_STEP_KIND_CHILD) { /* the child undoes its own completed steps */
        st->comp_attempt++;
        eng_tell_child(c, i, "compensate", st->comp_attempt, NULL);
        if (s->def->steps[i].timeout_ms > 0)
            eng_set_timer(c, i, SAGA_TIMER_STEP_TIMEOUT, st->comp_attempt, c->now + s->def->steps[i].timeout_ms);
        eng_set_step_status(c, i, SAGA_STEP_COMPENSATING, "compensation.started",
                        json_pack("{s:i}", "attempt", st->comp_attempt));
        return;
    }
    if (!room_taken && !flow_acquire(c, i)) {
        wait_for_room(c, i, SAGA_STEP_COMPENSATION_QUEUED, "compensation.queued");
        return;
    }
    st->comp_attempt++;
    int rc = send_command(c, i, SAGA_KIND_COMPENSATION, err, sizeof err);
    if (rc == SAGA_ETEMPLATE || rc == SAGA_EPARSE) {
        flow_release(c, i);
        compensation_impossible(c, i, rc == SAGA_ETEMPLATE ? "TEMPLATE" : "PAYLOAD_TOO_LARGE", err);
        return;
    }
    if (rc) return;
    eng_set_step_status(c, i, SAGA_STEP_COMPENSATING, "compensation.started",
                    json_pack("{s:i}", "attempt", st->comp_attempt));
}

/* Compensates, one step at a time in reverse completion order, once no
 * action is in flight any more; finishes the saga when nothing is left. */
static void continue_compensation(apply_ctx_t *c) {
    saga_t *s = c->saga;
    for (;;) {
        int next = -1;
        for (int i = 0; i < s->def->step_count; i++) {
            saga_step_status_t st = s->steps[i].status;
            if (st == SAGA_STEP_RUNNING || st == SAGA_STEP_COMPENSATING || st == SAGA_STEP_COMPENSATION_QUEUED ||
                st == SAGA_STEP_COMPENSATION_RETRY_WAIT || st == SAGA_STEP_COMPENSATION_FAILED)
                return; /* wait for it */
            if ((st == SAGA_STEP_SUCCEEDED || st == SAGA_STEP_UNKNOWN) &&
                (next < 0 || s->steps[i].completion_order > s->steps[next].completion_order))
                next = i;
        }
        if (next < 0) {
            eng_set_status(c, SAGA_STATUS_COMPENSATED, "saga.compensated", NULL);
            return;
        }
        if (s->def->steps[next].compensation[0]) {
            start_compensation(c, next, false);
            return;
        }
        eng_set_step_status(c, next, SAGA_STEP_COMPENSATED, "compensation.skipped",
                        json_pack("{s:s}", "reason", "step has no compensation"));
    }
}

/* Stops the forward path: steps not started are cancelled, steps waiting
 * to retry give up, and compensation starts once in-flight actions end.
 * code NULL: already compensating, only continue. */
void eng_begin_compensation(apply_ctx_t *c, const char *code, const char *message) {
    saga_t *s = c->saga;
    if (code && (s->status == SAGA_STATUS_RUNNING || s->status == SAGA_STATUS_SCHEDULED)) {
        saga_utf8_copy(s->error_code, sizeof s->error_code, code);
        saga_utf8_copy(s->error_message, sizeof s->error_message, message); /* it goes into the event below */
        if (s->deadline_at || s->status == SAGA_STATUS_SCHEDULED) eng_clear_timer(c, -1); /* deadline or begin time */
        eng_set_status(c, SAGA_STATUS_COMPENSATING, "saga.compensating",
                   json_pack("{s:s, s:s}", "code", code, "message", s->error_message));
        for (int i = 0; i < s->def->step_count; i++) {
            saga_step_state_t *st = &s->steps[i];
            if (st->status == SAGA_STEP_RUNNING && s->def->steps[i].kind == SAGA_STEP_KIND_CHILD) {
                /* a running child stops and undoes itself; its failure reply ends the step */
                char why[300];
                snprintf(why, sizeof why, "its parent saga %s compensates: %s", s->id, s->error_message);
                saga_utf8_trim_cut(why);
                eng_tell_child(c, i, "abort", st->attempt, why);
            }
            if (st->status == SAGA_STEP_PENDING) {
                eng_set_step_status(c, i, SAGA_STEP_CANCELLED, "step.cancelled", NULL);
            } else if (st->status == SAGA_STEP_WAITING) { /* its signal is not needed any more */
                eng_clear_timer(c, i);
                st->finished_at = c->now;
                eng_set_step_status(c, i, SAGA_STEP_CANCELLED, "step.cancelled", NULL);
            } else if (st->status == SAGA_STEP_RETRY_WAIT || st->status == SAGA_STEP_QUEUED) {
                eng_clear_timer(c, i);
                st->finished_at = c->now;
                if (st->outcome_unknown) {
                    eng_mark_completed(s, i);
                    eng_set_step_status(c, i, SAGA_STEP_UNKNOWN, "step.unknown", NULL);
                } else {
                    eng_set_step_status(c, i, SAGA_STEP_CANCELLED, "step.cancelled", NULL);
                }
            }
        }
    }
    if (s->status == SAGA_STATUS_COMPENSATING) continue_compensation(c);
}

static void compensation_transient(apply_ctx_t *c, int i, const char *code, const char *message) {
    saga_t *s = c->saga;
    saga_step_state_t *st = &s->steps[i];
    const saga_step_def_t *d = &s->def->steps[i];
    eng_set_step_error(st, code, message);
    if (st->comp_attempt - st->comp_budget_base < d->compensation_retry.max_attempts) {
        int64_t delay = saga_backoff_ms(&d->compensation_retry, st->comp_attempt, c->rng);
        eng_set_timer(c, i, SAGA_TIMER_BACKOFF, st->comp_attempt, c->now + delay);
        json_t *detail = eng_error_detail(code, message, st->comp_attempt);
        if (detail) json_object_set_new(detail, "backoff_ms", json_integer(delay));
        eng_set_step_status(c, i, SAGA_STEP_COMPENSATION_RETRY_WAIT, "compensation.retry_scheduled", detail);
        return;
    }
    eng_clear_timer(c, i);
    eng_set_step_status(c, i, SAGA_STEP_COMPENSATION_FAILED, "compensation.failed",
                    eng_error_detail(code, message, st->comp_attempt));
    char why[400];
    snprintf(why, sizeof why, "compensation of step '%s' failed %d times: %s", d->name,
             st->comp_attempt, message && *message ? message : code);
    saga_utf8_trim_cut(why);
    eng_set_status(c, SAGA_STATUS_COMPENSATION_FAILED, "saga.compensation_failed",
               json_pack("{s:s, s:s, s:s}", "step", d->name, "code", code ? code : "", "reason", why));
    eng_fx_push(c, (saga_effect_t){.kind = SAGA_FX_ALERT, .slot = i,
                               .message = json_pack("{s:s, s:s, s:s, s:s}", "saga_id", s->id, "step",
                                                    d->name, "code", code ? code : "", "reason", why)});
}

/* ---- events ------------------------------------------------------------- */

static int on_reply(apply_ctx_t *c, const saga_event_t *ev, char *why, size_t why_len) {
    saga_t *s = c->saga;
    if (ev->step < 0 || ev->step >= s->def->step_count) STALE(UNKNOWN_STEP, "unknown step index %d", ev->step);
    saga_step_state_t *st = &s->steps[ev->step];
    const char *name = s->def->steps[ev->step].name;
    if (ev->command_kind == SAGA_KIND_ACTION) {
        if (st->status == SAGA_STEP_COMPENSATING)
            STALE(WRONG_KIND, "action reply for step '%s' which is compensating", name);
        if (st->status != SAGA_STEP_RUNNING)
            STALE(NOT_WAITING, "action reply for step '%s' which is %s", name, saga_step_status_name(st->status));
        if (ev->attempt != st->attempt)
            STALE(OTHER_ATTEMPT, "action reply for attempt %d of step '%s', current attempt is %d", ev->attempt, name, st->attempt);
        flow_done(c, ev->step, ev->reply_status != SAGA_REPLY_RETRY);
        switch (ev->reply_status) {
        case SAGA_REPLY_SUCCESS:
            json_decref(st->output);
            st->output = ev->output ? json_deep_copy(ev->output) : json_object();
            eng_set_step_error(st, "", "");
            st->finished_at = c->now;
            eng_mark_completed(s, ev->step);
            eng_clear_timer(c, ev->step);
            eng_set_step_status(c, ev->step, SAGA_STEP_SUCCEEDED, "step.succeeded",
                            json_pack("{s:i, s:O}", "attempt", ev->attempt, "output", st->output));
            if (s->status == SAGA_STATUS_RUNNING) eng_advance(c);
            else eng_begin_compensation(c, NULL, NULL);
            return 0;
        case SAGA_REPLY_FAILURE: {
            eng_set_step_error(st, ev->error_code, ev->error_message);
            st->finished_at = c->now;
            eng_clear_timer(c, ev->step);
            eng_set_step_status(c, ev->step, SAGA_STEP_FAILED, "step.failed",
                            eng_error_detail(ev->error_code, ev->error_message, ev->attempt));
            char msg[300];
            snprintf(msg, sizeof msg, "step '%s' failed: %s", name,
                     ev->error_message && *ev->error_message ? ev->error_message : (ev->error_code ? ev->error_code : ""));
            saga_utf8_trim_cut(msg);
            eng_begin_compensation(c, ev->error_code && *ev->error_code ? ev->error_code : "STEP_FAILED", msg);
            return 0;
        }
        case SAGA_REPLY_RETRY:
            action_transient(c, ev->step, ev->error_code ? ev->error_code : "RETRY", ev->error_message);
            return 0;
        }
        STALE(INVALID, "unknown reply status");
    }
    if (st->status == SAGA_STEP_RUNNING)
        STALE(WRONG_KIND, "compensation reply for step '%s' whose action is running", name);
    if (st->status != SAGA_STEP_COMPENSATING)
        STALE(NOT_WAITING, "compensation reply for step '%s' which is %s", name, saga_step_status_name(st->status));
    if (ev->attempt != st->comp_attempt)
        STALE(OTHER_ATTEMPT, "compensation reply for attempt %d of step '%s', current attempt is %d", ev->attempt, name,
              st->comp_attempt);
    flow_done(c, ev->step, ev->reply_status != SAGA_REPLY_RETRY);
    if (ev->reply_status == SAGA_REPLY_SUCCESS) {
        eng_set_step_error(st, "", "");
        eng_clear_timer(c, ev->step);
        eng_set_step_status(c, ev->step, SAGA_STEP_COMPENSATED, "compensation.succeeded",
                        json_pack("{s:i}", "attempt", ev->attempt));
        continue_compensation(c);
    } else {
        /* A compensation must succeed in the end: failures retry too. */
        compensation_transient(c, ev->step, ev->error_code ? ev->error_code : "COMPENSATION_FAILED",
                               ev->error_message);
    }
    return 0;
}

/* The broker refused the command of attempt ev->attempt for good (too
 * large, invalid, not authorised, no such topic): it will never arrive, so
 * the step fails now instead of timing out and retrying the same bytes. */
static int on_undeliverable(apply_ctx_t *c, const saga_event_t *ev, char *why, size_t why_len) {
    saga_t *s = c->saga;
    if (ev->step < 0 || ev->step >= s->def->step_count) STALE(UNKNOWN_STEP, "unknown step index %d", ev->step);
    int i = ev->step;
    saga_step_state_t *st = &s->steps[i];
    const char *name = s->def->steps[i].name;
    const char *code = ev->error_code && *ev->error_code ? ev->error_code : "COMMAND_REJECTED";
    char msg[256];
    snprintf(msg, sizeof msg, "the %s command of step '%s' was refused: %s", saga_command_kind_name(ev->command_kind),
             name, ev->error_message ? ev->error_message : code);
    saga_utf8_trim_cut(msg);
    if (ev->command_kind == SAGA_KIND_ACTION) {
        if (st->status != SAGA_STEP_RUNNING || ev->attempt != st->attempt)
            STALE(NOT_WAITING, "undeliverable action (attempt %d) of step '%s' which is %s (attempt %d)", ev->attempt,
                  name, saga_step_status_name(st->status), st->attempt);
        flow_done(c, i, true);
        eng_clear_timer(c, i);
        eng_set_step_error(st, code, msg);
        st->finished_at = c->now;
        if (st->outcome_unknown) { /* an earlier attempt timed out: it may have run, compensate it */
            eng_mark_completed(s, i);
            eng_set_step_status(c, i, SAGA_STEP_UNKNOWN, "step.unknown", eng_error_detail(code, msg, st->attempt));
        } else {
            eng_set_step_status(c, i, SAGA_STEP_FAILED, "step.failed", eng_error_detail(code, msg, st->attempt));
        }
        if (s->status == SAGA_STATUS_RUNNING) eng_begin_compensation(c, code, msg);
        else eng_begin_compensation(c, NULL, NULL);
        return 0;
    }
    if (st->status != SAGA_STEP_COMPENSATING || ev->attempt != st->comp_attempt)
        STALE(NOT_WAITING, "undeliverable compensation (attempt %d) of step '%s' which is %s (attempt %d)",
              ev->attempt, name, saga_step_status_name(st->status), st->comp_attempt);
    flow_done(c, i, true);
    eng_clear_timer(c, i);
    compensation_impossible(c, i, code, msg);
    return 0;
}

/* The saga begins: its deadline counts from now, its first steps start.
 * first: the START event itself (the saga was never scheduled). */
static void begin_saga(apply_ctx_t *c, bool first) {
    saga_t *s = c->saga;
    if (s->def->timeout_ms > 0) s->deadline_at = c->now + s->def->timeout_ms;
    json_t *detail = json_pack("{s:O, s:I}", "input", s->input ? s->input : json_null(), "deadline_at",
                               (json_int_t)s->deadline_at);
    if (first) eng_record(c, "saga.started", -1, detail);
    else eng_set_status(c, SAGA_STATUS_RUNNING, "saga.started", detail);
    if (s->deadline_at) eng_set_timer(c, -1, SAGA_TIMER_DEADLINE, 0, s->deadline_at);
    eng_advance(c);
}

static int on_timer(apply_ctx_t *c, const saga_event_t *ev, char *why, size_t why_len) {
    saga_t *s = c->saga;
    if (ev->slot == -1 && ev->timer_kind == SAGA_TIMER_START) {
        if (s->status != SAGA_STATUS_SCHEDULED)
            STALE(STALE_TIMER, "begin timer while saga is %s", saga_status_name(s->status));
        begin_saga(c, false);
        return 0;
    }
    if (ev->slot == -1) {
        if (ev->timer_kind != SAGA_TIMER_DEADLINE || s->status != SAGA_STATUS_RUNNING || !s->deadline_at)
            STALE(STALE_TIMER, "deadline timer while saga is %s", saga_status_name(s->status));
        eng_begin_compensation(c, "SAGA_DEADLINE", "the saga did not finish before its deadline");
        return 0;
    }
    if (ev->slot < 0 || ev->slot >= s->def->step_count) STALE(STALE_TIMER, "timer for unknown slot %d", ev->slot);
    int i = ev->slot;
    saga_step_state_t *st = &s->steps[i];
    char msg[128];
    switch (ev->timer_kind) {
    case SAGA_TIMER_STEP_TIMEOUT:
        if (s->def->steps[i].kind == SAGA_STEP_KIND_CHILD && s->def->steps[i].timeout_ms == 0)
            break; /* a child step without a timeout never set one */
        snprintf(msg, sizeof msg, "no reply within %lld ms", (long long)s->def->steps[i].timeout_ms);
        if (st->status == SAGA_STEP_WAITING && ev->timer_attempt == st->attempt && s->def->steps[i].timeout_ms > 0) {
            char wait[160];
            snprintf(wait, sizeof wait, "no signal '%s' within %lld ms", s->def->steps[i].signal,
                     (long long)s->def->steps[i].timeout_ms);
            eng_signal_arrived(c, i, false, NULL, "SIGNAL_TIMEOUT", wait);
            return 0;
        }
        if (st->status == SAGA_STEP_RUNNING && ev->timer_attempt == st->attempt) {
            flow_done(c, i, false);
            st->outcome_unknown = true;
            action_transient(c, i, "STEP_TIMEOUT", msg);
            return 0;
        }
        if (st->status == SAGA_STEP_COMPENSATING && ev->timer_attempt == st->comp_attempt) {
            flow_done(c, i, false);
            compensation_transient(c, i, "STEP_TIMEOUT", msg);
            return 0;
        }
        break;
    case SAGA_TIMER_BACKOFF:
        if (st->status == SAGA_STEP_RETRY_WAIT && ev->timer_attempt == st->attempt &&
            s->status == SAGA_STATUS_RUNNING) {
            start_attempt(c, i, false);
            return 0;
        }
        if (st->status == SAGA_STEP_COMPENSATION_RETRY_WAIT && ev->timer_attempt == st->comp_attempt) {
            start_compensation(c, i, false);
            return 0;
        }
        break;
    case SAGA_TIMER_DEADLINE:
    case SAGA_TIMER_START:
    case SAGA_TIMER__COUNT:
        break;
    }
    STALE(STALE_TIMER, "%s timer (attempt %d) for step '%s' which is %s", saga_timer_kind_name(ev->timer_kind),
          ev->timer_attempt, s->def->steps[i].name, saga_step_status_name(st->status));
}

int saga_engine_apply(const saga_engine_config_t *cfg, saga_t *saga, const saga_event_t *ev,
                      int64_t now_ms, uint64_t *rng, saga_effects_t *fx, char *why, size_t why_len) {
    fx->stale_reason = SAGA_STALE_NONE;
    apply_ctx_t ctx = {.cfg = cfg, .saga = saga, .now = now_ms, .rng = rng, .fx = fx, .why = why, .why_len = why_len};
    apply_ctx_t *c = &ctx;
    int rc = 0;
    switch (ev->kind) {
    case SAGA_EV_START:
        if (saga->seq != 0) STALE(ALREADY_STARTED, "saga '%s' has already started", saga->id);
        if (ev->begin_at > now_ms) { /* a delayed start: stored now, begins at its time */
            saga->status = SAGA_STATUS_SCHEDULED; /* its first status, as running is for the others */
            eng_record(c, "saga.scheduled", -1,
                   json_pack("{s:O, s:I}", "input", saga->input ? saga->input : json_null(), "begin_at",
                             (json_int_t)ev->begin_at));
            eng_set_timer(c, -1, SAGA_TIMER_START, 0, ev->begin_at);
            break;
        }
        begin_saga(c, true);
        break;
    case SAGA_EV_REPLY:
        if (saga_status_is_terminal(saga->status))
            STALE(SAGA_FINISHED, "reply for saga '%s' which is %s", saga->id, saga_status_name(saga->status));
        rc = on_reply(c, ev, why, why_len);
        break;
    case SAGA_EV_TIMER:
        if (saga_status_is_terminal(saga->status))
            STALE(SAGA_FINISHED, "timer for saga '%s' which is %s", saga->id, saga_status_name(saga->status));
        rc = on_timer(c, ev, why, why_len);
        break;
    case SAGA_EV_RESUME: {
        int i = ev->slot;
        if (i < 0 || i >= saga->def->step_count) STALE(STALE_RESUME, "resume for unknown slot %d", i);
        if (saga->steps[i].status == SAGA_STEP_QUEUED && saga->status == SAGA_STATUS_RUNNING)
            start_attempt(c, i, true);
        else if (saga->steps[i].status == SAGA_STEP_COMPENSATION_QUEUED && saga->status == SAGA_STATUS_COMPENSATING)
            start_compensation(c, i, true);
        else
            STALE(STALE_RESUME, "resume of step '%s' which is %s", saga->def->steps[i].name,
                  saga_step_status_name(saga->steps[i].status));
        break;
    }
    case SAGA_EV_UNDELIVERABLE:
        if (saga_status_is_terminal(saga->status))
            STALE(SAGA_FINISHED, "undeliverable command for saga '%s' which is %s", saga->id,
                  saga_status_name(saga->status));
        rc = on_undeliverable(c, ev, why, why_len);
        break;
    case SAGA_EV_SIGNAL:
        if (saga_status_is_terminal(saga->status))
            STALE(SAGA_FINISHED, "signal for saga '%s' which is %s", saga->id, saga_status_name(saga->status));
        rc = eng_on_signal(c, ev, why, why_len);
        break;
    case SAGA_EV_COMPENSATE: { /* from the parent that ran this saga as a child */
        if (!saga->parent) STALE(NOT_ALLOWED, "saga '%s' has no parent to compensate for", saga->id);
        json_t *was = json_object_get(saga->parent, "compensate");
        if (json_is_integer(was) && json_integer_value(was) >= ev->attempt)
            STALE(OTHER_ATTEMPT, "compensate attempt %d for saga '%s', already asked at %lld", ev->attempt, saga->id,
                  (long long)json_integer_value(was));
        if (json_object_set_new(saga->parent, "compensate", json_integer(ev->attempt))) return SAGA_ENOMEM;
        if (saga->status == SAGA_STATUS_COMPLETED) {
            saga_utf8_copy(saga->error_code, sizeof saga->error_code, "PARENT_COMPENSATING");
            saga_utf8_copy(saga->error_message, sizeof saga->error_message, "its parent saga compensates");
            eng_set_status(c, SAGA_STATUS_COMPENSATING, "saga.compensating",
                       json_pack("{s:s, s:s}", "code", saga->error_code, "message", saga->error_message));
            continue_compensation(c);
        } else if (saga->status == SAGA_STATUS_RUNNING || saga->status == SAGA_STATUS_SCHEDULED) {
            eng_begin_compensation(c, "PARENT_COMPENSATING", "its parent saga compensates");
        } else if (saga->status == SAGA_STATUS_COMPENSATED || saga->status == SAGA_STATUS_COMPENSATION_FAILED) {
            eng_notify_parent(c); /* already undone (or stuck): say so again, for this attempt */
        } /* compensating: it answers when it is done */
        break;
    }
    case SAGA_EV_ABORT:
        if (saga->status != SAGA_STATUS_RUNNING && saga->status != SAGA_STATUS_SCHEDULED)
            STALE(NOT_ALLOWED, "cannot abort saga '%s': it is %s", saga->id, saga_status_name(saga->status));
        eng_begin_compensation(c, "ABORTED", ev->reason && *ev->reason ? ev->reason : "aborted by an operator");
        break;
    case SAGA_EV_RETRY: {
        if (saga->status != SAGA_STATUS_COMPENSATION_FAILED)
            STALE(NOT_ALLOWED, "cannot retry saga '%s': it is %s, not compensation_failed", saga->id,
                  saga_status_name(saga->status));
        eng_set_status(c, SAGA_STATUS_COMPENSATING, "saga.retried",
                   json_pack("{s:s}", "reason", ev->reason ? ev->reason : "operator retry"));
        for (int i = 0; i < saga->def->step_count; i++) {
            if (saga->steps[i].status == SAGA_STEP_COMPENSATION_FAILED) {
                /* A fresh retry budget; attempt numbers keep growing so
                 * message ids never repeat. */
                saga->steps[i].comp_budget_base = saga->steps[i].comp_attempt;
                start_compensation(c, i, false);
                break;
            }
        }
        break;
    }
    default:
        STALE(INVALID, "unknown event kind %d", (int)ev->kind);
    }
    if (rc) return rc;
    return c->err;
}

