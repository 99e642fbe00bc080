/* The invalid-definition corpus: tests/fixtures/definitions/invalid/NAME.json,
 * each with NAME.expected holding the exact problems the loader must
 * report, one per line, nothing more and nothing less. A line is what the
 * directory report (and `sagactl validate`) prints for the file, without
 * the leading "FILE:":
 *
 *   POINTER: message          (a validation problem; "" is the root)
 *   LINE:COLUMN: message      (a JSON syntax error)
 *    N more errors not shown  (after the 32 kept problems)
 *
 * Fixtures come from $SAGA_SOURCE_DIR. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_filter.h"

#include "definition.h"
#include "saga_alloc.h"
#include "saga_util.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INVALID_DIR "tests/fixtures/definitions/invalid"
#define MIN_FIXTURES 40

/* ---- helpers ---- */

typedef struct {
    char *data;
    size_t len, cap;
} sbuf_t;

static void sb_printf(sbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf_t *b, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->data ? b->data + b->len : NULL, b->data ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        assert_true(n >= 0);
        if (b->data && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + (size_t)n + 1) cap *= 2;
        b->data = realloc(b->data, cap);
        assert_non_null(b->data);
        if (!b->cap) b->data[0] = '\0';
        b->cap = cap;
    }
}

static char *dir_path(void) {
    const char *src = getenv("SAGA_SOURCE_DIR");
    assert_non_null(src);
    size_t n = strlen(src) + sizeof "/" INVALID_DIR;
    char *p = malloc(n);
    assert_non_null(p);
    snprintf(p, n, "%s/%s", src, INVALID_DIR);
    return p;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Sorted names in dir ending in suffix, without the suffix; NULL-terminated. */
static char **list_names(const char *dir, const char *suffix, size_t *count) {
    DIR *d = opendir(dir);
    if (!d) fail_msg("cannot open %s", dir);
    size_t n = 0, cap = 64, slen = strlen(suffix);
    char **names = malloc(cap * sizeof *names);
    assert_non_null(names);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (e->d_name[0] == '.' || len <= slen || strcmp(e->d_name + len - slen, suffix) != 0) continue;
        if (n + 1 >= cap) {
            names = realloc(names, (cap *= 2) * sizeof *names);
            assert_non_null(names);
        }
        names[n] = strndup(e->d_name, len - slen);
        assert_non_null(names[n]);
        n++;
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str);
    names[n] = NULL;
    *count = n;
    return names;
}

static void free_names(char **names) {
    for (char **p = names; *p; p++) free(*p);
    free(names);
}

static char *read_or_fail(const char *dir, const char *name, const char *ext, size_t *len) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s%s", dir, name, ext);
    char *text = saga_read_file(path, len);
    if (!text) fail_msg("cannot read %s", path);
    return text;
}

/* The loader's problems for text, in the .expected format. */
static char *loader_report(const char *text, size_t len) {
    saga_def_errors_t errs;
    memset(&errs, 0, sizeof errs);
    saga_definition_t *def = saga_definition_parse(text, len, &errs);
    sbuf_t b = {0};
    sb_printf(&b, "%s", "");
    if (def) {
        sb_printf(&b, "(accepted: %s v%d)\n", def->name, def->version);
        saga_definition_free(&def);
        return b.data;
    }
    int kept = errs.count < 32 ? errs.count : 32;
    for (int i = 0; i < kept; i++) {
        const saga_def_error_t *e = &errs.items[i];
        if (e->line > 0) sb_printf(&b, "%d:%d: %s\n", e->line, e->column, e->message);
        else sb_printf(&b, "%s: %s\n", e->pointer, e->message);
    }
    if (errs.count > kept) sb_printf(&b, " %d more errors not shown\n", errs.count - kept);
    if (errs.count == 0) sb_printf(&b, "(rejected without a problem)\n");
    return b.data;
}

/* ---- tests ---- */

/* Every fixture: the loader's full problem list equals NAME.expected. All
 * mismatches are printed before the test fails. */
static void test_invalid_fixtures_match_expected(void **state) {
    (void)state;
    char *dir = dir_path();
    size_t count = 0;
    char **names = list_names(dir, ".json", &count);
    int mismatches = 0;
    for (size_t i = 0; i < count; i++) {
        size_t len = 0, elen = 0;
        char *text = read_or_fail(dir, names[i], ".json", &len);
        char *expected = read_or_fail(dir, names[i], ".expected", &elen);
        char *got = loader_report(text, len);
        if (strcmp(got, expected) != 0) {
            fprintf(stderr, "%s/%s.json:\n--- expected\n%s--- got\n%s\n", INVALID_DIR, names[i], expected, got);
            mismatches++;
        }
        free(got);
        saga_free(expected);
        saga_free(text);
    }
    fprintf(stderr, "%zu invalid fixtures, %d mismatches\n", count, mismatches);
    free_names(names);
    free(dir);
    assert_int_equal(mismatches, 0);
    assert_true(count >= MIN_FIXTURES);
}

/* The pairing is complete: every .json has a non-empty .expected and every
 * .expected has its .json (a renamed fixture cannot leave a stale or a
 * silently unchecked file behind). */
static void test_invalid_fixtures_paired(void **state) {
    (void)state;
    char *dir = dir_path();
    size_t nj = 0, ne = 0;
    char **json = list_names(dir, ".json", &nj);
    char **expected = list_names(dir, ".expected", &ne);
    for (size_t i = 0; i < nj || i < ne; i++) {
        if (i >= nj || i >= ne || strcmp(json[i], expected[i]) != 0)
            fail_msg("unpaired fixture near '%s' / '%s'", i < nj ? json[i] : "(none)",
                     i < ne ? expected[i] : "(none)");
        size_t len = 0;
        char *text = read_or_fail(dir, expected[i], ".expected", &len);
        if (len == 0 || text[len - 1] != '\n') fail_msg("%s.expected: empty or no final newline", expected[i]);
        saga_free(text);
    }
    free_names(json);
    free_names(expected);
    free(dir);
}

/* The directory loader over the corpus: every file fails, nothing is
 * loaded, and its report is the .expected lines prefixed with FILE:, in
 * name order. */
static void test_invalid_dir_report(void **state) {
    (void)state;
    char *dir = dir_path();
    size_t count = 0;
    char **names = list_names(dir, ".json", &count);
    sbuf_t want = {0};
    sb_printf(&want, "%s", "");
    for (size_t i = 0; i < count; i++) {
        size_t elen = 0;
        char *expected = read_or_fail(dir, names[i], ".expected", &elen);
        for (char *line = strtok(expected, "\n"); line; line = strtok(NULL, "\n"))
            sb_printf(&want, "%s/%s.json:%s\n", dir, names[i], line);
        saga_free(expected);
    }
    size_t report_len = 1 << 20;
    char *report = malloc(report_len);
    assert_non_null(report);
    saga_registry_t *reg = saga_registry_new();
    assert_int_equal(saga_registry_load_dir(reg, dir, report, report_len), (int)count);
    assert_int_equal(saga_registry_count(reg), 0);
    assert_string_equal(report, want.data);
    saga_registry_free(&reg);
    free(report);
    free(want.data);
    free_names(names);
    free(dir);
}

int main(int argc, char **argv) {
    saga_test_filter(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_invalid_fixtures_match_expected),
        cmocka_unit_test(test_invalid_fixtures_paired),
        cmocka_unit_test(test_invalid_dir_report),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
