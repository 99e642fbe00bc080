/* sagad's data directory (datadir.h): the P shard files, built aside and
 * renamed in, and the conversion of an older release's single database. */
#define _GNU_SOURCE
#include "datadir.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "saga_alloc.h"
#include "saga_error.h"
#include "saga_log.h"
#include "saga_partition.h"
#include "saga_shard_files.h"
#include "saga_util.h"

#define BUILD_DIR ".building"

void saga_datadir_shard_path(const char *dir, int partition, char *out, size_t len) {
    assert(partition >= 0 && partition < SAGA_DATADIR_MAX_PARTITIONS);
    if (saga_shard_file(dir, partition, out, len) < 0 && len) out[0] = '\0'; /* the readers' naming, one place */
}

static bool exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

int saga_datadir_create(const char *dir, char *err, size_t errlen) {
    char path[4096];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path || !*dir) {
        snprintf(err, errlen, "data directory '%.200s': bad path", dir);
        return SAGA_EINVAL;
    }
    for (char *p = path + 1;; p++) {
        bool end = *p == '\0';
        if (*p == '/' || end) {
            *p = '\0';
            if (mkdir(path, 0755) != 0 && errno != EEXIST) {
                snprintf(err, errlen, "cannot create the data directory %s: %s", path, strerror(errno));
                return SAGA_EIO;
            }
            if (end) break;
            *p = '/';
        }
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "the data directory %s is not a directory", dir);
        return SAGA_EINVAL;
    }
    return 0;
}

static void sync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

/* Parses "shard-NNN.db" (exactly); -1 when name is something else. */
static int shard_number(const char *name) {
    int n = -1, end = 0;
    if (sscanf(name, "shard-%d.db%n", &n, &end) == 1 && name[end] == '\0' && strlen(name) == 12 && n >= 0) return n;
    return -1;
}

/* Which shard files dir holds: present[p] for p < max, the count, the highest. */
static int list_shards(const char *dir, bool *present, int max, int *count, int *highest) {
    DIR *dh = opendir(dir);
    if (!dh) return SAGA_EIO;
    *count = 0;
    *highest = -1;
    struct dirent *e;
    while ((e = readdir(dh))) {
        int n = shard_number(e->d_name);
        if (n < 0) continue;
        (*count)++;
        if (n > *highest) *highest = n;
        if (n < max) present[n] = true;
    }
    closedir(dh);
    return 0;
}

/* Removes an unfinished build (its files, then the directory). */
static void remove_build(const char *build) {
    DIR *dh = opendir(build);
    if (!dh) return;
    struct dirent *e;
    char path[4200];
    while ((e = readdir(dh))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(path, sizeof path, "%s/%s", build, e->d_name);
        unlink(path);
    }
    closedir(dh);
    rmdir(build);
}

/* Moves a complete build's shard files into dir, then renames legacy_db
 * (when it is still there) to legacy_db.converted: from then on the
 * conversion is done. Idempotent: a crash in between is finished next time. */
static int finish_build(const char *dir, const char *build, const char *legacy_db, char *err, size_t errlen) {
    DIR *dh = opendir(build);
    if (!dh) {
        snprintf(err, errlen, "cannot read %s: %s", build, strerror(errno));
        return SAGA_EIO;
    }
    struct dirent *e;
    char from[4200], to[4200];
    int rc = 0;
    while (!rc && (e = readdir(dh))) {
        if (strncmp(e->d_name, "shard-", 6) != 0) continue; /* shard-NNN.db and any -wal/-shm left */
        snprintf(from, sizeof from, "%s/%s", build, e->d_name);
        snprintf(to, sizeof to, "%s/%s", dir, e->d_name);
        if (rename(from, to) != 0) {
            snprintf(err, errlen, "cannot move %s to %s: %s", from, to, strerror(errno));
            rc = SAGA_EIO;
        }
    }
    closedir(dh);
    if (rc) return rc;
    sync_dir(dir);
    if (legacy_db && *legacy_db && exists(legacy_db)) {
        snprintf(to, sizeof to, "%s.converted", legacy_db);
        if (rename(legacy_db, to) != 0) {
            snprintf(err, errlen, "cannot rename %s to %s: %s", legacy_db, to, strerror(errno));
            return SAGA_EIO;
        }
        LOG_INFO("datadir", "the single-file database %s is converted into %s; kept as %s", legacy_db, dir, to);
    }
    remove_build(build);
    sync_dir(dir);
    return 0;
}

/* SQL function saga_partition(key, P): the partition of a saga id. */
static void sql_partition(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
    (void)argc;
    const char *key = (const char *)sqlite3_value_text(argv[0]);
    int partitions = sqlite3_value_int(argv[1]);
    sqlite3_result_int(ctx, key && partitions > 0 ? saga_partition_of(key, partitions) : 0);
}

