/* The SQLite store on real files: migrations, saga round trip, history,
 * outbox, dedup, timers, definition versions. */
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
#include <sys/wait.h>
#include <unistd.h>

#include "saga_alloc.h"
#include "saga_error.h"
#include "replay.h"
#include "store.h"

typedef struct {
    char dir[64], path[128];
    saga_store_t *st;
    saga_registry_t *reg;
    const saga_definition_t *def;
} fixture_t;

static saga_definition_t *make_def(const char *hash) {
    saga_definition_t *def = saga_calloc(1, sizeof *def);
    snprintf(def->name, sizeof def->name, "order");
    def->version = 1;
    def->step_count = 2;
    snprintf(def->hash, sizeof def->hash, "%s", hash);
    def->source = json_pack("{s:s}", "name", "order");
    for (int i = 0; i < 2; i++) {
        saga_step_def_t *s = &def->steps[i];
        snprintf(s->name, sizeof s->name, "s%d", i);
        snprintf(s->topic, sizeof s->topic, "t%d", i);
        snprintf(s->action, sizeof s->action, "a%d", i);
        snprintf(s->compensation, sizeof s->compensation, "c%d", i);
        s->payload = json_object();
        s->timeout_ms = 1000;
        s->retry = (saga_retry_policy_t){3, 10, 2, 100, SAGA_JITTER_NONE};
        s->compensation_retry = s->retry;
        if (i) { s->after[0] = 0; s->after_count = 1; }
    }
    return def;
}

static int setup(void **state) {
    fixture_t *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/saga-store-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/sagad.db", f->dir);
    char err[256];
    f->st = saga_store_open(f->path, NULL, err, sizeof err);
    assert_non_null(f->st);
    f->reg = saga_registry_new();
    assert_int_equal(saga_registry_add(f->reg, make_def("h1")), 0);
    f->def = saga_registry_get(f->reg, "order", 1);
    assert_non_null(f->def);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture_t *f = *state;
    saga_store_close(&f->st);
    saga_registry_free(&f->reg);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    if (system(cmd) != 0) return -1;
    free(f);
    return 0;
}

/* Starts a saga through the engine and saves it in one transaction, its
 * events published at `level`. */
static void start_saga_at(fixture_t *f, const char *id, saga_t *s, int64_t now, saga_events_level_t level) {
    json_t *input = json_pack("{s:s}", "order_id", id);
    saga_init(s, id, f->def, input, "00-abc-def-01", now);
    json_decref(input);
    saga_effects_t fx;
    saga_effects_init(&fx);
    uint64_t rng = 1;
    char why[128];
    saga_engine_config_t cfg = {.replies_topic = "saga.replies", .events_level = level};
    saga_event_t ev = {.kind = SAGA_EV_START};
    assert_int_equal(saga_engine_apply(&cfg, s, &ev, now, &rng, &fx, why, sizeof why), 0);
    assert_int_equal(saga_store_begin(f->st), 0);
    assert_int_equal(saga_store_insert(f->st, s, "m-1"), 0);
    assert_int_equal(saga_store_save(f->st, s, &fx, "saga.events", now), 0);
    assert_int_equal(saga_store_commit(f->st), 0);
    saga_effects_free(&fx);
}

static void start_saga(fixture_t *f, const char *id, saga_t *s, int64_t now) {
    start_saga_at(f, id, s, now, SAGA_EVENTS_ALL);
}

static long long count(fixture_t *f, const char *sql) {
    sqlite3 *db;
    assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *q;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    long long n = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    sqlite3_close(db);
    return n;
}

static void test_schema_version_and_wal(void **state) {
    fixture_t *f = *state;
    assert_true(count(f, "PRAGMA user_version") >= 1);
    sqlite3 *db;
    sqlite3_open(f->path, &db);
    sqlite3_stmt *q;
    sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &q, NULL);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(q, 0), "wal");
    sqlite3_finalize(q);
    sqlite3_close(db);
}

