/* A temporary sagad database with a few sagas and a small libcurl client, for the admin tests. */
#include "test_admin_fixture.h"

#include "saga_partition.h"
#include "saga_shard_files.h"
#include "schema.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

const char fixture_sample_rows[] =
    /* a compensated saga: payment declined, two steps compensated */
    "INSERT INTO sagas (id, definition, version, status, input, traceparent, start_message_id,"
    " created_at, updated_at, deadline_at, seq, completions, error_code, error_message, search) VALUES"
    " ('" FX_SAGA_DONE "', 'order_fulfillment', 1, 'compensated',"
    "  '{\"order_id\":\"o-1\",\"amount\":42,\"items\":[{\"sku\":\"a\",\"qty\":2}]}',"
    "  '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', 'm-1',"
    "  1700000000000, 1700000000900, 1700000300000, 6, 2,"
    "  'PAYMENT_DECLINED', 'card limit exceeded', '{\"order_id\":\"o-1\",\"customer\":\"c-9\"}');"
    "INSERT INTO steps (saga_id, idx, name, status, attempt, comp_attempt, outcome_unknown, output,"
    " error_code, error_message, started_at, finished_at, updated_at, completion_order) VALUES"
    " ('" FX_SAGA_DONE "', 0, 'create_order', 'compensated', 1, 1, 0, '{\"order_ref\":\"R-1\"}',"
    "  '', '', 1700000000010, 1700000000050, 1700000000800, 1),"
    " ('" FX_SAGA_DONE "', 1, 'reserve_inventory', 'compensated', 2, 1, 1, NULL,"
    "  '', '', 1700000000060, 1700000000310, 1700000000700, 2),"
    " ('" FX_SAGA_DONE "', 2, 'charge_payment', 'failed', 1, 0, 0, NULL,"
    "  'PAYMENT_DECLINED', 'card limit exceeded', 1700000000320, 1700000000400, 1700000000400, 0),"
    " ('" FX_SAGA_DONE "', 3, 'notify', 'cancelled', 0, 0, 0, NULL, '', '', 0, 0, 0, 0);"
    "INSERT INTO history (saga_id, seq, at, event, step, status, detail) VALUES"
    " ('" FX_SAGA_DONE "', 1, 1700000000000, 'saga.started', NULL, 'running', '{}'),"
    " ('" FX_SAGA_DONE "', 2, 1700000000050, 'step.succeeded', 'create_order', 'running', '{\"attempt\":1}'),"
    " ('" FX_SAGA_DONE "', 3, 1700000000310, 'step.succeeded', 'reserve_inventory', 'running', '{\"attempt\":2}'),"
    " ('" FX_SAGA_DONE "', 4, 1700000000400, 'step.failed', 'charge_payment', 'compensating',"
    "  '{\"error\":{\"code\":\"PAYMENT_DECLINED\",\"message\":\"card limit exceeded\"}}'),"
    " ('" FX_SAGA_DONE "', 5, 1700000000700, 'step.compensated', 'reserve_inventory', 'compensating', '{}'),"
    " ('" FX_SAGA_DONE "', 6, 1700000000900, 'saga.compensated', NULL, 'compensated', '{}');"
    /* a running saga: no error, no deadline, step 0 in flight */
    "INSERT INTO sagas (id, definition, version, status, input, created_at, updated_at) VALUES"
    " ('" FX_SAGA_RUNNING "', 'order_fulfillment', 2, 'running', '[1,2,3]', 1700000001000, 1700000001000);"
    "INSERT INTO steps (saga_id, idx, name, status, attempt, started_at) VALUES"
    " ('" FX_SAGA_RUNNING "', 0, 'create_order', 'running', 1, 1700000001005);"
    "INSERT INTO history (saga_id, seq, at, event, step, status, detail) VALUES"
    " ('" FX_SAGA_RUNNING "', 1, 1700000001000, 'saga.started', NULL, 'running', '{\"by\":\"test\"}');"
    /* an id with a slash, a space and a non-ASCII letter */
    "INSERT INTO sagas (id, definition, version, status, input, created_at, updated_at) VALUES"
    " ('" FX_SAGA_ODD "', 'odd', 1, 'completed', '{}', 1700000002000, 1700000002000);";

