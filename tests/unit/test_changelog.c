/* The changelog codec on real SQLite files: sagas driven through the real
 * engine (fake clock) into every status, encoded, applied to an empty
 * shard, and compared row by row and through saga_store_load /
 * saga_store_state_at; tombstones, corrupt records, idempotence, order,
 * definition records, the offset marker and the size limit. */
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
#include "replay.h"
#include "saga_alloc.h"
#include "saga_error.h"
#include "saga_json.h"
#include "store.h"

#define NSAGAS 9

typedef struct {
    char dir[64], src_path[128], dst_path[128];
    saga_store_t *src, *dst;
    saga_store_t *plain; /* src's file without the history cache */
    saga_registry_t *reg;
    const saga_definition_t *def;
    uint64_t rng;
    int64_t now;
} fixture_t;

static const char *const g_ids[NSAGAS] = {"run-1", "done-1", "comp-1", "compd-1", "cfail-1", "retried-1", "abort-1",
                                           "unknown-1", "sched-1"};

/* ---- driving sagas through the engine ------------------------------------------ */

static char *record_of(saga_store_t *st, const char *id) {
    char *out = NULL, err[512] = "";
    size_t len = 0;
    if (saga_changelog_encode(st, id, 0, &out, &len, err, sizeof err)) fail_msg("%s: %s", id, err);
    return out;
}

/* src encodes as sagad's relay does (the history cache on, fed by the store
 * as it writes the rows): the same bytes as a plain read, and for a saga
 * that was live before the change, without reading its history again. */
static void expect_cached_record(fixture_t *f, const char *id, bool was_live) {
    saga_changelog_stmts_t *c = saga_changelog_stmts(f->src);
    assert_non_null(c);
    int runs = sqlite3_stmt_status(c->enc_history_after, SQLITE_STMTSTATUS_RUN, 0);
    char *cached = record_of(f->src, id), *plain = record_of(f->plain, id);
    assert_string_equal(cached, plain);
    if (was_live && sqlite3_stmt_status(c->enc_history_after, SQLITE_STMTSTATUS_RUN, 0) != runs)
        fail_msg("the record of %s read its history rows: %s", id, cached);
    saga_free(cached);
    saga_free(plain);
}

static void apply(fixture_t *f, saga_t *s, const saga_event_t *ev) {
    bool was_live = s->seq > 0 && !saga_status_is_terminal(s->status);
    saga_effects_t fx;
    saga_effects_init(&fx);
    char why[256] = "";
    saga_engine_config_t cfg = {.replies_topic = "saga.replies"};
    int rc = saga_engine_apply(&cfg, s, ev, f->now, &f->rng, &fx, why, sizeof why);
    if (rc) fprintf(stderr, "engine: %s: %s\n", s->id, why);
    assert_int_equal(rc, 0);
    assert_int_equal(saga_store_begin(f->src), 0);
    assert_int_equal(saga_store_save(f->src, s, &fx, "saga.events", f->now), 0);
    assert_int_equal(saga_store_commit(f->src), 0);
    saga_effects_free(&fx);
    expect_cached_record(f, s->id, was_live);
    f->now += 7;
}

static void start(fixture_t *f, saga_t *s, const char *id) {
    json_t *input = json_pack("{s:s, s:s, s:i, s:[{s:s, s:i}], s:f}", "order_id", id, "customer", "c-1", "amount",
                              1999, "items", "sku", "sku-1", "qty", 2, "ratio", 0.1);
    saga_init(s, id, f->def, input, "00-0123456789abcdef0123456789abcdef-0123456789abcdef-01", f->now);
    json_decref(input);
    /* search attributes on all but one saga: records with and without them */
    if (strcmp(id, "unknown-1") != 0) s->search = json_pack("{s:s, s:s}", "order_id", id, "customer", "c-1");
    /* done-1 is a child saga (sagas.parent, migration 11): it answers "mom" when it completes */
    if (strcmp(id, "done-1") == 0)
        s->parent = json_pack("{s:s, s:s, s:i, s:i}", "saga_id", "mom", "step", "kid", "attempt", 1, "partition", 2);
    char mid[64];
    snprintf(mid, sizeof mid, "m-%s", id);
    assert_int_equal(saga_store_begin(f->src), 0);
    assert_int_equal(saga_store_insert(f->src, s, mid), 0);
    assert_int_equal(saga_store_commit(f->src), 0);
    /* sched-1 is a delayed start: scheduled, its begin timer in slot -1 */
    saga_event_t ev = {.kind = SAGA_EV_START, .begin_at = strcmp(id, "sched-1") == 0 ? f->now + 60000 : 0};
    apply(f, s, &ev);
}

static void reply(fixture_t *f, saga_t *s, int step, saga_command_kind_t kind, saga_reply_status_t status) {
    json_t *out = json_pack("{s:s, s:i, s:f, s:s}", "id", s->def->steps[step].name, "n", step, "x", 2.5, "payment_id", "p-1");
    saga_event_t ev = {.kind = SAGA_EV_REPLY, .step = step, .command_kind = kind, .reply_status = status,
                       .attempt = kind == SAGA_KIND_ACTION ? s->steps[step].attempt : s->steps[step].comp_attempt,
                       .output = status == SAGA_REPLY_SUCCESS ? out : NULL,
                       .error_code = status == SAGA_REPLY_SUCCESS ? NULL : "DECLINED",
                       .error_message = status == SAGA_REPLY_SUCCESS ? NULL : "card declined \"quoted\" é"};
    apply(f, s, &ev);
    json_decref(out);
}

/* Fires the stored timer of s at slot (as the loop does: delete, apply). */
static void fire(fixture_t *f, saga_t *s, int slot) {
    saga_timer_row_t rows[256];
    int n = saga_store_due_timers(f->src, INT64_MAX, rows, 256);
    for (int i = 0; i < n; i++) {
        if (strcmp(rows[i].saga_id, s->id) || rows[i].slot != slot) continue;
        assert_int_equal(saga_store_begin(f->src), 0);
        assert_int_equal(saga_store_timer_delete(f->src, &rows[i]), 0);
        assert_int_equal(saga_store_commit(f->src), 0);
        if (rows[i].due_at > f->now) f->now = rows[i].due_at;
        saga_event_t ev = {.kind = SAGA_EV_TIMER, .slot = slot, .timer_kind = rows[i].kind,
                           .timer_attempt = rows[i].attempt};
        apply(f, s, &ev);
        return;
    }
    fail_msg("no timer at slot %d for %s", slot, s->id);
}

