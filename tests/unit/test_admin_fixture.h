/* Shared by test_admin.c and test_sagactl.c: a temporary sagad database
 * with the real schema and a few sagas, and a small libcurl client. */
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
