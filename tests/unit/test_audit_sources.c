/* sagactl audit: the shard files it reads (tools/sagactl/audit_sources.c), one missing or several directories. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_filter.h"

#include <sqlite3.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "audit.h"
#include "saga_alloc.h"
#include "saga_json.h"
#include "saga_log.h"
#include "saga_partition.h"
#include "saga_shard_files.h"
#include "test_audit_fixture.h"

/* A shard file missing from the data directory: the audit refuses (exit 3)
 * naming it, rather than auditing part of the sagas. */
static void test_audit_missing_shard(void **state) {
    fx_t *f = *state;
    sqlite3_close(f->sagad[1]);
    f->sagad[1] = NULL;
    assert_int_equal(unlink(f->shard_path[1]), 0);
    char *text = NULL, *errtext = NULL;
    size_t len = 0, elen = 0;
    FILE *out = open_memstream(&text, &len), *err = open_memstream(&errtext, &elen);
    sagactl_audit_opts_t o = {.saga_db = f->saga_db, .order_db = f->order_db, .inventory_db = f->inventory_db,
                              .payment_db = f->payment_db};
    assert_int_equal(sagactl_audit_run(&o, out, err), SAGACTL_AUDIT_UNREADABLE);
    fclose(out);
    fclose(err);
    assert_non_null(strstr(errtext, "shard 1 is missing (shard-001.db"));
    free(text);
    free(errtext);
    /* an empty directory is not a data directory */
    char empty[200];
    snprintf(empty, sizeof empty, "%s/empty", f->dir);
    assert_int_equal(mkdir(empty, 0700), 0);
    o.saga_db = empty;
    FILE *devnull = fopen("/dev/null", "w");
    assert_int_equal(sagactl_audit_run(&o, devnull, devnull), SAGACTL_AUDIT_UNREADABLE);
    fclose(devnull);
}

/* ---- several data directories (a cluster): each shard from its newest copy ---- */

/* A second data directory f->dir/sagad2 holding a copy of every shard; in
 * both, shard_meta says partition p of AUDIT_SHARDS (as sagad writes it). */
static void make_cluster(fx_t *f, char *dir2, size_t len) {
    snprintf(dir2, len, "%s/sagad2", f->dir);
    assert_int_equal(mkdir(dir2, 0700), 0);
    for (int p = 0; p < AUDIT_SHARDS; p++) {
        char path[200], *sql = sqlite3_mprintf("INSERT OR REPLACE INTO shard_meta VALUES ('partition', %d),"
                                               " ('partitions', %d)", p, AUDIT_SHARDS);
        must_exec(f->sagad[p], sql);
        sqlite3_free(sql);
        assert_true(saga_shard_file(dir2, p, path, sizeof path) > 0);
        sql = sqlite3_mprintf("VACUUM INTO %Q", path);
        must_exec(f->sagad[p], sql);
        sqlite3_free(sql);
    }
}

/* Runs SQL in dir's copy of shard p. */
static void tamper_shard(const char *dir, int p, const char *sql) {
    char path[200];
    assert_true(saga_shard_file(dir, p, path, sizeof path) > 0);
    tamper(path, sql);
}

/* dir's copy of shard p records changelog_offset off (< 0: no such row) and
 * saga id with the definition version v (8 or 9: not in the definitions,
 * so the audit names the saga and the version it read). */
static void shard_copy(const char *dir, int p, long long off, const char *id, int v) {
    char sql[256];
    if (off < 0) snprintf(sql, sizeof sql, "DELETE FROM shard_meta WHERE key = 'changelog_offset'");
    else snprintf(sql, sizeof sql, "INSERT OR REPLACE INTO shard_meta VALUES ('changelog_offset', %lld)", off);
    tamper_shard(dir, p, sql);
    snprintf(sql, sizeof sql, "UPDATE sagas SET version = %d WHERE id = '%s'", v, id);
    tamper_shard(dir, p, sql);
}

/* The audit over the data directories dirs; *text the report, *errtext
 * what it said on err (both freed with free()). */
static int audit_dirs(fx_t *f, const char *const *dirs, int n, int json, char **text, char **errtext) {
    sagactl_audit_opts_t o = {.saga_dbs = dirs, .n_saga_dbs = n, .order_db = f->order_db,
                              .inventory_db = f->inventory_db, .payment_db = f->payment_db,
                              .notification_db = f->notification_db, .json = json};
    size_t len = 0, elen = 0;
    FILE *out = open_memstream(text, &len), *err = open_memstream(errtext, &elen);
    int rc = sagactl_audit_run(&o, out, err);
    fclose(out);
    fclose(err);
    if (getenv("SAGA_TEST_VERBOSE")) fprintf(stderr, "%s%s", *text, *errtext);
    return rc;
}

