/* changelog_dump: prints the changelog records of every shard of a data
 * directory, as sagad's relay would produce them (the codec of changelog.h):
 * one line "PARTITION<TAB>KEY<TAB>VALUE" per record, each shard's
 * definitions first (def/NAME/VERSION), then its sagas. The restore tests
 * produce these lines into saga.changelog with kcat (values are compact
 * JSON: no tab, no newline).
 *   changelog_dump DATA_DIR PARTITIONS */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>

#include "changelog.h"
#include "datadir.h"
#include "saga_alloc.h"
#include "store.h"

#define DIE(...) do { fprintf(stderr, "changelog_dump: " __VA_ARGS__); fputc('\n', stderr); exit(1); } while (0)

static void print(int p, const char *key, const char *value) { printf("%d\t%s\t%s\n", p, key, value); }

int main(int argc, char **argv) {
    if (argc != 3) DIE("usage: changelog_dump DATA_DIR PARTITIONS");
    int partitions = atoi(argv[2]);
    if (partitions < 1 || partitions > SAGA_DATADIR_MAX_PARTITIONS) DIE("bad partition count '%s'", argv[2]);
    char err[1024];
    for (int p = 0; p < partitions; p++) {
        char path[4200];
        saga_datadir_shard_path(argv[1], p, path, sizeof path);
        saga_store_t *st = saga_datadir_open_shard(argv[1], p, partitions, NULL, err, sizeof err);
        if (!st) DIE("%s", err);
        sqlite3 *db = NULL;
        if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) DIE("%s: cannot open", path);
        sqlite3_busy_timeout(db, 5000);
        static const char *const lists[] = {"SELECT name, version FROM definitions ORDER BY name, version",
                                            "SELECT id, 0 FROM sagas ORDER BY created_at, id"};
        for (int l = 0; l < 2; l++) {
            sqlite3_stmt *q;
            if (sqlite3_prepare_v2(db, lists[l], -1, &q, NULL) != SQLITE_OK) DIE("%s: %s", path, sqlite3_errmsg(db));
            while (sqlite3_step(q) == SQLITE_ROW) {
                const char *name = (const char *)sqlite3_column_text(q, 0);
                int version = sqlite3_column_int(q, 1);
                char *value = NULL, key[600];
                size_t len = 0;
                int rc;
                if (l == 0) {
                    if (saga_changelog_definition_key(name, version, key, sizeof key) < 0) DIE("key of %s", name);
                    rc = saga_changelog_encode_definition(st, name, version, 0, &value, &len, err, sizeof err);
                } else {
                    snprintf(key, sizeof key, "%s", name);
                    rc = saga_changelog_encode(st, name, 0, &value, &len, err, sizeof err);
                }
                if (rc) DIE("%s: encoding %s: %s", path, key, err);
                print(p, key, value);
                saga_free(value);
            }
            sqlite3_finalize(q);
        }
        sqlite3_close(db);
        saga_store_close(&st);
    }
    return 0;
}
