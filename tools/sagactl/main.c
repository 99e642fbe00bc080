/* sagactl: the command line over sagad's admin HTTP API (docs/ADMIN-API.md).
 *
 *   sagactl [--url URL] [--json] [--timeout SECONDS] COMMAND [ARGS]
 *
 * Commands are rows of one table (name, arguments, help, handler); a new
 * command is a handler and a row. Exit codes: 0 ok, 1 not found or API
 * error, 2 usage, 3 cannot reach the admin API. */
#include "audit.h"
#include "definition.h"
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

enum { EXIT_OK = 0, EXIT_API = 1, EXIT_USAGE = 2, EXIT_CONNECT = 3 };

#define DEFAULT_URL "http://127.0.0.1:8080"
#define MAX_REPLY (64L * 1024 * 1024)

typedef struct {
    char *base_url; /* without trailing '/' */
    int json;       /* --json: print the API's JSON as it came */
    long timeout_s;
} ctl_t;

typedef struct {
    const char *name;
    const char *args; /* synopsis of the arguments */
    const char *help;
    int min_args, max_args;
    int (*run)(ctl_t *ctl, int argc, char **argv);
} command_t;

static int cmd_show(ctl_t *ctl, int argc, char **argv);
static int cmd_health(ctl_t *ctl, int argc, char **argv);
static int cmd_validate(ctl_t *ctl, int argc, char **argv);
static int cmd_abort(ctl_t *ctl, int argc, char **argv);
static int cmd_retry(ctl_t *ctl, int argc, char **argv);
static int cmd_start(ctl_t *ctl, int argc, char **argv);
static int cmd_reload(ctl_t *ctl, int argc, char **argv);
static int cmd_list(ctl_t *ctl, int argc, char **argv);
static int cmd_defs(ctl_t *ctl, int argc, char **argv);
static int cmd_stats(ctl_t *ctl, int argc, char **argv);

/* More commands (list, start, abort, retry, defs, stats, audit) go here. */
/* `audit` is offline (tools/sagactl/audit.c) and parses its own options. */
static int cmd_audit(ctl_t *ctl, int argc, char **argv) { return sagactl_audit_main(argc, argv, ctl->json); }

static const command_t commands[] = {
    {"show", "ID", "show one saga: status, steps and history", 1, 1, cmd_show},
    {"list", "[--status S] [--definition D] [--limit N] [--all]",
     "list sagas, newest first (more filters: --step, --step-status, --error-code, --created-after/-before,"
     " --updated-after/-before, --cursor)", 0, INT_MAX, cmd_list},
    {"health", "", "check that the admin API and its database answer", 0, 0, cmd_health},
    {"defs", "[NAME [VERSION]]", "the loaded saga definitions; with NAME and VERSION the definition itself", 0, 2,
     cmd_defs},
    {"stats", "", "counts of sagas and steps by status and definition, the oldest running saga", 0, 0, cmd_stats},
    {"validate", "FILE...", "check saga definition files offline (no API; '-' reads stdin)", 1, INT_MAX,
     cmd_validate},
    {"audit", "[--saga-db F ...]", "check sagad's DB against the workers' ledgers (offline; audit --help)", 0,
     INT_MAX, cmd_audit},
    {"abort", "ID [REASON...]", "compensate a running saga (token: SAGA_ADMIN_TOKEN[_FILE])", 1, INT_MAX, cmd_abort},
    {"retry", "ID", "resume a compensation_failed saga's compensation (token as for abort)", 1, 1, cmd_retry},
    {"start", "DEFINITION [INPUT_JSON [SAGA_ID]]", "start a saga (idempotent on SAGA_ID; token as for abort)", 1, 3, cmd_start},
    {"reload", "", "reload sagad's definitions directory (token as for abort)", 0, 0, cmd_reload},
};