static void test_reopen_keeps_data_and_does_not_remigrate(void **state) {
    fixture_t *f = *state;
    saga_t s;
    start_saga(f, "s-1", &s, 1000);
    saga_clear(&s);
    saga_store_close(&f->st);
    char err[256];
    f->st = saga_store_open(f->path, NULL, err, sizeof err);
    assert_non_null(f->st);
    assert_int_equal(saga_store_saga_exists(f->st, "s-1"), 1);
    assert_int_equal(saga_store_saga_exists(f->st, "s-2"), 0);
}

static void test_saga_round_trip(void **state) {
    fixture_t *f = *state;
    saga_t s, loaded;
    start_saga(f, "s-1", &s, 1000);
    char err[256];
    assert_int_equal(saga_store_load(f->st, f->reg, "s-1", &loaded, err, sizeof err), 0);
    assert_string_equal(loaded.id, "s-1");
    assert_ptr_equal(loaded.def, f->def);
    assert_int_equal(loaded.status, SAGA_STATUS_RUNNING);
    assert_int_equal(loaded.seq, s.seq);
    assert_string_equal(loaded.traceparent, "00-abc-def-01");
    assert_string_equal(json_string_value(json_object_get(loaded.input, "order_id")), "s-1");
    assert_int_equal(loaded.steps[0].status, SAGA_STEP_RUNNING);
    assert_int_equal(loaded.steps[0].attempt, 1);
    assert_int_equal(loaded.steps[1].status, SAGA_STEP_PENDING);
    saga_clear(&loaded);
    saga_clear(&s);
    assert_int_equal(saga_store_load(f->st, f->reg, "nope", &loaded, err, sizeof err), SAGA_ENOTFOUND);
}

static void test_effects_become_history_outbox_and_timers(void **state) {
    fixture_t *f = *state;
    saga_t s;
    start_saga(f, "s-1", &s, 1000);
    /* saga.started + step.started events, one command */
    assert_int_equal(count(f, "SELECT count(*) FROM history WHERE saga_id='s-1'"), 2);
    assert_int_equal(count(f, "SELECT max(seq) FROM history WHERE saga_id='s-1'"), s.seq);
    assert_int_equal(count(f, "SELECT count(*) FROM outbox WHERE topic='t0'"), 1);
    assert_int_equal(count(f, "SELECT count(*) FROM outbox WHERE topic='saga.events'"), 2);
    assert_int_equal(count(f, "SELECT count(*) FROM timers WHERE saga_id='s-1' AND slot=0"), 1);
    assert_int_equal(saga_store_outbox_backlog(f->st), 3);
    saga_clear(&s);
}

/* --events terminal: the history has every event, saga.events none of a start's */
static void test_unpublished_events_are_history_only(void **state) {
    fixture_t *f = *state;
    saga_t s;
    start_saga_at(f, "s-q", &s, 1000, SAGA_EVENTS_TERMINAL);
    assert_int_equal(count(f, "SELECT count(*) FROM history WHERE saga_id='s-q'"), 2);
    assert_int_equal(count(f, "SELECT count(*) FROM outbox WHERE topic='saga.events'"), 0);
    assert_int_equal(count(f, "SELECT count(*) FROM outbox WHERE topic='t0'"), 1);
    saga_clear(&s);
    start_saga_at(f, "s-r", &s, 1000, SAGA_EVENTS_SAGA); /* saga.started only */
    assert_int_equal(count(f, "SELECT count(*) FROM outbox WHERE topic='saga.events'"), 1);
    saga_clear(&s);
}

static int collect(const saga_outbox_row_t *row, void *user) {
    int64_t *ids = user;
    ids[ids[0] + 1] = row->id;
    ids[0]++;
    assert_non_null(row->topic);
    assert_true(row->payload_len > 0);
    return 0;
}

