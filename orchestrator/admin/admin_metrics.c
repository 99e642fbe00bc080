/* GET /metrics (Prometheus text format 0.0.4) and GET /readyz. Database
 * figures come from every shard's read-only connection, summed; process figures (counters,
 * flow control, timings) from the runtime snapshot the main loop publishes. */
#include "admin_handlers.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
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

/* A gauge by status summed over the shards: (status, count) pairs. */
#define MAX_LABELS 32
typedef struct {
    char status[MAX_LABELS][64];
    long long count[MAX_LABELS];
    int n;
} by_status_t;

/* Adds what sql (status, count) answers on db to g; -1 when it fails. */
static int count_by_status(sqlite3 *db, const char *sql, by_status_t *g) {
    sqlite3_stmt *q = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &q, NULL);
    if (rc != SQLITE_OK) return -1;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        const char *status = (const char *)sqlite3_column_text(q, 0);
        int k = 0;
        while (k < g->n && strcmp(g->status[k], status ? status : "") != 0) k++;
        if (k == g->n) {
            if (g->n == MAX_LABELS) continue;
            snprintf(g->status[g->n++], sizeof g->status[0], "%s", status ? status : "");
        }
        g->count[k] += sqlite3_column_int64(q, 1);
    }
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? 0 : -1;
}

static int status_order(const void *a, const void *b) { return strcmp(a, b); }

static void gauge_by_status(text_t *t, by_status_t *g, const char *metric, const char *help) {
    put(t, "# HELP %s %s\n# TYPE %s gauge\n", metric, help, metric);
    by_status_t sorted = *g;
    qsort(sorted.status, (size_t)sorted.n, sizeof sorted.status[0], status_order);
    char l[128];
    for (int i = 0; i < sorted.n; i++)
        for (int k = 0; k < g->n; k++)
            if (!strcmp(sorted.status[i], g->status[k]))
                put(t, "%s{status=\"%s\"} %lld\n", metric, label(g->status[k], l, sizeof l), g->count[k]);
}

/* The database gauges, summed over the shards, when every shard answers;
 * saga_shard_up per shard (1 it answered, 0 not: the gauges are left out
 * rather than summed over part of the sagas). */