static void usage(FILE *out) {
    fprintf(out,
            "usage: sagactl [--url URL] [--json] [--timeout SECONDS] COMMAND [ARGS]\n"
            "\n"
            "Talks to sagad's admin HTTP API.\n"
            "\n"
            "options:\n"
            "  --url URL          admin API base URL (env SAGA_ADMIN_URL, default " DEFAULT_URL ")\n"
            "  --json             print the API's JSON instead of tables\n"
            "  --timeout SECONDS  give up on a request after this long (default 10)\n"
            "  -h, --help         this help\n"
            "\n"
            "commands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        char synopsis[64];
        snprintf(synopsis, sizeof synopsis, "%s %s", commands[i].name, commands[i].args);
        fprintf(out, "  %-18s %s\n", synopsis, commands[i].help);
    }
    fprintf(out, "\nexit status: 0 ok, 1 not found or API error (validate: a file is invalid), 2 usage,\n"
                 "3 cannot reach the API\n");
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("sagactl: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs("\n(sagactl --help for usage)\n", stderr);
    va_end(ap);
    return EXIT_USAGE;
}

/* ---- HTTP ---- */

typedef struct {
    long status;
    char *body; /* NUL-terminated */
    size_t len;
    int overflow;
} reply_t;

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

static void reply_free(reply_t *r) {
    saga_free(r->body);
    memset(r, 0, sizeof *r);
}

/* METHOD base_url + path (path already escaped), with a JSON body for
 * POST and the bearer token from SAGA_ADMIN_TOKEN or the file named by
 * SAGA_ADMIN_TOKEN_FILE. Returns EXIT_OK with *r filled (any HTTP status)
 * or EXIT_CONNECT after telling why on stderr. */
static int http_request(ctl_t *ctl, const char *method, const char *path, const char *body, reply_t *r) {
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

/* Parses the reply as JSON; NULL (after a message) when it is not JSON. */
static int http_get(ctl_t *ctl, const char *path, reply_t *r) { return http_request(ctl, "GET", path, NULL, r); }

static json_t *reply_json(ctl_t *ctl, const reply_t *r) {
    json_error_t jerr = {0};
    json_t *doc = json_loadb(r->body, r->len, 0, &jerr);
    if (!doc)
        fprintf(stderr, "sagactl: %s answered HTTP %ld with a body that is not JSON: %s\n",
                ctl->base_url, r->status, jerr.text);
    return doc;
}

/* Reports an API error reply ({"error":{"code","message"}}); returns EXIT_API. */
static int api_error(ctl_t *ctl, const reply_t *r) {
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

/* ---- text output ---- */

/* Prints s with control characters replaced, so a hostile name cannot
 * drive the terminal. Returns the number of columns used (code points). */
static size_t put_text(FILE *out, const char *s) {
    size_t cols = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        fputc(*p < 0x20 || *p == 0x7F ? '?' : *p, out);
        if ((*p & 0xC0) != 0x80) cols++;
    }
    return cols;
}

static size_t text_cols(const char *s) {
    size_t cols = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if ((*p & 0xC0) != 0x80) cols++;
    return cols;
}

#define TABLE_MAX_COLS 8

typedef struct {
    size_t ncols, nrows, cap;
    const char *head[TABLE_MAX_COLS];
    char **cells; /* nrows * ncols, owned */
} table_t;

static void table_init(table_t *t, size_t ncols, const char *const *head) {
    memset(t, 0, sizeof *t);
    t->ncols = ncols;
    for (size_t i = 0; i < ncols; i++) t->head[i] = head[i];
}

/* Adds a row of ncols strings (copied). Returns 0 or -1 on allocation failure. */
static int table_add(table_t *t, char *const *row) {
    if (t->nrows == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        char **grown = saga_realloc(t->cells, cap * t->ncols * sizeof *grown);
        if (!grown) return -1;
        t->cells = grown;
        t->cap = cap;
    }
    for (size_t i = 0; i < t->ncols; i++) {
        t->cells[t->nrows * t->ncols + i] = saga_strdup(row[i] ? row[i] : "-");
        if (!t->cells[t->nrows * t->ncols + i]) return -1;
    }
    t->nrows++;
    return 0;
}

static void table_print(FILE *out, const table_t *t) {
    size_t width[TABLE_MAX_COLS];
    for (size_t c = 0; c < t->ncols; c++) {
        width[c] = text_cols(t->head[c]);
        for (size_t r = 0; r < t->nrows; r++) {
            size_t w = text_cols(t->cells[r * t->ncols + c]);
            if (w > width[c]) width[c] = w;
        }
    }
    for (size_t r = 0; r <= t->nrows; r++) {
        fputs("  ", out);
        for (size_t c = 0; c < t->ncols; c++) {
            const char *s = r == 0 ? t->head[c] : t->cells[(r - 1) * t->ncols + c];
            size_t w = put_text(out, s);
            if (c + 1 < t->ncols)
                for (; w < width[c] + 2; w++) fputc(' ', out);
        }
        fputc('\n', out);
    }
}

static void table_free(table_t *t) {
    for (size_t i = 0; i < t->nrows * t->ncols; i++) saga_free(t->cells[i]);
    saga_free(t->cells);
    memset(t, 0, sizeof *t);
}

/* A JSON value as a short cell: strings as they are, numbers, null as "-". */
static void cell(char *buf, size_t len, const json_t *v) {
    if (json_is_string(v)) snprintf(buf, len, "%s", json_string_value(v));
    else if (json_is_integer(v)) snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else if (json_is_true(v)) snprintf(buf, len, "yes");
    else if (json_is_false(v)) snprintf(buf, len, "no");
    else snprintf(buf, len, "-");
}

static const char *str_or(const json_t *v, const char *dflt) {
    return json_is_string(v) ? json_string_value(v) : dflt;
}

static void field(FILE *out, const char *label, const char *value) {
    fprintf(out, "%-11s ", label);
    put_text(out, value && *value ? value : "-");
    fputc('\n', out);
}

/* ---- commands ---- */

/* A step's bar on the saga's time axis, 24 columns wide: '=' while it ran,
 * '>' at the end when it has not finished; then 'R' for retries and 'C'
 * when it was compensated (or is being). */
static void timeline(char *buf, size_t len, const json_t *step, int64_t t0, int64_t t1) {
    enum { WIDTH = 24 };
    char bar[WIDTH + 1];
    memset(bar, ' ', WIDTH);
    bar[WIDTH] = '\0';
    const char *st = json_string_value(json_object_get(step, "started_at"));
    const char *fi = json_string_value(json_object_get(step, "finished_at"));
    int64_t a, b;
    if (t1 > t0 && st && saga_parse_time(st, &a) == 0) {
        int finished = fi && saga_parse_time(fi, &b) == 0;
        if (!finished) b = t1;
        int from = (int)((a - t0) * (WIDTH - 1) / (t1 - t0));
        int to = (int)((b - t0) * (WIDTH - 1) / (t1 - t0));
        if (from < 0) from = 0;
        if (to > WIDTH - 1) to = WIDTH - 1;
        for (int k = from; k <= to; k++) bar[k] = '=';
        if (!finished) bar[to] = '>';
    }
    json_int_t attempts = json_integer_value(json_object_get(step, "attempt"));
    json_int_t comps = json_integer_value(json_object_get(step, "compensation_attempt"));
    char marks[32] = "";
    if (attempts > 1) snprintf(marks, sizeof marks, " R%" JSON_INTEGER_FORMAT, attempts - 1);
    if (comps > 0) snprintf(marks + strlen(marks), sizeof marks - strlen(marks), " C");
    snprintf(buf, len, "|%s|%s", bar, marks);
}

static int print_saga(FILE *out, const json_t *saga) {
    char buf[512];
    field(out, "Saga", json_string_value(json_object_get(saga, "id")));
    snprintf(buf, sizeof buf, "%s@%" JSON_INTEGER_FORMAT,
             str_or(json_object_get(saga, "definition"), "?"),
             json_integer_value(json_object_get(saga, "version")));
    field(out, "Definition", buf);
    field(out, "Status", json_string_value(json_object_get(saga, "status")));
    field(out, "Created", json_string_value(json_object_get(saga, "created_at")));
    field(out, "Updated", json_string_value(json_object_get(saga, "updated_at")));
    field(out, "Deadline", json_string_value(json_object_get(saga, "deadline_at")));
    field(out, "Trace", json_string_value(json_object_get(saga, "traceparent")));
    json_t *err = json_object_get(saga, "error");
    if (json_is_object(err)) {
        snprintf(buf, sizeof buf, "%s: %s", str_or(json_object_get(err, "code"), "?"),
                 str_or(json_object_get(err, "message"), ""));
        field(out, "Error", buf);
    } else {
        field(out, "Error", NULL);
    }
    /* What an operator must know first about a parked saga: which
     * compensation gave up, and why. */
    if (!strcmp(str_or(json_object_get(saga, "status"), ""), "compensation_failed")) {
        const char *reason = NULL;
        size_t k;
        json_t *h;
        json_array_foreach(json_object_get(saga, "history"), k, h) {
            if (!strcmp(str_or(json_object_get(h, "event"), ""), "saga.compensation_failed"))
                reason = json_string_value(json_object_get(json_object_get(h, "detail"), "reason"));
        }
        field(out, "Reason", reason ? reason : "compensation gave up (see history)");
        field(out, "Action", "fix the participant, then: sagactl retry ID (or POST /v1/sagas/ID/retry)");
    }

    static const char *const step_head[] = {"#", "NAME", "STATUS", "ATTEMPTS", "COMP", "DURATION_MS",
                                            "TIMELINE", "ERROR"};
    table_t t;
    table_init(&t, 8, step_head);
    size_t i;
    json_t *s;
    int rc = 0;
    /* The timeline spans the saga's life: created .. updated. */
    int64_t t0 = 0, t1 = 0;
    const char *created = json_string_value(json_object_get(saga, "created_at"));
    const char *updated = json_string_value(json_object_get(saga, "updated_at"));
    int have_span = created && updated && saga_parse_time(created, &t0) == 0 && saga_parse_time(updated, &t1) == 0;
    json_array_foreach(json_object_get(saga, "steps"), i, s) {
        char c[8][160];
        cell(c[0], sizeof c[0], json_object_get(s, "index"));
        cell(c[1], sizeof c[1], json_object_get(s, "name"));
        cell(c[2], sizeof c[2], json_object_get(s, "status"));
        cell(c[3], sizeof c[3], json_object_get(s, "attempt"));
        cell(c[4], sizeof c[4], json_object_get(s, "compensation_attempt"));
        const char *st = json_string_value(json_object_get(s, "started_at"));
        const char *fi = json_string_value(json_object_get(s, "finished_at"));
        int64_t a, b;
        if (st && fi && saga_parse_time(st, &a) == 0 && saga_parse_time(fi, &b) == 0)
            snprintf(c[5], sizeof c[5], "%lld", (long long)(b - a));
        else
            snprintf(c[5], sizeof c[5], "-");
        timeline(c[6], sizeof c[6], s, have_span ? t0 : 0, have_span ? t1 : 0);
        json_t *serr = json_object_get(s, "error");
        if (json_is_object(serr))
        {
            snprintf(c[7], sizeof c[7], "%s: %s", str_or(json_object_get(serr, "code"), "?"),
                     str_or(json_object_get(serr, "message"), ""));
            saga_utf8_trim_cut(c[7]); /* a long message is cut on a character boundary */
        }
        else
            snprintf(c[7], sizeof c[7], "-");
        if (json_is_true(json_object_get(s, "outcome_unknown")))
            snprintf(c[2] + strlen(c[2]), sizeof c[2] - strlen(c[2]), " (outcome unknown)");
        char *row[8] = {c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]};
        if (table_add(&t, row) != 0) rc = -1;
    }
    fprintf(out, "\nSteps\n");
    table_print(out, &t);
    table_free(&t);

    static const char *const hist_head[] = {"SEQ", "TIME", "EVENT", "STEP", "STATUS"};
    table_init(&t, 5, hist_head);
    json_array_foreach(json_object_get(saga, "history"), i, s) {
        char c[5][160];
        cell(c[0], sizeof c[0], json_object_get(s, "seq"));
        cell(c[1], sizeof c[1], json_object_get(s, "at"));
        cell(c[2], sizeof c[2], json_object_get(s, "event"));
        cell(c[3], sizeof c[3], json_object_get(s, "step"));
        cell(c[4], sizeof c[4], json_object_get(s, "status"));
        char *row[5] = {c[0], c[1], c[2], c[3], c[4]};
        if (table_add(&t, row) != 0) rc = -1;
    }
    fprintf(out, "\nHistory\n");
    table_print(out, &t);
    table_free(&t);
    return rc;
}

static int cmd_show(ctl_t *ctl, int argc, char **argv) {
    const char *id = argv[0];
    if (!*id) return usage_error("show: the saga id is empty");
    CURL *esc = curl_easy_init();
    char *escaped = esc ? curl_easy_escape(esc, id, 0) : NULL;
    if (esc) curl_easy_cleanup(esc);
    if (!escaped) {
        fprintf(stderr, "sagactl: out of memory\n");
        return EXIT_API;
    }
    size_t n = strlen(escaped) + sizeof "/v1/sagas/";
    char *path = saga_malloc(n);
    if (!path) {
        curl_free(escaped);
        fprintf(stderr, "sagactl: out of memory\n");
        return EXIT_API;
    }
    snprintf(path, n, "/v1/sagas/%s", escaped);
    curl_free(escaped);

    reply_t r;
    int ret = http_get(ctl, path, &r);
    saga_free(path);
    if (ret != EXIT_OK) return ret;
    if (r.status != 200) {
        ret = api_error(ctl, &r);
    } else if (ctl->json) {
        fwrite(r.body, 1, r.len, stdout);
        fputc('\n', stdout);
    } else {
        json_t *saga = reply_json(ctl, &r);
        if (!saga) ret = EXIT_API;
        else if (print_saga(stdout, saga) != 0) {
            fprintf(stderr, "sagactl: out of memory\n");
            ret = EXIT_API;
        }
        json_decref(saga);
    }
    reply_free(&r);
    return ret;
}

static int cmd_health(ctl_t *ctl, int argc, char **argv) {
    reply_t r;
    int ret = http_get(ctl, "/healthz", &r);
    if (ret != EXIT_OK) return ret;
    if (ctl->json) {
        fwrite(r.body, 1, r.len, stdout);
        fputc('\n', stdout);
        ret = r.status == 200 ? EXIT_OK : EXIT_API;
    } else if (r.status == 200) {
        printf("ok (%s)\n", ctl->base_url);
    } else if (r.status == 503) {
        json_t *doc = json_loadb(r.body, r.len, 0, NULL);
        const char *msg = json_string_value(json_object_get(json_object_get(doc, "error"), "message"));
        printf("unavailable (%s): %s\n", ctl->base_url, msg ? msg : r.body);
        json_decref(doc);
        ret = EXIT_API;
    } else {
        ret = api_error(ctl, &r);
    }
    reply_free(&r);
    return ret;
}

/* ---- validate (offline) ---- */

/* Whole of stdin; NULL on error (errno set). Caller frees with saga_free. */
static char *read_stdin(size_t *len_out) {
    size_t cap = 4096, len = 0;
    char *buf = saga_malloc(cap);
    if (!buf) return NULL;
    for (;;) {
        if (cap - len < 2) {
            char *grown = saga_realloc(buf, cap * 2);
            if (!grown) {
                saga_free(buf);
                errno = ENOMEM;
                return NULL;
            }
            buf = grown;
            cap *= 2;
        }
        size_t n = fread(buf + len, 1, cap - len - 1, stdin);
        len += n;
        if (n == 0) break;
    }
    if (ferror(stdin)) {
        saga_free(buf);
        errno = EIO;
        return NULL;
    }
    buf[len] = '\0';
    *len_out = len;
    return buf;
}

/* line < 0 marks a problem of the whole file (cannot read it), which has
 * no pointer: "FILE: message". */
#define WHOLE_FILE (-1)

/* One problem line, "FILE:POINTER: message" or "FILE:LINE:COL: message"
 * (the format of saga_registry_load_dir's report), with control
 * characters shown as '?'. */
static void problem(const char *file, const saga_def_error_t *e) {
    put_text(stderr, file);
    if (e->line == WHOLE_FILE) fputs(": ", stderr);
    else if (e->line > 0) fprintf(stderr, ":%d:%d: ", e->line, e->column);
    else {
        fputc(':', stderr);
        put_text(stderr, e->pointer);
        fputs(": ", stderr);
    }
    put_text(stderr, e->message);
    fputc('\n', stderr);
}

/* A file's verdict for --json: {"file", "ok", "name", "version", "steps",
 * "hash"} or {"file", "ok": false, "errors": [{"pointer"|"line","column",
 * "message"}], "more_errors": N}. NULL on allocation failure. */
static json_t *verdict_json(const char *file, const saga_definition_t *def, const saga_def_errors_t *errs) {
    json_t *v = json_pack("{s:s, s:b}", "file", file, "ok", def != NULL);
    if (!v) return NULL;
    if (def) {
        json_t *more = json_pack("{s:s, s:i, s:i, s:s}", "name", def->name, "version", def->version, "steps",
                                 def->step_count, "hash", def->hash);
        if (!more || json_object_update(v, more) != 0) {
            json_decref(more);
            json_decref(v);
            return NULL;
        }
        json_decref(more);
        return v;
    }
    json_t *list = json_array();
    int kept = errs->count < 32 ? errs->count : 32;
    for (int i = 0; list && i < kept; i++) {
        const saga_def_error_t *e = &errs->items[i];
        json_t *item = e->line == WHOLE_FILE ? json_pack("{s:s}", "message", e->message)
                       : e->line > 0 ? json_pack("{s:i, s:i, s:s}", "line", e->line, "column", e->column,
                                                 "message", e->message)
                                     : json_pack("{s:s, s:s}", "pointer", e->pointer, "message", e->message);
        if (!item || json_array_append_new(list, item) != 0) {
            json_decref(list);
            list = NULL;
        }
    }
    if (!list || json_object_set_new(v, "errors", list) != 0 ||
        (errs->count > kept && json_object_set_new(v, "more_errors", json_integer(errs->count - kept)) != 0)) {
        json_decref(v);
        return NULL;
    }
    return v;
}

/* Validates each file with the daemon's loader (saga_definition_parse),
 * and the files together as one registry: two files with the same name
 * and version but other content conflict, as they would in sagad's
 * definitions directory. Needs no admin API. */
static int cmd_validate(ctl_t *ctl, int argc, char **argv) {
    saga_registry_t *reg = saga_registry_new();
    json_t *results = ctl->json ? json_array() : NULL;
    if (!reg || (ctl->json && !results)) {
        saga_registry_free(&reg);
        json_decref(results);
        fprintf(stderr, "sagactl: out of memory\n");
        return EXIT_API;
    }
    int bad = 0, oom = 0;
    for (int i = 0; i < argc && !oom; i++) {
        const char *file = argv[i];
        saga_def_errors_t errs;
        memset(&errs, 0, sizeof errs);
        saga_definition_t *def = NULL;
        size_t len = 0;
        struct stat st;
        char *text = NULL;
        if (strcmp(file, "-") == 0) text = read_stdin(&len);
        else if (stat(file, &st) == 0 && S_ISDIR(st.st_mode)) errno = EISDIR;
        else text = saga_read_file(file, &len);
        if (!text) {
            snprintf(errs.items[0].message, sizeof errs.items[0].message, "cannot read: %s", strerror(errno));
            errs.items[0].line = WHOLE_FILE;
            errs.count = 1;
        } else {
            def = saga_definition_parse(text, len, &errs);
            saga_free(text);
            if (!def && errs.count == 0) {
                snprintf(errs.items[0].message, sizeof errs.items[0].message, "invalid definition");
                errs.items[0].line = WHOLE_FILE;
                errs.count = 1;
            }
        }
        /* what the registry needs after saga_registry_add took def */
        char name[SAGA_NAME_MAX] = "";
        int version = 0, steps = 0;
        if (def) {
            snprintf(name, sizeof name, "%s", def->name);
            version = def->version;
            steps = def->step_count;
            int rc = saga_registry_add(reg, def); /* takes def */
            def = NULL;
            if (rc == SAGA_EEXISTS) {
                snprintf(errs.items[0].pointer, sizeof errs.items[0].pointer, "/version");
                snprintf(errs.items[0].message, sizeof errs.items[0].message,
                         "definition '%s' version %d is already loaded with other content "
                         "(give the changed definition a new version)", name, version);
                errs.count = 1;
            } else if (rc != 0) {
                oom = 1;
                break;
            }
        }
        bool ok = errs.count == 0;
        if (!ok) bad++;
        if (ctl->json) {
            const saga_definition_t *got = ok ? saga_registry_get(reg, name, version) : NULL;
            json_t *v = verdict_json(file, got, &errs);
            if (!v || json_array_append_new(results, v) != 0) oom = 1;
        } else if (ok) {
            put_text(stdout, file);
            printf(": ok (%s v%d, %d step%s)\n", name, version, steps, steps == 1 ? "" : "s");
        } else {
            int kept = errs.count < 32 ? errs.count : 32;
            for (int k = 0; k < kept; k++) problem(file, &errs.items[k]);
            if (errs.count > kept) {
                put_text(stderr, file);
                fprintf(stderr, ": %d more errors not shown\n", errs.count - kept);
            }
        }
    }
    if (!oom && ctl->json) {
        json_t *doc = json_pack("{s:b, s:i, s:i, s:O}", "ok", bad == 0, "files", argc, "invalid", bad,
                                "results", results);
        char *text = doc ? json_dumps(doc, JSON_INDENT(2)) : NULL;
        if (text) puts(text);
        else oom = 1;
        json_free_t jfree;
        json_get_alloc_funcs(NULL, &jfree);
        if (text) jfree(text);
        json_decref(doc);
    }
    json_decref(results);
    saga_registry_free(&reg);
    if (oom) {
        fprintf(stderr, "sagactl: out of memory\n");
        return EXIT_API;
    }
    return bad ? EXIT_API : EXIT_OK;
}

/* ---- main ---- */

static int set_url(ctl_t *ctl, const char *url) {
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
        return usage_error("--url '%s': must start with http:// or https://", url);
    saga_free(ctl->base_url);
    ctl->base_url = saga_strdup(url);
    if (!ctl->base_url) return EXIT_API;
    size_t n = strlen(ctl->base_url);
    while (n > 0 && ctl->base_url[n - 1] == '/') ctl->base_url[--n] = '\0';
    return EXIT_OK;
}

/* Options may come before or after the command; "--" ends them. */
static int run(int argc, char **argv) {
    ctl_t ctl = {.timeout_s = 10};
    const char *url = getenv("SAGA_ADMIN_URL");
    char **pos = saga_calloc((size_t)argc + 1, sizeof *pos);
    int npos = 0, ret = EXIT_OK, only_pos = 0;
    if (!pos) return EXIT_API;
    for (int i = 1; i < argc && ret == EXIT_OK; i++) {
        const char *a = argv[i];
        if (only_pos || a[0] != '-' || a[1] == '\0' || (npos > 0 && strcmp(pos[0], "audit") == 0)) {
            pos[npos++] = argv[i];
        } else if (strcmp(a, "--") == 0) {
            only_pos = 1;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            saga_free(pos);
            return EXIT_OK;
        } else if (strcmp(a, "--json") == 0) {
            ctl.json = 1;
        } else if (strcmp(a, "--url") == 0 || strncmp(a, "--url=", 6) == 0) {
            if (a[5] == '=') url = a + 6;
            else if (i + 1 < argc) url = argv[++i];
            else ret = usage_error("--url needs a value");
            if (ret == EXIT_OK && (!url || !*url)) ret = usage_error("--url needs a value");
        } else if (strcmp(a, "--timeout") == 0 || strncmp(a, "--timeout=", 10) == 0) {
            const char *v = a[9] == '=' ? a + 10 : (i + 1 < argc ? argv[++i] : NULL);
            char *end = NULL;
            long t = v ? strtol(v, &end, 10) : 0;
            if (!v || !*v || *end || t <= 0 || t > 3600)
                ret = usage_error("--timeout: '%s' is not a number of seconds (1..3600)", v ? v : "");
            else
                ctl.timeout_s = t;
        } else if (npos > 0 && strcmp(pos[0], "list") == 0) { /* list's own options (cmd_list) */
            pos[npos++] = argv[i];
        } else {
            ret = usage_error("unknown option '%s'", a);
        }
    }
    if (ret == EXIT_OK) ret = set_url(&ctl, url && *url ? url : DEFAULT_URL);
    if (ret == EXIT_OK && npos == 0) {
        usage(stderr);
        ret = EXIT_USAGE;
    }
    if (ret == EXIT_OK) {
        const command_t *cmd = NULL;
        for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
            if (strcmp(commands[i].name, pos[0]) == 0) cmd = &commands[i];
        int nargs = npos - 1;
        if (!cmd)
            ret = usage_error("unknown command '%s'", pos[0]);
        else if (nargs < cmd->min_args || nargs > cmd->max_args)
            ret = usage_error("usage: sagactl %s %s", cmd->name, cmd->args);
        else
            ret = cmd->run(&ctl, nargs, pos + 1);
    }
    saga_free(ctl.base_url);
    saga_free(pos);
    return ret;
}

int main(int argc, char **argv) {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
        fprintf(stderr, "sagactl: cannot initialise libcurl\n");
        return EXIT_API;
    }
    int ret = run(argc, argv);
    curl_global_cleanup();
    return ret;
}