/* Compensation of step 0 fails until it gives up: compensation_failed. */
static void fail_compensation(fixture_t *f, saga_t *s) {
    for (int guard = 0; s->status != SAGA_STATUS_COMPENSATION_FAILED; guard++) {
        assert_true(guard < 50);
        if (s->steps[0].status == SAGA_STEP_COMPENSATING) reply(f, s, 0, SAGA_KIND_COMPENSATION, SAGA_REPLY_FAILURE);
        else fire(f, s, 0);
    }
}

static void build_sagas(fixture_t *f) {
    saga_t s;
    /* running: step 0 done, step 1 retrying (backoff timer), deadline timer */
    start(f, &s, "run-1");
    reply(f, &s, 0, SAGA_KIND_ACTION, SAGA_REPLY_SUCCESS);
    reply(f, &s, 1, SAGA_KIND_ACTION, SAGA_REPLY_RETRY);
    assert_int_equal(s.steps[1].status, SAGA_STEP_RETRY_WAIT);
    /* a signal kept with a pending step (steps.signal, migration 9): the
     * codec carries it whatever the step's kind */
    s.steps[3].signal = json_pack("{s:s, s:{s:s}}", "status", "success", "output", "approver", "ann");
    s.step_dirty[3] = true;
    saga_effects_t none;
    saga_effects_init(&none);
    assert_int_equal(saga_store_begin(f->src), 0);
    assert_int_equal(saga_store_save(f->src, &s, &none, "saga.events", f->now), 0);
    assert_int_equal(saga_store_commit(f->src), 0);
    saga_effects_free(&none);
    saga_clear(&s);
    /* completed, with a retry on the way */
    start(f, &s, "done-1");
    reply(f, &s, 0, SAGA_KIND_ACTION, SAGA_REPLY_RETRY);
    fire(f, &s, 0);
    for (int i = 0; i < 4; i++) reply(f, &s, i, SAGA_KIND_ACTION, SAGA_REPLY_SUCCESS);
    assert_int_equal(s.status, SAGA_STATUS_COMPLETED);
    saga_clear(&s);
    /* compensating: step 1 failed, step 0's compensation in flight */
    start(f, &s, "comp-1");
    reply(f, &s, 0, SAGA_KIND_ACTION, SAGA_REPLY_SUCCESS);
    reply(f, &s, 1, SAGA_KIND_ACTION, SAGA_REPLY_FAILURE);
    assert_int_equal(s.status, SAGA_STATUS_COMPENSATING);
    saga_clear(&s);
    /* compensated */
    start(f, &s, "compd-1");
    reply(f, &s, 0, SAGA_KIND_ACTION, SAGA_REPLY_SUCCESS);
    reply(f, &s, 1, SAGA_KIND_ACTION, SAGA_REPLY_SUCCESS);
    reply(f, &s, 2, SAGA_KIND_ACTION, SAGA_REPLY_FAILURE);
    reply(f, &s, 1, SAGA_KIND_COMPENSATION, SAGA_REPLY_SUCCESS);
    reply(f, &s, 0, SAGA_KIND_COMPENSATION, SAGA_REPLY_SUCCESS);
    assert_int_equal(s.status, SAGA_STATUS_COMPENSATED);
    saga_clear(&s);
    /* compensation_failed after compensation retries */
    start(f, &s, "cfail-1");
    reply(f, &s, 0, SAGA_KIND_ACTION, SAGA_REPLY_SUCCESS);
    reply(f, &s, 1, SAGA_KIND_ACTION, SAGA_REPLY_FAILURE);
    fail_compensation(f, &s);
    saga_clear(&s);
    /* compensation_failed, retried by an operator: compensating again */
    start(f, &s, "retried-1");
    reply(f, &s, 0, SAGA_KIND_ACTION, SAGA_REPLY_SUCCESS);
    reply(f, &s, 1, SAGA_KIND_ACTION, SAGA_REPLY_FAILURE);
    fail_compensation(f, &s);
    saga_event_t retry = {.kind = SAGA_EV_RETRY, .reason = "operator: try again"};
    apply(f, &s, &retry);
    assert_int_equal(s.status, SAGA_STATUS_COMPENSATING);
    assert_true(s.steps[0].comp_budget_base > 0);
    saga_clear(&s);
    /* aborted by an operator while step 1 runs */
    start(f, &s, "abort-1");
    reply(f, &s, 0, SAGA_KIND_ACTION, SAGA_REPLY_SUCCESS);
    saga_event_t abort_ev = {.kind = SAGA_EV_ABORT, .reason = "operator: stop"};
    apply(f, &s, &abort_ev);
    saga_clear(&s);
    /* step 0 timed out on every attempt: outcome unknown, compensating */
    start(f, &s, "unknown-1");
    for (int guard = 0; s.status == SAGA_STATUS_RUNNING; guard++) {
        assert_true(guard < 30);
        fire(f, &s, 0);
    }
    assert_true(s.steps[0].outcome_unknown);
    saga_clear(&s);
    /* scheduled: begins in a minute */
    start(f, &s, "sched-1");
    assert_int_equal(s.status, SAGA_STATUS_SCHEDULED);
    saga_clear(&s);
}

