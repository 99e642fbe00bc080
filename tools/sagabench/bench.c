/* sagabench's figures: measured windows, latency percentiles, output (bench.h). */
#include "bench.h"

#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "probe.h"
#include "saga_clock.h"

void bench_procs_find(bench_procs_t *p, const char *dir) {
    p->count = 0;
    DIR *d = dir ? opendir(dir) : NULL;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL && p->count < BENCH_MAX_PROCS - 1) {
        size_t len = strlen(e->d_name);
        if (len <= 4 || len - 4 >= sizeof p->name[0] || strcmp(e->d_name + len - 4, ".pid")) continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "r");
        long pid = 0;
        if (f && fscanf(f, "%ld", &pid) == 1 && pid > 0) {
            char name[sizeof p->name[0]];
            snprintf(name, sizeof name, "%.*s", (int)(len - 4), e->d_name);
            int i = p->count++; /* inserted in name order (a handful of files) */
            for (; i > 0 && strcmp(p->name[i - 1], name) > 0; i--) {
                memcpy(p->name[i], p->name[i - 1], sizeof p->name[0]);
                p->pid[i] = p->pid[i - 1];
            }
            memcpy(p->name[i], name, sizeof name);
            p->pid[i] = (pid_t)pid;
        }
        if (f) fclose(f);
    }
    if (d) closedir(d);
    snprintf(p->name[p->count], sizeof p->name[0], "sagabench");
    p->pid[p->count++] = getpid();
}

static const char *const STAGES[] = {
    "sagad_consume_lag_seconds", "sagad_handle_duration_seconds", "sagad_commit_duration_seconds",
    "sagad_relay_duration_seconds", "sagad_iteration_duration_seconds", "sagad_step_duration_seconds",
    "participant_consume_lag_seconds", "participant_process_duration_seconds", "participant_reply_duration_seconds",
};

static int stage_slot(bench_stages_t *st, const char *name) {
    for (int i = 0; i < st->count; i++)
        if (!strcmp(st->name[i], name)) return i;
    if (st->count == BENCH_MAX_STAGES) return -1;
    snprintf(st->name[st->count], sizeof st->name[0], "%s", name);
    st->sum[st->count] = st->n[st->count] = 0;
    return st->count++;
}

void bench_stages_parse(bench_stages_t *st, const char *proc, const char *text) {
    for (const char *line = text; line && *line;) {
        const char *next = strchr(line, '\n');
        for (size_t k = 0; k < sizeof STAGES / sizeof *STAGES; k++) {
            size_t len = strlen(STAGES[k]);
            if (strncmp(line, STAGES[k], len)) continue;
            bool is_sum = !strncmp(line + len, "_sum ", 5), is_count = !strncmp(line + len, "_count ", 7);
            if (!is_sum && !is_count) continue;
            char name[112];
            snprintf(name, sizeof name, "%s %s", proc, STAGES[k]);
            int i = stage_slot(st, name);
            if (i < 0) break;
            double v = strtod(line + len + (is_sum ? 5 : 7), NULL);
            if (is_sum) st->sum[i] = v;
            else st->n[i] = v;
            break;
        }
        line = next ? next + 1 : NULL;
    }
}

static char *read_file(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    char *buf = malloc(65536);
    size_t n = buf ? fread(buf, 1, 65535, f) : 0;
    fclose(f);
    if (buf) buf[n] = '\0';
    return buf;
}

static void sample_stages(bench_stages_t *st, const char *admin_url, const bench_procs_t *procs, const char *dir) {
    st->count = 0;
    if (admin_url) {
        char url[512];
        snprintf(url, sizeof url, "%s/metrics", admin_url);
        char *text = probe_http_text(url);
        bench_stages_parse(st, "sagad", text);
        free(text);
    }
    for (int i = 0; dir && procs && i < procs->count; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.prom", dir, procs->name[i]);
        char *text = read_file(path);
        if (text) bench_stages_parse(st, procs->name[i], text);
        free(text);
    }
}

void bench_window_sample(bench_window_t *w, pid_t sagad_pid, const char *admin_url, const bench_procs_t *procs,
                         const char *stack_dir) {
    sample_stages(&w->stages, admin_url, procs, stack_dir);
    for (int i = 0; procs && i < procs->count; i++)
        w->proc_cpu_us[i] = procs->pid[i] > 0 ? probe_cpu_us(procs->pid[i]) : -1;
    w->at_us = saga_monotonic_us();
    w->cpu_us = sagad_pid > 0 ? probe_cpu_us(sagad_pid) : -1;
    if (sagad_pid <= 0 || probe_memory_kb(sagad_pid, &w->rss_kb, &w->hwm_kb)) w->rss_kb = w->hwm_kb = -1;
    w->commits = admin_url ? probe_metric(admin_url, "sagad_commits_total") : -1;
    w->messages = admin_url ? probe_metric(admin_url, "sagad_messages_total") : -1;
    w->produced = admin_url ? probe_metric(admin_url, "sagad_produced_total") : -1;
    w->statements = admin_url ? probe_metric(admin_url, "sagad_sql_statements_total") : -1;
}

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_percentile(const double *sorted, long n, double p) {
    if (n <= 0) return 0;
    /* nearest rank, 1-based; the epsilon keeps 99.9% of 1000 at 999, not 1000 */
    long rank = (long)ceil(p / 100.0 * (double)n - 1e-9);
    if (rank < 1) rank = 1;
    if (rank > n) rank = n;
    return sorted[rank - 1];
}

