/* The admin HTTP server: libmicrohttpd glue around admin_route().
 *
 * One internal polling thread serves every connection, so requests are
 * handled one at a time; the mutex around the SQLite connections (one per
 * shard, admin_shard.c) keeps that true should the threading model change. MHD is given an identity
 * unescape callback: paths reach admin_route() raw and are decoded per
 * segment there, so "%2F" inside an id is not mistaken for a separator
 * The query string reaches admin_route() raw as well: MHD's URI log
 * callback sees the request target before MHD splits and '+'-decodes the
 * arguments, and keeps what follows '?' in the request state.
 *
 * Oversized requests are answered here, in JSON like every other error:
 * a request target over ADMIN_MAX_URI bytes 414, a header section over
 * ADMIN_MAX_HEADERS 431. MHD's own (HTML) 414/431 only come past
 * MEMORY_LIMIT, which is far above both. */
#include "admin.h"

#include "admin_gather.h"
#include "admin_route.h"
#include "saga_alloc.h"
#include "saga_clock.h"
#include "saga_error.h"
#include "saga_log.h"
#include "saga_shard_files.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <curl/curl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#define COMPONENT "admin"

/* "[::1]:8080" rather than "::1:8080" in messages. */
#define V6_OPEN(addr) (strchr(addr, ':') ? "[" : "")
#define V6_CLOSE(addr) (strchr(addr, ':') ? "]" : "")

#define ADMIN_MAX_URI 8192
#define ADMIN_MAX_HEADERS (32 * 1024)
#define MEMORY_LIMIT (1024 * 1024) /* per connection (mmap, touched as used); MHD default 32 KiB */
#define MAX_HOSTS 32
#define ADMIN_THREADS 4

static const char INTERNAL_BODY[] =
    "{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}";

struct saga_admin {
    struct MHD_Daemon *mhd;
    admin_shard_t *shards; /* ctx.shards: one per partition, in partition order */
    int shard_count;
    admin_ctx_t ctx;
    pthread_mutex_t lock;
    int port;
    int loopback; /* bound to a loopback address */
    char *hosts[MAX_HOSTS + 1]; /* accepted Host names, NULL-terminated (ctx.hosts) */
    size_t host_count;
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
    size_t uri_len; /* of the whole request target */
} request_state_t;

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c) {
    request_state_t *rs = saga_calloc(1, sizeof *rs);
    const char *q = uri ? strchr(uri, '?') : NULL;
    if (rs) rs->uri_len = uri ? strlen(uri) : 0;
    if (rs && q && rs->uri_len <= ADMIN_MAX_URI) {
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
    if (r->location[0]) MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, r->location);
    enum MHD_Result ret = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result count_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
    size_t *n = cls;
    *n += strlen(key) + (value ? strlen(value) : 0) + 4; /* ": " and CRLF */
    return MHD_YES;
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
        admin_response_t early;
        memset(&early, 0, sizeof early);
        size_t hbytes = 0;
        MHD_get_connection_values(c, MHD_HEADER_KIND, count_header, &hbytes);
        if (rs->uri_len > ADMIN_MAX_URI)
            admin_error(&early, ADMIN_ERR_URI_TOO_LONG, "request target is %zu bytes long; at most %d are allowed",
                        rs->uri_len, ADMIN_MAX_URI);
        else if (hbytes > ADMIN_MAX_HEADERS)
            admin_error(&early, ADMIN_ERR_HEADERS_TOO_LARGE, "request headers are %zu bytes; at most %d are allowed",
                        hbytes, ADMIN_MAX_HEADERS);
        else
            return MHD_YES;
        return send_response(c, &early); /* before the body: MHD closes the connection after it */
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
        admin_request_t req = {
            .method = method, .path = url, .query = rs->query, .body = rs->buf, .body_len = rs->len,
            .authorization = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION),
            .host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST),
            .origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin"),
            .content_type = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE),
            .proxy = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Sagad-Proxy")};
        /* Other owners' part of a cluster-wide list or stats, fetched
         * before the lock is taken: an owner asked at the same time by
         * another instance can then answer it (the pool's other threads). */
        int oom = 0;
        admin_gather_t *g = admin_gather_fetch(&a->ctx, &req, &oom);
        pthread_mutex_lock(&a->lock);
        int rc = oom ? SAGA_ENOMEM : admin_route(&a->ctx, &req, &res);
        pthread_mutex_unlock(&a->lock);
        if (rc == 0) rc = admin_gather_finish(g, &res);
        else admin_gather_finish(g, &(admin_response_t){0});
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

