/* libFuzzer target: the admin API's request handling without the network
 * (admin_route, the layer under libmicrohttpd; scripts/fuzz,
 * docs/FUZZING.md), against a real sagad database with sample sagas
 * (tests/unit/test_admin_fixture.c) and a command queue, with a bearer
 * token set. The input is split at the first four newlines into method,
 * path, query, Authorization header; the rest is the body. Checks:
 *
 * - admin_route returns 0 and a body of the stated length, one JSON
 *   document unless the content type says otherwise (/metrics, /ui);
 * - 4xx/5xx answers carry {"error":{"code","message"}} (but /readyz's 503,
 *   which is its status document);
 * - the status is one the API documents;
 * - a mutating request without the right token never reaches the queue. */
#include "admin_route.h"
#include "commands.h"
#include "saga_alloc.h"
#include "test_admin_fixture.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                 \
        }                                                                            \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define TOKEN "fuzz-token"

static fixture_db_t fx;
static sqlite3 *reader;
static saga_command_queue_t *queue;

static void setup(void) {
    if (reader) return;
    if (fixture_db_create(&fx, 1) || sqlite3_open_v2(fx.db_path, &reader, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
        abort();
    queue = saga_command_queue_new(64);
    if (!queue) abort();
}

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
    admin_ctx_t ctx = {.db = reader, .commands = queue, .token = TOKEN};
    admin_request_t req = {.method = method, .path = path, .query = query, .body = p,
                           .body_len = (size_t)(end - p), .authorization = auth[0] ? auth : NULL};
    int queued_before = saga_command_pending(queue);
    admin_response_t res = {0};
    CHECK(admin_route(&ctx, &req, &res) == 0);
    CHECK(res.body != NULL);
    CHECK(strlen(res.body) == res.body_len);
    if (!res.content_type || strstr(res.content_type, "json")) { /* /metrics is text, /ui HTML */
        json_error_t jerr;
        json_t *doc = json_loads(res.body, 0, &jerr);
        CHECK(doc != NULL);
        /* /readyz's 503 is its status document, not an error */
        int not_ready = res.status == 503 && json_is_string(json_object_get(doc, "status"));
        if (res.status >= 400 && !not_ready) {
            json_t *e = json_object_get(doc, "error");
            if (!json_is_string(json_object_get(e, "code"))) fprintf(stderr, "%u: %s\n", res.status, res.body);
            CHECK(json_is_string(json_object_get(e, "code")));
            CHECK(json_is_string(json_object_get(e, "message")));
        }
        json_decref(doc);
    }
    static const unsigned documented[] = {200, 202, 400, 401, 403, 404, 405, 409, 413, 415, 422, 500, 503};
    int known = 0;
    for (size_t i = 0; i < sizeof documented / sizeof documented[0]; i++) known |= res.status == documented[i];
    if (!known) fprintf(stderr, "status %u for %s %s\n", res.status, method, path);
    CHECK(known);
    if (!auth[0] || strcmp(auth, "Bearer " TOKEN) != 0) CHECK(saga_command_pending(queue) == queued_before);
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
