/* The admin server's guards over raw sockets, as a hostile page or client
 * would send them: Host (421), Origin (403), form and text/plain POSTs
 * (401 without the token, 415 with it), oversized request targets and
 * headers (414/431, JSON), HTTP/1.0 without Host; the loopback test of an
 * address; and sagad's admin token file (made 0600, kept, replaced when
 * unsafe). */
#define _GNU_SOURCE /* strcasestr */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_filter.h"

#include "admin.h"
#include "commands.h"
#include "saga_alloc.h"
#include "test_admin_fixture.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define TOKEN "t0ken-guard"

static fixture_db_t fx;
static saga_admin_t *admin;
static saga_command_queue_t *queue;
static int port;

static int group_setup(void **state) {
    if (fixture_db_create(&fx, 1) != 0) return -1;
    if (fixture_db_exec(&fx, "INSERT INTO definitions VALUES ('order_fulfillment', 1, 'h', '{}', 0)")) return -1;
    char err[256] = "";
    admin = saga_admin_start("127.0.0.1", 0, (const char *const[]){fx.db_path}, 1, err, sizeof err);
    if (!admin) {
        fprintf(stderr, "saga_admin_start: %s\n", err);
        return -1;
    }
    if (saga_admin_add_hosts(admin, " sagad.internal , Proxy-1.example", err, sizeof err)) return -1;
    queue = saga_command_queue_new(64);
    saga_admin_set_commands(admin, queue, TOKEN);
    port = saga_admin_port(admin);
    return 0;
}

static int group_teardown(void **state) {
    saga_admin_stop(&admin);
    saga_command_queue_free(&queue);
    fixture_db_destroy(&fx);
    return 0;
}

typedef struct {
    int status;
    char *head; /* status line and headers */
    json_t *doc; /* the body as JSON, NULL when it is not */
} raw_reply_t;

/* Sends `req` (a whole HTTP request) and reads the answer until the server
 * closes or Content-Length bytes of body arrived. */