/* Adds a lower-cased copy of name to the accepted Host names ("[...]"
 * around an IPv6 address); duplicates are skipped. 0, -1 (full or ENOMEM). */
static int add_host(saga_admin_t *a, const char *name, size_t len) {
    int v6 = memchr(name, ':', len) != NULL && name[0] != '[';
    char *h = saga_malloc(len + 3);
    if (!h) return -1;
    size_t o = 0;
    if (v6) h[o++] = '[';
    for (size_t i = 0; i < len; i++) h[o++] = (char)tolower((unsigned char)name[i]);
    if (v6) h[o++] = ']';
    h[o] = '\0';
    for (size_t i = 0; i < a->host_count; i++)
        if (strcmp(a->hosts[i], h) == 0) {
            saga_free(h);
            return 0;
        }
    if (a->host_count == MAX_HOSTS) {
        saga_free(h);
        return -1;
    }
    a->hosts[a->host_count++] = h;
    a->hosts[a->host_count] = NULL;
    return 0;
}

/* The Host names a request may use: the listen address as given and as a
 * number, "localhost" on a loopback or wildcard address, any IP literal on
 * a wildcard address. */
/* Classifies a socket address: *loopback (127.0.0.0/8, ::1, ::ffff:127.x),
 * *wildcard (0.0.0.0, ::), its number in num. */
static void classify(const struct sockaddr *sa, int *loopback, int *wildcard, char *num, size_t numlen) {
    *loopback = *wildcard = 0;
    num[0] = '\0';
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        uint32_t ip = ntohl(in->sin_addr.s_addr);
        *loopback = (ip >> 24) == 127;
        *wildcard = ip == 0;
        inet_ntop(AF_INET, &in->sin_addr, num, (socklen_t)numlen);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        const unsigned char *b = in6->sin6_addr.s6_addr;
        *loopback = IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr) || (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && b[12] == 127);
        *wildcard = IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr);
        inet_ntop(AF_INET6, &in6->sin6_addr, num, (socklen_t)numlen);
    }
}

/* addr resolved the way saga_admin_start does (the first address). */
static int resolve(const char *addr, int port, struct addrinfo **ai) {
    char portstr[8];
    snprintf(portstr, sizeof portstr, "%d", port);
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    *ai = NULL;
    int gai = getaddrinfo(addr, portstr, &hints, ai);
    if (gai == 0 && !*ai) gai = EAI_NONAME;
    return gai;
}

int saga_admin_addr_loopback(const char *addr) {
    struct addrinfo *ai = NULL;
    if (!addr || !*addr || resolve(addr, 0, &ai) != 0) return -1;
    int loopback, wildcard;
    char num[INET6_ADDRSTRLEN];
    classify(ai->ai_addr, &loopback, &wildcard, num, sizeof num);
    freeaddrinfo(ai);
    return loopback;
}

static int default_hosts(saga_admin_t *a, const char *addr, const struct sockaddr *sa) {
    char num[INET6_ADDRSTRLEN];
    int wildcard;
    classify(sa, &a->loopback, &wildcard, num, sizeof num);
    a->ctx.any_ip_host = wildcard;
    if (add_host(a, addr, strlen(addr)) || (num[0] && add_host(a, num, strlen(num))) ||
        ((a->loopback || wildcard) && add_host(a, "localhost", 9)))
        return -1;
    a->ctx.hosts = (const char *const *)a->hosts;
    return 0;
}

