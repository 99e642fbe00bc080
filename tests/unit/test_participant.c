/* Participant library: idempotency, compensation pairing, outcomes and
 * malformed input, against real SQLite files in a temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_filter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "participant.h"
#include "saga_alloc.h"
#include "saga_error.h"
#include "saga_json.h"
#include "saga_log.h"

/* ---- a toy participant: named counters ---------------------------------- */

static int g_add_calls, g_sub_calls;
static int g_transient;              /* counter.add answers retry while set */
static char g_seen_action_key[256];
static long long g_seen_action_output;

static int counter_add(sqlite3 *db, const participant_command_t *cmd, participant_result_t *res, void *user) {
    (void)user;
    g_add_calls++;
    const char *name = saga_json_str(cmd->payload, "name");
    long long by = 1;
    saga_json_int(cmd->payload, "by", &by);
    /* Change first, decide later: the library must undo it on failure. */
    int rc = participant_exec(db,
                              "INSERT INTO counters(name, value) VALUES(?1, ?2)"
                              " ON CONFLICT(name) DO UPDATE SET value = value + ?2",
                              "ti", name, by);
    if (rc) return rc;
    if (json_is_true(json_object_get(cmd->payload, "fail")))
        return participant_fail(res, "TOY_DECLINED", "declined %s", name);
    if (g_transient) return participant_retry(res, "TOY_BUSY", "try later");
    res->output = json_pack("{s:s,s:I}", "name", name, "added", (json_int_t)by);
    return 0;
}

static int counter_sub(sqlite3 *db, const participant_command_t *cmd, participant_result_t *res, void *user) {
    (void)user;
    (void)res;
    g_sub_calls++;
    snprintf(g_seen_action_key, sizeof g_seen_action_key, "%s", cmd->action_key ? cmd->action_key : "");
    long long by = 0;
    saga_json_int(cmd->action_output, "added", &by);
    g_seen_action_output = by;
    return participant_exec(db, "UPDATE counters SET value = value - ? WHERE name = ?", "it", by,
                            saga_json_str(cmd->action_output, "name"));
}

static int toy_seed(sqlite3 *db, const json_t *seed, char *err, size_t errlen) {
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)seed, k, v) {
        if (participant_exec(db, "INSERT INTO counters(name, value) VALUES(?, ?)", "ti", k,
                             (long long)json_integer_value(v))) {
            snprintf(err, errlen, "seed %s", k);
            return SAGA_ESTORE;
        }
    }
    return 0;
}

static const participant_handler_t TOY_HANDLERS[] = {
    {"counter.add", PARTICIPANT_ACTION, counter_add},
    {"counter.sub", PARTICIPANT_COMPENSATION, counter_sub},
    {NULL, PARTICIPANT_ACTION, NULL},
};

static const participant_spec_t TOY = {
    .name = "toy",
    .program = "toy-worker",
    .env_prefix = "TOY_WORKER",
    .summary = "test",
    .schema_sql = "CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);",
    .seed = toy_seed,
    .handlers = TOY_HANDLERS,
};

/* ---- fixture --------------------------------------------------------------- */

typedef struct {
    char dir[64];
    char path[128];
    participant_t *p;
} fx_t;

static int setup(void **state) {
    fx_t *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/saga-participant-XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    snprintf(f->path, sizeof f->path, "%s/toy.db", f->dir);
    char err[256];
    f->p = participant_open(&TOY, f->path, err, sizeof err);
    if (!f->p) { fprintf(stderr, "open: %s\n", err); return -1; }
    g_add_calls = g_sub_calls = 0;
    g_transient = 0;
    g_seen_action_key[0] = '\0';
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fx_t *f = *state;
    participant_close(&f->p);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (system(cmd) != 0) return -1;
    free(f);
    return 0;
}

