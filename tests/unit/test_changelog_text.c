/* The changelog encoder writes its records as text (saga_json_buf_t): the
 * bytes are those of the json_t tree it built before (kept here as the
 * reference), for rows with escapes, unicode, NUL bytes, SQL NULLs, nested
 * JSON and reals; the records apply and encode again to the same bytes; a
 * stored column that is not JSON or not UTF-8 is refused by name; the
 * history cache gives the same bytes as a full read. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_filter.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "changelog.h"
#include "changelog_internal.h"
#include "store_internal.h"
#include "saga_alloc.h"
#include "saga_error.h"
#include "saga_json.h"
#include "store.h"

/* ---- the reference: the tree-based encoder as it was --------------------------- */

static json_t *ref_text(sqlite3_stmt *q, int col) {
    const char *t = (const char *)sqlite3_column_text(q, col);
    return t ? json_stringn(t, (size_t)sqlite3_column_bytes(q, col)) : json_null();
}

static json_t *ref_json(sqlite3_stmt *q, int col) {
    const char *t = (const char *)sqlite3_column_text(q, col);
    if (!t) return json_null();
    json_t *v = saga_json_parse(t, (size_t)sqlite3_column_bytes(q, col), NULL, 0);
    assert_non_null(v);
    return v;
}

static json_t *ref_int(sqlite3_stmt *q, int col) { return json_integer(sqlite3_column_int64(q, col)); }

static void put(json_t *o, const char *name, json_t *v) {
    assert_non_null(v);
    assert_int_equal(json_object_set_new(o, name, v), 0);
}

static sqlite3_stmt *prepare(sqlite3 *db, const char *sql, const char *id) {
    sqlite3_stmt *q;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK);
    sqlite3_bind_text(q, 1, id, -1, SQLITE_TRANSIENT);
    return q;
}

/* the encoder's own queries */
enum {
#define Q_ENUM(name, sql) Q_##name,
    CHANGELOG_STATEMENTS(Q_ENUM)
#undef Q_ENUM
};
static const char *const g_sql[] = {
#define Q_SQL(name, sql) sql,
    CHANGELOG_STATEMENTS(Q_SQL)
#undef Q_SQL
};

static char *ref_encode(sqlite3 *db, const char *id) {
    json_t *rec = json_object(), *saga = json_object(), *arr;
    put(rec, "v", json_integer(SAGA_CHANGELOG_VERSION));
    put(rec, "saga", saga);
    sqlite3_stmt *q = prepare(db, g_sql[Q_enc_saga], id);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    put(saga, "id", json_string(id));
    put(saga, "definition", ref_text(q, 0));
    put(saga, "version", ref_int(q, 1));
    put(saga, "definition_hash", ref_text(q, 13));
    put(saga, "status", ref_text(q, 2));
    put(saga, "input", ref_json(q, 3));
    put(saga, "traceparent", ref_text(q, 4));
    put(saga, "start_message_id", ref_text(q, 5));
    put(saga, "created_at", ref_int(q, 6));
    put(saga, "updated_at", ref_int(q, 7));
    put(saga, "deadline_at", ref_int(q, 8));
    put(saga, "seq", ref_int(q, 9));
    put(saga, "completions", ref_int(q, 10));
    put(saga, "error_code", ref_text(q, 11));
    put(saga, "error_message", ref_text(q, 12));
    sqlite3_finalize(q);
    put(rec, "steps", arr = json_array());
    for (q = prepare(db, g_sql[Q_enc_steps], id); sqlite3_step(q) == SQLITE_ROW;) {
        json_t *s = json_object();
        put(s, "idx", ref_int(q, 0));
        put(s, "name", ref_text(q, 1));
        put(s, "status", ref_text(q, 2));
        put(s, "attempt", ref_int(q, 3));
        put(s, "comp_attempt", ref_int(q, 4));
        put(s, "comp_budget_base", ref_int(q, 5));
        put(s, "outcome_unknown", ref_int(q, 6));
        if (sqlite3_column_type(q, 7) != SQLITE_NULL) put(s, "output", ref_json(q, 7));
        put(s, "error_code", ref_text(q, 8));
        put(s, "error_message", ref_text(q, 9));
        put(s, "started_at", ref_int(q, 10));
        put(s, "finished_at", ref_int(q, 11));
        put(s, "updated_at", ref_int(q, 12));
        put(s, "completion_order", ref_int(q, 13));
        json_array_append_new(arr, s);
    }
    sqlite3_finalize(q);
    put(rec, "history", arr = json_array());
    for (q = prepare(db, g_sql[Q_enc_history], id); sqlite3_step(q) == SQLITE_ROW;) {
        json_t *h = json_object();
        put(h, "seq", ref_int(q, 0));
        put(h, "at", ref_int(q, 1));
        put(h, "event", ref_text(q, 2));
        put(h, "step", ref_text(q, 3));
        put(h, "status", ref_text(q, 4));
        put(h, "detail", ref_json(q, 5));
        json_array_append_new(arr, h);
    }
    sqlite3_finalize(q);
    put(rec, "timers", arr = json_array());
    for (q = prepare(db, g_sql[Q_enc_timers], id); sqlite3_step(q) == SQLITE_ROW;) {
        json_t *t = json_object();
        put(t, "slot", ref_int(q, 0));
        put(t, "kind", ref_text(q, 1));
        put(t, "attempt", ref_int(q, 2));
        put(t, "due_at", ref_int(q, 3));
        json_array_append_new(arr, t);
    }
    sqlite3_finalize(q);
    char *text = saga_json_dump(rec);
    json_decref(rec);
    assert_non_null(text);
    return text;
}

