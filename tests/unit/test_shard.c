/* Shards (issue 14 item 1): which shard a saga, a message, a keyless start
 * and a delivery report go to; the data directory's shard files (fresh,
 * converted from an older release's single database, interrupted builds)
 * and the refusal of a partition count other than the one it was made with. */
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
#include "schema.h"
#include <sys/stat.h>
#include <unistd.h>

#include "datadir.h"
#include "saga_error.h"
#include "saga_partition.h"
#include "shard.h"

#define P 8

static void test_saga_routes_to_the_partition_of_its_id(void **state) {
    (void)state;
    /* Kafka's murmur2: the shard a keyed producer's record lands in */
    const char *ids[] = {"order-1", "order-2", "s-0123456789abcdef", "é-ünïcode", ""};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        assert_int_equal(sagad_shard_of_saga(ids[i], P), saga_partition_of(ids[i], P));
    /* ids spread: 200 ids reach every one of 8 shards */
    int seen[P] = {0};
    char id[32];
    for (int i = 0; i < 200; i++) {
        snprintf(id, sizeof id, "saga-%d", i);
        seen[sagad_shard_of_saga(id, P)]++;
    }
    for (int p = 0; p < P; p++) assert_true(seen[p] > 0);
    /* one partition: everything in shard 0 */
    assert_int_equal(sagad_shard_of_saga("order-1", 1), 0);
}

static void test_message_without_saga_routes_to_its_partition(void **state) {
    (void)state;
    for (int p = 0; p < P; p++) assert_int_equal(sagad_shard_of_partition(p, P), p);
    assert_int_equal(sagad_shard_of_partition(9, P), 1); /* more partitions than shards: folds back */
    assert_int_equal(sagad_shard_of_partition(-1, P), 0); /* RD_KAFKA_PARTITION_UA never reaches a shard beyond */
}

static void test_keyless_start_gets_an_id_of_its_partition(void **state) {
    (void)state;
    char id[64], other[64];
    for (int p = 0; p < P; p++)
        for (int k = 0; k < 20; k++) {
            sagad_saga_id_for_partition(p, P, id, sizeof id);
            assert_int_equal(strncmp(id, "s-", 2), 0);
            assert_int_equal(strlen(id), 18);
            assert_int_equal(saga_partition_of(id, P), p);
        }
    sagad_saga_id_for_partition(3, P, id, sizeof id);
    sagad_saga_id_for_partition(3, P, other, sizeof other);
    assert_string_not_equal(id, other); /* random, not derived */
}

static void test_starts_route_by_saga_id_else_partition_else_message_id(void **state) {
    (void)state;
    /* with a saga id: the saga's shard, whatever partition it was read from */
    int home = saga_partition_of("order-7", P);
    for (int from = 0; from < P; from++) assert_int_equal(sagad_route_start("order-7", "m-1", from, P), home);
    assert_int_equal(sagad_route_start("order-7", "m-1", -1, P), home); /* an operator's */
    /* without: the partition it was read from, the same every time it is read */
    for (int from = 0; from < P; from++) assert_int_equal(sagad_route_start(NULL, "m-1", from, P), from);
    /* an operator's without: the partition of its message id */
    assert_int_equal(sagad_route_start(NULL, "m-op-1", -1, P), saga_partition_of("m-op-1", P));
}

static void test_delivery_ids_carry_shard_and_row(void **state) {
    (void)state;
    int64_t rows[] = {1, 2, 999999, ((int64_t)1 << SAGAD_OPAQUE_SHIFT) - 1};
    for (int p = 0; p < 1000; p += 111)
        for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
            int64_t o = sagad_opaque(p, rows[i]);
            assert_int_equal(sagad_opaque_shard(o), p);
            assert_int_equal(sagad_opaque_row(o), rows[i]);
            assert_true(o < INT64_MAX / 256); /* the bus keeps the attempt in the low byte */
        }
    /* sorting delivery ids groups them by shard */
    assert_true(sagad_opaque(0, rows[3]) < sagad_opaque(1, 1));
}

