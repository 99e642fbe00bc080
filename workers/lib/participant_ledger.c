/* The participant's ledger: SQLite connection, schema, cached statements, seed data and the processed table. */
#include "participant.h"
#include "participant_internal.h"

#include "saga_alloc.h"
#include "saga_clock.h"
#include "saga_error.h"
#include "saga_json.h"
#include "saga_log.h"
#include "saga_util.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Library tables. `processed` is the idempotency record: one row per
 * idempotency_key that reached a final outcome, with the reply sent. */
static const char LIBRARY_SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS processed ("
    "  idempotency_key TEXT PRIMARY KEY,"
    "  saga_id TEXT NOT NULL,"
    "  step TEXT NOT NULL,"
    "  kind TEXT NOT NULL CHECK (kind IN ('action','compensation')),"
    "  action TEXT NOT NULL,"
    "  status TEXT NOT NULL CHECK (status IN ('success','failure')),"
    "  error_code TEXT,"
    "  noop INTEGER NOT NULL DEFAULT 0,"
    "  command_message_id TEXT NOT NULL,"
    "  attempt INTEGER NOT NULL,"
    "  reply TEXT NOT NULL,"
    "  processed_at TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS processed_saga_step ON processed(saga_id, step, kind);"
    "CREATE TABLE IF NOT EXISTS participant_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);";

const char *participant_now(char *buf, size_t len) { return saga_format_time(saga_now_ms(), buf, len); }

/* ---- SQLite helpers ---------------------------------------------------- */

int participant_exec_sql(sqlite3 *db, const char *sql, char *err, size_t errlen) {
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        if (err) snprintf(err, errlen, "%s", msg ? msg : sqlite3_errmsg(db));
        else LOG_ERROR("participant", "SQL '%.60s' failed: %s", sql, msg ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        return SAGA_ESTORE;
    }
    return 0;
}

static int vbind(sqlite3_stmt *st, const char *types, va_list ap) {
    for (int i = 0; types && types[i]; i++) {
        int rc;
        switch (types[i]) {
        case 't': rc = sqlite3_bind_text(st, i + 1, va_arg(ap, const char *), -1, SQLITE_TRANSIENT); break;
        case 'i': rc = sqlite3_bind_int64(st, i + 1, va_arg(ap, long long)); break;
        case 'n': (void)va_arg(ap, const void *); rc = sqlite3_bind_null(st, i + 1); break;
        default: return SQLITE_MISUSE;
        }
        if (rc != SQLITE_OK) return rc;
    }
    return SQLITE_OK;
}

/* Prepared statements are kept per connection: preparing the same few
 * statements for every command was most of a worker's CPU time
 * (docs/BENCHMARKS.md). Workers run one statement at a time on one thread,
 * so a statement is reset when it is handed out again. */
#define STMT_CACHE_SIZE 32
static _Thread_local struct {
    sqlite3 *db;
    char *sql;
    sqlite3_stmt *st;
} stmt_cache[STMT_CACHE_SIZE];
static _Thread_local int stmt_cache_next;

static sqlite3_stmt *prepare_cached(sqlite3 *db, const char *sql) {
    for (int i = 0; i < STMT_CACHE_SIZE; i++) {
        if (stmt_cache[i].db == db && !strcmp(stmt_cache[i].sql, sql)) {
            sqlite3_reset(stmt_cache[i].st);
            sqlite3_clear_bindings(stmt_cache[i].st);
            return stmt_cache[i].st;
        }
    }
    sqlite3_stmt *st = NULL;
    char *copy = saga_strdup(sql);
    if (!copy || sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK) {
        saga_free(copy);
        sqlite3_finalize(st);
        return NULL;
    }
    int slot = stmt_cache_next;
    stmt_cache_next = (stmt_cache_next + 1) % STMT_CACHE_SIZE;
    if (stmt_cache[slot].st) { /* full: the oldest goes */
        sqlite3_finalize(stmt_cache[slot].st);
        saga_free(stmt_cache[slot].sql);
    }
    stmt_cache[slot].db = db;
    stmt_cache[slot].sql = copy;
    stmt_cache[slot].st = st;
    return st;
}

/* Finalizes db's cached statements (before sqlite3_close). */
void participant_drop_statements(sqlite3 *db) {
    for (int i = 0; i < STMT_CACHE_SIZE; i++) {
        if (stmt_cache[i].db != db) continue;
        sqlite3_finalize(stmt_cache[i].st);
        saga_free(stmt_cache[i].sql);
        stmt_cache[i].db = NULL;
        stmt_cache[i].sql = NULL;
        stmt_cache[i].st = NULL;
    }
}

int participant_exec(sqlite3 *db, const char *sql, const char *types, ...) {
    sqlite3_stmt *st = prepare_cached(db, sql);
    int rc = st ? SQLITE_OK : SQLITE_ERROR;
    if (rc == SQLITE_OK) {
        va_list ap;
        va_start(ap, types);
        rc = vbind(st, types, ap);
        va_end(ap);
    }
    if (rc == SQLITE_OK) {
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {}
        if (rc == SQLITE_DONE) rc = SQLITE_OK;
    }
    if (rc != SQLITE_OK)
        LOG_ERROR("participant", "SQL '%.80s' failed: %s", sql, sqlite3_errmsg(db));
    sqlite3_reset(st);
    return rc == SQLITE_OK ? 0 : SAGA_ESTORE;
}

int participant_query_int(sqlite3 *db, long long *out, const char *sql, const char *types, ...) {
    sqlite3_stmt *st = prepare_cached(db, sql);
    int rc = st ? SQLITE_OK : SQLITE_ERROR;
    if (rc == SQLITE_OK) {
        va_list ap;
        va_start(ap, types);
        rc = vbind(st, types, ap);
        va_end(ap);
    }
    int result = SAGA_ESTORE;
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) { *out = sqlite3_column_int64(st, 0); result = 1; }
        else if (rc == SQLITE_DONE) result = 0;
    }
    if (result < 0) LOG_ERROR("participant", "SQL '%.80s' failed: %s", sql, sqlite3_errmsg(db));
    sqlite3_reset(st);
    return result;
}