static int setup(void **state) {
    fixture_t *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/saga-changelog-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->src_path, sizeof f->src_path, "%s/src.db", f->dir);
    snprintf(f->dst_path, sizeof f->dst_path, "%s/dst.db", f->dir);
    char err[512], dir[512];
    f->src = saga_store_open(f->src_path, NULL, err, sizeof err);
    f->dst = saga_store_open(f->dst_path, NULL, err, sizeof err);
    f->plain = saga_store_open(f->src_path, NULL, err, sizeof err);
    assert_non_null(f->src);
    assert_non_null(f->dst);
    assert_non_null(f->plain);
    assert_int_equal(saga_changelog_cache_history(f->src), 0);
    f->reg = saga_registry_new();
    const char *root = getenv("SAGA_SOURCE_DIR");
    snprintf(dir, sizeof dir, "%s/sagas", root ? root : ".");
    assert_int_equal(saga_registry_load_dir(f->reg, dir, err, sizeof err), 0);
    f->def = saga_registry_get(f->reg, "order_fulfillment", 1);
    assert_non_null(f->def);
    assert_int_equal(saga_store_begin(f->src), 0);
    assert_int_equal(saga_store_put_definition(f->src, f->def, 500, err, sizeof err), 0);
    assert_int_equal(saga_store_commit(f->src), 0);
    f->rng = 42;
    f->now = 1700000000000;
    build_sagas(f);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture_t *f = *state;
    saga_store_close(&f->src);
    saga_store_close(&f->dst);
    saga_store_close(&f->plain);
    saga_registry_free(&f->reg);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    if (system(cmd) != 0) return -1;
    free(f);
    return 0;
}

/* ---- comparing stores ------------------------------------------------------------- */

/* Every row of a query as text: each value with its SQLite type. */
static char *rows_of(const char *path, const char *sql) {
    sqlite3 *db;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *q;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK);
    size_t cap = 4096, len = 0;
    char *out = malloc(cap);
    out[0] = '\0';
    while (sqlite3_step(q) == SQLITE_ROW) {
        for (int i = 0; i < sqlite3_column_count(q); i++) {
            const char *v = (const char *)sqlite3_column_text(q, i);
            size_t need = len + (v ? strlen(v) : 0) + 16;
            if (need > cap) out = realloc(out, cap = need * 2);
            len += (size_t)sprintf(out + len, "%d:%s%s", sqlite3_column_type(q, i), v ? v : "", i + 1 < sqlite3_column_count(q) ? "|" : "\n");
        }
    }
    sqlite3_finalize(q);
    sqlite3_close(db);
    return out;
}

static const char *const g_tables[] = {
    "SELECT * FROM sagas ORDER BY id", "SELECT * FROM steps ORDER BY saga_id, idx",
    "SELECT * FROM history ORDER BY saga_id, seq", "SELECT * FROM timers ORDER BY saga_id, slot",
    "SELECT * FROM definitions ORDER BY name, version", "SELECT * FROM saga_search ORDER BY name, value, saga_id"};

static void assert_tables_equal(fixture_t *f) {
    for (size_t t = 0; t < sizeof g_tables / sizeof g_tables[0]; t++) {
        char *a = rows_of(f->src_path, g_tables[t]), *b = rows_of(f->dst_path, g_tables[t]);
        if (strcmp(a, b)) fprintf(stderr, "%s differs:\n--- source\n%s--- restored\n%s", g_tables[t], a, b);
        assert_string_equal(a, b);
        free(a);
        free(b);
    }
}

/* A snapshot of every table of the destination. */
static char *snapshot(fixture_t *f) {
    size_t cap = 1, len = 0;
    char *all = calloc(1, 1);
    for (size_t t = 0; t < sizeof g_tables / sizeof g_tables[0]; t++) {
        char *a = rows_of(f->dst_path, g_tables[t]);
        all = realloc(all, cap += strlen(a) + 2);
        len += (size_t)sprintf(all + len, "%s#", a);
        free(a);
    }
    char *m = rows_of(f->dst_path, "SELECT * FROM shard_meta");
    all = realloc(all, cap + strlen(m));
    strcat(all, m);
    free(m);
    return all;
}

static char *encode(fixture_t *f, saga_store_t *st, const char *id) {
    char *out, err[512];
    size_t len;
    int rc = saga_changelog_encode(st, id, 0, &out, &len, err, sizeof err);
    if (rc) fprintf(stderr, "%s\n", err);
    assert_int_equal(rc, 0);
    assert_int_equal(strlen(out), len);
    (void)f;
    return out;
}

static int apply_one(fixture_t *f, const char *key, const char *value, size_t len, int64_t offset, char *err,
                     size_t errlen) {
    assert_int_equal(saga_store_begin(f->dst), 0);
    int rc = saga_changelog_apply(f->dst, key, strlen(key), value, len, offset, err, errlen);
    assert_int_equal(saga_store_commit(f->dst), 0);
    return rc;
}

/* With SAGA_CHANGELOG_SEEDS=DIR, writes each record as DIR/KEY ("KEY\nVALUE"):
 * how tests/fuzz/corpus/fuzz_changelog/ was made. */
static void write_seed(const char *key, const char *value, size_t len) {
    const char *dir = getenv("SAGA_CHANGELOG_SEEDS");
    if (!dir) return;
    char path[512], name[128];
    snprintf(name, sizeof name, "%s", key);
    for (char *p = name; *p; p++)
        if (*p == '/') *p = '_';
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *out = fopen(path, "w");
    assert_non_null(out);
    fprintf(out, "%s\n", key);
    fwrite(value, 1, len, out);
    fclose(out);
}

/* Restores everything of src into dst: the definition record first. */
static void restore_all(fixture_t *f) {
    char *def, err[512], key[256];
    size_t len;
    assert_int_equal(saga_changelog_encode_definition(f->src, "order_fulfillment", 1, 0, &def, &len, err, sizeof err), 0);
    assert_true(saga_changelog_definition_key("order_fulfillment", 1, key, sizeof key) > 0);
    assert_string_equal(key, "def/order_fulfillment/1");
    assert_int_equal(saga_changelog_key_kind(key, strlen(key)), SAGA_CHANGELOG_KEY_DEFINITION);
    int64_t offset = 0;
    assert_int_equal(saga_store_begin(f->dst), 0);
    write_seed(key, def, len);
    int rc = saga_changelog_apply(f->dst, key, strlen(key), def, len, offset++, err, sizeof err);
    if (rc) fprintf(stderr, "%s\n", err);
    assert_int_equal(rc, 0);
    saga_free(def);
    for (int i = 0; i < NSAGAS; i++) {
        char *rec = encode(f, f->src, g_ids[i]);
        write_seed(g_ids[i], rec, strlen(rec));
        rc = saga_changelog_apply(f->dst, g_ids[i], strlen(g_ids[i]), rec, strlen(rec), offset++, err, sizeof err);
        if (rc) fprintf(stderr, "%s\n", err);
        assert_int_equal(rc, 0);
        saga_free(rec);
    }
    assert_int_equal(saga_store_commit(f->dst), 0);
}