static void test_outbox_scan_and_delete(void **state) {
    fixture_t *f = *state;
    saga_t s;
    start_saga(f, "s-1", &s, 1000);
    saga_clear(&s);
    int64_t ids[16] = {0};
    assert_int_equal(saga_store_outbox_scan(f->st, 0, 10, collect, ids), 3);
    assert_true(ids[1] < ids[2] && ids[2] < ids[3]);
    int64_t after[16] = {0};
    assert_int_equal(saga_store_outbox_scan(f->st, ids[2], 10, collect, after), 1);
    assert_int_equal(after[1], ids[3]);
    assert_int_equal(saga_store_outbox_delete(f->st, &ids[1], 2), 0);
    assert_int_equal(saga_store_outbox_backlog(f->st), 1);
}

/* The relay walks ids upwards: an id must never be handed out twice, even
 * after every row was deleted. */
static void test_outbox_ids_never_reused(void **state) {
    fixture_t *f = *state;
    assert_int_equal(saga_store_outbox_add(f->st, "t", "k", "{}", "a", 1, 1), 0);
    assert_int_equal(saga_store_outbox_add(f->st, "t", "k", "{}", "b", 1, 1), 0);
    int64_t ids[8] = {0};
    assert_int_equal(saga_store_outbox_scan(f->st, 0, 10, collect, ids), 2);
    assert_int_equal(saga_store_outbox_delete(f->st, &ids[1], 2), 0);
    assert_int_equal(saga_store_outbox_add(f->st, "t", "k", "{}", "c", 1, 1), 0);
    int64_t again[8] = {0};
    assert_int_equal(saga_store_outbox_scan(f->st, ids[2], 10, collect, again), 1);
    assert_true(again[1] > ids[2]);
}

/* Acknowledgements come in any order and with gaps: only the acknowledged
 * rows go, whatever runs they form. */
static void test_outbox_delete_only_acknowledged_ids(void **state) {
    fixture_t *f = *state;
    for (int i = 0; i < 9; i++) assert_int_equal(saga_store_outbox_add(f->st, "t", "k", "{}", "x", 1, 1), 0);
    int64_t ids[16] = {0};
    assert_int_equal(saga_store_outbox_scan(f->st, 0, 16, collect, ids), 9);
    int64_t acked[] = {ids[9], ids[2], ids[1], ids[5], ids[2], ids[6], ids[4]}; /* rows 1,2,4,5,6,9 */
    assert_int_equal(saga_store_outbox_delete(f->st, acked, 7), 0);
    int64_t left[16] = {0};
    assert_int_equal(saga_store_outbox_scan(f->st, 0, 16, collect, left), 3);
    assert_int_equal(left[1], ids[3]);
    assert_int_equal(left[2], ids[7]);
    assert_int_equal(left[3], ids[8]);
}

static void test_dedup_first_then_duplicate(void **state) {
    fixture_t *f = *state;
    assert_int_equal(saga_store_dedup(f->st, "replies", "r-1", 1), 1);
    assert_int_equal(saga_store_dedup(f->st, "replies", "r-1", 2), 0);
    assert_int_equal(saga_store_dedup(f->st, "start", "r-1", 2), 1); /* per consumer */
}

