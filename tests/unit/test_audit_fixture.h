/* Shared by the audit's unit tests (test_audit.c, test_audit_sources.c):
 * a sagad data directory of AUDIT_SHARDS shards (or one database file) with
 * the real schema (orchestrator/store/schema.h) and the order_fulfillment
 * definition, and the four workers' ledgers written by the real handlers
 * (participant library), holding the sagas listed in test_audit_fixture.c. */
#ifndef TEST_AUDIT_FIXTURE_H
#define TEST_AUDIT_FIXTURE_H

#include <jansson.h>
#include <sqlite3.h>

#include "participant.h"

#define AUDIT_SHARDS 3 /* sagad's data directory in most tests */

typedef struct {
    char dir[64];
    /* saga_db: sagad's data directory (shards > 1) or its one file */
    char saga_db[128], order_db[128], inventory_db[128], payment_db[128], notification_db[128];
    participant_t *order, *inventory, *payment, *notification;
    int shards;
    char shard_path[AUDIT_SHARDS][160];
    sqlite3 *sagad[AUDIT_SHARDS]; /* one writer per shard */
} fx_t;

/* cmocka setups, *state an fx_t with the ledgers closed and sagad's
 * writers open: a data directory of AUDIT_SHARDS shards (setup) or one
 * database file, the layout before shards (setup_file). teardown closes
 * the writers and removes the directory. */
int setup(void **state);
int setup_file(void **state);
int teardown(void **state);

/* Runs SQL on db; the test fails (naming the SQL) when it does. */
void must_exec(sqlite3 *db, const char *sql);

/* Changes one database behind the audit's back. */
void tamper(const char *path, const char *sql);

/* The writer of the shard saga id belongs to. */
sqlite3 *shard_of(fx_t *f, const char *id);

/* Runs one command through a worker's real handler; returns the reply's
 * output (new reference, NULL when the reply is not a success). */
json_t *send_cmd(participant_t *p, const char *saga, const char *step, const char *kind, const char *action,
                 json_t *payload);

/* A payment.charge payload: 700 cents from customer. */
json_t *charge(const char *customer);

#endif
