/* The saga state machine. Pure: everything it needs (time, randomness,
 * the definition, the saga's state) is passed in; everything it decides is
 * appended to an effects list for the caller to make durable. */
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

/* ---- the context of one apply call -------------------------------------- */

typedef struct {
    const saga_engine_config_t *cfg;
    saga_t *saga;
    int64_t now;
    uint64_t *rng;
    saga_effects_t *fx;
    int err; /* first failure; the caller discards the effects */
    char *why;
    size_t why_len;
} apply_ctx_t;

static void fx_push(apply_ctx_t *c, saga_effect_t e) {
    int rc = saga_effects_push(c->fx, e);
    if (rc && !c->err) c->err = rc;
}

static void set_timer(apply_ctx_t *c, int slot, saga_timer_kind_t kind, int attempt, int64_t due) {
    fx_push(c, (saga_effect_t){.kind = SAGA_FX_SET_TIMER, .slot = slot, .timer_kind = kind,
                               .timer_attempt = attempt, .due_at = due});
}

static void clear_timer(apply_ctx_t *c, int slot) {
    fx_push(c, (saga_effect_t){.kind = SAGA_FX_CLEAR_TIMER, .slot = slot});
}

/* Records one lifecycle event: the only place history is written from.
 * detail is stolen (may be NULL). */
/* Sets o[key] = value (stolen) and returns o; NULL, with both released, when
 * either is NULL or the set fails. Events and commands are built with it on
 * every transition: json_pack's format parsing cost more than the objects. */
static json_t *put(json_t *o, const char *key, json_t *value) {
    if (!o) {
        json_decref(value);
        return NULL;
    }
    if (json_object_set_new_nocheck(o, key, value)) { /* releases value */
        json_decref(o);
        return NULL;
    }
    return o;
}

/* ---- message size limit --------------------------------------------------- */

/* Largest value a published message may have (0: no limit). */
static size_t message_limit(const apply_ctx_t *c) {
    size_t max = c->cfg->max_message_bytes;
    if (!max) return 0;
    return max > 2 * SAGA_MESSAGE_RESERVE ? max - SAGA_MESSAGE_RESERVE : max / 2;
}

/* Bytes to publish for lifecycle event ev: its text, or when that is over
 * limit a copy whose large detail members are replaced by
 * {"truncated": bytes} and which says "truncated": original size (the
 * history row keeps the detail whole). NULL only when out of memory. */
static char *event_text(const json_t *ev, size_t limit) {
    char *text = saga_json_dump(ev);
    if (!text || strlen(text) <= limit) return text;
    size_t original = strlen(text);
    saga_free(text);
    json_t *copy = json_copy((json_t *)ev), *detail = json_object_get(ev, "detail");
    json_t *small = json_object();
    const char *key;
    json_t *member;
    json_object_foreach(detail, key, member) {
        char *m = saga_json_dump(member);
        size_t n = m ? strlen(m) : 0;
        saga_free(m);
        json_object_set_new(small, key, n > 256 ? json_pack("{s:I}", "truncated", (json_int_t)n)
                                                : json_incref(member));
    }
    json_object_set_new(copy, "detail", small);
    json_object_set_new(copy, "truncated", json_integer((json_int_t)original));
    text = saga_json_dump(copy);
    if (text && strlen(text) > limit) { /* many members: drop the detail */
        saga_free(text);
        json_object_set_new(copy, "detail", json_object());
        text = saga_json_dump(copy);
    }
    json_decref(copy);
    return text;
}

int saga_events_level_parse(const char *name) {
    static const char *const names[] = {"all", "saga", "terminal"};
    for (int i = 0; i < 3; i++)
        if (name && !strcmp(name, names[i])) return i;
    return -1;
}

/* Whether cfg's level publishes this event of a saga now in its status. */
static bool published(const saga_engine_config_t *cfg, const char *event, saga_status_t status) {
    bool saga_event = !strncmp(event, "saga.", 5);
    switch (cfg->events_level) {
    case SAGA_EVENTS_ALL: return true;
    case SAGA_EVENTS_SAGA: return saga_event;
    case SAGA_EVENTS_TERMINAL:
        return saga_event && (status == SAGA_STATUS_COMPLETED || status == SAGA_STATUS_COMPENSATED ||
                              status == SAGA_STATUS_COMPENSATION_FAILED);
    }
    return true;
}

