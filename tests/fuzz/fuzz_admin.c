/* libFuzzer target: the admin API's request handling without the network
 * (admin_route, the layer under libmicrohttpd that admin.c's MHD callback
 * calls; scripts/fuzz, docs/FUZZING.md), with a command queue and a bearer
 * token set, against real sagad shards made once at startup (FUZZ_SHARDS
 * shard files, each saga in the shard its id hashes to, as sagad's data
 * directory holds them): the schema and hand-written sample rows of
 * tests/unit/test_admin_fixture.c spread over them,
 * the definitions of sagas/ (and an order_fulfillment version 2, which a
 * sample saga runs on) stored with saga_store_put_definition in every
 * shard, and sagas
 * run through the engine and saved with saga_store_save as the loop does,
 * so their history replays (GET /v1/sagas/{id}?at=).
 *
 * The input is split at the first four newlines into method, path, query,
 * Authorization header; the rest is the body. The Authorization line may
 * go on, after tabs, with Content-Type, Host and Origin (defaults:
 * application/json, 127.0.0.1:8080, none; the server answers to
 * 127.0.0.1, localhost and sagad.internal). Checks:
 *
 * - admin_route returns 0 and a body of the stated length, one JSON
 *   document unless the content type says otherwise (/metrics, /ui);
 * - 4xx/5xx answers carry {"error":{"code","message"}} (but /readyz's 503,
 *   which is its status document), a 405 an Allow header;
 * - the status is one the API documents;
 * - a 202 has queued exactly one command, any other answer none (the bulk
 *   commands, POST /v1/sagas/retry and /abort: as many as their answer's
 *   "queued" says), and a
 *   mutating request without the right token, or with a foreign Host or
 *   Origin, never reaches the queue;
 * - stored JSON (inputs, history details, definitions) is shown as JSON,
 *   not as the string admin falls back to for text that does not parse,
 *   and the sagas the engine wrote never answer 500 (their history replays). */
#include "admin_route.h"
#include "commands.h"
#include "saga_alloc.h"
#include "saga_error.h"
#include "saga_partition.h"
#include "store.h"
#include "test_admin_fixture.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                 \
        }                                                                            \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define TOKEN "fuzz-token"

#define FUZZ_SHARDS 5 /* the sample and engine-run sagas land in all five */
static fixture_shards_t fs;
static sqlite3 *reader; /* set once the shards are ready */
static admin_shard_t shards[FUZZ_SHARDS]; /* read-only connections, no path: not re-checked per request */
static saga_store_t *stores[FUZZ_SHARDS];
static saga_command_queue_t *queue;
static saga_registry_t *registry;

/* ---- sagas run through the engine and the store ---- */

typedef struct {
    saga_store_t *st;
    saga_t s;
    uint64_t rng;
    int64_t now;
    int64_t timer_due[SAGA_MAX_STEPS + 1]; /* slot + 1 */
    saga_timer_kind_t timer_kind[SAGA_MAX_STEPS + 1];
    int timer_attempt[SAGA_MAX_STEPS + 1];
} driver_t;

static const saga_engine_config_t engine = {.replies_topic = "saga.replies"};

/* apply_and_save of loop.c. */
static void drive(driver_t *d, const saga_event_t *ev) {
    saga_effects_t fxs;
    char why[512] = "";
    saga_effects_init(&fxs);
    int rc = saga_engine_apply(&engine, &d->s, ev, d->now, &d->rng, &fxs, why, sizeof why);
    if (rc) fprintf(stderr, "fuzz_admin: %s: %s\n", d->s.id, why);
    CHECK(rc == 0);
    for (int i = 0; i < fxs.count; i++) {
        const saga_effect_t *e = &fxs.items[i];
        if (e->kind == SAGA_FX_SET_TIMER) {
            d->timer_due[e->slot + 1] = e->due_at;
            d->timer_kind[e->slot + 1] = e->timer_kind;
            d->timer_attempt[e->slot + 1] = e->timer_attempt;
        } else if (e->kind == SAGA_FX_CLEAR_TIMER) {
            d->timer_due[e->slot + 1] = 0;
        }
    }
    CHECK(saga_store_save(d->st, &d->s, &fxs, "saga.events", d->now) == 0);
    saga_effects_free(&fxs);
}

