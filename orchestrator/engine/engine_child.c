/* Child sagas: a step of kind "saga" starts one, tells it to abort or
 * compensate, and a child answers its parent's step (engine_internal.h). */
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
    eng_fx_push(c, e);
}

/* {"saga_id", "step", "attempt", "partition"}: who a child answers. */
static json_t *parent_ref(apply_ctx_t *c, int i, int attempt) {
    saga_t *s = c->saga;
    return json_pack("{s:s, s:s, s:i, s:i}", "saga_id", s->id, "step", s->def->steps[i].name, "attempt", attempt,
                     "partition", c->cfg->partitions > 0 ? saga_partition_of(s->id, c->cfg->partitions) : -1);
}

/* Child step i starts its child saga: a saga.start with the rendered
 * input and who to answer. 0, or SAGA_ETEMPLATE with err. */
int eng_start_child(apply_ctx_t *c, int i, char *err, size_t errlen) {
    saga_t *s = c->saga;
    const saga_step_def_t *d = &s->def->steps[i];
    saga_step_state_t *st = &s->steps[i];
    json_t *ctx = eng_template_context(s);
    if (!ctx) return c->err = SAGA_ENOMEM;
    json_t *input = saga_template_render(d->payload, ctx, err, errlen);
    json_decref(ctx);
    if (!input) return SAGA_ETEMPLATE;
    char child[SAGA_ID_MAX], mid[SAGA_ID_MAX + SAGA_NAME_MAX + 32];
    saga_child_id(s->id, d->name, child, sizeof child);
    snprintf(mid, sizeof mid, "%s/%s/action/%d", s->id, d->name, st->attempt);
    json_t *msg = json_object();
    msg = eng_put(msg, "type", json_string_nocheck("saga.start"));
    msg = eng_put(msg, "message_id", json_string(mid));
    msg = eng_put(msg, "definition", json_string(d->child));
    if (d->child_version > 0) msg = eng_put(msg, "version", json_integer(d->child_version));
    msg = eng_put(msg, "saga_id", json_string(child));
    msg = eng_put(msg, "input", input);
    msg = eng_put(msg, "parent", parent_ref(c, i, st->attempt));
    send_to(c, start_topic(c), child, i, msg);
    if (d->timeout_ms > 0) eng_set_timer(c, i, SAGA_TIMER_STEP_TIMEOUT, st->attempt, c->now + d->timeout_ms);
    return c->err;
}

/* Asks child step i's saga to undo itself (command compensate) or to stop
 * (abort: its parent compensates while it runs). */
void eng_tell_child(apply_ctx_t *c, int i, const char *command, int attempt, const char *reason) {
    saga_t *s = c->saga;
    const saga_step_def_t *d = &s->def->steps[i];
    char child[SAGA_ID_MAX], mid[SAGA_ID_MAX + SAGA_NAME_MAX + 32];
    saga_child_id(s->id, d->name, child, sizeof child);
    snprintf(mid, sizeof mid, "%s/%s/%s/%d", s->id, d->name, strcmp(command, "abort") ? "compensation" : "abort",
             attempt);
    json_t *msg = json_object();
    msg = eng_put(msg, "type", json_string_nocheck("saga.control"));
    msg = eng_put(msg, "message_id", json_string(mid));
    msg = eng_put(msg, "command", json_string_nocheck(command));
    msg = eng_put(msg, "saga_id", json_string(child));
    msg = eng_put(msg, "parent", parent_ref(c, i, attempt));
    if (reason) msg = eng_put(msg, "reason", json_string(reason));
    send_to(c, control_topic(c), child, i, msg);
}

/* A child saga reached an end its parent waits for: a saga.reply to the
 * parent's step, for its action (started) or, once asked to undo itself,
 * for that compensation. */
void eng_notify_parent(apply_ctx_t *c) {
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
    msg = eng_put(msg, "type", json_string_nocheck("saga.reply"));
    msg = eng_put(msg, "message_id", json_string(mid));
    msg = eng_put(msg, "in_reply_to", json_string(in_reply_to));
    msg = eng_put(msg, "saga_id", json_string(pid));
    msg = eng_put(msg, "step", json_string(step));
    msg = eng_put(msg, "kind", json_string_nocheck(kind));
    msg = eng_put(msg, "attempt", json_integer(attempt));
    msg = eng_put(msg, "status", json_string_nocheck(success ? "success" : "failure"));
    if (success && !undo) { /* the child's output: its definition's "output" template, or {} */
        char err[200];
        json_t *ctx = eng_template_context(s);
        json_t *out = ctx && s->def->output ? saga_template_render(s->def->output, ctx, err, sizeof err) : NULL;
        json_decref(ctx);
        msg = eng_put(msg, "output", out ? out : json_object());
    } else if (!success) {
        const char *code = s->status == SAGA_STATUS_COMPENSATION_FAILED ? "CHILD_COMPENSATION_FAILED"
                                                                         : (s->error_code[0] ? s->error_code : "CHILD_COMPENSATED");
        snprintf(msg_text, sizeof msg_text, "child saga %s is %s%s%s", s->id, saga_status_name(s->status),
                 s->error_message[0] ? ": " : "", s->error_message);
        saga_utf8_trim_cut(msg_text);
        msg = eng_put(msg, "error", json_pack("{s:s, s:s}", "code", code, "message", msg_text));
    }
    saga_effect_t e = {.kind = SAGA_FX_COMMAND, .topic = c->cfg->replies_topic, .message = msg, .slot = -1,
                       .partition = (int)json_integer_value(json_object_get(p, "partition"))};
    if (!msg) {
        c->err = SAGA_ENOMEM;
        return;
    }
    snprintf(e.key, sizeof e.key, "%s", pid);
    eng_fx_push(c, e);
}
