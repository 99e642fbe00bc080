/* sagabroker: the development Kafka broker. It wraps librdkafka's mock
 * cluster (rdkafka_mock.h) in a process: real Kafka protocol over loopback
 * TCP, memory only, no JVM. The brokers bind random ports, so the bootstrap
 * list is printed on stdout and written (atomically) to --bootstrap-file
 * for the other processes of the stack to read.
 *
 * Signals: SIGINT/SIGTERM stop it (exit 0); SIGUSR1 toggles every broker
 * down/up (outage tests); SIGUSR2 logs the current state and, when fault
 * injection is armed (--faults RATE > 0), also toggles the fault mode.
 *
 * Fault injection (chaos tests): while the fault mode is on, each request
 * of the chosen Kafka APIs (--fault-apis: Produce, Fetch, OffsetCommit,
 * JoinGroup, the transaction APIs, ...) fails with probability RATE with a
 * retriable error of that API (NOT_LEADER_FOR_PARTITION, NOT_COORDINATOR,
 * REQUEST_TIMED_OUT, CONCURRENT_TRANSACTIONS,
 * REBALANCE_IN_PROGRESS, ...) or is dropped: the broker closes the
 * connection (librdkafka's ERR__TRANSPORT). With --fault-delay-ms N a
 * quarter of the faults are instead answers held back 1..N ms. The error
 * is decided before the broker touches anything (a failed Produce appends
 * nothing), so a correct client loses and duplicates nothing. It works
 * through the mock's per-broker error stacks
 * (rd_kafka_mock_broker_push_request_error_rtts): every 10 ms the main
 * loop tops each stack up with a few random outcomes and counts the ones
 * the broker consumed (rd_kafka_mock_broker_error_stack_cnt), which gives
 * the request and fault counts logged on SIGUSR2, at each toggle and on
 * exit. Turning the mode off stops the top-ups; the few outcomes already
 * queued (one plus twice the requests of the last 10 ms, per API and broker)
 * still apply to the next requests of that API, however late they come:
 * a client that gives up on one error (kcat on a dropped connection) may
 * still meet one just after OFF.
 *
 * Limits of the mock (librdkafka 2.0.2), see docs/OPERATIONS.md: memory
 * only, and each partition keeps only its last 5 MB and 100,000 batches
 * (older records are dropped: no compaction); first group join ~3 s; an empty fetch waits the client's full
 * fetch.wait.max.ms; a single thread serves every broker; transactions are
 * accepted but not enforced (no markers, read_committed hides nothing,
 * TxnOffsetCommit offsets are dropped, no fencing; tests/integration/
 * txn_probe.c). */
#include "saga_alloc.h"
#include "saga_config.h"
#include "saga_error.h"
#include "saga_log.h"
#include "saga_util.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <arpa/inet.h>
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define COMPONENT "sagabroker"

/* Topics every stack needs; the participant topics match sagas/examples.
 * The first CONSUMED_TOPICS are the ones sagad consumes, and its changelog
 * (one partition per shard; the mock cannot create topics for sagad): they
 * get --partitions (sagad's P), the others --other-partitions. */
#define CONSUMED_TOPICS 4
static const char *const default_topics[] = {
    "saga.start",         "saga.replies",       "saga.control",    "saga.changelog",  "saga.events",     "saga.dlq",
    "order.commands",     "inventory.commands", "payment.commands", "notification.commands",
    "saga.instances",
};
/* sagad's instance registry: one partition (the mock cannot create it for sagad). */
#define REGISTRY_TOPIC "saga.instances"

static volatile sig_atomic_t stop_requested;
static volatile sig_atomic_t toggle_requested;
static volatile sig_atomic_t status_requested;

static void on_usr1(int sig) { (void)sig; toggle_requested = 1; }
static void on_usr2(int sig) { (void)sig; status_requested = 1; }

static void install_control_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    sa.sa_handler = on_usr2;
    sigaction(SIGUSR2, &sa, NULL);
}