/* A command as sagad sends it; payload is consumed. */
static char *command(const char *saga, const char *step, const char *kind, const char *action, int attempt,
                     json_t *payload) {
    char mid[512], key[512];
    snprintf(key, sizeof key, "%s/%s/%s", saga, step, kind);
    snprintf(mid, sizeof mid, "%s/%d", key, attempt);
    json_t *c = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:i,s:s,s:o,s:s,s:s}", "type", "saga.command", "message_id",
                          mid, "saga_id", saga, "definition", "toy", "step", step, "kind", kind, "action", action,
                          "attempt", attempt, "idempotency_key", key, "payload",
                          payload ? payload : json_object(), "reply_to", "saga.replies", "deadline",
                          "2030-01-01T00:00:00.000Z");
    char *s = saga_json_dump(c);
    json_decref(c);
    return s;
}

static int run(fx_t *f, const char *cmd, participant_reply_t *out) {
    return participant_process(f->p, cmd, strlen(cmd), "test[0]@0", out);
}

/* Processes and parses the reply (caller decrefs). */
static json_t *run_json(fx_t *f, const char *cmd, int expect_rc) {
    participant_reply_t r;
    assert_int_equal(run(f, cmd, &r), expect_rc);
    assert_non_null(r.body);
    assert_string_equal(r.topic, "saga.replies");
    json_t *j = saga_json_parse(r.body, strlen(r.body), NULL, 0);
    assert_non_null(j);
    assert_string_equal(saga_json_str(j, "message_id"), r.message_id);
    assert_string_equal(saga_json_str(j, "saga_id"), r.key);
    participant_reply_clear(&r);
    return j;
}

static long long q(fx_t *f, const char *sql) {
    long long v = -1;
    int rc = participant_query_int(participant_db(f->p), &v, sql, "");
    assert_true(rc >= 0);
    return rc == 1 ? v : -1;
}

static const char *err_code(const json_t *reply) {
    return saga_json_str(json_object_get(reply, "error"), "code");
}

static json_t *add_payload(const char *name, long long by) { return json_pack("{s:s,s:I}", "name", name, "by", (json_int_t)by); }

/* c with "reply_partition": value (a JSON text; NULL: removed). */
static char *with_reply_partition(char *c, const char *value) {
    json_t *j = saga_json_parse(c, strlen(c), NULL, 0);
    saga_free(c);
    if (value) json_object_set_new(j, "reply_partition", json_loads(value, JSON_DECODE_ANY, NULL));
    else json_object_del(j, "reply_partition");
    char *s = saga_json_dump(j);
    json_decref(j);
    return s;
}

/* ---- tests ----------------------------------------------------------------- */

/* The reply carries its command's reply_partition, the first time and when
 * the stored reply is re-sent; absent or not a partition number: -1 (keyed). */
static void test_reply_partition_from_the_command(void **state) {
    fx_t *f = *state;
    participant_reply_t r;
    char *c = with_reply_partition(command("s-rp", "bump", "action", "counter.add", 1, add_payload("a", 1)), "5");
    assert_int_equal(run(f, c, &r), 0);
    assert_int_equal(r.status, PARTICIPANT_SUCCESS);
    assert_int_equal(r.partition, 5);
    assert_int_equal(r.duplicate, 0);
    participant_reply_clear(&r);
    assert_int_equal(run(f, c, &r), 0); /* redelivered: the stored reply, same partition */
    assert_int_equal(r.duplicate, 1);
    assert_int_equal(r.partition, 5);
    participant_reply_clear(&r);
    saga_free(c);
    static const char *const not_partitions[] = {NULL, "-1", "\"5\"", "2.5", "null", "true", "4294967296"};
    for (size_t i = 0; i < sizeof not_partitions / sizeof not_partitions[0]; i++) {
        c = with_reply_partition(command("s-rp2", "bump", "action", "counter.add", (int)i + 1, add_payload("b", 1)),
                                 not_partitions[i]);
        assert_int_equal(run(f, c, &r), 0);
        assert_non_null(r.body);
        assert_int_equal(r.partition, -1);
        participant_reply_clear(&r);
        saga_free(c);
    }
    /* a malformed command's failure reply goes to the partition too */
    c = with_reply_partition(command("s-rp3", "bump", "action", "no.such.action", 1, NULL), "3");
    assert_int_equal(run(f, c, &r), SAGA_EPARSE);
    assert_non_null(r.body);
    assert_int_equal(r.status, PARTICIPANT_FAILURE);
    assert_int_equal(r.partition, 3);
    participant_reply_clear(&r);
    saga_free(c);
}