int fixture_db_exec(fixture_db_t *fx, const char *sql) {
    char *msg = NULL;
    if (sqlite3_exec(fx->writer, sql, NULL, NULL, &msg) != SQLITE_OK) {
        fprintf(stderr, "fixture: SQL failed: %s\n", msg ? msg : "?");
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

int fixture_db_create(fixture_db_t *fx, int populate) {
    memset(fx, 0, sizeof *fx);
    const char *tmp = getenv("TMPDIR");
    snprintf(fx->dir, sizeof fx->dir, "%s/saga-admin-test-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(fx->dir)) {
        perror("fixture: mkdtemp");
        return -1;
    }
    snprintf(fx->db_path, sizeof fx->db_path, "%s/sagad.db", fx->dir);
    if (sqlite3_open(fx->db_path, &fx->writer) != SQLITE_OK) {
        fprintf(stderr, "fixture: cannot open %s\n", fx->db_path);
        return -1;
    }
    if (fixture_db_exec(fx, "PRAGMA journal_mode=WAL") != 0) return -1;
    if (!populate) return 0; /* schema not even created: user_version 0 */
    size_t n = sizeof saga_store_migrations / sizeof saga_store_migrations[0];
    if (fixture_db_exec(fx, "BEGIN") != 0) return -1;
    for (size_t i = 0; i < n; i++)
        if (fixture_db_exec(fx, saga_store_migrations[i]) != 0) return -1;
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA user_version=%zu", n);
    if (fixture_db_exec(fx, sql) != 0) return -1;
    if (fixture_db_exec(fx, fixture_sample_rows) != 0) return -1;
    return fixture_db_exec(fx, "COMMIT");
}

void fixture_db_destroy(fixture_db_t *fx) {
    if (fx->writer) sqlite3_close(fx->writer);
    fx->writer = NULL;
    if (!fx->dir[0]) return;
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
    char path[400];
    for (size_t i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s%s", fx->db_path, suffixes[i]);
        unlink(path);
    }
    rmdir(fx->dir);
    fx->dir[0] = '\0';
}

/* ---- shards ---- */

static int shards_exec(sqlite3 *db, const char *sql) {
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        fprintf(stderr, "fixture: SQL failed: %s\n", msg ? msg : "?");
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

static void shard_of_fn(sqlite3_context *c, int argc, sqlite3_value **argv) {
    (void)argc;
    const fixture_shards_t *fs = sqlite3_user_data(c);
    const unsigned char *id = sqlite3_value_text(argv[0]);
    sqlite3_result_int(c, id ? saga_partition_of((const char *)id, fs->count) : -1);
}

int fixture_shards_create(fixture_shards_t *fs, int count) {
    memset(fs, 0, sizeof *fs);
    if (count < 1 || count > FX_MAX_SHARDS) return -1;
    const char *tmp = getenv("TMPDIR");
    snprintf(fs->dir, sizeof fs->dir, "%s/saga-shards-test-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(fs->dir)) {
        perror("fixture: mkdtemp");
        return -1;
    }
    fs->count = count;
    size_t n = sizeof saga_store_migrations / sizeof saga_store_migrations[0];
    for (int p = 0; p < count; p++) {
        if (saga_shard_file(fs->dir, p, fs->path[p], sizeof fs->path[p]) < 0) return -1;
        fs->paths[p] = fs->path[p];
        if (sqlite3_open(fs->path[p], &fs->writer[p]) != SQLITE_OK) {
            fprintf(stderr, "fixture: cannot open %s\n", fs->path[p]);
            return -1;
        }
        if (sqlite3_create_function(fs->writer[p], "saga_shard_of", 1, SQLITE_UTF8, fs, shard_of_fn, NULL, NULL) !=
                SQLITE_OK ||
            shards_exec(fs->writer[p], "PRAGMA journal_mode=WAL; BEGIN") != 0)
            return -1;
        for (size_t i = 0; i < n; i++)
            if (shards_exec(fs->writer[p], saga_store_migrations[i]) != 0) return -1;
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA user_version=%zu; COMMIT", n);
        if (shards_exec(fs->writer[p], sql) != 0) return -1;
    }
    return 0;
}

int fixture_shards_spread(fixture_shards_t *fs, const char *sql) {
    for (int p = 0; p < fs->count; p++) {
        char del[512];
        snprintf(del, sizeof del,
                 "DELETE FROM sagas WHERE saga_shard_of(id) != %d; DELETE FROM steps WHERE saga_shard_of(saga_id) != %d;"
                 " DELETE FROM history WHERE saga_shard_of(saga_id) != %d;"
                 " DELETE FROM timers WHERE saga_shard_of(saga_id) != %d; COMMIT",
                 p, p, p, p);
        if (shards_exec(fs->writer[p], "BEGIN") != 0 || shards_exec(fs->writer[p], sql) != 0 ||
            shards_exec(fs->writer[p], del) != 0)
            return -1;
    }
    return 0;
}

sqlite3 *fixture_shard_of(fixture_shards_t *fs, const char *id) {
    return fs->writer[saga_partition_of(id, fs->count)];
}

void fixture_shards_destroy(fixture_shards_t *fs) {
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
    for (int p = 0; p < fs->count; p++) {
        if (fs->writer[p]) sqlite3_close(fs->writer[p]);
        fs->writer[p] = NULL;
        char path[400];
        for (size_t i = 0; i < 4; i++) {
            snprintf(path, sizeof path, "%s%s", fs->path[p], suffixes[i]);
            unlink(path);
        }
    }
    if (fs->dir[0]) rmdir(fs->dir);
    fs->dir[0] = '\0';
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *userp) {
    fx_reply_t *r = userp;
    size_t n = size * nmemb;
    char *grown = realloc(r->body, r->len + n + 1);
    if (!grown) return 0;
    memcpy(grown + r->len, data, n);
    r->body = grown;
    r->len += n;
    r->body[r->len] = '\0';
    return n;
}

static void copy_header(char *dst, size_t cap, const char *line, size_t n, const char *name) {
    size_t k = strlen(name);
    if (n <= k || strncasecmp(line, name, k) != 0) return;
    const char *v = line + k;
    size_t vl = n - k;
    while (vl && (*v == ' ')) { v++; vl--; }
    while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n')) vl--;
    snprintf(dst, cap, "%.*s", (int)vl, v);
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *userp) {
    fx_reply_t *r = userp;
    size_t n = size * nmemb;
    copy_header(r->allow, sizeof r->allow, data, n, "Allow:");
    copy_header(r->content_type, sizeof r->content_type, data, n, "Content-Type:");
    return n;
}

int fx_http(const char *method, const char *url, const char *body, size_t body_len, fx_reply_t *r) {
    memset(r, 0, sizeof *r);
    CURL *c = curl_easy_init();
    if (!c) return -1;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
    if (method && strcmp(method, "HEAD") == 0) curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    else if (method) curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    }
    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    else fprintf(stderr, "fixture: %s %s: %s\n", method ? method : "GET", url, curl_easy_strerror(rc));
    curl_easy_cleanup(c);
    if (!r->body) r->body = calloc(1, 1);
    return rc == CURLE_OK ? 0 : -1;
}

void fx_reply_free(fx_reply_t *r) {
    free(r->body);
    r->body = NULL;
}