static void assert_loads_equal(fixture_t *f, saga_registry_t *dst_reg) {
    for (int i = 0; i < NSAGAS; i++) {
        saga_t a, b;
        char err[512], diff[512];
        assert_int_equal(saga_store_load(f->src, f->reg, g_ids[i], &a, err, sizeof err), 0);
        assert_int_equal(saga_store_load(f->dst, dst_reg, g_ids[i], &b, err, sizeof err), 0);
        if (!saga_equal(&a, &b, diff, sizeof diff)) fail_msg("%s: load differs: %s", g_ids[i], diff);
        int64_t created = a.created_at, updated = a.updated_at;
        saga_clear(&a);
        saga_clear(&b);
        int64_t times[] = {created - 1, created, created + 7, created + 30, (created + updated) / 2, updated, INT64_MAX};
        for (size_t t = 0; t < sizeof times / sizeof times[0]; t++) {
            int ra = saga_store_state_at(f->src, f->reg, g_ids[i], times[t], &a, err, sizeof err);
            int rb = saga_store_state_at(f->dst, dst_reg, g_ids[i], times[t], &b, err, sizeof err);
            assert_int_equal(ra, rb);
            if (ra) continue;
            if (!saga_equal(&a, &b, diff, sizeof diff)) fail_msg("%s at %lld: differs: %s", g_ids[i], (long long)times[t], diff);
            saga_clear(&a);
            saga_clear(&b);
        }
        assert_int_equal(saga_store_start_seen(f->dst, "m-run-1"), 1);
    }
}

/* ---- tests ------------------------------------------------------------------------- */

static void test_restore_is_row_identical(void **state) {
    fixture_t *f = *state;
    restore_all(f);
    assert_tables_equal(f);
    assert_loads_equal(f, f->reg);
    assert_int_equal(saga_store_next_timer_due(f->dst), saga_store_next_timer_due(f->src));
    int64_t off = -1;
    assert_int_equal(saga_changelog_offset_get(f->dst, &off), 0);
    assert_int_equal(off, NSAGAS);
    /* the child saga done-1 answered its parent "mom" on its partition (2), keyed by the parent */
    char *ans = rows_of(f->src_path, "SELECT key, kafka_partition, json_extract(payload, '$.status') FROM outbox"
                                     " WHERE json_extract(payload, '$.type') = 'saga.reply'");
    assert_string_equal(ans, "3:mom|1:2|3:success\n");
    free(ans);
    /* every status is covered */
    char *st = rows_of(f->dst_path, "SELECT group_concat(DISTINCT status) FROM sagas");
    for (int s = 0; s < SAGA_STATUS__COUNT; s++) assert_non_null(strstr(st, saga_status_name((saga_status_t)s)));
    free(st);
}

/* A restored shard whose definitions directory lost the file still runs
 * its sagas: the definition came back with the changelog. */
static void test_restore_without_definition_file(void **state) {
    fixture_t *f = *state;
    restore_all(f);
    saga_registry_t *empty = saga_registry_new();
    char err[512];
    assert_int_equal(saga_store_load_retired(f->dst, empty, err, sizeof err), 0);
    const saga_definition_t *def = saga_registry_get(empty, "order_fulfillment", 1);
    assert_non_null(def);
    assert_string_equal(def->hash, f->def->hash);
    assert_loads_equal(f, empty);
    saga_registry_free(&empty);
}

static void test_tombstone_removes_the_saga(void **state) {
    fixture_t *f = *state;
    restore_all(f);
    char err[512];
    assert_int_equal(apply_one(f, "cfail-1", NULL, 0, 100, err, sizeof err), 0);
    char *n = rows_of(f->dst_path, "SELECT (SELECT count(*) FROM sagas WHERE id = 'cfail-1') +"
                                   " (SELECT count(*) FROM steps WHERE saga_id = 'cfail-1') +"
                                   " (SELECT count(*) FROM history WHERE saga_id = 'cfail-1') +"
                                   " (SELECT count(*) FROM timers WHERE saga_id = 'cfail-1'),"
                                   " (SELECT count(*) FROM sagas)");
    assert_string_equal(n, "1:0|1:8\n");
    free(n);
    /* its search attributes went with it (the sagas_search_delete trigger) */
    n = rows_of(f->dst_path, "SELECT count(*) FROM saga_search WHERE saga_id = 'cfail-1'");
    assert_string_equal(n, "1:0\n");
    free(n);
    n = rows_of(f->dst_path, "SELECT count(*) FROM saga_search");
    assert_string_equal(n, "1:14\n"); /* 7 sagas with 2 attributes each */
    free(n);
    /* a tombstone for a saga never stored is fine too */
    assert_int_equal(apply_one(f, "never-1", "", 0, 101, err, sizeof err), 0);
    int64_t off;
    assert_int_equal(saga_changelog_offset_get(f->dst, &off), 0);
    assert_int_equal(off, 101);
}

static void test_same_record_twice_is_idempotent(void **state) {
    fixture_t *f = *state;
    restore_all(f);
    char *before = snapshot(f), err[512];
    for (int i = 0; i < NSAGAS; i++) {
        char *rec = encode(f, f->src, g_ids[i]);
        assert_int_equal(apply_one(f, g_ids[i], rec, strlen(rec), -1, err, sizeof err), 0);
        saga_free(rec);
    }
    char *after = snapshot(f);
    assert_string_equal(before, after);
    free(before);
    free(after);
    assert_tables_equal(f);
}

