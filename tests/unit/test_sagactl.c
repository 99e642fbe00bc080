/* sagactl (the binary) against a real admin API over a temporary database. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "admin.h"
#include "test_admin_fixture.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SAGACTL_PATH
#error "SAGACTL_PATH must name the sagactl binary"
#endif

static fixture_db_t fx;
static saga_admin_t *admin;
static char url[64];

typedef struct {
    int exit_code;
    char *out, *err;
} run_t;

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return strdup("");
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    size_t n;
    while (buf && (n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len < 2) buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    if (buf) buf[len] = '\0';
    return buf;
}

/* Runs sagactl with args (NULL-terminated) and SAGA_ADMIN_URL=env_url
 * (unset when NULL); captures stdout and stderr. */
static run_t run_ctl(const char *env_url, const char *const *args) {
    char *argv[32];
    size_t n = 0;
    argv[n++] = (char *)SAGACTL_PATH;
    for (; args[n - 1] && n < 31; n++) argv[n] = (char *)args[n - 1];
    argv[n] = NULL;

    char env_buf[128];
    char *envp[3] = {(char *)"PATH=/usr/bin:/bin", NULL, NULL};
    if (env_url) {
        snprintf(env_buf, sizeof env_buf, "SAGA_ADMIN_URL=%s", env_url);
        envp[1] = env_buf;
    }
    char out_path[320], err_path[320];
    snprintf(out_path, sizeof out_path, "%s/ctl.out", fx.dir);
    snprintf(err_path, sizeof err_path, "%s/ctl.err", fx.dir);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&fa, 2, err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    pid_t pid;
    run_t r = {.exit_code = -1};
    int rc = posix_spawn(&pid, SAGACTL_PATH, &fa, NULL, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) fail_msg("cannot run %s: %s", SAGACTL_PATH, strerror(rc));
    int status;
    if (waitpid(pid, &status, 0) != pid) fail_msg("waitpid failed");
    if (!WIFEXITED(status)) fail_msg("sagactl died (status %d)", status);
    r.exit_code = WEXITSTATUS(status);
    r.out = slurp(out_path);
    r.err = slurp(err_path);
    unlink(out_path);
    unlink(err_path);
    return r;
}

static void run_free(run_t *r) {
    free(r->out);
    free(r->err);
}

static void assert_contains(const char *hay, const char *needle) {
    if (!strstr(hay, needle)) fail_msg("'%s' not found in:\n%s", needle, hay);
}

static int group_setup(void **state) {
    if (fixture_db_create(&fx, 1) != 0) return -1;
    char err[256];
    admin = saga_admin_start("127.0.0.1", 0, fx.db_path, err, sizeof err);
    if (!admin) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    snprintf(url, sizeof url, "http://127.0.0.1:%d", saga_admin_port(admin));
    return 0;
}

static int group_teardown(void **state) {
    saga_admin_stop(&admin);
    fixture_db_destroy(&fx);
    return 0;
}

static void test_show_text(void **state) {
    run_t r = run_ctl(NULL, (const char *[]){"--url", url, "show", FX_SAGA_DONE, NULL});
    assert_int_equal(r.exit_code, 0);
    assert_contains(r.out, FX_SAGA_DONE);
    assert_contains(r.out, "order_fulfillment@1");
    assert_contains(r.out, "compensated");
    assert_contains(r.out, "2023-11-14T22:13:20.000Z");
    assert_contains(r.out, "PAYMENT_DECLINED: card limit exceeded");
    assert_contains(r.out, "reserve_inventory");
    assert_contains(r.out, "compensated (outcome unknown)");
    assert_contains(r.out, "DURATION_MS");
    assert_contains(r.out, "step.failed");
    /* the create_order row: index, name, status, attempts, comp, 40 ms */
    const char *row = strstr(r.out, "  0  create_order");
    assert_non_null(row);
    char line[200];
    sscanf(row, "%199[^\n]", line);
    char idx[8], name[32], status[32], err[32];
    int att, comp, dur;
    assert_int_equal(sscanf(line, "%7s %31s %31s %d %d %d %31s", idx, name, status, &att, &comp, &dur, err), 7);
    assert_string_equal(status, "compensated");
    assert_int_equal(att, 1);
    assert_int_equal(comp, 1);
    assert_int_equal(dur, 40);
    assert_string_equal(err, "-");
    assert_string_equal(r.err, "");
    run_free(&r);
}

static void test_show_json(void **state) {
    run_t r = run_ctl(NULL, (const char *[]){"show", "--json", FX_SAGA_RUNNING, "--url", url, NULL});
    assert_int_equal(r.exit_code, 0);
    json_t *doc = json_loads(r.out, 0, NULL);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "id")), FX_SAGA_RUNNING);
    assert_true(json_is_array(json_object_get(doc, "steps")));
    json_decref(doc);
    run_free(&r);
}