/* The history rows alone rebuild the stored state, now and in the past. */
static void test_state_at_replays_history(void **state) {
    fixture_t *f = *state;
    saga_t s;
    start_saga(f, "s-1", &s, 1000);
    /* s0 succeeds at t=2000: one more transaction */
    saga_effects_t fx;
    saga_effects_init(&fx);
    uint64_t rng = 1;
    char why[128], err[256], diff[256];
    saga_engine_config_t cfg = {.replies_topic = "saga.replies"};
    json_t *out = json_pack("{s:s}", "id", "x");
    saga_event_t ev = {.kind = SAGA_EV_REPLY, .step = 0, .attempt = 1, .reply_status = SAGA_REPLY_SUCCESS, .output = out};
    assert_int_equal(saga_engine_apply(&cfg, &s, &ev, 2000, &rng, &fx, why, sizeof why), 0);
    assert_int_equal(saga_store_begin(f->st), 0);
    assert_int_equal(saga_store_save(f->st, &s, &fx, "saga.events", 2000), 0);
    assert_int_equal(saga_store_commit(f->st), 0);
    saga_t loaded, replayed, past;
    assert_int_equal(saga_store_load(f->st, f->reg, "s-1", &loaded, err, sizeof err), 0);
    assert_int_equal(saga_store_state_at(f->st, f->reg, "s-1", INT64_MAX, &replayed, err, sizeof err), 0);
    if (!saga_equal(&loaded, &replayed, diff, sizeof diff)) fail_msg("replay differs: %s", diff);
    assert_string_equal(replayed.traceparent, "00-abc-def-01");
    assert_int_equal(saga_store_state_at(f->st, f->reg, "s-1", 1500, &past, err, sizeof err), 0);
    assert_int_equal(past.steps[0].status, SAGA_STEP_RUNNING);
    assert_int_equal(replayed.steps[0].status, SAGA_STEP_SUCCEEDED);
    saga_clear(&past);
    assert_int_equal(saga_store_state_at(f->st, f->reg, "s-1", 999, &past, err, sizeof err) == 0, 0);
    assert_int_equal(saga_store_state_at(f->st, f->reg, "nope", INT64_MAX, &past, err, sizeof err), SAGA_ENOTFOUND);
    json_decref(out);
    saga_effects_free(&fx);
    saga_clear(&s);
    saga_clear(&loaded);
    saga_clear(&replayed);
}

static void test_dedup_prune_removes_only_old_rows(void **state) {
    fixture_t *f = *state;
    assert_int_equal(saga_store_dedup(f->st, "replies", "old-1", 100), 1);
    assert_int_equal(saga_store_dedup(f->st, "replies", "old-2", 200), 1);
    assert_int_equal(saga_store_dedup(f->st, "start", "new-1", 5000), 1);
    assert_int_equal(saga_store_prune_dedup(f->st, 1000, 1), 1); /* the limit holds */
    assert_int_equal(saga_store_prune_dedup(f->st, 1000, 100), 1);
    assert_int_equal(saga_store_prune_dedup(f->st, 1000, 100), 0);
    assert_int_equal(count(f, "SELECT count(*) FROM dedup"), 1);
    assert_int_equal(saga_store_dedup(f->st, "start", "new-1", 6000), 0); /* still remembered */
    assert_int_equal(saga_store_dedup(f->st, "replies", "old-1", 6000), 1); /* forgotten */
}

static void exec_sql(fixture_t *f, const char *sql) {
    sqlite3 *db;
    assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) fail_msg("%s: %s", sql, msg);
    sqlite3_close(db);
}

static long long count_of(fixture_t *f, const char *fmt, const char *id) {
    char sql[256];
    snprintf(sql, sizeof sql, fmt, id);
    return count(f, sql);
}

/* Retention: finished sagas (completed, compensated) older than the cut-off
 * go with their steps, history and timers, at most `limit` per call;
 * compensation_failed (an operator's), running and recent sagas stay. */
static int tombstone_seen;
/* Counts the outbox rows read back as tombstones (payload NULL) of partition 3. */
static int see_tombstone(const saga_outbox_row_t *row, void *user) {
    (void)user;
    if (row->payload == NULL) {
        assert_int_equal(row->partition, 3);
        assert_string_equal(row->key, "recent-1");
        tombstone_seen++;
    } else {
        assert_int_equal(row->partition, -1);
    }
    return 0;
}