/* POST /v1/sagas/ID/VERB with an optional reason. */
static int post_saga_command(ctl_t *ctl, const char *id, const char *verb, const char *reason) {
    char *esc = curl_easy_escape(NULL, id, 0);
    json_t *body = reason ? json_pack("{s:s}", "reason", reason) : json_object();
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!esc || !text) {
        curl_free(esc);
        saga_free(text);
        fprintf(stderr, "sagactl: out of memory\n");
        return EXIT_API;
    }
    char path[600];
    snprintf(path, sizeof path, "/v1/sagas/%s/%s", esc, verb);
    curl_free(esc);
    reply_t r;
    int ret = http_request(ctl, "POST", path, text, &r);
    saga_free(text);
    if (ret != EXIT_OK) return ret;
    if (r.status == 202) {
        if (ctl->json) printf("%s\n", r.body);
        else printf("%s: %s accepted; the saga's progress: sagactl show %s\n", id, verb, id);
    } else {
        ret = api_error(ctl, &r);
    }
    reply_free(&r);
    return ret;
}

static int cmd_abort(ctl_t *ctl, int argc, char **argv) {
    char reason[512] = "";
    size_t used = 0;
    for (int i = 1; i < argc && used < sizeof reason; i++)
        used += (size_t)snprintf(reason + used, sizeof reason - used, "%s%s", i > 1 ? " " : "", argv[i]);
    return post_saga_command(ctl, argv[0], "abort", reason[0] ? reason : NULL);
}

