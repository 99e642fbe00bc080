/* sagactl: the command line over sagad's admin HTTP API (docs/ADMIN-API.md).
 *
 *   sagactl [--url URL] [--json] [--timeout SECONDS] COMMAND [ARGS]
 *
 * Commands are rows of one table (name, arguments, help, handler); a new
 * command is a handler and a row. Exit codes: 0 ok, 1 not found or API
 * error, 2 usage, 3 cannot reach the admin API. */
#include "sagactl.h"
#include "audit.h"
#include "saga_alloc.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#define DEFAULT_URL "http://127.0.0.1:8080"

typedef struct {
    const char *name;
    const char *args; /* synopsis of the arguments */
    const char *help;
    int min_args, max_args;
    int (*run)(ctl_t *ctl, int argc, char **argv);
} command_t;

/* `audit` is offline (tools/sagactl/audit.c) and parses its own options (audit_cli.c). */
static int cmd_audit(ctl_t *ctl, int argc, char **argv) { return sagactl_audit_main(argc, argv, ctl->json); }

static const command_t commands[] = {
    {"show", "ID", "show one saga: status, steps and history", 1, 1, cmd_show},
    {"list", "[--status S] [--definition D] [--search NAME=VALUE]... [--limit N] [--all]",
     "list sagas, newest first (more filters: --step, --step-status, --error-code, --created-after/-before,"
     " --updated-after/-before, --cursor)", 0, INT_MAX, cmd_list},
    {"health", "", "check that the admin API and sagad's shards answer", 0, 0, cmd_health},
    {"defs", "[NAME [VERSION]]", "the loaded saga definitions; with NAME and VERSION the definition itself", 0, 2,
     cmd_defs},
    {"stats", "", "counts of sagas and steps by status and definition, the oldest running saga", 0, 0, cmd_stats},
    {"validate", "FILE...", "check saga definition files offline (no API; '-' reads stdin)", 1, INT_MAX,
     cmd_validate},
    {"audit", "[--saga-db DIR|F ...]", "check sagad's shards against the workers' ledgers (offline; audit --help)", 0,
     INT_MAX, cmd_audit},
    {"abort", "ID [REASON...]", "compensate a running saga (token: SAGA_ADMIN_TOKEN[_FILE])", 1, INT_MAX, cmd_abort},
    {"retry", "ID [--reason R]", "resume a compensation_failed saga's compensation (token as for abort)", 1, 3,
     cmd_retry},
    /* the bulk forms need at least one option: a bare `sagactl retry` selects nothing by accident */
    {"abort", "--status running [FILTERS]", "abort every saga the filters select (see bulk options)", 1, INT_MAX,
     cmd_abort},
    {"retry", "--status compensation_failed [FILTERS]", "retry every saga the filters select (bulk options)", 1,
     INT_MAX, cmd_retry},
    {"start", "DEFINITION [INPUT_JSON [SAGA_ID]] [--delay D | --not-before TIME]",
     "start a saga (idempotent on SAGA_ID; token as for abort); --delay 15m or --not-before 2026-12-24T18:00:00Z"
     " schedules it", 1, 5, cmd_start},
    {"signal", "ID NAME [--fail] [JSON]",
     "send signal NAME to a saga's signal step: JSON is its output, or with --fail its error {\"code\",\"message\"}"
     " (token as for abort)", 2, 4, cmd_signal},
    {"pause", "TOPIC [REASON...]", "hold every new command to a participant topic until resume (token as for abort)", 1,
     INT_MAX, cmd_pause},
    {"resume", "TOPIC", "let the commands held for a paused topic go out (token as for abort)", 1, 1, cmd_resume},
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
        char synopsis[128];
        snprintf(synopsis, sizeof synopsis, "%s %s", commands[i].name, commands[i].args);
        /* a synopsis longer than the column gets a line of its own (the man page is made from this table) */
        if (strlen(synopsis) > 18) fprintf(out, "  %s\n  %-18s %s\n", synopsis, "", commands[i].help);
        else fprintf(out, "  %-18s %s\n", synopsis, commands[i].help);
    }
    fprintf(out,
            "\nbulk options of abort and retry without an ID (POST /v1/sagas/abort, /v1/sagas/retry):\n"
            "  --status S[,S]     retry: compensation_failed (the default); abort: running,scheduled (the default)\n"
            "  --definition D  --step S  --step-status S  --error-code C\n"
            "  --created-after T  --created-before T  --updated-after T  --updated-before T  (RFC 3339)\n"
            "  --search NAME=VALUE  (repeatable)   --reason R   --max N (1..10000, default 10000)\n"
            "  --dry-run          count the sagas and show the first ids; change nothing\n");
    fprintf(out, "\nexit status: 0 ok, 1 not found or API error (validate: a file is invalid), 2 usage,\n"
                 "3 cannot reach the API\n");
}

int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int usage_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("sagactl: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs("\n(sagactl --help for usage)\n", stderr);
    va_end(ap);
    return EXIT_USAGE;
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
            else {
                ctl.timeout_s = t;
                ctl.timeout_set = 1;
            }
        } else if (npos > 0 && (strcmp(pos[0], "list") == 0 || strcmp(pos[0], "start") == 0 ||
                                strcmp(pos[0], "signal") == 0 || strcmp(pos[0], "abort") == 0 ||
                                strcmp(pos[0], "retry") == 0)) { /* the command's own options */
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
        /* abort and retry have two rows: with an ID, and the bulk form (options first) */
        int bulk = npos == 1 || (npos > 1 && strncmp(pos[1], "--", 2) == 0);
        for (size_t i = 0; i < sizeof commands / sizeof commands[0] && !cmd; i++)
            if (strcmp(commands[i].name, pos[0]) == 0 &&
                (commands[i].args[0] == '-' || commands[i].args[0] == '[') == bulk)
                cmd = &commands[i];
        for (size_t i = 0; i < sizeof commands / sizeof commands[0] && !cmd; i++)
            if (strcmp(commands[i].name, pos[0]) == 0) cmd = &commands[i];
        int nargs = npos - 1;
        if (!cmd)
            ret = usage_error("unknown command '%s'", pos[0]);
        else if (nargs < cmd->min_args || nargs > cmd->max_args) {
            char forms[400] = "";
            size_t o = 0;
            for (size_t i = 0; i < sizeof commands / sizeof commands[0] && o < sizeof forms; i++)
                if (strcmp(commands[i].name, cmd->name) == 0)
                    o += (size_t)snprintf(forms + o, sizeof forms - o, "%ssagactl %s %s", o ? "\n   or: " : "",
                                          cmd->name, commands[i].args);
            ret = usage_error("usage: %s", forms);
        }
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
