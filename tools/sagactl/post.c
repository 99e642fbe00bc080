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

int cmd_start(ctl_t *ctl, int argc, char **argv) {
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

int cmd_reload(ctl_t *ctl, int argc, char **argv) { return post_json(ctl, "/v1/definitions/reload", "{}", "reload"); }