/* librdkafka's own log lines (from its threads) go through saga_log. */
static void kafka_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    (void)rk;
    /* The host handle has no bootstrap.servers on purpose. */
    if (!strcmp(fac, "CONFWARN") && strstr(buf, "bootstrap.servers")) return;
    saga_log_level_t lvl = level <= 3 ? SAGA_LOG_ERROR : level <= 4 ? SAGA_LOG_WARN
                         : level <= 6 ? SAGA_LOG_INFO : SAGA_LOG_DEBUG;
    if (saga_log_enabled(lvl)) saga_log(lvl, "rdkafka", NULL, "%s: %s", fac, buf);
}

/* Creates `name` with `partitions` partitions; an existing topic is fine. */
static int create_topic(rd_kafka_mock_cluster_t *mc, const char *name, int partitions,
                        int replication) {
    rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(mc, name, partitions, replication);
    if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        LOG_ERROR(COMPONENT, "creating topic '%s' (%d partitions): %s", name, partitions,
                  rd_kafka_err2str(e));
        return SAGA_EKAFKA;
    }
    LOG_DEBUG(COMPONENT, "topic '%s': %d partitions, replication %d", name, partitions, replication);
    return 0;
}

/* The topics to create: the defaults, then the comma-separated extras
 * (blanks around names ignored, empty names skipped). Returns the count, or
 * SAGA_ENOMEM; *names_out (free with saga_free) points into *buf_out. */
static int collect_topics(const char *extra, char **buf_out, const char ***names_out) {
    size_t ndefault = sizeof default_topics / sizeof default_topics[0];
    char *buf = saga_strdup(extra ? extra : "");
    size_t cap = ndefault + 1 + (buf ? strlen(buf) / 2 + 1 : 0);
    const char **names = saga_calloc(cap, sizeof *names);
    if (!buf || !names) {
        saga_free(buf);
        saga_free(names);
        return SAGA_ENOMEM;
    }
    size_t n = 0;
    for (; n < ndefault; n++) names[n] = default_topics[n];
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ' || *t == '\t') t++;
        size_t len = strlen(t);
        while (len && (t[len - 1] == ' ' || t[len - 1] == '\t')) t[--len] = '\0';
        if (*t && n < cap) names[n++] = t;
    }
    *buf_out = buf;
    *names_out = names;
    return (int)n;
}

typedef struct {
    rd_kafka_mock_cluster_t *mc;
    const char *name;
    int partitions, replication, rc;
} topic_job_t;

static void *topic_job_run(void *arg) {
    topic_job_t *job = arg;
    job->rc = create_topic(job->mc, job->name, job->partitions, job->replication);
    return NULL;
}

/* Creates the topics concurrently: in librdkafka 2.0.2 an operation sent to
 * the mock cluster's thread is sometimes only picked up at its 1 s poll
 * timeout, so one at a time could cost a second per topic. The first
 * `consumed` names get `partitions`, the others `other_partitions`. */
static int create_topics(rd_kafka_mock_cluster_t *mc, const char *const *names, int count, int consumed,
                         int partitions, int other_partitions, int replication) {
    enum { BATCH = 32 };
    int rc = 0;
    for (int base = 0; base < count; base += BATCH) {
        topic_job_t jobs[BATCH];
        pthread_t threads[BATCH];
        bool started[BATCH];
        int n = count - base < BATCH ? count - base : BATCH;
        for (int i = 0; i < n; i++) {
            int want = base + i < consumed ? partitions : !strcmp(names[base + i], REGISTRY_TOPIC) ? 1 : other_partitions;
            jobs[i] = (topic_job_t){mc, names[base + i], want, replication, 0};
            started[i] = pthread_create(&threads[i], NULL, topic_job_run, &jobs[i]) == 0;
            if (!started[i]) topic_job_run(&jobs[i]); /* no thread: do it here */
        }
        for (int i = 0; i < n; i++) {
            if (started[i]) pthread_join(threads[i], NULL);
            if (jobs[i].rc) rc = jobs[i].rc;
        }
    }
    return rc;
}

