/* Paused participant topics in a shard's SQLite file (store.h, migration 10). */
#include "store.h"

#include <sqlite3.h>

#include "saga_error.h"
#include "store_internal.h"

static int run(saga_store_t *st, const char *sql, const char *topic, int64_t at, const char *reason) {
    sqlite3_stmt *q = NULL;
    int rc = sqlite3_prepare_v2(saga_store_db(st), sql, -1, &q, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_bind_text(q, 1, topic, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK && reason) rc = sqlite3_bind_int64(q, 2, at);
    if (rc == SQLITE_OK && reason) rc = sqlite3_bind_text(q, 3, reason, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = sqlite3_step(q);
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? 0 : SAGA_ESTORE;
}

int saga_store_pause_set(saga_store_t *st, const char *topic, int64_t paused_at, const char *reason) {
    return run(st, "INSERT OR REPLACE INTO paused_topics (topic, paused_at, reason) VALUES (?1, ?2, ?3)", topic,
               paused_at, reason ? reason : "");
}

int saga_store_pause_clear(saga_store_t *st, const char *topic) {
    return run(st, "DELETE FROM paused_topics WHERE topic = ?1", topic, 0, NULL);
}

int saga_store_paused_topics(saga_store_t *st,
                             void (*fn)(const char *topic, int64_t paused_at, const char *reason, void *user),
                             void *user) {
    sqlite3_stmt *q = NULL;
    int n = 0, rc = sqlite3_prepare_v2(saga_store_db(st), "SELECT topic, paused_at, reason FROM paused_topics ORDER BY topic",
                                       -1, &q, NULL);
    while (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        fn((const char *)sqlite3_column_text(q, 0), sqlite3_column_int64(q, 1), (const char *)sqlite3_column_text(q, 2),
           user);
        n++;
        rc = SQLITE_OK;
    }
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? n : SAGA_ESTORE;
}