static void test_retention_deletes_finished_sagas_in_chunks(void **state) {
    fixture_t *f = *state;
    const char *ids[] = {"done-1", "done-2", "done-3", "comp-1", "stuck-1", "recent-1", "running-1"};
    saga_t s;
    for (int i = 0; i < 7; i++) {
        start_saga(f, ids[i], &s, 100);
        saga_clear(&s);
    }
    exec_sql(f, "UPDATE sagas SET status='completed', updated_at=100 WHERE id LIKE 'done-%';"
                "UPDATE sagas SET status='compensated', updated_at=200 WHERE id='comp-1';"
                "UPDATE sagas SET status='compensation_failed', updated_at=100 WHERE id='stuck-1';"
                "UPDATE sagas SET status='completed', updated_at=5000 WHERE id='recent-1';");
    assert_true(count(f, "SELECT count(*) FROM history WHERE saga_id='done-1'") > 0);
    assert_true(count(f, "SELECT count(*) FROM steps WHERE saga_id='done-1'") > 0);
    assert_true(count(f, "SELECT count(*) FROM timers WHERE saga_id='done-1'") > 0);

    assert_int_equal(saga_store_prune_finished(f->st, 1000, 3, NULL, -1, 0), 3); /* the limit holds */
    assert_int_equal(count(f, "SELECT count(*) FROM sagas"), 4);
    assert_int_equal(saga_store_prune_finished(f->st, 1000, 3, NULL, -1, 0), 1);
    assert_int_equal(saga_store_prune_finished(f->st, 1000, 3, NULL, -1, 0), 0);
    const char *gone[] = {"done-1", "done-2", "done-3", "comp-1"};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(count_of(f, "SELECT count(*) FROM sagas WHERE id='%s'", gone[i]), 0);
        assert_int_equal(count_of(f, "SELECT count(*) FROM steps WHERE saga_id='%s'", gone[i]), 0);
        assert_int_equal(count_of(f, "SELECT count(*) FROM history WHERE saga_id='%s'", gone[i]), 0);
        assert_int_equal(count_of(f, "SELECT count(*) FROM timers WHERE saga_id='%s'", gone[i]), 0);
    }
    const char *kept[] = {"stuck-1", "recent-1", "running-1"};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(count_of(f, "SELECT count(*) FROM sagas WHERE id='%s'", kept[i]), 1);
        assert_true(count_of(f, "SELECT count(*) FROM steps WHERE saga_id='%s'", kept[i]) > 0);
        assert_true(count_of(f, "SELECT count(*) FROM history WHERE saga_id='%s'", kept[i]) > 0);
        assert_int_equal(saga_store_saga_exists(f->st, kept[i]), 1);
    }
    assert_int_equal(saga_store_saga_exists(f->st, "done-1"), 0);
    /* A later cut-off takes the recent one too; never the stuck one. */
    /* ... with a changelog topic: a tombstone outbox row (NULL value, the
     * shard's partition) in the same transaction. */
    assert_int_equal(count(f, "SELECT count(*) FROM outbox WHERE topic='saga.changelog'"), 0);
    assert_int_equal(saga_store_prune_finished(f->st, 6000, 1000, "saga.changelog", 3, 7000), 1);
    assert_int_equal(count(f, "SELECT count(*) FROM outbox WHERE topic='saga.changelog' AND key='recent-1'"
                              " AND tombstone=1 AND kafka_partition=3 AND length(payload)=0"), 1);
    tombstone_seen = 0;
    assert_true(saga_store_outbox_scan(f->st, 0, 100000, see_tombstone, NULL) > 0);
    assert_int_equal(tombstone_seen, 1);
    assert_int_equal(saga_store_prune_finished(f->st, INT64_MAX, 1000, NULL, -1, 0), 0);
    assert_int_equal(count(f, "SELECT count(*) FROM sagas WHERE id IN ('stuck-1', 'running-1')"), 2);
}