static void drive_start(driver_t *d, const char *id, const char *definition, const char *input, int64_t at) {
    const saga_definition_t *def = saga_registry_get(registry, definition, 0); /* the newest */
    json_t *in = json_loads(input, JSON_ALLOW_NUL, NULL);
    CHECK(def && in);
    memset(d->timer_due, 0, sizeof d->timer_due);
    d->st = stores[saga_partition_of(id, FUZZ_SHARDS)]; /* the saga's shard */
    d->now = at;
    d->rng = 7;
    saga_init(&d->s, id, def, in, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", at);
    json_decref(in);
    CHECK(saga_store_insert(d->st, &d->s, id) == 0);
    saga_event_t ev = {.kind = SAGA_EV_START};
    drive(d, &ev);
}

/* The participant's reply to the command step has out (action or
 * compensation, whichever runs), 250 ms later. */
static void drive_reply(driver_t *d, const char *step, saga_reply_status_t status, const char *output,
                        const char *code, const char *message) {
    int i = saga_definition_step_index(d->s.def, step);
    CHECK(i >= 0);
    const saga_step_state_t *st = &d->s.steps[i];
    int comp = st->status == SAGA_STEP_COMPENSATING;
    CHECK(comp || st->status == SAGA_STEP_RUNNING);
    json_t *out = output ? json_loads(output, 0, NULL) : NULL;
    d->now += 250;
    saga_event_t ev = {.kind = SAGA_EV_REPLY, .step = i, .command_kind = comp ? SAGA_KIND_COMPENSATION : SAGA_KIND_ACTION,
                       .attempt = comp ? st->comp_attempt : st->attempt, .reply_status = status, .output = out,
                       .error_code = code, .error_message = message};
    drive(d, &ev);
    json_decref(out);
}

/* fire_timer of loop.c for the timer of step (a timeout or a backoff). */
static void drive_timer(driver_t *d, const char *step) {
    int slot = saga_definition_step_index(d->s.def, step) + 1;
    CHECK(slot > 0 && d->timer_due[slot] > 0);
    d->now = d->timer_due[slot];
    d->timer_due[slot] = 0;
    saga_event_t ev = {.kind = SAGA_EV_TIMER, .slot = slot - 1, .timer_kind = d->timer_kind[slot],
                       .timer_attempt = d->timer_attempt[slot]};
    drive(d, &ev);
}

#define ORDER_INPUT "{\"order_id\":\"o-7\",\"customer\":\"c-7\",\"amount\":1999,\"items\":[{\"sku\":\"A\",\"qty\":2}]}"

/* s-e-* sagas (FX_T0 + 10 s, 20 s, ...): completed, compensated (with a
 * long non-ASCII error message), compensation_failed (retry gives 202),
 * running after a timeout and a retry (abort gives 202; its input holds a
 * \u0000, which the loop accepts). */
static void run_sagas(void) {
    static driver_t d;
    drive_start(&d, "s-e-completed", "order_fulfillment", ORDER_INPUT, FX_T0 + 10000);
    drive_reply(&d, "create_order", SAGA_REPLY_SUCCESS, "{\"order_ref\":\"R-7\"}", NULL, NULL);
    drive_reply(&d, "reserve_inventory", SAGA_REPLY_SUCCESS, "{\"reservation\":\"res-7\"}", NULL, NULL);
    drive_reply(&d, "charge_payment", SAGA_REPLY_SUCCESS, "{\"payment_id\":\"p-7\"}", NULL, NULL);
    drive_reply(&d, "notify", SAGA_REPLY_SUCCESS, "{}", NULL, NULL);
    CHECK(d.s.status == SAGA_STATUS_COMPLETED);
    saga_clear(&d.s);

    drive_start(&d, "s-e-compensated", "trip_booking",
                "{\"trip_id\":\"t-1\",\"traveller\":\"ada\",\"flight\":\"LH 400\",\"hotel\":\"Adlon\","
                "\"customer\":\"c-1\",\"amount\":120000}", FX_T0 + 20000);
    drive_reply(&d, "reserve_flight", SAGA_REPLY_SUCCESS, "{\"booking_id\":\"F-1\"}", NULL, NULL);
    char message[400] = "Kein Zimmer frei \xE2\x80\x93 "; /* odd length: the engine's cuts fall inside a 'ü' */
    for (size_t n = strlen(message); n + 2 < sizeof message; n += 2) strcat(message, "\xC3\xBC");
    drive_reply(&d, "reserve_hotel", SAGA_REPLY_FAILURE, NULL, "NO_ROOM", message);
    drive_reply(&d, "reserve_flight", SAGA_REPLY_SUCCESS, NULL, NULL, NULL);
    CHECK(d.s.status == SAGA_STATUS_COMPENSATED);
    saga_clear(&d.s);

    drive_start(&d, "s-e-comp-failed", "order_fulfillment", ORDER_INPUT, FX_T0 + 30000);
    drive_reply(&d, "create_order", SAGA_REPLY_SUCCESS, "{\"order_ref\":\"R-8\"}", NULL, NULL);
    drive_reply(&d, "reserve_inventory", SAGA_REPLY_SUCCESS, "{}", NULL, NULL);
    drive_reply(&d, "charge_payment", SAGA_REPLY_FAILURE, NULL, "PAYMENT_DECLINED", "card limit exceeded");
    for (int k = 0; k < 100 && d.s.status == SAGA_STATUS_COMPENSATING; k++) {
        if (d.s.steps[1].status == SAGA_STEP_COMPENSATING)
            drive_reply(&d, "reserve_inventory", SAGA_REPLY_FAILURE, NULL, "LOCKED", "stock is locked");
        else
            drive_timer(&d, "reserve_inventory");
    }
    CHECK(d.s.status == SAGA_STATUS_COMPENSATION_FAILED);
    saga_clear(&d.s);

    drive_start(&d, "s-e-running", "order_fulfillment",
                "{\"order_id\":\"o\\u0000-9\",\"customer\":\"c-9\",\"amount\":5,\"items\":[]}", FX_T0 + 40000);
    drive_reply(&d, "create_order", SAGA_REPLY_SUCCESS, "{\"order_ref\":\"R-9\"}", NULL, NULL);
    drive_timer(&d, "reserve_inventory"); /* no reply: timed out */
    drive_timer(&d, "reserve_inventory"); /* backoff over: attempt 2 */
    CHECK(d.s.status == SAGA_STATUS_RUNNING && d.s.steps[1].attempt == 2 && d.s.steps[1].outcome_unknown);
    saga_clear(&d.s);
}

/* The definitions of sagas/, plus order_fulfillment version 2 (the same
 * steps, and a "\u0000" in a payload, which the loader takes): the
 * fixture's s-running-2 runs on it. */
static void load_definitions(saga_store_t *st) {
    if (!registry) { /* once: every shard stores the same */
        registry = saga_registry_new();
        char report[1024] = "";
        CHECK(registry && saga_registry_load_dir(registry, SAGA_SOURCE_DIR "/sagas", report, sizeof report) == 0);
        json_t *v2 = json_deep_copy(saga_registry_get(registry, "order_fulfillment", 1)->source);
        CHECK(v2 && json_object_set_new(v2, "version", json_integer(2)) == 0);
        json_t *payload = json_object_get(json_array_get(json_object_get(v2, "steps"), 3), "payload");
        CHECK(json_object_set_new(payload, "note", json_stringn("a\0b", 3)) == 0);
        saga_def_errors_t errs = {0};
        saga_definition_t *def = saga_definition_from_json(v2, &errs);
        json_decref(v2);
        CHECK(def && saga_registry_add(registry, def) == 0);
    }
    char err[256] = "";
    for (int i = 0; i < saga_registry_count(registry); i++)
        CHECK(saga_store_put_definition(st, saga_registry_at(registry, i), FX_T0, err, sizeof err) == 0);
}

static void teardown(void) {
    for (int p = 0; p < FUZZ_SHARDS; p++) sqlite3_close(shards[p].db);
    saga_command_queue_free(&queue);
    saga_registry_free(&registry);
    fixture_shards_destroy(&fs);
}

static void setup(void) {
    if (reader) return;
    CHECK(fixture_shards_create(&fs, FUZZ_SHARDS) == 0);
    atexit(teardown); /* the shards' directory too */
    CHECK(fixture_shards_spread(&fs, fixture_sample_rows) == 0);
    /* SQLite text need not be UTF-8: the API replaces what is not */
    CHECK(fixture_shards_spread(&fs, "INSERT INTO sagas (id, definition, version, status, input, created_at, updated_at,"
                                     " error_code, error_message) VALUES ('s-bad-text', 'order_fulfillment', 1,"
                                     " 'compensated', '{}', 1700000050000, 1700000050000, CAST(X'E282' AS TEXT),"
                                     " CAST(X'66C3BC72FF' AS TEXT))") == 0);
    char err[512] = "";
    for (int p = 0; p < FUZZ_SHARDS; p++) {
        stores[p] = saga_store_open(fs.path[p], NULL, err, sizeof err);
        if (!stores[p]) fprintf(stderr, "fuzz_admin: %s\n", err);
        CHECK(stores[p] != NULL);
        CHECK(saga_store_begin(stores[p]) == 0);
        load_definitions(stores[p]);
    }
    run_sagas();
    for (int p = 0; p < FUZZ_SHARDS; p++) {
        CHECK(saga_store_commit(stores[p]) == 0);
        saga_store_close(&stores[p]);
        CHECK(sqlite3_open_v2(fs.path[p], &shards[p].db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK);
    }
    reader = shards[0].db;
    queue = saga_command_queue_new(64);
    CHECK(queue != NULL);
}

/* What the loop publishes for GET /v1/stats, /metrics and /readyz (Kafka
 * not ready: /readyz answers 503); a topic name that needs escaping. */
static const char RUNTIME[] =
    "{\"kafka_ready\": false, \"outbox_in_flight\": 3, \"counters\": {\"messages\": 10, \"dead_letters\": 1},"
    " \"ignored_events\": {\"stale_timer\": 2}, \"consumer_lag\": {\"saga.replies\": 4},"
    " \"topics\": [{\"topic\": \"order.commands\", \"in_flight\": 2, \"waiting\": 1, \"circuit\": \"half_open\"},"
    "            {\"topic\": \"we\\\"ird\\\\t\\u00e9\\n\", \"in_flight\": 0, \"waiting\": 0, \"circuit\": \"open\"}],"
    " \"histograms\": {\"commit_seconds\": {\"buckets\": [[0.001, 3], [\"+Inf\", 5]], \"sum\": 0.01, \"count\": 5}}}";

static int runtime_fill(void *arg, json_t *into) {
    json_t *rt = json_loads(RUNTIME, 0, NULL);
    CHECK(rt != NULL);
    int rc = json_object_update(into, rt);
    json_decref(rt);
    return rc ? SAGA_ENOMEM : 0;
}

/* ---- one request ---- */

/* The next line of [*p, end) as a NUL-terminated copy (saga_free). */
static char *next_line(const char **p, const char *end) {
    const char *nl = memchr(*p, '\n', (size_t)(end - *p));
    size_t n = nl ? (size_t)(nl - *p) : (size_t)(end - *p);
    char *s = saga_malloc(n + 1);
    if (!s) abort();
    memcpy(s, *p, n);
    s[n] = '\0';
    *p = nl ? nl + 1 : end;
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    setup();
    const char *p = (const char *)data, *end = p + size;
    char *method = next_line(&p, end), *path = next_line(&p, end), *query = next_line(&p, end);
    char *auth = next_line(&p, end);
    /* "auth\tcontent-type\thost\torigin": each optional */
    const char *field[4] = {auth, "application/json", "127.0.0.1:8080", NULL};
    char *tab = auth;
    for (int i = 1; i < 4 && (tab = strchr(tab, '\t')); i++) {
        *tab++ = '\0';
        field[i] = tab;
    }
    static const char *const hosts[] = {"127.0.0.1", "localhost", "sagad.internal", NULL};
    admin_ctx_t ctx = {.shards = shards, .shard_count = FUZZ_SHARDS, .commands = queue, .token = TOKEN, .stats_runtime = runtime_fill,
                       .hosts = hosts};
    admin_request_t req = {.method = method, .path = path, .query = query, .body = p,
                           .body_len = (size_t)(end - p), .authorization = auth[0] ? auth : NULL,
                           .content_type = field[1], .host = field[2], .origin = field[3]};
    int queued_before = saga_command_pending(queue);
    admin_response_t res = {0};
    long answer_queued = -1; /* a bulk command's "queued" */
    CHECK(admin_route(&ctx, &req, &res) == 0);
    CHECK(res.body != NULL);
    CHECK(strlen(res.body) == res.body_len);
    if (!res.content_type || strstr(res.content_type, "json")) { /* /metrics is text, /ui HTML */
        json_error_t jerr;
        json_t *doc = json_loads(res.body, JSON_ALLOW_NUL, &jerr); /* inputs may hold \u0000 */
        CHECK(doc != NULL);
        /* /readyz's 503 is its status document, not an error */
        int not_ready = res.status == 503 && json_is_string(json_object_get(doc, "status"));
        /* stored JSON shows as JSON, not as the string it falls back to
         * when the text does not parse */
        if (json_object_get(doc, "history")) {
            CHECK(!json_is_string(json_object_get(doc, "input")));
            size_t i;
            json_t *h;
            json_array_foreach(json_object_get(doc, "history"), i, h) CHECK(json_is_object(json_object_get(h, "detail")));
        }
        if (json_object_get(doc, "hash")) CHECK(json_is_integer(json_object_get(doc, "steps")));
        if (json_is_integer(json_object_get(doc, "queued"))) {
            answer_queued = (long)json_integer_value(json_object_get(doc, "queued"));
            CHECK(answer_queued <= json_integer_value(json_object_get(doc, "matched")));
        }
        if (json_object_get(doc, "dry_run")) { /* a bulk answer: at most 20 ids shown */
            CHECK(json_array_size(json_object_get(doc, "first_ids")) <= 20);
            CHECK(json_is_true(json_object_get(doc, "dry_run")) == (res.status == 200));
        }
        if (res.status >= 400 && !not_ready) {
            json_t *e = json_object_get(doc, "error");
            if (!json_is_string(json_object_get(e, "code"))) fprintf(stderr, "%u: %s\n", res.status, res.body);
            CHECK(json_is_string(json_object_get(e, "code")));
            CHECK(json_is_string(json_object_get(e, "message")));
        }
        json_decref(doc);
    }
    if (res.status == 405) CHECK(res.allow != NULL);
    /* the engine wrote these sagas: their history replays (?at=) */
    if (strncmp(path, "/v1/sagas/s-e-", 14) == 0) CHECK(res.status != 500);
    static const unsigned documented[] = {200, 202, 400, 401, 403, 404, 405, 409, 413, 415, 421, 422, 500, 503};
    int known = 0;
    for (size_t i = 0; i < sizeof documented / sizeof documented[0]; i++) known |= res.status == documented[i];
    if (!known) fprintf(stderr, "status %u for %s %s\n", res.status, method, path);
    CHECK(known);
    int queued = saga_command_pending(queue) - queued_before;
    if (answer_queued >= 0) CHECK(queued == answer_queued);
    else CHECK(queued == (res.status == 202));
    if (strncasecmp(auth, "Bearer ", 7) != 0 || strcmp(auth + 7, TOKEN) != 0) CHECK(queued == 0);
    if (queued) { /* a known Host; no Origin, or this server under that Host */
        char host[64];
        snprintf(host, sizeof host, "%.*s", (int)strcspn(field[2], ":"), field[2]);
        for (char *c = host; *c; c++) *c = (char)tolower((unsigned char)*c);
        CHECK(strcmp(host, "127.0.0.1") == 0 || strcmp(host, "localhost") == 0 || strcmp(host, "sagad.internal") == 0);
        CHECK(!field[3] || strcasecmp(strstr(field[3], "://") ? strstr(field[3], "://") + 3 : "", field[2]) == 0);
    }
    /* Keep the queue from filling up: the loop would drain it. */
    saga_command_t cmds[64];
    int n = saga_command_take(queue, cmds, 64);
    for (int i = 0; i < n; i++) saga_command_clear(&cmds[i]);
    saga_free(res.body);
    saga_free(method);
    saga_free(path);
    saga_free(query);
    saga_free(auth);
    return 0;
}