/* ---- open / close / seed ---------------------------------------------- */

participant_t *participant_open(const participant_spec_t *spec, const char *db_path, char *err,
                                size_t errlen) {
    participant_t *p = saga_calloc(1, sizeof *p);
    if (!p) { snprintf(err, errlen, "out of memory"); return NULL; }
    p->spec = spec;
    p->rng = saga_random_u64() | 1;
    if (sqlite3_open_v2(db_path, &p->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot open ledger '%s': %s", db_path,
                 p->db ? sqlite3_errmsg(p->db) : "out of memory");
        goto fail;
    }
    sqlite3_busy_timeout(p->db, 5000);
    char why[512];
    if (participant_exec_sql(p->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;",
                 why, sizeof why) ||
        participant_exec_sql(p->db, LIBRARY_SCHEMA, why, sizeof why)) {
        snprintf(err, errlen, "ledger '%s': %s", db_path, why);
        goto fail;
    }
    if (spec->schema_sql && participant_exec_sql(p->db, spec->schema_sql, why, sizeof why)) {
        snprintf(err, errlen, "ledger '%s': %s schema: %s", db_path, spec->name, why);
        goto fail;
    }
    return p;
fail:
    sqlite3_close(p->db);
    saga_free(p);
    return NULL;
}

void participant_close(participant_t **pp) {
    if (!pp || !*pp) return;
    participant_t *p = *pp;
    if (p->in_batch) participant_batch_rollback(p);
    participant_drop_statements(p->db);
    sqlite3_close(p->db);
    saga_free(p);
    *pp = NULL;
}

sqlite3 *participant_db(participant_t *p) { return p->db; }

static int query_exists(sqlite3 *db, const char *sql) {
    sqlite3_stmt *st = NULL;
    int found = 0;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) found = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
    return found;
}

int participant_seed_json(participant_t *p, const json_t *seed, char *err, size_t errlen) {
    const char *name = p->spec->name;
    if (query_exists(p->db, "SELECT 1 FROM participant_meta WHERE key='seeded_at'")) {
        LOG_INFO(name, "ledger already seeded: seed data ignored");
        return 0;
    }
    if (query_exists(p->db, "SELECT 1 FROM processed LIMIT 1")) {
        LOG_WARN(name, "ledger has processed commands: seed data ignored (seed only loads into an empty ledger)");
        return 0;
    }
    if (!json_is_object(seed)) {
        snprintf(err, errlen, "seed data must be a JSON object");
        return SAGA_EPARSE;
    }
    if (participant_exec_sql(p->db, "BEGIN IMMEDIATE", err, errlen)) return SAGA_ESTORE;
    int rc = p->spec->seed ? p->spec->seed(p->db, seed, err, errlen) : 0;
    char now[40];
    if (!rc && participant_exec(p->db, "INSERT INTO participant_meta(key, value) VALUES('seeded_at', ?)", "t",
                                participant_now(now, sizeof now))) {
        snprintf(err, errlen, "recording the seed: %s", sqlite3_errmsg(p->db));
        rc = SAGA_ESTORE;
    }
    if (!rc && participant_exec_sql(p->db, "COMMIT", err, errlen)) rc = SAGA_ESTORE;
    if (rc) {
        participant_exec_sql(p->db, "ROLLBACK", NULL, 0);
        return rc;
    }
    LOG_INFO(name, "ledger seeded");
    return 0;
}