static int cmd_retry(ctl_t *ctl, int argc, char **argv) { return post_saga_command(ctl, argv[0], "retry", NULL); }

/* ---- list, defs, stats ---- */

/* Frees what json_dumps returned, with jansson's allocator. */
static void dump_free(char *text) {
    json_free_t jfree;
    json_get_alloc_funcs(NULL, &jfree);
    if (text) jfree(text);
}

/* GET path; on 200 returns the parsed body (and the raw reply in *raw when
 * raw != NULL, else freed). Otherwise reports and sets *ret (1 API error,
 * 3 unreachable) and returns NULL. */
static json_t *get_json(ctl_t *ctl, const char *path, reply_t *raw, int *ret) {
    reply_t r;
    *ret = http_get(ctl, path, &r);
    if (*ret != EXIT_OK) return NULL;
    json_t *doc = NULL;
    if (r.status != 200) *ret = api_error(ctl, &r);
    else if (!(doc = reply_json(ctl, &r))) *ret = EXIT_API;
    if (raw && doc) *raw = r;
    else reply_free(&r);
    return doc;
}

/* Appends "&name=escaped(value)" to buf (size len). 0, or -1 when it does not fit. */
static int add_param(char *buf, size_t len, const char *name, const char *value) {
    char *esc = curl_easy_escape(NULL, value, 0);
    if (!esc) return -1;
    size_t used = strlen(buf);
    int n = snprintf(buf + used, len - used, "%s%s=%s", used ? "&" : "", name, esc);
    curl_free(esc);
    return n < 0 || (size_t)n >= len - used ? -1 : 0;
}

