/* The store's outbox (store.h): rows queued for the relay, scanned in id
 * order, deleted once acknowledged, parked when the broker refused them. */
#include <assert.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "saga_error.h"
#include "store_internal.h"

int saga_store_outbox_add_to(saga_store_t *st, const char *topic, int partition, const char *key,
                             const char *headers, const char *payload, size_t payload_len, int64_t now) {
    assert(partition >= -1);
    sqlite3_stmt *q = st->outbox_add;
    saga_store_bind_text(q, 1, topic);
    saga_store_bind_text(q, 2, key);
    saga_store_bind_text(q, 3, headers);
    sqlite3_bind_blob(q, 4, payload ? payload : "", payload ? (int)payload_len : 0, SQLITE_TRANSIENT);
    sqlite3_bind_int64(q, 5, now);
    sqlite3_bind_int(q, 6, partition);
    sqlite3_bind_int(q, 7, payload == NULL ? SAGA_OUTBOX_TOMBSTONE : SAGA_OUTBOX_VALUE);
    return saga_store_run(st, q, "outbox insert");
}

int saga_store_outbox_add_record(saga_store_t *st, const char *topic, int partition, const char *saga_id, int64_t now) {
    assert(partition >= 0);
    sqlite3_stmt *q = st->outbox_add;
    saga_store_bind_text(q, 1, topic);
    saga_store_bind_text(q, 2, saga_id);
    saga_store_bind_text(q, 3, "{}");
    sqlite3_bind_blob(q, 4, "", 0, SQLITE_STATIC);
    sqlite3_bind_int64(q, 5, now);
    sqlite3_bind_int(q, 6, partition);
    sqlite3_bind_int(q, 7, SAGA_OUTBOX_RECORD);
    return saga_store_run(st, q, "outbox insert");
}

int saga_store_outbox_add(saga_store_t *st, const char *topic, const char *key, const char *headers,
                          const char *payload, size_t payload_len, int64_t now) {
    assert(payload);
    return saga_store_outbox_add_to(st, topic, -1, key, headers, payload, payload_len, now);
}

/* The row under q (columns id, topic, key, headers, payload,
 * kafka_partition, tombstone); its strings live until q steps again. */
static saga_outbox_row_t outbox_row(sqlite3_stmt *q) {
    int kind = sqlite3_column_int(q, 6);
    bool tombstone = kind != SAGA_OUTBOX_VALUE;
    return (saga_outbox_row_t){
        .record = kind == SAGA_OUTBOX_RECORD,
        .partition = sqlite3_column_int(q, 5),
        .id = sqlite3_column_int64(q, 0),
        .topic = (const char *)sqlite3_column_text(q, 1),
        .key = (const char *)sqlite3_column_text(q, 2),
        .headers = (const char *)sqlite3_column_text(q, 3),
        .payload = tombstone ? NULL : sqlite3_column_blob(q, 4),
        .payload_len = (size_t)sqlite3_column_bytes(q, 4),
    };
}

int saga_store_outbox_scan(saga_store_t *st, int64_t after_id, int max,
                           int (*fn)(const saga_outbox_row_t *row, void *user), void *user) {
    sqlite3_stmt *q = st->outbox_scan;
    sqlite3_bind_int64(q, 1, after_id);
    sqlite3_bind_int(q, 2, max);
    int n = 0, rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        saga_outbox_row_t row = outbox_row(q);
        n++;
        if (fn(&row, user)) break;
    }
    sqlite3_reset(q);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? n : saga_store_fail(st, "outbox scan");
}

int saga_store_outbox_records(saga_store_t *st, int64_t after_id, int max,
                              int (*fn)(int64_t id, const char *saga_id, void *user), void *user) {
    sqlite3_stmt *q = st->outbox_records;
    sqlite3_bind_int64(q, 1, after_id);
    sqlite3_bind_int(q, 2, max);
    int n = 0, rc, stop = 0;
    while (!stop && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        n++;
        stop = fn(sqlite3_column_int64(q, 0), (const char *)sqlite3_column_text(q, 1), user);
    }
    sqlite3_reset(q);
    if (stop < 0) return stop;
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? n : saga_store_fail(st, "outbox records");
}

static int compare_ids(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Acknowledgements arrive mostly in id order: one range delete per run of
 * consecutive ids instead of one statement per row. */
int saga_store_outbox_delete(saga_store_t *st, int64_t *ids, int n) {
    qsort(ids, (size_t)n, sizeof *ids, compare_ids);
    for (int i = 0; i < n;) {
        int j = i;
        while (j + 1 < n && ids[j + 1] <= ids[j] + 1) j++;
        sqlite3_bind_int64(st->outbox_delete, 1, ids[i]);
        sqlite3_bind_int64(st->outbox_delete, 2, ids[j]);
        int rc = saga_store_run(st, st->outbox_delete, "outbox delete");
        if (rc) return rc;
        i = j + 1;
    }
    return 0;
}

/* Rare statements (the relay's resends and parked rows): prepared per call,
 * not in STORE_STATEMENTS. */
int saga_store_outbox_get(saga_store_t *st, int64_t id, int (*fn)(const saga_outbox_row_t *row, void *user),
                          void *user) {
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(st->db, "SELECT id, topic, key, headers, payload, kafka_partition, tombstone FROM outbox WHERE id = ?", -1, &q,
                           NULL) != SQLITE_OK)
        return saga_store_fail(st, "outbox get");
    sqlite3_bind_int64(q, 1, id);
    int rc = sqlite3_step(q), found = 0;
    if (rc == SQLITE_ROW) {
        saga_outbox_row_t row = outbox_row(q);
        found = 1;
        rc = fn(&row, user);
        if (rc > 0) rc = 0;
    } else if (rc == SQLITE_DONE) {
        rc = 0;
    } else {
        rc = saga_store_fail(st, "outbox get");
    }
    sqlite3_finalize(q);
    return rc < 0 ? rc : found;
}

int saga_store_outbox_park(saga_store_t *st, int64_t id, int64_t now, const char *error, const char *outcome) {
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(st->db,
                           "INSERT OR REPLACE INTO outbox_parked (id, topic, key, headers, payload, created_at,"
                           " parked_at, error, outcome) SELECT id, topic, key, headers, payload, created_at, ?, ?, ?"
                           " FROM outbox WHERE id = ?", -1, &q, NULL) != SQLITE_OK)
        return saga_store_fail(st, "outbox park");
    sqlite3_bind_int64(q, 1, now);
    saga_store_bind_text(q, 2, error);
    saga_store_bind_text(q, 3, outcome);
    sqlite3_bind_int64(q, 4, id);
    int rc = sqlite3_step(q) == SQLITE_DONE ? 0 : saga_store_fail(st, "outbox park");
    sqlite3_finalize(q);
    if (!rc) rc = saga_store_outbox_delete(st, &id, 1);
    return rc;
}

long long saga_store_outbox_backlog(saga_store_t *st) {
    long long n = -1;
    if (sqlite3_step(st->outbox_count) == SQLITE_ROW) n = sqlite3_column_int64(st->outbox_count, 0);
    sqlite3_reset(st->outbox_count);
    return n;
}

int64_t saga_store_outbox_max_id(saga_store_t *st) {
    int64_t id = -1;
    if (sqlite3_step(st->outbox_max_id) == SQLITE_ROW) id = sqlite3_column_int64(st->outbox_max_id, 0);
    sqlite3_reset(st->outbox_max_id);
    return id;
}
