/* notification-worker: consumes notification.commands, keeps its ledger in
 * SQLite and, with --webhook-url, delivers each notification by HTTP POST.
 *
 * The webhook options are the worker's own: they are taken out of argv
 * (and read from NOTIFICATION_WORKER_WEBHOOK_URL / _WEBHOOK_TIMEOUT_MS)
 * before the participant library parses the common ones; --help lists them
 * in the summary. */
#include "notification.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Takes "--NAME VALUE" or "--NAME=VALUE" out of argv; *value points into
 * argv. Returns 1 found, 0 not, -1 without a value. */
static int take_option(int *argc, char **argv, const char *name, const char **value) {
    size_t n = strlen(name);
    for (int i = 1; i < *argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) return 0;
        if (strncmp(a, "--", 2) != 0 || strncmp(a + 2, name, n) != 0) continue;
        int used;
        if (a[2 + n] == '=') {
            *value = a + 3 + n;
            used = 1;
        } else if (a[2 + n] == '\0') {
            if (i + 1 >= *argc) return -1;
            *value = argv[i + 1];
            used = 2;
        } else {
            continue;
        }
        memmove(&argv[i], &argv[i + used], (size_t)(*argc - i - used + 1) * sizeof *argv);
        *argc -= used;
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    const char *url = getenv("NOTIFICATION_WORKER_WEBHOOK_URL");
    const char *timeout = getenv("NOTIFICATION_WORKER_WEBHOOK_TIMEOUT_MS");
    if (take_option(&argc, argv, "webhook-url", &url) < 0 ||
        take_option(&argc, argv, "webhook-timeout-ms", &timeout) < 0) {
        fprintf(stderr, "notification-worker: --webhook-url and --webhook-timeout-ms need a value\n");
        return 2;
    }
    long timeout_ms = 0;
    if (timeout && *timeout) {
        char *end = NULL;
        errno = 0;
        timeout_ms = strtol(timeout, &end, 10);
        if (errno || *end || timeout_ms < 1 || timeout_ms > 600000) {
            fprintf(stderr, "notification-worker: --webhook-timeout-ms: '%s' is not a number of ms (1..600000)\n",
                    timeout);
            return 2;
        }
    }
    if (url && *url && strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
        fprintf(stderr, "notification-worker: --webhook-url '%s': must start with http:// or https://\n", url);
        return 2;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
        fprintf(stderr, "notification-worker: cannot initialise libcurl\n");
        return 1;
    }
    int rc = notification_worker_set_webhook(url, timeout_ms);
    if (rc == 0) rc = participant_main(notification_worker_spec(), argc, argv);
    else rc = 1;
    notification_worker_set_webhook(NULL, 0);
    curl_global_cleanup();
    return rc;
}