/* A big backlog goes in bounded chunks, each its own transaction. */
static void test_retention_backlog_in_bounded_chunks(void **state) {
    fixture_t *f = *state;
    saga_t s;
    char id[32];
    for (int i = 0; i < 2500; i++) {
        snprintf(id, sizeof id, "old-%d", i);
        start_saga(f, id, &s, 100);
        saga_clear(&s);
    }
    exec_sql(f, "UPDATE sagas SET status='completed', updated_at=100");
    int passes = 0, total = 0, n;
    while ((n = saga_store_prune_finished(f->st, 1000, 1000, NULL, -1, 0)) > 0) {
        assert_true(n <= 1000);
        total += n;
        passes++;
    }
    assert_int_equal(n, 0);
    assert_int_equal(total, 2500);
    assert_int_equal(passes, 3);
    assert_int_equal(count(f, "SELECT (SELECT count(*) FROM sagas) + (SELECT count(*) FROM steps) +"
                              " (SELECT count(*) FROM history) + (SELECT count(*) FROM timers)"), 0);
}

/* One sagad per database: a second process cannot take the lock, and is
 * told who holds it; once the holder lets go, it can. */
static void test_lock_is_exclusive_and_names_its_holder(void **state) {
    fixture_t *f = *state;
    char err[512];
    int fd = saga_store_lock(f->path, err, sizeof err);
    assert_true(fd >= 0);
    char lock_path[160], pid_text[32] = "";
    snprintf(lock_path, sizeof lock_path, "%s.lock", f->path);
    FILE *lf = fopen(lock_path, "r");
    assert_non_null(lf);
    assert_non_null(fgets(pid_text, sizeof pid_text, lf));
    fclose(lf);
    assert_int_equal(atoi(pid_text), (int)getpid());
    for (int round = 0; round < 2; round++) {
        int pipefd[2];
        assert_int_equal(pipe(pipefd), 0);
        pid_t child = fork();
        assert_true(child >= 0);
        if (child == 0) {
            char cerr[512] = "";
            int cfd = saga_store_lock(f->path, cerr, sizeof cerr);
            if (write(pipefd[1], cerr, strlen(cerr) + 1) < 0) _exit(3);
            _exit(cfd >= 0 ? 0 : 1);
        }
        close(pipefd[1]);
        char got[512] = "";
        ssize_t r = read(pipefd[0], got, sizeof got - 1);
        close(pipefd[0]);
        assert_true(r > 0);
        int status = 0;
        assert_int_equal(waitpid(child, &status, 0), child);
        assert_true(WIFEXITED(status));
        if (round == 0) {
            assert_int_equal(WEXITSTATUS(status), 1);
            char want[64];
            snprintf(want, sizeof want, "another sagad (pid %d)", (int)getpid());
            if (!strstr(got, want) || !strstr(got, lock_path)) fail_msg("lock error '%s'", got);
            close(fd); /* let go */
        } else {
            assert_int_equal(WEXITSTATUS(status), 0);
        }
    }
}

static void test_due_timers_in_order_and_delete(void **state) {
    fixture_t *f = *state;
    saga_t a, b;
    start_saga(f, "s-a", &a, 1000);
    start_saga(f, "s-b", &b, 500);
    assert_int_equal(saga_store_next_timer_due(f->st), 1500);
    saga_timer_row_t rows[4];
    assert_int_equal(saga_store_due_timers(f->st, 1499, rows, 4), 0);
    assert_int_equal(saga_store_due_timers(f->st, 5000, rows, 4), 2);
    assert_string_equal(rows[0].saga_id, "s-b");
    assert_int_equal(rows[0].kind, SAGA_TIMER_STEP_TIMEOUT);
    assert_int_equal(rows[0].attempt, 1);
    assert_int_equal(saga_store_timer_delete(f->st, &rows[0]), 0);
    assert_int_equal(saga_store_next_timer_due(f->st), 2000);
    saga_clear(&a);
    saga_clear(&b);
}

