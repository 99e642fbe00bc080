/* For the store's own modules (changelog.c), not for other callers: the
 * SQLite connection behind a saga_store_t, and one slot where a module
 * keeps its prepared statements, released by saga_store_close. */
#ifndef SAGA_STORE_INTERNAL_H
#define SAGA_STORE_INTERNAL_H

#include <sqlite3.h>

#include "store.h"

sqlite3 *saga_store_db(saga_store_t *st);
/* The module state set with saga_store_set_ext, or NULL. */
void *saga_store_ext(saga_store_t *st);
/* Sets it once; ext_free(ext) runs at close, before the connection closes. */
void saga_store_set_ext(saga_store_t *st, void *ext, void (*ext_free)(void *ext));

#endif
