/* The admin HTTP server: libmicrohttpd glue around admin_route().
 *
 * One internal polling thread serves every connection, so requests are
 * handled one at a time; the mutex around the SQLite connection keeps that
 * true should the threading model change. MHD is given an identity
 * unescape callback: paths reach admin_route() raw and are decoded per
 * segment there, so "%2F" inside an id is not mistaken for a separator
 * The query string reaches admin_route() raw as well: MHD's URI log
 * callback sees the request target before MHD splits and '+'-decodes the
 * arguments, and keeps what follows '?' in the request state. */
#include "admin.h"

#include "admin_route.h"
#include "saga_alloc.h"
#include "saga_clock.h"
#include "saga_error.h"
#include "saga_log.h"

#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#define COMPONENT "admin"

/* "[::1]:8080" rather than "::1:8080" in messages. */
#define V6_OPEN(addr) (strchr(addr, ':') ? "[" : "")
#define V6_CLOSE(addr) (strchr(addr, ':') ? "]" : "")

static const char INTERNAL_BODY[] =
    "{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}";

struct saga_admin {
    struct MHD_Daemon *mhd;
    sqlite3 *db;
    admin_ctx_t ctx;
    pthread_mutex_t lock;
    int port;
    char last_mhd_error[256]; /* the reason MHD_start_daemon failed */
    size_t max_body;          /* request body limit (ADMIN_MAX_BODY unless set lower) */
};

/* Per-request state: the raw query and the request body, bounded by
 * ADMIN_MAX_BODY. Created by on_uri before the headers are parsed. */
typedef struct {
    char *buf;
    size_t len;
    int too_large;
    int started;  /* on_request has seen the headers */
    char *query;  /* raw, after '?'; NULL when the target has none */
    int no_query; /* the query could not be copied (out of memory) */
} request_state_t;

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c) {
    request_state_t *rs = saga_calloc(1, sizeof *rs);
    const char *q = uri ? strchr(uri, '?') : NULL;
    if (rs && q) {
        rs->query = saga_strdup(q + 1);
        rs->no_query = rs->query == NULL;
    }
    return rs;
}

static size_t unescape_identity(void *cls, struct MHD_Connection *c, char *s) {
    return strlen(s);
}

static void log_mhd(void *cls, const char *fmt, va_list ap) {
    saga_admin_t *a = cls;
    char msg[256];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) msg[--n] = '\0';
    if (a) snprintf(a->last_mhd_error, sizeof a->last_mhd_error, "%s", msg);
    LOG_WARN(COMPONENT, "microhttpd: %s", msg);
}

static enum MHD_Result send_response(struct MHD_Connection *c, admin_response_t *r) {
    struct MHD_Response *resp;
    unsigned status = r->status;
    if (r->body) {
        resp = MHD_create_response_from_buffer_with_free_callback(r->body_len, r->body, saga_free);
        if (!resp) saga_free(r->body);
        r->body = NULL; /* owned by resp now (or freed) */
    } else {
        status = MHD_HTTP_INTERNAL_SERVER_ERROR;
        resp = MHD_create_response_from_buffer(sizeof INTERNAL_BODY - 1, (void *)INTERNAL_BODY,
                                               MHD_RESPMEM_PERSISTENT);
    }
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->content_type ? r->content_type : "application/json");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (r->allow) MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
    enum MHD_Result ret = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
    saga_admin_t *a = cls;
    request_state_t *rs = *con_cls;
    if (!rs) return MHD_NO; /* on_uri ran out of memory */
    if (!rs->started) { /* headers received; the body (if any) comes next */
        rs->started = 1;
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (rs->too_large) return MHD_YES;
        size_t max_body = a->max_body ? a->max_body : ADMIN_MAX_BODY;
        if (n > max_body - rs->len) {
            rs->too_large = 1;
            saga_free(rs->buf);
            rs->buf = NULL;
            rs->len = 0;
            return MHD_YES;
        }
        char *grown = saga_realloc(rs->buf, rs->len + n + 1);
        if (!grown) return MHD_NO;
        memcpy(grown + rs->len, upload_data, n);
        rs->buf = grown;
        rs->len += n;
        rs->buf[rs->len] = '\0';
        return MHD_YES;
    }

    int64_t t0 = saga_monotonic_us();
    admin_response_t res;
    memset(&res, 0, sizeof res);
    if (rs->too_large) {
        admin_error(&res, ADMIN_ERR_TOO_LARGE, "request body larger than %zu bytes",
                    a->max_body ? a->max_body : (size_t)ADMIN_MAX_BODY);
    } else if (rs->no_query) {
        admin_error(&res, ADMIN_ERR_INTERNAL, "out of memory");
    } else {
        admin_request_t req = {.method = method, .path = url, .query = rs->query, .body = rs->buf, .body_len = rs->len,
                               .authorization = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                                            MHD_HTTP_HEADER_AUTHORIZATION)};
        pthread_mutex_lock(&a->lock);
        int rc = admin_route(&a->ctx, &req, &res);
        pthread_mutex_unlock(&a->lock);
        if (rc != 0) LOG_ERROR(COMPONENT, "%s %s: %s", method, url, saga_strerror(rc));
    }
    LOG_DEBUG(COMPONENT, "%s %s -> %u (%.3f ms)", method, url, res.body ? res.status : 500u,
              (double)(saga_monotonic_us() - t0) / 1000.0);
    return send_response(c, &res);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    request_state_t *rs = *con_cls;
    if (!rs) return;
    saga_free(rs->buf);
    saga_free(rs->query);
    saga_free(rs);
    *con_cls = NULL;
}