/* The nudger. In librdkafka 2.0.2 an operation queued to the mock
 * cluster's thread (topic create, destroy) is sometimes only served when
 * that thread's 1 s poll times out. Any socket activity wakes the poll, so
 * during start-up and shutdown a thread connects to the first broker's
 * listener every 20 ms; the mock accepts and drops those connections. */
typedef struct {
    struct sockaddr_in addr;
    atomic_int stop;
    pthread_t thread;
    bool running;
} nudger_t;

static void *nudger_run(void *arg) {
    nudger_t *n = arg;
    while (!atomic_load(&n->stop)) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0) {
            (void)connect(fd, (const struct sockaddr *)&n->addr, sizeof n->addr);
            close(fd);
        }
        usleep(20 * 1000);
    }
    return NULL;
}

/* Starts nudging the first "host:port" of bootstraps (IPv4 only; without a
 * usable address it does nothing and the operations just may be slower). */
static void nudger_start(nudger_t *n, const char *bootstraps) {
    memset(n, 0, sizeof *n);
    char host[64];
    unsigned port = 0;
    if (sscanf(bootstraps, "%63[^:]:%u", host, &port) != 2 || port == 0 || port > 65535) return;
    n->addr.sin_family = AF_INET;
    n->addr.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &n->addr.sin_addr) != 1) return;
    atomic_init(&n->stop, 0);
    n->running = pthread_create(&n->thread, NULL, nudger_run, n) == 0;
}

static void nudger_stop(nudger_t *n) {
    if (!n->running) return;
    atomic_store(&n->stop, 1);
    pthread_join(n->thread, NULL);
    n->running = false;
}

/* ---------------------------------------------------------------- faults --
 * The Kafka APIs that can be faulted, each with the retriable errors a real
 * broker gives for it. ERR__TRANSPORT makes the mock close the client's
 * connection (a dropped request); it is in every list. */
#define E(x) RD_KAFKA_RESP_ERR_##x
static const rd_kafka_resp_err_t produce_errs[] = {E(NOT_LEADER_FOR_PARTITION), E(REQUEST_TIMED_OUT),
                                                   E(NOT_ENOUGH_REPLICAS), E(LEADER_NOT_AVAILABLE),
                                                   E(_TRANSPORT)};
static const rd_kafka_resp_err_t fetch_errs[] = {E(NOT_LEADER_FOR_PARTITION), E(_TRANSPORT)};
static const rd_kafka_resp_err_t list_offsets_errs[] = {E(NOT_LEADER_FOR_PARTITION), E(LEADER_NOT_AVAILABLE),
                                                        E(_TRANSPORT)};
static const rd_kafka_resp_err_t coordinator_errs[] = {E(COORDINATOR_NOT_AVAILABLE), E(NOT_COORDINATOR),
                                                       E(COORDINATOR_LOAD_IN_PROGRESS), E(_TRANSPORT)};
static const rd_kafka_resp_err_t commit_errs[] = {E(COORDINATOR_NOT_AVAILABLE), E(NOT_COORDINATOR),
                                                  E(REQUEST_TIMED_OUT), E(COORDINATOR_LOAD_IN_PROGRESS),
                                                  E(_TRANSPORT)};
static const rd_kafka_resp_err_t find_coordinator_errs[] = {E(COORDINATOR_NOT_AVAILABLE), E(_TRANSPORT)};
static const rd_kafka_resp_err_t group_errs[] = {E(COORDINATOR_NOT_AVAILABLE), E(NOT_COORDINATOR),
                                                 E(REBALANCE_IN_PROGRESS), E(_TRANSPORT)};
/* AddPartitionsToTxn, AddOffsetsToTxn, EndTxn: the transaction coordinator
 * is busy with the previous transaction, or moved (librdkafka retries). */
static const rd_kafka_resp_err_t txn_errs[] = {E(COORDINATOR_NOT_AVAILABLE), E(NOT_COORDINATOR),
                                               E(COORDINATOR_LOAD_IN_PROGRESS), E(CONCURRENT_TRANSACTIONS),
                                               E(_TRANSPORT)};
#undef E

typedef struct {
    const char *name; /* for --fault-apis and the logs */
    int16_t key;      /* Kafka protocol ApiKey */
    const rd_kafka_resp_err_t *errs;
    int nerrs;
} fault_api_t;

