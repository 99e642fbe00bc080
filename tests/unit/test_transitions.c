/* The transition table in docs/DESIGN.md and the one the engine enforces
 * (transitions.h) list exactly the same transitions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_filter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "saga_alloc.h"
#include "saga_util.h"
#include "transitions.h"

typedef struct {
    char from[48], to[48], event[64];
} row_t;

/* Rows of the markdown table between "<!-- transitions:KIND -->" and
 * "<!-- /transitions -->". */
static int doc_rows(const char *kind, row_t *rows, int max) {
    char path[1024], marker[64];
    snprintf(path, sizeof path, "%s/docs/DESIGN.md", getenv("SAGA_SOURCE_DIR") ? getenv("SAGA_SOURCE_DIR") : ".");
    snprintf(marker, sizeof marker, "<!-- transitions:%s -->", kind);
    char *text = saga_read_file(path, NULL);
    assert_non_null(text);
    char *p = strstr(text, marker);
    assert_non_null(p);
    char *end = strstr(p, "<!-- /transitions -->");
    assert_non_null(end);
    *end = '\0';
    int n = 0;
    for (char *line = strtok(p, "\n"); line; line = strtok(NULL, "\n")) {
        row_t r;
        if (sscanf(line, "| %47s | %47s | %63s |", r.from, r.to, r.event) != 3) continue;
        if (!strcmp(r.from, "from") || r.from[0] == '-') continue;
        assert_true(n < max);
        rows[n++] = r;
    }
    saga_free(text);
    return n;
}

static bool in_doc(const row_t *rows, int n, const char *from, const char *to, const char *event) {
    for (int i = 0; i < n; i++)
        if (!strcmp(rows[i].from, from) && !strcmp(rows[i].to, to) && !strcmp(rows[i].event, event)) return true;
    return false;
}

static void test_saga_table_matches_code(void **state) {
    row_t rows[64];
    int n = doc_rows("saga", rows, 64);
    assert_int_equal(n, saga_transition_count);
    for (int i = 0; i < saga_transition_count; i++) {
        const saga_transition_t *t = &saga_transitions[i];
        if (!in_doc(rows, n, saga_status_name(t->from), saga_status_name(t->to), t->event))
            fail_msg("code transition %s -> %s (%s) is missing from docs/DESIGN.md",
                     saga_status_name(t->from), saga_status_name(t->to), t->event);
    }
    for (int i = 0; i < n; i++) {
        int from = saga_status_parse(rows[i].from), to = saga_status_parse(rows[i].to);
        if (from < 0 || to < 0 || !saga_transition_allowed(from, to, rows[i].event))
            fail_msg("documented transition %s -> %s (%s) is not in the code", rows[i].from, rows[i].to, rows[i].event);
    }
}

static void test_step_table_matches_code(void **state) {
    row_t rows[128];
    int n = doc_rows("step", rows, 128);
    assert_int_equal(n, saga_step_transition_count);
    for (int i = 0; i < saga_step_transition_count; i++) {
        const saga_transition_t *t = &saga_step_transitions[i];
        if (!in_doc(rows, n, saga_step_status_name(t->from), saga_step_status_name(t->to), t->event))
            fail_msg("code transition %s -> %s (%s) is missing from docs/DESIGN.md",
                     saga_step_status_name(t->from), saga_step_status_name(t->to), t->event);
    }
    for (int i = 0; i < n; i++) {
        int from = saga_step_status_parse(rows[i].from), to = saga_step_status_parse(rows[i].to);
        if (from < 0 || to < 0 || !saga_step_transition_allowed(from, to, rows[i].event))
            fail_msg("documented transition %s -> %s (%s) is not in the code", rows[i].from, rows[i].to, rows[i].event);
    }
}

/* Terminal saga states have no way out but the operator's retry. */
static void test_terminal_states_are_closed(void **state) {
    for (int i = 0; i < saga_transition_count; i++) {
        /* a completed saga is only reopened by its parent's compensation (a child saga) */
        if (saga_transitions[i].from == SAGA_STATUS_COMPLETED)
            assert_string_equal(saga_transitions[i].event, "saga.compensating");
        assert_int_not_equal(saga_transitions[i].from, SAGA_STATUS_COMPENSATED);
        if (saga_transitions[i].from == SAGA_STATUS_COMPENSATION_FAILED)
            assert_string_equal(saga_transitions[i].event, "saga.retried");
    }
    for (int i = 0; i < saga_step_transition_count; i++) {
        assert_int_not_equal(saga_step_transitions[i].from, SAGA_STEP_FAILED);
        assert_int_not_equal(saga_step_transitions[i].from, SAGA_STEP_COMPENSATED);
        assert_int_not_equal(saga_step_transitions[i].from, SAGA_STEP_CANCELLED);
    }
}

static void test_unlisted_transition_is_refused(void **state) {
    assert_false(saga_transition_allowed(SAGA_STATUS_COMPLETED, SAGA_STATUS_RUNNING, "saga.started"));
    assert_false(saga_transition_allowed(SAGA_STATUS_COMPLETED, SAGA_STATUS_COMPENSATING, "saga.retried"));
    assert_false(saga_step_transition_allowed(SAGA_STEP_COMPENSATED, SAGA_STEP_RUNNING, "step.started"));
    assert_false(saga_step_transition_allowed(SAGA_STEP_PENDING, SAGA_STEP_RUNNING, "step.succeeded"));
    assert_true(saga_step_transition_allowed(SAGA_STEP_PENDING, SAGA_STEP_RUNNING, "step.started"));
}

int main(int argc, char **argv) {
    saga_test_filter(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_saga_table_matches_code),
        cmocka_unit_test(test_step_table_matches_code),
        cmocka_unit_test(test_terminal_states_are_closed),
        cmocka_unit_test(test_unlisted_transition_is_refused),
    };
    return cmocka_run_group_tests_name("transitions", tests, NULL, NULL);
}
