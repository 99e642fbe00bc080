/* Golden-output tests of sagactl: every command's stdout (and stderr, for
 * the error paths) against tests/fixtures/sagactl/NAME.out / NAME.err, run
 * against the fixture database of test_admin_fixture.c plus a few rows
 * added here. Times are the fixture's fixed timestamps; what depends on
 * the machine is masked before comparing: the admin URL (${URL}), the
 * source tree (${SRC}) and the age of the oldest running saga (${AGE}).
 *
 * After an intended change of the output, regenerate with
 *   SAGA_UPDATE_GOLDEN=1 build/bin/test_sagactl_golden
 * and review the diff of tests/fixtures/sagactl/. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_filter.h"

#include "admin.h"
#include "commands.h"
#include "test_admin_fixture.h"

#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SAGACTL_PATH
#error "SAGACTL_PATH must name the sagactl binary"
#endif

#define TOKEN "g0lden-t0ken"

static fixture_shards_t fs; /* 3 shard files, the sample sagas spread by the hash */
#define SHARDS 3
static saga_admin_t *admin;
static saga_command_queue_t *queue;
static char url[64];

static const char DEF_V1[] =
    "{\"name\":\"order_fulfillment\",\"version\":1,\"steps\":["
    "{\"name\":\"create_order\",\"action\":\"order.create\",\"compensation\":\"order.cancel\"},"
    "{\"name\":\"charge_payment\",\"action\":\"payment.charge\",\"compensation\":\"payment.refund\"}]}";
static const char DEF_V2[] =
    "{\"name\":\"order_fulfillment\",\"version\":2,\"steps\":["
    "{\"name\":\"create_order\",\"action\":\"order.create\",\"compensation\":\"order.cancel\"},"
    "{\"name\":\"reserve_inventory\",\"action\":\"inventory.reserve\",\"compensation\":\"inventory.release\"},"
    "{\"name\":\"charge_payment\",\"action\":\"payment.charge\",\"compensation\":\"payment.refund\"}]}";

static int group_setup(void **state) {
    if (fixture_shards_create(&fs, SHARDS) != 0 || fixture_shards_spread(&fs, fixture_sample_rows) != 0) return -1;
    char sql[2048];
    snprintf(sql, sizeof sql,
             "INSERT INTO definitions VALUES"
             " ('order_fulfillment', 1, '3f1a9c0d5e7b2a4c6e8f0a1b3c5d7e9f', '%s', 1699999000000),"
             " ('order_fulfillment', 2, '9b8a7c6d5e4f3a2b1c0d9e8f7a6b5c4d', '%s', 1699999500000),"
             " ('odd', 1, '0123456789abcdef0123456789abcdef', '{\"name\":\"odd\",\"version\":1,\"steps\":[]}',"
             " 1699999600000);"
             /* a parked saga: its payment refund gave up */
             "INSERT INTO sagas (id, definition, version, status, input, created_at, updated_at, error_code,"
             " error_message) VALUES ('s-stuck-3', 'order_fulfillment', 2, 'compensation_failed', '{}',"
             " 1699990000000, 1699990005000, 'PAYMENT_DECLINED', 'card expired');"
             "INSERT INTO steps (saga_id, idx, name, status, attempt, comp_attempt, started_at, finished_at)"
             " VALUES ('s-stuck-3', 0, 'create_order', 'compensated', 1, 1, 1699990000010, 1699990000060),"
             " ('s-stuck-3', 1, 'reserve_inventory', 'compensation_failed', 1, 5, 1699990000070, 1699990000200),"
             " ('s-stuck-3', 2, 'charge_payment', 'failed', 3, 0, 1699990000210, 1699990001000);"
             "INSERT INTO history (saga_id, seq, at, event, step, status, detail) VALUES"
             " ('s-stuck-3', 1, 1699990000000, 'saga.started', NULL, 'running', '{}'),"
             " ('s-stuck-3', 2, 1699990001000, 'step.failed', 'charge_payment', 'compensating', '{}'),"
             " ('s-stuck-3', 3, 1699990005000, 'saga.compensation_failed', 'reserve_inventory',"
             " 'compensation_failed', '{\"reason\":\"inventory.release failed 5 times: WAREHOUSE_DOWN\"}');",
             DEF_V1, DEF_V2);
    if (fixture_shards_spread(&fs, sql) != 0) return -1;
    char err[256];
    admin = saga_admin_start("127.0.0.1", 0, fs.paths, SHARDS, err, sizeof err);
    if (!admin) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    queue = saga_command_queue_new(16);
    if (!queue) return -1;
    saga_admin_set_commands(admin, queue, TOKEN);
    snprintf(url, sizeof url, "http://127.0.0.1:%d", saga_admin_port(admin));
    return 0;
}