#define API(name, key, errs) {name, key, errs, (int)(sizeof errs / sizeof errs[0])}
static const fault_api_t fault_apis[] = {
    API("produce", 0, produce_errs),
    API("fetch", 1, fetch_errs),
    API("listoffsets", 2, list_offsets_errs),
    API("offsetcommit", 8, commit_errs),
    API("offsetfetch", 9, coordinator_errs),
    API("findcoordinator", 10, find_coordinator_errs),
    API("joingroup", 11, coordinator_errs),
    API("heartbeat", 12, group_errs),
    API("syncgroup", 14, group_errs),
    API("initproducerid", 22, coordinator_errs),
    API("addpartitionstotxn", 24, txn_errs),
    API("addoffsetstotxn", 25, txn_errs),
    API("endtxn", 26, txn_errs),
    API("txnoffsetcommit", 28, coordinator_errs),
};
#undef API
enum { NAPIS = sizeof fault_apis / sizeof fault_apis[0], FAULT_QUEUE_MAX = 256 };

/* What sagabroker queued on one broker's error stack of one API, oldest
 * first (the broker pops from the front): 0 no fault, 1 error, 2 drop,
 * 3 slow. */
typedef struct {
    unsigned char kind[FAULT_QUEUE_MAX];
    int head, len;
} fault_queue_t;

typedef struct {
    double rate;
    int delay_ms;
    bool enabled[NAPIS];
    bool on;
    int brokers;
    fault_queue_t *queues; /* [broker-1][api] */
    unsigned long long rng;
    /* totals per API: requests seen while outcomes were queued, errors,
     * drops, slow answers */
    unsigned long long requests[NAPIS], errors[NAPIS], drops[NAPIS], slow[NAPIS];
    int periods; /* times the mode was turned on */
} faults_t;

static unsigned long long fault_rand(faults_t *f) { /* xorshift64* */
    f->rng ^= f->rng >> 12;
    f->rng ^= f->rng << 25;
    f->rng ^= f->rng >> 27;
    return f->rng * 2685821657736338717ULL;
}

static double fault_uniform(faults_t *f) { return (double)(fault_rand(f) >> 11) / 9007199254740992.0; }

/* Parses --fault-apis ("all" or comma-separated names) into f->enabled. */
static int fault_parse_apis(faults_t *f, const char *list, char *err, size_t errlen) {
    memset(f->enabled, 0, sizeof f->enabled);
    char *buf = saga_strdup(list ? list : "all");
    if (!buf) { snprintf(err, errlen, "out of memory"); return -1; }
    int rc = 0, count = 0;
    char *save = NULL;
    for (char *t = strtok_r(buf, ", \t", &save); t && !rc; t = strtok_r(NULL, ", \t", &save)) {
        bool found = false;
        for (int i = 0; i < NAPIS; i++) {
            if (!strcmp(t, "all") || !strcasecmp(t, fault_apis[i].name)) {
                f->enabled[i] = true;
                found = true;
            }
        }
        if (!found) {
            size_t off = (size_t)snprintf(err, errlen, "--fault-apis: unknown API '%s' (all", t);
            for (int i = 0; i < NAPIS && off < errlen; i++)
                off += (size_t)snprintf(err + off, errlen - off, ", %s", fault_apis[i].name);
            if (off < errlen) snprintf(err + off, errlen - off, ")");
            rc = -1;
        }
        count++;
    }
    saga_free(buf);
    if (!rc && count == 0) { snprintf(err, errlen, "--fault-apis: no API named"); rc = -1; }
    return rc;
}

/* Counts the outcomes the brokers consumed since the last call and, while
 * the mode is on, tops every stack up. */