/* ---- fixture: rows written with SQL ------------------------------------------------ */

typedef struct {
    char dir[64], path[128], path2[128];
    saga_store_t *st, *st2;
    sqlite3 *db; /* a second connection to path, for the rows and the reference */
} fixture_t;

/* Every stored JSON column as saga_json_dump writes it (sagad's writer). */
static char *canonical(const char *json) {
    json_t *v = json_loads(json, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    assert_non_null(v);
    char *text = saga_json_dump(v);
    json_decref(v);
    return text;
}

static void exec_bind(sqlite3 *db, const char *sql, int n, const char *const *texts, const int *lens) {
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK) fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    for (int i = 0; i < n; i++)
        if (texts[i]) sqlite3_bind_text(q, i + 1, texts[i], lens ? lens[i] : -1, SQLITE_TRANSIENT);
    if (sqlite3_step(q) != SQLITE_DONE) fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    sqlite3_finalize(q);
}

/* odd-1: escapes, unicode, a NUL byte, NULL start_message_id, a step
 * without output, one with JSON null output, nested input with reals and
 * large integers, a history row without step, a deadline timer.
 * nodef-1: its definition is not stored (definition_hash null), no timers. */
static void insert_rows(fixture_t *f) {
    char *input = canonical("{\"order_id\":\"o-\\\"1\\\"\",\"note\":\"caf\\u00e9 \\ud83d\\ude00 \\\\ \\/ \\n\\t\\u0001\\u0000\","
                            "\"nested\":{\"a\":[1,-2,0.1,1e300,-0.0,{\"b\":[]},[],{}],\"big\":9223372036854775807,"
                            "\"neg\":-9223372036854775808,\"t\":true,\"f\":false,\"n\":null},\"empty\":\"\"}");
    char *out = canonical("{\"payment_id\":\"p-\\u00e9\",\"x\":2.5,\"list\":[{\"k\":\"\\u001f\"}]}");
    char *detail1 = canonical("{\"input\":{\"q\":\"\\\"\"},\"why\":\"r\\u00e9\\r\"}");
    char *detail2 = canonical("{}");
    static const char message[] = "err \"quoted\" \\ \xc3\xa9\n\x01 and a NUL: \0 end";
    const char *saga[] = {input, message};
    int saga_lens[] = {-1, (int)sizeof message - 1};
    exec_bind(f->db, "INSERT INTO sagas (id, definition, version, status, input, traceparent, start_message_id,"
                     " created_at, updated_at, deadline_at, seq, completions, error_code, error_message) VALUES"
                     " ('odd-1', 'order_fulfillment', 1, 'compensating', ?, '00-aa-bb-01', NULL, 1700000000000,"
                     " 1700000000123, 1700000900000, 4, 1, 'DECLINED', ?)", 2, saga, saga_lens);
    const char *step0[] = {out};
    exec_bind(f->db, "INSERT INTO steps (saga_id, idx, name, status, attempt, comp_attempt, comp_budget_base,"
                     " outcome_unknown, output, error_code, error_message, started_at, finished_at, updated_at,"
                     " completion_order) VALUES ('odd-1', 0, 'create_order', 'compensating', 2, 1, 0, 1, ?, '', '', 10,"
                     " 20, 30, 1)", 1, step0, NULL);
    exec_bind(f->db, "INSERT INTO steps (saga_id, idx, name, status, attempt, comp_attempt, comp_budget_base,"
                     " outcome_unknown, output, error_code, error_message, started_at, finished_at, updated_at,"
                     " completion_order) VALUES ('odd-1', 1, 'reserve_inventory', 'failed', 1, 0, 0, 0, 'null', 'DECLINED',"
                     " 'card \xe2\x82\xac \"x\"', 11, 21, 31, 0)", 0, NULL, NULL);
    exec_bind(f->db, "INSERT INTO steps (saga_id, idx, name, status, attempt, comp_attempt, comp_budget_base,"
                     " outcome_unknown, output, error_code, error_message, started_at, finished_at, updated_at,"
                     " completion_order) VALUES ('odd-1', 2, 'charge_payment', 'pending', 0, 0, 0, 0, NULL, '', '', 0,"
                     " 0, 0, 0)", 0, NULL, NULL);
    const char *h1[] = {detail1}, *h2[] = {detail2};
    exec_bind(f->db, "INSERT INTO history (saga_id, seq, at, event, step, status, detail) VALUES ('odd-1', 1,"
                     " 1700000000000, 'saga.started', NULL, 'running', ?)", 1, h2, NULL);
    exec_bind(f->db, "INSERT INTO history (saga_id, seq, at, event, step, status, detail) VALUES ('odd-1', 2,"
                     " 1700000000100, 'step.failed', 'reserve_inventory', 'failed', ?)", 1, h1, NULL);
    exec_bind(f->db, "INSERT INTO timers (saga_id, slot, kind, attempt, due_at) VALUES ('odd-1', -1, 'deadline', 0,"
                     " 1700000900000)", 0, NULL, NULL);
    exec_bind(f->db, "INSERT INTO timers (saga_id, slot, kind, attempt, due_at) VALUES ('odd-1', 0, 'backoff', 2,"
                     " 1700000000500)", 0, NULL, NULL);
    const char *nodef[] = {detail2};
    exec_bind(f->db, "INSERT INTO sagas (id, definition, version, status, input, traceparent, start_message_id,"
                     " created_at, updated_at, deadline_at, seq, completions, error_code, error_message) VALUES"
                     " ('nodef-1', 'other', 3, 'completed', ?, '', 'm-nodef/1', 5, 6, 0, 0, 0, '', '')",
             1, nodef, NULL);
    saga_free(input);
    saga_free(out);
    saga_free(detail1);
    saga_free(detail2);
}

