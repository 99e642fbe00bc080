/* libFuzzer target: the changelog record decoder (saga_changelog_apply;
 * scripts/fuzz, docs/FUZZING.md) over a real in-memory shard made once at
 * startup: the order_fulfillment definition of sagas/ and one running saga
 * (s-1) started through the engine. The input is the record's key up to the
 * first newline, then its value (nothing: a tombstone). Each input runs in a
 * transaction that is rolled back, so every input sees the same shard.
 * Checks:
 *
 * - a refused record returns SAGA_EPARSE or SAGA_EEXISTS with a message that
 *   starts "changelog record '" and is printable ASCII or UTF-8, and leaves
 *   every table exactly as it was (nothing half-applied);
 * - an accepted saga record is a fixed point of encode/apply: the saga
 *   encodes, that record applies again, and encodes to the same bytes;
 *   loading it (saga_store_load, saga_store_state_at) never crashes;
 * - an accepted tombstone leaves no row of that saga. */
#include "changelog.h"
#include "saga_alloc.h"
#include "saga_error.h"
#include "saga_utf8.h"
#include "store.h"
#include "store_internal.h"

#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                      \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                     \
        }                                                                                \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static saga_store_t *st;
static saga_registry_t *registry;

static void release(void) {
    saga_store_close(&st);
    saga_registry_free(&registry);
}

static void init(void) {
    char err[512];
    saga_store_options_t opt = {.synchronous = "OFF"};
    st = saga_store_open(":memory:", &opt, err, sizeof err);
    CHECK(st);
    registry = saga_registry_new();
    CHECK(saga_registry_load_dir(registry, SAGA_SOURCE_DIR "/sagas", err, sizeof err) == 0);
    const saga_definition_t *def = saga_registry_get(registry, "order_fulfillment", 1);
    CHECK(def);
    CHECK(saga_store_begin(st) == 0);
    CHECK(saga_store_put_definition(st, def, 1, err, sizeof err) == 0);
    saga_t s;
    json_t *input = json_pack("{s:s, s:s, s:i, s:[]}", "order_id", "o-1", "customer", "c-1", "amount", 5, "items");
    saga_init(&s, "s-1", def, input, "", 1000);
    json_decref(input);
    CHECK(saga_store_insert(st, &s, "m-1") == 0);
    saga_effects_t fx;
    saga_effects_init(&fx);
    uint64_t rng = 1;
    char why[256];
    saga_engine_config_t cfg = {.replies_topic = "saga.replies"};
    saga_event_t ev = {.kind = SAGA_EV_START};
    CHECK(saga_engine_apply(&cfg, &s, &ev, 1000, &rng, &fx, why, sizeof why) == 0);
    CHECK(saga_store_save(st, &s, &fx, "saga.events", 1000) == 0);
    CHECK(saga_store_commit(st) == 0);
    saga_effects_free(&fx);
    saga_clear(&s);
    atexit(release);
}

/* Every row of the shard's tables as text (the shard is small). */
static char *fingerprint(sqlite3 *h) {
    static const char *const q[] = {"SELECT * FROM sagas", "SELECT * FROM steps", "SELECT * FROM history",
                                    "SELECT * FROM timers", "SELECT * FROM definitions", "SELECT * FROM shard_meta"};
    size_t cap = 1024, len = 0;
    char *out = malloc(cap);
    out[0] = '\0';
    for (size_t t = 0; t < sizeof q / sizeof q[0]; t++) {
        sqlite3_stmt *s;
        CHECK(sqlite3_prepare_v2(h, q[t], -1, &s, NULL) == SQLITE_OK);
        while (sqlite3_step(s) == SQLITE_ROW) {
            for (int i = 0; i < sqlite3_column_count(s); i++) {
                const char *v = (const char *)sqlite3_column_text(s, i);
                size_t n = v ? (size_t)sqlite3_column_bytes(s, i) : 0;
                if (len + n + 8 > cap) out = realloc(out, cap = (len + n + 8) * 2);
                out[len++] = (char)('0' + sqlite3_column_type(s, i));
                memcpy(out + len, v ? v : "", n);
                len += n;
                out[len++] = '|';
            }
            out[len++] = '\n';
        }
        sqlite3_finalize(s);
        out[len++] = '#';
    }
    out[len] = '\0';
    return out;
}

static int count_rows(sqlite3 *h, const char *id) {
    sqlite3_stmt *s;
    CHECK(sqlite3_prepare_v2(h,
                             "SELECT (SELECT count(*) FROM sagas WHERE id = ?1) + (SELECT count(*) FROM steps WHERE"
                             " saga_id = ?1) + (SELECT count(*) FROM history WHERE saga_id = ?1) + (SELECT count(*)"
                             " FROM timers WHERE saga_id = ?1)", -1, &s, NULL) == SQLITE_OK);
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    CHECK(sqlite3_step(s) == SQLITE_ROW);
    int n = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!st) init();
    const char *in = (const char *)data, *nl = memchr(in, '\n', size);
    size_t key_len = nl ? (size_t)(nl - in) : size;
    const char *value = nl ? nl + 1 : NULL;
    size_t value_len = nl ? size - key_len - 1 : 0;

    /* the store's own connection: it sees the open transaction */
    sqlite3 *h = saga_store_db(st);
    CHECK(saga_store_begin(st) == 0);
    char *before = fingerprint(h), err[1024] = "";
    int rc = saga_changelog_apply(st, in, key_len, value, value_len, 7, err, sizeof err);
    if (rc) {
        CHECK(rc == SAGA_EPARSE || rc == SAGA_EEXISTS);
        CHECK(strncmp(err, "changelog record '", 18) == 0);
        for (size_t i = 0, n = strlen(err); i < n;) { /* UTF-8, as it goes into JSON logs */
            size_t k = saga_utf8_seq((const unsigned char *)err + i, n - i);
            CHECK(k > 0);
            i += k;
        }
        char *after = fingerprint(h);
        CHECK(strcmp(before, after) == 0);
        free(after);
    } else if (saga_changelog_key_kind(in, key_len) == SAGA_CHANGELOG_KEY_SAGA) {
        char id[SAGA_ID_MAX];
        memcpy(id, in, key_len);
        id[key_len] = '\0';
        if (!value_len) {
            CHECK(count_rows(h, id) == 0);
        } else {
            char *e1 = NULL, *e2 = NULL;
            size_t l1, l2;
            CHECK(saga_changelog_encode(st, id, 0, &e1, &l1, err, sizeof err) == 0);
            CHECK(saga_changelog_apply(st, id, key_len, e1, l1, 8, err, sizeof err) == 0);
            CHECK(saga_changelog_encode(st, id, 0, &e2, &l2, err, sizeof err) == 0);
            CHECK(l1 == l2 && memcmp(e1, e2, l1) == 0);
            saga_free(e1);
            saga_free(e2);
            saga_t s;
            if (saga_store_load(st, registry, id, &s, err, sizeof err) == 0) saga_clear(&s);
            if (saga_store_state_at(st, registry, id, INT64_MAX, &s, err, sizeof err) == 0) saga_clear(&s);
        }
    }
    free(before);
    saga_store_rollback(st);
    return 0;
}