/* Opens db_path read-only and checks it is an SQLite database. */
static int open_db(const char *db_path, sqlite3 **out, char *err, size_t errlen) {
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_busy_timeout(db, 1000);
        sqlite3_stmt *st = NULL;
        rc = sqlite3_prepare_v2(db, "PRAGMA schema_version", -1, &st, NULL);
        if (rc == SQLITE_OK) rc = sqlite3_step(st) == SQLITE_ROW ? SQLITE_OK : sqlite3_errcode(db);
        sqlite3_finalize(st);
    }
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "admin: cannot open database '%s' read-only: %s", db_path,
                 db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db);
        return SAGA_ESTORE;
    }
    *out = db;
    return 0;
}

saga_admin_t *saga_admin_start(const char *addr, int port, const char *db_path, char *err,
                               size_t errlen) {
    char dummy[1];
    if (!err) { err = dummy; errlen = sizeof dummy; }
    if (!addr || !*addr || !db_path || port < 0 || port > 65535) {
        snprintf(err, errlen, "admin: invalid arguments (address '%s', port %d, database '%s')",
                 addr ? addr : "(null)", port, db_path ? db_path : "(null)");
        return NULL;
    }
    saga_admin_t *a = saga_calloc(1, sizeof *a);
    if (!a) {
        snprintf(err, errlen, "admin: out of memory");
        return NULL;
    }
    pthread_mutex_init(&a->lock, NULL);
    if (open_db(db_path, &a->db, err, errlen) != 0) {
        saga_admin_stop(&a);
        return NULL;
    }
    a->ctx.db = a->db;

    char portstr[8];
    snprintf(portstr, sizeof portstr, "%d", port);
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int gai = getaddrinfo(addr, portstr, &hints, &ai);
    if (gai != 0 || !ai) {
        snprintf(err, errlen, "admin: cannot resolve listen address '%s': %s", addr,
                 gai ? gai_strerror(gai) : "no address");
        if (ai) freeaddrinfo(ai);
        saga_admin_stop(&a);
        return NULL;
    }

    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    a->mhd = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_request, a,
                              MHD_OPTION_EXTERNAL_LOGGER, log_mhd, a, /* first, or MHD warns */
                              MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                              MHD_OPTION_UNESCAPE_CALLBACK, unescape_identity, NULL,
                              MHD_OPTION_URI_LOG_CALLBACK, on_uri, a,
                              MHD_OPTION_NOTIFY_COMPLETED, on_completed, a,
                              MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
                              MHD_OPTION_CONNECTION_LIMIT, (unsigned)64,
                              MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!a->mhd) {
        snprintf(err, errlen, "admin: cannot listen on %s%s%s:%d: %s", V6_OPEN(addr), addr,
                 V6_CLOSE(addr), port,
                 a->last_mhd_error[0] ? a->last_mhd_error : "microhttpd failed to start");
        saga_admin_stop(&a);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(a->mhd, MHD_DAEMON_INFO_BIND_PORT);
    a->port = info ? (int)info->port : port;
    LOG_INFO(COMPONENT, "admin API listening on %s%s%s:%d (database %s, read-only)", V6_OPEN(addr),
             addr, V6_CLOSE(addr), a->port, db_path);
    return a;
}

int saga_admin_port(const saga_admin_t *a) { return a ? a->port : -1; }

void saga_admin_set_runtime(saga_admin_t *a, int (*fn)(void *arg, json_t *into), void *arg) {
    pthread_mutex_lock(&a->lock);
    a->ctx.stats_runtime = fn;
    a->ctx.stats_runtime_arg = arg;
    pthread_mutex_unlock(&a->lock);
}

void saga_admin_set_max_body(saga_admin_t *a, size_t bytes) {
    if (bytes > 0 && bytes < ADMIN_MAX_BODY) a->max_body = bytes; /* set before requests are served */
}

void saga_admin_set_commands(saga_admin_t *a, saga_command_queue_t *commands, const char *token) {
    pthread_mutex_lock(&a->lock);
    a->ctx.commands = commands;
    a->ctx.token = token && *token ? token : NULL;
    pthread_mutex_unlock(&a->lock);
}

void saga_admin_stop(saga_admin_t **ap) {
    if (!ap || !*ap) return;
    saga_admin_t *a = *ap;
    if (a->mhd) MHD_stop_daemon(a->mhd);
    if (a->db) sqlite3_close(a->db);
    pthread_mutex_destroy(&a->lock);
    saga_free(a);
    *ap = NULL;
}