static void faults_tick(faults_t *f, rd_kafka_mock_cluster_t *mc) {
    for (int b = 0; b < f->brokers; b++) {
        for (int a = 0; a < NAPIS; a++) {
            fault_queue_t *q = &f->queues[b * NAPIS + a];
            if (!f->enabled[a] || (q->len == 0 && !f->on)) continue;
            size_t cnt = 0;
            if (rd_kafka_mock_broker_error_stack_cnt(mc, b + 1, fault_apis[a].key, &cnt)) continue;
            int consumed = (size_t)q->len > cnt ? q->len - (int)cnt : 0;
            for (int i = 0; i < consumed; i++) {
                unsigned char k = q->kind[q->head];
                q->head = (q->head + 1) % FAULT_QUEUE_MAX;
                f->requests[a]++;
                if (k == 1) f->errors[a]++;
                else if (k == 2) f->drops[a]++;
                else if (k == 3) f->slow[a]++;
            }
            q->len -= consumed;
            if (f->on) {
                /* Twice the last period's requests, plus one: few, as
                 * they still apply after the mode is turned off. */
                int target = 2 * consumed + 1;
                if (target > FAULT_QUEUE_MAX) target = FAULT_QUEUE_MAX;
                while (q->len < target) {
                    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
                    int rtt = 0;
                    unsigned char kind = 0;
                    if (fault_uniform(f) < f->rate) {
                        if (f->delay_ms > 0 && fault_rand(f) % 4 == 0) {
                            kind = 3;
                            rtt = 1 + (int)(fault_rand(f) % (unsigned)f->delay_ms);
                        } else {
                            e = fault_apis[a].errs[fault_rand(f) % (unsigned)fault_apis[a].nerrs];
                            kind = e == RD_KAFKA_RESP_ERR__TRANSPORT ? 2 : 1;
                        }
                    }
                    if (rd_kafka_mock_broker_push_request_error_rtts(mc, b + 1, fault_apis[a].key, 1, e, rtt))
                        break;
                    q->kind[(q->head + q->len) % FAULT_QUEUE_MAX] = kind;
                    q->len++;
                }
            }
        }
    }
}

/* One log line: the mode, the rate, and per faulted API
 * "name requests/errors/drops[/slow]". */
static void faults_log(const faults_t *f, const char *what) {
    char buf[2048];
    size_t off = 0;
    unsigned long long req = 0, bad = 0;
    for (int a = 0; a < NAPIS && off < sizeof buf; a++) {
        if (!f->enabled[a]) continue;
        req += f->requests[a];
        bad += f->errors[a] + f->drops[a] + f->slow[a];
        off += (size_t)snprintf(buf + off, sizeof buf - off, "%s%s %llu/%llu/%llu", off ? ", " : "",
                                fault_apis[a].name, f->requests[a], f->errors[a], f->drops[a]);
        if (f->delay_ms > 0 && off < sizeof buf)
            off += (size_t)snprintf(buf + off, sizeof buf - off, "/%llu", f->slow[a]);
    }
    LOG_WARN(COMPONENT, "%s: faults %s (rate %g, %d period(s)); %llu faults in %llu requests; "
             "per API requests/errors/drops%s: %s",
             what, f->on ? "ON" : "OFF", f->rate, f->periods, bad, req, f->delay_ms > 0 ? "/slow" : "", buf);
}

static int set_all_brokers(rd_kafka_mock_cluster_t *mc, int brokers, bool up) {
    int rc = 0;
    for (int id = 1; id <= brokers; id++) {
        rd_kafka_resp_err_t e = up ? rd_kafka_mock_broker_set_up(mc, id)
                                   : rd_kafka_mock_broker_set_down(mc, id);
        if (e) {
            LOG_ERROR(COMPONENT, "broker %d: set %s: %s", id, up ? "up" : "down", rd_kafka_err2str(e));
            rc = SAGA_EKAFKA;
        }
    }
    return rc;
}

/* The mock's sockets are left with Nagle's algorithm on: a small answer
 * written while the previous one is unacknowledged waits for the client's
 * delayed ACK, 40 ms on Linux. Transactions make such bursts the rule (one
 * produce request per partition, then EndTxn), so every transaction would
 * wait 40 ms. This sets TCP_NODELAY on every socket of the process: the
 * listeners (accepted sockets inherit it) at start, the connections already
 * accepted on each tick. Returns how many sockets were set. */