/* ---- the data directory ---- */

static char base[256];

static int setup(void **state) {
    (void)state;
    snprintf(base, sizeof base, "/tmp/test_shard-XXXXXX");
    assert_non_null(mkdtemp(base));
    return 0;
}

static int teardown(void **state) {
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
    return system(cmd);
}

static long long count(const char *path, const char *sql) {
    sqlite3 *db;
    sqlite3_stmt *q;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    long long n = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    sqlite3_close(db);
    return n;
}

static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static void test_fresh_data_dir_gets_p_shards(void **state) {
    (void)state;
    char dir[300], err[512] = "", path[400];
    snprintf(dir, sizeof dir, "%s/data/nested", base);
    assert_int_equal(saga_datadir_create(dir, err, sizeof err), 0);
    int converted = -1;
    assert_int_equal(saga_datadir_prepare(dir, NULL, P, "FULL", &converted, err, sizeof err), 0);
    assert_int_equal(converted, 0);
    for (int p = 0; p < P; p++) {
        saga_datadir_shard_path(dir, p, path, sizeof path);
        assert_true(exists(path));
        assert_int_equal(count(path, "SELECT value FROM shard_meta WHERE key='partition'"), p);
        assert_int_equal(count(path, "SELECT value FROM shard_meta WHERE key='partitions'"), P);
        saga_store_options_t opt = {.synchronous = "NORMAL"};
        saga_store_t *st = saga_datadir_open_shard(dir, p, P, &opt, err, sizeof err);
        assert_non_null(st);
        saga_store_close(&st);
    }
    snprintf(path, sizeof path, "%s/shard-%03d.db", dir, P);
    assert_false(exists(path));
    snprintf(path, sizeof path, "%s/.building", dir);
    assert_false(exists(path)); /* built aside, then moved in */
    /* a second start finds them and keeps them */
    assert_int_equal(saga_datadir_prepare(dir, NULL, P, "FULL", &converted, err, sizeof err), 0);
}

static void test_other_partition_count_is_refused(void **state) {
    (void)state;
    char dir[300], err[512] = "";
    snprintf(dir, sizeof dir, "%s/data", base);
    assert_int_equal(saga_datadir_create(dir, err, sizeof err), 0);
    assert_int_equal(saga_datadir_prepare(dir, NULL, 4, "FULL", NULL, err, sizeof err), 0);
    /* more partitions than the directory was made with */
    err[0] = '\0';
    assert_int_equal(saga_datadir_prepare(dir, NULL, P, "FULL", NULL, err, sizeof err), SAGA_EINVAL);
    assert_non_null(strstr(err, "--partitions 8"));
    assert_non_null(strstr(err, "run with --partitions 4"));
    /* fewer */
    err[0] = '\0';
    assert_int_equal(saga_datadir_prepare(dir, NULL, 2, "FULL", NULL, err, sizeof err), SAGA_EINVAL);
    assert_non_null(strstr(err, "run with --partitions 4"));
    /* a shard file opened as a shard of another count (its meta says 4) */
    err[0] = '\0';
    assert_null(saga_datadir_open_shard(dir, 1, 2, NULL, err, sizeof err));
    assert_non_null(strstr(err, "created for 4 partitions"));
    /* a missing shard among the others */
    char path[400];
    saga_datadir_shard_path(dir, 2, path, sizeof path);
    assert_int_equal(unlink(path), 0);
    err[0] = '\0';
    assert_int_equal(saga_datadir_prepare(dir, NULL, 4, "FULL", NULL, err, sizeof err), SAGA_EINVAL);
    assert_non_null(strstr(err, "lacks shard-002.db"));
}

/* With a changelog to restore from (sagad), a missing shard is left for the
 * restore, an empty directory stays empty; another P is still refused. */