static void test_processed_once(void **state) {
    fx_t *f = *state;
    char *c = command("s-1", "bump", "action", "counter.add", 1, add_payload("a", 5));
    json_t *r = run_json(f, c, 0);
    assert_string_equal(saga_json_str(r, "type"), "saga.reply");
    assert_string_equal(saga_json_str(r, "message_id"), "r-s-1/bump/action/1");
    assert_string_equal(saga_json_str(r, "in_reply_to"), "s-1/bump/action/1");
    assert_string_equal(saga_json_str(r, "step"), "bump");
    assert_string_equal(saga_json_str(r, "kind"), "action");
    assert_int_equal(json_integer_value(json_object_get(r, "attempt")), 1);
    assert_string_equal(saga_json_str(r, "status"), "success");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "output"), "added")), 5);
    assert_null(json_object_get(r, "error"));
    assert_int_equal(q(f, "SELECT value FROM counters WHERE name='a'"), 5);
    assert_int_equal(q(f, "SELECT COUNT(*) FROM processed WHERE idempotency_key='s-1/bump/action' AND status='success'"), 1);
    assert_int_equal(g_add_calls, 1);
    assert_int_equal(participant_processed_count(f->p), 1);
    json_decref(r);
    saga_free(c);
}

static void test_duplicate_same_attempt_identical_reply(void **state) {
    fx_t *f = *state;
    char *c = command("s-1", "bump", "action", "counter.add", 1, add_payload("a", 5));
    participant_reply_t r1, r2;
    assert_int_equal(run(f, c, &r1), 0);
    assert_int_equal(run(f, c, &r2), 0);
    assert_false(r1.duplicate);
    assert_true(r2.duplicate);
    assert_string_equal(r1.body, r2.body); /* byte for byte: sagad's dedup drops it */
    assert_string_equal(r1.message_id, r2.message_id);
    assert_int_equal(g_add_calls, 1);
    assert_int_equal(q(f, "SELECT value FROM counters WHERE name='a'"), 5);
    participant_reply_clear(&r1);
    participant_reply_clear(&r2);
    saga_free(c);
}

static void test_duplicate_new_attempt_rerendered(void **state) {
    fx_t *f = *state;
    char *c1 = command("s-1", "bump", "action", "counter.add", 1, add_payload("a", 5));
    char *c3 = command("s-1", "bump", "action", "counter.add", 3, add_payload("a", 5));
    json_t *r1 = run_json(f, c1, 0);
    json_t *r3 = run_json(f, c3, 0);
    assert_string_equal(saga_json_str(r3, "message_id"), "r-s-1/bump/action/3");
    assert_string_equal(saga_json_str(r3, "in_reply_to"), "s-1/bump/action/3");
    assert_int_equal(json_integer_value(json_object_get(r3, "attempt")), 3);
    assert_string_equal(saga_json_str(r3, "status"), "success");
    assert_true(json_equal(json_object_get(r1, "output"), json_object_get(r3, "output")));
    assert_int_equal(g_add_calls, 1);
    assert_int_equal(q(f, "SELECT value FROM counters WHERE name='a'"), 5);
    /* The re-sent reply for attempt 3, delivered again, is identical too. */
    json_t *r3b = run_json(f, c3, 0);
    assert_true(json_equal(r3, r3b));
    json_decref(r1);
    json_decref(r3);
    json_decref(r3b);
    saga_free(c1);
    saga_free(c3);
}

