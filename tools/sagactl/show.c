/* sagactl show (one saga: fields, steps with a timeline, history) and sagactl health. */
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
    json_t *parent = json_object_get(saga, "parent");
    if (json_is_object(parent)) { /* a child saga: whose step ran it */
        snprintf(buf, sizeof buf, "%s (step %s)", str_or(json_object_get(parent, "saga_id"), "?"),
                 str_or(json_object_get(parent, "step"), "?"));
        field(out, "Parent", buf);
    }
    size_t ci;
    json_t *child;
    json_array_foreach(json_object_get(saga, "children"), ci, child) {
        snprintf(buf, sizeof buf, "%s (step %s)", str_or(json_object_get(child, "saga_id"), "?"),
                 str_or(json_object_get(child, "step"), "?"));
        field(out, ci ? "" : "Children", buf);
    }
    json_t *search = json_object_get(saga, "search");
    if (json_object_size(search) > 0) { /* NAME=VALUE ..., as `list --search` takes them */
        size_t o = 0;
        const char *name;
        json_t *v;
        buf[0] = '\0';
        json_object_foreach(search, name, v)
            if (o < sizeof buf)
                o += (size_t)snprintf(buf + o, sizeof buf - o, "%s%s=%s", o ? " " : "", name, str_or(v, ""));
        field(out, "Search", buf);
    }
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

int cmd_show(ctl_t *ctl, int argc, char **argv) {
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

int cmd_health(ctl_t *ctl, int argc, char **argv) {
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
