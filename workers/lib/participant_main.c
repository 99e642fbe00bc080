/* The command line every example worker shares: one saga_config table gives
 * the flags, the environment variables (<PREFIX>_DB, ...) and --help. */
#include "participant.h"

#include "saga_alloc.h"
#include "saga_error.h"
#include "saga_kafka.h"
#include "saga_log.h"
#include "saga_util.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

static int parse_rate(const char *flag, const char *text, double *out, char *err, size_t errlen) {
    char *end = NULL;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end || !(v >= 0.0 && v <= 1.0)) {
        snprintf(err, errlen, "--%s: '%s' is not a probability between 0 and 1", flag, text);
        return SAGA_ECONFIG;
    }
    *out = v;
    return 0;
}

int participant_main(const participant_spec_t *spec, int argc, char **argv) {
    saga_alloc_install_jansson();
    char def_db[256], def_topic[256], def_group[256];
    snprintf(def_db, sizeof def_db, "./%s.db", spec->name);
    snprintf(def_topic, sizeof def_topic, "%s.commands", spec->name);
    snprintf(def_group, sizeof def_group, "%s-worker", spec->name);

    const char *bootstrap = NULL, *bootstrap_file = NULL, *db = NULL, *seed = NULL, *topic = NULL,
               *group = NULL, *ready_file = NULL, *metrics_file = NULL, *log_level = NULL, *fail_rate = NULL, *retry_rate = NULL,
               *no_reply_rate = NULL;
    long long delay_ms = 0, crash_after = 0, fault_seed = 0, batch_max = 0, bootstrap_wait_ms = 0;
    bool log_json = true;
    const saga_config_option_t table[] = {
        {"bootstrap", SAGA_CFG_STRING, NULL, "Kafka bootstrap servers (host:port,...)", &bootstrap},
        {"bootstrap-file", SAGA_CFG_STRING, NULL, "read the bootstrap list from this file (dev broker)", &bootstrap_file},
        {"bootstrap-wait-ms", SAGA_CFG_INT, "30000", "how long to wait for --bootstrap-file to appear", &bootstrap_wait_ms},
        {"db", SAGA_CFG_STRING, def_db, "SQLite ledger file", &db},
        {"seed", SAGA_CFG_STRING, NULL, "seed JSON loaded into an empty ledger (sagas/examples/seed.json)", &seed},
        {"topic", SAGA_CFG_STRING, def_topic, "command topic to consume", &topic},
        {"group", SAGA_CFG_STRING, def_group, "Kafka consumer group", &group},
        {"ready-file", SAGA_CFG_STRING, NULL, "write READY to this file once partitions are assigned", &ready_file},
        {"metrics-file", SAGA_CFG_STRING, NULL, "rewrite this file every second with the worker's stage latencies, in Prometheus text (e.g. for node_exporter's textfile collector)", &metrics_file},
        {"batch-max", SAGA_CFG_INT, "500", "commands per ledger transaction (group commit)", &batch_max},
        {"log-level", SAGA_CFG_STRING, "info", "debug, info, warn or error", &log_level},
        {"log-json", SAGA_CFG_BOOL, "true", "JSON log lines (false: plain text)", &log_json},
        {"fail-rate", SAGA_CFG_STRING, "0", "fault injection: probability of a business failure of an action", &fail_rate},
        {"retry-rate", SAGA_CFG_STRING, "0", "fault injection: probability of a transient (retry) outcome", &retry_rate},
        {"no-reply-rate", SAGA_CFG_STRING, "0", "fault injection: probability that a processed command's reply is not sent", &no_reply_rate},
        {"delay-ms", SAGA_CFG_INT, "0", "fault injection: sleep this long before each command", &delay_ms},
        {"crash-after", SAGA_CFG_INT, "0", "fault injection: abort() once N commands are committed (0: never)", &crash_after},
        {"fault-seed", SAGA_CFG_INT, "0", "seed of the fault injection random numbers (0: random)", &fault_seed},
        {NULL, SAGA_CFG_STRING, NULL, NULL, NULL},
    };
    saga_kv_list_t props;
    char err[1024];
    int rc = saga_config_parse(table, spec->env_prefix, spec->program, spec->summary, argc, argv, &props, err,
                               sizeof err);
    if (rc == 1) return 0;
    if (rc) { fprintf(stderr, "%s: %s\n", spec->program, err); return 2; }
    saga_log_set_json(log_json);
    if (saga_log_set_level_name(log_level)) {
        fprintf(stderr, "%s: --log-level: '%s' is not one of debug, info, warn, error\n", spec->program, log_level);
        return 2;
    }
    participant_faults_t faults = {0};
    if (parse_rate("fail-rate", fail_rate, &faults.fail_rate, err, sizeof err) ||
        parse_rate("retry-rate", retry_rate, &faults.retry_rate, err, sizeof err) ||
        parse_rate("no-reply-rate", no_reply_rate, &faults.no_reply_rate, err, sizeof err)) {
        fprintf(stderr, "%s: %s\n", spec->program, err);
        return 2;
    }
    if (delay_ms < 0 || crash_after < 0 || batch_max < 1 || batch_max > 100000) {
        fprintf(stderr, "%s: --delay-ms and --crash-after must be >= 0, --batch-max 1..100000\n", spec->program);
        return 2;
    }
    faults.delay_ms = delay_ms;
    faults.crash_after = crash_after;
    faults.rng_seed = (unsigned long long)fault_seed;

    static volatile sig_atomic_t stop = 0;
    saga_signals_install(&stop, NULL);

    participant_t *p = participant_open(spec, db, err, sizeof err);
    if (!p) { LOG_ERROR(spec->name, "%s", err); return 1; }
    if (seed && participant_seed_file(p, seed, err, sizeof err)) {
        LOG_ERROR(spec->name, "seed: %s", err);
        participant_close(&p);
        return 1;
    }
    participant_set_faults(p, &faults);
    if (faults.fail_rate > 0 || faults.retry_rate > 0 || faults.no_reply_rate > 0 || faults.delay_ms > 0 ||
        faults.crash_after > 0)
        LOG_WARN(spec->name, "fault injection on: fail-rate %g, retry-rate %g, no-reply-rate %g, delay %lld ms, crash after %lld",
                 faults.fail_rate, faults.retry_rate, faults.no_reply_rate, faults.delay_ms, faults.crash_after);

    char *servers = saga_kafka_bootstrap(bootstrap, bootstrap_file, (int)bootstrap_wait_ms, err, sizeof err);
    if (!servers) {
        LOG_ERROR(spec->name, "%s", err);
        participant_close(&p);
        return 2;
    }
    participant_run_opts_t opts = {
        .bootstrap = servers, .topic = topic, .group = group, .client_id = spec->program,
        .ready_file = ready_file, .kafka_props = &props, .batch_max = (int)batch_max, .stop = &stop,
        .metrics_file = metrics_file,
    };
    LOG_INFO(spec->name, "ledger %s", db);
    rc = participant_run(p, &opts, err, sizeof err);
    if (rc) LOG_ERROR(spec->name, "%s", err);
    saga_free(servers);
    participant_close(&p);
    return rc ? 1 : 0;
}