/* Copies into each shard of build the rows of legacy_db that belong to it:
 * a saga with its steps, history and timers into the shard its id hashes
 * to; outbox rows (keyed by saga id) likewise; definitions and dedup rows
 * (message ids say nothing of their saga) into every shard. */
static int convert_rows(const char *legacy_db, const char *build, int partitions, char *err, size_t errlen) {
    static const char *const copies[] = {
        "INSERT INTO s.definitions SELECT * FROM main.definitions",
        "INSERT INTO s.dedup SELECT * FROM main.dedup",
        /* columns named: a legacy file predates migration 8 (search) */
        ("INSERT INTO s.sagas (id, definition, version, status, input, traceparent, start_message_id, created_at,"
         " updated_at, deadline_at, seq, completions, error_code, error_message)"
         " SELECT id, definition, version, status, input, traceparent, start_message_id, created_at, updated_at,"
         " deadline_at, seq, completions, error_code, error_message FROM main.sagas WHERE saga_partition(id, ?1) = ?2"),
        /* columns named: a legacy file predates migration 9 (signal) */
        ("INSERT INTO s.steps (saga_id, idx, name, status, attempt, comp_attempt, comp_budget_base, outcome_unknown,"
         " output, error_code, error_message, started_at, finished_at, updated_at, completion_order)"
         " SELECT saga_id, idx, name, status, attempt, comp_attempt, comp_budget_base, outcome_unknown, output,"
         " error_code, error_message, started_at, finished_at, updated_at, completion_order FROM main.steps"
         " WHERE saga_partition(saga_id, ?1) = ?2"),
        "INSERT INTO s.history SELECT * FROM main.history WHERE saga_partition(saga_id, ?1) = ?2",
        "INSERT INTO s.timers SELECT * FROM main.timers WHERE saga_partition(saga_id, ?1) = ?2",
        /* columns named: a legacy file may predate migration 6 (kafka_partition, tombstone) */
        ("INSERT INTO s.outbox (id, topic, key, headers, payload, created_at)"
         " SELECT id, topic, key, headers, payload, created_at FROM main.outbox WHERE saga_partition(key, ?1) = ?2"),
        "INSERT INTO s.outbox_parked SELECT * FROM main.outbox_parked WHERE saga_partition(key, ?1) = ?2",
    };
    sqlite3 *db = NULL;
    int rc = 0;
    if (sqlite3_open_v2(legacy_db, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK ||
        sqlite3_create_function(db, "saga_partition", 2, SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL, sql_partition,
                                NULL, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "converting %s: %s", legacy_db, db ? sqlite3_errmsg(db) : "cannot open");
        sqlite3_close(db);
        return SAGA_ESTORE;
    }
    sqlite3_busy_timeout(db, 5000);
    for (int p = 0; !rc && p < partitions; p++) {
        char path[4200], sql[4400];
        saga_datadir_shard_path(build, p, path, sizeof path);
        char *quoted = sqlite3_mprintf("%Q", path);
        snprintf(sql, sizeof sql, "ATTACH DATABASE %s AS s", quoted);
        sqlite3_free(quoted);
        rc = sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : SAGA_ESTORE;
        if (!rc) rc = sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK ? 0 : SAGA_ESTORE;
        for (size_t i = 0; !rc && i < sizeof copies / sizeof copies[0]; i++) {
            sqlite3_stmt *q;
            if (sqlite3_prepare_v2(db, copies[i], -1, &q, NULL) != SQLITE_OK) {
                rc = SAGA_ESTORE;
                break;
            }
            if (sqlite3_bind_parameter_count(q) == 2) {
                sqlite3_bind_int(q, 1, partitions);
                sqlite3_bind_int(q, 2, p);
            }
            if (sqlite3_step(q) != SQLITE_DONE) rc = SAGA_ESTORE;
            sqlite3_finalize(q);
        }
        if (!rc) rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK ? 0 : SAGA_ESTORE;
        if (!rc) rc = sqlite3_exec(db, "PRAGMA s.wal_checkpoint(TRUNCATE)", NULL, NULL, NULL) == SQLITE_OK ? 0 : SAGA_ESTORE;
        if (rc) {
            snprintf(err, errlen, "converting %s into %s: %s", legacy_db, path, sqlite3_errmsg(db));
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        }
        sqlite3_exec(db, "DETACH DATABASE s", NULL, NULL, NULL);
    }
    sqlite3_close(db);
    return rc;
}

/* Builds P shards in build (empty, or converted from legacy_db), then marks
 * the build complete (READY). */
static int build_shards(const char *build, const char *legacy_db, int partitions, char *err, size_t errlen) {
    if (mkdir(build, 0755) != 0) {
        snprintf(err, errlen, "cannot create %s: %s", build, strerror(errno));
        return SAGA_EIO;
    }
    saga_store_options_t opt = {.synchronous = "FULL"};
    for (int p = 0; p < partitions; p++) {
        char path[4200];
        saga_datadir_shard_path(build, p, path, sizeof path);
        saga_store_t *st = saga_store_open(path, &opt, err, errlen);
        if (!st) return SAGA_ESTORE;
        int rc = saga_store_meta_set(st, "partition", p);
        if (!rc) rc = saga_store_meta_set(st, "partitions", partitions);
        if (rc) snprintf(err, errlen, "%s: %s", path, saga_store_errmsg(st));
        saga_store_close(&st);
        if (rc) return rc;
    }
    if (legacy_db) {
        /* Brings the old file to the current schema (and replays its WAL). */
        saga_store_t *st = saga_store_open(legacy_db, &opt, err, errlen);
        if (!st) return SAGA_ESTORE;
        saga_store_close(&st);
        int rc = convert_rows(legacy_db, build, partitions, err, errlen);
        if (rc) return rc;
    }
    /* READY says what was built: "converted FILE" or "fresh" */
    char ready[4200], what[4300];
    snprintf(ready, sizeof ready, "%s/READY", build);
    snprintf(what, sizeof what, legacy_db ? "converted %s\n" : "fresh\n", legacy_db);
    if (saga_write_file_atomic(ready, what)) {
        snprintf(err, errlen, "cannot write %s", ready);
        return SAGA_EIO;
    }
    sync_dir(build);
    return 0;
}

/* The partition count recorded in shard file path (shard_meta), or -1. */
static long long recorded_partitions(const char *path) {
    sqlite3 *db = NULL;
    long long n = -1;
    sqlite3_stmt *q = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "SELECT value FROM shard_meta WHERE key = 'partitions'", -1, &q, NULL) == SQLITE_OK &&
        sqlite3_step(q) == SQLITE_ROW)
        n = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    sqlite3_close(db);
    return n;
}

