/* sagabroker: the development Kafka broker. It wraps librdkafka's mock
 * cluster (rdkafka_mock.h) in a process: real Kafka protocol over loopback
 * TCP, memory only, no JVM. The brokers bind random ports, so the bootstrap
 * list is printed on stdout and written (atomically) to --bootstrap-file
 * for the other processes of the stack to read.
 *
 * Signals: SIGINT/SIGTERM stop it (exit 0); SIGUSR1 toggles every broker
 * down/up (outage tests); SIGUSR2 logs the current state.
 *
 * Limits of the mock (librdkafka 2.0.2), see docs/OPERATIONS.md: memory
 * only; first group join ~3 s; an empty fetch waits the client's full
 * fetch.wait.max.ms; a single thread serves every broker. */
#include "saga_alloc.h"
#include "saga_config.h"
#include "saga_error.h"
#include "saga_log.h"
#include "saga_util.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define COMPONENT "sagabroker"

/* Topics every stack needs; the participant topics match sagas/examples. */
static const char *const default_topics[] = {
    "saga.start",         "saga.replies",       "saga.events",     "saga.dlq",
    "order.commands",     "inventory.commands", "payment.commands", "notification.commands",
};

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
 * timeout, so one at a time could cost a second per topic. */
static int create_topics(rd_kafka_mock_cluster_t *mc, const char *const *names, int count,
                         int partitions, int replication) {
    enum { BATCH = 32 };
    int rc = 0;
    for (int base = 0; base < count; base += BATCH) {
        topic_job_t jobs[BATCH];
        pthread_t threads[BATCH];
        bool started[BATCH];
        int n = count - base < BATCH ? count - base : BATCH;
        for (int i = 0; i < n; i++) {
            jobs[i] = (topic_job_t){mc, names[base + i], partitions, replication, 0};
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

int main(int argc, char **argv) {
    long long brokers = 1, partitions = 4, rtt_ms = 0;
    const char *bootstrap_file = NULL, *topics = NULL, *log_level = NULL;
    bool log_json = true;
    const saga_config_option_t options[] = {
        {"brokers", SAGA_CFG_INT, "1", "number of mock brokers (1-16)", &brokers},
        {"partitions", SAGA_CFG_INT, "4", "partitions of every pre-created topic", &partitions},
        {"bootstrap-file", SAGA_CFG_STRING, NULL,
         "write the bootstrap list (one line) here once listening; removed on exit", &bootstrap_file},
        {"topics", SAGA_CFG_STRING, NULL,
         "extra topics to create, comma-separated (the saga.* and participant topics always are)",
         &topics},
        {"rtt-ms", SAGA_CFG_INT, "0", "artificial round-trip time added by every broker", &rtt_ms},
        {"log-level", SAGA_CFG_STRING, "info", "debug, info, warn or error", &log_level},
        {"log-json", SAGA_CFG_BOOL, "true", "JSON log lines on stderr (false: plain text)", &log_json},
        {NULL, SAGA_CFG_STRING, NULL, NULL, NULL},
    };
    char err[512];
    int rc = saga_config_parse(options, "SAGABROKER", "sagabroker",
                               "Development Kafka broker: librdkafka's mock cluster as a process.\n"
                               "Prints the bootstrap list on stdout. SIGINT/SIGTERM stop it,\n"
                               "SIGUSR1 toggles all brokers down/up, SIGUSR2 logs the state.",
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
    if (rtt_ms < 0 || rtt_ms > 60000) {
        fprintf(stderr, "sagabroker: --rtt-ms: %lld is out of range 0-60000\n", rtt_ms);
        return 2;
    }

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

    LOG_DEBUG(COMPONENT, "mock cluster created");
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
        if (create_topics(mc, topic_names, ntopics, (int)partitions, replication)) exit_code = 1;
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
        LOG_INFO(COMPONENT, "listening on %s (%lld broker(s), %lld partitions per topic, pid %d)",
                 bootstraps, brokers, partitions, (int)getpid());
    }

    bool down = false;
    while (!exit_code && !stop_requested) {
        /* Serves librdkafka's log queue; also our 100 ms tick. */
        rd_kafka_poll(rk, 100);
        if (toggle_requested) {
            toggle_requested = 0;
            down = !down;
            if (set_all_brokers(mc, (int)brokers, !down) == 0)
                LOG_WARN(COMPONENT, "SIGUSR1: all %lld broker(s) now %s", brokers, down ? "DOWN" : "UP");
        }
        if (status_requested) {
            status_requested = 0;
            LOG_INFO(COMPONENT, "status: %s, brokers %s", bootstraps, down ? "DOWN" : "UP");
        }
    }

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
