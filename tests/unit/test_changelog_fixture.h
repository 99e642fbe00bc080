/* Shared by the changelog codec's unit tests (test_changelog.c,
 * test_changelog_apply.c): sagas driven through the real engine (fake clock)
 * into every status on real SQLite files, encoded, applied to an empty shard,
 * and the stores compared. */
#ifndef TEST_CHANGELOG_FIXTURE_H
#define TEST_CHANGELOG_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "changelog.h"
#include "store.h"

#define NSAGAS 9

typedef struct {
    char dir[64], src_path[128], dst_path[128];
    saga_store_t *src, *dst;
    saga_store_t *plain; /* src's file without the history cache */
    saga_registry_t *reg;
    const saga_definition_t *def;
    uint64_t rng;
    int64_t now;
} fixture_t;

/* The ids build_sagas makes, one per status. */
extern const char *const g_ids[NSAGAS];

char *record_of(saga_store_t *st, const char *id);
void expect_cached_record(fixture_t *f, const char *id, bool was_live);
void apply(fixture_t *f, saga_t *s, const saga_event_t *ev);
void start(fixture_t *f, saga_t *s, const char *id);
void reply(fixture_t *f, saga_t *s, int step, saga_command_kind_t kind, saga_reply_status_t status);
void fire(fixture_t *f, saga_t *s, int slot);
void fail_compensation(fixture_t *f, saga_t *s);
void build_sagas(fixture_t *f);
int setup(void **state);
int teardown(void **state);
char *rows_of(const char *path, const char *sql);
void assert_tables_equal(fixture_t *f);
char *snapshot(fixture_t *f);
char *encode(fixture_t *f, saga_store_t *st, const char *id);
int apply_one(fixture_t *f, const char *key, const char *value, size_t len, int64_t offset, char *err,
                     size_t errlen);
void write_seed(const char *key, const char *value, size_t len);
void restore_all(fixture_t *f);
void assert_loads_equal(fixture_t *f, saga_registry_t *dst_reg);
char *mutate(const char *rec, const char *from, const char *to);

#endif
