/* Participant library: ledger, command processing, idempotency.
 * The Kafka runner is in participant_run.c, the CLI in participant_main.c. */
#include "participant.h"
#include "participant_internal.h"

#include "saga_alloc.h"
#include "saga_clock.h"
#include "saga_error.h"
#include "saga_json.h"
#include "saga_log.h"
#include "saga_utf8.h"
#include "saga_util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

const char *participant_status_name(participant_status_t s) {
    switch (s) {
#define PARTICIPANT_STATUS_NAME(name, str) case PARTICIPANT_##name: return str;
        PARTICIPANT_STATUS_MAP(PARTICIPANT_STATUS_NAME)
#undef PARTICIPANT_STATUS_NAME
    }
    return "unknown";
}

static int set_outcome(participant_result_t *r, participant_status_t st, const char *code,
                       const char *fmt, va_list ap) {
    r->status = st;
    saga_utf8_copy(r->error_code, sizeof r->error_code, code);
    vsnprintf(r->error_message, sizeof r->error_message, fmt, ap);
    saga_utf8_trim_cut(r->error_message); /* a long text is cut on a character boundary: it goes into JSON */
    return 0;
}

int participant_fail(participant_result_t *r, const char *code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    set_outcome(r, PARTICIPANT_FAILURE, code, fmt, ap);
    va_end(ap);
    return 0;
}

int participant_retry(participant_result_t *r, const char *code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    set_outcome(r, PARTICIPANT_RETRY, code, fmt, ap);
    va_end(ap);
    return 0;
}

const char *participant_now(char *buf, size_t len) { return saga_format_time(saga_now_ms(), buf, len); }

/* ---- SQLite helpers ---------------------------------------------------- */