static void record(apply_ctx_t *c, const char *event, int step, json_t *detail) {
    saga_t *s = c->saga;
    char at[40], message_id[SAGA_ID_MAX + 32];
    s->seq++;
    s->updated_at = c->now;
    snprintf(message_id, sizeof message_id, "%s/event/%lld", s->id, (long long)s->seq);
    json_t *ev = json_object();
    ev = put(ev, "type", json_string_nocheck("saga.event"));
    ev = put(ev, "message_id", json_string(message_id));
    ev = put(ev, "saga_id", json_string(s->id));
    ev = put(ev, "definition", json_string(s->def->name));
    ev = put(ev, "version", json_integer(s->def->version));
    ev = put(ev, "seq", json_integer((json_int_t)s->seq));
    ev = put(ev, "at", json_string_nocheck(saga_format_time(c->now, at, sizeof at)));
    ev = put(ev, "event", json_string_nocheck(event));
    ev = put(ev, "status", json_string_nocheck(saga_status_name(s->status)));
    if (!ev) {
        json_decref(detail);
        c->err = SAGA_ENOMEM;
        return;
    }
    if (step >= 0) {
        json_object_set_new(ev, "step", json_string(s->def->steps[step].name));
        json_object_set_new(ev, "step_status", json_string(saga_step_status_name(s->steps[step].status)));
    }
    json_object_set_new(ev, "detail", detail ? detail : json_object());
    char *text = NULL;
    bool publish = published(c->cfg, event, s->status);
    if (publish && c->cfg->max_message_bytes && !(text = event_text(ev, message_limit(c)))) {
        json_decref(ev);
        c->err = SAGA_ENOMEM;
        return;
    }
    fx_push(c, (saga_effect_t){.kind = SAGA_FX_EVENT, .message = ev, .slot = step, .text = text, .unpublished = !publish});
}

/* A transition missing from transitions.h is an engine bug: the whole
 * apply is refused (SAGA_ESTATE) so nothing half-done is stored. */
static void refuse_transition(apply_ctx_t *c, const char *from, const char *to, const char *event,
                              const char *step) {
    if (!c->err) {
        c->err = SAGA_ESTATE;
        snprintf(c->why, c->why_len, "engine bug: %s%s%s%s -> %s by %s is not a listed transition",
                 step ? "step '" : "saga", step ? step : "", step ? "' " : "", from, to, event);
    }
}

static void notify_parent(apply_ctx_t *c);

/* The one function that changes a saga's status. */
static void set_status(apply_ctx_t *c, saga_status_t status, const char *event, json_t *detail) {
    if (!saga_transition_allowed(c->saga->status, status, event)) {
        refuse_transition(c, saga_status_name(c->saga->status), saga_status_name(status), event, NULL);
        json_decref(detail);
        return;
    }
    c->saga->status = status;
    record(c, event, -1, detail);
    if (c->saga->parent && saga_status_is_terminal(status)) notify_parent(c);
}

/* The one function that changes a step's status. */
static void set_step_status(apply_ctx_t *c, int i, saga_step_status_t status, const char *event,
                            json_t *detail) {
    saga_step_state_t *st = &c->saga->steps[i];
    if (!saga_step_transition_allowed(st->status, status, event)) {
        refuse_transition(c, saga_step_status_name(st->status), saga_step_status_name(status), event,
                          c->saga->def->steps[i].name);
        json_decref(detail);
        return;
    }
    st->status = status;
    st->updated_at = c->now;
    c->saga->step_dirty[i] = true;
    record(c, event, i, detail);
}

static json_t *error_detail(const char *code, const char *message, int attempt) {
    return json_pack("{s:s, s:s, s:i}", "code", code ? code : "", "message", message ? message : "",
                     "attempt", attempt);
}

static void set_step_error(saga_step_state_t *st, const char *code, const char *message) {
    /* a reply's text, cut to the buffer on a character boundary */
    saga_utf8_copy(st->error_code, sizeof st->error_code, code);
    saga_utf8_copy(st->error_message, sizeof st->error_message, message);
}

/* ---- commands ----------------------------------------------------------- */

static json_t *template_context(const saga_t *s) {
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
    json_t *ctx = template_context(s);
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
    cmd = put(cmd, "type", json_string_nocheck("saga.command"));
    cmd = put(cmd, "message_id", json_string(message_id));
    cmd = put(cmd, "saga_id", json_string(s->id));
    cmd = put(cmd, "definition", json_string(s->def->name));
    cmd = put(cmd, "step", json_string(d->name));
    cmd = put(cmd, "kind", json_string_nocheck(kind_name));
    cmd = put(cmd, "action", json_string(kind == SAGA_KIND_ACTION ? d->action : d->compensation));
    cmd = put(cmd, "attempt", json_integer(attempt));
    cmd = put(cmd, "idempotency_key", json_string(key));
    cmd = put(cmd, "payload", payload);
    cmd = put(cmd, "reply_to", json_string(c->cfg->replies_topic));
    if (c->cfg->partitions > 0)
        cmd = put(cmd, "reply_partition", json_integer(saga_partition_of(s->id, c->cfg->partitions)));
    cmd = put(cmd, "deadline", json_string_nocheck(saga_format_time(c->now + d->timeout_ms, deadline, sizeof deadline)));
    if (!cmd) { c->err = SAGA_ENOMEM; return SAGA_ENOMEM; }
    char *text = NULL;
    size_t limit = message_limit(c);
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
    fx_push(c, (saga_effect_t){.kind = SAGA_FX_COMMAND, .topic = d->topic, .message = cmd, .slot = i, .text = text});
    set_timer(c, i, SAGA_TIMER_STEP_TIMEOUT, attempt, c->now + d->timeout_ms);
    return 0;
}

