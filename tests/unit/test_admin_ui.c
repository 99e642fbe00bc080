/* GET /ui (and /ui/): the web view, docs/ui/index.html compiled into the
 * admin library, served as HTML through admin_route and over HTTP. The page
 * itself is exercised in headless Chromium by tests/ui/test_ui.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_filter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "admin_route.h"
#include "saga_alloc.h"
#include "test_admin_fixture.h"

#define UI_TITLE "<title>sagad \xC2\xB7 sagas</title>"
#define UI_TYPE "text/html; charset=utf-8"

static unsigned get(const char *method, const char *path, const char *query, admin_response_t *res) {
    admin_ctx_t ctx = {0}; /* the page needs no database */
    admin_request_t req = {.method = method, .path = path, .query = query};
    assert_int_equal(admin_route(&ctx, &req, res), 0);
    assert_non_null(res->body);
    return res->status;
}

static void test_ui_is_html_with_the_title(void **state) {
    (void)state;
    const char *paths[] = {"/ui", "/ui/"};
    for (size_t i = 0; i < 2; i++) {
        admin_response_t res;
        assert_int_equal(get("GET", paths[i], NULL, &res), 200);
        assert_non_null(res.content_type);
        assert_string_equal(res.content_type, UI_TYPE);
        assert_int_equal(strlen(res.body), res.body_len); /* text, NUL-terminated */
        assert_true(strncmp(res.body, "<!DOCTYPE html>", 15) == 0);
        assert_non_null(strstr(res.body, UI_TITLE));
        assert_non_null(strstr(res.body, "</html>"));
        saga_free(res.body);
    }
}

/* One file, nothing from outside: no external script, style, font or image. */
static void test_ui_is_self_contained(void **state) {
    (void)state;
    admin_response_t res;
    assert_int_equal(get("GET", "/ui", NULL, &res), 200);
    assert_null(strstr(res.body, "http://"));
    assert_null(strstr(res.body, "https://"));
    assert_null(strstr(res.body, "<script src"));
    assert_null(strstr(res.body, "<link"));
    assert_null(strstr(res.body, "@import"));
    assert_non_null(strstr(res.body, "Content-Security-Policy"));
    /* It reads the API it documents. */
    assert_non_null(strstr(res.body, "/v1/sagas"));
    assert_non_null(strstr(res.body, "/v1/stats"));
    saga_free(res.body);
}

static void test_ui_query_head_and_methods(void **state) {
    (void)state;
    admin_response_t res;
    /* The page reads its own query (?saga=ID); the server ignores it. */
    assert_int_equal(get("GET", "/ui", "saga=s-1&anything=else", &res), 200);
    assert_string_equal(res.content_type, UI_TYPE);
    saga_free(res.body);
    assert_int_equal(get("HEAD", "/ui/", NULL, &res), 200);
    saga_free(res.body);
    assert_int_equal(get("POST", "/ui", NULL, &res), 405);
    assert_string_equal(res.allow, "GET, HEAD");
    assert_null(res.content_type); /* errors stay JSON */
    saga_free(res.body);
    assert_int_equal(get("GET", "/ui/index.html", NULL, &res), 404);
    saga_free(res.body);
    assert_int_equal(get("GET", "/uix", NULL, &res), 404);
    saga_free(res.body);
}

static void test_ui_over_http(void **state) {
    (void)state;
    fixture_db_t fx;
    assert_int_equal(fixture_db_create(&fx, 0), 0);
    char err[256], url[128];
    saga_admin_t *a = saga_admin_start("127.0.0.1", 0, (const char *const[]){fx.db_path}, 1, err, sizeof err);
    assert_non_null(a);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/ui/", saga_admin_port(a));
    fx_reply_t r;
    assert_int_equal(fx_http(NULL, url, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.content_type, UI_TYPE);
    assert_non_null(strstr(r.body, UI_TITLE));
    fx_reply_free(&r);
    saga_admin_stop(&a);
    fixture_db_destroy(&fx);
}

int main(int argc, char **argv) {
    saga_test_filter(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ui_is_html_with_the_title),
        cmocka_unit_test(test_ui_is_self_contained),
        cmocka_unit_test(test_ui_query_head_and_methods),
        cmocka_unit_test(test_ui_over_http),
    };
    return cmocka_run_group_tests_name("admin_ui", tests, NULL, NULL);
}
