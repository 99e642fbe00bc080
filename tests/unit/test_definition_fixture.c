/* The definition tests' shared helpers (test_definition_fixture.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_definition_fixture.h"

#include "saga_alloc.h"
#include "saga_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *fixture_path(const char *rel) {
    const char *src = getenv("SAGA_SOURCE_DIR");
    assert_non_null(src);
    size_t n = strlen(src) + strlen(rel) + 2;
    char *p = malloc(n);
    assert_non_null(p);
    snprintf(p, n, "%s/%s", src, rel);
    return p;
}

char *read_fixture(const char *rel, size_t *len) {
    char *path = fixture_path(rel);
    char *text = saga_read_file(path, len);
    if (!text) fail_msg("cannot read %s", path);
    free(path);
    return text;
}

saga_definition_t *parse_str(const char *text, saga_def_errors_t *errs) {
    memset(errs, 0, sizeof *errs);
    return saga_definition_parse(text, strlen(text), errs);
}

int definition_setup(void **state) {
    (void)state;
    saga_alloc_install_jansson();
    return 0;
}
