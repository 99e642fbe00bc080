/* sagactl's libcurl client: GET/POST to the admin API, the bearer token, API error replies. */
#include "sagactl.h"
#include "saga_alloc.h"
#include "saga_clock.h"
#include "saga_error.h"
#include "saga_utf8.h"
#include "saga_util.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_REPLY (64L * 1024 * 1024)

static size_t on_body(char *data, size_t size, size_t nmemb, void *userp) {
    reply_t *r = userp;
    size_t n = size * nmemb;
    if (r->len + n > (size_t)MAX_REPLY) {
        r->overflow = 1;
        return 0;
    }
    char *grown = saga_realloc(r->body, r->len + n + 1);
    if (!grown) return 0;
    memcpy(grown + r->len, data, n);
    r->body = grown;
    r->len += n;
    r->body[r->len] = '\0';
    return n;
}

void reply_free(reply_t *r) {
    saga_free(r->body);
    memset(r, 0, sizeof *r);
}

/* METHOD base_url + path (path already escaped), with a JSON body for
 * POST and the bearer token from SAGA_ADMIN_TOKEN or the file named by
 * SAGA_ADMIN_TOKEN_FILE. Returns EXIT_OK with *r filled (any HTTP status)
 * or EXIT_CONNECT after telling why on stderr. */
int http_request(ctl_t *ctl, const char *method, const char *path, const char *body, reply_t *r) {
    memset(r, 0, sizeof *r);
    size_t n = strlen(ctl->base_url) + strlen(path) + 1;
    char *url = saga_malloc(n);
    CURL *curl = curl_easy_init();
    if (!url || !curl) {
        fprintf(stderr, "sagactl: out of memory\n");
        saga_free(url);
        if (curl) curl_easy_cleanup(curl);
        return EXIT_API;
    }
    snprintf(url, n, "%s%s", ctl->base_url, path);
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, ctl->timeout_s);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, ctl->timeout_s < 5 ? ctl->timeout_s : 5L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "sagactl/" "0.1");
    /* In a cluster an instance answers 307 for a saga another instance owns:
     * followed with the method, body and token (the Location comes from sagad). */
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 3L);
    curl_easy_setopt(curl, CURLOPT_UNRESTRICTED_AUTH, 1L);
    curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    struct curl_slist *hdrs = curl_slist_append(NULL, "Accept: application/json");
    char auth[600] = "";
    if (body) {
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
        hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
        const char *token = getenv("SAGA_ADMIN_TOKEN");
        char *from_file = NULL;
        const char *token_file = getenv("SAGA_ADMIN_TOKEN_FILE");
        if ((!token || !*token) && token_file && *token_file) {
            token = from_file = saga_read_file(token_file, NULL);
            if (!from_file) /* sagad writes admin.token next to its database */
                fprintf(stderr, "sagactl: cannot read the admin token file '%s' (SAGA_ADMIN_TOKEN_FILE)\n", token_file);
        }
        if (token && *token) {
            snprintf(auth, sizeof auth, "Authorization: Bearer %.*s", (int)strcspn(token, "\r\n"), token);
            hdrs = curl_slist_append(hdrs, auth);
        }
        saga_free(from_file);
    }
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs);
    CURLcode rc = curl_easy_perform(curl);
    int ret = EXIT_OK;
    if (rc != CURLE_OK) {
        if (r->overflow)
            fprintf(stderr, "sagactl: the answer from %s is larger than %ld bytes\n", url, MAX_REPLY);
        else
            fprintf(stderr, "sagactl: cannot reach the admin API at %s: %s\n", ctl->base_url,
                    errbuf[0] ? errbuf : curl_easy_strerror(rc));
        ret = r->overflow ? EXIT_API : EXIT_CONNECT;
        reply_free(r);
    } else {
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r->status);
        if (!r->body) r->body = saga_strdup("");
    }
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(curl);
    saga_free(url);
    return ret;
}

int http_get(ctl_t *ctl, const char *path, reply_t *r) { return http_request(ctl, "GET", path, NULL, r); }

/* Parses the reply as JSON; NULL (after a message) when it is not JSON. */
json_t *reply_json(ctl_t *ctl, const reply_t *r) {
    json_error_t jerr = {0};
    json_t *doc = json_loadb(r->body, r->len, 0, &jerr);
    if (!doc)
        fprintf(stderr, "sagactl: %s answered HTTP %ld with a body that is not JSON: %s\n",
                ctl->base_url, r->status, jerr.text);
    return doc;
}

/* Reports an API error reply ({"error":{"code","message"}}); returns EXIT_API. */
int api_error(ctl_t *ctl, const reply_t *r) {
    json_t *doc = json_loadb(r->body, r->len, 0, NULL);
    json_t *err = json_object_get(doc, "error");
    const char *code = json_string_value(json_object_get(err, "code"));
    const char *msg = json_string_value(json_object_get(err, "message"));
    if (code && msg)
        fprintf(stderr, "sagactl: %s (%s, HTTP %ld)\n", msg, code, r->status);
    else
        fprintf(stderr, "sagactl: HTTP %ld from %s: %.*s\n", r->status, ctl->base_url,
                saga_utf8_prefix(r->body, 200), r->body ? r->body : "");
    json_decref(doc);
    return EXIT_API;
}
