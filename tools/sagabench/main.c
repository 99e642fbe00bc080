/* sagabench: drives sagas through a running stack over Kafka and measures
 * them end to end (docs/BENCHMARKS.md). Start events go to saga.start; a
 * saga is done when its terminal lifecycle event arrives on saga.events.
 *
 *   closed loop (--closed C): C sagas in flight, a new one per completion:
 *     the highest rate the stack sustains;
 *   open loop (--rate R): starts at fixed times whatever happens; latency
 *     counts from the scheduled time, so a queue shows as latency.
 *
 * With --ceilings it first measures the machine's limits in the same
 * conditions: produce->consume round trips per second through the same
 * broker with the same client settings, and SQLite durable commits per
 * second on the disk of sagad's database. */
#define _GNU_SOURCE /* memmem */
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "probe.h"
#include "saga_alloc.h"
#include "saga_clock.h"
#include "saga_config.h"
#include "saga_kafka.h"
#include "saga_log.h"

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

typedef struct {
    const char *bootstrap, *bootstrap_file, *admin_url, *db_dir, *stack_dir, *definition, *json_path, *label;
    const char *events_topic, *start_topic, *ping_topic;
    long long sagad_pid, closed, count, warmup, timeout_s, rss_every_s;
    const char *rate;
    bool ceilings;
    saga_kv_list_t props;
} options_t;

typedef struct {
    options_t *o;
    rd_kafka_t *producer, *consumer;
    char prefix[48];
    int64_t *sent_us;     /* per saga: when it was (or was due to be) sent */
    double *latency_ms;   /* completions in the measured window */
    long sent, done, measured, lost, failed;
} run_t;

static rd_kafka_t *new_client(options_t *o, saga_kafka_role_t role, const char *bootstrap) {
    char err[512], group[64];
    snprintf(group, sizeof group, "sagabench-%d", (int)getpid());
    rd_kafka_conf_t *conf = saga_kafka_conf_new(role, bootstrap, "sagabench", group, &o->props, err, sizeof err);
    if (!conf) {
        fprintf(stderr, "sagabench: %s\n", err);
        return NULL;
    }
    rd_kafka_t *rk = rd_kafka_new(role == SAGA_KAFKA_PRODUCER ? RD_KAFKA_PRODUCER : RD_KAFKA_CONSUMER, conf, err,
                                  sizeof err);
    if (!rk) fprintf(stderr, "sagabench: %s\n", err);
    return rk;
}

/* Assigns every partition of topic at its current end, so only records
 * produced from now on are read (explicit offsets: the end offset is not
 * looked up later, after the first events were already written). */
static int assign_at_end(rd_kafka_t *consumer, const char *topic) {
    const rd_kafka_metadata_t *md = NULL;
    rd_kafka_topic_t *t = rd_kafka_topic_new(consumer, topic, NULL);
    rd_kafka_resp_err_t e = rd_kafka_metadata(consumer, 0, t, &md, 10000);
    rd_kafka_topic_destroy(t);
    if (e || md->topic_cnt != 1 || md->topics[0].err || md->topics[0].partition_cnt == 0) {
        fprintf(stderr, "sagabench: no metadata for topic %s: %s\n", topic,
                rd_kafka_err2str(e ? e : md->topic_cnt ? md->topics[0].err : RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART));
        if (md) rd_kafka_metadata_destroy(md);
        return -1;
    }
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
    for (int i = 0; i < md->topics[0].partition_cnt; i++) {
        int32_t p = md->topics[0].partitions[i].id;
        int64_t low, high;
        if (rd_kafka_query_watermark_offsets(consumer, topic, p, &low, &high, 10000)) {
            fprintf(stderr, "sagabench: cannot read the end offset of %s [%d]\n", topic, (int)p);
            rd_kafka_topic_partition_list_destroy(parts);
            rd_kafka_metadata_destroy(md);
            return -1;
        }
        rd_kafka_topic_partition_list_add(parts, topic, p)->offset = high;
    }
    rd_kafka_metadata_destroy(md);
    e = rd_kafka_assign(consumer, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    return e ? -1 : 0;
}

static int produce(rd_kafka_t *p, const char *topic, const char *key, const char *value, size_t len) {
    for (;;) {
        rd_kafka_resp_err_t e = rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, strlen(key)),
                                                  RD_KAFKA_V_VALUE((void *)value, len),
                                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) return e ? -1 : 0;
        rd_kafka_poll(p, 10);
    }
}

