/* sagactl list, defs and stats: the read-only listings of the admin API. */
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

/* list [--status S] [--definition D] [--search NAME=VALUE]... [--limit N]
 * [--all] and the other filters of GET /v1/sagas; --all follows
 * next_cursor to the end. */
int cmd_list(ctl_t *ctl, int argc, char **argv) {
    char query[4096] = "";
    int all = 0, has_limit = 0, has_cursor = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--all") == 0) {
            all = 1;
            continue;
        }
        if (!strncmp(a, "--search", 8) && (a[8] == '\0' || a[8] == '=')) { /* --search NAME=VALUE, repeatable */
            const char *v = a[8] == '=' ? a + 9 : (i + 1 < argc ? argv[++i] : NULL);
            const char *eq = v ? strchr(v, '=') : NULL;
            if (!eq || eq == v) return usage_error("list: --search takes NAME=VALUE, e.g. --search order_id=o-17");
            char param[128];
            if ((size_t)(eq - v) + 8 >= sizeof param) return usage_error("list: --search: the name is too long");
            snprintf(param, sizeof param, "search.%.*s", (int)(eq - v), v);
            if (add_param(query, sizeof query, param, eq + 1) != 0) return usage_error("list: the filters are too long");
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
int cmd_defs(ctl_t *ctl, int argc, char **argv) {
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

static const char *or_unknown(const char *s) { return s ? s : "?"; }

int cmd_stats(ctl_t *ctl, int argc, char **argv) {
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

    json_t *paused = json_object_get(doc, "paused_topics");
    if (json_object_size(paused) > 0) { /* commands held by an operator (sagactl pause / resume) */
        printf("\nPaused topics\n");
        json_object_foreach(paused, name, d) {
            printf("  ");
            put_text(stdout, name);
            printf("  since %s", str_or(json_object_get(d, "paused_at"), "?"));
            const char *why = str_or(json_object_get(d, "reason"), "");
            if (*why) {
                printf(": ");
                put_text(stdout, why);
            }
            printf("\n");
        }
    }

    /* What sagad adds from its memory (in-flight per topic, circuits). */
    json_t *runtime = json_object_get(doc, "runtime");
    json_t *cluster = json_object_get(runtime, "cluster");
    if (json_array_size(cluster) > 0) {
        /* Several instances share the partitions: the figures above are the
         * shards this instance owns; each instance answers for its own. */
        static const char *const chead[] = {"INSTANCE", "SHARDS", "ADMIN_URL", "SEEN"};
        table_t ct;
        table_init(&ct, 4, chead);
        size_t i;
        json_t *inst;
        json_array_foreach(cluster, i, inst) {
            char c[4][512];
            snprintf(c[0], sizeof c[0], "%s%s", or_unknown(json_string_value(json_object_get(inst, "instance"))),
                     json_is_true(json_object_get(inst, "self")) ? " (this one)" : "");
            size_t o = 0, k;
            json_t *p;
            c[1][0] = '\0';
            json_array_foreach(json_object_get(inst, "shards"), k, p)
                if (o < sizeof c[1]) o += (size_t)snprintf(c[1] + o, sizeof c[1] - o, "%s%lld", k ? "," : "", (long long)json_integer_value(p));
            snprintf(c[2], sizeof c[2], "%s", or_unknown(json_string_value(json_object_get(inst, "admin_url"))));
            snprintf(c[3], sizeof c[3], "%.1f s ago", (double)json_integer_value(json_object_get(inst, "age_ms")) / 1000.0);
            char *row[4] = {c[0], c[1], c[2], c[3]};
            if (table_add(&ct, row) != 0) ret = EXIT_API;
        }
        printf("\nCluster (the sagas and steps above cover every shard; this instance owns %lld)\n",
               (long long)json_integer_value(json_object_get(runtime, "owned_shards")));
        table_print(stdout, &ct);
        table_free(&ct);
    }
    if (json_is_object(runtime) && json_object_size(runtime) > 0) {
        printf("\nRuntime\n");
        const char *key;
        json_t *v;
        json_object_foreach(runtime, key, v) {
            if (!strcmp(key, "cluster")) continue;
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
