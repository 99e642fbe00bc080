/* Regression tests for what the fuzz targets (tests/fuzz, docs/FUZZING.md)
 * found in the definition loader and the template engine. Each test names
 * the finding; the input that found it is also in the seed corpus. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_filter.h"

#include "definition.h"
#include "template.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A string is UTF-8 exactly when jansson takes it as a JSON string. */
static void assert_utf8(const char *s) {
    json_t *j = json_string(s);
    if (!j) fail_msg("not UTF-8: %s", s);
    json_decref(j);
}

/* fuzz_template: a missing value with a long expression used to lose the
 * reason (": no such value" was cut off by the error buffer), and the cut
 * could split a UTF-8 character. The expression is now shortened, at a
 * character boundary, with "...". */
static void test_render_error_long_expression_keeps_reason(void **state) {
    (void)state;
    json_t *ctx = json_loads("{\"input\": {\"a\": 1}}", 0, NULL);
    assert_non_null(ctx);
    size_t sizes[] = {16, 40, 64, 255, 256, 257, 1024};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        for (int exact = 0; exact < 2; exact++) {
            char text[4096];
            int n = snprintf(text, sizeof text, "%s${input.", exact ? "" : "x ");
            for (size_t i = 0; i < sizes[k]; i++) n += snprintf(text + n, sizeof text - (size_t)n, "\xc3\xa9");
            snprintf(text + n, sizeof text - (size_t)n, "}");
            json_t *tmpl = json_string(text);
            assert_non_null(tmpl);
            char err[256] = "";
            assert_null(saga_template_render(tmpl, ctx, err, sizeof err));
            const char *tail = ": no such value";
            size_t len = strlen(err);
            if (len < strlen(tail) || strcmp(err + len - strlen(tail), tail) != 0)
                fail_msg("reason lost: %s", err);
            assert_int_equal(strncmp(err, "${input.\xc3\xa9", 10), 0);
            assert_utf8(err);
            if (2 * sizes[k] + 25 > sizeof err) assert_non_null(strstr(err, "...}"));
            else assert_null(strstr(err, "..."));
            json_decref(tmpl);
        }
    }
    /* unterminated, long */
    char text[1024] = "${input.";
    memset(text + 8, 'a', 600);
    text[608] = '\0';
    json_t *tmpl = json_string(text);
    char err[128];
    assert_null(saga_template_render(tmpl, ctx, err, sizeof err));
    assert_non_null(strstr(err, "...: unterminated '${'"));
    assert_int_equal(strlen(err), sizeof err - 1);
    assert_int_equal(saga_template_scan(tmpl, NULL, NULL, err, sizeof err) != 0, 1);
    assert_non_null(strstr(err, "...: unterminated '${'"));
    json_decref(tmpl);
    json_decref(ctx);
}

/* The loader quotes parts of the document cut to a fixed length; a cut
 * inside a UTF-8 character made a message that is not UTF-8 (sagactl
 * --json then failed with "out of memory", json_pack refusing it). The
 * broken bytes are now '?'. */
static void test_loader_messages_stay_utf8(void **state) {
    (void)state;
    char key[400], tmpl[400], dur[200], text[2048];
    size_t n = 0;
    key[n++] = 'k';
    while (n < 300) { key[n++] = '\xc3'; key[n++] = '\xa9'; }
    key[n] = '\0';
    n = (size_t)snprintf(tmpl, sizeof tmpl, "${inptu.a");
    while (n < 300) { tmpl[n++] = '\xc3'; tmpl[n++] = '\xa9'; }
    tmpl[n++] = '}';
    tmpl[n] = '\0';
    n = 0;
    dur[n++] = '1';
    while (n < 100) { dur[n++] = '\xc3'; dur[n++] = '\xa9'; }
    dur[n] = '\0';
    snprintf(text, sizeof text,
             "{\"name\": \"s\", \"version\": 1, \"timeout\": \"%s\", \"%s\": 1, \"steps\": [{\"name\": \"a\", "
             "\"topic\": \"t\", \"action\": \"x\", \"payload\": {\"%s\": \"%s\"}}]}",
             dur, key, key, tmpl);
    saga_def_errors_t errs;
    memset(&errs, 0, sizeof errs);
    assert_null(saga_definition_parse(text, strlen(text), &errs));
    assert_int_equal(errs.count, 3);
    for (int i = 0; i < errs.count; i++) {
        assert_utf8(errs.items[i].pointer);
        assert_utf8(errs.items[i].message);
    }
    /* the unknown key: quoted up to 120 bytes, which would end inside an
     * 'é': cut before it (issue 13.9), no '?' */
    assert_non_null(strstr(errs.items[0].message, "k\xc3\xa9"));
    assert_non_null(strstr(errs.items[0].message, "\xc3\xa9'"));
    assert_null(strchr(errs.items[0].message, '?'));
    assert_int_equal(strncmp(errs.items[1].message, "must be a duration like", 23), 0);
    assert_non_null(strstr(errs.items[2].message, "\xc3\xa9}: unknown root 'inptu'"));
    assert_null(strchr(errs.items[2].message, '?'));
    /* the pointer /steps/0/payload/KEY is cut at 255 bytes, inside an 'é' */
    assert_int_equal(strncmp(errs.items[2].pointer, "/steps/0/payload/k\xc3\xa9", 20), 0);
    assert_int_equal(strlen(errs.items[2].pointer), 255);
}

int main(int argc, char **argv) {
    saga_test_filter(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render_error_long_expression_keeps_reason),
        cmocka_unit_test(test_loader_messages_stay_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
