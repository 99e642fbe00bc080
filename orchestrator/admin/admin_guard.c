/* Guards of the admin API that no web page may get past: the Host header
 * (DNS rebinding, 421), the Origin header (cross-site requests, 403), the
 * bearer token of every mutating request (401/403) and its JSON body
 * (415: a form or text/plain POST is never taken). */
#include "admin_handlers.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Longest Host / Origin value looked at; longer ones are refused. */
#define MAX_HOST 300

int admin_token_equal(const char *want, const char *given) {
    size_t wl = strlen(want), gl = strlen(given);
    volatile unsigned char diff = (unsigned char)(wl != gl);
    /* Always over the expected token's length: where the strings differ
     * does not change the time taken. */
    for (size_t i = 0; i < wl; i++) diff |= (unsigned char)(want[i] ^ (i < gl ? given[i] : 0));
    return diff == 0;
}

/* Splits "name", "name:port", "[v6]" or "[v6]:port" into the lower-cased
 * name (brackets kept) in out. 0, or -1 when it is none of those. */
static int host_name(const char *host, size_t len, char *out, size_t cap) {
    if (len == 0 || len >= cap) return -1;
    size_t n;
    if (host[0] == '[') {
        const char *close = memchr(host, ']', len);
        if (!close) return -1;
        n = (size_t)(close - host) + 1;
    } else {
        const char *colon = memchr(host, ':', len);
        n = colon ? (size_t)(colon - host) : len;
        if (n == 0) return -1;
    }
    if (n < len) { /* ":port" */
        if (host[n] != ':' || n + 1 == len || len - n - 1 > 5) return -1;
        for (size_t i = n + 1; i < len; i++)
            if (!isdigit((unsigned char)host[i])) return -1;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)host[i];
        if (c <= 0x20 || c >= 0x7F || c == '/' || c == '@' || c == '\\') return -1;
        out[i] = (char)tolower(c);
    }
    out[n] = '\0';
    return 0;
}

/* An IPv4 or bracketed IPv6 literal: no DNS name, so no rebinding. */
static int ip_literal(const char *name) {
    unsigned char buf[16];
    char inner[64];
    size_t n = strlen(name);
    if (inet_pton(AF_INET, name, buf) == 1) return 1;
    if (n < 3 || n - 2 >= sizeof inner || name[0] != '[' || name[n - 1] != ']') return 0;
    memcpy(inner, name + 1, n - 2);
    inner[n - 2] = '\0';
    return inet_pton(AF_INET6, inner, buf) == 1;
}

static int host_allowed(const admin_ctx_t *ctx, const char *name) {
    if (!ctx->hosts) return 1;
    for (size_t i = 0; ctx->hosts[i]; i++)
        if (strcmp(ctx->hosts[i], name) == 0) return 1;
    return ctx->any_ip_host && ip_literal(name);
}

int admin_guard_request(const admin_ctx_t *ctx, const admin_request_t *req, admin_response_t *res) {
    char name[MAX_HOST];
    /* Without a Host header (HTTP/1.0; MHD refuses HTTP/1.1 without one)
     * there is no name to rebind: browsers always send one. */
    if (req->host) {
        if (host_name(req->host, strlen(req->host), name, sizeof name) != 0 || !host_allowed(ctx, name))
            return admin_error(res, ADMIN_ERR_MISDIRECTED,
                               "Host '%.100s' is not a name of this server (see --admin-host)", req->host);
    }
    if (req->origin) {
        /* Browsers send Origin on cross-origin requests and on every POST;
         * only a page served by this server under the same Host is ours. */
        const char *o = req->origin, *hostport = NULL;
        if (strncasecmp(o, "http://", 7) == 0) hostport = o + 7;
        else if (strncasecmp(o, "https://", 8) == 0) hostport = o + 8;
        int ok = hostport && *hostport &&
                 host_name(hostport, strlen(hostport), name, sizeof name) == 0 && host_allowed(ctx, name);
        if (ok && req->host) ok = strcasecmp(hostport, req->host) == 0;
        if (!ok)
            return admin_error(res, ADMIN_ERR_FORBIDDEN,
                               "cross-origin request from '%.100s' refused", req->origin);
    }
    return 0;
}

/* application/json, optionally with parameters; a charset must be UTF-8. */
static int json_media_type(const char *ct) {
    while (*ct == ' ' || *ct == '\t') ct++;
    size_t n = strcspn(ct, ";");
    size_t m = n;
    while (m > 0 && (ct[m - 1] == ' ' || ct[m - 1] == '\t')) m--;
    if (m != 16 || strncasecmp(ct, "application/json", 16) != 0) return 0;
    const char *cs = NULL;
    for (const char *p = ct + n; *p && !cs; p++)
        if (strncasecmp(p, "charset=", 8) == 0) cs = p;
    if (cs) {
        cs += 8;
        if (*cs == '"') cs++;
        if (strncasecmp(cs, "utf-8", 5) != 0 || (cs[5] && cs[5] != ';' && cs[5] != '"' && cs[5] != ' '))
            return 0;
    }
    return 1;
}

int admin_guard_mutation(const admin_ctx_t *ctx, const admin_request_t *req, admin_response_t *res) {
    if (!ctx->commands) return admin_error(res, ADMIN_ERR_UNAVAILABLE, "this server takes no commands");
    if (!ctx->token || !*ctx->token)
        return admin_error(res, ADMIN_ERR_UNAVAILABLE, "no admin token is set: this server takes no commands");
    const char *auth = req->authorization;
    if (!auth || strncasecmp(auth, "Bearer ", 7) != 0 || !auth[7])
        return admin_error(res, ADMIN_ERR_UNAUTHORIZED,
                           "missing 'Authorization: Bearer <token>' (sagad's token is in admin.token next to its database; "
                           "sagactl reads SAGA_ADMIN_TOKEN_FILE)");
    if (!admin_token_equal(ctx->token, auth + 7))
        return admin_error(res, ADMIN_ERR_FORBIDDEN, "the bearer token is not valid");
    if (!req->content_type || !json_media_type(req->content_type))
        return admin_error(res, ADMIN_ERR_UNSUPPORTED_MEDIA, "POST needs 'Content-Type: application/json' (got '%.64s')",
                           req->content_type ? req->content_type : "none");
    return 0;
}
