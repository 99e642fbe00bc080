/* sagactl audit's command line: its usage, its options and the stack.env variables they default to. */
#include "audit.h"

#include "saga_alloc.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void audit_usage(FILE *out) {
    fputs("usage: sagactl audit [--saga-db DIR|F ...] [--order-db F] [--inventory-db F] [--payment-db F]\n"
          "                     [--notification-db F] [--json] [--max N]\n"
          "\n"
          "Checks sagad's shards against the example workers' ledgers, read-only:\n"
          "every saga is in the shard its id hashes to, once;\n"
          "completed sagas have their order created, stock taken once and amount charged once;\n"
          "compensated sagas have their order cancelled and stock and money restored; stock and\n"
          "money are conserved; no ledger row belongs to a saga step sagad does not know.\n"
          "Sagas still running or compensating are counted as in flight, not checked.\n"
          "\n"
          "  --saga-db DIR|F      sagad's data directory: every shard-NNN.db in it, shard-000.db\n"
          "                       on with none missing; or one database file (env SAGA_DB)\n"
          "  --saga-db DIR ...    given several times: the data directories of a cluster's sagad\n"
          "                       instances (env SAGA_DBS, space-separated, over SAGA_DB); all\n"
          "                       must record the same partition count P; each shard 0..P-1 is\n"
          "                       read from the directory whose copy has the highest\n"
          "                       shard_meta changelog_offset (none: -1; a tie: the first\n"
          "                       given); the report says which shards came from where\n"
          "  --order-db F         order worker's ledger (env ORDER_DB)\n"
          "  --inventory-db F     inventory worker's ledger (env INVENTORY_DB)\n"
          "  --payment-db F       payment worker's ledger (env PAYMENT_DB)\n"
          "  --notification-db F  notification worker's ledger (env NOTIFICATION_DB; optional)\n"
          "  --json               one JSON document\n"
          "  --max N              list at most N discrepancies (default 50)\n"
          "\n"
          "exit status: 0 every check passed, 1 discrepancies (each named), 2 usage (also data\n"
          "directories of different partition counts), 3 a database cannot be read (also a shard\n"
          "missing from every directory)\n",
          out);
}

static const char *env_or_null(const char *name) {
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

/* SAGA_DBS split at white space: *dbs (saga_free) points into *copy (saga_free); their count. */
static int env_dbs(char **copy, const char ***dbs) {
    const char *v = env_or_null("SAGA_DBS");
    int n = 0;
    *copy = NULL;
    *dbs = NULL;
    if (!v || !(*copy = saga_strdup(v)) || !(*dbs = saga_calloc(strlen(v) / 2 + 1, sizeof **dbs))) return 0;
    for (char *save = NULL, *t = strtok_r(*copy, " \t\n", &save); t; t = strtok_r(NULL, " \t\n", &save))
        (*dbs)[n++] = t;
    return n;
}

int sagactl_audit_main(int argc, char **argv, int json) {
    sagactl_audit_opts_t o = {
        .saga_db = env_or_null("SAGA_DB"),
        .order_db = env_or_null("ORDER_DB"),
        .inventory_db = env_or_null("INVENTORY_DB"),
        .payment_db = env_or_null("PAYMENT_DB"),
        .notification_db = env_or_null("NOTIFICATION_DB"),
        .json = json,
        .max_listed = SAGACTL_AUDIT_DEFAULT_MAX,
    };
    static const struct {
        const char *flag;
        size_t off;
    } paths[] = {
        {"--saga-db", offsetof(sagactl_audit_opts_t, saga_db)}, /* each one also into dbs */
        {"--order-db", offsetof(sagactl_audit_opts_t, order_db)},
        {"--inventory-db", offsetof(sagactl_audit_opts_t, inventory_db)},
        {"--payment-db", offsetof(sagactl_audit_opts_t, payment_db)},
        {"--notification-db", offsetof(sagactl_audit_opts_t, notification_db)},
    };
    const char **dbs = saga_calloc((size_t)argc + 1, sizeof *dbs), **env = NULL; /* --saga-db values */
    char *env_copy = NULL;
    int ndbs = 0, rc = SAGACTL_AUDIT_USAGE;
    if (!dbs) {
        fprintf(stderr, "sagactl audit: out of memory\n");
        return SAGACTL_AUDIT_UNREADABLE;
    }
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            audit_usage(stdout);
            rc = SAGACTL_AUDIT_OK;
            goto done;
        }
        if (strcmp(arg, "--json") == 0) {
            o.json = 1;
            continue;
        }
        const char *eq = strchr(arg, '=');
        size_t flen = eq ? (size_t)(eq - arg) : strlen(arg);
        const char *value = NULL;
        int known = 0;
        if (strncmp(arg, "--", 2) == 0) {
            value = eq ? eq + 1 : (i + 1 < argc ? argv[i + 1] : NULL);
            for (size_t k = 0; k < sizeof paths / sizeof paths[0]; k++)
                if (strlen(paths[k].flag) == flen && strncmp(arg, paths[k].flag, flen) == 0) {
                    if (!value || !*value) {
                        fprintf(stderr, "sagactl audit: %s needs a %s\n", paths[k].flag,
                                k == 0 ? "directory or a file" : "file");
                        goto done;
                    }
                    *(const char **)((char *)&o + paths[k].off) = value;
                    if (k == 0) dbs[ndbs++] = value;
                    known = 1;
                }
            if (!known && flen == 5 && strncmp(arg, "--max", 5) == 0) {
                char *end = NULL;
                long n = value ? strtol(value, &end, 10) : 0;
                if (!value || !*value || *end || n <= 0) {
                    fprintf(stderr, "sagactl audit: --max: '%s' is not a positive number\n", value ? value : "");
                    goto done;
                }
                o.max_listed = n;
                known = 1;
            }
        }
        if (!known) {
            fprintf(stderr, "sagactl audit: unknown argument '%s' (sagactl audit --help)\n", arg);
            goto done;
        }
        if (!eq) i++;
    }
    if (ndbs > 0) {
        o.saga_dbs = dbs;
        o.n_saga_dbs = ndbs;
    } else if ((o.n_saga_dbs = env_dbs(&env_copy, &env)) > 0) {
        o.saga_dbs = env;
    }
    rc = sagactl_audit_run(&o, stdout, stderr);
done:
    saga_free(dbs);
    saga_free(env);
    saga_free(env_copy);
    return rc;
}