static void test_compensation_undoes_exactly_once(void **state) {
    fx_t *f = *state;
    char *a = command("s-2", "bump", "action", "counter.add", 1, add_payload("b", 7));
    char *c1 = command("s-2", "bump", "compensation", "counter.sub", 1, NULL);
    char *c2 = command("s-2", "bump", "compensation", "counter.sub", 2, NULL);
    json_decref(run_json(f, a, 0));
    assert_int_equal(q(f, "SELECT value FROM counters WHERE name='b'"), 7);
    json_t *r = run_json(f, c1, 0);
    assert_string_equal(saga_json_str(r, "status"), "success");
    assert_string_equal(saga_json_str(r, "kind"), "compensation");
    assert_int_equal(g_sub_calls, 1);
    assert_string_equal(g_seen_action_key, "s-2/bump/action");
    assert_int_equal(g_seen_action_output, 7);
    assert_int_equal(q(f, "SELECT value FROM counters WHERE name='b'"), 0);
    json_decref(r);
    r = run_json(f, c2, 0); /* sagad retried the compensation: stored reply */
    assert_string_equal(saga_json_str(r, "status"), "success");
    assert_int_equal(json_integer_value(json_object_get(r, "attempt")), 2);
    assert_int_equal(g_sub_calls, 1);
    assert_int_equal(q(f, "SELECT value FROM counters WHERE name='b'"), 0);
    json_decref(r);
    saga_free(a);
    saga_free(c1);
    saga_free(c2);
}

static void test_compensation_before_action_then_late_action_refused(void **state) {
    fx_t *f = *state;
    char *comp = command("s-3", "bump", "compensation", "counter.sub", 1, NULL);
    char *act = command("s-3", "bump", "action", "counter.add", 1, add_payload("c", 3));
    json_t *r = run_json(f, comp, 0);
    assert_string_equal(saga_json_str(r, "status"), "success");
    assert_true(json_is_true(json_object_get(json_object_get(r, "output"), "noop")));
    assert_int_equal(g_sub_calls, 0);
    assert_int_equal(q(f, "SELECT noop FROM processed WHERE idempotency_key='s-3/bump/compensation'"), 1);
    json_decref(r);

    r = run_json(f, act, 0);
    assert_string_equal(saga_json_str(r, "status"), "failure");
    assert_string_equal(err_code(r), "COMPENSATED_BEFORE_ACTION");
    assert_null(json_object_get(r, "output"));
    assert_int_equal(g_add_calls, 0);
    assert_int_equal(q(f, "SELECT COUNT(*) FROM counters"), 0);
    json_decref(r);
    r = run_json(f, act, 0); /* and it keeps refusing */
    assert_string_equal(err_code(r), "COMPENSATED_BEFORE_ACTION");
    assert_int_equal(g_add_calls, 0);
    json_decref(r);
    saga_free(comp);
    saga_free(act);
}

static void test_business_failure_recorded_and_rolled_back(void **state) {
    fx_t *f = *state;
    json_t *pl = add_payload("d", 4);
    json_object_set_new(pl, "fail", json_true());
    json_t *pl2 = json_deep_copy(pl);
    char *c1 = command("s-4", "bump", "action", "counter.add", 1, pl);
    char *c2 = command("s-4", "bump", "action", "counter.add", 2, pl2);
    json_t *r = run_json(f, c1, 0);
    assert_string_equal(saga_json_str(r, "status"), "failure");
    assert_string_equal(err_code(r), "TOY_DECLINED");
    assert_string_equal(saga_json_str(json_object_get(r, "error"), "message"), "declined d");
    assert_null(json_object_get(r, "output"));
    /* The handler's own change was undone; the failure is recorded. */
    assert_int_equal(q(f, "SELECT COUNT(*) FROM counters"), 0);
    assert_int_equal(q(f, "SELECT COUNT(*) FROM processed WHERE status='failure' AND error_code='TOY_DECLINED'"), 1);
    json_decref(r);
    r = run_json(f, c2, 0);
    assert_string_equal(err_code(r), "TOY_DECLINED");
    assert_int_equal(g_add_calls, 1);
    json_decref(r);
    saga_free(c1);
    saga_free(c2);
}

/* Issue 13.9: a failure message longer than the result's buffer is cut on
 * a character boundary; before, the cut fell inside an 'é' and the reply
 * could not be built (JSON refuses broken UTF-8). */
