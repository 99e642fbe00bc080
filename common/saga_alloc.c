/* The one allocation wrapper (saga_alloc.h): fail-the-Nth for tests, jansson routed through it. */
#include "saga_alloc.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static long fail_countdown = -1;

static int should_fail(void) {
    if (fail_countdown < 0) return 0;
    if (fail_countdown == 0) { fail_countdown = -1; return 1; }
    fail_countdown--;
    return 0;
}

void saga_alloc_fail_after(long n) { fail_countdown = n; }

void *saga_malloc(size_t n) { return should_fail() ? NULL : malloc(n ? n : 1); }

void *saga_calloc(size_t count, size_t n) {
    return should_fail() ? NULL : calloc(count ? count : 1, n ? n : 1);
}

void *saga_realloc(void *p, size_t n) { return should_fail() ? NULL : realloc(p, n ? n : 1); }

void saga_free(void *p) { free(p); }

char *saga_strndup(const char *s, size_t n) {
    if (!s) return NULL;
    size_t len = strnlen(s, n);
    char *d = saga_malloc(len + 1);
    if (!d) return NULL;
    memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

char *saga_strdup(const char *s) { return s ? saga_strndup(s, strlen(s)) : NULL; }

void saga_alloc_install_jansson(void) { json_set_alloc_funcs(saga_malloc, saga_free); }