/* ---- ceilings ------------------------------------------------------------ */

/* Produce->consume round trips per second with `window` records in flight. */
static double broker_round_trips_per_s(run_t *r, double seconds, int window) {
    const char *topic = r->o->ping_topic;
    if (assign_at_end(r->consumer, topic)) return -1;
    char value[400];
    memset(value, 'x', sizeof value);
    long produced = 0, consumed = 0;
    int64_t start = saga_monotonic_us(), end = start + (int64_t)(seconds * 1e6), last = start;
    while (!stop && saga_monotonic_us() < end && saga_monotonic_us() - last < 10000000) {
        while (produced - consumed < window) {
            char key[32];
            snprintf(key, sizeof key, "k%ld", produced % 64);
            if (produce(r->producer, topic, key, value, sizeof value)) return -1;
            produced++;
        }
        rd_kafka_poll(r->producer, 0);
        rd_kafka_message_t *m = rd_kafka_consumer_poll(r->consumer, 1);
        for (; m; m = rd_kafka_consumer_poll(r->consumer, 0)) {
            if (!m->err) {
                consumed++;
                last = saga_monotonic_us();
            }
            rd_kafka_message_destroy(m);
        }
    }
    double rate = (double)consumed / ((double)(saga_monotonic_us() - start) / 1e6);
    rd_kafka_assign(r->consumer, NULL);
    return consumed ? rate : -1;
}

/* ---- the saga run ----------------------------------------------------------- */

static int send_start(run_t *r, long n, int64_t due_us) {
    char id[96], msg[768];
    snprintf(id, sizeof id, "%s-%ld", r->prefix, n);
    int k = (int)(n % 3) + 1; /* three SKUs and accounts: the seed has 1,000,000 of each SKU */
    int len = snprintf(msg, sizeof msg,
                       "{\"type\":\"saga.start\",\"message_id\":\"m-%s\",\"definition\":\"%s\",\"saga_id\":\"%s\","
                       "\"input\":{\"order_id\":\"o-%s\",\"customer\":\"c-%d\",\"amount\":1,"
                       "\"items\":[{\"sku\":\"sku-%d\",\"qty\":1}]}}",
                       id, r->o->definition, id, id, k, k);
    r->sent_us[n] = due_us;
    return produce(r->producer, r->o->start_topic, id, msg, (size_t)len);
}

/* The saga number of a terminal event of this run, or -1. */
static long terminal_saga(run_t *r, const rd_kafka_message_t *m, int *failed) {
    if (m->err || !m->key || !m->payload) return -1;
    size_t plen = strlen(r->prefix);
    if (m->key_len <= plen + 1 || memcmp(m->key, r->prefix, plen) || ((const char *)m->key)[plen] != '-') return -1;
    const char *p = m->payload;
    if (memmem(p, m->len, "\"event\":\"saga.completed\"", 24)) *failed = 0;
    else if (memmem(p, m->len, "\"event\":\"saga.compensated\"", 26) ||
             memmem(p, m->len, "\"event\":\"saga.compensation_failed\"", 34))
        *failed = 1;
    else return -1;
    char num[24];
    size_t n = m->key_len - plen - 1;
    if (n >= sizeof num) return -1;
    memcpy(num, (const char *)m->key + plen + 1, n);
    num[n] = '\0';
    long i = strtol(num, NULL, 10);
    return i >= 0 && i < r->o->count ? i : -1;
}

/* A new producer learns a topic's partitions on its first produce, which
 * held the first starts of a run for up to a second: the clock starts only
 * once the producer knows them. */
static int learn_partitions(rd_kafka_t *producer, const char *topic) {
    rd_kafka_topic_t *t = rd_kafka_topic_new(producer, topic, NULL);
    const rd_kafka_metadata_t *md = NULL;
    rd_kafka_resp_err_t e = t ? rd_kafka_metadata(producer, 0, t, &md, 10000) : RD_KAFKA_RESP_ERR__FAIL;
    int ok = !e && md->topic_cnt == 1 && !md->topics[0].err && md->topics[0].partition_cnt > 0;
    if (!ok) fprintf(stderr, "sagabench: no metadata for topic %s: %s\n", topic, rd_kafka_err2str(e));
    if (md) rd_kafka_metadata_destroy(md);
    if (t) rd_kafka_topic_destroy(t);
    return ok ? 0 : -1;
}

