/* The engine tests' fixture (test_engine_fixture.h): definitions built in
 * code, independent of the loader, and a world of one saga driven through
 * saga_engine_apply with a fake clock. */
#include "test_engine_fixture.h"

#include <stdio.h>
#include <string.h>

saga_retry_policy_t policy(int attempts, int64_t initial, double mult, int64_t max, saga_jitter_t j) {
    return (saga_retry_policy_t){attempts, initial, mult, max, j};
}

/* n sequential steps s0..s(n-1); step i has compensation "undo<i>" unless
 * its bit is set in no_comp_mask. */
saga_definition_t the_def;

void release_def(void) {
    for (int i = 0; i < the_def.step_count; i++) {
        json_decref(the_def.steps[i].payload);
        json_decref(the_def.steps[i].compensation_payload);
    }
    memset(&the_def, 0, sizeof the_def);
}

saga_definition_t *make_def(int n, unsigned no_comp_mask) {
    release_def();
    snprintf(the_def.name, sizeof the_def.name, "test_saga");
    the_def.version = 1;
    the_def.step_count = n;
    for (int i = 0; i < n; i++) {
        saga_step_def_t *s = &the_def.steps[i];
        snprintf(s->name, sizeof s->name, "s%d", i);
        snprintf(s->topic, sizeof s->topic, "topic%d", i);
        snprintf(s->action, sizeof s->action, "do%d", i);
        if (!(no_comp_mask & (1u << i))) snprintf(s->compensation, sizeof s->compensation, "undo%d", i);
        s->payload = json_pack("{s:s}", "order", "${input.order_id}");
        s->timeout_ms = 1000;
        s->retry = policy(3, 100, 2, 1000, SAGA_JITTER_NONE);
        s->compensation_retry = policy(2, 200, 2, 1000, SAGA_JITTER_NONE);
        if (i > 0) {
            s->after[0] = i - 1;
            s->after_count = 1;
        }
    }
    return &the_def;
}


world_t *world_new(const saga_definition_t *def) {
    static world_t w;
    memset(&w, 0, sizeof w);
    w.cfg.replies_topic = "saga.replies";
    w.now = 1000000;
    w.rng = 42;
    json_t *input = json_pack("{s:s}", "order_id", "o-1");
    saga_init(&w.saga, "saga-1", def, input, "", w.now);
    json_decref(input);
    saga_effects_init(&w.fx);
    return &w;
}

void world_free(world_t *w) {
    saga_effects_free(&w->fx);
    saga_clear(&w->saga);
}

int apply(world_t *w, saga_event_t ev) {
    saga_effects_clear(&w->fx);
    return saga_engine_apply(&w->cfg, &w->saga, &ev, w->now, &w->rng, &w->fx, w->why, sizeof w->why);
}

int start(world_t *w) { return apply(w, (saga_event_t){.kind = SAGA_EV_START}); }

int reply(world_t *w, int step, saga_command_kind_t kind, int attempt, saga_reply_status_t st) {
    json_t *out = json_pack("{s:i}", "n", step);
    int rc = apply(w, (saga_event_t){.kind = SAGA_EV_REPLY, .step = step, .command_kind = kind,
                                     .attempt = attempt, .reply_status = st, .output = out,
                                     .error_code = st == SAGA_REPLY_SUCCESS ? NULL : "E_TEST",
                                     .error_message = "test"});
    json_decref(out);
    return rc;
}

int ok(world_t *w, int step) { return reply(w, step, SAGA_KIND_ACTION, w->saga.steps[step].attempt, SAGA_REPLY_SUCCESS); }

int timer(world_t *w, int slot, saga_timer_kind_t kind, int attempt) {
    return apply(w, (saga_event_t){.kind = SAGA_EV_TIMER, .slot = slot, .timer_kind = kind, .timer_attempt = attempt});
}

/* The n-th effect of a kind, or NULL. */
const saga_effect_t *find_fx(const world_t *w, saga_effect_kind_t kind, int nth) {
    for (int i = 0; i < w->fx.count; i++)
        if (w->fx.items[i].kind == kind && nth-- == 0) return &w->fx.items[i];
    return NULL;
}

int count_fx(const world_t *w, saga_effect_kind_t kind) {
    int n = 0;
    for (int i = 0; i < w->fx.count; i++) n += w->fx.items[i].kind == kind;
    return n;
}

const char *cmd_str(const saga_effect_t *e, const char *key) {
    return json_string_value(json_object_get(e->message, key));
}

bool has_event(const world_t *w, const char *name) {
    for (int i = 0; i < w->fx.count; i++)
        if (w->fx.items[i].kind == SAGA_FX_EVENT &&
            strcmp(json_string_value(json_object_get(w->fx.items[i].message, "event")), name) == 0)
            return true;
    return false;
}

