/* The changelog tests' fixture (test_changelog_fixture.h). */
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

#include "test_changelog_fixture.h"

const char *const g_ids[NSAGAS] = {"run-1", "done-1", "comp-1", "compd-1", "cfail-1", "retried-1", "abort-1",
                                           "unknown-1", "sched-1"};

/* ---- driving sagas through the engine ------------------------------------------ */

char *record_of(saga_store_t *st, const char *id) {
    char *out = NULL, err[512] = "";
    size_t len = 0;
    if (saga_changelog_encode(st, id, 0, &out, &len, err, sizeof err)) fail_msg("%s: %s", id, err);
    return out;
}

/* src encodes as sagad's relay does (the history cache on, fed by the store
 * as it writes the rows): the same bytes as a plain read, and for a saga
 * that was live before the change, without reading its history again. */
void expect_cached_record(fixture_t *f, const char *id, bool was_live) {
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

void apply(fixture_t *f, saga_t *s, const saga_event_t *ev) {
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

void start(fixture_t *f, saga_t *s, const char *id) {
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

void reply(fixture_t *f, saga_t *s, int step, saga_command_kind_t kind, saga_reply_status_t status) {
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
void fire(fixture_t *f, saga_t *s, int slot) {
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
void fail_compensation(fixture_t *f, saga_t *s) {
    for (int guard = 0; s->status != SAGA_STATUS_COMPENSATION_FAILED; guard++) {
        assert_true(guard < 50);
        if (s->steps[0].status == SAGA_STEP_COMPENSATING) reply(f, s, 0, SAGA_KIND_COMPENSATION, SAGA_REPLY_FAILURE);
        else fire(f, s, 0);
    }
}

void build_sagas(fixture_t *f) {
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

int setup(void **state) {
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

int teardown(void **state) {
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
char *rows_of(const char *path, const char *sql) {
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

void assert_tables_equal(fixture_t *f) {
    for (size_t t = 0; t < sizeof g_tables / sizeof g_tables[0]; t++) {
        char *a = rows_of(f->src_path, g_tables[t]), *b = rows_of(f->dst_path, g_tables[t]);
        if (strcmp(a, b)) fprintf(stderr, "%s differs:\n--- source\n%s--- restored\n%s", g_tables[t], a, b);
        assert_string_equal(a, b);
        free(a);
        free(b);
    }
}

/* A snapshot of every table of the destination. */
char *snapshot(fixture_t *f) {
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

char *encode(fixture_t *f, saga_store_t *st, const char *id) {
    char *out, err[512];
    size_t len;
    int rc = saga_changelog_encode(st, id, 0, &out, &len, err, sizeof err);
    if (rc) fprintf(stderr, "%s\n", err);
    assert_int_equal(rc, 0);
    assert_int_equal(strlen(out), len);
    (void)f;
    return out;
}

int apply_one(fixture_t *f, const char *key, const char *value, size_t len, int64_t offset, char *err,
                     size_t errlen) {
    assert_int_equal(saga_store_begin(f->dst), 0);
    int rc = saga_changelog_apply(f->dst, key, strlen(key), value, len, offset, err, errlen);
    assert_int_equal(saga_store_commit(f->dst), 0);
    return rc;
}

/* With SAGA_CHANGELOG_SEEDS=DIR, writes each record as DIR/KEY ("KEY\nVALUE"):
 * how tests/fuzz/corpus/fuzz_changelog/ was made. */
void write_seed(const char *key, const char *value, size_t len) {
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
void restore_all(fixture_t *f) {
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

void assert_loads_equal(fixture_t *f, saga_registry_t *dst_reg) {
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

/* Replaces the first occurrence of from in rec by to (a new string). */
char *mutate(const char *rec, const char *from, const char *to) {
    const char *p = strstr(rec, from);
    assert_non_null(p);
    int at = (int)(p - rec);
    const char *rest = p + strlen(from);
    char *out = malloc(strlen(rec) + strlen(to) + 1);
    sprintf(out, "%.*s%s%s", at, rec, to, rest);
    return out;
}