static int run_sagas(run_t *r, bench_result_t *res) {
    options_t *o = r->o;
    if (assign_at_end(r->consumer, o->events_topic) || learn_partitions(r->producer, o->start_topic)) return -1;
    r->sent_us = saga_calloc((size_t)o->count, sizeof *r->sent_us);
    r->latency_ms = saga_calloc((size_t)o->count, sizeof *r->latency_ms);
    char *done = saga_calloc((size_t)o->count, 1);
    if (!r->sent_us || !r->latency_ms || !done) return -1;
    double rate = o->rate ? strtod(o->rate, NULL) : 0;
    pid_t pid = (pid_t)o->sagad_pid;
    bench_window_t w0 = {0}, w1 = {0};
    static bench_procs_t procs;
    bench_procs_find(&procs, o->stack_dir);
    res->procs = o->stack_dir ? &procs : NULL;
    if (o->warmup == 0) bench_window_sample(&w0, pid, o->admin_url, res->procs, o->stack_dir); /* the window is the whole run */
    int64_t t0 = saga_monotonic_us(), last_progress = t0, next_rss = t0;
    while (!stop && r->done + r->lost < o->count) {
        int64_t now = saga_monotonic_us();
        if (rate > 0) {
            while (r->sent < o->count && t0 + (int64_t)((double)r->sent * 1e6 / rate) <= now)
                if (send_start(r, r->sent, t0 + (int64_t)((double)r->sent * 1e6 / rate)) == 0) r->sent++;
                else return -1;
        } else {
            while (r->sent < o->count && r->sent - r->done < o->closed)
                if (send_start(r, r->sent, saga_monotonic_us()) == 0) r->sent++;
                else return -1;
        }
        rd_kafka_poll(r->producer, 0);
        rd_kafka_message_t *m = rd_kafka_consumer_poll(r->consumer, 1);
        for (int k = 0; m && k < 2000; k++, m = k < 2000 ? rd_kafka_consumer_poll(r->consumer, 0) : NULL) {
            int failed = 0;
            long i = terminal_saga(r, m, &failed);
            rd_kafka_message_destroy(m);
            if (i < 0 || done[i] || !r->sent_us[i]) continue;
            done[i] = 1;
            r->done++;
            r->failed += failed;
            last_progress = saga_monotonic_us();
            if (r->done == o->warmup) bench_window_sample(&w0, pid, o->admin_url, res->procs, o->stack_dir);
            if (r->done > o->warmup) r->latency_ms[r->measured++] = (double)(last_progress - r->sent_us[i]) / 1000.0;
        }
        if (o->rss_every_s > 0 && pid > 0 && now >= next_rss) {
            long rss, hwm;
            if (!probe_memory_kb(pid, &rss, &hwm))
                printf("rss %.1f s done %ld rss_kb %ld hwm_kb %ld\n", (double)(now - t0) / 1e6, r->done, rss, hwm);
            fflush(stdout);
            next_rss = now + o->rss_every_s * 1000000;
        }
        if (saga_monotonic_us() - last_progress > o->timeout_s * 1000000) {
            r->lost = o->count - r->done;
            fprintf(stderr, "sagabench: no saga finished for %lld s: %ld of %lld not finished\n", o->timeout_s,
                    r->lost, o->count);
        }
    }
    bench_window_sample(&w1, pid, o->admin_url, res->procs, o->stack_dir);
    bench_result_fill(res, &w0, &w1, r->latency_ms, r->measured);
    res->offered_per_s = rate;
    res->closed = rate > 0 ? 0 : o->closed;
    res->count = o->count;
    res->failed = r->failed;
    res->lost = r->lost + (o->count - r->done - r->lost);
    saga_free(done);
    return 0;
}