static int prepare(const char *dir, const char *legacy_db, int partitions, const char *synchronous,
                   bool restore_missing, int *converted, char *err, size_t errlen) {
    (void)synchronous; /* shards are built with FULL; the caller opens them with its mode */
    assert(partitions > 0 && partitions <= SAGA_DATADIR_MAX_PARTITIONS);
    if (converted) *converted = 0;
    if (legacy_db && !*legacy_db) legacy_db = NULL;
    char build[4200], ready[4300];
    snprintf(build, sizeof build, "%s/%s", dir, BUILD_DIR);
    snprintf(ready, sizeof ready, "%s/READY", build);
    if (exists(build)) {
        if (exists(ready)) {
            /* the old file is renamed only if this build converted it */
            char *what = saga_read_file(ready, NULL), expect[4300];
            snprintf(expect, sizeof expect, "converted %s", legacy_db ? legacy_db : "");
            bool ours = what && legacy_db && strncmp(what, expect, strlen(expect)) == 0 &&
                        (what[strlen(expect)] == '\n' || what[strlen(expect)] == '\0');
            saga_free(what);
            LOG_WARN("datadir", "finishing the build of shards interrupted in %s", build);
            int rc = finish_build(dir, build, ours ? legacy_db : NULL, err, errlen);
            if (rc) return rc;
        } else {
            LOG_WARN("datadir", "throwing away the unfinished build of shards in %s", build);
            remove_build(build);
        }
    }
    bool present[SAGA_DATADIR_MAX_PARTITIONS] = {0};
    int count = 0, highest = -1;
    if (list_shards(dir, present, SAGA_DATADIR_MAX_PARTITIONS, &count, &highest)) {
        snprintf(err, errlen, "cannot read the data directory %s: %s", dir, strerror(errno));
        return SAGA_EIO;
    }
    bool legacy_there = legacy_db && exists(legacy_db);
    if (legacy_there && count > 0) {
        snprintf(err, errlen,
                 "the data directory %s already holds %d shard file(s) and --db %s is not converted: "
                 "sagad will not mix them; remove --db to run on %s, or move %s aside to convert %s into it",
                 dir, count, legacy_db, dir, dir, legacy_db);
        return SAGA_EINVAL;
    }
    if (legacy_db && !legacy_there) {
        char done[4200];
        snprintf(done, sizeof done, "%s.converted", legacy_db);
        if (!exists(done)) {
            snprintf(err, errlen, "--db %s: no such file (nor %s, which a conversion leaves)", legacy_db, done);
            return SAGA_EINVAL;
        }
    }
    if (count == 0 && restore_missing && !legacy_there) {
        LOG_WARN("datadir", "the data directory %s holds no shard: every shard is restored from the changelog", dir);
        return 0;
    }
    if (count == 0) {
        int lock_fd = -1;
        if (legacy_there) { /* no older sagad may write it meanwhile */
            lock_fd = saga_store_lock(legacy_db, err, errlen);
            if (lock_fd < 0) return SAGA_EINVAL;
            LOG_INFO("datadir", "converting the single-file database %s into %d shards in %s", legacy_db, partitions, dir);
        }
        int rc = build_shards(build, legacy_there ? legacy_db : NULL, partitions, err, errlen);
        if (!rc) rc = finish_build(dir, build, legacy_there ? legacy_db : NULL, err, errlen);
        if (lock_fd >= 0) close(lock_fd);
        if (rc) return rc;
        if (converted) *converted = legacy_there;
        return 0;
    }
    /* the shards there say which P they were made with: another one is refused
     * even when the file count happens to match (shards removed at the end) */
    for (int p = 0; p <= highest && p < SAGA_DATADIR_MAX_PARTITIONS; p++) {
        if (!present[p]) continue;
        char first[4200];
        saga_datadir_shard_path(dir, p, first, sizeof first);
        long long made = recorded_partitions(first);
        if (made > 0 && made != partitions) {
            snprintf(err, errlen,
                     "the data directory %s was created for %lld partitions (%s says so) but sagad runs with "
                     "--partitions %d: a data directory keeps the partition count it was created with; run with "
                     "--partitions %lld (the topics' partition count)",
                     dir, made, first, partitions, made);
            return SAGA_EINVAL;
        }
        break;
    }
    if (count != partitions || highest != partitions - 1) {
        int missing = -1;
        for (int p = 0; p < partitions && missing < 0; p++)
            if (!present[p]) missing = p;
        char some[4200] = "";
        if (restore_missing && highest >= 0 && highest < partitions) saga_datadir_shard_path(dir, highest, some, sizeof some);
        if (some[0] && recorded_partitions(some) == partitions) {
            LOG_WARN("datadir", "the data directory %s lacks %d of its %d shards (first shard-%03d.db): they are "
                     "restored from the changelog", dir, partitions - count, partitions, missing);
            return 0;
        }
        /* shard-000 .. shard-HHH all there: made with another P; else a hole */
        if (highest >= partitions || missing < 0 || count == highest + 1)
            snprintf(err, errlen,
                     "the data directory %s holds %d shard files (up to shard-%03d.db) but sagad runs with "
                     "--partitions %d: a data directory keeps the partition count it was created with; run "
                     "with --partitions %d (the topics' partition count)", dir, count, highest, partitions,
                     highest + 1);
        else
            snprintf(err, errlen,
                     "the data directory %s lacks shard-%03d.db (it holds %d of the %d shards): the sagas of "
                     "that partition would be lost; restore the file, or move the whole directory aside to "
                     "start empty", dir, missing, count, partitions);
        return SAGA_EINVAL;
    }
    return 0;
}

