/* Shared by the definition tests: fixture files under $SAGA_SOURCE_DIR and
 * parsing a definition from a string. */
#ifndef TEST_DEFINITION_FIXTURE_H
#define TEST_DEFINITION_FIXTURE_H

#include <stddef.h>

#include "definition.h"

/* $SAGA_SOURCE_DIR/rel (malloc'd). */
char *fixture_path(const char *rel);
/* The file's text (saga_free it); fails the test when it cannot be read. */
char *read_fixture(const char *rel, size_t *len);
/* saga_definition_parse of text, errs zeroed first. */
saga_definition_t *parse_str(const char *text, saga_def_errors_t *errs);
/* The group setup: jansson allocates through saga_alloc (for the
 * allocation-failure tests). */
int definition_setup(void **state);

#endif