void bench_result_fill(bench_result_t *r, const bench_window_t *w0, const bench_window_t *w1, double *latency_ms,
                       long n) {
    qsort(latency_ms, (size_t)n, sizeof *latency_ms, compare_doubles);
    r->measured = n;
    r->seconds = (double)(w1->at_us - w0->at_us) / 1e6;
    r->sagas_per_s = r->seconds > 0 ? (double)n / r->seconds : 0;
    r->p50_ms = bench_percentile(latency_ms, n, 50);
    r->p95_ms = bench_percentile(latency_ms, n, 95);
    r->p99_ms = bench_percentile(latency_ms, n, 99);
    r->max_ms = n ? latency_ms[n - 1] : 0;
    r->cpu_us_per_saga = w0->cpu_us >= 0 && w1->cpu_us >= 0 && n ? (double)(w1->cpu_us - w0->cpu_us) / (double)n : -1;
    r->rss_start_kb = w0->rss_kb;
    r->rss_end_kb = w1->rss_kb;
    r->hwm_kb = w1->hwm_kb;
    bool counters = w0->commits >= 0 && w1->commits >= 0 && r->seconds > 0;
    r->commits_per_s = counters ? (w1->commits - w0->commits) / r->seconds : -1;
    r->kafka_records_per_s = counters && w0->messages >= 0 && w1->produced >= 0
                                 ? (w1->messages - w0->messages + w1->produced - w0->produced) / r->seconds
                                 : -1;
    r->records_per_saga = r->kafka_records_per_s >= 0 && r->sagas_per_s > 0 ? r->kafka_records_per_s / r->sagas_per_s : -1;
    r->statements_per_saga = w0->statements >= 0 && w1->statements >= 0 && n ? (w1->statements - w0->statements) / (double)n : -1;
    r->stage_means.count = 0;
    for (int i = 0; i < w1->stages.count; i++) {
        int j = 0;
        while (j < w0->stages.count && strcmp(w0->stages.name[j], w1->stages.name[i])) j++;
        double n0 = j < w0->stages.count ? w0->stages.n[j] : 0, s0 = j < w0->stages.count ? w0->stages.sum[j] : 0;
        if (w1->stages.n[i] <= n0) continue;
        int k = r->stage_means.count++;
        snprintf(r->stage_means.name[k], sizeof r->stage_means.name[0], "%s", w1->stages.name[i]);
        r->stage_means.n[k] = w1->stages.n[i] - n0;
        r->stage_means.sum[k] = (w1->stages.sum[i] - s0) / r->stage_means.n[k];
    }
    for (int i = 0; r->procs && i < r->procs->count; i++)
        r->proc_cpu_us_per_saga[i] = w0->proc_cpu_us[i] >= 0 && w1->proc_cpu_us[i] >= 0 && n
                                         ? (double)(w1->proc_cpu_us[i] - w0->proc_cpu_us[i]) / (double)n
                                         : -1;
}

static void share(FILE *out, const char *what, double value, double ceiling, const char *unit) {
    if (value < 0) return;
    fprintf(out, "  %-28s %12.0f %s", what, value, unit);
    if (ceiling > 0) fprintf(out, "   (%.1f%% of the ceiling, %.0f %s)", 100.0 * value / ceiling, ceiling, unit);
    fputc('\n', out);
}