static void test_show_odd_id(void **state) {
    run_t r = run_ctl(url, (const char *[]){"show", FX_SAGA_ODD, NULL});
    assert_int_equal(r.exit_code, 0);
    assert_contains(r.out, "odd@1");
    run_free(&r);
}

static void test_show_not_found(void **state) {
    run_t r = run_ctl(NULL, (const char *[]){"--url", url, "show", "nope", NULL});
    assert_int_equal(r.exit_code, 1);
    assert_contains(r.err, "no saga 'nope'");
    assert_contains(r.err, "not_found");
    assert_string_equal(r.out, "");
    run_free(&r);
    /* an id the API refuses is an API error too */
    char longid[200];
    memset(longid, 'x', 150);
    longid[150] = '\0';
    r = run_ctl(NULL, (const char *[]){"--url", url, "show", longid, NULL});
    assert_int_equal(r.exit_code, 1);
    assert_contains(r.err, "invalid_id");
    run_free(&r);
}

static void test_health(void **state) {
    run_t r = run_ctl(url, (const char *[]){"health", NULL});
    assert_int_equal(r.exit_code, 0);
    assert_contains(r.out, "ok");
    run_free(&r);
    r = run_ctl(NULL, (const char *[]){"--url", url, "--json", "health", NULL});
    assert_int_equal(r.exit_code, 0);
    assert_contains(r.out, "{\"status\":\"ok\"}");
    run_free(&r);
}

static void test_health_unavailable(void **state) {
    fixture_db_t empty;
    assert_int_equal(fixture_db_create(&empty, 0), 0);
    char err[256], u[64];
    saga_admin_t *a = saga_admin_start("127.0.0.1", 0, empty.db_path, err, sizeof err);
    assert_non_null(a);
    snprintf(u, sizeof u, "http://127.0.0.1:%d/", saga_admin_port(a)); /* trailing '/' is fine */
    run_t r = run_ctl(u, (const char *[]){"health", NULL});
    assert_int_equal(r.exit_code, 1);
    assert_contains(r.out, "unavailable");
    assert_contains(r.out, "user_version 0");
    run_free(&r);
    saga_admin_stop(&a);
    fixture_db_destroy(&empty);
}

/* A port nothing listens on: bind, read the port, close. */
static int closed_port(void) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    if (s < 0 || bind(s, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        getsockname(s, (struct sockaddr *)&sa, &len) != 0)
        fail_msg("cannot find a free port");
    close(s);
    return ntohs(sa.sin_port);
}

static void test_cannot_connect(void **state) {
    char u[64];
    snprintf(u, sizeof u, "http://127.0.0.1:%d", closed_port());
    run_t r = run_ctl(NULL, (const char *[]){"--url", u, "show", "x", NULL});
    assert_int_equal(r.exit_code, 3);
    assert_contains(r.err, u);
    assert_contains(r.err, "cannot reach");
    run_free(&r);
    /* the environment variable is used, and --url wins over it */
    r = run_ctl(u, (const char *[]){"health", NULL});
    assert_int_equal(r.exit_code, 3);
    assert_contains(r.err, u);
    run_free(&r);
    r = run_ctl(u, (const char *[]){"--url", url, "health", NULL});
    assert_int_equal(r.exit_code, 0);
    run_free(&r);
}

static void test_usage_errors(void **state) {
    static const char *const cases[][4] = {
        {NULL},
        {"frobnicate", NULL},
        {"show", NULL},
        {"show", "a", "b", NULL},
        {"--url", "ftp://x", "health", NULL},
        {"--bogus", "health", NULL},
        {"health", "--url", NULL},
        {"--timeout", "abc", "health", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        run_t r = run_ctl(url, cases[i]);
        if (r.exit_code != 2) fail_msg("case %zu: exit %d, stderr: %s", i, r.exit_code, r.err);
        assert_true(strlen(r.err) > 0);
        run_free(&r);
    }
    run_t r = run_ctl(NULL, (const char *[]){"--help", NULL});
    assert_int_equal(r.exit_code, 0);
    assert_contains(r.out, "show ID");
    assert_contains(r.out, "health");
    assert_contains(r.out, "SAGA_ADMIN_URL");
    run_free(&r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_show_text),
        cmocka_unit_test(test_show_json),
        cmocka_unit_test(test_show_odd_id),
        cmocka_unit_test(test_show_not_found),
        cmocka_unit_test(test_health),
        cmocka_unit_test(test_health_unavailable),
        cmocka_unit_test(test_cannot_connect),
        cmocka_unit_test(test_usage_errors),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