static int setup(void **state) {
    fixture_t *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/saga-changelog-text-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/src.db", f->dir);
    snprintf(f->path2, sizeof f->path2, "%s/dst.db", f->dir);
    char err[512];
    f->st = saga_store_open(f->path, NULL, err, sizeof err);
    f->st2 = saga_store_open(f->path2, NULL, err, sizeof err);
    assert_non_null(f->st);
    assert_non_null(f->st2);
    assert_int_equal(sqlite3_open(f->path, &f->db), SQLITE_OK);
    sqlite3_busy_timeout(f->db, 5000);
    saga_registry_t *reg = saga_registry_new();
    const char *root = getenv("SAGA_SOURCE_DIR");
    snprintf(err, sizeof err, "%s/sagas", root ? root : ".");
    char dir[512];
    snprintf(dir, sizeof dir, "%s", err);
    assert_int_equal(saga_registry_load_dir(reg, dir, err, sizeof err), 0);
    assert_int_equal(saga_store_begin(f->st), 0);
    assert_int_equal(saga_store_put_definition(f->st, saga_registry_get(reg, "order_fulfillment", 1), 500, err, sizeof err), 0);
    assert_int_equal(saga_store_commit(f->st), 0);
    saga_registry_free(&reg);
    insert_rows(f);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture_t *f = *state;
    sqlite3_close(f->db);
    saga_store_close(&f->st);
    saga_store_close(&f->st2);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    if (system(cmd) != 0) return -1;
    free(f);
    return 0;
}