static int group_teardown(void **state) {
    saga_admin_stop(&admin);
    saga_command_queue_free(&queue);
    fixture_shards_destroy(&fs);
    return 0;
}

static const char *source_dir(void) {
    const char *src = getenv("SAGA_SOURCE_DIR");
    if (!src) fail_msg("SAGA_SOURCE_DIR is not set");
    return src;
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, len = 0, n;
    char *buf = malloc(cap);
    while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len < 2) buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    buf[len] = '\0';
    return buf;
}

/* A copy of s with every `from` replaced by `to`. */
static char *replace_all(char *s, const char *from, const char *to) {
    size_t fl = strlen(from), tl = strlen(to), n = 0;
    if (!fl) return s;
    for (const char *p = s; (p = strstr(p, from)); p += fl) n++;
    char *out = malloc(strlen(s) + n * (tl > fl ? tl - fl : 0) + 1), *o = out;
    const char *p = s, *q;
    while ((q = strstr(p, from))) {
        memcpy(o, p, (size_t)(q - p));
        o += q - p;
        memcpy(o, to, tl);
        o += tl;
        p = q + fl;
    }
    strcpy(o, p);
    free(s);
    return out;
}

/* What depends on the machine or the clock. */
static char *mask(char *s) {
    s = replace_all(s, url, "${URL}");
    s = replace_all(s, source_dir(), "${SRC}");
    char *age = strstr(s, ", age ");
    if (age) { /* the rest of that line */
        char *eol = strchr(age, '\n');
        char *rest = strdup(eol ? eol : "");
        strcpy(age, ", age ${AGE}");
        char *out = malloc(strlen(s) + strlen(rest) + 1);
        strcpy(out, s);
        strcat(out, rest);
        free(rest);
        free(s);
        s = out;
    }
    return s;
}

typedef struct {
    int exit_code;
    char *out, *err;
} run_t;

/* Runs sagactl --url URL args... with SAGA_ADMIN_TOKEN=token (unless NULL). */
static run_t run_ctl(const char *token, const char *const *args) {
    char *argv[64];
    size_t n = 0;
    argv[n++] = (char *)SAGACTL_PATH;
    argv[n++] = (char *)"--url";
    argv[n++] = url;
    for (size_t i = 0; args[i]; i++) argv[n++] = (char *)args[i];
    argv[n] = NULL;
    char tok[128];
    char *envp[3] = {(char *)"PATH=/usr/bin:/bin", NULL, NULL};
    if (token) {
        snprintf(tok, sizeof tok, "SAGA_ADMIN_TOKEN=%s", token);
        envp[1] = tok;
    }
    char out_path[320], err_path[320];
    snprintf(out_path, sizeof out_path, "%s/golden.out", fs.dir);
    snprintf(err_path, sizeof err_path, "%s/golden.err", fs.dir);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&fa, 2, err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    pid_t pid;
    int rc = posix_spawn(&pid, SAGACTL_PATH, &fa, NULL, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) fail_msg("cannot run %s: %s", SAGACTL_PATH, strerror(rc));
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) fail_msg("sagactl died (status %d)", status);
    run_t r = {.exit_code = WEXITSTATUS(status), .out = mask(slurp(out_path)), .err = mask(slurp(err_path))};
    unlink(out_path);
    unlink(err_path);
    return r;
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0) fail_msg("cannot write %s", path);
}

