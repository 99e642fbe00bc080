/* What sagabench reads around a run: a process's CPU time and memory from
 * /proc, sagad's counters from its /metrics, and SQLite's durable commit
 * rate on this disk. */
#ifndef SAGABENCH_PROBE_H
#define SAGABENCH_PROBE_H

#include <stdint.h>
#include <sys/types.h>

/* utime + stime of pid in microseconds; -1 when it cannot be read. */
int64_t probe_cpu_us(pid_t pid);

/* VmRSS and VmHWM (peak) of pid in KiB; 0 on success. */
int probe_memory_kb(pid_t pid, long *rss_kb, long *hwm_kb);

/* The value of the first sample named `metric` (exact name, no labels) in
 * the Prometheus text at admin_url/metrics; -1 when missing. */
double probe_metric(const char *admin_url, const char *metric);

/* The body of a GET of url (NULL on error); free() it. */
char *probe_http_text(const char *url);

/* Durable commits per second for `seconds` on a fresh file in dir (sagad's
 * data directory, or the directory of dir when it is a database file), with
 * sagad's settings (WAL, synchronous=FULL), one small insert per
 * transaction: the ceiling of one shard file. -1 on error. */
double probe_sqlite_commits_per_s(const char *dir, double seconds);

#endif