int saga_admin_add_hosts(saga_admin_t *a, const char *names, char *err, size_t errlen) {
    int rc = 0;
    pthread_mutex_lock(&a->lock);
    for (const char *s = names; s && *s && rc == 0;) {
        size_t n = strcspn(s, ",");
        const char *b = s, *e = s + n;
        while (b < e && isspace((unsigned char)*b)) b++;
        while (e > b && isspace((unsigned char)e[-1])) e--;
        int ok = e > b;
        for (const char *p = b; p < e && ok; p++)
            ok = isalnum((unsigned char)*p) || *p == '.' || *p == '-' || *p == '_' || *p == ':' || *p == '[' ||
                 *p == ']';
        if (!ok) {
            snprintf(err, errlen, "admin: '%.*s' is not a host name (a comma-separated list of names)", (int)n, s);
            rc = -1;
        } else if (add_host(a, b, (size_t)(e - b))) {
            snprintf(err, errlen, "admin: more than %d host names", MAX_HOSTS);
            rc = -1;
        }
        s += n;
        if (*s == ',') s++;
    }
    pthread_mutex_unlock(&a->lock);
    return rc;
}

int saga_admin_loopback(const saga_admin_t *a) { return a ? a->loopback : 0; }

/* A data directory's shards (start_dir), or several files: one missing or
 * unreadable is opened on first use. One database file given alone must open. */
static saga_admin_t *admin_start(const char *addr, int port, const char *const *paths, int count, bool tolerant,
                                 char *err, size_t errlen);

saga_admin_t *saga_admin_start(const char *addr, int port, const char *const *paths, int count, char *err,
                               size_t errlen) {
    return admin_start(addr, port, paths, count, count > 1, err, errlen);
}

static saga_admin_t *admin_start(const char *addr, int port, const char *const *paths, int count, bool tolerant,
                                 char *err, size_t errlen) {
    char dummy[1];
    if (!err) { err = dummy; errlen = sizeof dummy; }
    int paths_ok = paths && count > 0;
    for (int i = 0; paths_ok && i < count; i++) paths_ok = paths[i] && *paths[i];
    if (!addr || !*addr || !paths_ok || port < 0 || port > 65535) {
        snprintf(err, errlen, "admin: invalid arguments (address '%s', port %d, %d shard path(s)%s)",
                 addr ? addr : "(null)", port, count, paths && count > 0 && !paths_ok ? ", one empty" : "");
        return NULL;
    }
    saga_admin_t *a = saga_calloc(1, sizeof *a);
    if (a) a->shards = saga_calloc((size_t)count, sizeof *a->shards);
    if (!a || !a->shards) {
        saga_free(a);
        snprintf(err, errlen, "admin: out of memory");
        return NULL;
    }
    pthread_mutex_init(&a->lock, NULL);
    curl_global_init(CURL_GLOBAL_DEFAULT); /* the peers of admin_gather.c; paired in saga_admin_stop */
    a->shard_count = count;
    for (int i = 0; i < count; i++) {
        char why[700];
        int orc = admin_shard_open(&a->shards[i], paths[i], why, sizeof why);
        /* Shards are restored when the group assigns them, after this: one
         * missing or unreadable now is opened again on first use
         * (admin_shard_check) and answers 503 until then. */
        if (orc != 0 && tolerant && a->shards[i].path) {
            LOG_DEBUG(COMPONENT, "shard %d: %s (opened on first use)", i, why);
            continue;
        }
        if (orc != 0) {
            if (count == 1) snprintf(err, errlen, "admin: database %s", why);
            else snprintf(err, errlen, "admin: shard %d of %d: %s", i, count, why);
            saga_admin_stop(&a);
            return NULL;
        }
    }
    a->ctx.shards = a->shards;
    a->ctx.shard_count = count;
    a->ctx.lock = &a->lock; /* the bulk commands let go of it while they wait (admin_bulk.c) */

    struct addrinfo *ai = NULL;
    int gai = resolve(addr, port, &ai);
    if (gai != 0) {
        snprintf(err, errlen, "admin: cannot resolve listen address '%s': %s", addr,
                 gai ? gai_strerror(gai) : "no address");
        if (ai) freeaddrinfo(ai);
        saga_admin_stop(&a);
        return NULL;
    }

    if (default_hosts(a, addr, ai->ai_addr)) {
        snprintf(err, errlen, "admin: out of memory");
        freeaddrinfo(ai);
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
                              MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)MEMORY_LIMIT,
                              /* requests still run one at a time (a->lock); the
                               * pool lets one wait for another instance's answer
                               * (admin_gather.c) while others are served */
                              MHD_OPTION_THREAD_POOL_SIZE, (unsigned)ADMIN_THREADS,
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
    if (count == 1)
        LOG_INFO(COMPONENT, "admin API listening on %s%s%s:%d (database %s, read-only)", V6_OPEN(addr), addr,
                 V6_CLOSE(addr), a->port, paths[0]);
    else
        LOG_INFO(COMPONENT, "admin API listening on %s%s%s:%d (%d shards, %s ... %s, read-only)", V6_OPEN(addr),
                 addr, V6_CLOSE(addr), a->port, count, paths[0], paths[count - 1]);
    return a;
}

