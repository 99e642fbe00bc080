/* GET /metrics (Prometheus text format 0.0.4) and GET /readyz. Database
 * figures come from the read-only connection; process figures (counters,
 * flow control, timings) from the runtime snapshot the main loop publishes. */
#include "admin_handlers.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "saga_alloc.h"
#include "saga_error.h"

typedef struct {
    char *buf;
    size_t len, cap;
    int failed;
} text_t;

static void put(text_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(text_t *t, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->buf ? t->buf + t->len : NULL, t->buf ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) { t->failed = 1; return; }
        if (t->buf && t->len + (size_t)n < t->cap) { t->len += (size_t)n; return; }
        size_t cap = (t->cap ? t->cap * 2 : 8192) + (size_t)n;
        char *b = saga_realloc(t->buf, cap);
        if (!b) { t->failed = 1; return; }
        t->buf = b;
        t->cap = cap;
    }
}

/* Label values: backslash, quote and newline escaped. */
static const char *label(const char *s, char *out, size_t len) {
    size_t j = 0;
    for (; s && *s && j + 3 < len; s++) {
        if (*s == '\\' || *s == '"') out[j++] = '\\', out[j++] = *s;
        else if (*s == '\n') out[j++] = '\\', out[j++] = 'n';
        else out[j++] = *s;
    }
    out[j] = '\0';
    return out;
}

static void gauge_by_status(text_t *t, sqlite3 *db, const char *metric, const char *help, const char *sql) {
    put(t, "# HELP %s %s\n# TYPE %s gauge\n", metric, help, metric);
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) == SQLITE_OK) {
        char l[128];
        while (sqlite3_step(q) == SQLITE_ROW)
            put(t, "%s{status=\"%s\"} %lld\n", metric, label((const char *)sqlite3_column_text(q, 0), l, sizeof l),
                (long long)sqlite3_column_int64(q, 1));
    }
    sqlite3_finalize(q);
}

static void histogram(text_t *t, const char *metric, const char *help, const json_t *h) {
    if (!json_is_object(h)) return;
    put(t, "# HELP %s %s\n# TYPE %s histogram\n", metric, help, metric);
    size_t i;
    json_t *b;
    json_array_foreach(json_object_get(h, "buckets"), i, b) {
        json_t *le = json_array_get(b, 0);
        if (json_is_string(le)) put(t, "%s_bucket{le=\"+Inf\"} %lld\n", metric, (long long)json_integer_value(json_array_get(b, 1)));
        else put(t, "%s_bucket{le=\"%g\"} %lld\n", metric, json_real_value(le), (long long)json_integer_value(json_array_get(b, 1)));
    }
    put(t, "%s_sum %.6f\n%s_count %lld\n", metric, json_real_value(json_object_get(h, "sum")), metric,
        (long long)json_integer_value(json_object_get(h, "count")));
}

