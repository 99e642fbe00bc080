/* common/saga_shard_files: the shard files of sagad's data directory (or one database file). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_filter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "saga_shard_files.h"

static char dir[64];

static void touch(const char *name) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);
}

static void rm(const char *name) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    assert_int_equal(unlink(path), 0);
}

static int setup(void **state) {
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/saga-shard-files-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_shard_file_name(void **state) {
    (void)state;
    char buf[64];
    assert_int_equal(saga_shard_file("/d", 7, buf, sizeof buf), (int)strlen("/d/shard-007.db"));
    assert_string_equal(buf, "/d/shard-007.db");
    assert_int_equal(saga_shard_file("/d", 999, buf, sizeof buf), 15);
    assert_string_equal(buf, "/d/shard-999.db");
    assert_int_equal(saga_shard_file("/d", 1000, buf, sizeof buf), -1);
    assert_int_equal(saga_shard_file("/d", -1, buf, sizeof buf), -1);
    assert_int_equal(saga_shard_file("/a/long/directory", 1, buf, 10), -1); /* does not fit */
}

/* A directory: shard-000.db .. in order, other names ignored; a gap or no
 * shard at all is an error naming it; a file is one shard. */
static void test_shard_files_of_a_directory(void **state) {
    (void)state;
    char **paths = NULL, err[512];
    int n = -1;
    assert_int_equal(saga_shard_files(dir, &paths, &n, err, sizeof err), -1);
    assert_non_null(strstr(err, "no shard files"));
    static const char *const names[] = {"shard-002.db", "shard-000.db", "shard-001.db", "shard-1.db", "shard-0003.db",
                                        "shard-00x.db", "shard-003.db-wal", "admin.token", "sagad.db"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) touch(names[i]);
    assert_int_equal(saga_shard_files(dir, &paths, &n, err, sizeof err), 0);
    assert_int_equal(n, 3);
    for (int p = 0; p < 3; p++) {
        char want[256];
        snprintf(want, sizeof want, "%s/shard-%03d.db", dir, p);
        assert_string_equal(paths[p], want);
    }
    saga_shard_files_free(paths, n);
    rm("shard-001.db");
    assert_int_equal(saga_shard_files(dir, &paths, &n, err, sizeof err), -1);
    assert_non_null(strstr(err, "shard 1 is missing (shard-001.db; shards 0 to 2 are expected)"));
    assert_null(paths);
    assert_int_equal(n, 0);
    /* one database file */
    char file[256];
    snprintf(file, sizeof file, "%s/sagad.db", dir);
    assert_int_equal(saga_shard_files(file, &paths, &n, err, sizeof err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(paths[0], file);
    saga_shard_files_free(paths, n);
    snprintf(file, sizeof file, "%s/nope", dir);
    assert_int_equal(saga_shard_files(file, &paths, &n, err, sizeof err), -1);
    assert_non_null(strstr(err, "nope"));
}

int main(int argc, char **argv) {
    saga_test_filter(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shard_file_name),
        cmocka_unit_test_setup_teardown(test_shard_files_of_a_directory, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