/* Compares (or, with SAGA_UPDATE_GOLDEN=1, writes) NAME.out and NAME.err;
 * a missing NAME.err means stderr must be empty. */
static void golden(const char *name, int want_exit, const char *token, const char *const *args) {
    run_t r = run_ctl(token, args);
    char out_path[600], err_path[600];
    snprintf(out_path, sizeof out_path, "%s/tests/fixtures/sagactl/%s.out", source_dir(), name);
    snprintf(err_path, sizeof err_path, "%s/tests/fixtures/sagactl/%s.err", source_dir(), name);
    const char *update = getenv("SAGA_UPDATE_GOLDEN");
    if (update && strcmp(update, "1") == 0) {
        write_file(out_path, r.out);
        if (r.err[0]) write_file(err_path, r.err);
        else unlink(err_path);
    }
    if (r.exit_code != want_exit) fail_msg("%s: exit %d, want %d; stderr:\n%s", name, r.exit_code, want_exit, r.err);
    char *want_out = slurp(out_path), *want_err = slurp(err_path);
    if (!want_out) fail_msg("%s: no golden file %s (SAGA_UPDATE_GOLDEN=1 writes it)", name, out_path);
    if (strcmp(r.out, want_out) != 0)
        fail_msg("%s: stdout differs from %s\n--- got:\n%s--- want:\n%s", name, out_path, r.out, want_out);
    if (strcmp(r.err, want_err ? want_err : "") != 0)
        fail_msg("%s: stderr differs from %s\n--- got:\n%s--- want:\n%s", name, err_path, r.err,
                 want_err ? want_err : "");
    free(want_out);
    free(want_err);
    free(r.out);
    free(r.err);
}

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

static void test_golden_show(void **state) {
    golden("show_compensated", 0, NULL, ARGS("show", FX_SAGA_DONE));
    golden("show_running", 0, NULL, ARGS("show", FX_SAGA_RUNNING));
    golden("show_compensation_failed", 0, NULL, ARGS("show", "s-stuck-3"));
    golden("show_not_found", 1, NULL, ARGS("show", "nope"));
    golden("show_json", 0, NULL, ARGS("--json", "show", FX_SAGA_ODD));
}

static void test_golden_list(void **state) {
    golden("list", 0, NULL, ARGS("list"));
    golden("list_status", 0, NULL, ARGS("list", "--status", "compensation_failed"));
    golden("list_definition", 0, NULL, ARGS("list", "--definition=order_fulfillment", "--status", "running,compensated"));
    golden("list_limit", 0, NULL, ARGS("list", "--limit", "2"));
    golden("list_all", 0, NULL, ARGS("list", "--all", "--limit", "1"));
    golden("list_all_json", 0, NULL, ARGS("list", "--all", "--limit", "3", "--json"));
    golden("list_json", 0, NULL, ARGS("--json", "list", "--limit", "1"));
    golden("list_search", 0, NULL, ARGS("list", "--search", "order_id=o-1", "--search=customer=c-9"));
    golden("list_search_none", 0, NULL, ARGS("list", "--search", "order_id=o-2"));
    golden("list_search_usage", 2, NULL, ARGS("list", "--search", "order_id"));
    golden("list_search_bad_name", 1, NULL, ARGS("list", "--search", "order-id=o-1"));
    golden("list_filters", 0, NULL,
           ARGS("list", "--step", "reserve_inventory", "--step-status", "compensation_failed", "--error-code",
                "PAYMENT_DECLINED", "--created-after", "2023-11-14T08:00:00+01:00", "--updated-before",
                "2023-11-15T00:00:00Z"));
    golden("list_none", 0, NULL, ARGS("list", "--definition", "nope"));
    golden("list_bad_status", 1, NULL, ARGS("list", "--status", "stuck"));
    golden("list_bad_time", 1, NULL, ARGS("list", "--created-after", "yesterday"));
    golden("list_bad_cursor", 1, NULL, ARGS("list", "--cursor", "not-a-cursor"));
    golden("list_bad_limit", 2, NULL, ARGS("list", "--limit", "0"));
    golden("list_bad_option", 2, NULL, ARGS("list", "--colour"));
    golden("list_all_cursor", 2, NULL, ARGS("list", "--all", "--cursor", "x"));
}

