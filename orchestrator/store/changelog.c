/* The changelog codec, encode side (changelog.h): a saga's or a
 * definition's rows as one record value, the record keys, the shard's
 * changelog marker, and the prepared statements both sides share.
 *
 * What a saga record holds is exactly what the shard keeps for that saga:
 * its sagas row (start_message_id included: starts stay idempotent on their
 * message id after a restore, saga_store_start_seen), its steps rows (the
 * loop rebuilds its flow-control state from them, saga_store_active_steps),
 * its history rows (GET ?at= replays them) and its timers rows.
 *
 * What no record holds, and why:
 *  - dedup: an optimisation, not state. The engine refuses a reply it has
 *    seen (attempt numbers and step statuses: SAGA_ESTALE), a start is
 *    refused by its saga id or sagas.start_message_id, which the record
 *    carries; and with Kafka transactions the consumed offsets commit with
 *    the records, so a restored shard does not consume them again.
 *  - outbox: the messages a change produces go out in the same Kafka
 *    transaction as the change's record; once the record is committed, so
 *    are they (a restore must not send them again).
 *  - outbox_parked: what the broker refused for good, kept for operators on
 *    that disk; its consequence (the step failed, the stub sent) is in the
 *    saga's steps and history, which the record carries.
 *  - definitions: not repeated in every saga record (a definition is
 *    kilobytes, a shard holds 100,000 sagas); a record of its own under key
 *    def/NAME/VERSION, produced to the shard's partition before the first
 *    saga record that needs it, and the saga record names the hash it ran
 *    on (definition_hash) so that a mismatch is caught on apply. */
#include "changelog.h"

#include <assert.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "changelog_internal.h"
#include "messages.h"
#include "saga_alloc.h"
#include "saga_error.h"
#include "saga_json.h"
#include "store_internal.h"

static void slot_clear(saga_changelog_stmts_t *c, saga_history_slot_t *slot) {
    c->history_bytes -= slot->text.cap;
    saga_json_buf_free(&slot->text);
    *slot = (saga_history_slot_t){0};
}

static void clear_slots(saga_changelog_stmts_t *c) {
    for (int i = 0; c->history && i < SAGA_HISTORY_SLOTS; i++) slot_clear(c, &c->history[i]);
}

static void free_history(saga_changelog_stmts_t *c) {
    clear_slots(c);
    saga_free(c->history);
    c->history = NULL;
}

static void free_statements(void *p) {
    saga_changelog_stmts_t *c = p;
    free_history(c);
#define CL_FINALIZE(name, sql) sqlite3_finalize(c->name);
    CHANGELOG_STATEMENTS(CL_FINALIZE)
#undef CL_FINALIZE
    saga_free(c);
}

saga_changelog_stmts_t *saga_changelog_stmts(saga_store_t *st) {
    saga_changelog_stmts_t *c = saga_store_ext(st);
    if (c) return c;
    c = saga_calloc(1, sizeof *c);
    if (!c) return NULL;
    sqlite3 *db = saga_store_db(st);
#define CL_PREPARE(name, sql)                                                                   \
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &c->name, NULL) != SQLITE_OK) { \
        free_statements(c);                                                                     \
        return NULL;                                                                            \
    }
    CHANGELOG_STATEMENTS(CL_PREPARE)
#undef CL_PREPARE
    saga_store_set_ext(st, c, free_statements);
    return c;
}

saga_changelog_key_kind_t saga_changelog_key_kind(const char *key, size_t len) {
    if (!key || len == 0) return SAGA_CHANGELOG_KEY_INVALID;
    size_t plen = sizeof SAGA_CHANGELOG_DEF_PREFIX - 1;
    if (len > plen && memcmp(key, SAGA_CHANGELOG_DEF_PREFIX, plen) == 0) return SAGA_CHANGELOG_KEY_DEFINITION;
    size_t pause = sizeof SAGA_CHANGELOG_PAUSE_PREFIX - 1;
    if (len > pause && memcmp(key, SAGA_CHANGELOG_PAUSE_PREFIX, pause) == 0) { /* a Kafka topic name */
        if (len - pause > 249) return SAGA_CHANGELOG_KEY_INVALID;
        for (size_t i = pause; i < len; i++) {
            char ch = key[i];
            if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
                  ch == '_' || ch == '-'))
                return SAGA_CHANGELOG_KEY_INVALID;
        }
        return SAGA_CHANGELOG_KEY_PAUSE;
    }
    if (len >= SAGA_ID_MAX || memchr(key, '\0', len)) return SAGA_CHANGELOG_KEY_INVALID;
    char id[SAGA_ID_MAX];
    memcpy(id, key, len);
    id[len] = '\0';
    return saga_valid_id(id, 0) ? SAGA_CHANGELOG_KEY_SAGA : SAGA_CHANGELOG_KEY_INVALID;
}