static void test_long_multibyte_failure_message(void **state) {
    fx_t *f = *state;
    char name[512];
    size_t n = 0;
    name[n++] = 'x';
    while (n < 401) { name[n++] = '\xc3'; name[n++] = '\xa9'; }
    name[n] = '\0';
    json_t *pl = add_payload(name, 1);
    json_object_set_new(pl, "fail", json_true());
    char *c = command("s-utf8", "bump", "action", "counter.add", 1, pl);
    json_t *r = run_json(f, c, 0);
    assert_string_equal(saga_json_str(r, "status"), "failure");
    const char *msg = saga_json_str(json_object_get(r, "error"), "message");
    assert_non_null(msg);
    assert_int_equal(strncmp(msg, "declined x\xc3\xa9", 12), 0);
    assert_int_equal(strlen(msg), 254); /* "declined x" + 122 whole 'é' of the 255 bytes that fit */
    json_decref(r);
    saga_free(c);
}

/* Issue 13.12: the reply ids the library derives for the longest saga id
 * and step name (127 bytes each), a compensation and a 7-digit attempt
 * stay within sagad's message id limit (SAGA_MESSAGE_ID_MAX, 400 bytes;
 * docs/PROTOCOL.md), recorded and retry replies alike. */
static void test_reply_ids_of_longest_saga(void **state) {
    fx_t *f = *state;
    char saga[128], step[128];
    memset(saga, 's', 127);
    saga[127] = '\0';
    memset(step, 'p', 127);
    step[127] = '\0';
    char *c = command(saga, step, "compensation", "counter.sub", 1000000, NULL);
    json_t *r = run_json(f, c, 0);
    const char *mid = saga_json_str(r, "message_id");
    assert_int_equal(strlen(mid), 2 + 127 + 1 + 127 + 1 + 12 + 1 + 7);
    assert_true(strlen(mid) <= 400);
    json_decref(r);
    saga_free(c);
    g_transient = 1;
    memset(saga, 'q', 127); /* another saga: this one's action was compensated already */
    c = command(saga, step, "action", "counter.add", 1000000, add_payload("n", 1));
    r = run_json(f, c, 0);
    assert_string_equal(saga_json_str(r, "status"), "retry");
    mid = saga_json_str(r, "message_id");
    assert_true(strlen(mid) <= 400);
    assert_true(strlen(mid) > 270);
    json_decref(r);
    saga_free(c);
}

static void test_compensation_after_failed_action_is_noop(void **state) {
    fx_t *f = *state;
    json_t *pl = add_payload("e", 4);
    json_object_set_new(pl, "fail", json_true());
    char *a = command("s-5", "bump", "action", "counter.add", 1, pl);
    char *c = command("s-5", "bump", "compensation", "counter.sub", 1, NULL);
    json_decref(run_json(f, a, 0));
    json_t *r = run_json(f, c, 0);
    assert_string_equal(saga_json_str(r, "status"), "success");
    assert_int_equal(g_sub_calls, 0);
    json_decref(r);
    saga_free(a);
    saga_free(c);
}

static void test_retry_not_recorded(void **state) {
    fx_t *f = *state;
    char *c1 = command("s-6", "bump", "action", "counter.add", 1, add_payload("g", 2));
    char *c2 = command("s-6", "bump", "action", "counter.add", 2, add_payload("g", 2));
    g_transient = 1;
    json_t *r = run_json(f, c1, 0);
    assert_string_equal(saga_json_str(r, "status"), "retry");
    assert_string_equal(err_code(r), "TOY_BUSY");
    assert_int_equal(q(f, "SELECT COUNT(*) FROM processed"), 0);
    assert_int_equal(q(f, "SELECT COUNT(*) FROM counters"), 0); /* rolled back */
    json_decref(r);
    g_transient = 0;
    r = run_json(f, c2, 0);
    assert_string_equal(saga_json_str(r, "status"), "success");
    assert_int_equal(g_add_calls, 2);
    assert_int_equal(q(f, "SELECT value FROM counters WHERE name='g'"), 2);
    json_decref(r);
    saga_free(c1);
    saga_free(c2);
}