saga_admin_t *saga_admin_start_dir(const char *addr, int port, const char *dir, int partitions, char *err,
                                   size_t errlen) {
    char dummy[1];
    if (!err) { err = dummy; errlen = sizeof dummy; }
    if (!dir || partitions < 1 || partitions > SAGA_SHARD_MAX) {
        snprintf(err, errlen, "admin: invalid arguments (data directory '%s', %d partitions; 1 to %d)",
                 dir ? dir : "(null)", partitions, SAGA_SHARD_MAX);
        return NULL;
    }
    char **paths = saga_calloc((size_t)partitions, sizeof *paths);
    int ok = paths != NULL;
    for (int p = 0; ok && p < partitions; p++) {
        char buf[4096];
        ok = saga_shard_file(dir, p, buf, sizeof buf) >= 0 && (paths[p] = saga_strdup(buf)) != NULL;
    }
    saga_admin_t *a = NULL;
    if (ok) a = admin_start(addr, port, (const char *const *)paths, partitions, true, err, errlen);
    else snprintf(err, errlen, "admin: out of memory (or the data directory's path is too long)");
    saga_shard_files_free(paths, partitions);
    return a;
}

int saga_admin_port(const saga_admin_t *a) { return a ? a->port : -1; }

void saga_admin_set_runtime(saga_admin_t *a, int (*fn)(void *arg, json_t *into), void *arg) {
    pthread_mutex_lock(&a->lock);
    a->ctx.stats_runtime = fn;
    a->ctx.stats_runtime_arg = arg;
    pthread_mutex_unlock(&a->lock);
}

void saga_admin_set_owned(saga_admin_t *a, const unsigned char *owned,
                          int (*owner_of)(void *arg, int shard, char *url, size_t len), void *owner_arg) {
    pthread_mutex_lock(&a->lock);
    a->ctx.owned = owned;
    a->ctx.owner_of = owner_of;
    a->ctx.owner_arg = owner_arg;
    pthread_mutex_unlock(&a->lock);
}

void saga_admin_set_publish(saga_admin_t *a,
                            int (*publish)(void *arg, int shard, const char *key, const char *payload, char *why,
                                           size_t whylen),
                            void *arg) {
    pthread_mutex_lock(&a->lock);
    a->ctx.publish = publish;
    a->ctx.publish_arg = arg;
    pthread_mutex_unlock(&a->lock);
}

void saga_admin_set_publish_batch(saga_admin_t *a,
                                  int (*publish_batch)(void *arg, int n, const int *shards, const char *const *keys,
                                                       const char *const *payloads, unsigned char *failed, char *why,
                                                       size_t whylen)) {
    pthread_mutex_lock(&a->lock);
    a->ctx.publish_batch = publish_batch;
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
    for (int i = 0; a->shards && i < a->shard_count; i++) admin_shard_close(&a->shards[i]);
    saga_free(a->shards);
    for (size_t i = 0; i < a->host_count; i++) saga_free(a->hosts[i]);
    pthread_mutex_destroy(&a->lock);
    curl_global_cleanup();
    saga_free(a);
    *ap = NULL;
}