/* "saga ID: definition order_fulfillment version V is not in ..." in text? */
static int names_version(const char *text, const char *id, int v) {
    char line[128];
    snprintf(line, sizeof line, "saga %s: definition order_fulfillment version %d is not", id, v);
    return strstr(text, line) != NULL;
}

/* One saga of each shard (AUDIT_SHARDS = 3: each holds some). */
static void saga_per_shard(const char *ids[AUDIT_SHARDS]) {
    static const char *const all[] = {"s-ok", "s-oos", "s-broke", "s-refund", "s-run", "s-stuck"};
    for (int p = 0; p < AUDIT_SHARDS; p++) ids[p] = NULL;
    for (size_t i = 0; i < 6; i++)
        if (!ids[saga_partition_of(all[i], AUDIT_SHARDS)]) ids[saga_partition_of(all[i], AUDIT_SHARDS)] = all[i];
    for (int p = 0; p < AUDIT_SHARDS; p++) assert_non_null(ids[p]);
}

/* The start of test_audit_cluster_newest_copy and test_audit_cluster_cli:
 * make_cluster, ids one saga of each shard (saga_per_shard), and shard 0's
 * newest copy in dir2 (changelog_offset 7 there, 5 in f->saga_db), where
 * ids[0] has version v; in the stale copy it has version 8. */
static void cluster_shard0_newest_in_dir2(fx_t *f, char *dir2, size_t len, const char *ids[AUDIT_SHARDS], int v) {
    saga_per_shard(ids);
    make_cluster(f, dir2, len);
    shard_copy(f->saga_db, 0, 5, ids[0], 8);
    shard_copy(dir2, 0, 7, ids[0], v);
}

/* Shard 0's newest copy is in the second directory, shard 1's in the first
 * (the second's has no offset), shard 2 is a tie (the first given wins).
 * Each saga changed in a stale copy (version 8) is not reported; the same
 * saga in the newest copy (version 9) is. */
static void test_audit_cluster_newest_copy(void **state) {
    fx_t *f = *state;
    char dir2[128], want[512], *text = NULL, *errtext = NULL;
    const char *ids[AUDIT_SHARDS];
    cluster_shard0_newest_in_dir2(f, dir2, sizeof dir2, ids, 9);
    shard_copy(f->saga_db, 1, 9, ids[1], 9);
    shard_copy(dir2, 1, -1, ids[1], 8);
    shard_copy(f->saga_db, 2, 4, ids[2], 9);
    shard_copy(dir2, 2, 4, ids[2], 8);
    const char *dirs[] = {f->saga_db, dir2};
    assert_int_equal(audit_dirs(f, dirs, 2, 0, &text, &errtext), SAGACTL_AUDIT_FAILED);
    for (int p = 0; p < AUDIT_SHARDS; p++) {
        assert_true(names_version(text, ids[p], 9));
        assert_false(names_version(text, ids[p], 8));
    }
    snprintf(want, sizeof want, "audit of %s, %s (3 shards)\n  shards: 1,2 from %s; 0 from %s\n", f->saga_db, dir2,
             f->saga_db, dir2);
    assert_non_null(strstr(text, want));
    free(text);
    free(errtext);

    /* one directory: the report as before, without sources */
    assert_int_equal(audit_dirs(f, dirs, 1, 0, &text, &errtext), SAGACTL_AUDIT_FAILED);
    assert_true(names_version(text, ids[0], 8) && names_version(text, ids[1], 9));
    snprintf(want, sizeof want, "audit of %s (3 shards)\n  order ", f->saga_db);
    assert_non_null(strstr(text, want));
    free(text);
    free(errtext);
    assert_int_equal(audit_dirs(f, dirs, 1, 1, &text, &errtext), SAGACTL_AUDIT_FAILED);
    assert_null(strstr(text, "shard_sources"));
    free(text);
    free(errtext);

    /* the other order: the tie now goes to the second directory's copy */
    const char *rev[] = {dir2, f->saga_db};
    assert_int_equal(audit_dirs(f, rev, 2, 0, &text, &errtext), SAGACTL_AUDIT_FAILED);
    assert_true(names_version(text, ids[2], 8) && !names_version(text, ids[2], 9));
    assert_true(names_version(text, ids[0], 9) && names_version(text, ids[1], 9));
    free(text);
    free(errtext);
    assert_int_equal(audit_dirs(f, rev, 2, 1, &text, &errtext), SAGACTL_AUDIT_FAILED);
    json_t *doc = saga_json_parse(text, strlen(text), NULL, 0);
    assert_non_null(doc);
    char *src = saga_json_dump(json_object_get(doc, "shard_sources"));
    snprintf(want, sizeof want, "[{\"saga_db\":\"%s\",\"shards\":[0,2]},{\"saga_db\":\"%s\",\"shards\":[1]}]", dir2,
             f->saga_db);
    assert_string_equal(src, want);
    saga_free(src);
    json_decref(doc);
    free(text);
    free(errtext);

    /* a shard in one directory only is taken from there; in none, an error */
    char path[200];
    assert_true(saga_shard_file(dir2, 0, path, sizeof path) > 0);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(audit_dirs(f, dirs, 2, 0, &text, &errtext), SAGACTL_AUDIT_FAILED);
    assert_true(names_version(text, ids[0], 8));
    snprintf(want, sizeof want, "  shards: 0-2 from %s\n", f->saga_db);
    assert_non_null(strstr(text, want));
    free(text);
    free(errtext);
    assert_int_equal(unlink(f->shard_path[0]), 0);
    assert_int_equal(audit_dirs(f, dirs, 2, 0, &text, &errtext), SAGACTL_AUDIT_UNREADABLE);
    assert_non_null(strstr(errtext, "shard 0 is missing (shard-000.db; shards 0 to 2 are expected) from every"));
    free(text);
    free(errtext);
}