static void test_restorable_prepare_leaves_missing_shards(void **state) {
    (void)state;
    char dir[300], err[512] = "", path[400];
    snprintf(dir, sizeof dir, "%s/data", base);
    assert_int_equal(saga_datadir_create(dir, err, sizeof err), 0);
    assert_int_equal(saga_datadir_prepare_restorable(dir, NULL, 4, "FULL", NULL, err, sizeof err), 0);
    saga_datadir_shard_path(dir, 0, path, sizeof path);
    assert_false(exists(path)); /* every shard left to the restore */
    assert_int_equal(saga_datadir_prepare(dir, NULL, 4, "FULL", NULL, err, sizeof err), 0);
    saga_datadir_shard_path(dir, 2, path, sizeof path);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(saga_datadir_prepare(dir, NULL, 4, "FULL", NULL, err, sizeof err), SAGA_EINVAL);
    assert_int_equal(saga_datadir_prepare_restorable(dir, NULL, 4, "FULL", NULL, err, sizeof err), 0);
    assert_false(exists(path));
    saga_datadir_shard_path(dir, 3, path, sizeof path);
    assert_int_equal(unlink(path), 0); /* the last one too: its P is read from the others */
    assert_int_equal(saga_datadir_prepare_restorable(dir, NULL, 4, "FULL", NULL, err, sizeof err), 0);
    err[0] = '\0';
    assert_int_equal(saga_datadir_prepare_restorable(dir, NULL, 2, "FULL", NULL, err, sizeof err), SAGA_EINVAL);
    assert_non_null(strstr(err, "--partitions"));
}

static void test_interrupted_builds_are_redone_or_finished(void **state) {
    (void)state;
    char dir[300], err[512] = "", path[400], cmd[900];
    snprintf(dir, sizeof dir, "%s/data", base);
    assert_int_equal(saga_datadir_create(dir, err, sizeof err), 0);
    /* a build that crashed before READY: thrown away, built again */
    snprintf(path, sizeof path, "%s/.building", dir);
    assert_int_equal(mkdir(path, 0755), 0);
    snprintf(cmd, sizeof cmd, "echo garbage > '%s/shard-000.db'", path);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(saga_datadir_prepare(dir, NULL, 2, "FULL", NULL, err, sizeof err), 0);
    saga_datadir_shard_path(dir, 0, path, sizeof path);
    assert_int_equal(count(path, "SELECT value FROM shard_meta WHERE key='partitions'"), 2);
    /* a complete build (READY) interrupted while moving in: finished */
    snprintf(cmd, sizeof cmd, "mkdir '%s/.building' && mv '%s/shard-001.db' '%s/.building/' && echo complete > '%s/.building/READY'",
             dir, dir, dir, dir);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(saga_datadir_prepare(dir, NULL, 2, "FULL", NULL, err, sizeof err), 0);
    saga_datadir_shard_path(dir, 1, path, sizeof path);
    assert_int_equal(count(path, "SELECT value FROM shard_meta WHERE key='partition'"), 1);
    snprintf(path, sizeof path, "%s/.building", dir);
    assert_false(exists(path));
    /* a fresh build finished on a start that names a --db: that file is
     * not renamed (it was not converted) */
    char legacy[400];
    snprintf(legacy, sizeof legacy, "%s/other.db", base);
    snprintf(cmd, sizeof cmd, "mkdir '%s/.building' && mv '%s/shard-001.db' '%s/.building/' && echo fresh > '%s/.building/READY' && touch '%s'",
             dir, dir, dir, dir, legacy);
    assert_int_equal(system(cmd), 0);
    err[0] = '\0';
    assert_int_equal(saga_datadir_prepare(dir, legacy, 2, "FULL", NULL, err, sizeof err), SAGA_EINVAL);
    assert_true(exists(legacy)); /* kept, and refused: shards exist and it is not converted */
    assert_non_null(strstr(err, "is not converted"));
}

/* A database as the previous release wrote it (schema version 4, no
 * shard_meta) with sagas in several states and every kind of row. */
