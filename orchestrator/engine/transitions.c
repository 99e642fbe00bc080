/* The status changes the engine may make, as data (transitions.h). */
#include "transitions.h"

#include <string.h>

#define SAGA_TRANSITION_ROW(from, to, event) {SAGA_STATUS_##from, SAGA_STATUS_##to, event},
#define STEP_TRANSITION_ROW(from, to, event) {SAGA_STEP_##from, SAGA_STEP_##to, event},

const saga_transition_t saga_transitions[] = {SAGA_TRANSITIONS(SAGA_TRANSITION_ROW)};
const int saga_transition_count = (int)(sizeof saga_transitions / sizeof saga_transitions[0]);
const saga_transition_t saga_step_transitions[] = {SAGA_STEP_TRANSITIONS(STEP_TRANSITION_ROW)};
const int saga_step_transition_count = (int)(sizeof saga_step_transitions / sizeof saga_step_transitions[0]);

static bool listed(const saga_transition_t *t, int n, int from, int to, const char *event) {
    for (int i = 0; i < n; i++)
        if (t[i].from == from && t[i].to == to && strcmp(t[i].event, event) == 0) return true;
    return false;
}

bool saga_transition_allowed(saga_status_t from, saga_status_t to, const char *event) {
    return listed(saga_transitions, saga_transition_count, (int)from, (int)to, event);
}

bool saga_step_transition_allowed(saga_step_status_t from, saga_step_status_t to, const char *event) {
    return listed(saga_step_transitions, saga_step_transition_count, (int)from, (int)to, event);
}
