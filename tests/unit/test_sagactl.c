/* sagactl (the binary) against a real admin API over a temporary database. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_filter.h"

#include "admin.h"
#include "test_admin_fixture.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <dirent.h>
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

static fixture_shards_t fs; /* 3 shard files, the sample sagas spread by the hash */
#define SHARDS 3
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

#define MAX_ARGS 512

/* Runs sagactl with args (NULL-terminated) and SAGA_ADMIN_URL=env_url
 * (unset when NULL), stdin from stdin_path (NULL: /dev/null); captures
 * stdout and stderr. */
static run_t run_ctl_in(const char *env_url, const char *stdin_path, const char *const *args) {
    static char *argv[MAX_ARGS + 2];
    size_t n = 0;
    argv[n++] = (char *)SAGACTL_PATH;
    for (; args[n - 1]; n++) {
        if (n > MAX_ARGS) fail_msg("too many arguments for run_ctl");
        argv[n] = (char *)args[n - 1];
    }
    argv[n] = NULL;

    char env_buf[128];
    char *envp[3] = {(char *)"PATH=/usr/bin:/bin", NULL, NULL};
    if (env_url) {
        snprintf(env_buf, sizeof env_buf, "SAGA_ADMIN_URL=%s", env_url);
        envp[1] = env_buf;
    }
    char out_path[320], err_path[320];
    snprintf(out_path, sizeof out_path, "%s/ctl.out", fs.dir);
    snprintf(err_path, sizeof err_path, "%s/ctl.err", fs.dir);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, stdin_path ? stdin_path : "/dev/null", O_RDONLY, 0);
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

static run_t run_ctl(const char *env_url, const char *const *args) {
    return run_ctl_in(env_url, NULL, args);
}

static void run_free(run_t *r) {
    free(r->out);
    free(r->err);
}

static void assert_contains(const char *hay, const char *needle) {
    if (!strstr(hay, needle)) fail_msg("'%s' not found in:\n%s", needle, hay);
}

static int group_setup(void **state) {
    if (fixture_shards_create(&fs, SHARDS) != 0 || fixture_shards_spread(&fs, fixture_sample_rows) != 0) return -1;
    char err[256];
    admin = saga_admin_start("127.0.0.1", 0, fs.paths, SHARDS, err, sizeof err);
    if (!admin) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    snprintf(url, sizeof url, "http://127.0.0.1:%d", saga_admin_port(admin));
    return 0;
}

static int group_teardown(void **state) {
    saga_admin_stop(&admin);
    fixture_shards_destroy(&fs);
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
    char idx[8], name[32], status[32], bar[40], mark[8], err[32];
    int att, comp, dur;
    /* ... DURATION_MS, then the timeline |bar| with its marks, then the error */
    assert_int_equal(sscanf(line, "%7s %31s %31s %d %d %d |%39[ =>]| %7s %31s", idx, name, status, &att, &comp,
                            &dur, bar, mark, err), 9);
    assert_string_equal(status, "compensated");
    assert_int_equal(att, 1);
    assert_int_equal(comp, 1);
    assert_int_equal(dur, 40);
    assert_non_null(strchr(bar, '='));
    assert_string_equal(mark, "C");
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
    saga_admin_t *a = saga_admin_start("127.0.0.1", 0, (const char *const[]){empty.db_path}, 1, err, sizeof err);
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
        {"validate", NULL},
        {"--json", "validate", NULL},
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
    assert_contains(r.out, "validate FILE...");
    run_free(&r);
}

/* ---- validate (offline) ---- */

static const char *source_dir(void) {
    const char *src = getenv("SAGA_SOURCE_DIR");
    if (!src) fail_msg("SAGA_SOURCE_DIR is not set");
    return src;
}

/* Sorted paths of dir/NAME.json (dir relative to the source tree). Caller
 * frees each and the array, which is NULL-terminated. */
static char **json_files(const char *rel_dir, size_t *count) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/%s", source_dir(), rel_dir);
    DIR *d = opendir(dir);
    if (!d) fail_msg("cannot open %s", dir);
    char **paths = calloc(MAX_ARGS, sizeof *paths);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (e->d_name[0] == '.' || len <= 5 || strcmp(e->d_name + len - 5, ".json") != 0) continue;
        if (n + 1 >= MAX_ARGS) fail_msg("too many files in %s", dir);
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        paths[n++] = strdup(p);
    }
    closedir(d);
    for (size_t i = 1; i < n; i++) /* insertion sort: name order, as sagad loads them */
        for (size_t j = i; j > 0 && strcmp(paths[j - 1], paths[j]) > 0; j--) {
            char *t = paths[j];
            paths[j] = paths[j - 1];
            paths[j - 1] = t;
        }
    *count = n;
    return paths;
}

