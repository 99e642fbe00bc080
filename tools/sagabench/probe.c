/* What sagabench reads around a run: /proc CPU and memory, sagad's /metrics, SQLite commit rate (probe.h). */
#include "probe.h"

#include <curl/curl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "saga_clock.h"

int64_t probe_cpu_us(pid_t pid) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* Fields after the command name, which is in parentheses and may hold blanks. */
    char *p = strrchr(buf, ')');
    unsigned long long utime, stime;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2)
        return -1;
    long ticks = sysconf(_SC_CLK_TCK);
    return (int64_t)((utime + stime) * 1000000ULL / (unsigned long long)(ticks > 0 ? ticks : 100));
}

int probe_memory_kb(pid_t pid, long *rss_kb, long *hwm_kb) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    *rss_kb = *hwm_kb = -1;
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "VmRSS:", 6)) *rss_kb = strtol(line + 6, NULL, 10);
        else if (!strncmp(line, "VmHWM:", 6)) *hwm_kb = strtol(line + 6, NULL, 10);
    }
    fclose(f);
    return *rss_kb >= 0 && *hwm_kb >= 0 ? 0 : -1;
}

typedef struct {
    char *buf;
    size_t len;
} body_t;

static size_t collect(char *data, size_t size, size_t n, void *user) {
    body_t *b = user;
    char *nb = realloc(b->buf, b->len + size * n + 1);
    if (!nb) return 0;
    memcpy(nb + b->len, data, size * n);
    b->buf = nb;
    b->len += size * n;
    b->buf[b->len] = '\0';
    return size * n;
}

char *probe_http_text(const char *url) {
    CURL *c = curl_easy_init();
    if (!c) return NULL;
    body_t b = {0};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_cleanup(c);
    if (rc != CURLE_OK) {
        free(b.buf);
        return NULL;
    }
    return b.buf;
}

double probe_metric(const char *admin_url, const char *metric) {
    char url[512];
    snprintf(url, sizeof url, "%s/metrics", admin_url);
    char *text = probe_http_text(url);
    double value = -1;
    size_t len = strlen(metric);
    for (char *line = text; line && *line;) {
        char *next = strchr(line, '\n');
        if (!strncmp(line, metric, len) && line[len] == ' ') {
            value = strtod(line + len + 1, NULL);
            break;
        }
        line = next ? next + 1 : NULL;
    }
    free(text);
    return value;
}

double probe_sqlite_commits_per_s(const char *dir, double seconds) {
    char path[1024], where[1024];
    /* sagad's data directory (its shard files), or one database file
     * (SAGA_DB as it was): the scratch file goes next to it */
    snprintf(where, sizeof where, "%s", dir);
    struct stat sb;
    if (stat(where, &sb) == 0 && !S_ISDIR(sb.st_mode)) {
        char *slash = strrchr(where, '/');
        if (slash) *slash = '\0';
        else snprintf(where, sizeof where, ".");
    }
    snprintf(path, sizeof path, "%s/sagabench-ceiling-%d.db", where, (int)getpid());
    sqlite3 *db = NULL;
    sqlite3_stmt *ins = NULL;
    double rate = -1;
    if (sqlite3_open(path, &db) != SQLITE_OK ||
        sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                         "CREATE TABLE t (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)",
                     NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "INSERT INTO t (payload) VALUES (?)", -1, &ins, NULL) != SQLITE_OK) {
        fprintf(stderr, "sagabench: SQLite ceiling on %s: %s\n", path, db ? sqlite3_errmsg(db) : "cannot open");
        goto done;
    }
    const char payload[] = "{\"type\":\"saga.event\",\"saga_id\":\"bench-1\",\"seq\":1}";
    int64_t start = saga_monotonic_us(), end = start + (int64_t)(seconds * 1e6);
    long commits = 0;
    while (saga_monotonic_us() < end) {
        if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) goto done;
        sqlite3_bind_text(ins, 1, payload, -1, SQLITE_STATIC);
        int rc = sqlite3_step(ins);
        sqlite3_reset(ins);
        if (rc != SQLITE_DONE || sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) goto done;
        commits++;
    }
    rate = (double)commits / ((double)(saga_monotonic_us() - start) / 1e6);
done:
    sqlite3_finalize(ins);
    sqlite3_close(db);
    char side[1100];
    unlink(path);
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);
    return rate;
}
