/* Shared by the admin and sagactl tests: a temporary sagad database with
 * the real schema and a few sagas, the same spread over shard files
 * (DIR/shard-NNN.db, a saga in shard saga_partition_of(id, P)), and a
 * small libcurl client. */
#ifndef TEST_ADMIN_FIXTURE_H
#define TEST_ADMIN_FIXTURE_H

#include <sqlite3.h>
#include <stddef.h>

typedef struct {
    char dir[256];
    char db_path[300];
    sqlite3 *writer; /* stays open, as sagad's would be */
} fixture_db_t;

/* Ids of the sample sagas. */
#define FX_SAGA_DONE "s-compensated-1"  /* compensated, error, deadline, 3 steps, 6 history rows */
#define FX_SAGA_RUNNING "s-running-2"   /* running, no error, no deadline, 1 step in flight */
#define FX_SAGA_ODD "tenant/a b\xC3\xA9" /* contains '/', ' ' and UTF-8 */
#define FX_T0 1700000000000LL            /* 2023-11-14T22:13:20.000Z */

/* Creates dir, the database (WAL, all migrations, user_version) and, when
 * populate, the sample rows. Returns 0 or -1 (message on stderr). */
int fixture_db_create(fixture_db_t *fx, int populate);
/* Runs SQL on the writer connection; 0 or -1. */
int fixture_db_exec(fixture_db_t *fx, const char *sql);
void fixture_db_destroy(fixture_db_t *fx);

/* The sample rows fixture_db_create inserts (sagas FX_SAGA_*). */
extern const char fixture_sample_rows[];

#define FX_MAX_SHARDS 8

/* sagad's data directory: count shard files, each with the real schema. */
typedef struct {
    char dir[256];
    int count;
    char path[FX_MAX_SHARDS][300];
    const char *paths[FX_MAX_SHARDS]; /* path[i], for saga_admin_start */
    sqlite3 *writer[FX_MAX_SHARDS];   /* stay open, as sagad's would be */
} fixture_shards_t;

/* Creates a temporary directory with shard-000.db ... (WAL, all
 * migrations, user_version); each writer gets an SQL function
 * saga_shard_of(id). No rows. 0 or -1 (message on stderr). */
int fixture_shards_create(fixture_shards_t *fs, int count);
/* Runs sql on every shard, then deletes from each shard the sagas, steps,
 * history and timers of the sagas that belong to another shard: rows
 * about sagas land in their shard, other rows (definitions) in all. 0 or -1. */
int fixture_shards_spread(fixture_shards_t *fs, const char *sql);
/* The writer of the shard saga id belongs to. */
sqlite3 *fixture_shard_of(fixture_shards_t *fs, const char *id);
void fixture_shards_destroy(fixture_shards_t *fs);

typedef struct {
    long status; /* 0 when the request failed */
    char *body;  /* NUL-terminated, malloc'd */
    size_t len;
    char allow[128]; /* the Allow header, if any */
    char content_type[128];
} fx_reply_t;

/* method NULL = GET. body may be NULL. Returns 0 or -1 (transport error). */
int fx_http(const char *method, const char *url, const char *body, size_t body_len, fx_reply_t *r);
void fx_reply_free(fx_reply_t *r);

#endif
