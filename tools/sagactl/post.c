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

int cmd_abort(ctl_t *ctl, int argc, char **argv) {
    char reason[512] = "";
    size_t used = 0;
    for (int i = 1; i < argc && used < sizeof reason; i++)
        used += (size_t)snprintf(reason + used, sizeof reason - used, "%s%s", i > 1 ? " " : "", argv[i]);
    return post_saga_command(ctl, argv[0], "abort", reason[0] ? reason : NULL);
}

int cmd_retry(ctl_t *ctl, int argc, char **argv) { return post_saga_command(ctl, argv[0], "retry", NULL); }

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
    reply_t r;
    int ret = http_request(ctl, "POST", path, text, &r);
    saga_free(text);
    if (ret != EXIT_OK) return ret;
    if (r.status == 202) {
        if (ctl->json) printf("%s\n", r.body);
        else printf("%s: signal '%s' (%s) accepted; the saga's progress: sagactl show %s\n", pos[0], pos[1],
                    fail ? "failure" : "success", pos[0]);
    } else {
        ret = api_error(ctl, &r);
    }
    reply_free(&r);
    return ret;
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
    reply_t r;
    int ret = http_request(ctl, "POST", path, text, &r);
    saga_free(text);
    if (ret != EXIT_OK) return ret;
    if (r.status == 202) {
        if (ctl->json) printf("%s\n", r.body);
        else printf("%s: %s; sagactl stats lists the paused topics\n", argv[0],
                    !strcmp(verb, "pause") ? "paused (commands to it are held)" : "resumed (held commands go out)");
    } else {
        ret = api_error(ctl, &r);
    }
    reply_free(&r);
    return ret;
}

int cmd_pause(ctl_t *ctl, int argc, char **argv) { return post_topic(ctl, argc, argv, "pause"); }
int cmd_resume(ctl_t *ctl, int argc, char **argv) { return post_topic(ctl, argc, argv, "resume"); }