static int nodelay_sockets(void) {
    DIR *dir = opendir("/proc/self/fd");
    if (!dir) return 0;
    int n = 0, self = dirfd(dir), on = 1;
    struct dirent *e;
    while ((e = readdir(dir))) {
        char *end;
        long fd = strtol(e->d_name, &end, 10);
        struct stat st;
        if (*end || fd == self || fstat((int)fd, &st) || !S_ISSOCK(st.st_mode)) continue;
        if (setsockopt((int)fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on) == 0) n++;
    }
    closedir(dir);
    return n;
}

int main(int argc, char **argv) {
    long long brokers = 1, partitions = 8, other_partitions = 4, rtt_ms = 0, fault_delay_ms = 0, fault_seed = 0;
    const char *bootstrap_file = NULL, *topics = NULL, *log_level = NULL, *fault_rate = NULL,
               *fault_api_list = NULL;
    bool log_json = true, faults_on = false;
    const saga_config_option_t options[] = {
        {"brokers", SAGA_CFG_INT, "1", "number of mock brokers (1-16)", &brokers},
        {"partitions", SAGA_CFG_INT, "8",
         "partitions of saga.start and saga.replies, the topics sagad consumes (sagad's --partitions)", &partitions},
        {"other-partitions", SAGA_CFG_INT, "4",
         "partitions of every other pre-created topic (saga.events, saga.dlq, participant topics, --topics)",
         &other_partitions},
        {"bootstrap-file", SAGA_CFG_STRING, NULL,
         "write the bootstrap list (one line) here once listening; removed on exit", &bootstrap_file},
        {"topics", SAGA_CFG_STRING, NULL,
         "extra topics to create, comma-separated (the saga.* and participant topics always are)",
         &topics},
        {"rtt-ms", SAGA_CFG_INT, "0", "artificial round-trip time added by every broker", &rtt_ms},
        {"faults", SAGA_CFG_STRING, "0",
         "fault injection: probability (0-1) that a request fails while the fault mode is on; "
         "> 0 arms SIGUSR2 as the fault mode toggle", &fault_rate},
        {"faults-on", SAGA_CFG_BOOL, "false", "start with the fault mode on (needs --faults > 0)", &faults_on},
        {"fault-apis", SAGA_CFG_STRING, "all",
         "APIs to fault, comma-separated: all, produce, fetch, listoffsets, offsetcommit, offsetfetch, "
         "findcoordinator, joingroup, heartbeat, syncgroup, initproducerid, addpartitionstotxn, "
         "addoffsetstotxn, endtxn, txnoffsetcommit", &fault_api_list},
        {"fault-delay-ms", SAGA_CFG_INT, "0",
         "> 0: a quarter of the faults are answers held back 1..N ms instead of errors", &fault_delay_ms},
        {"fault-seed", SAGA_CFG_INT, "0", "seed of the fault injection random numbers (0: random)", &fault_seed},
        {"log-level", SAGA_CFG_STRING, "info", "debug, info, warn or error", &log_level},
        {"log-json", SAGA_CFG_BOOL, "true", "JSON log lines on stderr (false: plain text)", &log_json},
        {NULL, SAGA_CFG_STRING, NULL, NULL, NULL},
    };
    char err[512];
    int rc = saga_config_parse(options, "SAGABROKER", "sagabroker",
                               "Development Kafka broker: librdkafka's mock cluster as a process.\n"
                               "Prints the bootstrap list on stdout. SIGINT/SIGTERM stop it,\n"
                               "SIGUSR1 toggles all brokers down/up, SIGUSR2 logs the state and,\n"
                               "with --faults RATE > 0, toggles the fault mode (retriable errors\n"
                               "and dropped connections on RATE of the requests).",
                               argc, argv, NULL, err, sizeof err);
    if (rc == 1) return 0;
    if (rc) {
        fprintf(stderr, "sagabroker: %s\n", err);
        return 2;
    }
    saga_log_set_json(log_json);
    if (saga_log_set_level_name(log_level)) {
        fprintf(stderr, "sagabroker: --log-level: '%s' is not one of debug, info, warn, error\n", log_level);
        return 2;
    }
    if (brokers < 1 || brokers > 16) {
        fprintf(stderr, "sagabroker: --brokers: %lld is out of range 1-16\n", brokers);
        return 2;
    }
    if (partitions < 1 || partitions > 1000) {
        fprintf(stderr, "sagabroker: --partitions: %lld is out of range 1-1000\n", partitions);
        return 2;
    }
    if (other_partitions < 1 || other_partitions > 1000) {
        fprintf(stderr, "sagabroker: --other-partitions: %lld is out of range 1-1000\n", other_partitions);
        return 2;
    }
    if (rtt_ms < 0 || rtt_ms > 60000) {
        fprintf(stderr, "sagabroker: --rtt-ms: %lld is out of range 0-60000\n", rtt_ms);
        return 2;
    }
    faults_t faults;
    memset(&faults, 0, sizeof faults);
    {
        char *end = NULL;
        errno = 0;
        faults.rate = strtod(fault_rate, &end);
        if (errno || end == fault_rate || *end || !(faults.rate >= 0.0 && faults.rate <= 1.0)) {
            fprintf(stderr, "sagabroker: --faults: '%s' is not a probability between 0 and 1\n", fault_rate);
            return 2;
        }
    }
    if (fault_delay_ms < 0 || fault_delay_ms > 60000) {
        fprintf(stderr, "sagabroker: --fault-delay-ms: %lld is out of range 0-60000\n", fault_delay_ms);
        return 2;
    }
    if (faults_on && faults.rate <= 0.0) {
        fprintf(stderr, "sagabroker: --faults-on needs --faults RATE > 0\n");
        return 2;
    }
    if (fault_parse_apis(&faults, fault_api_list, err, sizeof err)) {
        fprintf(stderr, "sagabroker: %s\n", err);
        return 2;
    }
    faults.delay_ms = (int)fault_delay_ms;
    faults.brokers = (int)brokers;
    faults.rng = fault_seed ? (unsigned long long)fault_seed : saga_random_u64();
    if (!faults.rng) faults.rng = 0x9e3779b97f4a7c15ULL;

    saga_signals_install(&stop_requested, NULL);
    install_control_signals();

    /* A producer handle only hosts the cluster: it never connects to it
     * (no bootstrap.servers) and produces nothing. */
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, kafka_log_cb);
    char reason[256];
    if (rd_kafka_conf_set(conf, "client.id", "sagabroker", reason, sizeof reason) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "sagabroker: client.id: %s\n", reason);
        rd_kafka_conf_destroy(conf);
        return 1;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, reason, sizeof reason);
    if (!rk) {
        LOG_ERROR(COMPONENT, "creating the host rd_kafka_t: %s", reason);
        rd_kafka_conf_destroy(conf);
        return 1;
    }
    LOG_DEBUG(COMPONENT, "host handle created");
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, (int)brokers);
    if (!mc) {
        LOG_ERROR(COMPONENT, "creating a mock cluster of %lld broker(s) failed", brokers);
        rd_kafka_destroy(rk);
        return 1;
    }

    LOG_DEBUG(COMPONENT, "mock cluster created; TCP_NODELAY on %d socket(s)", nodelay_sockets());
    int replication = brokers < 3 ? (int)brokers : 3;
    int exit_code = 0;
    const char *bootstraps = rd_kafka_mock_cluster_bootstraps(mc);
    nudger_t nudger;
    nudger_start(&nudger, bootstraps);
    char *topic_buf = NULL;
    const char **topic_names = NULL;
    int ntopics = collect_topics(topics, &topic_buf, &topic_names);
    if (ntopics < 0) {
        LOG_ERROR(COMPONENT, "out of memory");
        exit_code = 1;
    } else {
        assert(ntopics >= CONSUMED_TOPICS);
        if (create_topics(mc, topic_names, ntopics, CONSUMED_TOPICS, (int)partitions, (int)other_partitions,
                          replication))
            exit_code = 1;
        else LOG_DEBUG(COMPONENT, "%d topics created", ntopics);
        saga_free(topic_names);
        saga_free(topic_buf);
    }
    for (int id = 1; id <= brokers && rtt_ms > 0 && !exit_code; id++) {
        rd_kafka_resp_err_t e = rd_kafka_mock_broker_set_rtt(mc, id, (int)rtt_ms);
        if (e) {
            LOG_ERROR(COMPONENT, "broker %d: set rtt %lld ms: %s", id, rtt_ms, rd_kafka_err2str(e));
            exit_code = 1;
        }
    }

    nudger_stop(&nudger);
    bool wrote_file = false;
    if (!exit_code && bootstrap_file && *bootstrap_file) {
        size_t len = strlen(bootstraps) + 2;
        char *content = saga_malloc(len);
        if (!content || (snprintf(content, len, "%s\n", bootstraps),
                         saga_write_file_atomic(bootstrap_file, content))) {
            LOG_ERROR(COMPONENT, "writing bootstrap file '%s': %s", bootstrap_file,
                      content ? strerror(errno) : "out of memory");
            exit_code = 1;
        } else {
            wrote_file = true;
        }
        saga_free(content);
    }

    if (!exit_code) {
        printf("%s\n", bootstraps);
        fflush(stdout);
        LOG_INFO(COMPONENT, "listening on %s (%lld broker(s), %lld partitions of %s, %s and %s, %lld of the other "
                 "topics, pid %d)", bootstraps, brokers, partitions, default_topics[0], default_topics[1], default_topics[2],
                 other_partitions, (int)getpid());
    }

    bool down = false, armed = faults.rate > 0.0;
    if (!exit_code && armed && !(faults.queues = saga_calloc((size_t)brokers * NAPIS, sizeof *faults.queues))) {
        LOG_ERROR(COMPONENT, "out of memory");
        exit_code = 1;
    }
    if (!exit_code && armed) {
        faults.on = faults_on;
        if (faults.on) faults.periods++;
        LOG_INFO(COMPONENT, "fault injection armed: rate %g, delay %d ms, mode %s (SIGUSR2 toggles)",
                 faults.rate, faults.delay_ms, faults.on ? "ON" : "OFF");
    }
    while (!exit_code && !stop_requested) {
        /* Serves librdkafka's log queue; also our tick: 10 ms while the
         * fault mode is on (the error stacks are topped up), else 100 ms. */
        rd_kafka_poll(rk, faults.on ? 10 : 100);
        if (toggle_requested) {
            toggle_requested = 0;
            down = !down;
            if (set_all_brokers(mc, (int)brokers, !down) == 0)
                LOG_WARN(COMPONENT, "SIGUSR1: all %lld broker(s) now %s", brokers, down ? "DOWN" : "UP");
        }
        if (status_requested) {
            status_requested = 0;
            if (armed) {
                faults_tick(&faults, mc); /* counts up to date before the line */
                faults.on = !faults.on;
                if (faults.on) faults.periods++;
                faults_log(&faults, "SIGUSR2");
            }
            LOG_INFO(COMPONENT, "status: %s, brokers %s%s", bootstraps, down ? "DOWN" : "UP",
                     !armed ? "" : faults.on ? ", faults ON" : ", faults OFF");
        }
        if (armed) faults_tick(&faults, mc);
        nodelay_sockets();
    }
    if (armed) {
        faults_tick(&faults, mc);
        faults_log(&faults, "exit");
    }
    saga_free(faults.queues);

    if (stop_requested) LOG_INFO(COMPONENT, "stopping");
    if (wrote_file && unlink(bootstrap_file) != 0 && errno != ENOENT)
        LOG_WARN(COMPONENT, "removing bootstrap file '%s': %s", bootstrap_file, strerror(errno));
    nudger_start(&nudger, bootstraps);
    rd_kafka_mock_cluster_destroy(mc);
    nudger_stop(&nudger);
    LOG_DEBUG(COMPONENT, "mock cluster destroyed");
    rd_kafka_destroy(rk);
    if (!exit_code) LOG_INFO(COMPONENT, "stopped");
    return exit_code;
}