static void database_metrics(admin_ctx_t *ctx, text_t *t) {
    by_status_t *sagas = saga_calloc(1, sizeof *sagas), *steps = saga_calloc(1, sizeof *steps);
    int n = admin_shard_count(ctx), all = sagas && steps;
    long long outbox = 0;
    if (!all) t->failed = 1;
    put(t, "# HELP saga_shard_up 1 when the shard's SQLite file answers the admin API, else 0 (the database"
           " gauges are then left out)\n# TYPE saga_shard_up gauge\n");
    for (int i = 0; sagas && steps && i < n; i++) {
        char why[1024];
        if (!admin_shard_owned(ctx, i)) continue; /* another instance's: its /metrics says */
        sqlite3 *db = admin_shard_check(ctx, i, why, sizeof why);
        int up = db != NULL;
        if (up) up = count_by_status(db, "SELECT status, count(*) FROM sagas GROUP BY status", sagas) == 0 &&
                     count_by_status(db, "SELECT status, count(*) FROM steps GROUP BY status", steps) == 0;
        sqlite3_stmt *q = NULL;
        if (up) {
            up = sqlite3_prepare_v2(db, "SELECT count(*) FROM outbox", -1, &q, NULL) == SQLITE_OK &&
                 sqlite3_step(q) == SQLITE_ROW;
            if (up) outbox += sqlite3_column_int64(q, 0);
            sqlite3_finalize(q);
        }
        all &= up;
        put(t, "saga_shard_up{shard=\"%d\"} %d\n", i, up);
    }
    if (all) {
        gauge_by_status(t, sagas, "saga_sagas", "Sagas by status (database, every shard)");
        gauge_by_status(t, steps, "saga_steps", "Steps by status (database, every shard)");
        put(t, "# HELP saga_outbox_backlog Messages waiting in the outbox\n# TYPE saga_outbox_backlog gauge\n"
               "saga_outbox_backlog %lld\n", outbox);
    }
    saga_free(sagas);
    saga_free(steps);
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

/* The per-shard gauges of GET /metrics, from the runtime's "restore" array
 * (one entry per shard: its last restore, ownership and consumer lag). */
typedef enum { SHARD_INT, SHARD_SECONDS, SHARD_POSITIVE, SHARD_TRUE, SHARD_REBUILT } shard_value_t;
typedef struct {
    const char *name, *type, *field;
    shard_value_t value;
    const char *help;
} shard_gauge_t;
static const shard_gauge_t SHARD_GAUGES[] = {
    {"sagad_restore_records_total", "counter", "records", SHARD_INT,
     "Changelog records applied by the last restore of the shard (at start or when assigned)"},
    {"sagad_restore_sagas_total", "counter", "sagas", SHARD_INT,
     "Sagas restored from the changelog by the last restore of the shard"},
    {"sagad_restore_seconds", "gauge", "seconds", SHARD_SECONDS,
     "Time the last restore of the shard took (0: nothing to restore)"},
    {"sagad_restore_changelog_truncated", "gauge", "lost_before", SHARD_POSITIVE,
     "1 when the restore needed changelog records the topic no longer holds (deleted by retention): sagas of "
     "the shard may be missing"},
    {"sagad_shard_owned", "gauge", "owned", SHARD_TRUE,
     "1 when this instance owns the shard (the group assigned it its partitions)"},
    {"sagad_shard_lag", "gauge", "lag", SHARD_INT,
     "Messages not consumed yet in the shard's partitions (saga.start, saga.replies, saga.control) while "
     "this instance is assigned them"},
    {"sagad_restore_diverged", "gauge", "diverged", SHARD_TRUE,
     "1 when the shard was rebuilt because another instance wrote its changelog after commits of this file "
     "that never reached it"},
    {"sagad_restore_in_progress", "gauge", "in_progress", SHARD_TRUE, "1 while the shard is being restored"},
    {"sagad_restore_rebuilt", "gauge", "kind", SHARD_REBUILT,
     "1 when the shard was missing or corrupt and rebuilt at start"},
};

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
           "# TYPE sagad_circuit_state gauge\n"
           "# HELP sagad_topic_paused 1 while an operator holds the topic's commands (POST /v1/topics/{topic}/pause)\n"
           "# TYPE sagad_topic_paused gauge\n");
    size_t i;
    json_t *tp;
    json_array_foreach(json_object_get(rt, "topics"), i, tp) {
        char l[300];
        label(json_string_value(json_object_get(tp, "topic")), l, sizeof l);
        const char *state = json_string_value(json_object_get(tp, "circuit"));
        put(t, "sagad_topic_in_flight{topic=\"%s\"} %lld\n", l, (long long)json_integer_value(json_object_get(tp, "in_flight")));
        put(t, "sagad_topic_waiting{topic=\"%s\"} %lld\n", l, (long long)json_integer_value(json_object_get(tp, "waiting")));
        put(t, "sagad_topic_paused{topic=\"%s\"} %d\n", l, json_is_true(json_object_get(tp, "paused")));
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
    json_t *restore = json_object_get(rt, "restore");
    if (json_array_size(restore)) {
        for (size_t g = 0; g < sizeof SHARD_GAUGES / sizeof SHARD_GAUGES[0]; g++) {
            const shard_gauge_t *sg = &SHARD_GAUGES[g];
            put(t, "# HELP %s %s\n# TYPE %s %s\n", sg->name, sg->help, sg->name, sg->type);
            json_array_foreach(restore, i, tp) {
                long long shard = (long long)json_integer_value(json_object_get(tp, "shard"));
                json_t *fv = json_object_get(tp, sg->field);
                switch (sg->value) {
                case SHARD_INT:
                    put(t, "%s{shard=\"%lld\"} %lld\n", sg->name, shard, (long long)json_integer_value(fv));
                    break;
                case SHARD_SECONDS:
                    put(t, "%s{shard=\"%lld\"} %.3f\n", sg->name, shard, json_real_value(fv));
                    break;
                case SHARD_POSITIVE:
                    put(t, "%s{shard=\"%lld\"} %d\n", sg->name, shard, json_integer_value(fv) > 0);
                    break;
                case SHARD_TRUE:
                    put(t, "%s{shard=\"%lld\"} %d\n", sg->name, shard, json_is_true(fv));
                    break;
                case SHARD_REBUILT:
                    put(t, "%s{shard=\"%lld\"} %d\n", sg->name, shard,
                        json_is_string(fv) && !strcmp(json_string_value(fv), "rebuilt"));
                    break;
                }
            }
        }
    }
    json_t *h = json_object_get(rt, "histograms");
    histogram(t, "sagad_commit_duration_seconds", "SQLite commit time per loop iteration", json_object_get(h, "commit_seconds"));
    histogram(t, "sagad_iteration_duration_seconds", "Loop iterations that did work", json_object_get(h, "iteration_seconds"));
    histogram(t, "sagad_step_duration_seconds", "Step start to success", json_object_get(h, "step_seconds"));
    histogram(t, "sagad_saga_duration_seconds", "Saga start to a terminal status", json_object_get(h, "saga_seconds"));
    histogram(t, "sagad_consume_lag_seconds", "A consumed record's timestamp (its producer's clock) to sagad's poll",
              json_object_get(h, "consume_lag_seconds"));
    histogram(t, "sagad_handle_duration_seconds", "Applying a loop iteration's batch, timers and commands, before the commit",
              json_object_get(h, "handle_seconds"));
    histogram(t, "sagad_relay_duration_seconds", "A relay pass's wait for its deliveries and its Kafka transaction's commit",
              json_object_get(h, "relay_seconds"));
}