static const struct {
    const char *option, *param;
} LIST_OPTIONS[] = {
    {"--status", "status"},           {"--definition", "definition"},
    {"--step", "step"},               {"--step-status", "step_status"},
    {"--error-code", "error_code"},   {"--created-after", "created_after"},
    {"--created-before", "created_before"}, {"--updated-after", "updated_after"},
    {"--updated-before", "updated_before"}, {"--limit", "limit"},
    {"--cursor", "cursor"},
};

/* "name (status)" of a list item's current step, or "-". */
static void current_step_cell(char *buf, size_t len, const json_t *item) {
    const json_t *cs = json_object_get(item, "current_step");
    if (!json_is_object(cs)) {
        snprintf(buf, len, "-");
        return;
    }
    long long attempt = (long long)json_integer_value(json_object_get(cs, "attempt"));
    const char *status = str_or(json_object_get(cs, "status"), "?");
    if (!strncmp(status, "compensation", 12) || !strcmp(status, "compensating"))
        attempt = (long long)json_integer_value(json_object_get(cs, "compensation_attempt"));
    if (attempt > 1)
        snprintf(buf, len, "%s (%s, attempt %lld)", str_or(json_object_get(cs, "name"), "?"), status, attempt);
    else
        snprintf(buf, len, "%s (%s)", str_or(json_object_get(cs, "name"), "?"), status);
}

