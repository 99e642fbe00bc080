/* Every command the engine builds carries "reply_partition": the saga's
 * partition under P (Kafka's murmur2, as a Java producer would choose),
 * actions and compensations alike; none when P is 0. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_filter.h"

#include <string.h>

#include "definition.h"
#include "engine.h"
#include "saga_partition.h"

static const char *const DEF =
    "{\"name\": \"rp\", \"version\": 1, \"steps\": ["
    " {\"name\": \"a\", \"topic\": \"a.commands\", \"action\": \"a.do\", \"compensation\": \"a.undo\"},"
    " {\"name\": \"b\", \"topic\": \"b.commands\", \"action\": \"b.do\", \"after\": [\"a\"],"
    "  \"retry\": {\"max_attempts\": 1}}]}";

static saga_definition_t *load_def(void) {
    saga_def_errors_t errs;
    memset(&errs, 0, sizeof errs);
    saga_definition_t *def = saga_definition_parse(DEF, strlen(DEF), &errs);
    assert_non_null(def);
    return def;
}

/* The reply_partition of the only command in fx; -1 when it has none. */
static json_int_t command_partition(const saga_effects_t *fx, const char *kind) {
    const saga_effect_t *cmd = NULL;
    for (int i = 0; i < fx->count; i++)
        if (fx->items[i].kind == SAGA_FX_COMMAND) {
            assert_null(cmd);
            cmd = &fx->items[i];
        }
    assert_non_null(cmd);
    assert_string_equal(json_string_value(json_object_get(cmd->message, "kind")), kind);
    json_t *p = json_object_get(cmd->message, "reply_partition");
    if (!p) return -1;
    assert_true(json_is_integer(p));
    return json_integer_value(p);
}

/* Runs a saga to its compensation: the action of a, the action of b
 * (fails), the compensation of a. Returns the three reply_partitions. */
static void run(const saga_definition_t *def, const char *id, int partitions, json_int_t out[3]) {
    saga_engine_config_t cfg = {.replies_topic = "saga.replies", .partitions = partitions};
    saga_t s;
    saga_effects_t fx;
    saga_effects_init(&fx);
    json_t *input = json_object();
    saga_init(&s, id, def, input, "", 1000);
    json_decref(input);
    uint64_t rng = 7;
    char why[256];
    saga_event_t ev = {.kind = SAGA_EV_START};
    assert_int_equal(saga_engine_apply(&cfg, &s, &ev, 1000, &rng, &fx, why, sizeof why), 0);
    out[0] = command_partition(&fx, "action");
    saga_effects_clear(&fx);
    ev = (saga_event_t){.kind = SAGA_EV_REPLY, .step = 0, .command_kind = SAGA_KIND_ACTION, .attempt = 1,
                        .reply_status = SAGA_REPLY_SUCCESS};
    assert_int_equal(saga_engine_apply(&cfg, &s, &ev, 1001, &rng, &fx, why, sizeof why), 0);
    out[1] = command_partition(&fx, "action");
    saga_effects_clear(&fx);
    ev = (saga_event_t){.kind = SAGA_EV_REPLY, .step = 1, .command_kind = SAGA_KIND_ACTION, .attempt = 1,
                        .reply_status = SAGA_REPLY_FAILURE, .error_code = "NO", .error_message = "no"};
    assert_int_equal(saga_engine_apply(&cfg, &s, &ev, 1002, &rng, &fx, why, sizeof why), 0);
    out[2] = command_partition(&fx, "compensation");
    saga_effects_free(&fx);
    saga_clear(&s);
}

/* Expected partitions from Apache Kafka 3.9.1's Utils.murmur2/toPositive
 * (the vectors of test_common.c), not from saga_partition_of itself. */
static void test_commands_carry_the_saga_partition(void **state) {
    (void)state;
    static const struct { const char *id; int p8, p3; } v[] = {
        {"a", 4, 1}, {"s-1", 7, 1}, {"order-17", 1, 0}, {"21", 4, 0}, {"foobar", 6, 0},
        {"s-0123456789abcdef", 6, 1}, {"saga/with/slashes/and-a-longer-id-0001", 3, 2},
    };
    saga_definition_t *def = load_def();
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        json_int_t got[3];
        run(def, v[i].id, 8, got);
        for (int k = 0; k < 3; k++) assert_int_equal(got[k], v[i].p8);
        run(def, v[i].id, 3, got);
        for (int k = 0; k < 3; k++) assert_int_equal(got[k], v[i].p3);
        run(def, v[i].id, 1, got);
        for (int k = 0; k < 3; k++) assert_int_equal(got[k], 0);
        run(def, v[i].id, 64, got);
        for (int k = 0; k < 3; k++) {
            assert_int_equal(got[k], saga_partition_of(v[i].id, 64));
            assert_true(got[k] >= 0 && got[k] < 64);
        }
    }
    saga_definition_free(&def);
}

static void test_no_partitions_no_field(void **state) {
    (void)state;
    saga_definition_t *def = load_def();
    json_int_t got[3];
    run(def, "s-1", 0, got);
    for (int k = 0; k < 3; k++) assert_int_equal(got[k], -1);
    saga_definition_free(&def);
}

int main(int argc, char **argv) {
    saga_test_filter(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_commands_carry_the_saga_partition),
        cmocka_unit_test(test_no_partitions_no_field),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
