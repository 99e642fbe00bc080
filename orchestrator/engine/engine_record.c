/* The engine's effects and lifecycle events: the apply context's helpers,
 * the message size limit, the events level, and the only functions that
 * change a saga's or a step's status (engine_internal.h). */
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
/* ---- the context of one apply call -------------------------------------- */


void eng_fx_push(apply_ctx_t *c, saga_effect_t e) {
    int rc = saga_effects_push(c->fx, e);
    if (rc && !c->err) c->err = rc;
}

void eng_set_timer(apply_ctx_t *c, int slot, saga_timer_kind_t kind, int attempt, int64_t due) {
    eng_fx_push(c, (saga_effect_t){.kind = SAGA_FX_SET_TIMER, .slot = slot, .timer_kind = kind,
                               .timer_attempt = attempt, .due_at = due});
}

void eng_clear_timer(apply_ctx_t *c, int slot) {
    eng_fx_push(c, (saga_effect_t){.kind = SAGA_FX_CLEAR_TIMER, .slot = slot});
}

/* Records one lifecycle event: the only place history is written from.
 * detail is stolen (may be NULL). */
/* Sets o[key] = value (stolen) and returns o; NULL, with both released, when
 * either is NULL or the set fails. Events and commands are built with it on
 * every transition: json_pack's format parsing cost more than the objects. */
json_t *eng_put(json_t *o, const char *key, json_t *value) {
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
size_t eng_message_limit(const apply_ctx_t *c) {
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

void eng_record(apply_ctx_t *c, const char *event, int step, json_t *detail) {
    saga_t *s = c->saga;
    char at[40], message_id[SAGA_ID_MAX + 32];
    s->seq++;
    s->updated_at = c->now;
    snprintf(message_id, sizeof message_id, "%s/event/%lld", s->id, (long long)s->seq);
    json_t *ev = json_object();
    ev = eng_put(ev, "type", json_string_nocheck("saga.event"));
    ev = eng_put(ev, "message_id", json_string(message_id));
    ev = eng_put(ev, "saga_id", json_string(s->id));
    ev = eng_put(ev, "definition", json_string(s->def->name));
    ev = eng_put(ev, "version", json_integer(s->def->version));
    ev = eng_put(ev, "seq", json_integer((json_int_t)s->seq));
    ev = eng_put(ev, "at", json_string_nocheck(saga_format_time(c->now, at, sizeof at)));
    ev = eng_put(ev, "event", json_string_nocheck(event));
    ev = eng_put(ev, "status", json_string_nocheck(saga_status_name(s->status)));
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
    if (publish && c->cfg->max_message_bytes && !(text = event_text(ev, eng_message_limit(c)))) {
        json_decref(ev);
        c->err = SAGA_ENOMEM;
        return;
    }
    eng_fx_push(c, (saga_effect_t){.kind = SAGA_FX_EVENT, .message = ev, .slot = step, .text = text, .unpublished = !publish});
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


/* The one function that changes a saga's status. */
void eng_set_status(apply_ctx_t *c, saga_status_t status, const char *event, json_t *detail) {
    if (!saga_transition_allowed(c->saga->status, status, event)) {
        refuse_transition(c, saga_status_name(c->saga->status), saga_status_name(status), event, NULL);
        json_decref(detail);
        return;
    }
    c->saga->status = status;
    eng_record(c, event, -1, detail);
    if (c->saga->parent && saga_status_is_terminal(status)) eng_notify_parent(c);
}

/* The one function that changes a step's status. */
void eng_set_step_status(apply_ctx_t *c, int i, saga_step_status_t status, const char *event,
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
    eng_record(c, event, i, detail);
}

json_t *eng_error_detail(const char *code, const char *message, int attempt) {
    return json_pack("{s:s, s:s, s:i}", "code", code ? code : "", "message", message ? message : "",
                     "attempt", attempt);
}

void eng_set_step_error(saga_step_state_t *st, const char *code, const char *message) {
    /* a reply's text, cut to the buffer on a character boundary */
    saga_utf8_copy(st->error_code, sizeof st->error_code, code);
    saga_utf8_copy(st->error_message, sizeof st->error_message, message);
}