static void test_malformed_input_rejected(void **state) {
    fx_t *f = *state;
    static const char *const no_reply[] = {
        "",
        "{not json",
        "[1,2,3]",
        "\"just a string\"",
        "{\"type\":\"saga.command\"}",
        "{\"type\":\"saga.start\",\"message_id\":\"m\",\"saga_id\":\"s\",\"step\":\"x\",\"reply_to\":\"r\"}",
        /* reply_to missing: nowhere to answer */
        "{\"type\":\"saga.command\",\"message_id\":\"m\",\"saga_id\":\"s\",\"step\":\"x\",\"kind\":\"action\","
        "\"action\":\"counter.add\",\"attempt\":1,\"idempotency_key\":\"k\",\"payload\":{}}",
    };
    for (size_t i = 0; i < sizeof no_reply / sizeof no_reply[0]; i++) {
        participant_reply_t r;
        assert_int_equal(participant_process(f->p, no_reply[i], strlen(no_reply[i]), "t[0]@1", &r), SAGA_EPARSE);
        assert_null(r.body);
        participant_reply_clear(&r);
    }
    /* Readable enough to answer: a failure reply naming the problem. */
    static const char *const with_reply[] = {
        "{\"type\":\"saga.command\",\"message_id\":\"m1\",\"saga_id\":\"s\",\"step\":\"x\",\"kind\":\"action\","
        "\"action\":\"counter.add\",\"attempt\":1,\"payload\":{},\"reply_to\":\"saga.replies\"}",
        "{\"type\":\"saga.command\",\"message_id\":\"m2\",\"saga_id\":\"s\",\"step\":\"x\",\"kind\":\"sideways\","
        "\"action\":\"counter.add\",\"attempt\":1,\"idempotency_key\":\"k\",\"payload\":{},\"reply_to\":\"saga.replies\"}",
        "{\"type\":\"saga.command\",\"message_id\":\"m3\",\"saga_id\":\"s\",\"step\":\"x\",\"kind\":\"action\","
        "\"action\":\"counter.add\",\"attempt\":0,\"idempotency_key\":\"k\",\"payload\":{},\"reply_to\":\"saga.replies\"}",
        "{\"type\":\"saga.command\",\"message_id\":\"m4\",\"saga_id\":\"s\",\"step\":\"x\",\"kind\":\"action\","
        "\"action\":\"counter.add\",\"attempt\":1,\"idempotency_key\":\"k\",\"payload\":[],\"reply_to\":\"saga.replies\"}",
    };
    for (size_t i = 0; i < sizeof with_reply / sizeof with_reply[0]; i++) {
        participant_reply_t r;
        assert_int_equal(participant_process(f->p, with_reply[i], strlen(with_reply[i]), "t[0]@2", &r), SAGA_EPARSE);
        assert_non_null(r.body);
        json_t *j = saga_json_parse(r.body, strlen(r.body), NULL, 0);
        assert_string_equal(saga_json_str(j, "status"), "failure");
        assert_string_equal(err_code(j), "MALFORMED_COMMAND");
        assert_string_equal(r.topic, "saga.replies");
        json_decref(j);
        participant_reply_clear(&r);
    }
    assert_int_equal(g_add_calls, 0);
    assert_int_equal(q(f, "SELECT COUNT(*) FROM processed"), 0);
    assert_int_equal(participant_processed_count(f->p), 0);
    /* Still healthy afterwards. */
    char *c = command("s-7", "bump", "action", "counter.add", 1, add_payload("h", 1));
    json_decref(run_json(f, c, 0));
    saga_free(c);
}

static void test_unknown_action(void **state) {
    fx_t *f = *state;
    char *c = command("s-8", "bump", "action", "counter.multiply", 1, NULL);
    json_t *r = run_json(f, c, SAGA_EPARSE);
    assert_string_equal(saga_json_str(r, "status"), "failure");
    assert_string_equal(err_code(r), "UNKNOWN_ACTION");
    assert_string_equal(saga_json_str(r, "in_reply_to"), "s-8/bump/action/1");
    json_decref(r);
    saga_free(c);
    /* A compensation name used as an action is unknown as well. */
    c = command("s-8", "bump", "action", "counter.sub", 1, NULL);
    r = run_json(f, c, SAGA_EPARSE);
    assert_string_equal(err_code(r), "UNKNOWN_ACTION");
    json_decref(r);
    saga_free(c);
    assert_int_equal(q(f, "SELECT COUNT(*) FROM processed"), 0);
}