static int exec_sql(sqlite3 *db, const char *sql, char *err, size_t errlen) {
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
static void drop_cached(sqlite3 *db) {
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
    if (exec_sql(p->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;",
                 why, sizeof why) ||
        exec_sql(p->db, LIBRARY_SCHEMA, why, sizeof why)) {
        snprintf(err, errlen, "ledger '%s': %s", db_path, why);
        goto fail;
    }
    if (spec->schema_sql && exec_sql(p->db, spec->schema_sql, why, sizeof why)) {
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
    drop_cached(p->db);
    sqlite3_close(p->db);
    saga_free(p);
    *pp = NULL;
}

sqlite3 *participant_db(participant_t *p) { return p->db; }

void participant_set_faults(participant_t *p, const participant_faults_t *f) {
    p->faults = *f;
    if (f->rng_seed) p->rng = f->rng_seed | 1;
}

long long participant_processed_count(const participant_t *p) { return p->processed; }

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
    if (exec_sql(p->db, "BEGIN IMMEDIATE", err, errlen)) return SAGA_ESTORE;
    int rc = p->spec->seed ? p->spec->seed(p->db, seed, err, errlen) : 0;
    char now[40];
    if (!rc && participant_exec(p->db, "INSERT INTO participant_meta(key, value) VALUES('seeded_at', ?)", "t",
                                participant_now(now, sizeof now))) {
        snprintf(err, errlen, "recording the seed: %s", sqlite3_errmsg(p->db));
        rc = SAGA_ESTORE;
    }
    if (!rc && exec_sql(p->db, "COMMIT", err, errlen)) rc = SAGA_ESTORE;
    if (rc) {
        exec_sql(p->db, "ROLLBACK", NULL, 0);
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

/* ---- replies ----------------------------------------------------------- */

void participant_reply_clear(participant_reply_t *r) {
    if (!r) return;
    saga_free(r->body);
    saga_free(r->topic);
    saga_free(r->key);
    saga_free(r->message_id);
    memset(r, 0, sizeof *r);
}

static double next_random(participant_t *p) {
    /* xorshift64*: fault injection only, never for ids. */
    p->rng ^= p->rng >> 12;
    p->rng ^= p->rng << 25;
    p->rng ^= p->rng >> 27;
    return (double)((p->rng * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

static int roll(participant_t *p, double rate) { return rate > 0 && next_random(p) < rate; }

/* The readable part of a command (all borrowed from `doc`). */
typedef struct {
    json_t *doc;
    participant_command_t cmd;
    const char *reply_to;
    int kind_ok, attempt_ok;
} parsed_t;

static const char *kind_name(participant_kind_t k) {
    return k == PARTICIPANT_ACTION ? "action" : "compensation";
}

/* Builds a reply object. output (borrowed, may be NULL) only for success. */
static json_t *build_reply(const parsed_t *c, const char *message_id, participant_status_t st,
                           const json_t *output, const char *code, const char *msg) {
    json_t *r = json_object();
    if (!r) return NULL;
    int bad = 0;
    bad |= json_object_set_new(r, "type", json_string("saga.reply"));
    bad |= json_object_set_new(r, "message_id", json_string(message_id));
    bad |= json_object_set_new(r, "in_reply_to", json_string(c->cmd.message_id));
    bad |= json_object_set_new(r, "saga_id", json_string(c->cmd.saga_id));
    bad |= json_object_set_new(r, "step", json_string(c->cmd.step));
    if (c->kind_ok) bad |= json_object_set_new(r, "kind", json_string(kind_name(c->cmd.kind)));
    if (c->attempt_ok) bad |= json_object_set_new(r, "attempt", json_integer(c->cmd.attempt));
    bad |= json_object_set_new(r, "status", json_string(participant_status_name(st)));
    if (st == PARTICIPANT_SUCCESS) {
        bad |= json_object_set_new(r, "output", output ? json_deep_copy(output) : json_object());
    } else {
        json_t *e = json_object();
        if (e) {
            bad |= json_object_set_new(e, "code", json_string(code && *code ? code : "UNSPECIFIED"));
            bad |= json_object_set_new(e, "message", json_string(msg ? msg : ""));
        }
        bad |= json_object_set_new(r, "error", e);
    }
    if (bad) { json_decref(r); return NULL; }
    return r;
}

static char *fmt_alloc(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *fmt_alloc(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return NULL;
    char *s = saga_malloc((size_t)n + 1);
    if (!s) return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

/* Fills out from a reply object (consumed). */
static int finish_reply(participant_reply_t *out, const parsed_t *c, json_t *reply,
                        participant_status_t st) {
    if (!reply) return SAGA_ENOMEM;
    out->body = saga_json_dump(reply);
    out->message_id = saga_strdup(saga_json_str(reply, "message_id"));
    json_decref(reply);
    out->topic = saga_strdup(c->reply_to);
    out->key = saga_strdup(c->cmd.saga_id);
    out->status = st;
    if (!out->body || !out->topic || !out->key || !out->message_id) {
        participant_reply_clear(out);
        return SAGA_ENOMEM;
    }
    return 0;
}

/* A reply that is not recorded (malformed command, transient outcome). */
static int unrecorded_reply(participant_t *p, const parsed_t *c, participant_reply_t *out,
                            participant_status_t st, const char *code, const char *msg) {
    char *mid;
    if (st == PARTICIPANT_RETRY) {
        /* Not a stable answer (the next delivery runs again), so not a
         * deterministic id either: sagad treats a later different answer
         * for the same attempt as stale instead of as a duplicate. */
        char rnd[40];
        saga_random_id("t-", rnd, sizeof rnd);
        mid = fmt_alloc("r-%s/%lld/%s", c->cmd.idempotency_key ? c->cmd.idempotency_key : c->cmd.message_id,
                        c->cmd.attempt, rnd);
    } else {
        mid = fmt_alloc("r-%s", c->cmd.message_id);
    }
    if (!mid) return SAGA_ENOMEM;
    json_t *r = build_reply(c, mid, st, NULL, code, msg);
    saga_free(mid);
    return finish_reply(out, c, r, st);
}

/* ---- parsing ------------------------------------------------------------ */

static const char *nonempty(const json_t *o, const char *k) {
    const char *s = saga_json_str(o, k);
    return s && *s ? s : NULL;
}

/* 0, or SAGA_EPARSE with the reason in why. Fields that could be read are
 * left in c even on error (for a failure reply). */
static int parse_command(const char *bytes, size_t len, parsed_t *c, char *why, size_t whylen) {
    memset(c, 0, sizeof *c);
    char jerr[160];
    c->doc = saga_json_parse(bytes, len, jerr, sizeof jerr);
    if (!c->doc) { snprintf(why, whylen, "invalid JSON: %s", jerr); return SAGA_EPARSE; }
    if (!json_is_object(c->doc)) { snprintf(why, whylen, "command is not a JSON object"); return SAGA_EPARSE; }
    json_t *d = c->doc;
    participant_command_t *cmd = &c->cmd;
    cmd->message_id = nonempty(d, "message_id");
    cmd->saga_id = nonempty(d, "saga_id");
    cmd->step = nonempty(d, "step");
    cmd->action = nonempty(d, "action");
    cmd->idempotency_key = nonempty(d, "idempotency_key");
    cmd->definition = saga_json_str(d, "definition");
    c->reply_to = nonempty(d, "reply_to");
    const char *kind = saga_json_str(d, "kind");
    if (kind && !strcmp(kind, "action")) { cmd->kind = PARTICIPANT_ACTION; c->kind_ok = 1; }
    else if (kind && !strcmp(kind, "compensation")) { cmd->kind = PARTICIPANT_COMPENSATION; c->kind_ok = 1; }
    c->attempt_ok = saga_json_int(d, "attempt", &cmd->attempt) == 0 && cmd->attempt >= 1;
    cmd->payload = json_object_get(d, "payload");

    const char *type = saga_json_str(d, "type");
    const char *missing = NULL;
    if (!type || strcmp(type, "saga.command")) {
        snprintf(why, whylen, "\"type\" is %s%.*s%s, expected \"saga.command\"", type ? "\"" : "",
                 type ? saga_utf8_prefix(type, 64) : 7, type ? type : "missing", type ? "\"" : "");
        return SAGA_EPARSE;
    }
    if (!cmd->message_id) missing = "message_id";
    else if (!cmd->saga_id) missing = "saga_id";
    else if (!cmd->step) missing = "step";
    else if (!c->reply_to) missing = "reply_to";
    else if (!cmd->action) missing = "action";
    else if (!cmd->idempotency_key) missing = "idempotency_key";
    if (missing) {
        snprintf(why, whylen, "\"%s\" is missing or not a non-empty string", missing);
        return SAGA_EPARSE;
    }
    if (!c->kind_ok) {
        snprintf(why, whylen, "\"kind\" must be \"action\" or \"compensation\"");
        return SAGA_EPARSE;
    }
    if (!c->attempt_ok) {
        snprintf(why, whylen, "\"attempt\" must be an integer >= 1");
        return SAGA_EPARSE;
    }
    if (!json_is_object(cmd->payload)) {
        snprintf(why, whylen, "\"payload\" must be a JSON object");
        return SAGA_EPARSE;
    }
    return 0;
}

static int reply_readable(const parsed_t *c) {
    /* Only answer what claims to be a command: anything else on the topic
     * (a start event, junk) has no one waiting for a reply. */
    const char *type = c->doc ? saga_json_str(c->doc, "type") : NULL;
    return type && !strcmp(type, "saga.command") && c->cmd.message_id && c->cmd.saga_id && c->cmd.step &&
           c->reply_to;
}

/* ---- processing --------------------------------------------------------- */

static const participant_handler_t *find_handler(const participant_t *p, const char *action,
                                                 participant_kind_t kind, int *wrong_kind) {
    *wrong_kind = 0;
    for (const participant_handler_t *h = p->spec->handlers; h && h->action; h++) {
        if (strcmp(h->action, action)) continue;
        if (h->kind == kind) return h;
        *wrong_kind = 1;
    }
    return NULL;
}

/* Looks up the processed row of key; on a hit *reply_out gets the stored
 * reply text (saga_free). 1 found, 0 not, <0 error. */
static int lookup_processed(sqlite3 *db, const char *key, char **reply_out, char *status_out,
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
static int lookup_sibling(sqlite3 *db, const char *saga_id, const char *step, const char *kind,
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

/* Re-renders a stored reply for the current command. */
static int resend_stored(const parsed_t *c, const char *stored, participant_reply_t *out) {
    json_t *r = saga_json_parse(stored, strlen(stored), NULL, 0);
    if (!json_is_object(r)) { json_decref(r); return SAGA_ESTORE; }
    char *mid = fmt_alloc("r-%s/%lld", c->cmd.idempotency_key, c->cmd.attempt);
    if (!mid) { json_decref(r); return SAGA_ENOMEM; }
    int bad = json_object_set_new(r, "message_id", json_string(mid));
    bad |= json_object_set_new(r, "in_reply_to", json_string(c->cmd.message_id));
    bad |= json_object_set_new(r, "attempt", json_integer(c->cmd.attempt));
    saga_free(mid);
    if (bad) { json_decref(r); return SAGA_ENOMEM; }
    const char *st = saga_json_str(r, "status");
    participant_status_t status = st && !strcmp(st, "success") ? PARTICIPANT_SUCCESS : PARTICIPANT_FAILURE;
    int rc = finish_reply(out, c, r, status);
    out->duplicate = 1;
    return rc;
}

/* Inserts the processed row and renders the reply (recorded outcomes). */
static int record_outcome(participant_t *p, const parsed_t *c, participant_status_t st,
                          const json_t *output, const char *code, const char *msg, int noop,
                          participant_reply_t *out) {
    char *mid = fmt_alloc("r-%s/%lld", c->cmd.idempotency_key, c->cmd.attempt);
    if (!mid) return SAGA_ENOMEM;
    json_t *r = build_reply(c, mid, st, output, code, msg);
    saga_free(mid);
    if (!r) return SAGA_ENOMEM;
    char *text = saga_json_dump(r);
    if (!text) { json_decref(r); return SAGA_ENOMEM; }
    char now[40];
    int rc = participant_exec(
        p->db,
        "INSERT INTO processed(idempotency_key, saga_id, step, kind, action, status, error_code, noop,"
        " command_message_id, attempt, reply, processed_at) VALUES(?,?,?,?,?,?,?,?,?,?,?,?)",
        "tttttttititt", c->cmd.idempotency_key, c->cmd.saga_id, c->cmd.step, kind_name(c->cmd.kind),
        c->cmd.action, participant_status_name(st), st == PARTICIPANT_SUCCESS ? NULL : code,
        (long long)noop, c->cmd.message_id, c->cmd.attempt, text, participant_now(now, sizeof now));
    saga_free(text);
    if (rc) { json_decref(r); return rc; }
    return finish_reply(out, c, r, st);
}

static int savepoint(participant_t *p, const char *sql) { return exec_sql(p->db, sql, NULL, 0); }

static void log_cmd(saga_log_level_t lvl, const participant_t *p, const parsed_t *c, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void log_cmd(saga_log_level_t lvl, const participant_t *p, const parsed_t *c, const char *fmt, ...) {
    if (!saga_log_enabled(lvl)) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    saga_utf8_trim_cut(msg);
    saga_log_ctx_t ctx = {c->cmd.saga_id, c->cmd.step, NULL};
    saga_log(lvl, p->spec->name, &ctx, "%s", msg);
}

/* The decision for one valid command; inside the savepoint "cmd". */
static int decide(participant_t *p, parsed_t *c, participant_reply_t *out) {
    sqlite3 *db = p->db;
    participant_command_t *cmd = &c->cmd;

    char *stored = NULL;
    char status[16] = "";
    int rc = lookup_processed(db, cmd->idempotency_key, &stored, status, sizeof status);
    if (rc < 0) return rc;
    if (rc == 1) {
        rc = resend_stored(c, stored, out);
        saga_free(stored);
        log_cmd(SAGA_LOG_INFO, p, c, "duplicate %s %s (attempt %lld): stored %s reply re-sent, nothing ran",
                kind_name(cmd->kind), cmd->action, cmd->attempt, status);
        return rc;
    }

    int wrong_kind;
    const participant_handler_t *h = find_handler(p, cmd->action, cmd->kind, &wrong_kind);
    if (!h) {
        log_cmd(SAGA_LOG_ERROR, p, c, "unknown %s '%s' (message %s)%s", kind_name(cmd->kind), cmd->action,
                cmd->message_id, wrong_kind ? ": registered with the other kind" : "");
        char msg[256];
        snprintf(msg, sizeof msg, "%s does not handle %s '%s'", p->spec->name, kind_name(cmd->kind), cmd->action);
        saga_utf8_trim_cut(msg);
        rc = unrecorded_reply(p, c, out, PARTICIPANT_FAILURE, "UNKNOWN_ACTION", msg);
        return rc ? rc : SAGA_EPARSE;
    }

    participant_result_t res;
    memset(&res, 0, sizeof res);
    res.status = PARTICIPANT_SUCCESS;
    char *sibling_key = NULL, *sibling_reply = NULL;
    json_t *action_reply = NULL;
    int noop = 0, ran = 0;

    if (cmd->kind == PARTICIPANT_ACTION) {
        rc = lookup_sibling(db, cmd->saga_id, cmd->step, "compensation", NULL, NULL, NULL, 0);
        if (rc < 0) goto done;
        if (rc == 1) {
            log_cmd(SAGA_LOG_WARN, p, c, "late action %s (attempt %lld) after its compensation: refused, nothing ran",
                    cmd->action, cmd->attempt);
            participant_fail(&res, "COMPENSATED_BEFORE_ACTION",
                             "step %s of saga %s was already compensated; the action is refused", cmd->step,
                             cmd->saga_id);
            noop = 1;
        }
    } else {
        char sib_status[16] = "";
        rc = lookup_sibling(db, cmd->saga_id, cmd->step, "action", &sibling_key, &sibling_reply, sib_status,
                            sizeof sib_status);
        if (rc < 0) goto done;
        if (rc == 0 || strcmp(sib_status, "success")) {
            log_cmd(SAGA_LOG_INFO, p, c, "compensation %s: the action %s here, no-op recorded", cmd->action,
                    rc == 0 ? "never ran" : "did not succeed");
            noop = 1;
        } else {
            action_reply = saga_json_parse(sibling_reply, strlen(sibling_reply), NULL, 0);
            json_t *o = action_reply ? json_object_get(action_reply, "output") : NULL;
            cmd->action_key = sibling_key;
            cmd->action_output = o ? o : json_null();
        }
    }
    rc = 0;

    if (!noop) {
        if (roll(p, p->faults.retry_rate)) {
            participant_retry(&res, "INJECTED_TRANSIENT", "fault injection: transient failure (--retry-rate)");
        } else if (cmd->kind == PARTICIPANT_ACTION && roll(p, p->faults.fail_rate)) {
            participant_fail(&res, "INJECTED_FAILURE", "fault injection: business failure (--fail-rate)");
            noop = 1;
        } else {
            if ((rc = savepoint(p, "SAVEPOINT handler"))) goto done;
            rc = h->fn(db, cmd, &res, p->spec->user);
            ran = 1;
            if (rc < 0 || res.status != PARTICIPANT_SUCCESS) {
                /* Business failure, transient or ledger error: the handler's
                 * changes are undone. */
                if (savepoint(p, "ROLLBACK TO handler") || savepoint(p, "RELEASE handler")) rc = SAGA_ESTORE;
            } else if (savepoint(p, "RELEASE handler")) {
                rc = SAGA_ESTORE;
            }
            if (rc < 0) {
                log_cmd(SAGA_LOG_ERROR, p, c, "%s %s: ledger error (%s)", kind_name(cmd->kind), cmd->action,
                        saga_strerror(rc));
                goto done;
            }
        }
    }

    if (res.status == PARTICIPANT_RETRY) {
        log_cmd(SAGA_LOG_WARN, p, c, "%s %s attempt %lld: transient %s: %s (not recorded)", kind_name(cmd->kind),
                cmd->action, cmd->attempt, res.error_code, res.error_message);
        rc = unrecorded_reply(p, c, out, PARTICIPANT_RETRY, res.error_code, res.error_message);
        goto done;
    }
    json_t *output = res.output;
    json_t *noop_out = NULL;
    if (res.status == PARTICIPANT_SUCCESS && noop) {
        noop_out = json_pack("{s:b}", "noop", 1);
        output = noop_out;
    }
    rc = record_outcome(p, c, res.status, output, res.error_code, res.error_message, noop, out);
    json_decref(noop_out);
    if (!rc)
        log_cmd(res.status == PARTICIPANT_SUCCESS ? SAGA_LOG_DEBUG : SAGA_LOG_INFO, p, c,
                "%s %s attempt %lld: %s%s%s%s", kind_name(cmd->kind), cmd->action, cmd->attempt,
                participant_status_name(res.status), res.status == PARTICIPANT_SUCCESS ? "" : " ",
                res.error_code, ran ? "" : " (handler not run)");
done:
    json_decref(res.output);
    json_decref(action_reply);
    saga_free(sibling_key);
    saga_free(sibling_reply);
    return rc;
}

static void sleep_ms(long long ms) {
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {}
}

int participant_batch_process(participant_t *p, const char *bytes, size_t len, const char *where,
                              participant_reply_t *out) {
    memset(out, 0, sizeof *out);
    if (!where) where = "(direct)";
    parsed_t c;
    char why[300];
    int rc = parse_command(bytes, len, &c, why, sizeof why);
    if (rc) {
        saga_log_ctx_t ctx = {c.cmd.saga_id, c.cmd.step, NULL};
        saga_log(SAGA_LOG_ERROR, p->spec->name, &ctx, "malformed command at %s skipped: %s", where, why);
        if (reply_readable(&c) && unrecorded_reply(p, &c, out, PARTICIPANT_FAILURE, "MALFORMED_COMMAND", why))
            participant_reply_clear(out);
        json_decref(c.doc);
        return SAGA_EPARSE;
    }
    if (!p->in_batch || p->batch_broken) {
        rc = SAGA_ESTORE;
    } else {
        if (p->faults.delay_ms > 0) sleep_ms(p->faults.delay_ms);
        rc = savepoint(p, "SAVEPOINT cmd");
        if (!rc) {
            rc = decide(p, &c, out);
            if (rc < 0 && rc != SAGA_EPARSE) {
                participant_reply_clear(out);
                if (savepoint(p, "ROLLBACK TO cmd")) rc = SAGA_ESTORE;
            }
            if (savepoint(p, "RELEASE cmd")) rc = SAGA_ESTORE;
        }
        /* An I/O error or a full disk can make SQLite roll the whole
         * transaction back: the batch cannot be committed any more. */
        if (sqlite3_get_autocommit(p->db)) p->batch_broken = 1;
    }
    if (rc == SAGA_ESTORE || (rc < 0 && rc != SAGA_EPARSE)) {
        participant_reply_clear(out);
        saga_log_ctx_t ctx = {c.cmd.saga_id, c.cmd.step, NULL};
        saga_log(SAGA_LOG_ERROR, p->spec->name, &ctx, "command %s at %s: %s%s%s; nothing applied, replying retry",
                 c.cmd.message_id, where, saga_strerror(rc), rc == SAGA_ESTORE ? ": " : "",
                 rc == SAGA_ESTORE ? sqlite3_errmsg(p->db) : "");
        if (unrecorded_reply(p, &c, out, PARTICIPANT_RETRY, "LEDGER_ERROR", "the participant's ledger failed"))
            participant_reply_clear(out);
        rc = SAGA_ESTORE;
    } else if (rc == 0) {
        p->processed++;
        p->batch_count++;
        if (roll(p, p->faults.no_reply_rate)) {
            log_cmd(SAGA_LOG_WARN, p, &c, "fault injection: reply %s not sent (--no-reply-rate)",
                    out->message_id ? out->message_id : "?");
            saga_free(out->body);
            out->body = NULL;
            out->suppressed = 1;
        }
    }
    json_decref(c.doc);
    return rc;
}

int participant_batch_begin(participant_t *p) {
    if (p->in_batch) return SAGA_ESTATE;
    if (exec_sql(p->db, "BEGIN IMMEDIATE", NULL, 0)) return SAGA_ESTORE;
    p->in_batch = 1;
    p->batch_broken = 0;
    p->batch_count = 0;
    return 0;
}

void participant_batch_rollback(participant_t *p) {
    if (!p->in_batch) return;
    if (!sqlite3_get_autocommit(p->db)) exec_sql(p->db, "ROLLBACK", NULL, 0);
    p->processed -= p->batch_count;
    p->in_batch = 0;
    p->batch_broken = 0;
    p->batch_count = 0;
}

int participant_batch_commit(participant_t *p) {
    if (!p->in_batch) return SAGA_ESTATE;
    if (p->batch_broken || exec_sql(p->db, "COMMIT", NULL, 0)) {
        LOG_ERROR(p->spec->name, "ledger commit failed: %s; batch rolled back", sqlite3_errmsg(p->db));
        participant_batch_rollback(p);
        return SAGA_ESTORE;
    }
    p->in_batch = 0;
    p->batch_count = 0;
    if (p->faults.crash_after > 0 && p->processed >= p->faults.crash_after) {
        LOG_ERROR(p->spec->name, "fault injection: abort() after %lld commands (--crash-after)", p->processed);
        abort();
    }
    return 0;
}

int participant_process(participant_t *p, const char *bytes, size_t len, const char *where,
                        participant_reply_t *out) {
    memset(out, 0, sizeof *out);
    int brc = participant_batch_begin(p);
    int rc = participant_batch_process(p, bytes, len, where, out);
    if (brc) return rc == SAGA_EPARSE ? rc : SAGA_ESTORE;
    if (participant_batch_commit(p)) {
        if (rc == SAGA_EPARSE) return rc; /* nothing was written for it */
        /* The outcome is lost with the transaction: answer transient so
         * sagad asks again. */
        participant_lost_reply(p, bytes, len, out);
        return SAGA_ESTORE;
    }
    return rc;
}

void participant_lost_reply(participant_t *p, const char *bytes, size_t len, participant_reply_t *out) {
    participant_reply_clear(out);
    parsed_t c;
    char why[300];
    if (parse_command(bytes, len, &c, why, sizeof why) == 0 &&
        unrecorded_reply(p, &c, out, PARTICIPANT_RETRY, "LEDGER_ERROR", "the participant's ledger commit failed"))
        participant_reply_clear(out);
    json_decref(c.doc);
}
