/* sagabench's figures: a measured window between two samples of sagad,
 * latency percentiles, and their output (table and JSON line). */
#ifndef SAGABENCH_BENCH_H
#define SAGABENCH_BENCH_H

#include <stdio.h>
#include <sys/types.h>

/* The processes of a stack run directory (scripts/stack: NAME.pid files),
 * sagabench itself last. */
#define BENCH_MAX_PROCS 16
typedef struct {
    int count;
    char name[BENCH_MAX_PROCS][48];
    pid_t pid[BENCH_MAX_PROCS];
} bench_procs_t;

/* Reads dir/\*.pid (NULL dir: none) and adds this process as "sagabench". */
void bench_procs_find(bench_procs_t *p, const char *dir);

/* Where a hop's time goes: the sum and count of each stage histogram of
 * sagad's /metrics and of the workers' --metrics-file (NAME.prom in the
 * stack directory), as "process metric". */
#define BENCH_MAX_STAGES 48
typedef struct {
    int count;
    char name[BENCH_MAX_STAGES][112];
    double sum[BENCH_MAX_STAGES], n[BENCH_MAX_STAGES];
} bench_stages_t;

/* Adds the stage histograms (*_seconds_sum / _count of the metrics sagabench
 * knows) found in Prometheus text, as "proc metric". */
void bench_stages_parse(bench_stages_t *st, const char *proc, const char *text);

typedef struct {
    long long at_us;                 /* monotonic */
    long long cpu_us;                /* sagad utime + stime, -1 unknown */
    long rss_kb, hwm_kb;             /* -1 unknown */
    double commits, messages, produced; /* sagad's counters, -1 unknown */
    double statements;               /* sagad's SQLite statements run, -1 unknown */
    long long proc_cpu_us[BENCH_MAX_PROCS]; /* bench_procs_t order, -1 unknown */
    bench_stages_t stages;
} bench_window_t;

typedef struct {
    const char *label;
    long long count, closed;         /* closed: sagas in flight (0: open loop) */
    double offered_per_s;            /* open loop rate, 0 for closed */
    long measured, failed, lost;
    double seconds, sagas_per_s;
    double p50_ms, p95_ms, p99_ms, max_ms;
    double cpu_us_per_saga;          /* -1 unknown */
    long rss_start_kb, rss_end_kb, hwm_kb;
    double commits_per_s, kafka_records_per_s; /* through sagad; -1 unknown */
    double broker_rt_per_s, sqlite_commits_per_s; /* ceilings, -1 not measured */
    double records_per_saga, statements_per_saga; /* through sagad; -1 unknown */
    const bench_procs_t *procs;      /* NULL: no per-process CPU */
    double proc_cpu_us_per_saga[BENCH_MAX_PROCS]; /* -1 unknown */
    bench_stages_t stage_means;      /* sum: mean seconds over the window, n: events in it */
} bench_result_t;

/* Samples time, sagad's CPU, memory and counters, every process's CPU and
 * the stage histograms (stack_dir: the workers' NAME.prom files; may be NULL). */
void bench_window_sample(bench_window_t *w, pid_t sagad_pid, const char *admin_url, const bench_procs_t *procs,
                         const char *stack_dir);

/* The p-th percentile (0..100) of sorted[0..n) by the nearest-rank method;
 * 0 when n is 0. */
double bench_percentile(const double *sorted, long n, double p);

/* Fills rates, percentiles (sorts latency_ms) and deltas from w0 to w1. */
void bench_result_fill(bench_result_t *r, const bench_window_t *w0, const bench_window_t *w1, double *latency_ms,
                       long n);

void bench_result_print(FILE *out, const bench_result_t *r);
int bench_result_append_json(const char *path, const bench_result_t *r);

#endif