static void test_older_then_newer_gives_newer(void **state) {
    fixture_t *f = *state;
    saga_t s;
    start(f, &s, "later-1");
    char *old = encode(f, f->src, "later-1"), err[512];
    reply(f, &s, 0, SAGA_KIND_ACTION, SAGA_REPLY_SUCCESS);
    reply(f, &s, 1, SAGA_KIND_ACTION, SAGA_REPLY_SUCCESS);
    char *mid = encode(f, f->src, "later-1");
    reply(f, &s, 2, SAGA_KIND_ACTION, SAGA_REPLY_SUCCESS);
    reply(f, &s, 3, SAGA_KIND_ACTION, SAGA_REPLY_SUCCESS);
    char *last = encode(f, f->src, "later-1");
    saga_clear(&s);
    assert_string_not_equal(old, last);
    restore_all(f);
    assert_int_equal(apply_one(f, "later-1", old, strlen(old), 10, err, sizeof err), 0);
    assert_int_equal(apply_one(f, "later-1", mid, strlen(mid), 11, err, sizeof err), 0);
    char *h = rows_of(f->dst_path, "SELECT count(*) FROM timers WHERE saga_id = 'later-1'");
    assert_string_not_equal(h, "1:0\n"); /* running: a step timer and the deadline */
    free(h);
    assert_int_equal(apply_one(f, "later-1", last, strlen(last), 12, err, sizeof err), 0);
    assert_tables_equal(f);
    saga_t a;
    assert_int_equal(saga_store_load(f->dst, f->reg, "later-1", &a, err, sizeof err), 0);
    assert_int_equal(a.status, SAGA_STATUS_COMPLETED);
    saga_clear(&a);
    saga_free(old);
    saga_free(mid);
    saga_free(last);
}

/* Catch-up in place: a shard that kept its file may hold a newer state than
 * a record after its marker (SQLite commits before the Kafka transaction):
 * an older record or a tombstone of a running saga must not replace it. */
static void test_catch_up_never_goes_back(void **state) {
    fixture_t *f = *state;
    saga_t s;
    start(f, &s, "ahead-1");
    char *old = encode(f, f->src, "ahead-1"), err[512];
    reply(f, &s, 0, SAGA_KIND_ACTION, SAGA_REPLY_SUCCESS);
    char *mid = encode(f, f->src, "ahead-1");
    reply(f, &s, 1, SAGA_KIND_ACTION, SAGA_REPLY_SUCCESS);
    char *last = encode(f, f->src, "ahead-1");
    saga_clear(&s);
    restore_all(f);
    assert_int_equal(apply_one(f, "ahead-1", mid, strlen(mid), 20, err, sizeof err), 0);
    char *at_mid = rows_of(f->dst_path, "SELECT s.seq, s.status, s.updated_at, (SELECT count(*) FROM history WHERE saga_id = s.id), (SELECT group_concat(status) FROM steps WHERE saga_id = s.id) FROM sagas s WHERE id = 'ahead-1'");
    saga_changelog_only_newer(f->dst, true);
    assert_int_equal(apply_one(f, "ahead-1", old, strlen(old), 21, err, sizeof err), 0);
    assert_int_equal(apply_one(f, "ahead-1", NULL, 0, 22, err, sizeof err), 0); /* running: kept */
    char *after = rows_of(f->dst_path, "SELECT s.seq, s.status, s.updated_at, (SELECT count(*) FROM history WHERE saga_id = s.id), (SELECT group_concat(status) FROM steps WHERE saga_id = s.id) FROM sagas s WHERE id = 'ahead-1'");
    assert_string_equal(at_mid, after); /* the older record and the tombstone were skipped */
    int64_t off;
    assert_int_equal(saga_changelog_offset_get(f->dst, &off), 0);
    assert_int_equal(off, 22); /* the marker still moves */
    assert_int_equal(apply_one(f, "ahead-1", last, strlen(last), 23, err, sizeof err), 0);
    assert_tables_equal(f); /* a newer record is applied */
    /* a finished saga's tombstone is applied */
    assert_int_equal(apply_one(f, "done-1", NULL, 0, 24, err, sizeof err), 0);
    char *n = rows_of(f->dst_path, "SELECT count(*) FROM sagas WHERE id = 'done-1'");
    assert_string_equal(n, "1:0\n");
    free(n);
    /* off again: an older record replaces (a rebuild applies in offset order) */
    saga_changelog_only_newer(f->dst, false);
    assert_int_equal(apply_one(f, "ahead-1", old, strlen(old), 25, err, sizeof err), 0);
    char *back = rows_of(f->dst_path, "SELECT s.seq, s.status, s.updated_at, (SELECT count(*) FROM history WHERE saga_id = s.id), (SELECT group_concat(status) FROM steps WHERE saga_id = s.id) FROM sagas s WHERE id = 'ahead-1'");
    assert_string_not_equal(back, at_mid); /* at the old state again, before mid */
    free(back);
    free(at_mid);
    free(after);
    saga_free(old);
    saga_free(mid);
    saga_free(last);
}

/* GCC 12 at -O3 (CMAKE_BUILD_TYPE=Release) takes the record that encode()
 * returned for a pointer to its local variable once mutate is inlined. */
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#pragma GCC diagnostic ignored "-Wdangling-pointer"
#endif

/* Replaces the first occurrence of from in rec by to (a new string). */
static char *mutate(const char *rec, const char *from, const char *to) {
    const char *p = strstr(rec, from);
    assert_non_null(p);
    int at = (int)(p - rec);
    const char *rest = p + strlen(from);
    char *out = malloc(strlen(rec) + strlen(to) + 1);
    sprintf(out, "%.*s%s%s", at, rec, to, rest);
    return out;
}

/* rec with history[0].detail a string (a new string). */
static char *detail_as_string(const char *rec) {
    json_t *r = saga_json_parse(rec, strlen(rec), NULL, 0);
    assert_non_null(r);
    json_object_set_new(json_array_get(json_object_get(r, "history"), 0), "detail", json_string("{}"));
    char *text = saga_json_dump(r), *out = strdup(text);
    saga_free(text);
    json_decref(r);
    return out;
}