int saga_changelog_definition_key(const char *name, int version, char *buf, size_t len) {
    int n = snprintf(buf, len, SAGA_CHANGELOG_DEF_PREFIX "%s/%d", name, version);
    return n < 0 || (size_t)n >= len ? SAGA_EINVAL : n;
}

int saga_changelog_pause_key(const char *topic, char *buf, size_t len) {
    int n = snprintf(buf, len, SAGA_CHANGELOG_PAUSE_PREFIX "%s", topic);
    return n < 0 || (size_t)n >= len ? SAGA_EINVAL : n;
}

char *saga_changelog_encode_pause(const char *topic, int64_t paused_at, const char *reason) {
    json_t *v = json_pack("{s:i, s:{s:s, s:I, s:s}}", "v", SAGA_CHANGELOG_VERSION, "pause", "topic", topic, "paused_at",
                          (json_int_t)paused_at, "reason", reason ? reason : "");
    char *text = v ? saga_json_dump(v) : NULL;
    json_decref(v);
    return text;
}

void saga_changelog_key_text(const char *key, size_t len, char *buf, size_t buflen) {
    size_t n = 0;
    for (size_t i = 0; key && i < len && n + 4 < buflen; i++) {
        unsigned char c = (unsigned char)key[i];
        buf[n++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
        if (n >= 120) {
            memcpy(buf + n, "...", 3);
            n += 3;
            break;
        }
    }
    buf[n] = '\0';
}

/* ---- encode ------------------------------------------------------------------ */

/* The record is written as text (saga_json_buf_t), column by column: no
 * json_t tree, and the stored JSON columns (written by saga_json_dump) are
 * embedded as their text after a syntax check instead of being parsed and
 * dumped again (docs/BENCHMARKS.md, "Changelog encoding"). The bytes are
 * those of the tree the encoder built before (test_changelog_text). */

/* "name": with the separator before it: "{" opens an object, "," follows a member */
#define OPEN(b, name) saga_json_buf_raw(b, "{\"" name "\":", sizeof "{\"" name "\":" - 1)
#define MEMBER(b, name) saga_json_buf_raw(b, ",\"" name "\":", sizeof ",\"" name "\":" - 1)

/* A text value as a JSON string, NULL as null. */
static void text_or_null(saga_json_buf_t *b, const char *t, size_t n) {
    if (t) saga_json_buf_string(b, t, n);
    else saga_json_buf_raw(b, "null", 4);
}

/* A JSON text embedded as its value, NULL as null; *bad set when it is
 * not JSON. */
static void json_or_null(saga_json_buf_t *b, const char *t, size_t n, int *bad) {
    if (!t) saga_json_buf_raw(b, "null", 4);
    else if (saga_json_buf_json(b, t, n) == SAGA_EPARSE) *bad = 1;
}

/* A column's text and its length, the arguments of the two above. */
#define COL_TEXT(q, i) (const char *)sqlite3_column_text(q, i), (size_t)sqlite3_column_bytes(q, i)

static void col_text(saga_json_buf_t *b, sqlite3_stmt *q, int col) { text_or_null(b, COL_TEXT(q, col)); }
static void col_json(saga_json_buf_t *b, sqlite3_stmt *q, int col, int *bad) { json_or_null(b, COL_TEXT(q, col), bad); }

static void col_int(saga_json_buf_t *b, sqlite3_stmt *q, int col) { saga_json_buf_int(b, sqlite3_column_int64(q, col)); }

static void encode_saga_row(sqlite3_stmt *q, const char *id, saga_json_buf_t *b, int *bad) {
    OPEN(b, "id");
    saga_json_buf_string(b, id, strlen(id));
    MEMBER(b, "definition"), col_text(b, q, 0);
    MEMBER(b, "version"), col_int(b, q, 1);
    MEMBER(b, "definition_hash"), col_text(b, q, 13);
    MEMBER(b, "status"), col_text(b, q, 2);
    MEMBER(b, "input"), col_json(b, q, 3, bad);
    MEMBER(b, "traceparent"), col_text(b, q, 4);
    MEMBER(b, "start_message_id"), col_text(b, q, 5);
    MEMBER(b, "created_at"), col_int(b, q, 6);
    MEMBER(b, "updated_at"), col_int(b, q, 7);
    MEMBER(b, "deadline_at"), col_int(b, q, 8);
    MEMBER(b, "seq"), col_int(b, q, 9);
    MEMBER(b, "completions"), col_int(b, q, 10);
    MEMBER(b, "error_code"), col_text(b, q, 11);
    MEMBER(b, "error_message"), col_text(b, q, 12);
    /* absent when the saga has no search attributes: such records are the bytes they were before */
    if (sqlite3_column_type(q, 14) != SQLITE_NULL) {
        MEMBER(b, "search");
        col_json(b, q, 14, bad);
    }
    if (sqlite3_column_type(q, 15) != SQLITE_NULL) { /* a child saga's parent */
        MEMBER(b, "parent");
        col_json(b, q, 15, bad);
    }
    saga_json_buf_raw(b, "}", 1);
}

static void encode_step_row(sqlite3_stmt *q, saga_json_buf_t *b, int *bad) {
    OPEN(b, "idx"), col_int(b, q, 0);
    MEMBER(b, "name"), col_text(b, q, 1);
    MEMBER(b, "status"), col_text(b, q, 2);
    MEMBER(b, "attempt"), col_int(b, q, 3);
    MEMBER(b, "comp_attempt"), col_int(b, q, 4);
    MEMBER(b, "comp_budget_base"), col_int(b, q, 5);
    MEMBER(b, "outcome_unknown"), col_int(b, q, 6);
    /* SQL NULL (no output yet) is an absent member; JSON null is null */
    if (sqlite3_column_type(q, 7) != SQLITE_NULL) {
        MEMBER(b, "output");
        col_json(b, q, 7, bad);
    }
    MEMBER(b, "error_code"), col_text(b, q, 8);
    MEMBER(b, "error_message"), col_text(b, q, 9);
    MEMBER(b, "started_at"), col_int(b, q, 10);
    MEMBER(b, "finished_at"), col_int(b, q, 11);
    MEMBER(b, "updated_at"), col_int(b, q, 12);
    MEMBER(b, "completion_order"), col_int(b, q, 13);
    if (sqlite3_column_type(q, 14) != SQLITE_NULL) { /* a kept signal; absent otherwise */
        MEMBER(b, "signal");
        col_json(b, q, 14, bad);
    }
    saga_json_buf_raw(b, "}", 1);
}

/* One history row from its values: the store's row as it writes it
 * (saga_changelog_history_note) or as a column read gives it back. */
static void encode_history_values(saga_json_buf_t *b, int64_t seq, int64_t at, const char *event, size_t event_len,
                                  const char *step, size_t step_len, const char *status, size_t status_len,
                                  const char *detail, size_t detail_len, int *bad) {
    OPEN(b, "seq"), saga_json_buf_int(b, seq);
    MEMBER(b, "at"), saga_json_buf_int(b, at);
    MEMBER(b, "event"), text_or_null(b, event, event_len);
    MEMBER(b, "step"), text_or_null(b, step, step_len);
    MEMBER(b, "status"), text_or_null(b, status, status_len);
    MEMBER(b, "detail"), json_or_null(b, detail, detail_len, bad);
    saga_json_buf_raw(b, "}", 1);
}

static void encode_history_row(sqlite3_stmt *q, saga_json_buf_t *b, int *bad) {
    int64_t seq = sqlite3_column_int64(q, 0), at = sqlite3_column_int64(q, 1);
    encode_history_values(b, seq, at, COL_TEXT(q, 2), COL_TEXT(q, 3), COL_TEXT(q, 4), COL_TEXT(q, 5), bad);
}

static void encode_timer_row(sqlite3_stmt *q, saga_json_buf_t *b, int *bad) {
    (void)bad;
    OPEN(b, "slot"), col_int(b, q, 0);
    MEMBER(b, "kind"), col_text(b, q, 1);
    MEMBER(b, "attempt"), col_int(b, q, 2);
    MEMBER(b, "due_at"), col_int(b, q, 3);
    saga_json_buf_raw(b, "}", 1);
}

/* The array of one object per row of q (bound to the saga id), after the
 * member name already written. */
static int encode_rows(sqlite3 *db, sqlite3_stmt *q, const char *id, saga_json_buf_t *b, const char *name,
                       void (*row)(sqlite3_stmt *, saga_json_buf_t *, int *), char *err, size_t errlen) {
    saga_json_buf_raw(b, "[", 1);
    sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
    int rc, bad = 0, result = 0, n = 0;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (n++) saga_json_buf_raw(b, ",", 1);
        row(q, b, &bad);
        if ((result = saga_json_buf_error(b))) {
            if (bad) snprintf(err, errlen, "changelog: saga '%s': a stored JSON column of its %s rows does not parse", id, name);
            else if (result == SAGA_EPARSE) snprintf(err, errlen, "changelog: saga '%s': a stored text column of its %s rows is not UTF-8", id, name);
            break;
        }
    }
    if (!result && rc != SQLITE_DONE) {
        snprintf(err, errlen, "changelog: reading %s of saga '%s': %s", name, id, sqlite3_errmsg(db));
        result = SAGA_ESTORE;
    }
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    saga_json_buf_raw(b, "]", 1);
    return result;
}