/* ---- child sagas ------------------------------------------------------------ */

static const char *start_topic(const apply_ctx_t *c) { return c->cfg->start_topic ? c->cfg->start_topic : "saga.start"; }
static const char *control_topic(const apply_ctx_t *c) {
    return c->cfg->control_topic ? c->cfg->control_topic : "saga.control";
}

/* A message for saga `to` (its id the key, its partition when known), stolen. */
static void send_to(apply_ctx_t *c, const char *topic, const char *to, int slot, json_t *msg) {
    if (!msg) {
        c->err = SAGA_ENOMEM;
        return;
    }
    saga_effect_t e = {.kind = SAGA_FX_COMMAND, .topic = topic, .message = msg, .slot = slot, .partition = -1};
    snprintf(e.key, sizeof e.key, "%s", to);
    if (c->cfg->partitions > 0) e.partition = saga_partition_of(to, c->cfg->partitions);
    fx_push(c, e);
}

/* {"saga_id", "step", "attempt", "partition"}: who a child answers. */
static json_t *parent_ref(apply_ctx_t *c, int i, int attempt) {
    saga_t *s = c->saga;
    return json_pack("{s:s, s:s, s:i, s:i}", "saga_id", s->id, "step", s->def->steps[i].name, "attempt", attempt,
                     "partition", c->cfg->partitions > 0 ? saga_partition_of(s->id, c->cfg->partitions) : -1);
}

/* Child step i starts its child saga: a saga.start with the rendered
 * input and who to answer. 0, or SAGA_ETEMPLATE with err. */
static int start_child(apply_ctx_t *c, int i, char *err, size_t errlen) {
    saga_t *s = c->saga;
    const saga_step_def_t *d = &s->def->steps[i];
    saga_step_state_t *st = &s->steps[i];
    json_t *ctx = template_context(s);
    if (!ctx) return c->err = SAGA_ENOMEM;
    json_t *input = saga_template_render(d->payload, ctx, err, errlen);
    json_decref(ctx);
    if (!input) return SAGA_ETEMPLATE;
    char child[SAGA_ID_MAX], mid[SAGA_ID_MAX + SAGA_NAME_MAX + 32];
    saga_child_id(s->id, d->name, child, sizeof child);
    snprintf(mid, sizeof mid, "%s/%s/action/%d", s->id, d->name, st->attempt);
    json_t *msg = json_object();
    msg = put(msg, "type", json_string_nocheck("saga.start"));
    msg = put(msg, "message_id", json_string(mid));
    msg = put(msg, "definition", json_string(d->child));
    if (d->child_version > 0) msg = put(msg, "version", json_integer(d->child_version));
    msg = put(msg, "saga_id", json_string(child));
    msg = put(msg, "input", input);
    msg = put(msg, "parent", parent_ref(c, i, st->attempt));
    send_to(c, start_topic(c), child, i, msg);
    if (d->timeout_ms > 0) set_timer(c, i, SAGA_TIMER_STEP_TIMEOUT, st->attempt, c->now + d->timeout_ms);
    return c->err;
}

/* Asks child step i's saga to undo itself (command compensate) or to stop
 * (abort: its parent compensates while it runs). */
static void tell_child(apply_ctx_t *c, int i, const char *command, int attempt, const char *reason) {
    saga_t *s = c->saga;
    const saga_step_def_t *d = &s->def->steps[i];
    char child[SAGA_ID_MAX], mid[SAGA_ID_MAX + SAGA_NAME_MAX + 32];
    saga_child_id(s->id, d->name, child, sizeof child);
    snprintf(mid, sizeof mid, "%s/%s/%s/%d", s->id, d->name, strcmp(command, "abort") ? "compensation" : "abort",
             attempt);
    json_t *msg = json_object();
    msg = put(msg, "type", json_string_nocheck("saga.control"));
    msg = put(msg, "message_id", json_string(mid));
    msg = put(msg, "command", json_string_nocheck(command));
    msg = put(msg, "saga_id", json_string(child));
    msg = put(msg, "parent", parent_ref(c, i, attempt));
    if (reason) msg = put(msg, "reason", json_string(reason));
    send_to(c, control_topic(c), child, i, msg);
}