static void test_corrupt_records_are_refused_and_change_nothing(void **state) {
    fixture_t *f = *state;
    restore_all(f);
    char *good = encode(f, f->src, "done-1");
    char *good_run = encode(f, f->src, "run-1");
    struct {
        const char *key;
        char *value;
        size_t len;
        const char *expect;
    } cases[] = {
        {"done-1", strdup(good), strlen(good) / 2, "value is not JSON"},
        {"done-1", mutate(good, "\"completions\":4", "\"completions\":\"4\""), 0, "saga.completions: must be an integer, not a string"},
        {"done-1", mutate(good, "\"completions\":4", "\"completions\":4.0"), 0, "saga.completions: must be an integer, not a real"},
        {"done-1", mutate(good, "\"input\":", "\"inputs\":"), 0, "saga: member 'input' is missing"},
        {"done-1", mutate(good, "{\"v\":1", "{\"v\":2"), 0, "format version 2 is not supported"},
        {"done-1", mutate(good, "{\"v\":1", "{\"v\":\"1\""), 0, "v (the format version): must be an integer"},
        {"comp-1", strdup(good), 0, "saga.id: 'done-1' is not the record's key"},
        {"done-1", mutate(good, "\"timers\":[", "\"timers\":[{\"slot\":0,\"kind\":\"snooze\",\"attempt\":1,\"due_at\":5}"),
         0, "timers[0].kind: unknown value 'snooze'"},
        {"done-1", mutate(good, "\"status\":\"completed\"", "\"status\":\"finished\""), 0, "saga.status: unknown value"},
        {"done-1", mutate(good, "\"steps\":[", "\"steps\":7,\"x\":["), 0, "unknown member 'x'"},
        {"done-1", mutate(good, "\"idx\":1", "\"idx\":0"), 0, "steps[1]: row key 0 repeats"},
        {"done-1", mutate(good, "\"idx\":1", "\"idx\":64"), 0, "steps[1].idx: 64 is not in [0, 63]"},
        {"done-1", mutate(good, "\"completions\":4", "\"completions\":-1"), 0, "saga.completions: -1"},
        {"done-1", mutate(good, "\"history\":[{\"seq\":1", "\"history\":[{\"seq\":99"), 0, "history[0].seq: 99 is not in"},
        {"done-1", detail_as_string(good), 0, "history[0].detail: must be an object, not a string"},
        {"done-1", mutate(good, "\"error_code\":\"\"", "\"error_code\":\"a\\u0000b\""), 0, "holds a NUL byte"},
        {"done-1", mutate(good, "\"definition_hash\":\"", "\"definition_hash\":\"f"), 0, "saga.definition_hash"},
        {"done-1", strdup("[1,2]"), 0, "must be a JSON object, not an array"},
        {"bad/key", strdup(good), 0, "neither a saga id"},
        {"run-1", mutate(good_run, "\"slot\":-1", "\"slot\":\"-1\""), 0, "timers[0].slot: must be an integer"},
        {"def/order_fulfillment/1", strdup(good), 0, "record: member 'definition' is missing"},
        {"def/order_fulfillment/x", strdup("{}"), 0, "must end in /VERSION"},
        {"run-1", mutate(good_run, "\"signal\":{\"status\":\"success\"", "\"signal\":{\"status\":\"maybe\""), 0,
         "steps[2].signal.status: must be success or failure"},
        {"run-1", mutate(good_run, "\"signal\":{", "\"signal\":{\"x\":1,"), 0, "steps[2].signal: unknown member 'x'"},
        {"done-1", mutate(good, "\"parent\":{", "\"parent\":{\"x\":1,"), 0, "saga.parent: unknown member 'x'"},
        {"done-1", mutate(good, "\"attempt\":1,\"partition\":2", "\"attempt\":0,\"partition\":2"), 0, "saga.parent.attempt"},
        {"done-1", mutate(good, "\"search\":{", "\"search\":{\"9x\":\"a\","), 0, "saga.search: '9x' is not a search"},
        {"done-1", mutate(good, "\"search\":{", "\"search\":{\"n\":5,"), 0, "saga.search.n: must be a string"},
        {"done-1", mutate(good, "\"search\":{\"order_id\":\"done-1\",\"customer\":\"c-1\"}", "\"search\":true"), 0,
         "saga.search: must be an object, not a boolean"},
        {"done-1", mutate(good, "\"search\":{", "\"search\":{\"a\":\"1\",\"b\":\"1\",\"c\":\"1\",\"d\":\"1\",\"e\":\"1\",\"f\":\"1\",\"g\":\"1\","), 0,
         "saga.search: 9 attributes, at most 8"},
    };
    char *before = snapshot(f);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[512] = "";
        size_t len = cases[i].len ? cases[i].len : strlen(cases[i].value);
        assert_int_equal(saga_store_begin(f->dst), 0);
        int rc = saga_changelog_apply(f->dst, cases[i].key, strlen(cases[i].key), cases[i].value, len, 500, err,
                                      sizeof err);
        if (rc == 0 || !strstr(err, cases[i].expect) || !strstr(err, cases[i].key))
            fail_msg("case %zu: rc %d, err '%s', expected '%s'", i, rc, err, cases[i].expect);
        assert_non_null(strstr(err, "(offset 500)"));
        /* the caller's transaction goes on: a good record applies after */
        assert_int_equal(saga_changelog_apply(f->dst, "done-1", 6, good, strlen(good), -1, err, sizeof err), 0);
        assert_int_equal(saga_store_commit(f->dst), 0);
        free(cases[i].value);
    }
    char *after = snapshot(f);
    assert_string_equal(before, after);
    free(before);
    free(after);
    saga_free(good);
    saga_free(good_run);
}