int saga_changelog_cache_history(saga_store_t *st) {
    saga_changelog_stmts_t *c = saga_changelog_stmts(st);
    if (!c) return SAGA_ESTORE;
    if (!c->history && !(c->history = saga_calloc(SAGA_HISTORY_SLOTS, sizeof *c->history))) return SAGA_ENOMEM;
    return 0;
}

void saga_changelog_history_reset(saga_store_t *st) {
    saga_changelog_stmts_t *c = saga_store_ext(st);
    if (c) clear_slots(c);
    assert(!c || c->history_bytes == 0);
}

/* FNV-1a: the shard's sagas share their murmur2 modulo P, so not that one */
static saga_history_slot_t *history_slot(saga_changelog_stmts_t *c, const char *id) {
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)id; *p; p++) h = (h ^ *p) * 16777619u;
    return &c->history[h % SAGA_HISTORY_SLOTS];
}

void saga_changelog_history_drop(saga_changelog_stmts_t *c, const char *saga_id) {
    if (!c->history) return;
    saga_history_slot_t *slot = history_slot(c, saga_id);
    if (slot->last_seq && !strcmp(slot->id, saga_id)) slot_clear(c, slot);
}

static bool slot_holds(const saga_history_slot_t *slot, const char *id, int64_t created_at) {
    return slot->last_seq && slot->created_at == created_at && !strcmp(slot->id, id);
}

