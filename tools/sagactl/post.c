/* sagactl abort, retry, start and reload: the commands that POST to the admin API (with the token). */
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

/* POSTs text (JSON, freed here) to path. On 202 prints the answer with
 * --json, else the line fmt makes; any other status is the API's error. */
#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
static int post_accepted(ctl_t *ctl, const char *path, char *text, const char *fmt, ...) {
    reply_t r;
    int ret = http_request(ctl, "POST", path, text, &r);
    saga_free(text);
    if (ret != EXIT_OK) return ret;
    if (r.status == 202 && ctl->json) {
        printf("%s\n", r.body);
    } else if (r.status == 202) {
        va_list ap;
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        putchar('\n');
    } else {
        ret = api_error(ctl, &r);
    }
    reply_free(&r);
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
    return post_accepted(ctl, path, text, "%s: %s accepted; the saga's progress: sagactl show %s", id, verb, id);
}

static const struct {
    const char *option, *member;
} BULK_FILTERS[] = {
    {"--definition", "definition"},         {"--step", "step"},
    {"--step-status", "step_status"},       {"--error-code", "error_code"},
    {"--created-after", "created_after"},   {"--created-before", "created_before"},
    {"--updated-after", "updated_after"},   {"--updated-before", "updated_before"},
    {"--reason", "reason"},
};

/* "--name VALUE" or "--name=VALUE" at argv[*i]: the value (NULL when a has
 * another name; *missing set when the value is missing). */
static const char *option_value(int argc, char **argv, int *i, const char *name, int *missing) {
    size_t n = strlen(name);
    const char *a = argv[*i];
    if (strncmp(a, name, n) != 0 || (a[n] != '\0' && a[n] != '=')) return NULL;
    const char *v = a[n] == '=' ? a + n + 1 : (*i + 1 < argc ? argv[++*i] : NULL);
    if (!v || !*v) *missing = 1;
    return v;
}

static void print_ids(const json_t *doc) {
    size_t i;
    json_t *id;
    json_t *ids = json_object_get(doc, "first_ids");
    if (json_array_size(ids) == 0) return;
    printf("first ids:\n");
    json_array_foreach(ids, i, id) {
        printf("  ");
        put_text(stdout, str_or(id, "?"));
        printf("\n");
    }
}

/* abort/retry without an ID: POST /v1/sagas/VERB with the filters of
 * GET /v1/sagas as a JSON body; prints the count and the first ids. */
