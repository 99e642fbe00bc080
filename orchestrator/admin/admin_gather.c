/* Cluster-wide GET /v1/sagas and GET /v1/stats: the other owners' answers
 * (scope=local) fetched with libcurl and merged with this instance's. */
#include "admin_gather.h"

#include "admin_handlers.h"
#include "saga_alloc.h"
#include "saga_error.h"
#include "saga_log.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COMPONENT "admin"
#define MAX_PEERS 64
#define PEER_MAX_BODY (16 * 1024 * 1024)
#define LIST_DEFAULT_LIMIT 50 /* as admin_list.c */

typedef enum { GATHER_LIST, GATHER_STATS, GATHER_PROXY } gather_kind_t;

typedef struct {
    char url[600];      /* the owner's admin URL */
    char shards[200];   /* "1, 4" (for messages) */
    int ok;             /* the fetch worked */
    unsigned status;
    char *body;
    char why[300];
} peer_t;

struct admin_gather {
    gather_kind_t kind;
    long limit; /* of a list */
    char unowned[200]; /* shards no owner is known for, "3, 5" ("": none) */
    int first_unowned;
    int npeers;
    peer_t peers[MAX_PEERS];
};

/* ---- HTTP ---- */

typedef struct {
    char *buf;
    size_t len;
    int too_large;
} sink_t;

static size_t on_body(char *data, size_t size, size_t n, void *arg) {
    sink_t *s = arg;
    size_t add = size * n;
    if (s->len + add > PEER_MAX_BODY) {
        s->too_large = 1;
        return 0;
    }
    char *grown = saga_realloc(s->buf, s->len + add + 1);
    if (!grown) return 0;
    memcpy(grown + s->len, data, add);
    s->buf = grown;
    s->len += add;
    s->buf[s->len] = '\0';
    return add;
}

int admin_peer_get(const char *url, long timeout_ms, unsigned *status, char **body, char *why, size_t whylen) {
    CURL *c = curl_easy_init();
    if (!c) {
        snprintf(why, whylen, "cannot start an HTTP client");
        return -1;
    }
    sink_t s = {0};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L); /* threads: no SIGALRM for DNS timeouts */
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms < 2000 ? timeout_ms : 2000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
    CURLcode cc = curl_easy_perform(c);
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(c);
    if (cc != CURLE_OK) {
        snprintf(why, whylen, "%s", s.too_large ? "its answer is larger than 16 MiB" : curl_easy_strerror(cc));
        saga_free(s.buf);
        return -1;
    }
    *status = (unsigned)code;
    *body = s.buf ? s.buf : saga_strdup("");
    if (!*body) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    return 0;
}

/* ---- which owners to ask ---- */

static int is_param(const char *s, size_t plen, const char *key) {
    size_t k = strlen(key);
    return plen >= k && strncmp(s, key, k) == 0 && (plen == k || s[k] == '=');
}

static void add_number(char *list, size_t len, int n) {
    size_t o = strlen(list);
    if (o + 16 < len) snprintf(list + o, len - o, "%s%d", o ? ", " : "", n);
}

/* The raw query without scope and shards, then "shards=<the owner's>":
 * the owner answers for exactly those (503 if it no longer owns one), so
 * no shard is counted twice or missed while shards move. */
static int peer_url(const peer_t *p, const admin_request_t *req, char *out, size_t len) {
    size_t o = (size_t)snprintf(out, len, "%s%s?", p->url, req->path);
    const char *s = req->query ? req->query : "";
    while (*s && o < len) {
        const char *amp = strchr(s, '&');
        size_t plen = amp ? (size_t)(amp - s) : strlen(s);
        if (plen && !is_param(s, plen, "scope") && !is_param(s, plen, "shards"))
            o += (size_t)snprintf(out + o, len - o, "%.*s&", (int)plen, s);
        s += plen + (amp ? 1 : 0);
    }
    char shards[sizeof p->shards];
    size_t j = 0;
    for (const char *c = p->shards; *c && j + 1 < sizeof shards; c++)
        if (*c != ' ') shards[j++] = *c;
    shards[j] = '\0';
    if (o < len) o += (size_t)snprintf(out + o, len - o, "shards=%s", shards);
    return o < len ? 0 : -1;
}