static void free_files(char **paths) {
    for (size_t i = 0; paths[i]; i++) free(paths[i]);
    free(paths);
}

/* Every example definition in sagas/ is valid, and validate needs no
 * admin API (SAGA_ADMIN_URL points at a closed port). */
static void test_validate_sagas(void **state) {
    size_t n = 0;
    char **files = json_files("sagas", &n);
    assert_true(n >= 2);
    const char *args[MAX_ARGS + 2] = {"validate"};
    for (size_t i = 0; i < n; i++) args[i + 1] = files[i];
    args[n + 1] = NULL;
    char closed[64];
    snprintf(closed, sizeof closed, "http://127.0.0.1:%d", 1);
    run_t r = run_ctl(closed, args);
    if (r.exit_code != 0) fail_msg("exit %d:\n%s%s", r.exit_code, r.out, r.err);
    assert_string_equal(r.err, "");
    for (size_t i = 0; i < n; i++) {
        char want[1100];
        snprintf(want, sizeof want, "%s: ok (", files[i]);
        assert_contains(r.out, want);
    }
    assert_contains(r.out, "sagas/order_fulfillment.json: ok (order_fulfillment v1, 4 steps)\n");
    assert_contains(r.out, "sagas/trip_booking.json: ok (trip_booking v2, 3 steps)\n");
    run_free(&r);
    free_files(files);
}

/* The whole invalid corpus in one run: stderr is every file's .expected
 * lines prefixed with FILE:, in argument order; nothing on stdout; exit 1. */
static void test_validate_invalid_corpus(void **state) {
    size_t n = 0;
    char **files = json_files("tests/fixtures/definitions/invalid", &n);
    assert_true(n >= 40);
    const char *args[MAX_ARGS + 2] = {"validate"};
    size_t cap = 1 << 16, len = 0;
    char *want = malloc(cap);
    want[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        args[i + 1] = files[i];
        char exp_path[1100];
        snprintf(exp_path, sizeof exp_path, "%.*s.expected", (int)(strlen(files[i]) - 5), files[i]);
        char *expected = slurp(exp_path);
        for (char *line = strtok(expected, "\n"); line; line = strtok(NULL, "\n")) {
            size_t need = strlen(files[i]) + strlen(line) + 3;
            while (len + need >= cap) want = realloc(want, cap *= 2);
            len += (size_t)sprintf(want + len, "%s:%s\n", files[i], line);
        }
        free(expected);
    }
    args[n + 1] = NULL;
    run_t r = run_ctl(url, args);
    assert_int_equal(r.exit_code, 1);
    assert_string_equal(r.out, "");
    assert_string_equal(r.err, want);
    run_free(&r);
    free(want);
    free_files(files);
}

/* Good and bad files together: one verdict per file, exit 1. */
static void test_validate_mixed(void **state) {
    char good[512], bad[512], syntax[512], missing[512], dir[512];
    snprintf(good, sizeof good, "%s/tests/fixtures/definitions/good/parallel.json", source_dir());
    snprintf(bad, sizeof bad, "%s/tests/fixtures/definitions/mixed/b_bad.json", source_dir());
    snprintf(syntax, sizeof syntax, "%s/tests/fixtures/definitions/mixed/c_syntax.json", source_dir());
    snprintf(missing, sizeof missing, "%s/no/such.json", source_dir());
    snprintf(dir, sizeof dir, "%s/sagas", source_dir());
    run_t r = run_ctl(url, (const char *[]){"validate", bad, good, syntax, missing, dir, NULL});
    assert_int_equal(r.exit_code, 1);
    char want[4096];
    snprintf(want, sizeof want, "%s: ok (travel.booking v2, 3 steps)\n", good);
    assert_string_equal(r.out, want);
    snprintf(want, sizeof want,
             "%s:/version: must be at least 1\n"
             "%s:/steps/0/retyr: unknown field 'retyr'\n"
             "%s:3:13: unexpected token near '}'\n"
             "%s: cannot read: No such file or directory\n"
             "%s: cannot read: Is a directory\n",
             bad, bad, syntax, missing, dir);
    assert_string_equal(r.err, want);
    run_free(&r);
    /* only good files: exit 0 */
    r = run_ctl(url, (const char *[]){"validate", good, NULL});
    assert_int_equal(r.exit_code, 0);
    run_free(&r);
}

/* The files are validated together, like a definitions directory: the same
 * name and version with other content conflicts; the same content twice
 * does not. */