static void test_definition_records(void **state) {
    fixture_t *f = *state;
    restore_all(f);
    char *def, err[512];
    size_t len;
    assert_int_equal(saga_changelog_encode_definition(f->src, "order_fulfillment", 9, 0, &def, &len, err, sizeof err),
                     SAGA_ENOTFOUND);
    assert_null(def);
    assert_int_equal(saga_changelog_encode_definition(f->src, "order_fulfillment", 1, 0, &def, &len, err, sizeof err), 0);
    /* the same again: nothing changes */
    assert_int_equal(apply_one(f, "def/order_fulfillment/1", def, len, -1, err, sizeof err), 0);
    assert_tables_equal(f);
    /* another content under the same version: refused, whether its hash is
     * the record's (EEXISTS, as saga_store_put_definition) or not */
    char *other = mutate(def, "\"description\":\"", "\"description\":\"changed ");
    assert_int_equal(apply_one(f, "def/order_fulfillment/1", other, strlen(other), -1, err, sizeof err), SAGA_EPARSE);
    assert_non_null(strstr(err, "hash is not the record's"));
    json_t *rec_json = saga_json_parse(other, strlen(other), NULL, 0);
    json_t *d = json_object_get(rec_json, "definition");
    saga_def_errors_t errs = {0};
    saga_definition_t *changed = saga_definition_from_json(json_object_get(d, "json"), &errs);
    assert_non_null(changed);
    json_object_set_new(d, "hash", json_string(changed->hash));
    saga_definition_free(&changed);
    char *consistent = saga_json_dump(rec_json);
    json_decref(rec_json);
    assert_int_equal(apply_one(f, "def/order_fulfillment/1", consistent, strlen(consistent), -1, err, sizeof err),
                     SAGA_EEXISTS);
    assert_non_null(strstr(err, "stored with another hash"));
    saga_free(consistent);
    /* under another key */
    assert_int_equal(apply_one(f, "def/order_fulfillment/2", def, len, -1, err, sizeof err), SAGA_EPARSE);
    assert_non_null(strstr(err, "not the key's"));
    /* a tombstone while sagas run on it: refused */
    assert_int_equal(apply_one(f, "def/order_fulfillment/1", NULL, 0, -1, err, sizeof err), SAGA_EPARSE);
    assert_non_null(strstr(err, "stored sagas run on this definition"));
    /* a saga record naming another hash than the stored definition's */
    char *rec = encode(f, f->src, "done-1");
    char *w2 = strdup(rec);
    char *h = strstr(w2, "\"definition_hash\":\"") + strlen("\"definition_hash\":\"");
    h[0] = h[0] == '0' ? '1' : '0';
    assert_int_equal(apply_one(f, "done-1", w2, strlen(w2), -1, err, sizeof err), SAGA_EPARSE);
    assert_non_null(strstr(err, "stored with another hash"));
    assert_tables_equal(f);
    free(w2);
    free(other);
    saga_free(rec);
    saga_free(def);
}

static void test_offset_marker(void **state) {
    fixture_t *f = *state;
    int64_t off = 0;
    assert_int_equal(saga_changelog_offset_get(f->dst, &off), SAGA_ENOTFOUND);
    char *rec = encode(f, f->src, "run-1"), err[512];
    assert_int_equal(apply_one(f, "run-1", rec, strlen(rec), 41, err, sizeof err), 0);
    assert_int_equal(saga_changelog_offset_get(f->dst, &off), 0);
    assert_int_equal(off, 41);
    /* never backwards through apply */
    assert_int_equal(apply_one(f, "run-1", rec, strlen(rec), 7, err, sizeof err), 0);
    assert_int_equal(saga_changelog_offset_get(f->dst, &off), 0);
    assert_int_equal(off, 41);
    /* a refused record does not move it */
    assert_int_equal(apply_one(f, "run-1", "{", 1, 99, err, sizeof err), SAGA_EPARSE);
    assert_int_equal(saga_changelog_offset_get(f->dst, &off), 0);
    assert_int_equal(off, 41);
    /* set is exact, and survives a reopen */
    assert_int_equal(saga_store_begin(f->dst), 0);
    assert_int_equal(saga_changelog_offset_set(f->dst, 3), 0);
    assert_int_equal(saga_store_commit(f->dst), 0);
    saga_store_close(&f->dst);
    f->dst = saga_store_open(f->dst_path, NULL, err, sizeof err);
    assert_non_null(f->dst);
    assert_int_equal(saga_changelog_offset_get(f->dst, &off), 0);
    assert_int_equal(off, 3);
    saga_free(rec);
}

static void test_apply_needs_a_transaction(void **state) {
    fixture_t *f = *state;
    char *rec = encode(f, f->src, "run-1"), err[512];
    assert_int_equal(saga_changelog_apply(f->dst, "run-1", 5, rec, strlen(rec), 1, err, sizeof err), SAGA_ESTATE);
    assert_non_null(strstr(err, "outside a transaction"));
    assert_int_equal(saga_store_saga_exists(f->dst, "run-1"), 0);
    saga_free(rec);
}

static void test_encode_missing_saga_and_size_limit(void **state) {
    fixture_t *f = *state;
    char *out = (char *)1, err[512];
    size_t len = 1;
    assert_int_equal(saga_changelog_encode(f->src, "nobody", 0, &out, &len, err, sizeof err), SAGA_ENOTFOUND);
    assert_null(out);
    char *rec = encode(f, f->src, "cfail-1");
    size_t full = strlen(rec) + strlen("cfail-1");
    /* exactly at the limit passes, one byte less fails, with a clear reason */
    assert_int_equal(saga_changelog_encode(f->src, "cfail-1", full + SAGA_MESSAGE_RESERVE, &out, &len, err, sizeof err), 0);
    saga_free(out);
    assert_int_equal(saga_changelog_encode(f->src, "cfail-1", full + SAGA_MESSAGE_RESERVE - 1, &out, &len, err, sizeof err),
                     SAGA_EINVAL);
    assert_null(out);
    assert_non_null(strstr(err, "cfail-1"));
    assert_non_null(strstr(err, "--max-message-bytes"));
    saga_free(rec);
}

/* Bulk mode: journal off while restoring, WAL and a synced file after;
 * what was restored is there after a reopen. */
static void test_bulk_restore_then_wal(void **state) {
    fixture_t *f = *state;
    char err[512];
    assert_int_equal(saga_changelog_bulk_begin(f->dst, err, sizeof err), 0);
    restore_all(f);
    assert_int_equal(saga_changelog_bulk_end(f->dst, "FULL", err, sizeof err), 0);
    assert_int_equal(saga_changelog_bulk_end(f->dst, "SOMETIMES", err, sizeof err), SAGA_EINVAL);
    saga_store_close(&f->dst);
    char *mode = rows_of(f->dst_path, "PRAGMA journal_mode");
    assert_string_equal(mode, "3:wal\n");
    free(mode);
    f->dst = saga_store_open(f->dst_path, NULL, err, sizeof err);
    assert_non_null(f->dst);
    assert_tables_equal(f);
    assert_loads_equal(f, f->reg);
}