int admin_get_metrics(admin_ctx_t *ctx, admin_response_t *res) {
    text_t t = {0};
    database_metrics(ctx, &t);
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
    char why[1024] = "";
    int db_ok = 1, bad = -1;
    for (int i = 0, n = admin_shard_count(ctx); db_ok && i < n; i++) {
        if (!admin_shard_owned(ctx, i)) continue;
        sqlite3 *db = admin_shard_check(ctx, i, why, sizeof why);
        sqlite3_stmt *q = NULL;
        db_ok = db && sqlite3_prepare_v2(db, "SELECT count(*) FROM sagas LIMIT 1", -1, &q, NULL) == SQLITE_OK &&
                sqlite3_step(q) == SQLITE_ROW;
        if (db && !db_ok) {
            char name[400];
            snprintf(why, sizeof why, "%s: %s", admin_shard_name(ctx, i, name, sizeof name), sqlite3_errmsg(db));
        }
        sqlite3_finalize(q);
        if (!db_ok) bad = i;
    }
    int kafka_ok = 0;
    if (ctx->stats_runtime) {
        json_t *rt = json_object();
        if (rt && ctx->stats_runtime(ctx->stats_runtime_arg, rt) == 0)
            kafka_ok = json_is_true(json_object_get(rt, "kafka_ready"));
        json_decref(rt);
    }
    json_t *doc = json_pack("{s:s, s:b, s:b}", "status", db_ok && kafka_ok ? "ready" : "not_ready", "sqlite", db_ok,
                            "kafka", kafka_ok);
    if (doc && !db_ok) { /* which shard, and why */
        json_object_set_new(doc, "shard", json_integer(bad));
        json_object_set_new(doc, "sqlite_error", admin_json_text(why, strlen(why)));
    }
    if (!doc) return SAGA_ENOMEM;
    int rc = admin_json_response(res, db_ok && kafka_ok ? 200 : 503, doc);
    json_decref(doc);
    return rc;
}