static int print_saga_list(FILE *out, const json_t *sagas) {
    static const char *const head[] = {"ID", "DEFINITION", "STATUS", "UPDATED", "CURRENT STEP", "ERROR"};
    table_t t;
    table_init(&t, 6, head);
    size_t i;
    json_t *s;
    int rc = 0;
    json_array_foreach(sagas, i, s) {
        char c[6][300];
        cell(c[0], sizeof c[0], json_object_get(s, "id"));
        snprintf(c[1], sizeof c[1], "%s@%" JSON_INTEGER_FORMAT, str_or(json_object_get(s, "definition"), "?"),
                 json_integer_value(json_object_get(s, "version")));
        cell(c[2], sizeof c[2], json_object_get(s, "status"));
        cell(c[3], sizeof c[3], json_object_get(s, "updated_at"));
        current_step_cell(c[4], sizeof c[4], s);
        json_t *err = json_object_get(s, "error");
        cell(c[5], sizeof c[5], json_is_object(err) ? json_object_get(err, "code") : NULL);
        char *row[6] = {c[0], c[1], c[2], c[3], c[4], c[5]};
        if (table_add(&t, row) != 0) rc = -1;
    }
    table_print(out, &t);
    table_free(&t);
    return rc;
}

/* list [--status S] [--definition D] [--limit N] [--all] and the other
 * filters of GET /v1/sagas; --all follows next_cursor to the end. */
