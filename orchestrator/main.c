/* sagad: the saga orchestration daemon. Set-up, the loop, and a draining
 * shutdown in kcat's order: stop consuming, finish the batch, commit, flush
 * the producer, close the consumer, destroy. */
#include <curl/curl.h>
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin.h"
#include "commands.h"
#include "datadir.h"
#include "instances.h"
#include "restore.h"
#include "sagad.h"
#include "topics.h"
#include "saga_alloc.h"
#include "saga_clock.h"
#include "saga_config.h"
#include "saga_error.h"
#include "saga_kafka.h"
#include "saga_log.h"
#include "saga_util.h"

static volatile sig_atomic_t stop_requested, reload_requested;
/* The loop's runtime snapshot (with the restores and the owned shards). */
static int runtime_fill(void *rt, json_t *into) { return sagad_runtime_fill(rt, into); }

/* This instance's id: --instance-id, else the one generated into the data
 * directory on its first start (DIR/instance-id), so a restart rejoins the
 * group as the same static member. NULL (err set) on failure. */
static char *instance_id(const sagad_config_t *c, char *err, size_t errlen) {
    const char *given = c->instance_id;
    char *id = NULL, path[4200];
    snprintf(path, sizeof path, "%s/instance-id", c->data_dir);
    if (given && *given) id = saga_strdup(given);
    else if ((id = saga_read_file(path, NULL))) id[strcspn(id, "\r\n")] = '\0';
    else {
        char host[64] = "sagad", suffix[32];
        gethostname(host, sizeof host - 1);
        host[strcspn(host, ".")] = '\0';
        saga_random_id("", suffix, 9);
        size_t n = strlen(host) + strlen(suffix) + 2;
        id = saga_malloc(n);
        if (id) snprintf(id, n, "%s-%s", host, suffix);
        FILE *f = id ? fopen(path, "w") : NULL;
        if (!f || fprintf(f, "%s\n", id) < 0 || fclose(f)) {
            snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
            saga_free(id);
            return NULL;
        }
    }
    if (!id) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    size_t len = strlen(id);
    bool ok = len > 0 && len <= 200;
    for (size_t i = 0; ok && i < len; i++)
        ok = (id[i] >= 'a' && id[i] <= 'z') || (id[i] >= 'A' && id[i] <= 'Z') || (id[i] >= '0' && id[i] <= '9') ||
             id[i] == '-' || id[i] == '_' || id[i] == '.';
    if (!ok) {
        snprintf(err, errlen, "instance id '%.200s'%s is not 1 to 200 of A-Z a-z 0-9 . _ -", id,
                 given && *given ? " (--instance-id)" : path);
        saga_free(id);
        return NULL;
    }
    return id;
}

/* 1 when argv carries --admin-token itself (not --admin-token-file): the
 * token then shows in ps and /proc/PID/cmdline. */
static bool token_on_command_line(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) break;
        if (strcmp(argv[i], "--admin-token") == 0 || strncmp(argv[i], "--admin-token=", 14) == 0) return true;
    }
    return false;
}

/* The admin token file sagad makes when no token is configured: in the
 * data directory, "admin.token". */
static char *default_token_path(const char *dir) {
    size_t n = strlen(dir) + sizeof "/admin.token";
    char *path = saga_malloc(n);
    if (path) snprintf(path, n, "%s/admin.token", dir);
    return path;
}

/* Loads the definitions directory into a new registry, reporting every bad
 * file. Returns NULL when anything is wrong. */
static saga_registry_t *load_directory(const sagad_config_t *c) {
    /* --check prints the report as compiler-style lines for people and editors. */
    static char report[16384];
    report[0] = '\0';
    saga_registry_t *reg = saga_registry_new();
    if (!reg) return NULL;
    int bad = saga_registry_load_dir(reg, c->sagas_dir, report, sizeof report);
    if (bad < 0) {
        LOG_ERROR("sagad", "cannot read definitions directory '%s': %s", c->sagas_dir, saga_strerror(bad));
    } else if (bad > 0) {
        if (c->check) fputs(report, stderr);
        else
            for (char *line = strtok(report, "\n"); line; line = strtok(NULL, "\n")) LOG_ERROR("sagad", "%s", line);
        LOG_ERROR("sagad", "%d definition file(s) in '%s' are invalid", bad, c->sagas_dir);
    } else if (saga_registry_count(reg) == 0) {
        LOG_ERROR("sagad", "no saga definitions (*.json) in '%s'", c->sagas_dir);
    } else {
        return reg;
    }
    saga_registry_free(&reg);
    return NULL;
}