/* A child saga reached an end its parent waits for: a saga.reply to the
 * parent's step, for its action (started) or, once asked to undo itself,
 * for that compensation. */
static void notify_parent(apply_ctx_t *c) {
    saga_t *s = c->saga;
    const json_t *p = s->parent;
    const char *pid = json_string_value(json_object_get(p, "saga_id")), *step = json_string_value(json_object_get(p, "step"));
    if (!pid || !step) return;
    const json_t *comp = json_object_get(p, "compensate");
    bool undo = json_is_integer(comp);
    int attempt = (int)json_integer_value(undo ? comp : json_object_get(p, "attempt"));
    const char *kind = undo ? "compensation" : "action";
    bool success = undo ? s->status == SAGA_STATUS_COMPENSATED : s->status == SAGA_STATUS_COMPLETED;
    if (!undo && s->status != SAGA_STATUS_COMPLETED && s->status != SAGA_STATUS_COMPENSATED &&
        s->status != SAGA_STATUS_COMPENSATION_FAILED)
        return;
    if (undo && s->status != SAGA_STATUS_COMPENSATED && s->status != SAGA_STATUS_COMPENSATION_FAILED) return;
    char mid[SAGA_MESSAGE_ID_MAX], in_reply_to[SAGA_MESSAGE_ID_MAX], msg_text[300];
    snprintf(mid, sizeof mid, "%s/parent/%s/%d/%s", s->id, kind, attempt, saga_status_name(s->status));
    snprintf(in_reply_to, sizeof in_reply_to, "%s/%s/%s/%d", pid, step, kind, attempt);
    json_t *msg = json_object();
    msg = put(msg, "type", json_string_nocheck("saga.reply"));
    msg = put(msg, "message_id", json_string(mid));
    msg = put(msg, "in_reply_to", json_string(in_reply_to));
    msg = put(msg, "saga_id", json_string(pid));
    msg = put(msg, "step", json_string(step));
    msg = put(msg, "kind", json_string_nocheck(kind));
    msg = put(msg, "attempt", json_integer(attempt));
    msg = put(msg, "status", json_string_nocheck(success ? "success" : "failure"));
    if (success && !undo) { /* the child's output: its definition's "output" template, or {} */
        char err[200];
        json_t *ctx = template_context(s);
        json_t *out = ctx && s->def->output ? saga_template_render(s->def->output, ctx, err, sizeof err) : NULL;
        json_decref(ctx);
        msg = put(msg, "output", out ? out : json_object());
    } else if (!success) {
        const char *code = s->status == SAGA_STATUS_COMPENSATION_FAILED ? "CHILD_COMPENSATION_FAILED"
                                                                         : (s->error_code[0] ? s->error_code : "CHILD_COMPENSATED");
        snprintf(msg_text, sizeof msg_text, "child saga %s is %s%s%s", s->id, saga_status_name(s->status),
                 s->error_message[0] ? ": " : "", s->error_message);
        saga_utf8_trim_cut(msg_text);
        msg = put(msg, "error", json_pack("{s:s, s:s}", "code", code, "message", msg_text));
    }
    saga_effect_t e = {.kind = SAGA_FX_COMMAND, .topic = c->cfg->replies_topic, .message = msg, .slot = -1,
                       .partition = (int)json_integer_value(json_object_get(p, "partition"))};
    if (!msg) {
        c->err = SAGA_ENOMEM;
        return;
    }
    snprintf(e.key, sizeof e.key, "%s", pid);
    fx_push(c, e);
}

/* ---- forward path ------------------------------------------------------- */

static void begin_compensation(apply_ctx_t *c, const char *code, const char *message);

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
    fx_push(c, (saga_effect_t){.kind = SAGA_FX_WAIT_FOR_ROOM, .slot = i, .topic = c->saga->def->steps[i].topic});
    set_step_status(c, i, status, event, json_pack("{s:s}", "topic", c->saga->def->steps[i].topic));
}

static void start_signal_wait(apply_ctx_t *c, int i);