static int post_bulk(ctl_t *ctl, const char *verb, int argc, char **argv) {
    json_t *body = json_object(), *search = json_object(), *statuses = json_array();
    int ret = EXIT_OK;
    if (!body || !search || !statuses) ret = EXIT_API;
    for (int i = 0; i < argc && ret == EXIT_OK; i++) {
        const char *a = argv[i], *v;
        int missing = 0;
        size_t k, n = sizeof BULK_FILTERS / sizeof BULK_FILTERS[0];
        if (strcmp(a, "--dry-run") == 0) {
            json_object_set_new(body, "dry_run", json_true());
            continue;
        }
        for (k = 0; k < n; k++)
            if ((v = option_value(argc, argv, &i, BULK_FILTERS[k].option, &missing)) || missing) break;
        if (k < n) {
            if (missing) ret = usage_error("%s: %s needs a value", verb, BULK_FILTERS[k].option);
            else json_object_set_new(body, BULK_FILTERS[k].member, json_string(v));
        } else if ((v = option_value(argc, argv, &i, "--status", &missing)) || missing) {
            if (missing) ret = usage_error("%s: --status needs a value", verb);
            for (const char *s = v; !missing && s && *s;) { /* S[,S...] */
                size_t len = strcspn(s, ",");
                if (len) json_array_append_new(statuses, json_stringn(s, len));
                s += len + (s[len] == ',');
            }
        } else if ((v = option_value(argc, argv, &i, "--search", &missing)) || missing) {
            const char *eq = v ? strchr(v, '=') : NULL;
            if (!eq || eq == v)
                ret = usage_error("%s: --search takes NAME=VALUE ('%s')", verb, v ? v : "");
            else {
                char name[256];
                snprintf(name, sizeof name, "%.*s", (int)(eq - v), v);
                json_object_set_new(search, name, json_string(eq + 1));
            }
        } else if ((v = option_value(argc, argv, &i, "--max", &missing)) || missing) {
            char *end = NULL;
            long m = v ? strtol(v, &end, 10) : 0;
            if (!v || *end || m < 1 || m > 10000) ret = usage_error("%s: --max '%s' is not a number from 1 to 10000", verb, v ? v : "");
            else json_object_set_new(body, "max", json_integer(m));
        } else {
            ret = usage_error("%s: unknown argument '%s' (an ID comes first: sagactl %s ID)", verb, a, verb);
        }
    }
    if (ret == EXIT_OK && json_array_size(statuses))
        json_object_set(body, "status", json_array_size(statuses) == 1 ? json_array_get(statuses, 0) : statuses);
    if (ret == EXIT_OK && json_object_size(search)) json_object_set(body, "search", search);
    char *text = ret == EXIT_OK ? json_dumps(body, JSON_COMPACT) : NULL;
    int dry = json_is_true(json_object_get(body, "dry_run"));
    json_decref(body);
    json_decref(search);
    json_decref(statuses);
    if (ret != EXIT_OK) return ret;
    if (!text) {
        fprintf(stderr, "sagactl: out of memory\n");
        return EXIT_API;
    }
    /* thousands of sagas are handed over in batches: more than the default 10 s */
    if (!ctl->timeout_set && ctl->timeout_s < 300) ctl->timeout_s = 300;
    char path[64];
    snprintf(path, sizeof path, "/v1/sagas/%s", verb);
    reply_t r;
    ret = http_request(ctl, "POST", path, text, &r);
    saga_free(text);
    if (ret != EXIT_OK) return ret;
    json_t *doc = (r.status == 200 || r.status == 202) ? reply_json(ctl, &r) : NULL;
    if (r.status != 200 && r.status != 202) {
        ret = api_error(ctl, &r);
        json_t *e = json_loadb(r.body, r.len, 0, NULL); /* a 503 part-way says how far it got */
        if (json_is_integer(json_object_get(e, "queued")))
            fprintf(stderr, "sagactl: %" JSON_INTEGER_FORMAT " of %" JSON_INTEGER_FORMAT " commands were handed over\n",
                    json_integer_value(json_object_get(e, "queued")), json_integer_value(json_object_get(e, "matched")));
        json_decref(e);
    } else if (!doc) {
        ret = EXIT_API;
    } else if (ctl->json) {
        printf("%s\n", r.body);
    } else {
        json_int_t matched = json_integer_value(json_object_get(doc, "matched"));
        int more = json_is_true(json_object_get(doc, "more"));
        if (dry)
            printf("dry run: %" JSON_INTEGER_FORMAT " saga(s) match%s; %s changes nothing\n", matched,
                   more ? " (and more beyond --max)" : "", verb);
        else
            printf("%s: %" JSON_INTEGER_FORMAT " of %" JSON_INTEGER_FORMAT " saga(s) queued%s; follow with: sagactl stats\n",
                   verb, json_integer_value(json_object_get(doc, "queued")), matched,
                   more ? " (more matched than --max: run it again for the next ones)" : "");
        print_ids(doc);
    }
    json_decref(doc);
    reply_free(&r);
    return ret;
}

static int id_given(int argc, char **argv) { return argc > 0 && strncmp(argv[0], "--", 2) != 0; }

int cmd_abort(ctl_t *ctl, int argc, char **argv) {
    if (!id_given(argc, argv)) return post_bulk(ctl, "abort", argc, argv);
    char reason[512] = "";
    size_t used = 0;
    for (int i = 1; i < argc && used < sizeof reason; i++)
        used += (size_t)snprintf(reason + used, sizeof reason - used, "%s%s", i > 1 ? " " : "", argv[i]);
    return post_saga_command(ctl, argv[0], "abort", reason[0] ? reason : NULL);
}