/* Records every definition of reg in the store (refusing a changed file
 * under a version already used), then adds the stored versions whose files
 * are gone, retired, so sagas running on them can finish. All or nothing. */
static void log_registry(const saga_registry_t *reg) {
    for (int i = 0; i < saga_registry_count(reg); i++) {
        const saga_definition_t *def = saga_registry_at(reg, i);
        LOG_INFO("sagad", "definition %s v%d%s (%d steps)", def->name, def->version,
                 def->retired ? " retained for running sagas" : " loaded", def->step_count);
    }
}

/* SIGHUP: a new set takes effect only if every file is good; sagas keep the
 * version they started on (sagas only hold a definition during one apply,
 * so swapping between iterations is safe). */
static void reload_definitions(sagad_t *d) {
    LOG_INFO("sagad", "SIGHUP: reloading definitions from '%s'", d->cfg.sagas_dir);
    saga_registry_t *reg = load_directory(&d->cfg);
    if (!reg || sagad_adopt_definitions(d, reg, -1)) {
        saga_registry_free(&reg);
        LOG_ERROR("sagad", "reload refused: the definitions in force are unchanged");
        return;
    }
    saga_registry_free(&d->registry);
    d->registry = reg;
    log_registry(reg);
    LOG_INFO("sagad", "reload done: %d definition(s) in force", saga_registry_count(reg));
}

static void log_counters(const sagad_t *d) {
    char stale[512] = "";
    size_t used = 0;
    for (int r = 1; r < SAGA_STALE__COUNT && used < sizeof stale; r++)
        if (d->stale_by_reason[r])
            used += (size_t)snprintf(stale + used, sizeof stale - used, " %s=%llu",
                                     saga_stale_reason_name((saga_stale_reason_t)r),
                                     (unsigned long long)d->stale_by_reason[r]);
    if (stale[0]) LOG_INFO("sagad", "ignored events by reason:%s", stale);
    LOG_INFO("sagad", "started=%llu messages=%llu commits=%llu produced=%llu dup_start=%llu dup_msg=%llu "
             "stale_reply=%llu stale_timer=%llu dlq=%llu parked=%llu resent=%llu",
             (unsigned long long)d->counters.sagas_started, (unsigned long long)d->counters.messages,
             (unsigned long long)d->counters.commits, (unsigned long long)d->counters.produced,
             (unsigned long long)d->counters.duplicate_start, (unsigned long long)d->counters.duplicate_message,
             (unsigned long long)d->counters.stale_reply, (unsigned long long)d->counters.stale_timer,
             (unsigned long long)d->counters.dead_letters, (unsigned long long)d->counters.outbox_parked,
             (unsigned long long)d->counters.produce_retries);
}

static int write_ready_file(const sagad_t *d, int admin_port, const char *token_file) {
    char text[2048];
    const char *a = d->cfg.admin_addr;
    int v6 = strchr(a, ':') != NULL;
    snprintf(text, sizeof text, "ADMIN_URL=http://%s%s%s:%d\nPID=%d\n%s%s%s", v6 ? "[" : "", a, v6 ? "]" : "",
             admin_port, (int)getpid(), token_file ? "ADMIN_TOKEN_FILE=" : "", token_file ? token_file : "",
             token_file ? "\n" : "");
    return saga_write_file_atomic(d->cfg.ready_file, text);
}