/* After the slot's text changed: counts its growth, and empties it when
 * the saga finished (no more rows come), the text grew too long or the
 * cache too large. */
static void slot_account(saga_changelog_stmts_t *c, saga_history_slot_t *slot, size_t cap_before, bool drop) {
    c->history_bytes += slot->text.cap - cap_before;
    if (drop || slot->text.len > SAGA_HISTORY_SLOT_MAX || c->history_bytes > SAGA_HISTORY_BUDGET) slot_clear(c, slot);
}

void saga_changelog_history_note(saga_store_t *st, const char *saga_id, int64_t created_at, int64_t seq, int64_t at,
                                  const char *event, const char *step, const char *status, const char *detail) {
    saga_changelog_stmts_t *c = saga_store_ext(st);
    if (!c || !c->history || seq < 1) return;
    saga_history_slot_t *slot = history_slot(c, saga_id);
    if (!slot_holds(slot, saga_id, created_at)) {
        if (seq != 1) return; /* rows before it are not in the slot: the next record reads them */
        slot_clear(c, slot);
        snprintf(slot->id, sizeof slot->id, "%s", saga_id);
        slot->created_at = created_at;
    } else if (slot->last_seq != seq - 1) {
        slot_clear(c, slot); /* a gap: not expected; the next record reads the rows */
        return;
    }
    size_t cap_before = slot->text.cap;
    int bad = 0;
    if (slot->rows++) saga_json_buf_raw(&slot->text, ",", 1);
    encode_history_values(&slot->text, seq, at, event, event ? strlen(event) : 0, step, step ? strlen(step) : 0,
                          status, status ? strlen(status) : 0, detail, detail ? strlen(detail) : 0, &bad);
    slot->last_seq = seq;
    slot_account(c, slot, cap_before, saga_json_buf_error(&slot->text) != 0);
}