static char *encode(saga_store_t *st, const char *id) {
    char *out = NULL, err[512] = "";
    size_t len = 0;
    int rc = saga_changelog_encode(st, id, 0, &out, &len, err, sizeof err);
    if (rc) fail_msg("encode %s: %s", id, err);
    assert_int_equal(len, strlen(out));
    return out;
}

/* ---- tests ------------------------------------------------------------------------ */

static void test_text_matches_the_tree_encoding(void **state) {
    fixture_t *f = *state;
    const char *ids[] = {"odd-1", "nodef-1"};
    for (size_t i = 0; i < 2; i++) {
        char *got = encode(f->st, ids[i]), *want = ref_encode(f->db, ids[i]);
        assert_string_equal(got, want);
        saga_free(got);
        saga_free(want);
    }
    /* the cases are there: escapes, a NUL byte, null hash, no output member, nested reals */
    char *odd = encode(f->st, "odd-1"), *nodef = encode(f->st, "nodef-1");
    assert_non_null(strstr(odd, "\"error_message\":\"err \\\"quoted\\\" \\\\ \xc3\xa9\\n\\u0001 and a NUL: \\u0000 end\""));
    assert_non_null(strstr(odd, "\"start_message_id\":null"));
    assert_non_null(strstr(odd, "\"completion_order\":0},{\"idx\":2,\"name\":\"charge_payment\",\"status\":\"pending\",\"attempt\":0,"
                                "\"comp_attempt\":0,\"comp_budget_base\":0,\"outcome_unknown\":0,\"error_code\""));
    assert_non_null(strstr(odd, "\"output\":null"));
    assert_non_null(strstr(odd, "[1,-2,0.1,1e300,-0.0,{\"b\":[]},[],{}]"));
    assert_non_null(strstr(odd, "\"step\":null"));
    assert_non_null(strstr(nodef, "\"definition_hash\":null"));
    assert_non_null(strstr(nodef, "\"timers\":[]}"));
    saga_free(odd);
    saga_free(nodef);
}

/* A record applies to an empty shard and encodes there to the same bytes. */
static void test_records_round_trip(void **state) {
    fixture_t *f = *state;
    /* a record refuses a NUL byte in a name or message (the encoder writes it: test above) */
    assert_int_equal(sqlite3_exec(f->db, "UPDATE sagas SET error_message = 'err \"q\" \\ \xc3\xa9' || char(10, 1) WHERE id = 'odd-1'", NULL, NULL, NULL), SQLITE_OK);
    char err[512] = "";
    char *def = NULL;
    size_t def_len = 0;
    assert_int_equal(saga_changelog_encode_definition(f->st, "order_fulfillment", 1, 0, &def, &def_len, err, sizeof err), 0);
    assert_non_null(strstr(def, "\"json\":{"));
    const char *ids[] = {"odd-1", "nodef-1"};
    assert_int_equal(saga_store_begin(f->st2), 0);
    assert_int_equal(saga_changelog_apply(f->st2, "def/order_fulfillment/1", 23, def, def_len, 1, err, sizeof err), 0);
    for (size_t i = 0; i < 2; i++) {
        char *rec = encode(f->st, ids[i]);
        int rc = saga_changelog_apply(f->st2, ids[i], strlen(ids[i]), rec, strlen(rec), (int64_t)i + 2, err, sizeof err);
        if (rc) fail_msg("apply %s: %s", ids[i], err);
        saga_free(rec);
    }
    assert_int_equal(saga_store_commit(f->st2), 0);
    for (size_t i = 0; i < 2; i++) {
        char *a = encode(f->st, ids[i]), *b = encode(f->st2, ids[i]);
        assert_string_equal(a, b);
        saga_free(a);
        saga_free(b);
    }
    char *def2 = NULL;
    assert_int_equal(saga_changelog_encode_definition(f->st2, "order_fulfillment", 1, 0, &def2, &def_len, err, sizeof err), 0);
    assert_string_equal(def, def2);
    saga_free(def);
    saga_free(def2);
}