/* room_taken: the caller already holds a slot on the step's topic. */
static void start_attempt(apply_ctx_t *c, int i, bool room_taken) {
    saga_step_state_t *st = &c->saga->steps[i];
    char err[300];
    if (c->saga->def->steps[i].kind == SAGA_STEP_KIND_SIGNAL) {
        start_signal_wait(c, i);
        return;
    }
    if (c->saga->def->steps[i].kind == SAGA_STEP_KIND_CHILD) { /* no bulkhead: its child's steps have theirs */
        st->attempt++;
        if (st->attempt == 1) st->started_at = c->now;
        int rc = start_child(c, i, err, sizeof err);
        if (rc == SAGA_ETEMPLATE) {
            set_step_error(st, "TEMPLATE", err);
            st->finished_at = c->now;
            set_step_status(c, i, SAGA_STEP_FAILED, "step.failed", error_detail("TEMPLATE", err, st->attempt));
            begin_compensation(c, "TEMPLATE", err);
            return;
        }
        if (rc) return;
        char child[SAGA_ID_MAX];
        saga_child_id(c->saga->id, c->saga->def->steps[i].name, child, sizeof child);
        set_step_status(c, i, SAGA_STEP_RUNNING, "step.started", json_pack("{s:i, s:s}", "attempt", st->attempt, "child", child));
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
        set_step_error(st, code, err);
        st->finished_at = c->now;
        set_step_status(c, i, SAGA_STEP_FAILED, "step.failed", error_detail(code, err, st->attempt));
        begin_compensation(c, code, err);
        return;
    }
    if (rc) return;
    set_step_status(c, i, SAGA_STEP_RUNNING, "step.started", json_pack("{s:i}", "attempt", st->attempt));
}

static bool deps_succeeded(const saga_t *s, int i) {
    const saga_step_def_t *d = &s->def->steps[i];
    for (int k = 0; k < d->after_count; k++)
        if (s->steps[d->after[k]].status != SAGA_STEP_SUCCEEDED) return false;
    return true;
}

/* Starts every step whose dependencies have succeeded; completes the saga
 * when all steps have. */
static void advance(apply_ctx_t *c) {
    saga_t *s = c->saga;
    bool all_done = true;
    for (int i = 0; i < s->def->step_count && s->status == SAGA_STATUS_RUNNING; i++) {
        if (s->steps[i].status == SAGA_STEP_PENDING && deps_succeeded(s, i)) start_attempt(c, i, false);
        if (s->steps[i].status != SAGA_STEP_SUCCEEDED) all_done = false;
    }
    if (all_done && s->status == SAGA_STATUS_RUNNING) {
        if (s->deadline_at) clear_timer(c, -1);
        set_status(c, SAGA_STATUS_COMPLETED, "saga.completed", NULL);
    }
}

/* The step's outcome is final and it may have run: it joins the
 * compensation order. */
static void mark_completed(saga_t *s, int i) { s->steps[i].completion_order = ++s->completions; }

/* A transient problem with an action (retry reply or timeout). */
static void action_transient(apply_ctx_t *c, int i, const char *code, const char *message) {
    saga_t *s = c->saga;
    saga_step_state_t *st = &s->steps[i];
    const saga_step_def_t *d = &s->def->steps[i];
    set_step_error(st, code, message);
    if (s->status == SAGA_STATUS_RUNNING && st->attempt < d->retry.max_attempts) {
        int64_t delay = saga_backoff_ms(&d->retry, st->attempt, c->rng);
        set_timer(c, i, SAGA_TIMER_BACKOFF, st->attempt, c->now + delay);
        json_t *detail = error_detail(code, message, st->attempt);
        if (detail) {
            json_object_set_new(detail, "backoff_ms", json_integer(delay));
            /* replay needs it: a participant may reply "retry" with any code */
            json_object_set_new(detail, "outcome_unknown", json_boolean(st->outcome_unknown));
        }
        set_step_status(c, i, SAGA_STEP_RETRY_WAIT, "step.retry_scheduled", detail);
        return;
    }
    clear_timer(c, i);
    st->finished_at = c->now;
    if (st->outcome_unknown) {
        mark_completed(s, i);
        set_step_status(c, i, SAGA_STEP_UNKNOWN, "step.unknown", error_detail(code, message, st->attempt));
    } else {
        set_step_status(c, i, SAGA_STEP_FAILED, "step.failed", error_detail(code, message, st->attempt));
    }
    if (s->status == SAGA_STATUS_RUNNING) {
        char why[300];
        snprintf(why, sizeof why, "step '%s' gave up after %d attempts: %s", d->name, st->attempt,
                 message && *message ? message : code);
        saga_utf8_trim_cut(why);
        begin_compensation(c, "RETRIES_EXHAUSTED", why);
    } else {
        begin_compensation(c, NULL, NULL);
    }
}

/* ---- compensation ------------------------------------------------------- */

/* A compensation that can never be sent (its payload does not render, is
 * over the message size limit, or the broker refused it for good):
 * retrying cannot help, an operator must look. */