/* The history array of saga id (created at created_at, its last history
 * row seq) from its cache slot, after reading and encoding the rows the
 * slot does not hold yet: none when the store noted each row as it wrote
 * it (saga_changelog_history_note). */
static int encode_history_cached(saga_changelog_stmts_t *c, sqlite3 *db, const char *id, int64_t created_at,
                                 int64_t seq, bool finished, saga_json_buf_t *b, char *err, size_t errlen) {
    saga_history_slot_t *slot = history_slot(c, id);
    if (!slot_holds(slot, id, created_at)) {
        slot_clear(c, slot);
        snprintf(slot->id, sizeof slot->id, "%s", id);
        slot->created_at = created_at;
    }
    if (slot->last_seq == seq && seq > 0) {
        saga_json_buf_raw(b, "[", 1);
        saga_json_buf_raw(b, slot->text.buf, slot->text.len);
        saga_json_buf_raw(b, "]", 1);
        slot_account(c, slot, slot->text.cap, finished);
        return 0;
    }
    size_t cap_before = slot->text.cap;
    sqlite3_stmt *q = c->enc_history_after;
    sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, slot->last_seq);
    int rc, bad = 0, result = 0;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (slot->rows++) saga_json_buf_raw(&slot->text, ",", 1);
        encode_history_row(q, &slot->text, &bad);
        slot->last_seq = sqlite3_column_int64(q, 0);
        if ((result = saga_json_buf_error(&slot->text))) {
            if (bad) snprintf(err, errlen, "changelog: saga '%s': a stored JSON column of its history rows does not parse", id);
            else if (result == SAGA_EPARSE) snprintf(err, errlen, "changelog: saga '%s': a stored text column of its history rows is not UTF-8", id);
            break;
        }
    }
    if (!result && rc != SQLITE_DONE) {
        snprintf(err, errlen, "changelog: reading history of saga '%s': %s", id, sqlite3_errmsg(db));
        result = SAGA_ESTORE;
    }
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    if (!result) {
        saga_json_buf_raw(b, "[", 1);
        saga_json_buf_raw(b, slot->text.buf ? slot->text.buf : "", slot->text.len);
        saga_json_buf_raw(b, "]", 1);
    }
    slot_account(c, slot, cap_before, result || finished);
    return result;
}

static int finish(saga_json_buf_t *b, const char *key, size_t max_message_bytes, char **out, size_t *out_len,
                  char *err, size_t errlen) {
    size_t len = 0;
    char *text = saga_json_buf_finish(b, &len);
    if (!text) return SAGA_ENOMEM;
    size_t limit = max_message_bytes > SAGA_MESSAGE_RESERVE ? max_message_bytes - SAGA_MESSAGE_RESERVE : 0;
    if (max_message_bytes && strlen(key) + len > limit) {
        snprintf(err, errlen,
                 "changelog record of '%s' is %zu bytes (key included), over the %zu a record may have "
                 "(--max-message-bytes %zu less %d for framing): it cannot be produced",
                 key, strlen(key) + len, limit, max_message_bytes, SAGA_MESSAGE_RESERVE);
        saga_free(text);
        return SAGA_EINVAL;
    }
    *out = text;
    *out_len = len;
    return 0;
}

/* A saga's records are a few kilobytes: start there rather than doubling up to it */
#define RECORD_START_BYTES 4096