/* Directories of different partition counts are refused (exit 2), naming
 * each with its P; so is a single database file among several paths. */
static void test_audit_cluster_partitions_differ(void **state) {
    fx_t *f = *state;
    char dir2[128], want[512], *text = NULL, *errtext = NULL;
    make_cluster(f, dir2, sizeof dir2);
    const char *dirs[] = {f->saga_db, dir2};
    assert_int_equal(audit_dirs(f, dirs, 2, 0, &text, &errtext), SAGACTL_AUDIT_OK);
    free(text);
    free(errtext);
    for (int p = 0; p < AUDIT_SHARDS; p++)
        tamper_shard(dir2, p, "UPDATE shard_meta SET value = 4 WHERE key = 'partitions'");
    assert_int_equal(audit_dirs(f, dirs, 2, 0, &text, &errtext), SAGACTL_AUDIT_USAGE);
    snprintf(want, sizeof want, "different partition counts (shard_meta 'partitions'), they are not one cluster's: "
             "%s P=3, %s P=4", f->saga_db, dir2);
    if (!strstr(errtext, want)) fprintf(stderr, "want '%s', got '%s'\n", want, errtext);
    assert_non_null(strstr(errtext, want));
    assert_string_equal(text, "");
    free(text);
    free(errtext);
    const char *with_file[] = {f->saga_db, f->order_db};
    assert_int_equal(audit_dirs(f, with_file, 2, 0, &text, &errtext), SAGACTL_AUDIT_USAGE);
    assert_non_null(strstr(errtext, "not a directory"));
    free(text);
    free(errtext);
}

/* The binary: SAGA_DBS, and --saga-db given twice (over SAGA_DBS). */
static void test_audit_cluster_cli(void **state) {
    fx_t *f = *state;
    char dir2[128], cmd[2048], want[512], line[1024];
    const char *ids[AUDIT_SHARDS];
    cluster_shard0_newest_in_dir2(f, dir2, sizeof dir2, ids, 1);
    snprintf(want, sizeof want, "  shards: 1,2 from %s; 0 from %s\n", f->saga_db, dir2);
    for (int how = 0; how < 2; how++) {
        snprintf(cmd, sizeof cmd,
                 "SAGA_DBS='%s %s' ORDER_DB='%s' INVENTORY_DB='%s' PAYMENT_DB='%s' '%s' audit %s%s%s%s%s",
                 how ? "/nonexistent" : f->saga_db, how ? "/nonexistent2" : dir2, f->order_db, f->inventory_db,
                 f->payment_db, SAGACTL_PATH, how ? "--saga-db '" : "", how ? f->saga_db : "",
                 how ? "' --saga-db='" : "", how ? dir2 : "", how ? "'" : "");
        FILE *p = popen(cmd, "r");
        int shards_line = 0, passed = 0;
        while (fgets(line, sizeof line, p)) {
            if (strcmp(line, want) == 0) shards_line = 1;
            if (strncmp(line, "audit: passed", 13) == 0) passed = 1;
        }
        int st = pclose(p);
        if (!shards_line || !passed) fprintf(stderr, "%s: want '%s' and passed\n", cmd, want);
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 0);
        assert_true(shards_line && passed);
    }
}

int main(int argc, char **argv) {
    saga_test_filter(argc, argv);
    saga_alloc_install_jansson();
    saga_log_set_level(getenv("SAGA_TEST_VERBOSE") ? SAGA_LOG_DEBUG : SAGA_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_audit_missing_shard, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_cluster_newest_copy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_cluster_partitions_differ, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_cluster_cli, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