static int has_param(const char *query, const char *key) {
    for (const char *s = query ? query : ""; *s;) {
        const char *amp = strchr(s, '&');
        size_t plen = amp ? (size_t)(amp - s) : strlen(s);
        if (is_param(s, plen, key)) return 1;
        s += plen + (amp ? 1 : 0);
    }
    return 0;
}

/* The decoded value of parameter key in a raw query ("" when absent). */
static void raw_param(const char *query, const char *key, char *out, size_t len) {
    size_t klen = strlen(key);
    out[0] = '\0';
    for (const char *s = query ? query : ""; *s;) {
        const char *amp = strchr(s, '&');
        size_t plen = amp ? (size_t)(amp - s) : strlen(s);
        if (plen > klen && strncmp(s, key, klen) == 0 && s[klen] == '=' && plen - klen - 1 < len) {
            char raw[64];
            snprintf(raw, sizeof raw, "%.*s", (int)(plen - klen - 1), s + klen + 1);
            if (admin_percent_decode(raw, strlen(raw), out) < 0) out[0] = '\0';
        }
        s += plen + (amp ? 1 : 0);
    }
}

/* The shard of the saga a GET /v1/sagas/{id} names, or -1 (another path,
 * a malformed id: admin_route answers those). */
static int proxied_shard(const admin_ctx_t *ctx, const admin_request_t *req) {
    static const char prefix[] = "/v1/sagas/";
    if (!req->proxy || strcmp(req->proxy, "1") != 0 || strncmp(req->path, prefix, sizeof prefix - 1) != 0) return -1;
    const char *raw = req->path + sizeof prefix - 1;
    size_t n = strlen(raw);
    char id[ADMIN_MAX_ID_LEN * 3 + 1];
    if (n == 0 || n >= sizeof id || strchr(raw, '/')) return -1;
    long len = admin_percent_decode(raw, n, id);
    if (len <= 0 || len > ADMIN_MAX_ID_LEN || !admin_text_ok(id, (size_t)len)) return -1;
    return admin_shard_of(ctx, id);
}

admin_gather_t *admin_gather_fetch(const admin_ctx_t *ctx, const admin_request_t *req, int *oom) {
    *oom = 0;
    if (!ctx->shards || !ctx->owned || !req->method || strcmp(req->method, "GET") != 0 || !req->path) return NULL;
    gather_kind_t kind;
    int one = -1;
    if (strcmp(req->path, "/v1/sagas") == 0)
        kind = GATHER_LIST;
    else if (strcmp(req->path, "/v1/stats") == 0)
        kind = GATHER_STATS;
    else if ((one = proxied_shard(ctx, req)) >= 0 && !admin_shard_owned(ctx, one))
        kind = GATHER_PROXY;
    else
        return NULL;
    /* A request the Host/Origin guard refuses costs the other owners nothing. */
    admin_response_t refused;
    memset(&refused, 0, sizeof refused);
    int grc = admin_guard_request(ctx, req, &refused);
    saga_free(refused.body);
    if (grc != 0 || refused.status) return NULL;
    char scope[16];
    raw_param(req->query, "scope", scope, sizeof scope);
    if (strcmp(scope, "local") == 0 || has_param(req->query, "shards")) return NULL; /* this instance's only */
    int n = admin_shard_count(ctx), elsewhere = 0;
    for (int i = 0; i < n; i++) elsewhere += !admin_shard_owned(ctx, i) && (one < 0 || i == one);
    if (!elsewhere) return NULL;

    admin_gather_t *g = saga_calloc(1, sizeof *g);
    if (!g) {
        *oom = 1;
        return NULL;
    }
    g->kind = kind;
    g->first_unowned = -1;
    char limit[16];
    raw_param(req->query, "limit", limit, sizeof limit);
    g->limit = limit[0] ? strtol(limit, NULL, 10) : LIST_DEFAULT_LIMIT;
    for (int i = 0; i < n; i++) {
        if (admin_shard_owned(ctx, i) || (one >= 0 && i != one)) continue;
        char url[sizeof g->peers[0].url];
        if (!ctx->owner_of || ctx->owner_of(ctx->owner_arg, i, url, sizeof url) != 0) {
            if (g->first_unowned < 0) g->first_unowned = i;
            add_number(g->unowned, sizeof g->unowned, i);
            continue;
        }
        int k = 0;
        while (k < g->npeers && strcmp(g->peers[k].url, url) != 0) k++;
        if (k == MAX_PEERS) continue; /* cannot happen: one owner per shard and at most 64 named */
        if (k == g->npeers) snprintf(g->peers[g->npeers++].url, sizeof url, "%s", url);
        add_number(g->peers[k].shards, sizeof g->peers[k].shards, i);
    }
    for (int k = 0; k < g->npeers && !g->unowned[0]; k++) {
        peer_t *p = &g->peers[k];
        char url[ADMIN_MAX_QUERY_LEN + 1200];
        int too_long = kind == GATHER_PROXY
                           ? snprintf(url, sizeof url, "%s%s%s%s", p->url, req->path, req->query && *req->query ? "?" : "",
                                      req->query ? req->query : "") >= (int)sizeof url
                           : peer_url(p, req, url, sizeof url) != 0;
        if (too_long) {
            snprintf(p->why, sizeof p->why, "the request is too long to pass on");
            continue;
        }
        p->ok = admin_peer_get(url, ADMIN_PEER_TIMEOUT_MS, &p->status, &p->body, p->why, sizeof p->why) == 0;
        if (!p->ok) LOG_WARN(COMPONENT, "gathering %s: the owner of shard(s) %s at %s did not answer: %s", req->path,
                             p->shards, p->url, p->why);
    }
    return g;
}