/* A batch in any key order, two records of one saga in it: the newer wins;
 * one corrupt record rolls the whole batch back. */
static void test_apply_batch_sorts_and_is_atomic(void **state) {
    fixture_t *f = *state;
    saga_t s;
    start(f, &s, "later-1");
    char *old = encode(f, f->src, "later-1"), err[512];
    for (int i = 0; i < 4; i++) reply(f, &s, i, SAGA_KIND_ACTION, SAGA_REPLY_SUCCESS);
    char *last = encode(f, f->src, "later-1");
    saga_clear(&s);
    char *recs_text[NSAGAS];
    saga_changelog_record_t recs[NSAGAS + 3];
    size_t n = 0;
    recs[n++] = (saga_changelog_record_t){"later-1", last, 7, strlen(last), 20};
    for (int i = NSAGAS - 1; i >= 0; i--) { /* reverse key order */
        recs_text[i] = encode(f, f->src, g_ids[i]);
        recs[n++] = (saga_changelog_record_t){g_ids[i], recs_text[i], strlen(g_ids[i]), strlen(recs_text[i]), 10 + i};
    }
    recs[n++] = (saga_changelog_record_t){"later-1", old, 7, strlen(old), 5};
    char *def, key[64];
    size_t dlen;
    assert_int_equal(saga_changelog_encode_definition(f->src, "order_fulfillment", 1, 0, &def, &dlen, err, sizeof err), 0);
    saga_changelog_definition_key("order_fulfillment", 1, key, sizeof key);
    recs[n++] = (saga_changelog_record_t){key, def, strlen(key), dlen, 1};
    /* with one corrupt record: nothing at all */
    saga_changelog_record_t bad = recs[3];
    recs[3].value_len = 10;
    assert_int_equal(saga_changelog_apply_batch(f->dst, recs, n, err, sizeof err), SAGA_EPARSE);
    assert_non_null(strstr(err, "value is not JSON"));
    char *none = rows_of(f->dst_path, "SELECT (SELECT count(*) FROM sagas) + (SELECT count(*) FROM definitions)");
    assert_string_equal(none, "1:0\n");
    free(none);
    for (size_t i = 0; i < n; i++)
        if (recs[i].value == bad.value) recs[i].value_len = bad.value_len;
    assert_int_equal(saga_changelog_apply_batch(f->dst, recs, n, err, sizeof err), 0);
    assert_tables_equal(f);
    int64_t off;
    assert_int_equal(saga_changelog_offset_get(f->dst, &off), 0);
    assert_int_equal(off, 20);
    for (int i = 0; i < NSAGAS; i++) saga_free(recs_text[i]);
    saga_free(def);
    saga_free(old);
    saga_free(last);
}

static void test_pause_records(void **state) {
    fixture_t *f = *state;
    char key[300], err[512];
    assert_int_equal(saga_changelog_pause_key("payment.commands", key, sizeof key), (int)strlen("pause/payment.commands"));
    assert_int_equal(saga_changelog_key_kind(key, strlen(key)), SAGA_CHANGELOG_KEY_PAUSE);
    assert_int_equal(saga_changelog_key_kind("pause/a b", 9), SAGA_CHANGELOG_KEY_INVALID);
    assert_int_equal(saga_changelog_key_kind("pause/", 6), SAGA_CHANGELOG_KEY_INVALID);
    char *v = saga_changelog_encode_pause("payment.commands", 1700000000123, "provider outage");
    assert_non_null(v);
    assert_int_equal(saga_store_begin(f->dst), 0);
    assert_int_equal(saga_changelog_apply(f->dst, key, strlen(key), v, strlen(v), 7, err, sizeof err), 0);
    assert_int_equal(saga_store_commit(f->dst), 0);
    char *rows = rows_of(f->dst_path, "SELECT topic, paused_at, reason FROM paused_topics");
    assert_string_equal(rows, "3:payment.commands|1:1700000000123|3:provider outage\n");
    free(rows);
    /* refused, changing nothing: another topic in the value, a bad time, an unknown member */
    struct {
        const char *from, *to, *says;
    } bad[] = {{"\"topic\":\"payment.commands\"", "\"topic\":\"other\"", "is not the record's key"},
               {"\"paused_at\":1700000000123", "\"paused_at\":-1", "pause.paused_at"},
               {"\"reason\":", "\"x\":1,\"reason\":", "unknown member 'x'"}};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        char *m = mutate(v, bad[k].from, bad[k].to);
        assert_int_equal(saga_store_begin(f->dst), 0);
        int rc = saga_changelog_apply(f->dst, key, strlen(key), m, strlen(m), 8, err, sizeof err);
        if (rc == 0 || !strstr(err, bad[k].says)) fail_msg("case %zu: rc %d '%s'", k, rc, err);
        assert_int_equal(saga_store_commit(f->dst), 0);
        free(m);
    }
    /* the tombstone resumes it */
    assert_int_equal(saga_store_begin(f->dst), 0);
    assert_int_equal(saga_changelog_apply(f->dst, key, strlen(key), NULL, 0, 9, err, sizeof err), 0);
    assert_int_equal(saga_store_commit(f->dst), 0);
    rows = rows_of(f->dst_path, "SELECT count(*) FROM paused_topics");
    assert_string_equal(rows, "1:0\n");
    free(rows);
    saga_free(v);
}

int main(int argc, char **argv) {
    saga_test_filter(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_restore_is_row_identical, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pause_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restore_without_definition_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tombstone_removes_the_saga, setup, teardown),
        cmocka_unit_test_setup_teardown(test_same_record_twice_is_idempotent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_older_then_newer_gives_newer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_catch_up_never_goes_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_records_are_refused_and_change_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_definition_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_offset_marker, setup, teardown),
        cmocka_unit_test_setup_teardown(test_apply_needs_a_transaction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_encode_missing_saga_and_size_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bulk_restore_then_wal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_apply_batch_sorts_and_is_atomic, setup, teardown),
    };
    return cmocka_run_group_tests_name("changelog", tests, NULL, NULL);
}