void bench_result_print(FILE *out, const bench_result_t *r) {
    fprintf(out, "sagabench %s: %s", r->label && *r->label ? r->label : "run",
            r->closed ? "closed loop" : "open loop");
    if (r->closed) fprintf(out, ", %lld in flight", r->closed);
    else fprintf(out, ", %.0f starts/s offered", r->offered_per_s);
    fprintf(out, ", %lld sagas (%ld measured, %ld failed, %ld lost)\n", r->count, r->measured, r->failed, r->lost);
    fprintf(out, "  %-28s %12.1f sagas/s over %.1f s\n", "completed", r->sagas_per_s, r->seconds);
    fprintf(out, "  %-28s p50 %.1f  p95 %.1f  p99 %.1f  max %.1f ms\n", "start-to-completed", r->p50_ms, r->p95_ms,
            r->p99_ms, r->max_ms);
    if (r->cpu_us_per_saga >= 0) fprintf(out, "  %-28s %12.1f us\n", "sagad CPU per saga", r->cpu_us_per_saga);
    if (r->rss_start_kb >= 0)
        fprintf(out, "  %-28s %ld -> %ld KiB (%+.1f%%), peak %ld KiB\n", "sagad RSS", r->rss_start_kb, r->rss_end_kb,
                r->rss_start_kb ? 100.0 * (double)(r->rss_end_kb - r->rss_start_kb) / (double)r->rss_start_kb : 0,
                r->hwm_kb);
    if (r->procs && r->procs->count) {
        double sum = 0;
        fprintf(out, "  CPU per saga, by process:\n");
        for (int i = 0; i < r->procs->count; i++) {
            if (r->proc_cpu_us_per_saga[i] < 0) continue;
            sum += r->proc_cpu_us_per_saga[i];
            fprintf(out, "    %-26s %12.1f us\n", r->procs->name[i], r->proc_cpu_us_per_saga[i]);
        }
        fprintf(out, "    %-26s %12.1f us  (%.0f sagas/s if CPU were the only limit: %ld cores)\n", "all", sum,
                sum > 0 ? (double)sysconf(_SC_NPROCESSORS_ONLN) * 1e6 / sum : 0, sysconf(_SC_NPROCESSORS_ONLN));
    }
    if (r->stage_means.count) fprintf(out, "  stages (mean over the window, events):\n");
    for (int i = 0; i < r->stage_means.count; i++)
        fprintf(out, "    %-62s %8.2f ms  (%.0f)\n", r->stage_means.name[i], r->stage_means.sum[i] * 1000.0,
                r->stage_means.n[i]);
    if (r->records_per_saga >= 0) fprintf(out, "  %-28s %12.1f\n", "Kafka records per saga", r->records_per_saga);
    if (r->statements_per_saga >= 0) fprintf(out, "  %-28s %12.1f\n", "SQLite statements per saga", r->statements_per_saga);
    share(out, "sagad commits", r->commits_per_s, r->sqlite_commits_per_s, "/s");
    share(out, "Kafka records via sagad", r->kafka_records_per_s, r->broker_rt_per_s, "/s");
    if (r->broker_rt_per_s > 0) fprintf(out, "  %-28s %12.0f /s\n", "ceiling: broker round trips", r->broker_rt_per_s);
    if (r->sqlite_commits_per_s > 0)
        fprintf(out, "  %-28s %12.0f /s\n", "ceiling: SQLite commits", r->sqlite_commits_per_s);
}

int bench_result_append_json(const char *path, const bench_result_t *r) {
    json_t *j = json_pack("{s:s, s:s, s:I, s:I, s:f, s:I, s:I, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:f,"
                          " s:I, s:I, s:I, s:f, s:f, s:f, s:f}",
                          "label", r->label ? r->label : "", "mode", r->closed ? "closed" : "open",
                          "count", (json_int_t)r->count, "in_flight", (json_int_t)r->closed,
                          "offered_per_s", r->offered_per_s, "measured", (json_int_t)r->measured,
                          "failed", (json_int_t)r->failed, "lost", (json_int_t)r->lost, "seconds", r->seconds,
                          "sagas_per_s", r->sagas_per_s, "p50_ms", r->p50_ms, "p95_ms", r->p95_ms, "p99_ms",
                          r->p99_ms, "max_ms", r->max_ms, "cpu_us_per_saga", r->cpu_us_per_saga, "rss_start_kb",
                          (json_int_t)r->rss_start_kb, "rss_end_kb", (json_int_t)r->rss_end_kb, "hwm_kb",
                          (json_int_t)r->hwm_kb, "commits_per_s", r->commits_per_s, "kafka_records_per_s",
                          r->kafka_records_per_s, "broker_rt_per_s", r->broker_rt_per_s, "sqlite_commits_per_s",
                          r->sqlite_commits_per_s);
    if (j) {
        json_object_set_new(j, "records_per_saga", json_real(r->records_per_saga));
        json_object_set_new(j, "statements_per_saga", json_real(r->statements_per_saga));
        json_t *by = json_object();
        for (int i = 0; r->procs && i < r->procs->count; i++)
            json_object_set_new(by, r->procs->name[i], json_real(r->proc_cpu_us_per_saga[i]));
        json_object_set_new(j, "cpu_us_per_saga_by_process", by);
        json_t *stages = json_object();
        for (int i = 0; i < r->stage_means.count; i++)
            json_object_set_new(stages, r->stage_means.name[i], json_pack("{s:f, s:f}", "mean_ms",
                                                                          r->stage_means.sum[i] * 1000.0, "events",
                                                                          r->stage_means.n[i]));
        json_object_set_new(j, "stage_means", stages);
    }
    FILE *f = j ? fopen(path, "a") : NULL;
    int rc = f && json_dumpf(j, f, JSON_COMPACT) == 0 && fputc('\n', f) != EOF ? 0 : -1;
    if (f && fclose(f)) rc = -1;
    json_decref(j);
    return rc;
}