int main(int argc, char **argv) {
    saga_alloc_install_jansson();
    static options_t o;
    const saga_config_option_t table[] = {
        {"bootstrap", SAGA_CFG_STRING, NULL, "Kafka bootstrap servers", &o.bootstrap},
        {"bootstrap-file", SAGA_CFG_STRING, NULL, "read the bootstrap servers from this file", &o.bootstrap_file},
        {"admin-url", SAGA_CFG_STRING, NULL, "sagad's admin API (for its commit and message counters)", &o.admin_url},
        {"sagad-pid", SAGA_CFG_INT, "0", "sagad's pid (CPU time and memory from /proc)", &o.sagad_pid},
        {"db-dir", SAGA_CFG_STRING, NULL, "sagad's data directory, or a directory on its disk (SQLite ceiling of one shard file; default: no ceiling)", &o.db_dir},
        {"stack-dir", SAGA_CFG_STRING, NULL, "a scripts/stack run directory: CPU per saga of every process with a NAME.pid file there, and of sagabench", &o.stack_dir},
        {"definition", SAGA_CFG_STRING, "order_fulfillment", "saga definition to start", &o.definition},
        {"count", SAGA_CFG_INT, "10000", "sagas to run", &o.count},
        {"closed", SAGA_CFG_INT, "100", "closed loop: sagas in flight (ignored with --rate)", &o.closed},
        {"rate", SAGA_CFG_STRING, NULL, "open loop: starts per second", &o.rate},
        {"warmup", SAGA_CFG_INT, "-1", "completions before the measured window (-1: 5% of --count)", &o.warmup},
        {"timeout", SAGA_CFG_INT, "60", "give up when no saga finished for this many seconds", &o.timeout_s},
        {"ceilings", SAGA_CFG_BOOL, "false", "measure broker and SQLite ceilings first", &o.ceilings},
        {"rss-every", SAGA_CFG_INT, "0", "print sagad's RSS every N seconds (soak)", &o.rss_every_s},
        {"json", SAGA_CFG_STRING, NULL, "append one JSON line with the figures to this file", &o.json_path},
        {"label", SAGA_CFG_STRING, "", "label of this run in the JSON line", &o.label},
        {"start-topic", SAGA_CFG_STRING, "saga.start", "topic of start events", &o.start_topic},
        {"events-topic", SAGA_CFG_STRING, "saga.events", "topic of lifecycle events", &o.events_topic},
        {"ping-topic", SAGA_CFG_STRING, "sagabench.ping", "topic for the broker ceiling (must exist)", &o.ping_topic},
        {0},
    };
    char err[512];
    int rc = saga_config_parse(table, "SAGABENCH", "sagabench",
                               "drives sagas through a running stack and measures them (docs/BENCHMARKS.md)",
                               argc, argv, &o.props, err, sizeof err);
    if (rc == 1) return 0;
    if (rc) {
        fprintf(stderr, "sagabench: %s\n", err);
        return 2;
    }
    if (o.count <= 0 || o.closed <= 0 || (o.rate && strtod(o.rate, NULL) <= 0)) {
        fprintf(stderr, "sagabench: --count and --closed must be > 0, --rate a positive number\n");
        return 2;
    }
    if (o.warmup < 0) o.warmup = o.count / 20;
    if (o.warmup >= o.count) o.warmup = 0;
    saga_log_set_level_name("warn");
    char *bootstrap = saga_kafka_bootstrap(o.bootstrap, o.bootstrap_file, 10000, err, sizeof err);
    if (!bootstrap) {
        fprintf(stderr, "sagabench: %s\n", err);
        return 2;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    run_t r = {.o = &o};
    snprintf(r.prefix, sizeof r.prefix, "bench%dx%lld", (int)getpid(), (long long)(saga_now_ms() % 1000000000));
    r.producer = new_client(&o, SAGA_KAFKA_PRODUCER, bootstrap);
    r.consumer = new_client(&o, SAGA_KAFKA_CONSUMER, bootstrap);
    saga_free(bootstrap);
    if (!r.producer || !r.consumer) return 1;

    bench_result_t res = {.label = o.label, .broker_rt_per_s = -1, .sqlite_commits_per_s = -1};
    if (o.ceilings) {
        res.broker_rt_per_s = broker_round_trips_per_s(&r, 3.0, 1000);
        if (o.db_dir) res.sqlite_commits_per_s = probe_sqlite_commits_per_s(o.db_dir, 2.0);
        if (res.broker_rt_per_s < 0) fprintf(stderr, "sagabench: broker ceiling failed (topic %s)\n", o.ping_topic);
    }
    rc = run_sagas(&r, &res);
    if (rc == 0) {
        bench_result_print(stdout, &res);
        if (o.json_path && bench_result_append_json(o.json_path, &res))
            fprintf(stderr, "sagabench: cannot append to %s\n", o.json_path);
    }
    rd_kafka_flush(r.producer, 5000);
    rd_kafka_consumer_close(r.consumer);
    rd_kafka_destroy(r.consumer);
    rd_kafka_destroy(r.producer);
    saga_free(r.sent_us);
    saga_free(r.latency_ms);
    if (rc) return 1;
    return res.lost || stop ? 1 : 0;
}