static void test_definition_changed_under_same_version_is_refused(void **state) {
    fixture_t *f = *state;
    char err[256] = "";
    assert_int_equal(saga_store_put_definition(f->st, f->def, 1, err, sizeof err), 0);
    assert_int_equal(saga_store_put_definition(f->st, f->def, 2, err, sizeof err), 0); /* same hash */
    saga_definition_t *changed = make_def("h2");
    assert_int_equal(saga_store_put_definition(f->st, changed, 3, err, sizeof err), SAGA_EEXISTS);
    assert_non_null(strstr(err, "order version 1"));
    saga_definition_free(&changed);
}

static void test_rollback_discards_everything(void **state) {
    fixture_t *f = *state;
    assert_int_equal(saga_store_begin(f->st), 0);
    assert_int_equal(saga_store_dedup(f->st, "replies", "r-9", 1), 1);
    assert_int_equal(saga_store_outbox_add(f->st, "t", "k", "{}", "x", 1, 1), 0);
    saga_store_rollback(f->st);
    assert_int_equal(saga_store_outbox_backlog(f->st), 0);
    assert_int_equal(saga_store_dedup(f->st, "replies", "r-9", 1), 1);
}

static void test_bad_synchronous_is_refused(void **state) {
    fixture_t *f = *state;
    char err[256], path[160];
    snprintf(path, sizeof path, "%s/other.db", f->dir);
    saga_store_options_t o = {.synchronous = "SOMETIMES"};
    assert_null(saga_store_open(path, &o, err, sizeof err));
    assert_non_null(strstr(err, "SOMETIMES"));
}

/* Issue 13.6: a start's message id stays with its saga after the dedup row
 * is pruned; the lookup uses the index of migration 4. */
static void test_start_message_id_remembered_after_prune(void **state) {
    fixture_t *f = *state;
    saga_t s;
    assert_int_equal(saga_store_dedup(f->st, "start", "m-1", 100), 1);
    start_saga(f, "s-1", &s, 100); /* stored with start message id "m-1" */
    saga_clear(&s);
    assert_int_equal(saga_store_prune_dedup(f->st, 1000, 100), 1);
    assert_int_equal(saga_store_dedup(f->st, "start", "m-1", 2000), 1); /* dedup forgot it */
    assert_int_equal(saga_store_start_seen(f->st, "m-1"), 1);          /* the saga did not */
    assert_int_equal(saga_store_start_seen(f->st, "m-2"), 0);
    assert_true(count(f, "PRAGMA user_version") >= 4);
    sqlite3 *db;
    assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *q;
    assert_int_equal(sqlite3_prepare_v2(db, "EXPLAIN QUERY PLAN SELECT 1 FROM sagas WHERE start_message_id = 'm-1' LIMIT 1",
                                        -1, &q, NULL),
                     SQLITE_OK);
    bool indexed = false;
    while (sqlite3_step(q) == SQLITE_ROW)
        if (strstr((const char *)sqlite3_column_text(q, 3), "sagas_start_message")) indexed = true;
    sqlite3_finalize(q);
    sqlite3_close(db);
    assert_true(indexed);
}

int main(int argc, char **argv) {
    saga_test_filter(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_schema_version_and_wal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_message_id_remembered_after_prune, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_keeps_data_and_does_not_remigrate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_saga_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_effects_become_history_outbox_and_timers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unpublished_events_are_history_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outbox_scan_and_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outbox_delete_only_acknowledged_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outbox_ids_never_reused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dedup_first_then_duplicate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dedup_prune_removes_only_old_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_state_at_replays_history, setup, teardown),
        cmocka_unit_test_setup_teardown(test_due_timers_in_order_and_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention_deletes_finished_sagas_in_chunks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention_backlog_in_bounded_chunks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_is_exclusive_and_names_its_holder, setup, teardown),
        cmocka_unit_test_setup_teardown(test_definition_changed_under_same_version_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rollback_discards_everything, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_synchronous_is_refused, setup, teardown),
    };
    return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
