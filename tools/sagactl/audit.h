/* sagactl audit: checks sagad's database against the example workers'
 * ledgers, offline and read-only (docs/PARTICIPANTS.md, "Audit").
 *
 *   sagactl audit [--saga-db DIR|F ...] [--order-db F] [--inventory-db F]
 *                 [--payment-db F] [--notification-db F] [--json] [--max N]
 *
 * --saga-db is sagad's data directory or one database file; given several
 * times, the data directories of a cluster's sagad instances: each shard is
 * read from the directory holding its newest copy (audit_sources.h).
 * Defaults come from the environment variables of scripts/stack's
 * stack.env: SAGA_DBS (data directories, space-separated) or else SAGA_DB,
 * ORDER_DB, INVENTORY_DB, PAYMENT_DB, NOTIFICATION_DB (the notification
 * ledger is optional). */
#ifndef SAGACTL_AUDIT_H
#define SAGACTL_AUDIT_H

#include <stdio.h>

/* Exit statuses of the audit. */
enum {
    SAGACTL_AUDIT_OK = 0,      /* every check passed (sagas in flight are not errors) */
    SAGACTL_AUDIT_FAILED = 1,  /* at least one discrepancy, each named on the output */
    SAGACTL_AUDIT_USAGE = 2,   /* bad arguments, a database not given, or data directories of
                                  different partition counts */
    SAGACTL_AUDIT_UNREADABLE = 3, /* a database cannot be opened or lacks its tables, or a shard
                                     is missing (from every directory given) */
};

typedef struct {
    const char *saga_db;         /* required unless saga_dbs: a data directory or one database file */
    const char *const *saga_dbs; /* n_saga_dbs > 0: these paths instead of saga_db (several: data */
    int n_saga_dbs;              /* directories, each shard taken from its newest copy) */
    const char *order_db;        /* required */
    const char *inventory_db;    /* required */
    const char *payment_db;      /* required */
    const char *notification_db; /* NULL: notification checks skipped */
    int json;                    /* one JSON document on out instead of text */
    long max_listed;             /* discrepancies printed at most (text); <= 0: SAGACTL_AUDIT_DEFAULT_MAX */
} sagactl_audit_opts_t;

/* Discrepancies the text report lists when --max is not given: the
 * command line's default (audit_cli.c) and the report's (audit.c) for
 * max_listed <= 0. */
#define SAGACTL_AUDIT_DEFAULT_MAX 50

/* Runs the audit (audit.c); the report goes to out, errors about the
 * inputs to err. Returns one of the SAGACTL_AUDIT_* statuses. */
int sagactl_audit_run(const sagactl_audit_opts_t *opts, FILE *out, FILE *err);

/* `sagactl audit ARGS` (audit_cli.c): parses its own options (argv holds
 * what follows the word "audit"), `json` is sagactl's global --json; the
 * paths not given come from the environment variables above. Prints the
 * usage on stdout for -h/--help (SAGACTL_AUDIT_OK), a bad argument on
 * stderr (SAGACTL_AUDIT_USAGE); otherwise sagactl_audit_run on stdout and
 * stderr, and its status. */
int sagactl_audit_main(int argc, char **argv, int json);

#endif