/* retry ID [--reason R], or the bulk form. */
int cmd_retry(ctl_t *ctl, int argc, char **argv) {
    if (!id_given(argc, argv)) return post_bulk(ctl, "retry", argc, argv);
    const char *reason = NULL;
    for (int i = 1; i < argc; i++) {
        int missing = 0;
        const char *v = option_value(argc, argv, &i, "--reason", &missing);
        if (!v || missing) return usage_error("usage: sagactl retry ID [--reason R]");
        reason = v;
    }
    return post_saga_command(ctl, argv[0], "retry", reason);
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

/* Takes "--NAME VALUE" / "--NAME=VALUE" out of argv (moving the rest down):
 * 1 with *value set, 0 when absent, -1 when it has no value. */
static int take_option(int *argc, char **argv, const char *name, const char **value) {
    size_t n = strlen(name);
    for (int i = 0; i < *argc; i++) {
        if (strncmp(argv[i], name, n) != 0 || (argv[i][n] != '\0' && argv[i][n] != '=')) continue;
        int used = argv[i][n] == '=' ? 1 : 2;
        if (used == 2 && i + 1 >= *argc) return -1;
        *value = used == 1 ? argv[i] + n + 1 : argv[i + 1];
        for (int k = i; k + used < *argc; k++) argv[k] = argv[k + used];
        *argc -= used;
        return **value ? 1 : -1;
    }
    return 0;
}

int cmd_start(ctl_t *ctl, int argc, char **argv) {
    const char *delay = NULL, *not_before = NULL;
    int has_delay = take_option(&argc, argv, "--delay", &delay);
    int has_not_before = take_option(&argc, argv, "--not-before", &not_before);
    if (has_delay < 0 || has_not_before < 0) return usage_error("start: --delay and --not-before need a value");
    if (has_delay && has_not_before) return usage_error("start: give --delay or --not-before, not both");
    if (argc < 1 || argc > 3) return usage_error("start: DEFINITION [INPUT_JSON [SAGA_ID]]");
    for (int i = 0; i < argc; i++)
        if (!strncmp(argv[i], "--", 2)) return usage_error("start: unknown option '%s'", argv[i]);
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
    if (body && delay) json_object_set_new(body, "delay", json_string(delay));
    if (body && not_before) json_object_set_new(body, "not_before", json_string(not_before));
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

int cmd_reload(ctl_t *ctl, int argc, char **argv) { return post_json(ctl, "/v1/definitions/reload", "{}", "reload"); }

/* signal ID NAME [--fail] [JSON]: JSON is the signal's output, or with
 * --fail its error {"code", "message"} (default {"code": "REJECTED"}). */
int cmd_signal(ctl_t *ctl, int argc, char **argv) {
    int fail = 0, npos = 0;
    const char *pos[3] = {NULL, NULL, NULL};
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--fail")) fail = 1;
        else if (!strncmp(argv[i], "--", 2)) return usage_error("signal: unknown option '%s'", argv[i]);
        else if (npos < 3) pos[npos++] = argv[i];
        else return usage_error("signal: ID NAME [--fail] [JSON]");
    }
    if (npos < 2) return usage_error("signal: ID NAME [--fail] [JSON]");
    json_t *data = NULL;
    if (pos[2]) {
        json_error_t jerr = {0};
        data = json_loads(pos[2], 0, &jerr);
        if (!json_is_object(data)) {
            json_decref(data);
            return usage_error("signal: JSON must be a JSON object (%s), the %s", data ? "not an object" : jerr.text,
                               fail ? "error {\"code\", \"message\"}" : "output");
        }
    }
    if (fail && !data) data = json_pack("{s:s}", "code", "REJECTED");
    json_t *body = json_pack("{s:s}", "status", fail ? "failure" : "success");
    if (body && data) json_object_set_new(body, fail ? "error" : "output", data);
    else json_decref(data);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    char *id = curl_easy_escape(NULL, pos[0], 0), *name = curl_easy_escape(NULL, pos[1], 0);
    char path[1200];
    if (id && name) snprintf(path, sizeof path, "/v1/sagas/%s/signals/%s", id, name);
    curl_free(id);
    curl_free(name);
    if (!text || !id || !name) {
        saga_free(text);
        fprintf(stderr, "sagactl: out of memory\n");
        return EXIT_API;
    }
    return post_accepted(ctl, path, text, "%s: signal '%s' (%s) accepted; the saga's progress: sagactl show %s", pos[0],
                         pos[1], fail ? "failure" : "success", pos[0]);
}

/* pause TOPIC [REASON...] / resume TOPIC: POST /v1/topics/TOPIC/pause|resume. */
static int post_topic(ctl_t *ctl, int argc, char **argv, const char *verb) {
    char reason[512] = "";
    size_t used = 0;
    for (int i = 1; i < argc && used < sizeof reason; i++)
        used += (size_t)snprintf(reason + used, sizeof reason - used, "%s%s", i > 1 ? " " : "", argv[i]);
    json_t *body = reason[0] ? json_pack("{s:s}", "reason", reason) : json_object();
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    char *esc = curl_easy_escape(NULL, argv[0], 0);
    char path[700];
    if (esc) snprintf(path, sizeof path, "/v1/topics/%s/%s", esc, verb);
    curl_free(esc);
    if (!text || !esc) {
        saga_free(text);
        fprintf(stderr, "sagactl: out of memory\n");
        return EXIT_API;
    }
    return post_accepted(ctl, path, text, "%s: %s; sagactl stats lists the paused topics", argv[0],
                         !strcmp(verb, "pause") ? "paused (commands to it are held)" : "resumed (held commands go out)");
}

int cmd_pause(ctl_t *ctl, int argc, char **argv) { return post_topic(ctl, argc, argv, "pause"); }
int cmd_resume(ctl_t *ctl, int argc, char **argv) { return post_topic(ctl, argc, argv, "resume"); }