static int cmd_list(ctl_t *ctl, int argc, char **argv) {
    char query[4096] = "";
    int all = 0, has_limit = 0, has_cursor = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--all") == 0) {
            all = 1;
            continue;
        }
        size_t k = 0, n = sizeof LIST_OPTIONS / sizeof LIST_OPTIONS[0];
        size_t olen = 0;
        for (; k < n; k++) {
            olen = strlen(LIST_OPTIONS[k].option);
            if (!strncmp(a, LIST_OPTIONS[k].option, olen) && (a[olen] == '\0' || a[olen] == '=')) break;
        }
        if (k == n) return usage_error("list: unknown argument '%s'", a);
        const char *v = a[olen] == '=' ? a + olen + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!v || !*v) return usage_error("list: %s needs a value", LIST_OPTIONS[k].option);
        if (!strcmp(LIST_OPTIONS[k].param, "limit")) {
            char *end = NULL;
            long lim = strtol(v, &end, 10);
            if (*end || lim < 1 || lim > 500) return usage_error("list: --limit '%s' is not a number from 1 to 500", v);
            has_limit = 1;
        }
        if (!strcmp(LIST_OPTIONS[k].param, "cursor")) has_cursor = 1;
        if (add_param(query, sizeof query, LIST_OPTIONS[k].param, v) != 0)
            return usage_error("list: the filters are too long");
    }
    if (all && has_cursor) return usage_error("list: --all starts at the first page; it takes no --cursor");
    if (all && !has_limit && add_param(query, sizeof query, "limit", "500") != 0)
        return usage_error("list: the filters are too long");

    json_t *sagas = json_array();
    if (!sagas) {
        fprintf(stderr, "sagactl: out of memory\n");
        return EXIT_API;
    }
    char *cursor = NULL;
    int ret = EXIT_OK, more = 0;
    for (;;) {
        char path[8192];
        char *esc = cursor ? curl_easy_escape(NULL, cursor, 0) : NULL;
        snprintf(path, sizeof path, "/v1/sagas%s%s%s%s", query[0] || esc ? "?" : "", query,
                 esc ? (query[0] ? "&cursor=" : "cursor=") : "", esc ? esc : "");
        curl_free(esc);
        reply_t raw;
        json_t *page = get_json(ctl, path, &raw, &ret);
        if (!page) break;
        if (ctl->json && !all) { /* one page, as the API sent it */
            fwrite(raw.body, 1, raw.len, stdout);
            fputc('\n', stdout);
            reply_free(&raw);
            json_decref(page);
            break;
        }
        reply_free(&raw);
        json_array_extend(sagas, json_object_get(page, "sagas"));
        const char *next = json_string_value(json_object_get(page, "next_cursor"));
        saga_free(cursor);
        cursor = next ? saga_strdup(next) : NULL;
        json_decref(page);
        if (!cursor || !all) {
            more = cursor != NULL;
            break;
        }
    }
    if (ret == EXIT_OK && ctl->json && all) {
        json_t *doc = json_pack("{s:O, s:n}", "sagas", sagas, "next_cursor");
        char *text = doc ? json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        if (text) printf("%s\n", text);
        else ret = EXIT_API;
        dump_free(text);
        json_decref(doc);
    } else if (ret == EXIT_OK && !ctl->json) {
        if (json_array_size(sagas) == 0) {
            printf("no sagas match\n");
        } else {
            if (print_saga_list(stdout, sagas) != 0) ret = EXIT_API;
            if (more) printf("(more sagas match: --all lists every one; the next page: --cursor %s)\n", cursor);
        }
    }
    saga_free(cursor);
    json_decref(sagas);
    return ret;
}

/* defs [NAME [VERSION]] */
static int cmd_defs(ctl_t *ctl, int argc, char **argv) {
    char path[1024] = "/v1/definitions";
    for (int i = 0; i < argc; i++) {
        if (!*argv[i]) return usage_error("defs: empty %s", i ? "version" : "name");
        char *esc = curl_easy_escape(NULL, argv[i], 0);
        if (!esc) return EXIT_API;
        size_t used = strlen(path);
        snprintf(path + used, sizeof path - used, "/%s", esc);
        curl_free(esc);
    }
    int ret;
    reply_t raw;
    json_t *doc = get_json(ctl, path, &raw, &ret);
    if (!doc) return ret;
    if (ctl->json) {
        fwrite(raw.body, 1, raw.len, stdout);
        fputc('\n', stdout);
    } else if (argc == 2) { /* the definition itself, as a file would hold it */
        char *text = json_dumps(json_object_get(doc, "definition"), JSON_INDENT(2) | JSON_PRESERVE_ORDER |
                                                                        JSON_ENCODE_ANY);
        if (text) printf("%s\n", text);
        else ret = EXIT_API;
        dump_free(text);
    } else {
        json_t *list = json_object_get(doc, argc ? "versions" : "definitions");
        static const char *const head[] = {"NAME", "VERSION", "STEPS", "HASH", "LOADED"};
        table_t t;
        table_init(&t, 5, head);
        size_t i;
        json_t *d;
        json_array_foreach(list, i, d) {
            char c[5][200];
            cell(c[0], sizeof c[0], json_object_get(d, "name"));
            cell(c[1], sizeof c[1], json_object_get(d, "version"));
            cell(c[2], sizeof c[2], json_object_get(d, "steps"));
            snprintf(c[3], sizeof c[3], "%.12s", str_or(json_object_get(d, "hash"), "-"));
            cell(c[4], sizeof c[4], json_object_get(d, "loaded_at"));
            char *row[5] = {c[0], c[1], c[2], c[3], c[4]};
            if (table_add(&t, row) != 0) ret = EXIT_API;
        }
        if (json_array_size(list) == 0) printf("no definitions loaded\n");
        else table_print(stdout, &t);
        table_free(&t);
    }
    reply_free(&raw);
    json_decref(doc);
    return ret;
}

/* "3d 4h", "2h 5m", "4m 10s", "12s", "850ms". */
static void format_age(char *buf, size_t len, long long ms) {
    long long s = ms / 1000, m = s / 60, h = m / 60, d = h / 24;
    if (d > 0) snprintf(buf, len, "%lldd %lldh", d, h % 24);
    else if (h > 0) snprintf(buf, len, "%lldh %lldm", h, m % 60);
    else if (m > 0) snprintf(buf, len, "%lldm %llds", m, s % 60);
    else if (s > 0) snprintf(buf, len, "%llds", s);
    else snprintf(buf, len, "%lldms", ms < 0 ? 0 : ms);
}

