/* The one allocation wrapper. Everything in the project allocates through
 * it (jansson too, see saga_alloc_install_jansson), so a test can make the
 * Nth allocation fail and check that the failure is handled. */
#ifndef SAGA_ALLOC_H
#define SAGA_ALLOC_H

#include <stddef.h>

void *saga_malloc(size_t n);
void *saga_calloc(size_t count, size_t n);
void *saga_realloc(void *p, size_t n);
char *saga_strdup(const char *s);            /* NULL in, NULL out */
char *saga_strndup(const char *s, size_t n);
void saga_free(void *p);

/* Tests only: the next `n` allocations succeed, the one after fails, and
 * all later ones succeed again. n < 0 disables injection. */
void saga_alloc_fail_after(long n);

/* Routes jansson's allocations through saga_malloc/saga_free. */
void saga_alloc_install_jansson(void);

#endif
