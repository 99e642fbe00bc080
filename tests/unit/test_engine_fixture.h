/* Shared by the engine's unit tests (test_engine.c, test_engine_steps.c, test_engine_limits.c):
 * definitions built in code and one saga driven through the pure engine
 * with a fake clock. */
#ifndef TEST_ENGINE_FIXTURE_H
#define TEST_ENGINE_FIXTURE_H

#include <stdbool.h>
#include <stdint.h>

#include "engine.h"

saga_retry_policy_t policy(int attempts, int64_t initial, double mult, int64_t max, saga_jitter_t j);

/* The definition make_def builds (one at a time): n sequential steps
 * s0..s(n-1); step i has compensation "undo<i>" unless its bit is set in
 * no_comp_mask. release_def frees it. */
extern saga_definition_t the_def;
saga_definition_t *make_def(int n, unsigned no_comp_mask);
void release_def(void);

typedef struct {
    saga_t saga;
    saga_effects_t fx;
    uint64_t rng;
    int64_t now;
    char why[256];
    saga_engine_config_t cfg;
} world_t;

/* A fresh saga "saga-1" of def (input {"order_id":"o-1"}) at 1000000 ms;
 * one world at a time (static). */
world_t *world_new(const saga_definition_t *def);
void world_free(world_t *w);
/* Applies ev with the world's clock; the effects replace the last ones. */
int apply(world_t *w, saga_event_t ev);
int start(world_t *w);
int reply(world_t *w, int step, saga_command_kind_t kind, int attempt, saga_reply_status_t st);
int ok(world_t *w, int step); /* step's current action attempt succeeds */
int timer(world_t *w, int slot, saga_timer_kind_t kind, int attempt);
/* The n-th effect of a kind, or NULL. */
const saga_effect_t *find_fx(const world_t *w, saga_effect_kind_t kind, int nth);
int count_fx(const world_t *w, saga_effect_kind_t kind);
const char *cmd_str(const saga_effect_t *e, const char *key);
bool has_event(const world_t *w, const char *name);

#endif