/* ---- merging ---- */

static void gather_free(admin_gather_t *g) {
    for (int k = 0; g && k < g->npeers; k++) saga_free(g->peers[k].body);
    saga_free(g);
}

/* The peer's parsed 200 answer, or NULL with res filled (503). */
static json_t *peer_doc(peer_t *p, admin_response_t *res, int *rc) {
    int shard = atoi(p->shards);
    if (!p->ok) {
        *rc = admin_shard_error(res, ADMIN_ERR_UNAVAILABLE, shard,
                                "shard(s) %s: their owner %s did not answer (%s); try again, or ask with "
                                "scope=local for this instance's shards only",
                                p->shards, p->url, p->why);
        return NULL;
    }
    json_t *doc = json_loads(p->body, 0, NULL);
    if (p->status == 200 && json_is_object(doc)) return doc;
    json_t *msg = json_object_get(json_object_get(doc, "error"), "message");
    *rc = admin_shard_error(res, ADMIN_ERR_UNAVAILABLE, shard,
                            "shard(s) %s: their owner %s answered %u: %s", p->shards, p->url, p->status,
                            json_is_string(msg) ? json_string_value(msg) : "(not a JSON answer of this API)");
    json_decref(doc);
    return NULL;
}

typedef struct {
    json_t *item;
    int64_t updated;
    const char *id;
    size_t idlen;
} row_t;

/* Rows in list order: updated_at DESC, id DESC (bytes, then length). */
static int row_order(const void *pa, const void *pb) {
    const row_t *a = pa, *b = pb;
    if (a->updated != b->updated) return a->updated > b->updated ? -1 : 1;
    int c = memcmp(a->id, b->id, a->idlen < b->idlen ? a->idlen : b->idlen);
    if (!c) c = a->idlen == b->idlen ? 0 : a->idlen < b->idlen ? -1 : 1;
    return -c;
}

static int add_rows(json_t *doc, row_t **rows, size_t *n, size_t *cap, int *more) {
    json_t *items = json_object_get(doc, "sagas"), *item;
    size_t i;
    if (!json_is_array(items)) return -1;
    if (json_is_string(json_object_get(doc, "next_cursor"))) *more = 1;
    json_array_foreach(items, i, item) {
        json_t *id = json_object_get(item, "id");
        json_t *up = json_object_get(item, "updated_at");
        int64_t ms = 0;
        if (!json_is_string(id) || !json_is_string(up) || admin_parse_time(json_string_value(up), &ms) != 0) return -1;
        if (*n == *cap) {
            size_t c = *cap ? *cap * 2 : 256;
            row_t *grown = saga_realloc(*rows, c * sizeof *grown);
            if (!grown) return SAGA_ENOMEM;
            *rows = grown;
            *cap = c;
        }
        (*rows)[(*n)++] = (row_t){item, ms, json_string_value(id), json_string_length(id)};
    }
    return 0;
}

