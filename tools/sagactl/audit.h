/* sagactl audit: checks sagad's database against the example workers'
 * ledgers, offline and read-only (docs/PARTICIPANTS.md, "Audit").
 *
 *   sagactl audit [--saga-db F] [--order-db F] [--inventory-db F]
 *                 [--payment-db F] [--notification-db F] [--json] [--max N]
 *
 * Defaults come from the environment variables of scripts/stack's
 * stack.env: SAGA_DB, ORDER_DB, INVENTORY_DB, PAYMENT_DB, NOTIFICATION_DB
 * (the notification ledger is optional). */
#ifndef SAGACTL_AUDIT_H
#define SAGACTL_AUDIT_H

#include <stdio.h>

/* Exit statuses of the audit. */
enum {
    SAGACTL_AUDIT_OK = 0,      /* every check passed (sagas in flight are not errors) */
    SAGACTL_AUDIT_FAILED = 1,  /* at least one discrepancy, each named on the output */
    SAGACTL_AUDIT_USAGE = 2,   /* bad arguments, or a database not given */
    SAGACTL_AUDIT_UNREADABLE = 3, /* a database cannot be opened or lacks its tables */
};

typedef struct {
    const char *saga_db;         /* required */
    const char *order_db;        /* required */
    const char *inventory_db;    /* required */
    const char *payment_db;      /* required */
    const char *notification_db; /* NULL: notification checks skipped */
    int json;                    /* one JSON document on out instead of text */
    long max_listed;             /* discrepancies printed at most (text); <= 0: 50 */
} sagactl_audit_opts_t;

/* Runs the audit; the report goes to out, errors about the inputs to err.
 * Returns one of the SAGACTL_AUDIT_* statuses. */
int sagactl_audit_run(const sagactl_audit_opts_t *opts, FILE *out, FILE *err);

/* `sagactl audit ARGS`: parses its own options (argv holds what follows
 * the word "audit"), `json` is sagactl's global --json. */
int sagactl_audit_main(int argc, char **argv, int json);

#endif