int participant_seed_file(participant_t *p, const char *path, char *err, size_t errlen) {
    size_t len = 0;
    char *text = saga_read_file(path, &len);
    if (!text) {
        snprintf(err, errlen, "cannot read seed file '%s'", path);
        return SAGA_EIO;
    }
    char why[200];
    json_t *seed = saga_json_parse(text, len, why, sizeof why);
    saga_free(text);
    if (!seed) {
        snprintf(err, errlen, "%s: %s", path, why);
        return SAGA_EPARSE;
    }
    char inner[400];
    int rc = participant_seed_json(p, seed, inner, sizeof inner);
    json_decref(seed);
    if (rc) snprintf(err, errlen, "%s: %s", path, inner);
    return rc;
}

/* ---- the processed table ------------------------------------------------ */

/* Looks up the processed row of key; on a hit *reply_out gets the stored
 * reply text (saga_free). 1 found, 0 not, <0 error. */
int participant_lookup_processed(sqlite3 *db, const char *key, char **reply_out, char *status_out,
                                 size_t status_len) {
    sqlite3_stmt *st = prepare_cached(db, "SELECT reply, status FROM processed WHERE idempotency_key = ?");
    if (!st) return SAGA_ESTORE;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    int result = 0;
    if (rc == SQLITE_ROW) {
        if (reply_out) *reply_out = saga_strdup((const char *)sqlite3_column_text(st, 0));
        if (status_out) snprintf(status_out, status_len, "%s", (const char *)sqlite3_column_text(st, 1));
        result = 1;
        if (reply_out && !*reply_out) result = SAGA_ENOMEM;
    } else if (rc != SQLITE_DONE) {
        result = SAGA_ESTORE;
    }
    sqlite3_reset(st);
    return result;
}

/* The processed row of the other kind of the same saga step. Returns 1 and
 * fills key/reply/status when found, 0 when not, <0 on error. */
int participant_lookup_sibling(sqlite3 *db, const char *saga_id, const char *step, const char *kind,
                               char **key_out, char **reply_out, char *status_out, size_t status_len) {
    sqlite3_stmt *st = prepare_cached(db, "SELECT idempotency_key, reply, status FROM processed "
                                          "WHERE saga_id = ? AND step = ? AND kind = ? LIMIT 1");
    if (!st) return SAGA_ESTORE;
    sqlite3_bind_text(st, 1, saga_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, step, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, kind, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st), result = 0;
    if (rc == SQLITE_ROW) {
        result = 1;
        if (key_out) *key_out = saga_strdup((const char *)sqlite3_column_text(st, 0));
        if (reply_out) *reply_out = saga_strdup((const char *)sqlite3_column_text(st, 1));
        if (status_out) snprintf(status_out, status_len, "%s", (const char *)sqlite3_column_text(st, 2));
        if ((key_out && !*key_out) || (reply_out && !*reply_out)) result = SAGA_ENOMEM;
    } else if (rc != SQLITE_DONE) {
        result = SAGA_ESTORE;
    }
    sqlite3_reset(st);
    return result;
}

/* Inserts the processed row and renders the reply (recorded outcomes). */
int participant_record_outcome(participant_t *p, const participant_parsed_t *c, participant_status_t st,
                               const json_t *output, const char *code, const char *msg, int noop,
                               participant_reply_t *out) {
    char *mid = participant_reply_id(c);
    if (!mid) return SAGA_ENOMEM;
    json_t *r = participant_build_reply(c, mid, st, output, code, msg);
    saga_free(mid);
    if (!r) return SAGA_ENOMEM;
    char *text = saga_json_dump(r);
    if (!text) { json_decref(r); return SAGA_ENOMEM; }
    char now[40];
    int rc = participant_exec(
        p->db,
        "INSERT INTO processed(idempotency_key, saga_id, step, kind, action, status, error_code, noop,"
        " command_message_id, attempt, reply, processed_at) VALUES(?,?,?,?,?,?,?,?,?,?,?,?)",
        "tttttttititt", c->cmd.idempotency_key, c->cmd.saga_id, c->cmd.step, participant_kind_name(c->cmd.kind),
        c->cmd.action, participant_status_name(st), st == PARTICIPANT_SUCCESS ? NULL : code,
        (long long)noop, c->cmd.message_id, c->cmd.attempt, text, participant_now(now, sizeof now));
    saga_free(text);
    if (rc) { json_decref(r); return rc; }
    return participant_finish_reply(out, c, r, st);
}