int saga_changelog_encode(saga_store_t *st, const char *saga_id, size_t max_message_bytes, char **out,
                          size_t *out_len, char *err, size_t errlen) {
    *out = NULL;
    *out_len = 0;
    saga_changelog_stmts_t *c = saga_changelog_stmts(st);
    sqlite3 *db = saga_store_db(st);
    if (!c) {
        snprintf(err, errlen, "changelog: preparing statements: %s", sqlite3_errmsg(db));
        return SAGA_ESTORE;
    }
    sqlite3_stmt *q = c->enc_saga;
    sqlite3_bind_text(q, 1, saga_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(q);
        sqlite3_clear_bindings(q);
        if (rc == SQLITE_DONE) return SAGA_ENOTFOUND;
        snprintf(err, errlen, "changelog: reading saga '%s': %s", saga_id, sqlite3_errmsg(db));
        return SAGA_ESTORE;
    }
    saga_json_buf_t b = {0};
    saga_json_buf_reserve(&b, RECORD_START_BYTES);
    int bad = 0;
    saga_json_buf_raw(&b, "{\"v\":", 5);
    saga_json_buf_int(&b, SAGA_CHANGELOG_VERSION);
    MEMBER(&b, "saga");
    encode_saga_row(q, saga_id, &b, &bad);
    int64_t created_at = sqlite3_column_int64(q, 6), seq = sqlite3_column_int64(q, 9);
    const char *status = (const char *)sqlite3_column_text(q, 2);
    int st_code = status ? saga_status_parse(status) : -1;
    bool finished = st_code < 0 || saga_status_is_terminal((saga_status_t)st_code);
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    if ((rc = saga_json_buf_error(&b))) {
        saga_json_buf_free(&b);
        if (bad) snprintf(err, errlen, "changelog: saga '%s': its stored input is not JSON", saga_id);
        else if (rc == SAGA_EPARSE) snprintf(err, errlen, "changelog: saga '%s': a stored text column is not UTF-8", saga_id);
        return rc;
    }
    MEMBER(&b, "steps");
    rc = encode_rows(db, c->enc_steps, saga_id, &b, "steps", encode_step_row, err, errlen);
    MEMBER(&b, "history");
    if (!rc) rc = c->history ? encode_history_cached(c, db, saga_id, created_at, seq, finished, &b, err, errlen)
                             : encode_rows(db, c->enc_history, saga_id, &b, "history", encode_history_row, err, errlen);
    MEMBER(&b, "timers");
    if (!rc) rc = encode_rows(db, c->enc_timers, saga_id, &b, "timers", encode_timer_row, err, errlen);
    saga_json_buf_raw(&b, "}", 1);
    if (rc) {
        saga_json_buf_free(&b);
        return rc;
    }
    return finish(&b, saga_id, max_message_bytes, out, out_len, err, errlen);
}

int saga_changelog_encode_definition(saga_store_t *st, const char *name, int version, size_t max_message_bytes,
                                     char **out, size_t *out_len, char *err, size_t errlen) {
    *out = NULL;
    *out_len = 0;
    char key[SAGA_NAME_MAX + 32];
    if (saga_changelog_definition_key(name, version, key, sizeof key) < 0) {
        snprintf(err, errlen, "changelog: definition name '%.64s' is too long for a key", name);
        return SAGA_EINVAL;
    }
    saga_changelog_stmts_t *c = saga_changelog_stmts(st);
    sqlite3 *db = saga_store_db(st);
    if (!c) {
        snprintf(err, errlen, "changelog: preparing statements: %s", sqlite3_errmsg(db));
        return SAGA_ESTORE;
    }
    sqlite3_stmt *q = c->enc_def;
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int(q, 2, version);
    int rc = sqlite3_step(q);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(q);
        sqlite3_clear_bindings(q);
        if (rc == SQLITE_DONE) return SAGA_ENOTFOUND;
        snprintf(err, errlen, "changelog: reading definition %s version %d: %s", name, version, sqlite3_errmsg(db));
        return SAGA_ESTORE;
    }
    saga_json_buf_t b = {0};
    int bad = 0;
    saga_json_buf_raw(&b, "{\"v\":", 5);
    saga_json_buf_int(&b, SAGA_CHANGELOG_VERSION);
    MEMBER(&b, "definition");
    OPEN(&b, "name"), saga_json_buf_string(&b, name, strlen(name));
    MEMBER(&b, "version"), saga_json_buf_int(&b, version);
    MEMBER(&b, "hash"), col_text(&b, q, 0);
    MEMBER(&b, "json"), col_json(&b, q, 1, &bad);
    MEMBER(&b, "loaded_at"), col_int(&b, q, 2);
    saga_json_buf_raw(&b, "}}", 2);
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    if ((rc = saga_json_buf_error(&b))) {
        saga_json_buf_free(&b);
        if (bad) snprintf(err, errlen, "changelog: stored definition %s version %d is not JSON", name, version);
        else if (rc == SAGA_EPARSE) snprintf(err, errlen, "changelog: stored definition %s version %d: a text column is not UTF-8", name, version);
        return rc;
    }
    return finish(&b, key, max_message_bytes, out, out_len, err, errlen);
}