static void compensation_impossible(apply_ctx_t *c, int i, const char *code, const char *err) {
    saga_t *s = c->saga;
    saga_step_state_t *st = &s->steps[i];
    set_step_error(st, code, err);
    set_step_status(c, i, SAGA_STEP_COMPENSATION_FAILED, "compensation.failed",
                    error_detail(code, err, st->comp_attempt));
    set_status(c, SAGA_STATUS_COMPENSATION_FAILED, "saga.compensation_failed",
               json_pack("{s:s, s:s, s:s}", "step", s->def->steps[i].name, "code", code, "reason", err));
    fx_push(c, (saga_effect_t){.kind = SAGA_FX_ALERT, .slot = i,
                               .message = json_pack("{s:s, s:s, s:s, s:s}", "saga_id", s->id, "step",
                                                    s->def->steps[i].name, "code", code, "reason", err)});
}

static void start_compensation(apply_ctx_t *c, int i, bool room_taken) {
    saga_t *s = c->saga;
    saga_step_state_t *st = &s->steps[i];
    char err[300];
    if (s->def->steps[i].kind == SAGA_STEP_KIND_CHILD) { /* the child undoes its own completed steps */
        st->comp_attempt++;
        tell_child(c, i, "compensate", st->comp_attempt, NULL);
        if (s->def->steps[i].timeout_ms > 0)
            set_timer(c, i, SAGA_TIMER_STEP_TIMEOUT, st->comp_attempt, c->now + s->def->steps[i].timeout_ms);
        set_step_status(c, i, SAGA_STEP_COMPENSATING, "compensation.started",
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
    set_step_status(c, i, SAGA_STEP_COMPENSATING, "compensation.started",
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
            set_status(c, SAGA_STATUS_COMPENSATED, "saga.compensated", NULL);
            return;
        }
        if (s->def->steps[next].compensation[0]) {
            start_compensation(c, next, false);
            return;
        }
        set_step_status(c, next, SAGA_STEP_COMPENSATED, "compensation.skipped",
                        json_pack("{s:s}", "reason", "step has no compensation"));
    }
}

/* Stops the forward path: steps not started are cancelled, steps waiting
 * to retry give up, and compensation starts once in-flight actions end.
 * code NULL: already compensating, only continue. */
static void begin_compensation(apply_ctx_t *c, const char *code, const char *message) {
    saga_t *s = c->saga;
    if (code && (s->status == SAGA_STATUS_RUNNING || s->status == SAGA_STATUS_SCHEDULED)) {
        saga_utf8_copy(s->error_code, sizeof s->error_code, code);
        saga_utf8_copy(s->error_message, sizeof s->error_message, message); /* it goes into the event below */
        if (s->deadline_at || s->status == SAGA_STATUS_SCHEDULED) clear_timer(c, -1); /* deadline or begin time */
        set_status(c, SAGA_STATUS_COMPENSATING, "saga.compensating",
                   json_pack("{s:s, s:s}", "code", code, "message", s->error_message));
        for (int i = 0; i < s->def->step_count; i++) {
            saga_step_state_t *st = &s->steps[i];
            if (st->status == SAGA_STEP_RUNNING && s->def->steps[i].kind == SAGA_STEP_KIND_CHILD) {
                /* a running child stops and undoes itself; its failure reply ends the step */
                char why[300];
                snprintf(why, sizeof why, "its parent saga %s compensates: %s", s->id, s->error_message);
                saga_utf8_trim_cut(why);
                tell_child(c, i, "abort", st->attempt, why);
            }
            if (st->status == SAGA_STEP_PENDING) {
                set_step_status(c, i, SAGA_STEP_CANCELLED, "step.cancelled", NULL);
            } else if (st->status == SAGA_STEP_WAITING) { /* its signal is not needed any more */
                clear_timer(c, i);
                st->finished_at = c->now;
                set_step_status(c, i, SAGA_STEP_CANCELLED, "step.cancelled", NULL);
            } else if (st->status == SAGA_STEP_RETRY_WAIT || st->status == SAGA_STEP_QUEUED) {
                clear_timer(c, i);
                st->finished_at = c->now;
                if (st->outcome_unknown) {
                    mark_completed(s, i);
                    set_step_status(c, i, SAGA_STEP_UNKNOWN, "step.unknown", NULL);
                } else {
                    set_step_status(c, i, SAGA_STEP_CANCELLED, "step.cancelled", NULL);
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
    set_step_error(st, code, message);
    if (st->comp_attempt - st->comp_budget_base < d->compensation_retry.max_attempts) {
        int64_t delay = saga_backoff_ms(&d->compensation_retry, st->comp_attempt, c->rng);
        set_timer(c, i, SAGA_TIMER_BACKOFF, st->comp_attempt, c->now + delay);
        json_t *detail = error_detail(code, message, st->comp_attempt);
        if (detail) json_object_set_new(detail, "backoff_ms", json_integer(delay));
        set_step_status(c, i, SAGA_STEP_COMPENSATION_RETRY_WAIT, "compensation.retry_scheduled", detail);
        return;
    }
    clear_timer(c, i);
    set_step_status(c, i, SAGA_STEP_COMPENSATION_FAILED, "compensation.failed",
                    error_detail(code, message, st->comp_attempt));
    char why[400];
    snprintf(why, sizeof why, "compensation of step '%s' failed %d times: %s", d->name,
             st->comp_attempt, message && *message ? message : code);
    saga_utf8_trim_cut(why);
    set_status(c, SAGA_STATUS_COMPENSATION_FAILED, "saga.compensation_failed",
               json_pack("{s:s, s:s, s:s}", "step", d->name, "code", code ? code : "", "reason", why));
    fx_push(c, (saga_effect_t){.kind = SAGA_FX_ALERT, .slot = i,
                               .message = json_pack("{s:s, s:s, s:s, s:s}", "saga_id", s->id, "step",
                                                    d->name, "code", code ? code : "", "reason", why)});
}

/* ---- signal steps --------------------------------------------------------- */

/* Signal step i's signal arrived while it waits: success gives the step
 * its output, failure fails it (and the saga compensates). */
static void signal_arrived(apply_ctx_t *c, int i, bool success, const json_t *output, const char *code,
                           const char *message) {
    saga_t *s = c->saga;
    saga_step_state_t *st = &s->steps[i];
    const saga_step_def_t *d = &s->def->steps[i];
    clear_timer(c, i);
    st->finished_at = c->now;
    if (success) {
        json_decref(st->output);
        st->output = output ? json_deep_copy(output) : json_object();
        set_step_error(st, "", "");
        mark_completed(s, i);
        set_step_status(c, i, SAGA_STEP_SUCCEEDED, "step.succeeded",
                        json_pack("{s:i, s:O, s:s}", "attempt", st->attempt, "output", st->output, "signal", d->signal));
        advance(c);
        return;
    }
    code = code && *code ? code : "SIGNAL_FAILED";
    set_step_error(st, code, message);
    json_t *detail = error_detail(code, message, st->attempt);
    if (detail) json_object_set_new(detail, "signal", json_string(d->signal));
    set_step_status(c, i, SAGA_STEP_FAILED, "step.failed", detail);
    char why[300];
    snprintf(why, sizeof why, "step '%s' failed: signal '%s' said %s", d->name, d->signal,
             message && *message ? message : code);
    saga_utf8_trim_cut(why);
    begin_compensation(c, code, why);
}

/* A kept signal {"status", "output"?, "error"?: {"code", "message"}} applied. */
static void apply_kept_signal(apply_ctx_t *c, int i, const json_t *sig) {
    const json_t *err = json_object_get(sig, "error");
    const char *status = json_string_value(json_object_get(sig, "status"));
    signal_arrived(c, i, status && strcmp(status, "success") == 0,
                   json_object_get(sig, "output"), json_string_value(json_object_get(err, "code")),
                   json_string_value(json_object_get(err, "message")));
}

/* Signal step i starts: it waits for its signal (until its timeout, if
 * any), or takes at once the one that came early. */
static void start_signal_wait(apply_ctx_t *c, int i) {
    saga_step_state_t *st = &c->saga->steps[i];
    const saga_step_def_t *d = &c->saga->def->steps[i];
    st->attempt = 1;
    st->started_at = c->now;
    if (d->timeout_ms > 0) set_timer(c, i, SAGA_TIMER_STEP_TIMEOUT, st->attempt, c->now + d->timeout_ms);
    set_step_status(c, i, SAGA_STEP_WAITING, "step.waiting", json_pack("{s:i, s:s}", "attempt", 1, "signal", d->signal));
    if (st->signal && !c->err) apply_kept_signal(c, i, st->signal);
}

#define STALE(reason, ...)                                        \
    do {                                                          \
        c->fx->stale_reason = SAGA_STALE_##reason;                \
        snprintf(why, why_len, __VA_ARGS__);                      \
        return SAGA_ESTALE;                                       \
    } while (0)

static int on_signal(apply_ctx_t *c, const saga_event_t *ev, char *why, size_t why_len) {
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
        signal_arrived(c, i, success, ev->output, ev->error_code, ev->error_message);
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
        record(c, "signal.received", i, detail);
        return 0;
    }
    if (st->status == SAGA_STEP_SUCCEEDED || st->status == SAGA_STEP_FAILED || st->status == SAGA_STEP_COMPENSATED)
        STALE(SIGNAL_RECEIVED, "signal '%s' of saga '%s' was already received (step '%s' is %s)", d->signal, s->id,
              d->name, saga_step_status_name(st->status));
    STALE(NOT_WAITING, "saga '%s' no longer waits for signal '%s' (step '%s' is %s)", s->id, d->signal, d->name,
          saga_step_status_name(st->status));
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
            set_step_error(st, "", "");
            st->finished_at = c->now;
            mark_completed(s, ev->step);
            clear_timer(c, ev->step);
            set_step_status(c, ev->step, SAGA_STEP_SUCCEEDED, "step.succeeded",
                            json_pack("{s:i, s:O}", "attempt", ev->attempt, "output", st->output));
            if (s->status == SAGA_STATUS_RUNNING) advance(c);
            else begin_compensation(c, NULL, NULL);
            return 0;
        case SAGA_REPLY_FAILURE: {
            set_step_error(st, ev->error_code, ev->error_message);
            st->finished_at = c->now;
            clear_timer(c, ev->step);
            set_step_status(c, ev->step, SAGA_STEP_FAILED, "step.failed",
                            error_detail(ev->error_code, ev->error_message, ev->attempt));
            char msg[300];
            snprintf(msg, sizeof msg, "step '%s' failed: %s", name,
                     ev->error_message && *ev->error_message ? ev->error_message : (ev->error_code ? ev->error_code : ""));
            saga_utf8_trim_cut(msg);
            begin_compensation(c, ev->error_code && *ev->error_code ? ev->error_code : "STEP_FAILED", msg);
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
        set_step_error(st, "", "");
        clear_timer(c, ev->step);
        set_step_status(c, ev->step, SAGA_STEP_COMPENSATED, "compensation.succeeded",
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
        clear_timer(c, i);
        set_step_error(st, code, msg);
        st->finished_at = c->now;
        if (st->outcome_unknown) { /* an earlier attempt timed out: it may have run, compensate it */
            mark_completed(s, i);
            set_step_status(c, i, SAGA_STEP_UNKNOWN, "step.unknown", error_detail(code, msg, st->attempt));
        } else {
            set_step_status(c, i, SAGA_STEP_FAILED, "step.failed", error_detail(code, msg, st->attempt));
        }
        if (s->status == SAGA_STATUS_RUNNING) begin_compensation(c, code, msg);
        else begin_compensation(c, NULL, NULL);
        return 0;
    }
    if (st->status != SAGA_STEP_COMPENSATING || ev->attempt != st->comp_attempt)
        STALE(NOT_WAITING, "undeliverable compensation (attempt %d) of step '%s' which is %s (attempt %d)",
              ev->attempt, name, saga_step_status_name(st->status), st->comp_attempt);
    flow_done(c, i, true);
    clear_timer(c, i);
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
    if (first) record(c, "saga.started", -1, detail);
    else set_status(c, SAGA_STATUS_RUNNING, "saga.started", detail);
    if (s->deadline_at) set_timer(c, -1, SAGA_TIMER_DEADLINE, 0, s->deadline_at);
    advance(c);
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
        begin_compensation(c, "SAGA_DEADLINE", "the saga did not finish before its deadline");
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
            signal_arrived(c, i, false, NULL, "SIGNAL_TIMEOUT", wait);
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
            record(c, "saga.scheduled", -1,
                   json_pack("{s:O, s:I}", "input", saga->input ? saga->input : json_null(), "begin_at",
                             (json_int_t)ev->begin_at));
            set_timer(c, -1, SAGA_TIMER_START, 0, ev->begin_at);
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
        rc = on_signal(c, ev, why, why_len);
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
            set_status(c, SAGA_STATUS_COMPENSATING, "saga.compensating",
                       json_pack("{s:s, s:s}", "code", saga->error_code, "message", saga->error_message));
            continue_compensation(c);
        } else if (saga->status == SAGA_STATUS_RUNNING || saga->status == SAGA_STATUS_SCHEDULED) {
            begin_compensation(c, "PARENT_COMPENSATING", "its parent saga compensates");
        } else if (saga->status == SAGA_STATUS_COMPENSATED || saga->status == SAGA_STATUS_COMPENSATION_FAILED) {
            notify_parent(c); /* already undone (or stuck): say so again, for this attempt */
        } /* compensating: it answers when it is done */
        break;
    }
    case SAGA_EV_ABORT:
        if (saga->status != SAGA_STATUS_RUNNING && saga->status != SAGA_STATUS_SCHEDULED)
            STALE(NOT_ALLOWED, "cannot abort saga '%s': it is %s", saga->id, saga_status_name(saga->status));
        begin_compensation(c, "ABORTED", ev->reason && *ev->reason ? ev->reason : "aborted by an operator");
        break;
    case SAGA_EV_RETRY: {
        if (saga->status != SAGA_STATUS_COMPENSATION_FAILED)
            STALE(NOT_ALLOWED, "cannot retry saga '%s': it is %s, not compensation_failed", saga->id,
                  saga_status_name(saga->status));
        set_status(c, SAGA_STATUS_COMPENSATING, "saga.retried",
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