int main(int argc, char **argv) {
    static sagad_t d;
    sagad_config_t *c = &d.cfg;
    const saga_config_option_t options[] = {
        {"bootstrap", SAGA_CFG_STRING, NULL, "Kafka bootstrap servers (host:port,...)", &c->bootstrap},
        {"bootstrap-file", SAGA_CFG_STRING, NULL, "read the bootstrap servers from this file (sagabroker writes it)", &c->bootstrap_file},
        {"data-dir", SAGA_CFG_STRING, "sagad-data", "data directory: one SQLite file per partition (shard-NNN.db), the lock and the admin token; created if missing", &c->data_dir},
        {"db", SAGA_CFG_STRING, NULL, "single-file database of an older release: converted into --data-dir on start (renamed to FILE.converted)", &c->db},
        {"sagas", SAGA_CFG_STRING, "sagas", "directory of saga definitions (*.json)", &c->sagas_dir},
        {"admin-addr", SAGA_CFG_STRING, "127.0.0.1", "admin HTTP API address", &c->admin_addr},
        {"admin-port", SAGA_CFG_INT, "8080", "admin HTTP API port (0: any free port, see --ready-file)", &c->admin_port},
        {"admin-token", SAGA_CFG_STRING, NULL, "bearer token of the mutating admin endpoints (shows in ps: prefer SAGAD_ADMIN_TOKEN or --admin-token-file)", &c->admin_token},
        {"admin-token-file", SAGA_CFG_STRING, NULL, "read the admin bearer token from this file (default: generate one in admin.token in --data-dir)", &c->admin_token_file},
        {"admin-host", SAGA_CFG_STRING, NULL, "more Host names the admin API answers to, comma-separated (e.g. behind a proxy)", &c->admin_host},
        {"alert-webhook", SAGA_CFG_STRING, NULL, "POST alerts (compensation_failed, circuit_open, dead_letters) to this URL", &c->alert_webhook},
        {"ready-file", SAGA_CFG_STRING, NULL, "write ADMIN_URL= and PID= here once consuming", &c->ready_file},
        {"group", SAGA_CFG_STRING, "sagad", "Kafka consumer group: the instances of one group share the partitions", &c->group},
        {"instance-id", SAGA_CFG_STRING, NULL, "this instance's name in the group (static membership: a restart within the session keeps its shards; default: generated once into --data-dir/instance-id)", &c->instance_id},
        {"start-topic", SAGA_CFG_STRING, "saga.start", "topic of saga.start events", &c->start_topic},
        {"replies-topic", SAGA_CFG_STRING, "saga.replies", "topic of participants' replies", &c->replies_topic},
        {"events-topic", SAGA_CFG_STRING, "saga.events", "topic of lifecycle events", &c->events_topic},
        {"events", SAGA_CFG_STRING, "all", "which lifecycle events go to --events-topic: all (every saga and step transition), saga (the saga's own: saga.*), terminal (saga.completed, saga.compensated, saga.compensation_failed); the history keeps every one", &c->events_level},
        {"dlq-topic", SAGA_CFG_STRING, "saga.dlq", "dead-letter topic", &c->dlq_topic},
        {"control-topic", SAGA_CFG_STRING, "saga.control", "topic of operator commands (start, abort, retry) from the admin API, P partitions: the instance owning the saga applies them", &c->control_topic},
        {"instances-topic", SAGA_CFG_STRING, "saga.instances", "compacted topic (one partition) where the instances of a group say which shards they own and where their admin API is", &c->instances_topic},
        {"admin-url", SAGA_CFG_STRING, NULL, "this instance's admin API as the other instances reach it (default: http://ADMIN-ADDR:PORT)", &c->admin_url},
        {"changelog-topic", SAGA_CFG_STRING, "saga.changelog", "compacted topic holding every shard's sagas (one partition per shard): a missing or corrupt shard is restored from it at start", &c->changelog_topic},
        {"partitions", SAGA_CFG_INT, "8", "partitions of every topic sagad consumes (saga.start, saga.replies) and shard files in --data-dir: a saga belongs to the partition its id hashes to (Kafka's murmur2)", &c->partitions},
        {"batch-size", SAGA_CFG_INT, "1000", "most messages applied in one transaction", &c->batch_size},
        {"synchronous", SAGA_CFG_STRING, "FULL", "SQLite synchronous mode: FULL, NORMAL or OFF", &c->synchronous},
        {"dedup-retention", SAGA_CFG_STRING, "168h", "how long message ids are remembered for dedup (duration)", &c->dedup_retention},
        {"retention", SAGA_CFG_STRING, "168h", "finished sagas (completed, compensated) are deleted this long after they ended; saga.events stays the long-term record (duration)", &c->retention},
        {"log-level", SAGA_CFG_STRING, "info", "debug, info, warn or error", &c->log_level},
        {"log-format", SAGA_CFG_STRING, "json", "json or text", &c->log_format},
        {"max-in-flight", SAGA_CFG_INT, "1000", "bulkhead: most commands out at once per participant topic (0: no limit)", &c->max_in_flight},
        {"breaker-failures", SAGA_CFG_INT, "50", "circuit breaker: consecutive timeouts/retries that open a topic's circuit (0: never)", &c->breaker_failures},
        {"breaker-cooldown", SAGA_CFG_STRING, "10s", "circuit breaker: how long an open circuit waits before one probe", &c->breaker_cooldown},
        {"max-message-bytes", SAGA_CFG_INT, "1000000", "largest Kafka record sagad publishes (the broker's message.max.bytes; a command over it fails its step with PAYLOAD_TOO_LARGE, an event or dead letter over it is truncated; the admin API's body limit sits below it)", &c->max_message_bytes},
        {"check", SAGA_CFG_BOOL, "false", "validate the definitions and exit", &c->check},
        {0},
    };
    char err[1024];
    int rc = saga_config_parse(options, "SAGAD", "sagad",
                               "Saga orchestration daemon: runs sagas defined in JSON over Kafka, state in SQLite.",
                               argc, argv, &c->kafka_props, err, sizeof err);
    if (rc == 1) return 0;
    if (rc) {
        fprintf(stderr, "sagad: %s\n", err);
        return 2;
    }
    if (saga_log_set_level_name(c->log_level)) {
        fprintf(stderr, "sagad: --log-level: '%s' is not debug, info, warn or error\n", c->log_level);
        return 2;
    }
    saga_log_set_json(strcmp(c->log_format, "text") != 0);
    if (saga_parse_duration(c->breaker_cooldown, &c->breaker_cooldown_ms)) {
        fprintf(stderr, "sagad: --breaker-cooldown: '%s' is not a duration (e.g. 10s)\n", c->breaker_cooldown);
        return 2;
    }
    if (saga_parse_duration(c->dedup_retention, &c->dedup_retention_ms) || c->dedup_retention_ms < 60000) {
        fprintf(stderr, "sagad: --dedup-retention: '%s' is not a duration of at least 1m (e.g. 168h)\n",
                c->dedup_retention);
        return 2;
    }
    if (c->partitions < 1 || c->partitions > 1024) {
        fprintf(stderr, "sagad: --partitions: %lld is not between 1 and 1024\n", c->partitions);
        return 2;
    }
    if (saga_events_level_parse(c->events_level) < 0) {
        fprintf(stderr, "sagad: --events: '%s' is not all, saga or terminal\n", c->events_level);
        return 2;
    }
    if (c->max_message_bytes < 16384 || c->max_message_bytes > 1000000000) {
        fprintf(stderr, "sagad: --max-message-bytes: %lld is not between 16384 and 1000000000\n", c->max_message_bytes);
        return 2;
    }
    if (saga_parse_duration(c->retention, &c->retention_ms) || c->retention_ms < 1000) {
        fprintf(stderr, "sagad: --retention: '%s' is not a duration of at least 1s (e.g. 168h)\n", c->retention);
        return 2;
    }
    saga_alloc_install_jansson();
    /* No global allocation statistics: they take a mutex on every SQLite malloc. */
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    curl_global_init(CURL_GLOBAL_DEFAULT); /* before any thread: the alert sender uses libcurl */

    d.registry = load_directory(c);
    if (!d.registry) return 1;
    if (c->check) {
        printf("sagad: %d definition(s) in '%s' are valid\n", saga_registry_count(d.registry), c->sagas_dir);
        saga_registry_free(&d.registry);
        return 0;
    }

    /* One sagad per data directory: kept open (locked) until the process ends. */
    if (c->partitions > SAGA_DATADIR_MAX_PARTITIONS) {
        fprintf(stderr, "sagad: --partitions: %lld is more than %d\n", c->partitions, SAGA_DATADIR_MAX_PARTITIONS);
        return 2;
    }
    if (saga_datadir_create(c->data_dir, err, sizeof err)) {
        fprintf(stderr, "sagad: %s\n", err);
        return 1;
    }
    char lock_path[4200], what[4300];
    snprintf(lock_path, sizeof lock_path, "%s/sagad.lock", c->data_dir);
    snprintf(what, sizeof what, "the data directory %s", c->data_dir);
    int lock_fd = saga_store_lock_file(lock_path, what, err, sizeof err);
    if (lock_fd < 0) {
        fprintf(stderr, "sagad: %s\n", err);
        LOG_ERROR("sagad", "%s", err);
        return 1;
    }
    int converted = 0;
    if (saga_datadir_prepare_restorable(c->data_dir, c->db, (int)c->partitions, c->synchronous, &converted, err, sizeof err)) {
        fprintf(stderr, "sagad: %s\n", err);
        LOG_ERROR("sagad", "%s", err);
        return 1;
    }

    /* The admin token before Kafka: its refusals and warnings need no broker
     * (the topic check below waits while the brokers do not answer). */
    char *token = NULL, *token_file = NULL;
    bool token_configured = (c->admin_token_file && *c->admin_token_file) || (c->admin_token && *c->admin_token);
    /* Beyond loopback the reads are open to the network too: only with a
     * token the operator chose (and so knows how to hand out). Loopback is
     * the address the name resolves to, never a name that looks like one. */
    if (!token_configured && saga_admin_addr_loopback(c->admin_addr) != 1) {
        fprintf(stderr, "sagad: the admin API on '%s' (not a loopback address) would be reachable beyond this "
                        "machine without a token: set --admin-token-file (or SAGAD_ADMIN_TOKEN), "
                        "or listen on 127.0.0.1\n", c->admin_addr);
        return 2;
    }
    if (c->admin_token_file && *c->admin_token_file) {
        token = saga_read_file(c->admin_token_file, NULL);
        if (!token) {
            fprintf(stderr, "sagad: --admin-token-file: cannot read '%s'\n", c->admin_token_file);
            return 2;
        }
        token[strcspn(token, "\r\n")] = '\0';
        if (!*token) {
            fprintf(stderr, "sagad: --admin-token-file: '%s' is empty\n", c->admin_token_file);
            return 2;
        }
        struct stat st;
        if (stat(c->admin_token_file, &st) == 0 && (st.st_mode & 077))
            LOG_WARN("sagad", "--admin-token-file %s may be read by other users (mode %03o): chmod 600 it",
                     c->admin_token_file, (unsigned)(st.st_mode & 0777));
        token_file = saga_strdup(c->admin_token_file);
    } else if (c->admin_token && *c->admin_token) {
        if (token_on_command_line(argc, argv))
            LOG_WARN("sagad", "--admin-token on the command line shows in ps to every user of this machine: "
                              "use SAGAD_ADMIN_TOKEN or --admin-token-file");
        token = saga_strdup(c->admin_token);
    } else { /* none configured: sagad makes one, kept across restarts */
        int created = 0;
        token_file = default_token_path(c->data_dir);
        token = token_file ? saga_admin_token_file(token_file, &created, err, sizeof err) : NULL;
        if (!token) {
            fprintf(stderr, "sagad: admin token: %s\n", token_file ? err : "out of memory");
            return 1;
        }
        if (err[0] && created) LOG_WARN("sagad", "admin token file %s", err);
        LOG_INFO("sagad", "admin token: %s %s (mode 0600); sagactl reads it with SAGA_ADMIN_TOKEN_FILE=%s",
                 created ? "generated" : "reusing", token_file, token_file);
    }
    /* From here an error exit frees the token (LeakSanitizer runs the stack tests). */
#define EARLY_EXIT(code)          \
    do {                          \
        saga_free(token);         \
        saga_free(token_file);    \
        return (code);            \
    } while (0)
    char *bootstrap = saga_kafka_bootstrap(c->bootstrap, c->bootstrap_file, 10000, err, sizeof err);
    if (!bootstrap) {
        fprintf(stderr, "sagad: %s\n", err);
        EARLY_EXIT(2);
    }
    /* Consumed (partition p of each is shard p), then the changelog. */
    const char *topics[] = {c->start_topic, c->replies_topic, c->control_topic, c->changelog_topic};
    if (!strcmp(c->changelog_topic, c->start_topic) || !strcmp(c->changelog_topic, c->replies_topic) ||
        !strcmp(c->changelog_topic, c->control_topic) ||
        !strcmp(c->changelog_topic, c->events_topic) || !strcmp(c->changelog_topic, c->dlq_topic)) {
        fprintf(stderr, "sagad: --changelog-topic '%s' is also another of sagad's topics: the changelog needs a "
                        "topic of its own\n", c->changelog_topic);
        saga_free(bootstrap);
        EARLY_EXIT(2);
    }
    /* Before consuming anything: every consumed topic, and the changelog,
     * has P partitions. */
    saga_topics_check_t tcheck = {.bootstrap = bootstrap, .client_id = "sagad", .props = &c->kafka_props,
                                  .topics = topics, .topic_count = 4, .partitions = (int)c->partitions,
                                  .create_timeout_ms = 15000, .compacted = c->changelog_topic};
    if (saga_topics_check(&tcheck, err, sizeof err)) {
        LOG_ERROR("sagad", "%s", err);
        saga_free(bootstrap);
        EARLY_EXIT(1);
    }
    /* The instance registry's topic: one partition, compacted. */
    const char *itopics[] = {c->instances_topic};
    saga_topics_check_t icheck = {.bootstrap = bootstrap, .client_id = "sagad", .props = &c->kafka_props,
                                  .topics = itopics, .topic_count = 1, .partitions = 1,
                                  .create_timeout_ms = 15000, .compacted = c->instances_topic,
                                  .what = "the instance registry (--instances-topic)"};
    if (saga_topics_check(&icheck, err, sizeof err)) {
        LOG_ERROR("sagad", "%s", err);
        saga_free(bootstrap);
        EARLY_EXIT(1);
    }
    /* Each shard is checked against the changelog, and restored from it
     * when missing, corrupt, behind or diverged, when the group assigns
     * its partitions to this instance (ownership.c), before they are read. */
    char *instance = instance_id(c, err, sizeof err);
    if (!instance) {
        fprintf(stderr, "sagad: %s\n", err);
        saga_free(bootstrap);
        EARLY_EXIT(2);
    }
    c->instance_id = instance;
    sagad_crash_point_instance(instance);
    d.restore_stats = saga_calloc((size_t)c->partitions, sizeof *d.restore_stats);
    d.restore_cfg = (sagad_restore_config_t){.dir = c->data_dir, .partitions = (int)c->partitions,
                                             .bootstrap = bootstrap, .props = &c->kafka_props,
                                             .topic = c->changelog_topic, .synchronous = c->synchronous,
                                             .timeout_ms = 10000, .writer = instance};
    d.restorer = d.restore_stats ? sagad_restore_consumer(&d.restore_cfg, err, sizeof err) : NULL;
    d.shard_count = (int)c->partitions;
    d.shards = sagad_shards_new(d.shard_count);
    d.owned = saga_calloc((size_t)d.shard_count, 1);
    if (!d.restorer || !d.shards || !d.owned) {
        fprintf(stderr, "sagad: %s\n", d.restore_stats && d.shards && d.owned ? err : "out of memory");
        saga_free(bootstrap);
        EARLY_EXIT(1);
    }
    /* The shards share one cache budget: 8 shards must not take 8 times the memory of one file. */
    int cache_kib = SAGA_STORE_CACHE_KIB / (int)c->partitions;
    d.store_opt = (saga_store_options_t){.synchronous = c->synchronous,
                                         .cache_kib = cache_kib < SAGA_STORE_MIN_CACHE_KIB ? SAGA_STORE_MIN_CACHE_KIB : cache_kib};
    log_registry(d.registry);
    /* One transactional.id per instance: a restarted instance fences its
     * previous run; a stale member of the group is fenced by the group
     * generation its transactions carry (KIP-447; docs/OPERATIONS.md,
     * "Transactions"). */
    char txn_id[600];
    snprintf(txn_id, sizeof txn_id, "sagad-%s-%s", c->group, instance);
    if (sagad_txnplan_init(&d.txnplan, d.shard_count)) {
        LOG_ERROR("sagad", "out of memory");
        saga_free(bootstrap);
        EARLY_EXIT(1);
    }
    LOG_INFO("sagad", "instance %s of group %s (transactional.id %s)", instance, c->group, txn_id);
    saga_bus_config_t bcfg = {.bootstrap = bootstrap, .group = c->group, .client_id = "sagad",
                              .topics = topics, .topic_count = 3, .props = &c->kafka_props,
                              .transactional_id = txn_id, .instance_id = instance};
    d.bus = saga_bus_new(&bcfg, err, sizeof err);
    if (!d.bus) {
        fprintf(stderr, "sagad: %s\n", err);
        EARLY_EXIT(1);
    }
    saga_bus_set_marker_topic(d.bus, c->changelog_topic); /* shards' changelog markers (relay.c) */
    d.commands = saga_command_queue_new(4096);
    if (!d.commands) EARLY_EXIT(1);
    /* The admin API reads every shard of the data directory. */
    saga_admin_t *admin = saga_admin_start_dir(c->admin_addr, (int)c->admin_port, c->data_dir, d.shard_count, err,
                                               sizeof err);
    if (!admin) {
        fprintf(stderr, "sagad: admin API on %s:%lld: %s\n", c->admin_addr, c->admin_port, err);
        EARLY_EXIT(1);
    }
    if (c->admin_host && *c->admin_host && saga_admin_add_hosts(admin, c->admin_host, err, sizeof err)) {
        fprintf(stderr, "sagad: --admin-host: %s\n", err);
        saga_admin_stop(&admin);
        EARLY_EXIT(2);
    }
    d.flow_limits = (saga_flow_limits_t){.max_in_flight = (int)c->max_in_flight,
                                         .breaker_failures = (int)c->breaker_failures,
                                         .breaker_cooldown_ms = c->breaker_cooldown_ms};
    d.flow = saga_flow_new(&d.flow_limits);
    if (!d.flow || sagad_flow_recover(&d)) {
        fprintf(stderr, "sagad: cannot rebuild flow-control state\n");
        EARLY_EXIT(1);
    }
    saga_admin_set_commands(admin, d.commands, token);
    char admin_url[600];
    if (c->admin_url && *c->admin_url) snprintf(admin_url, sizeof admin_url, "%s", c->admin_url);
    else {
        /* A wildcard address is no address to send anyone to: the host name. */
        char host[256];
        const char *a = c->admin_addr;
        if ((!strcmp(a, "0.0.0.0") || !strcmp(a, "::")) && gethostname(host, sizeof host - 1) == 0) {
            host[sizeof host - 1] = '\0';
            a = host;
        }
        int v6 = strchr(a, ':') != NULL;
        snprintf(admin_url, sizeof admin_url, "http://%s%s%s:%d", v6 ? "[" : "", a, v6 ? "]" : "",
                 saga_admin_port(admin));
    }
    sagad_instances_config_t icfg = {.bootstrap = d.restore_cfg.bootstrap, .props = &c->kafka_props,
                                     .topic = c->instances_topic, .group = c->group, .instance_id = instance,
                                     .admin_url = admin_url, .owned = d.owned, .shards = d.shard_count,
                                     .control_topic = c->control_topic};
    sagad_instances_t *instances = sagad_instances_start(&icfg, err, sizeof err);
    if (!instances) {
        fprintf(stderr, "sagad: %s\n", err);
        saga_admin_stop(&admin);
        EARLY_EXIT(1);
    }
    d.instances = instances;
    saga_admin_set_owned(admin, d.owned, sagad_instances_owner, instances);
    saga_admin_set_publish(admin, sagad_instances_publish, instances);
    saga_admin_set_publish_batch(admin, sagad_instances_publish_batch);
    /* A body the size of the limit could never be published: the admin API
     * refuses it first (413), leaving room for the command's envelope. */
    saga_admin_set_max_body(admin, (size_t)c->max_message_bytes - SAGA_MESSAGE_RESERVE - 4096);
    if (c->alert_webhook && *c->alert_webhook) {
        d.alerts = saga_alerter_start(c->alert_webhook, 10000, err, sizeof err);
        if (!d.alerts) {
            fprintf(stderr, "sagad: alerts: %s\n", err);
            EARLY_EXIT(1);
        }
    }
    d.commit_seconds.bounds = d.iteration_seconds.bounds = saga_hist_fast_bounds;
    d.consume_lag_seconds.bounds = d.handle_seconds.bounds = d.relay_seconds.bounds = saga_hist_fast_bounds;
    d.step_seconds.bounds = d.saga_seconds.bounds = saga_hist_slow_bounds;
    d.runtime = sagad_runtime_new();
    if (!d.runtime) EARLY_EXIT(1);
    sagad_publish_runtime(&d);
    saga_admin_set_runtime(admin, runtime_fill, d.runtime);
    d.engine.replies_topic = c->replies_topic;
    d.engine.start_topic = c->start_topic;     /* child sagas start there ... */
    d.engine.control_topic = c->control_topic; /* ... and are told to stop or undo there */
    d.engine.partitions = (int)c->partitions;
    d.engine.flow = d.flow;
    d.engine.max_message_bytes = (size_t)c->max_message_bytes;
    d.engine.events_level = (saga_events_level_t)saga_events_level_parse(c->events_level);
    d.rng = saga_random_u64();
    saga_signals_install(&stop_requested, &reload_requested);
    LOG_INFO("sagad", "running: data-dir=%s partitions=%d admin=http://%s:%d", c->data_dir, d.shard_count,
             c->admin_addr, saga_admin_port(admin));

    bool ready_written = false;
    int64_t last_report = saga_monotonic_us(), last_prune = 0, last_retention = 0;
    uint64_t dlq_alerted = 0;
    int64_t last_publish = 0;
    int exit_code = 0;
    while (!stop_requested) {
        if (reload_requested || d.reload_pending) {
            reload_requested = 0;
            d.reload_pending = false;
            reload_definitions(&d);
        }
        int irc = sagad_iterate(&d, 100);
        if (saga_bus_fenced(d.bus)) { /* another sagad took our transactional.id over */
            fprintf(stderr, "sagad: %s\n", saga_bus_fenced(d.bus));
            LOG_ERROR("sagad", "%s", saga_bus_fenced(d.bus));
            exit_code = 1;
            break;
        }
        if (irc) {
            exit_code = 1;
            break;
        }
        if (saga_monotonic_us() - last_publish > 500000) {
            sagad_publish_runtime(&d);
            last_publish = saga_monotonic_us();
        }
        if (!ready_written && c->ready_file && saga_bus_ready(d.bus) && d.pending_count == 0 &&
            d.owned_version == saga_bus_owned_version(d.bus)) {
            if (write_ready_file(&d, saga_admin_port(admin), token_file)) LOG_ERROR("sagad", "cannot write %s", c->ready_file);
            ready_written = true;
        }
        if (saga_monotonic_us() - last_prune > 5 * 1000000LL) {
            /* Bounded chunks so one pass never stalls the loop for long. */
            int pruned = 0;
            for (int p = 0; p < d.shard_count; p++) {
                if (!d.shards[p].store) continue;
                int got = saga_store_prune_dedup(d.shards[p].store, saga_now_ms() - c->dedup_retention_ms, 10000);
                if (got > 0) pruned += got;
            }
            if (pruned > 0) d.counters.dedup_pruned += (uint64_t)pruned;
            else last_prune = saga_monotonic_us();
        }
        if (saga_monotonic_us() - last_retention > 1000000LL) {
            /* Retention: 1,000 finished sagas per pass (one transaction), a
             * pass per loop turn while a backlog lasts, else once a second. */
            int pruned = 0;
            for (int p = 0; p < d.shard_count; p++) {
                if (!d.shards[p].store) continue;
                int got = saga_store_prune_finished(d.shards[p].store, saga_now_ms() - c->retention_ms, 1000,
                                                    c->changelog_topic, p, saga_now_ms());
                if (got > 0) pruned += got;
            }
            if (pruned > 0) d.counters.sagas_pruned += (uint64_t)pruned;
            else last_retention = saga_monotonic_us();
        }
        if (saga_monotonic_us() - last_report > 10 * 1000000) {
            log_counters(&d);
            if (d.counters.dead_letters > dlq_alerted) { /* at most one DLQ alert per report period */
                saga_alert(d.alerts, "dead_letters",
                           json_pack("{s:I, s:I, s:s}", "new", (json_int_t)(d.counters.dead_letters - dlq_alerted),
                                     "total", (json_int_t)d.counters.dead_letters, "topic", c->dlq_topic));
                dlq_alerted = d.counters.dead_letters;
            }
            last_report = saga_monotonic_us();
        }
    }
    saga_admin_set_owned(admin, d.owned, NULL, NULL);
    saga_admin_set_publish(admin, NULL, NULL);
    saga_admin_set_commands(admin, NULL, token); /* stopping: commands answer 503, none is taken and lost */
    d.instances = NULL;
    sagad_instances_stop(&instances); /* its tombstone: nobody is sent here any more */
    LOG_INFO("sagad", "shutting down: draining the outbox");
    if (!exit_code && sagad_drain_outbox(&d, 10000)) exit_code = 1;
    log_counters(&d);
    saga_admin_stop(&admin);
    sagad_runtime_free(&d.runtime);
    saga_bus_close(&d.bus);
    sagad_relay_free(&d);
    sagad_commit_workers_stop();
    sagad_shards_close(&d.shards, d.shard_count);
    saga_registry_free(&d.registry);
    saga_flow_free(&d.flow);
    saga_command_queue_free(&d.commands);
    saga_alerter_stop(&d.alerts);
    json_decref(d.pending_alerts);
    saga_free(token);
    saga_free(token_file);
#undef EARLY_EXIT
    saga_free(d.restore_stats);
    saga_free(d.owned);
    if (d.restorer) rd_kafka_destroy(d.restorer);
    if (d.committed) rd_kafka_topic_partition_list_destroy(d.committed);
    saga_free(bootstrap);
    saga_free(instance);
    curl_global_cleanup();
    close(lock_fd);
    LOG_INFO("sagad", "stopped");
    return exit_code;
}