/* ---- the shard's marker --------------------------------------------------------- */

int saga_changelog_offset_get(saga_store_t *st, int64_t *offset) {
    saga_changelog_stmts_t *c = saga_changelog_stmts(st);
    if (!c) return SAGA_ESTORE;
    int rc = sqlite3_step(c->meta_get);
    if (rc == SQLITE_ROW) *offset = sqlite3_column_int64(c->meta_get, 0);
    sqlite3_reset(c->meta_get);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? SAGA_ENOTFOUND : SAGA_ESTORE;
}

static int offset_write(saga_store_t *st, sqlite3_stmt *q, int64_t offset) {
    sqlite3_bind_int64(q, 1, offset);
    int rc = sqlite3_step(q);
    sqlite3_reset(q);
    return rc == SQLITE_DONE ? 0 : SAGA_ESTORE;
}

int saga_changelog_offset_set(saga_store_t *st, int64_t offset) {
    saga_changelog_stmts_t *c = saga_changelog_stmts(st);
    if (!c || offset < 0) return c ? SAGA_EINVAL : SAGA_ESTORE;
    return offset_write(st, c->meta_set, offset);
}

int saga_changelog_offset_advance(saga_store_t *st, int64_t offset) {
    saga_changelog_stmts_t *c = saga_changelog_stmts(st);
    if (!c) return SAGA_ESTORE;
    return offset_write(st, c->meta_advance, offset);
}

/* ---- bulk restore ---------------------------------------------------------------- */

static int exec_sql(saga_store_t *st, const char *sql, char *err, size_t errlen) {
    char *msg = NULL;
    sqlite3 *db = saga_store_db(st);
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) == SQLITE_OK) return 0;
    snprintf(err, errlen, "changelog restore: %s: %s", sql, msg ? msg : sqlite3_errmsg(db));
    sqlite3_free(msg);
    return SAGA_ESTORE;
}

int saga_changelog_bulk_begin(saga_store_t *st, char *err, size_t errlen) {
    return exec_sql(st, "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-262144", err, errlen);
}

int saga_changelog_bulk_end(saga_store_t *st, const char *synchronous, char *err, size_t errlen) {
    const char *sync = synchronous ? synchronous : "FULL";
    if (strcmp(sync, "FULL") && strcmp(sync, "NORMAL") && strcmp(sync, "OFF")) {
        snprintf(err, errlen, "changelog restore: synchronous must be FULL, NORMAL or OFF, not '%.32s'", sync);
        return SAGA_EINVAL;
    }
    char sql[160];
    snprintf(sql, sizeof sql, "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s; PRAGMA cache_size=-16000", sync);
    int rc = exec_sql(st, sql, err, errlen);
    if (rc) return rc;
    /* journal_mode=OFF wrote the pages without fsync: sync the file now */
    const char *path = sqlite3_db_filename(saga_store_db(st), "main");
    if (!path || !*path) return 0; /* in memory */
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0) {
        snprintf(err, errlen, "changelog restore: fsync %s failed", path);
        if (fd >= 0) close(fd);
        return SAGA_EIO;
    }
    close(fd);
    return 0;
}