static void expect_refused(fixture_t *f, const char *sql, const char *id, int code, const char *msg) {
    char *why = NULL;
    if (sqlite3_exec(f->db, sql, NULL, NULL, &why) != SQLITE_OK) fail_msg("%s: %s", sql, why);
    char *out = (char *)"untouched", err[512] = "";
    size_t len = 1;
    assert_int_equal(saga_changelog_encode(f->st, id, 0, &out, &len, err, sizeof err), code);
    assert_null(out);
    assert_int_equal(len, 0);
    if (!strstr(err, msg)) fail_msg("error '%s' does not say '%s'", err, msg);
}

/* A stored column that is not JSON, or text that is not UTF-8, is named;
 * no record is written. */
static void test_bad_columns_are_refused(void **state) {
    fixture_t *f = *state;
    expect_refused(f, "UPDATE steps SET output = '{\"a\":' WHERE saga_id = 'odd-1' AND idx = 0", "odd-1", SAGA_EPARSE,
                   "saga 'odd-1': a stored JSON column of its steps rows does not parse");
    expect_refused(f, "UPDATE steps SET output = NULL WHERE saga_id = 'odd-1';"
                      "UPDATE history SET detail = '{} x' WHERE saga_id = 'odd-1' AND seq = 2", "odd-1", SAGA_EPARSE,
                   "saga 'odd-1': a stored JSON column of its history rows does not parse");
    expect_refused(f, "UPDATE sagas SET input = '' WHERE id = 'nodef-1'", "nodef-1", SAGA_EPARSE,
                   "saga 'nodef-1': its stored input is not JSON");
    expect_refused(f, "UPDATE sagas SET input = '{}', error_message = CAST(x'ff' AS TEXT) WHERE id = 'nodef-1'", "nodef-1",
                   SAGA_EPARSE, "saga 'nodef-1': a stored text column is not UTF-8");
    expect_refused(f, "UPDATE history SET detail = '{}', status = CAST(x'c3' AS TEXT) WHERE saga_id = 'odd-1'", "odd-1",
                   SAGA_EPARSE, "saga 'odd-1': a stored text column of its history rows is not UTF-8");
}

static void exec_sql(fixture_t *f, const char *sql) {
    char *why = NULL;
    if (sqlite3_exec(f->db, sql, NULL, NULL, &why) != SQLITE_OK) fail_msg("%s: %s", sql, why);
}

static void expect_same(saga_store_t *cached, saga_store_t *plain, const char *id, const char *needle) {
    char *a = encode(cached, id), *b = encode(plain, id);
    assert_string_equal(a, b);
    if (needle && !strstr(a, needle)) fail_msg("record of %s lacks %s: %s", id, needle, a);
    saga_free(a);
    saga_free(b);
}

/* sagad's relay may encode the iteration's uncommitted rows: after a
 * rollback, saga_changelog_history_reset drops what the cache took from
 * them, and the next record is again the same as a full read. */