static void runtime_metrics(text_t *t, const json_t *rt) {
    put(t, "# HELP sagad_kafka_ready 1 once the consumer has its partitions\n# TYPE sagad_kafka_ready gauge\n"
           "sagad_kafka_ready %d\n", json_is_true(json_object_get(rt, "kafka_ready")));
    put(t, "# HELP sagad_outbox_in_flight Outbox messages handed to Kafka and not acknowledged yet\n"
           "# TYPE sagad_outbox_in_flight gauge\nsagad_outbox_in_flight %lld\n",
        (long long)json_integer_value(json_object_get(rt, "outbox_in_flight")));
    const char *name;
    json_t *v;
    json_object_foreach(json_object_get(rt, "counters"), name, v)
        put(t, "# TYPE sagad_%s_total counter\nsagad_%s_total %lld\n", name, name, (long long)json_integer_value(v));
    put(t, "# HELP sagad_ignored_events_total Events that changed nothing, by reason\n"
           "# TYPE sagad_ignored_events_total counter\n");
    json_object_foreach(json_object_get(rt, "ignored_events"), name, v)
        put(t, "sagad_ignored_events_total{reason=\"%s\"} %lld\n", name, (long long)json_integer_value(v));
    put(t, "# HELP sagad_topic_in_flight Commands out per participant topic (bulkhead)\n# TYPE sagad_topic_in_flight gauge\n"
           "# HELP sagad_topic_waiting Steps waiting for room per topic\n# TYPE sagad_topic_waiting gauge\n"
           "# HELP sagad_circuit_state Circuit breaker state per topic (1 for the current state)\n"
           "# TYPE sagad_circuit_state gauge\n");
    size_t i;
    json_t *tp;
    json_array_foreach(json_object_get(rt, "topics"), i, tp) {
        char l[300];
        label(json_string_value(json_object_get(tp, "topic")), l, sizeof l);
        const char *state = json_string_value(json_object_get(tp, "circuit"));
        put(t, "sagad_topic_in_flight{topic=\"%s\"} %lld\n", l, (long long)json_integer_value(json_object_get(tp, "in_flight")));
        put(t, "sagad_topic_waiting{topic=\"%s\"} %lld\n", l, (long long)json_integer_value(json_object_get(tp, "waiting")));
        static const char *const states[] = {"closed", "open", "half_open"};
        for (size_t k = 0; k < 3; k++)
            put(t, "sagad_circuit_state{topic=\"%s\",state=\"%s\"} %d\n", l, states[k], state && !strcmp(state, states[k]));
    }
    put(t, "# HELP sagad_consumer_lag Messages not consumed yet per topic (high watermark - position)\n"
           "# TYPE sagad_consumer_lag gauge\n");
    json_object_foreach(json_object_get(rt, "consumer_lag"), name, v) {
        char l[300];
        put(t, "sagad_consumer_lag{topic=\"%s\"} %lld\n", label(name, l, sizeof l), (long long)json_integer_value(v));
    }
    json_t *h = json_object_get(rt, "histograms");
    histogram(t, "sagad_commit_duration_seconds", "SQLite commit time per loop iteration", json_object_get(h, "commit_seconds"));
    histogram(t, "sagad_iteration_duration_seconds", "Loop iterations that did work", json_object_get(h, "iteration_seconds"));
    histogram(t, "sagad_step_duration_seconds", "Step start to success", json_object_get(h, "step_seconds"));
    histogram(t, "sagad_saga_duration_seconds", "Saga start to a terminal status", json_object_get(h, "saga_seconds"));
}

int admin_get_metrics(admin_ctx_t *ctx, admin_response_t *res) {
    text_t t = {0};
    gauge_by_status(&t, ctx->db, "saga_sagas", "Sagas by status (database)",
                    "SELECT status, count(*) FROM sagas GROUP BY status");
    gauge_by_status(&t, ctx->db, "saga_steps", "Steps by status (database)",
                    "SELECT status, count(*) FROM steps GROUP BY status");
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(ctx->db, "SELECT count(*) FROM outbox", -1, &q, NULL) == SQLITE_OK &&
        sqlite3_step(q) == SQLITE_ROW)
        put(&t, "# HELP saga_outbox_backlog Messages waiting in the outbox\n# TYPE saga_outbox_backlog gauge\n"
                "saga_outbox_backlog %lld\n", (long long)sqlite3_column_int64(q, 0));
    sqlite3_finalize(q);
    if (ctx->stats_runtime) {
        json_t *rt = json_object();
        if (!rt || ctx->stats_runtime(ctx->stats_runtime_arg, rt)) t.failed = 1;
        else runtime_metrics(&t, rt);
        json_decref(rt);
    }
    if (t.failed) {
        saga_free(t.buf);
        return admin_error(res, ADMIN_ERR_INTERNAL, "out of memory rendering metrics");
    }
    res->status = 200;
    res->body = t.buf ? t.buf : saga_strdup("");
    res->body_len = t.len;
    res->content_type = "text/plain; version=0.0.4; charset=utf-8";
    return res->body ? 0 : SAGA_ENOMEM;
}

int admin_get_ready(admin_ctx_t *ctx, admin_response_t *res) {
    sqlite3_stmt *q = NULL;
    int db_ok = sqlite3_prepare_v2(ctx->db, "SELECT count(*) FROM sagas LIMIT 1", -1, &q, NULL) == SQLITE_OK &&
                sqlite3_step(q) == SQLITE_ROW;
    sqlite3_finalize(q);
    int kafka_ok = 0;
    if (ctx->stats_runtime) {
        json_t *rt = json_object();
        if (rt && ctx->stats_runtime(ctx->stats_runtime_arg, rt) == 0)
            kafka_ok = json_is_true(json_object_get(rt, "kafka_ready"));
        json_decref(rt);
    }
    json_t *doc = json_pack("{s:s, s:b, s:b}", "status", db_ok && kafka_ok ? "ready" : "not_ready", "sqlite", db_ok,
                            "kafka", kafka_ok);
    if (!doc) return SAGA_ENOMEM;
    int rc = admin_json_response(res, db_ok && kafka_ok ? 200 : 503, doc);
    json_decref(doc);
    return rc;
}