int saga_datadir_prepare(const char *dir, const char *legacy_db, int partitions, const char *synchronous,
                         int *converted, char *err, size_t errlen) {
    return prepare(dir, legacy_db, partitions, synchronous, false, converted, err, errlen);
}

int saga_datadir_prepare_restorable(const char *dir, const char *legacy_db, int partitions,
                                    const char *synchronous, int *converted, char *err, size_t errlen) {
    return prepare(dir, legacy_db, partitions, synchronous, true, converted, err, errlen);
}

saga_store_t *saga_datadir_open_shard(const char *dir, int partition, int partitions,
                                      const saga_store_options_t *opt, char *err, size_t errlen) {
    char path[4200];
    saga_datadir_shard_path(dir, partition, path, sizeof path);
    saga_store_t *st = saga_store_open(path, opt, err, errlen);
    if (!st) return NULL;
    long long p = -1, n = -1;
    int a = saga_store_meta_get(st, "partition", &p), b = saga_store_meta_get(st, "partitions", &n);
    if (a != 1 || b != 1)
        snprintf(err, errlen, "%s is not a shard of a data directory (no partition recorded)", path);
    else if (n != partitions)
        snprintf(err, errlen,
                 "%s was created for %lld partitions but sagad runs with --partitions %d: a data directory "
                 "keeps the partition count it was created with", path, n, partitions);
    else if (p != partition)
        snprintf(err, errlen, "%s holds partition %lld, not %d: shard files were renamed", path, p, partition);
    else
        return st;
    saga_store_close(&st);
    return NULL;
}