static void test_batch_group_commit_and_rollback(void **state) {
    fx_t *f = *state;
    char *c[3] = {
        command("s-9", "bump", "action", "counter.add", 1, add_payload("i", 1)),
        command("s-10", "bump", "action", "counter.add", 1, add_payload("i", 10)),
        command("s-9", "bump", "action", "counter.add", 1, add_payload("i", 1)), /* duplicate in the batch */
    };
    participant_reply_t r[3];
    assert_int_equal(participant_batch_begin(f->p), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(participant_batch_process(f->p, c[i], strlen(c[i]), NULL, &r[i]), 0);
    assert_true(r[2].duplicate);
    assert_string_equal(r[0].body, r[2].body);
    assert_int_equal(participant_batch_commit(f->p), 0);
    assert_int_equal(q(f, "SELECT value FROM counters WHERE name='i'"), 11);
    for (int i = 0; i < 3; i++) participant_reply_clear(&r[i]);

    /* A rolled back batch leaves nothing behind: the commands run again. */
    char *d = command("s-11", "bump", "action", "counter.add", 1, add_payload("j", 1));
    assert_int_equal(participant_batch_begin(f->p), 0);
    assert_int_equal(participant_batch_process(f->p, d, strlen(d), NULL, &r[0]), 0);
    participant_batch_rollback(f->p);
    participant_reply_clear(&r[0]);
    assert_int_equal(q(f, "SELECT COUNT(*) FROM counters WHERE name='j'"), 0);
    assert_int_equal(q(f, "SELECT COUNT(*) FROM processed WHERE saga_id='s-11'"), 0);
    assert_int_equal(participant_processed_count(f->p), 3);
    json_t *j = run_json(f, d, 0);
    assert_string_equal(saga_json_str(j, "status"), "success");
    json_decref(j);
    assert_int_equal(q(f, "SELECT value FROM counters WHERE name='j'"), 1);
    /* Outside a batch, batch_process refuses to write and answers retry. */
    participant_reply_t lone;
    assert_int_equal(participant_batch_process(f->p, c[1], strlen(c[1]), NULL, &lone), SAGA_ESTORE);
    participant_reply_clear(&lone);
    for (int i = 0; i < 3; i++) saga_free(c[i]);
    saga_free(d);
}

static void test_reopen_keeps_idempotency(void **state) {
    fx_t *f = *state;
    char *c = command("s-12", "bump", "action", "counter.add", 1, add_payload("k", 3));
    participant_reply_t r1, r2;
    assert_int_equal(run(f, c, &r1), 0);
    participant_close(&f->p);
    assert_null(f->p);
    char err[256];
    f->p = participant_open(&TOY, f->path, err, sizeof err); /* a restart */
    assert_non_null(f->p);
    assert_int_equal(run(f, c, &r2), 0);
    assert_true(r2.duplicate);
    assert_string_equal(r1.body, r2.body);
    assert_int_equal(g_add_calls, 1);
    assert_int_equal(q(f, "SELECT value FROM counters WHERE name='k'"), 3);
    participant_reply_clear(&r1);
    participant_reply_clear(&r2);
    saga_free(c);
}

static void test_fault_injection(void **state) {
    fx_t *f = *state;
    participant_faults_t faults = {.fail_rate = 1.0, .rng_seed = 42};
    participant_set_faults(f->p, &faults);
    char *a = command("s-13", "bump", "action", "counter.add", 1, add_payload("l", 1));
    json_t *r = run_json(f, a, 0);
    assert_string_equal(err_code(r), "INJECTED_FAILURE");
    assert_int_equal(g_add_calls, 0);
    json_decref(r);
    /* Compensations are never failed on purpose (only delayed/retried). */
    char *comp = command("s-13", "bump", "compensation", "counter.sub", 1, NULL);
    r = run_json(f, comp, 0);
    assert_string_equal(saga_json_str(r, "status"), "success");
    json_decref(r);

    participant_faults_t transient = {.retry_rate = 1.0, .rng_seed = 7};
    participant_set_faults(f->p, &transient);
    char *b = command("s-14", "bump", "action", "counter.add", 1, add_payload("l", 1));
    r = run_json(f, b, 0);
    assert_string_equal(saga_json_str(r, "status"), "retry");
    assert_string_equal(err_code(r), "INJECTED_TRANSIENT");
    json_decref(r);

    participant_faults_t silent = {.no_reply_rate = 1.0, .rng_seed = 9};
    participant_set_faults(f->p, &silent);
    participant_reply_t out;
    assert_int_equal(run(f, b, &out), 0);
    assert_null(out.body);
    assert_true(out.suppressed);
    participant_reply_clear(&out);
    assert_int_equal(q(f, "SELECT value FROM counters WHERE name='l'"), 1); /* ran and committed */

    participant_faults_t none = {0};
    participant_set_faults(f->p, &none);
    r = run_json(f, b, 0); /* the lost reply comes back from the ledger */
    assert_string_equal(saga_json_str(r, "status"), "success");
    assert_int_equal(g_add_calls, 1);
    json_decref(r);
    saga_free(a);
    saga_free(b);
    saga_free(comp);
}

static void test_seed_only_into_empty_ledger(void **state) {
    fx_t *f = *state;
    char err[256];
    json_t *seed = json_pack("{s:i}", "m", 100);
    assert_int_equal(participant_seed_json(f->p, seed, err, sizeof err), 0);
    assert_int_equal(q(f, "SELECT value FROM counters WHERE name='m'"), 100);
    json_t *seed2 = json_pack("{s:i}", "n", 5);
    assert_int_equal(participant_seed_json(f->p, seed2, err, sizeof err), 0); /* ignored */
    assert_int_equal(q(f, "SELECT COUNT(*) FROM counters WHERE name='n'"), 0);
    json_decref(seed);
    json_decref(seed2);
    assert_int_not_equal(participant_seed_file(f->p, "/nonexistent/seed.json", err, sizeof err), 0);
}

static void test_allocation_failures_leave_ledger_consistent(void **state) {
    fx_t *f = *state;
    for (long n = 0; n < 200; n++) {
        char saga[32];
        snprintf(saga, sizeof saga, "s-alloc-%ld", n);
        char *c = command(saga, "bump", "action", "counter.add", 1, add_payload("z", 1));
        participant_reply_t r;
        saga_alloc_fail_after(n);
        int rc = participant_process(f->p, c, strlen(c), NULL, &r);
        saga_alloc_fail_after(-1);
        participant_reply_clear(&r);
        if (rc != 0) {
            /* Whatever failed, a later delivery finishes the job. */
            assert_int_equal(run(f, c, &r), 0);
            participant_reply_clear(&r);
        }
        saga_free(c);
    }
    /* Every saga counted exactly once. */
    assert_int_equal(q(f, "SELECT value FROM counters WHERE name='z'"), 200);
    assert_int_equal(q(f, "SELECT COUNT(*) FROM processed"), 200);
}

int main(int argc, char **argv) {
    saga_test_filter(argc, argv);
    saga_alloc_install_jansson();
    /* The malformed-input tests log errors on purpose. */
    saga_log_set_level(getenv("SAGA_TEST_VERBOSE") ? SAGA_LOG_DEBUG : SAGA_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_processed_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reply_partition_from_the_command, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_same_attempt_identical_reply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_new_attempt_rerendered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compensation_undoes_exactly_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compensation_before_action_then_late_action_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_business_failure_recorded_and_rolled_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_multibyte_failure_message, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reply_ids_of_longest_saga, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compensation_after_failed_action_is_noop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_not_recorded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_input_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_action, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_group_commit_and_rollback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_keeps_idempotency, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fault_injection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seed_only_into_empty_ledger, setup, teardown),
        cmocka_unit_test_setup_teardown(test_allocation_failures_leave_ledger_consistent, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