/* A two-column table of an object of counts. */
static void print_counts(FILE *out, const char *title, const char *what, const json_t *counts) {
    const char *head[] = {what, "COUNT"};
    table_t t;
    table_init(&t, 2, head);
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)counts, key, v) {
        char n[32];
        cell(n, sizeof n, v);
        char *row[2] = {(char *)key, n};
        table_add(&t, row);
    }
    fprintf(out, "\n%s\n", title);
    table_print(out, &t);
    table_free(&t);
}

static int cmd_stats(ctl_t *ctl, int argc, char **argv) {
    int ret;
    reply_t raw;
    json_t *doc = get_json(ctl, "/v1/stats", &raw, &ret);
    if (!doc) return ret;
    if (ctl->json) {
        fwrite(raw.body, 1, raw.len, stdout);
        fputc('\n', stdout);
        reply_free(&raw);
        json_decref(doc);
        return ret;
    }
    reply_free(&raw);
    json_t *sagas = json_object_get(doc, "sagas"), *steps = json_object_get(doc, "steps");
    printf("%-15s %" JSON_INTEGER_FORMAT "\n", "Sagas", json_integer_value(json_object_get(sagas, "total")));
    printf("%-15s %" JSON_INTEGER_FORMAT "\n", "Steps", json_integer_value(json_object_get(steps, "total")));
    json_t *old = json_object_get(doc, "oldest_running");
    printf("%-15s ", "Oldest running");
    if (json_is_object(old)) {
        char age[64];
        format_age(age, sizeof age, (long long)json_integer_value(json_object_get(old, "age_ms")));
        put_text(stdout, str_or(json_object_get(old, "id"), "?"));
        printf(" (");
        put_text(stdout, str_or(json_object_get(old, "definition"), "?"));
        printf("@%" JSON_INTEGER_FORMAT "), started %s, age %s\n", json_integer_value(json_object_get(old, "version")),
               str_or(json_object_get(old, "created_at"), "?"), age);
    } else {
        printf("-\n");
    }

    print_counts(stdout, "Sagas by status", "STATUS", json_object_get(sagas, "by_status"));

    /* the statuses that need attention first */
    static const char *const cols[] = {"running", "compensating", "compensation_failed", "completed", "compensated"};
    static const char *const head[] = {"DEFINITION", "TOTAL", "RUNNING", "COMPENSATING", "COMPENSATION_FAILED",
                                       "COMPLETED", "COMPENSATED"};
    table_t t;
    table_init(&t, 7, head);
    const char *name;
    json_t *d;
    json_object_foreach(json_object_get(sagas, "by_definition"), name, d) {
        char c[7][64];
        snprintf(c[0], sizeof c[0], "%s", name);
        cell(c[1], sizeof c[1], json_object_get(d, "total"));
        for (size_t k = 0; k < 5; k++)
            cell(c[k + 2], sizeof c[k + 2], json_object_get(json_object_get(d, "by_status"), cols[k]));
        char *row[7] = {c[0], c[1], c[2], c[3], c[4], c[5], c[6]};
        if (table_add(&t, row) != 0) ret = EXIT_API;
    }
    printf("\nSagas by definition\n");
    if (t.nrows) table_print(stdout, &t);
    else printf("  -\n");
    table_free(&t);

    print_counts(stdout, "Steps by status", "STATUS", json_object_get(steps, "by_status"));

    /* What sagad adds from its memory (in-flight per topic, circuits). */
    json_t *runtime = json_object_get(doc, "runtime");
    if (json_is_object(runtime) && json_object_size(runtime) > 0) {
        printf("\nRuntime\n");
        const char *key;
        json_t *v;
        json_object_foreach(runtime, key, v) {
            char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
            printf("  ");
            put_text(stdout, key);
            printf("  ");
            put_text(stdout, text ? text : "?");
            printf("\n");
            dump_free(text);
        }
    }
    json_decref(doc);
    return ret;
}

/* POST path with body; prints the answer for 200/202. */
static int post_json(ctl_t *ctl, const char *path, const char *body, const char *what) {
    reply_t r;
    int ret = http_request(ctl, "POST", path, body, &r);
    if (ret != EXIT_OK) return ret;
    if (r.status == 200 || r.status == 202) {
        json_t *doc = json_loadb(r.body, r.len, 0, NULL);
        if (ctl->json || !doc) printf("%s\n", r.body);
        else if (json_object_get(doc, "saga_id"))
            printf("%s %s: %s\n", what, json_string_value(json_object_get(doc, "saga_id")),
                   r.status == 202 ? "accepted" : json_string_value(json_object_get(doc, "status")));
        else
            printf("%s: accepted\n", what);
        json_decref(doc);
    } else {
        ret = api_error(ctl, &r);
    }
    reply_free(&r);
    return ret;
}

static int cmd_start(ctl_t *ctl, int argc, char **argv) {
    json_t *input = NULL;
    if (argc > 1) {
        json_error_t jerr = {0};
        input = json_loads(argv[1], 0, &jerr);
        if (!json_is_object(input)) {
            json_decref(input);
            return usage_error("start: INPUT_JSON must be a JSON object (%s)", input ? "not an object" : jerr.text);
        }
    }
    json_t *body = json_pack("{s:s, s:o}", "definition", argv[0], "input", input ? input : json_object());
    if (body && argc > 2) json_object_set_new(body, "saga_id", json_string(argv[2]));
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text) {
        fprintf(stderr, "sagactl: out of memory\n");
        return EXIT_API;
    }
    int ret = post_json(ctl, "/v1/sagas", text, "saga");
    saga_free(text);
    return ret;
}

static int cmd_reload(ctl_t *ctl, int argc, char **argv) { return post_json(ctl, "/v1/definitions/reload", "{}", "reload"); }