static void test_history_cache_reset_after_rollback(void **state) {
    fixture_t *f = *state;
    char err[512];
    saga_store_t *cached = saga_store_open(f->path, NULL, err, sizeof err);
    assert_non_null(cached);
    assert_int_equal(saga_changelog_cache_history(cached), 0);
    exec_sql(f, "UPDATE sagas SET status = 'running' WHERE id = 'odd-1'");
    expect_same(cached, f->st, "odd-1", "\"seq\":2,");
    assert_int_equal(saga_store_begin(cached), 0);
    char *why = NULL;
    if (sqlite3_exec(saga_store_db(cached), "INSERT INTO history (saga_id, seq, at, event, step, status, detail) "
                     "VALUES ('odd-1', 3, 7, 'step.compensated', 'create_order', 'compensated', '{\"gone\":1}')",
                     NULL, NULL, &why) != SQLITE_OK)
        fail_msg("insert: %s", why);
    char *in_tx = encode(cached, "odd-1");
    assert_non_null(strstr(in_tx, "{\"gone\":1}")); /* the cache has taken the row */
    saga_free(in_tx);
    saga_store_rollback(cached);
    saga_changelog_history_reset(cached);
    expect_same(cached, f->st, "odd-1", "\"seq\":2,");
    char *after = encode(cached, "odd-1");
    assert_null(strstr(after, "gone"));
    saga_free(after);
    saga_store_close(&cached);
}

/* With the history cache (sagad's relay), a record reads only the history
 * rows added since the saga's last record, and its bytes are the same as a
 * full read: as rows are appended, after the saga is removed and started
 * again under the same id, for a finished saga, and after a row that does
 * not encode. */
static void test_history_cache_matches_full_read(void **state) {
    fixture_t *f = *state;
    char err[512];
    saga_store_t *cached = saga_store_open(f->path, NULL, err, sizeof err);
    assert_non_null(cached);
    assert_int_equal(saga_changelog_cache_history(cached), 0);
    expect_same(cached, f->st, "odd-1", "\"seq\":2,");
    exec_sql(f, "INSERT INTO history (saga_id, seq, at, event, step, status, detail) VALUES ('odd-1', 3, 7,"
                " 'step.compensated', 'create_order', 'compensated', '{\"n\":3}')");
    expect_same(cached, f->st, "odd-1", "{\"seq\":3,\"at\":7,");
    exec_sql(f, "INSERT INTO history (saga_id, seq, at, event, step, status, detail) VALUES ('odd-1', 4, 8,"
                " 'step.compensated', 'x', 'compensated', '{\"n\":')");
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(saga_changelog_encode(cached, "odd-1", 0, &out, &len, err, sizeof err), SAGA_EPARSE);
    assert_non_null(strstr(err, "history rows does not parse"));
    exec_sql(f, "UPDATE history SET detail = '{\"n\":4}' WHERE saga_id = 'odd-1' AND seq = 4");
    expect_same(cached, f->st, "odd-1", "{\"n\":4}");
    /* removed, then started again under the same id: one history row */
    exec_sql(f, "DELETE FROM history WHERE saga_id = 'odd-1'; DELETE FROM steps WHERE saga_id = 'odd-1';"
                "DELETE FROM timers WHERE saga_id = 'odd-1';"
                "UPDATE sagas SET created_at = created_at + 1, status = 'running' WHERE id = 'odd-1';"
                "INSERT INTO history (saga_id, seq, at, event, step, status, detail) VALUES ('odd-1', 1, 9,"
                " 'saga.started', NULL, 'running', '{}')");
    expect_same(cached, f->st, "odd-1", "\"history\":[{\"seq\":1,\"at\":9,");
    expect_same(cached, f->st, "nodef-1", "\"history\":[]");
    exec_sql(f, "UPDATE sagas SET status = 'completed' WHERE id = 'odd-1'");
    expect_same(cached, f->st, "odd-1", "\"status\":\"completed\"");
    saga_store_close(&cached);
}

int main(int argc, char **argv) {
    saga_test_filter(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_text_matches_the_tree_encoding, setup, teardown),
        cmocka_unit_test_setup_teardown(test_records_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_columns_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_history_cache_reset_after_rollback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_history_cache_matches_full_read, setup, teardown),
    };
    return cmocka_run_group_tests_name("changelog_text", tests, NULL, NULL);
}