static raw_reply_t raw(const char *req, size_t len) {
    raw_reply_t r = {0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    size_t sent = 0;
    while (sent < len) { /* the server may answer and close before reading it all */
        ssize_t k = send(fd, req + sent, len - sent, MSG_NOSIGNAL);
        if (k <= 0) break;
        sent += (size_t)k;
    }
    size_t cap = 65536, got = 0;
    char *buf = calloc(1, cap + 1);
    for (;;) {
        ssize_t k = recv(fd, buf + got, cap - got, 0);
        if (k <= 0) break;
        got += (size_t)k;
        buf[got] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        const char *cl = strcasestr(buf, "\r\nContent-Length:");
        if (end && cl && got >= (size_t)(end + 4 - buf) + strtoul(cl + 17, NULL, 10)) break;
    }
    close(fd);
    assert_true(got > 12);
    r.status = atoi(buf + 9);
    char *end = strstr(buf, "\r\n\r\n");
    assert_non_null(end);
    *end = '\0';
    r.head = strdup(buf);
    r.doc = json_loads(end + 4, 0, NULL);
    free(buf);
    return r;
}

static raw_reply_t raw_str(const char *req) { return raw(req, strlen(req)); }

static const char *code_of(const raw_reply_t *r) {
    return json_string_value(json_object_get(json_object_get(r->doc, "error"), "code"));
}

static void reply_free(raw_reply_t *r) {
    free(r->head);
    json_decref(r->doc);
}

static void drain(void) {
    saga_command_t c[64];
    int n = saga_command_take(queue, c, 64);
    for (int i = 0; i < n; i++) saga_command_clear(&c[i]);
}

/* DNS rebinding: the "Host: rebind.evil.example". */
static void test_rebinding_host_is_421(void **state) {
    raw_reply_t r = raw_str("GET /v1/sagas HTTP/1.1\r\nHost: rebind.evil.example\r\nConnection: close\r\n\r\n");
    assert_int_equal(r.status, 421);
    assert_non_null(r.doc);
    assert_string_equal(code_of(&r), "misdirected_request");
    reply_free(&r);
    char req[512];
    snprintf(req, sizeof req,
             "POST /v1/definitions/reload HTTP/1.1\r\nHost: rebind.evil.example:%d\r\nAuthorization: Bearer " TOKEN
             "\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}", port);
    r = raw_str(req);
    assert_int_equal(r.status, 421);
    reply_free(&r);
    assert_int_equal(saga_command_pending(queue), 0);
    /* the listen address, localhost (loopback) and the configured names */
    const char *good[] = {"127.0.0.1", "localhost", "sagad.internal", "proxy-1.example"};
    for (size_t i = 0; i < 4; i++) {
        snprintf(req, sizeof req, "GET /healthz HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n\r\n", good[i], port);
        r = raw_str(req);
        assert_int_equal(r.status, 200);
        reply_free(&r);
    }
    /* HTTP/1.0 without Host: no name, nothing to rebind */
    r = raw_str("GET /healthz HTTP/1.0\r\n\r\n");
    assert_int_equal(r.status, 200);
    reply_free(&r);
}

/* The forms: no token -> 401; even with the token a form or
 * text/plain body is 415; a foreign Origin is 403. Nothing is queued. */
static void test_forms_and_foreign_origins(void **state) {
    const char *types[] = {"application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=b"};
    const char *paths[] = {"/v1/sagas/" FX_SAGA_RUNNING "/abort", "/v1/sagas", "/v1/definitions/reload"};
    const char *body = "{\"definition\":\"order_fulfillment\"}";
    char req[1024];
    for (size_t p = 0; p < 3; p++)
        for (size_t t = 0; t < 3; t++) {
            snprintf(req, sizeof req,
                     "POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nOrigin: http://evil.example\r\nContent-Type: %s\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s", paths[p], port, types[t], strlen(body), body);
            raw_reply_t r = raw_str(req);
            assert_int_equal(r.status, 403);
            assert_string_equal(code_of(&r), "forbidden");
            reply_free(&r);
            snprintf(req, sizeof req,
                     "POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: %s\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s", paths[p], port, types[t], strlen(body), body);
            r = raw_str(req);
            assert_int_equal(r.status, 401);
            assert_string_equal(code_of(&r), "unauthorized");
            reply_free(&r);
            snprintf(req, sizeof req,
                     "POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAuthorization: Bearer " TOKEN "\r\nContent-Type: %s\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s", paths[p], port, types[t], strlen(body), body);
            r = raw_str(req);
            assert_int_equal(r.status, 415);
            assert_string_equal(code_of(&r), "unsupported_media_type");
            reply_free(&r);
        }
    assert_int_equal(saga_command_pending(queue), 0);
    /* the same request as sagactl sends it is taken */
    snprintf(req, sizeof req,
             "POST /v1/sagas HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAuthorization: Bearer " TOKEN
             "\r\nContent-Type: application/json\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
             port, strlen(body), body);
    raw_reply_t r = raw_str(req);
    assert_int_equal(r.status, 202);
    reply_free(&r);
    assert_int_equal(saga_command_pending(queue), 1);
    drain();
}

/* 414 and 431 are JSON like every other error. */
static void test_oversized_requests_answer_json(void **state) {
    /* just over the limit, and far over it (900 KB: still under the 1 MiB
     * where libmicrohttpd would answer by itself) */
    size_t sizes[] = {8200, 900 * 1000};
    raw_reply_t r;
    for (size_t i = 0; i < 2; i++) {
        size_t n = sizes[i];
        char *req = malloc(n + 256);
        int o = sprintf(req, "GET /v1/sagas/");
        memset(req + o, 'a', n);
        sprintf(req + o + n, " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        r = raw_str(req);
        free(req);
        assert_int_equal(r.status, 414);
        assert_non_null(r.doc);
        assert_string_equal(code_of(&r), "uri_too_long");
        assert_non_null(strcasestr(r.head, "Content-Type: application/json"));
        reply_free(&r);
    }
    int o;
    /* 20 headers of 2 KB: 40 KB, over the 32 KiB allowed */
    char *big = malloc(64 * 1024);
    o = sprintf(big, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for (int i = 0; i < 20; i++) {
        o += sprintf(big + o, "X-Big-%d: ", i);
        memset(big + o, 'b', 2000);
        o += 2000;
        o += sprintf(big + o, "\r\n");
    }
    o += sprintf(big + o, "Connection: close\r\n\r\n");
    r = raw(big, (size_t)o);
    assert_int_equal(r.status, 431);
    assert_non_null(r.doc);
    assert_string_equal(code_of(&r), "headers_too_large");
    reply_free(&r);
    free(big);
}

static void test_loopback_is_the_address(void **state) {
    assert_int_equal(saga_admin_addr_loopback("127.0.0.1"), 1);
    assert_int_equal(saga_admin_addr_loopback("127.1.2.3"), 1);
    assert_int_equal(saga_admin_addr_loopback("localhost"), 1);
    assert_int_equal(saga_admin_addr_loopback("0.0.0.0"), 0);
    assert_int_equal(saga_admin_addr_loopback("192.0.2.1"), 0);
    /* a name that starts like one is not one (and does not resolve here) */
    assert_true(saga_admin_addr_loopback("127.0.0.1.invalid") != 1);
    assert_true(saga_admin_addr_loopback("127.evil.invalid") != 1);
    assert_int_equal(saga_admin_loopback(admin), 1);
    int v6 = saga_admin_addr_loopback("::1");
    assert_true(v6 == 1 || v6 == -1); /* -1: no IPv6 here */
}

static void test_bad_host_names_refused(void **state) {
    char err[256] = "";
    assert_int_equal(saga_admin_add_hosts(admin, "ok.example,bad name", err, sizeof err), -1);
    assert_non_null(strstr(err, "bad name"));
    assert_int_equal(saga_admin_add_hosts(admin, "a,,b", err, sizeof err), -1);
}

static void test_token_file(void **state) {
    char path[400], err[512] = "";
    snprintf(path, sizeof path, "%s/admin.token", fx.dir);
    unlink(path);
    int created = -1;
    char *t1 = saga_admin_token_file(path, &created, err, sizeof err);
    assert_non_null(t1);
    assert_int_equal(created, 1);
    assert_int_equal(strlen(t1), 64);
    assert_int_equal(strspn(t1, "0123456789abcdef"), 64);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* a restart keeps it */
    char *t2 = saga_admin_token_file(path, &created, err, sizeof err);
    assert_int_equal(created, 0);
    assert_string_equal(t1, t2);
    saga_free(t2);
    /* readable by others: not trusted, replaced by a new one (0600) */
    assert_int_equal(chmod(path, 0644), 0);
    t2 = saga_admin_token_file(path, &created, err, sizeof err);
    assert_int_equal(created, 1);
    assert_string_not_equal(t1, t2);
    assert_non_null(strstr(err, "other users"));
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    saga_free(t2);
    /* garbage: replaced */
    FILE *f = fopen(path, "w");
    fputs("short\n", f);
    fclose(f);
    chmod(path, 0600);
    t2 = saga_admin_token_file(path, &created, err, sizeof err);
    assert_int_equal(created, 1);
    assert_int_equal(strlen(t2), 64);
    saga_free(t2);
    /* a directory it cannot write to: NULL with the reason */
    t2 = saga_admin_token_file("/nonexistent-dir/admin.token", &created, err, sizeof err);
    assert_null(t2);
    assert_non_null(strstr(err, "nonexistent-dir"));
    saga_free(t1);
    unlink(path);
}

int main(int argc, char **argv) {
    saga_test_filter(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rebinding_host_is_421),
        cmocka_unit_test(test_forms_and_foreign_origins),
        cmocka_unit_test(test_oversized_requests_answer_json),
        cmocka_unit_test(test_loopback_is_the_address),
        cmocka_unit_test(test_bad_host_names_refused),
        cmocka_unit_test(test_token_file),
    };
    return cmocka_run_group_tests_name("admin_guard", tests, group_setup, group_teardown);
}