static void make_legacy(const char *path, int sagas) {
    saga_store_t *st = saga_store_open(path, NULL, (char[256]){0}, 256);
    assert_non_null(st);
    saga_store_close(&st);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "DROP TABLE shard_meta; PRAGMA user_version = 4;"
                                      "ALTER TABLE outbox DROP COLUMN kafka_partition; ALTER TABLE outbox DROP COLUMN tombstone;"
                                      "DROP TRIGGER sagas_search_insert; DROP TRIGGER sagas_search_delete;"
                                      "DROP TABLE saga_search; ALTER TABLE sagas DROP COLUMN search; ALTER TABLE steps DROP COLUMN signal; DROP TABLE paused_topics; ALTER TABLE sagas DROP COLUMN parent;"
                                      "INSERT INTO definitions VALUES ('order', 1, 'h1', '{}', 1), ('order', 2, 'h2', '{}', 2);"
                                      "INSERT INTO dedup VALUES ('replies', 'r-1', 5), ('start', 'm-x', 6);",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    static const char *const statuses[] = {"running", "completed", "compensating", "compensated", "compensation_failed"};
    for (int i = 0; i < sagas; i++) {
        char *sql = sqlite3_mprintf(
            "INSERT INTO sagas (id, definition, version, status, input, start_message_id, created_at, updated_at)"
            " VALUES ('saga-%d', 'order', 1, '%s', '{}', 'm-%d', 1, 2);"
            "INSERT INTO steps (saga_id, idx, name, status) VALUES ('saga-%d', 0, 'a', 'succeeded'), ('saga-%d', 1, 'b', 'running');"
            "INSERT INTO history VALUES ('saga-%d', 1, 1, 'saga.started', NULL, 'running', '{}'), ('saga-%d', 2, 2, 'step.started', 'a', 'running', '{}');"
            "INSERT INTO timers VALUES ('saga-%d', 1, 'step_timeout', 1, 100);"
            "INSERT INTO outbox (topic, key, headers, payload, created_at) VALUES ('orders', 'saga-%d', '{}', 'x', 3);",
            i, statuses[i % 5], i, i, i, i, i, i, i);
        assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
        sqlite3_free(sql);
    }
    assert_int_equal(sqlite3_exec(db, "INSERT INTO outbox_parked SELECT id, topic, key, headers, payload, created_at, 9,"
                                      " 'too large', 'dropped' FROM outbox WHERE id % 7 = 0;"
                                      "DELETE FROM outbox WHERE id % 7 = 0;", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

static void test_single_file_database_converts_into_shards(void **state) {
    (void)state;
    char dir[300], legacy[300], err[512] = "", path[400], sql[300];
    snprintf(dir, sizeof dir, "%s/data", base);
    snprintf(legacy, sizeof legacy, "%s/sagad.db", base);
    const int sagas = 100;
    make_legacy(legacy, sagas);
    long long parked = count(legacy, "SELECT count(*) FROM outbox_parked");
    assert_true(parked > 0);
    assert_int_equal(saga_datadir_create(dir, err, sizeof err), 0);
    int converted = 0;
    int prc = saga_datadir_prepare(dir, legacy, P, "FULL", &converted, err, sizeof err);
    if (prc) fail_msg("prepare: %s", err);
    assert_int_equal(converted, 1);
    snprintf(path, sizeof path, "%s.converted", legacy);
    assert_true(exists(path));
    assert_false(exists(legacy));
    long long total[6] = {0};
    for (int p = 0; p < P; p++) {
        saga_datadir_shard_path(dir, p, path, sizeof path);
        /* every row of this shard belongs to it: its saga id hashes to p */
        const char *tables[] = {"sagas", "steps", "history", "timers", "outbox", "outbox_parked"};
        const char *cols[] = {"id", "saga_id", "saga_id", "saga_id", "key", "key"};
        for (int t = 0; t < 6; t++) {
            long long n = count(path, (snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", tables[t]), sql));
            total[t] += n;
            sqlite3 *db;
            sqlite3_stmt *q;
            assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
            snprintf(sql, sizeof sql, "SELECT %s FROM %s", cols[t], tables[t]);
            assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK);
            while (sqlite3_step(q) == SQLITE_ROW)
                assert_int_equal(saga_partition_of((const char *)sqlite3_column_text(q, 0), P), p);
            sqlite3_finalize(q);
            sqlite3_close(db);
        }
        /* definitions and dedup rows in every shard */
        assert_int_equal(count(path, "SELECT count(*) FROM definitions"), 2);
        assert_int_equal(count(path, "SELECT count(*) FROM dedup"), 2);
        assert_int_equal(count(path, "SELECT value FROM shard_meta WHERE key='partition'"), p);
        assert_int_equal(count(path, "PRAGMA user_version"), (int)(sizeof saga_store_migrations / sizeof saga_store_migrations[0]));
        /* statuses kept: the shard's compensating sagas are still compensating */
        assert_int_equal(count(path, "SELECT count(*) FROM sagas WHERE status NOT IN ('running','completed',"
                                     "'compensating','compensated','compensation_failed')"), 0);
    }
    assert_int_equal(total[0], sagas);
    assert_int_equal(total[1], 2 * sagas);
    assert_int_equal(total[2], 2 * sagas);
    assert_int_equal(total[3], sagas);
    assert_int_equal(total[4] + total[5], sagas);
    assert_int_equal(total[5], parked);
    /* the shard of saga-42 holds it whole, in its state */
    saga_datadir_shard_path(dir, saga_partition_of("saga-42", P), path, sizeof path);
    assert_int_equal(count(path, "SELECT count(*) FROM sagas WHERE id='saga-42' AND status='compensating'"), 1);
    assert_int_equal(count(path, "SELECT count(*) FROM steps WHERE saga_id='saga-42'"), 2);
    /* a second start with the same --db does not convert again */
    converted = -1;
    assert_int_equal(saga_datadir_prepare(dir, legacy, P, "FULL", &converted, err, sizeof err), 0);
    assert_int_equal(converted, 0);
    long long again = 0;
    for (int p = 0; p < P; p++) {
        saga_datadir_shard_path(dir, p, path, sizeof path);
        again += count(path, "SELECT count(*) FROM sagas");
    }
    assert_int_equal(again, sagas);
    /* a new single file next to existing shards: refused, not mixed */
    make_legacy(legacy, 3);
    err[0] = '\0';
    assert_int_equal(saga_datadir_prepare(dir, legacy, P, "FULL", NULL, err, sizeof err), SAGA_EINVAL);
    assert_non_null(strstr(err, "is not converted"));
    /* a --db that does not exist (nor its .converted): refused */
    snprintf(path, sizeof path, "%s/nowhere.db", base);
    err[0] = '\0';
    assert_int_equal(saga_datadir_prepare(dir, path, P, "FULL", NULL, err, sizeof err), SAGA_EINVAL);
    assert_non_null(strstr(err, "no such file"));
}

int main(int argc, char **argv) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_saga_routes_to_the_partition_of_its_id),
        cmocka_unit_test(test_message_without_saga_routes_to_its_partition),
        cmocka_unit_test(test_keyless_start_gets_an_id_of_its_partition),
        cmocka_unit_test(test_starts_route_by_saga_id_else_partition_else_message_id),
        cmocka_unit_test(test_delivery_ids_carry_shard_and_row),
        cmocka_unit_test_setup_teardown(test_fresh_data_dir_gets_p_shards, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_partition_count_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_interrupted_builds_are_redone_or_finished, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restorable_prepare_leaves_missing_shards, setup, teardown),
        cmocka_unit_test_setup_teardown(test_single_file_database_converts_into_shards, setup, teardown),
    };
    saga_test_filter(argc, argv);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