static json_t *merge_list(json_t **docs, int ndocs, long limit, int *rc) {
    row_t *rows = NULL;
    size_t n = 0, cap = 0;
    int more = 0;
    for (int k = 0; k < ndocs; k++) {
        int r = add_rows(docs[k], &rows, &n, &cap, &more);
        if (r) {
            saga_free(rows);
            *rc = r == SAGA_ENOMEM ? SAGA_ENOMEM : SAGA_EPARSE;
            return NULL;
        }
    }
    qsort(rows, n, sizeof *rows, row_order);
    if ((long)n > limit) {
        n = (size_t)limit;
        more = 1;
    }
    json_t *items = json_array(), *doc = json_object();
    for (size_t i = 0; items && i < n; i++)
        if (json_array_append(items, rows[i].item) != 0) *rc = SAGA_ENOMEM;
    json_t *cursor = json_null();
    if (more && n > 0) {
        char enc[1200];
        if (admin_list_cursor(rows[n - 1].updated, rows[n - 1].id, rows[n - 1].idlen, enc, sizeof enc) == 0) {
            json_decref(cursor);
            cursor = json_string(enc);
        }
    }
    saga_free(rows);
    int ok = items && doc && cursor && *rc == 0;
    if (ok) ok = json_object_set(doc, "sagas", items) == 0 && json_object_set(doc, "next_cursor", cursor) == 0;
    json_decref(items);
    json_decref(cursor);
    if (!ok) {
        json_decref(doc);
        *rc = SAGA_ENOMEM;
        return NULL;
    }
    return doc;
}

/* into[key] += from[key] for every integer member of from. */
static void add_counts(json_t *into, json_t *from) {
    const char *key;
    json_t *v;
    json_object_foreach(from, key, v) {
        if (!json_is_integer(v)) continue;
        json_object_set_new(into, key, json_integer(json_integer_value(json_object_get(into, key)) +
                                                    json_integer_value(v)));
    }
}

static void add_total(json_t *into, json_t *from) {
    json_object_set_new(into, "total", json_integer(json_integer_value(json_object_get(into, "total")) +
                                                    json_integer_value(json_object_get(from, "total"))));
}

/* The oldest of two oldest_running objects (created_at, then id). */
static int older(json_t *a, json_t *b) {
    int64_t ca = 0, cb = 0;
    if (!json_is_object(b)) return 1;
    if (!json_is_object(a)) return 0;
    admin_parse_time(json_string_value(json_object_get(a, "created_at")), &ca);
    admin_parse_time(json_string_value(json_object_get(b, "created_at")), &cb);
    if (ca != cb) return ca < cb;
    const char *ia = json_string_value(json_object_get(a, "id")), *ib = json_string_value(json_object_get(b, "id"));
    return strcmp(ia ? ia : "", ib ? ib : "") < 0;
}

/* Adds a peer's stats into doc (this instance's, whose generated_at and
 * runtime stay). */
static int merge_stats(json_t *doc, json_t *peer) {
    json_t *sagas = json_object_get(doc, "sagas"), *psagas = json_object_get(peer, "sagas");
    json_t *steps = json_object_get(doc, "steps"), *psteps = json_object_get(peer, "steps");
    if (!json_is_object(sagas) || !json_is_object(psagas) || !json_is_object(steps) || !json_is_object(psteps))
        return SAGA_EPARSE;
    add_total(sagas, psagas);
    add_counts(json_object_get(sagas, "by_status"), json_object_get(psagas, "by_status"));
    add_total(steps, psteps);
    add_counts(json_object_get(steps, "by_status"), json_object_get(psteps, "by_status"));
    json_t *defs = json_object_get(sagas, "by_definition"), *pd;
    const char *name;
    json_object_foreach(json_object_get(psagas, "by_definition"), name, pd) {
        json_t *d = json_object_get(defs, name);
        if (!d) {
            json_object_set(defs, name, pd);
            continue;
        }
        add_total(d, pd);
        add_counts(json_object_get(d, "by_status"), json_object_get(pd, "by_status"));
    }
    json_t *by_def = admin_json_sorted(defs);
    if (!by_def || json_object_set_new(sagas, "by_definition", by_def) != 0) return SAGA_ENOMEM;
    json_t *paused = json_object_get(doc, "paused_topics"); /* every shard holds the same: a union */
    if (json_is_object(paused)) {
        json_object_update_missing(paused, json_object_get(peer, "paused_topics"));
        json_t *sorted = admin_json_sorted(paused);
        if (!sorted || json_object_set_new(doc, "paused_topics", sorted) != 0) return SAGA_ENOMEM;
    }
    json_t *oldest = json_object_get(peer, "oldest_running");
    if (json_is_object(oldest) && older(oldest, json_object_get(doc, "oldest_running")))
        json_object_set(doc, "oldest_running", oldest);
    return 0;
}