static void test_validate_version_conflict(void **state) {
    char a[512], e[512], f[512];
    snprintf(a, sizeof a, "%s/tests/fixtures/definitions/mixed/a_good.json", source_dir());
    snprintf(e, sizeof e, "%s/tests/fixtures/definitions/mixed/e_conflict.json", source_dir());
    snprintf(f, sizeof f, "%s/tests/fixtures/definitions/mixed/f_same_again.json", source_dir());
    run_t r = run_ctl(url, (const char *[]){"validate", a, f, NULL});
    assert_int_equal(r.exit_code, 0);
    assert_string_equal(r.err, "");
    run_free(&r);
    r = run_ctl(url, (const char *[]){"validate", a, e, NULL});
    assert_int_equal(r.exit_code, 1);
    char want[1024];
    snprintf(want, sizeof want,
             "%s:/version: definition 'alpha' version 1 is already loaded with other content "
             "(give the changed definition a new version)\n", e);
    assert_string_equal(r.err, want);
    run_free(&r);
    /* alone, e_conflict.json is fine */
    r = run_ctl(url, (const char *[]){"validate", e, NULL});
    assert_int_equal(r.exit_code, 0);
    run_free(&r);
}

/* "-" reads the definition from stdin. */
static void test_validate_stdin(void **state) {
    char path[512];
    snprintf(path, sizeof path, "%s/sagas/trip_booking.json", source_dir());
    run_t r = run_ctl_in(url, path, (const char *[]){"validate", "-", NULL});
    assert_int_equal(r.exit_code, 0);
    assert_string_equal(r.out, "-: ok (trip_booking v2, 3 steps)\n");
    run_free(&r);
    snprintf(path, sizeof path, "%s/tests/fixtures/definitions/invalid/after_self.json", source_dir());
    r = run_ctl_in(url, path, (const char *[]){"validate", "--", "-", NULL});
    assert_int_equal(r.exit_code, 1);
    assert_string_equal(r.err, "-:/steps/1/after/0: a step cannot run after itself\n");
    run_free(&r);
}

/* --json: one document with a verdict per file. */
static void test_validate_json(void **state) {
    char good[512], bad[512], many[512];
    snprintf(good, sizeof good, "%s/sagas/order_fulfillment.json", source_dir());
    snprintf(bad, sizeof bad, "%s/tests/fixtures/definitions/invalid/syntax_trailing_comma.json", source_dir());
    snprintf(many, sizeof many, "%s/tests/fixtures/definitions/invalid/many_errors.json", source_dir());
    run_t r = run_ctl(url, (const char *[]){"--json", "validate", good, bad, many, NULL});
    assert_int_equal(r.exit_code, 1);
    assert_string_equal(r.err, "");
    json_error_t jerr;
    json_t *doc = json_loads(r.out, 0, &jerr);
    if (!doc) fail_msg("not JSON (%s): %s", jerr.text, r.out);
    assert_true(json_is_false(json_object_get(doc, "ok")));
    assert_int_equal(json_integer_value(json_object_get(doc, "files")), 3);
    assert_int_equal(json_integer_value(json_object_get(doc, "invalid")), 2);
    json_t *res = json_object_get(doc, "results");
    assert_int_equal(json_array_size(res), 3);
    json_t *v = json_array_get(res, 0);
    assert_true(json_is_true(json_object_get(v, "ok")));
    assert_string_equal(json_string_value(json_object_get(v, "name")), "order_fulfillment");
    assert_int_equal(json_integer_value(json_object_get(v, "version")), 1);
    assert_int_equal(json_integer_value(json_object_get(v, "steps")), 4);
    assert_int_equal(strlen(json_string_value(json_object_get(v, "hash"))), 64);
    v = json_array_get(res, 1);
    assert_true(json_is_false(json_object_get(v, "ok")));
    json_t *e = json_array_get(json_object_get(v, "errors"), 0);
    assert_int_equal(json_integer_value(json_object_get(e, "line")), 4);
    assert_int_equal(json_integer_value(json_object_get(e, "column")), 56);
    assert_string_equal(json_string_value(json_object_get(e, "message")), "unexpected token near ']'");
    v = json_array_get(res, 2);
    assert_int_equal(json_array_size(json_object_get(v, "errors")), 32);
    assert_int_equal(json_integer_value(json_object_get(v, "more_errors")), 8);
    e = json_array_get(json_object_get(v, "errors"), 31);
    assert_string_equal(json_string_value(json_object_get(e, "pointer")), "/steps/31/x31");
    json_decref(doc);
    run_free(&r);
}

int main(int argc, char **argv) {
    saga_test_filter(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_show_text),
        cmocka_unit_test(test_show_json),
        cmocka_unit_test(test_show_odd_id),
        cmocka_unit_test(test_show_not_found),
        cmocka_unit_test(test_health),
        cmocka_unit_test(test_health_unavailable),
        cmocka_unit_test(test_cannot_connect),
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_validate_sagas),
        cmocka_unit_test(test_validate_invalid_corpus),
        cmocka_unit_test(test_validate_mixed),
        cmocka_unit_test(test_validate_version_conflict),
        cmocka_unit_test(test_validate_stdin),
        cmocka_unit_test(test_validate_json),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
