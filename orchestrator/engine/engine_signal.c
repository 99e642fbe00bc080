/* Signal steps: a step that waits for a named signal, kept when it comes
 * early, with an optional timeout (engine_internal.h). */
#include "engine_internal.h"

#include "engine.h"

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
/* ---- signal steps --------------------------------------------------------- */

/* Signal step i's signal arrived while it waits: success gives the step
 * its output, failure fails it (and the saga compensates). */
void eng_signal_arrived(apply_ctx_t *c, int i, bool success, const json_t *output, const char *code,
                           const char *message) {
    saga_t *s = c->saga;
    saga_step_state_t *st = &s->steps[i];
    const saga_step_def_t *d = &s->def->steps[i];
    eng_clear_timer(c, i);
    st->finished_at = c->now;
    if (success) {
        json_decref(st->output);
        st->output = output ? json_deep_copy(output) : json_object();
        eng_set_step_error(st, "", "");
        eng_mark_completed(s, i);
        eng_set_step_status(c, i, SAGA_STEP_SUCCEEDED, "step.succeeded",
                        json_pack("{s:i, s:O, s:s}", "attempt", st->attempt, "output", st->output, "signal", d->signal));
        eng_advance(c);
        return;
    }
    code = code && *code ? code : "SIGNAL_FAILED";
    eng_set_step_error(st, code, message);
    json_t *detail = eng_error_detail(code, message, st->attempt);
    if (detail) json_object_set_new(detail, "signal", json_string(d->signal));
    eng_set_step_status(c, i, SAGA_STEP_FAILED, "step.failed", detail);
    char why[300];
    snprintf(why, sizeof why, "step '%s' failed: signal '%s' said %s", d->name, d->signal,
             message && *message ? message : code);
    saga_utf8_trim_cut(why);
    eng_begin_compensation(c, code, why);
}

/* A kept signal {"status", "output"?, "error"?: {"code", "message"}} applied. */
static void apply_kept_signal(apply_ctx_t *c, int i, const json_t *sig) {
    const json_t *err = json_object_get(sig, "error");
    const char *status = json_string_value(json_object_get(sig, "status"));
    eng_signal_arrived(c, i, status && strcmp(status, "success") == 0,
                   json_object_get(sig, "output"), json_string_value(json_object_get(err, "code")),
                   json_string_value(json_object_get(err, "message")));
}

/* Signal step i starts: it waits for its signal (until its timeout, if
 * any), or takes at once the one that came early. */
void eng_start_signal_wait(apply_ctx_t *c, int i) {
    saga_step_state_t *st = &c->saga->steps[i];
    const saga_step_def_t *d = &c->saga->def->steps[i];
    st->attempt = 1;
    st->started_at = c->now;
    if (d->timeout_ms > 0) eng_set_timer(c, i, SAGA_TIMER_STEP_TIMEOUT, st->attempt, c->now + d->timeout_ms);
    eng_set_step_status(c, i, SAGA_STEP_WAITING, "step.waiting", json_pack("{s:i, s:s}", "attempt", 1, "signal", d->signal));
    if (st->signal && !c->err) apply_kept_signal(c, i, st->signal);
}

int eng_on_signal(apply_ctx_t *c, const saga_event_t *ev, char *why, size_t why_len) {
    saga_t *s = c->saga;
    if (ev->step < 0 || ev->step >= s->def->step_count || s->def->steps[ev->step].kind != SAGA_STEP_KIND_SIGNAL)
        STALE(UNKNOWN_STEP, "no signal step at index %d", ev->step);
    int i = ev->step;
    saga_step_state_t *st = &s->steps[i];
    const saga_step_def_t *d = &s->def->steps[i];
    bool success = ev->reply_status == SAGA_REPLY_SUCCESS;
    if (ev->reply_status != SAGA_REPLY_SUCCESS && ev->reply_status != SAGA_REPLY_FAILURE)
        STALE(INVALID, "a signal is a success or a failure");
    if (st->status == SAGA_STEP_WAITING) {
        eng_signal_arrived(c, i, success, ev->output, ev->error_code, ev->error_message);
        return 0;
    }
    if (st->status == SAGA_STEP_PENDING && (s->status == SAGA_STATUS_RUNNING || s->status == SAGA_STATUS_SCHEDULED)) {
        if (st->signal)
            STALE(SIGNAL_RECEIVED, "signal '%s' of saga '%s' was already received (step '%s' has not started)",
                  d->signal, s->id, d->name);
        /* early: kept with the step, used when it starts */
        json_t *sig = json_pack("{s:s}", "status", success ? "success" : "failure");
        if (sig && success && ev->output) json_object_set_new(sig, "output", json_deep_copy(ev->output));
        if (sig && !success)
            json_object_set_new(sig, "error", json_pack("{s:s, s:s}", "code", ev->error_code && *ev->error_code
                                                                         ? ev->error_code : "SIGNAL_FAILED",
                                                        "message", ev->error_message ? ev->error_message : ""));
        if (!sig) {
            c->err = SAGA_ENOMEM;
            return c->err;
        }
        st->signal = sig;
        s->step_dirty[i] = true;
        json_t *detail = json_deep_copy(sig);
        if (detail) json_object_set_new(detail, "signal", json_string(d->signal));
        eng_record(c, "signal.received", i, detail);
        return 0;
    }
    if (st->status == SAGA_STEP_SUCCEEDED || st->status == SAGA_STEP_FAILED || st->status == SAGA_STEP_COMPENSATED)
        STALE(SIGNAL_RECEIVED, "signal '%s' of saga '%s' was already received (step '%s' is %s)", d->signal, s->id,
              d->name, saga_step_status_name(st->status));
    STALE(NOT_WAITING, "saga '%s' no longer waits for signal '%s' (step '%s' is %s)", s->id, d->signal, d->name,
          saga_step_status_name(st->status));
}