/* The owner's answer as it gave it (any status), in place of the 307. */
static int proxy_answer(admin_gather_t *g, admin_response_t *out) {
    if (g->unowned[0] || g->npeers != 1)
        return admin_shard_error(out, ADMIN_ERR_UNAVAILABLE, g->first_unowned,
                                 "this saga's shard is owned by no sagad instance right now (it is moving): try again "
                                 "in a few seconds");
    if (!g->peers[0].ok)
        return admin_shard_error(out, ADMIN_ERR_UNAVAILABLE, atoi(g->peers[0].shards),
                                 "this saga's shard is owned by the sagad instance at %s, which did not answer (%s)",
                                 g->peers[0].url, g->peers[0].why);
    peer_t *p = &g->peers[0];
    if (p->status == 307) /* it gave the shard up since the registry said so */
        return admin_shard_error(out, ADMIN_ERR_UNAVAILABLE, atoi(p->shards),
                                 "this saga's shard is moving between sagad instances: try again in a few seconds");
    json_t *doc = json_loads(p->body, 0, NULL);
    int rc = doc ? admin_json_response(out, p->status, doc)
                 : admin_error(out, ADMIN_ERR_UNAVAILABLE, "the owner %s answered %u, not with JSON", p->url, p->status);
    json_decref(doc);
    return rc;
}

int admin_gather_finish(admin_gather_t *g, admin_response_t *res) {
    if (!g) return 0;
    int rc = 0;
    if (g->kind == GATHER_PROXY ? res->status != 307 : res->status != 200 || !res->body) {
        gather_free(g); /* the request was refused here first (bad id, Host, ...) */
        return 0;
    }
    json_t *docs[MAX_PEERS + 1] = {0};
    int ndocs = 0;
    admin_response_t out;
    memset(&out, 0, sizeof out);
    if (g->kind == GATHER_PROXY) {
        rc = proxy_answer(g, &out);
        goto done;
    }
    if (g->unowned[0]) {
        rc = admin_shard_error(&out, ADMIN_ERR_UNAVAILABLE, g->first_unowned,
                               "shard(s) %s: no sagad instance of the group owns them right now (they are moving); "
                               "try again in a few seconds, or ask with scope=local for this instance's shards only",
                               g->unowned);
        goto done;
    }
    docs[ndocs++] = json_loads(res->body, 0, NULL);
    if (!docs[0]) {
        rc = admin_error(&out, ADMIN_ERR_INTERNAL, "this instance's own answer is not JSON");
        goto done;
    }
    for (int k = 0; k < g->npeers; k++) {
        json_t *d = peer_doc(&g->peers[k], &out, &rc);
        if (!d) goto done;
        docs[ndocs++] = d;
    }
    json_t *merged = NULL;
    if (g->kind == GATHER_LIST) {
        merged = merge_list(docs, ndocs, g->limit, &rc);
    } else {
        for (int k = 1; k < ndocs && rc == 0; k++) rc = merge_stats(docs[0], docs[k]);
        if (rc == 0) merged = json_incref(docs[0]);
    }
    if (merged) rc = admin_json_response(&out, 200, merged);
    else if (rc != SAGA_ENOMEM)
        rc = admin_error(&out, ADMIN_ERR_UNAVAILABLE, "an owner's answer is not one this API gives (another version?)");
    json_decref(merged);
done:
    for (int k = 0; k < ndocs; k++) json_decref(docs[k]);
    gather_free(g);
    if (out.body || rc == SAGA_ENOMEM) {
        saga_free(res->body);
        *res = out;
    }
    return rc == SAGA_ENOMEM ? rc : 0;
}
