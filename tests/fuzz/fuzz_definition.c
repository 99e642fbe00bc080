/* libFuzzer target: saga_definition_parse on arbitrary bytes (scripts/fuzz,
 * docs/FUZZING.md). Besides the sanitizers, checks the loader's promises:
 *
 * - it either returns a definition or at least one problem, never both;
 * - every problem has a message, a pointer that is "" or starts with '/',
 *   both valid UTF-8, and a line only for syntax errors;
 * - an accepted definition is consistent: 1..64 steps with unique valid
 *   names, `after` indexes in range, not self, acyclic; merged retry
 *   policies with max_backoff >= initial_backoff; payload never NULL; a
 *   64-hex-digit hash;
 * - loading its own source again gives the same definition hash. */
#include "definition.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                 \
        }                                                                            \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* jansson takes exactly the UTF-8 strings */
static int utf8(const char *s) {
    json_t *j = json_string(s);
    json_decref(j);
    return j != NULL;
}

static void check_errors(const saga_def_errors_t *errs) {
    CHECK(errs->count >= 1);
    int kept = errs->count < 32 ? errs->count : 32;
    for (int i = 0; i < kept; i++) {
        const saga_def_error_t *e = &errs->items[i];
        CHECK(memchr(e->pointer, '\0', sizeof e->pointer) != NULL);
        CHECK(memchr(e->message, '\0', sizeof e->message) != NULL);
        CHECK(e->message[0] != '\0');
        CHECK(utf8(e->message) && utf8(e->pointer)); /* they go into JSON */
        CHECK(e->pointer[0] == '\0' || e->pointer[0] == '/');
        CHECK(e->line >= 0 && e->column >= 0);
        if (e->line > 0) CHECK(errs->count == 1); /* a syntax error stops everything else */
    }
}

static void check_policy(const saga_retry_policy_t *p) {
    CHECK(p->max_attempts >= 1);
    CHECK(p->initial_backoff_ms >= 0);
    CHECK(p->max_backoff_ms >= p->initial_backoff_ms);
    CHECK(p->max_backoff_ms <= 24LL * 3600 * 1000);
    CHECK(p->multiplier >= 1.0);
    CHECK(p->jitter == SAGA_JITTER_FULL || p->jitter == SAGA_JITTER_NONE);
}

static void check_definition(const saga_definition_t *def) {
    CHECK(def->name[0] != '\0');
    CHECK(def->version >= 1);
    CHECK(def->step_count >= 1 && def->step_count <= SAGA_MAX_STEPS);
    CHECK(def->timeout_ms >= 0 && def->timeout_ms <= 30LL * 24 * 3600 * 1000);
    CHECK(strlen(def->hash) == 64 && strspn(def->hash, "0123456789abcdef") == 64);
    CHECK(def->source != NULL);
    for (int i = 0; i < def->step_count; i++) {
        const saga_step_def_t *s = &def->steps[i];
        CHECK(s->name[0]);
        switch (s->kind) { /* each kind has what it needs and nothing it must not */
        case SAGA_STEP_KIND_COMMAND:
            CHECK(s->topic[0] && s->action[0] && !s->signal[0] && !s->child[0]);
            CHECK(s->timeout_ms > 0 && s->timeout_ms <= 24LL * 3600 * 1000);
            break;
        case SAGA_STEP_KIND_SIGNAL:
            CHECK(s->signal[0] && !s->topic[0] && !s->action[0] && !s->compensation[0] && s->retry.max_attempts == 1);
            CHECK(saga_definition_signal_step(def, s->signal) == i); /* unique */
            CHECK(s->timeout_ms >= 0 && s->timeout_ms <= 30LL * 24 * 3600 * 1000);
            break;
        case SAGA_STEP_KIND_CHILD:
            CHECK(s->child[0] && !s->topic[0] && s->retry.max_attempts == 1 && !strcmp(s->compensation, "saga.compensate"));
            CHECK(s->timeout_ms >= 0 && s->timeout_ms <= 30LL * 24 * 3600 * 1000);
            break;
        default:
            CHECK(0);
        }
        CHECK(strspn(s->name, "abcdefghijklmnopqrstuvwxyz0123456789_-") == strlen(s->name));
        CHECK(saga_definition_step_index(def, s->name) == i); /* unique */
        CHECK(json_is_object(s->payload));
        CHECK(!s->compensation_payload || (json_is_object(s->compensation_payload) && s->compensation[0]));
        check_policy(&s->retry);
        check_policy(&s->compensation_retry);
        CHECK(s->after_count >= 0 && s->after_count < SAGA_MAX_STEPS);
        for (int k = 0; k < s->after_count; k++) {
            CHECK(s->after[k] >= 0 && s->after[k] < def->step_count && s->after[k] != i);
            for (int m = 0; m < k; m++) CHECK(s->after[m] != s->after[k]);
        }
    }
    /* acyclic: Kahn's algorithm removes every step */
    int pending[SAGA_MAX_STEPS], done[SAGA_MAX_STEPS] = {0}, removed = 0;
    for (int i = 0; i < def->step_count; i++) pending[i] = def->steps[i].after_count;
    for (int progress = 1; progress;) {
        progress = 0;
        for (int i = 0; i < def->step_count; i++) {
            if (done[i] || pending[i] > 0) continue;
            done[i] = 1;
            removed++;
            progress = 1;
            for (int j = 0; j < def->step_count; j++)
                for (int k = 0; k < def->steps[j].after_count; k++)
                    if (def->steps[j].after[k] == i) pending[j]--;
        }
    }
    CHECK(removed == def->step_count);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    saga_def_errors_t errs;
    memset(&errs, 0, sizeof errs);
    saga_definition_t *def = saga_definition_parse((const char *)data, size, &errs);
    if (!def) {
        check_errors(&errs);
        return 0;
    }
    CHECK(errs.count == 0);
    check_definition(def);
    /* its own source loads again to the same hash */
    saga_def_errors_t again_errs;
    memset(&again_errs, 0, sizeof again_errs);
    saga_definition_t *again = saga_definition_from_json(def->source, &again_errs);
    CHECK(again != NULL);
    CHECK(strcmp(again->hash, def->hash) == 0);
    CHECK(again->step_count == def->step_count);
    saga_definition_free(&again);
    saga_definition_free(&def);
    CHECK(def == NULL);
    return 0;
}