static void test_golden_defs(void **state) {
    golden("defs", 0, NULL, ARGS("defs"));
    golden("defs_name", 0, NULL, ARGS("defs", "order_fulfillment"));
    golden("defs_version", 0, NULL, ARGS("defs", "order_fulfillment", "2"));
    golden("defs_version_json", 0, NULL, ARGS("--json", "defs", "odd", "1"));
    golden("defs_not_found", 1, NULL, ARGS("defs", "nope"));
    golden("defs_version_not_found", 1, NULL, ARGS("defs", "order_fulfillment", "9"));
    golden("defs_bad_version", 1, NULL, ARGS("defs", "order_fulfillment", "two"));
    golden("defs_too_many", 2, NULL, ARGS("defs", "a", "1", "x"));
}

static void test_golden_stats(void **state) { golden("stats", 0, NULL, ARGS("stats")); }

static void test_golden_health(void **state) {
    golden("health", 0, NULL, ARGS("health"));
    golden("health_json", 0, NULL, ARGS("--json", "health"));
}

static void test_golden_validate(void **state) {
    char good[512], bad[512];
    snprintf(good, sizeof good, "%s/sagas/order_fulfillment.json", source_dir());
    snprintf(bad, sizeof bad, "%s/tests/fixtures/definitions/mixed/b_bad.json", source_dir());
    golden("validate_ok", 0, NULL, ARGS("validate", good));
    golden("validate_mixed", 1, NULL, ARGS("validate", good, bad));
}

static void test_golden_abort_retry(void **state) {
    golden("abort_not_running", 1, TOKEN, ARGS("abort", FX_SAGA_DONE, "customer", "called"));
    golden("abort_not_found", 1, TOKEN, ARGS("abort", "nope"));
    golden("abort_no_token", 1, NULL, ARGS("abort", FX_SAGA_RUNNING));
    golden("abort_wrong_token", 1, "other", ARGS("abort", FX_SAGA_RUNNING));
    golden("retry_not_parked", 1, TOKEN, ARGS("retry", FX_SAGA_RUNNING));
    golden("retry_accepted", 0, TOKEN, ARGS("retry", "s-stuck-3"));
    golden("retry_usage", 2, TOKEN, ARGS("retry"));
    /* the bulk forms (POST /v1/sagas/retry, /abort) */
    golden("retry_bulk_dry_run", 0, TOKEN, ARGS("retry", "--status", "compensation_failed", "--dry-run"));
    golden("retry_bulk_wrong_status", 1, TOKEN, ARGS("retry", "--status", "running", "--dry-run"));
    golden("retry_bulk_bad_option", 2, TOKEN, ARGS("retry", "--max", "0"));
    golden("abort_bulk_dry_run", 0, TOKEN, ARGS("abort", "--status", "running", "--definition", "order_fulfillment", "--dry-run"));
    golden("retry_bulk_search_none", 0, TOKEN, ARGS("retry", "--search", "order_id=o-1", "--dry-run", "--json"));
    golden("retry_bulk_search_usage", 2, TOKEN, ARGS("retry", "--search", "order_id"));
    golden("abort_bulk", 0, TOKEN, ARGS("abort", "--status=running", "--created-before", "2030-01-01T00:00:00Z", "--reason", "recall"));
}

int main(int argc, char **argv) {
    saga_test_filter(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_show),     cmocka_unit_test(test_golden_list),
        cmocka_unit_test(test_golden_defs),     cmocka_unit_test(test_golden_stats),
        cmocka_unit_test(test_golden_health),   cmocka_unit_test(test_golden_validate),
        cmocka_unit_test(test_golden_abort_retry),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
