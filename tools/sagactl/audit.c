/* sagactl audit: sagad's shards against the example workers' ledgers.
 *
 * Opens sagad's first shard read-only, copies the sagas, steps and
 * definitions of every shard (one ATTACH at a time, each shard in one read
 * transaction: P may exceed SQLite's attach limit) into temporary tables
 * temp.all_sagas, temp.all_steps and temp.all_definitions, then ATTACHes
 * each ledger (read-only too: an attached database inherits the
 * connection's open flags). A single database file is one shard; with
 * several data directories, each shard is the newest copy among them
 * (audit_sources.c). The steps of
 * every saga come from its definition as sagad stored it (`definitions`),
 * so a ledger row is matched to a saga step by the idempotency key
 * `<saga>/<step>/action` the participant recorded. Each check is one SQL
 * query returning (saga_id, step, message) rows, one per discrepancy.
 *
 * What the checks know of the workers: the actions order.create,
 * inventory.reserve, payment.charge and notification.send and the ledger
 * tables of docs/PARTICIPANTS.md. Steps with other actions (other
 * participants) are not audited. */
#include "audit.h"
#include "audit_sources.h"

#include "saga_partition.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stddef.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#define MAX_KEPT 10000 /* discrepancies kept for the report (all are counted) */

enum { NEED_ORDER = 1, NEED_INVENTORY = 2, NEED_PAYMENT = 4, NEED_NOTIFICATION = 8 };

typedef struct {
    const char *name;  /* short id, for --json */
    const char *title; /* one line, for the summary */
    int needs;         /* NEED_* ledgers */
    const char *count_sql;   /* how many things the check looks at (NULL: none) */
    const char *problem_sql; /* rows (saga_id, step, message) */
} check_t;

/* SQL: CASE on whether sagad knows the saga of ledger row alias T. */
#define KNOWN(t) "CASE WHEN EXISTS (SELECT 1 FROM temp.all_sagas s WHERE s.id = " #t ".saga_id) THEN"

/* Keys of the actions a step ran: temp.exp (saga_id, status, step, action,
 * k = '<saga>/<step>/action', out_amount, out_payment_id). */
static const check_t CHECKS[] = {
    {"definitions_known", "every saga's definition is in sagad's database", 0,
     "SELECT count(*) FROM temp.all_sagas",
     "SELECT s.id, NULL, printf('definition %s version %d is not in sagad''s definitions table:"
     " its steps cannot be audited', s.definition, s.version) FROM temp.all_sagas s"
     " WHERE NOT EXISTS (SELECT 1 FROM temp.def_steps d WHERE d.definition = s.definition"
     " AND d.version = s.version)"},

    {"sagas_in_their_shard", "every saga is in the shard its id hashes to, once", 0,
     "SELECT count(*) FROM temp.all_sagas",
     "SELECT saga_id, NULL, message FROM temp.misplaced"},

    {"completed_order_created", "completed sagas: order created, not cancelled", NEED_ORDER,
     "SELECT count(*) FROM temp.exp WHERE action = 'order.create' AND status = 'completed'",
     "SELECT e.saga_id, e.step, CASE WHEN o.status IS NULL THEN"
     " 'completed, but the order ledger has no order created by ' || e.k"
     " ELSE 'completed, but order ' || o.order_id || ' is ' || o.status END"
     " FROM temp.exp e LEFT JOIN ord.orders o ON o.idempotency_key = e.k"
     " WHERE e.action = 'order.create' AND e.status = 'completed'"
     " AND (o.status IS NULL OR o.status != 'created')"},

    {"completed_stock_taken_once", "completed sagas: stock taken, once", NEED_INVENTORY,
     "SELECT count(*) FROM temp.exp WHERE action = 'inventory.reserve' AND status = 'completed'",
     "SELECT e.saga_id, e.step, CASE WHEN r.n IS NULL THEN"
     " 'completed, but no stock is reserved by ' || e.k"
     " WHEN r.ids > 1 THEN printf('completed, but %s reserved stock %d times', e.k, r.ids)"
     " ELSE printf('completed, but %d of the %d reservation lines of %s are released', r.released, r.n, e.k) END"
     " FROM temp.exp e LEFT JOIN (SELECT idempotency_key, count(*) n, sum(status != 'reserved') released,"
     " count(DISTINCT reservation_id) ids FROM inv.reservations GROUP BY idempotency_key) r"
     " ON r.idempotency_key = e.k"
     " WHERE e.action = 'inventory.reserve' AND e.status = 'completed'"
     " AND (r.n IS NULL OR r.released > 0 OR r.ids > 1)"},

    {"completed_charged_once", "completed sagas: amount charged, once", NEED_PAYMENT,
     "SELECT count(*) FROM temp.exp WHERE action = 'payment.charge' AND status = 'completed'",
     "SELECT e.saga_id, e.step, CASE WHEN c.payment_id IS NULL THEN"
     " 'completed, but nothing is charged by ' || e.k"
     " WHEN c.status != 'charged' THEN 'completed, but charge ' || c.payment_id || ' is ' || c.status"
     " ELSE printf('completed, but charge %s is %d cents while the saga recorded %d', c.payment_id,"
     " c.amount, e.out_amount) END"
     " FROM temp.exp e LEFT JOIN pay.charges c ON c.idempotency_key = e.k"
     " WHERE e.action = 'payment.charge' AND e.status = 'completed'"
     " AND (c.payment_id IS NULL OR c.status != 'charged'"
     " OR (e.out_amount IS NOT NULL AND e.out_amount != c.amount))"},

    {"completed_notified", "completed sagas: notification recorded", NEED_NOTIFICATION,
     "SELECT count(*) FROM temp.exp WHERE action = 'notification.send' AND status = 'completed'",
     "SELECT e.saga_id, e.step, 'completed, but the notification ledger has nothing sent by ' || e.k"
     " FROM temp.exp e WHERE e.action = 'notification.send' AND e.status = 'completed'"
     " AND NOT EXISTS (SELECT 1 FROM ntf.notifications n WHERE n.idempotency_key = e.k)"},

    {"compensated_order_cancelled", "compensated sagas: order cancelled (or never created)", NEED_ORDER,
     "SELECT count(*) FROM temp.exp WHERE action = 'order.create' AND status = 'compensated'",
     "SELECT e.saga_id, e.step, 'compensated, but order ' || o.order_id || ' is still ' || o.status"
     " FROM temp.exp e JOIN ord.orders o ON o.idempotency_key = e.k"
     " WHERE e.action = 'order.create' AND e.status = 'compensated' AND o.status != 'cancelled'"},

    {"compensated_stock_restored", "compensated sagas: stock released (or never reserved)", NEED_INVENTORY,
     "SELECT count(*) FROM temp.exp WHERE action = 'inventory.reserve' AND status = 'compensated'",
     "SELECT e.saga_id, e.step, printf('compensated, but %d unit(s) in %d line(s) reserved by %s are"
     " still reserved', sum(r.qty), count(*), e.k)"
     " FROM temp.exp e JOIN inv.reservations r ON r.idempotency_key = e.k"
     " WHERE e.action = 'inventory.reserve' AND e.status = 'compensated' AND r.status = 'reserved'"
     " GROUP BY e.saga_id, e.step"},

    {"compensated_money_restored", "compensated sagas: money refunded (or never charged)", NEED_PAYMENT,
     "SELECT count(*) FROM temp.exp WHERE action = 'payment.charge' AND status = 'compensated'",
     "SELECT e.saga_id, e.step, printf('compensated, but charge %s of %d cents is still charged',"
     " c.payment_id, c.amount)"
     " FROM temp.exp e JOIN pay.charges c ON c.idempotency_key = e.k"
     " WHERE e.action = 'payment.charge' AND e.status = 'compensated' AND c.status = 'charged'"},

    {"stock_conserved", "stock conserved: initial = available + reserved, per SKU", NEED_INVENTORY,
     "SELECT count(*) FROM inv.stock",
     "SELECT NULL, NULL, printf('sku %s: initial %d != available %d + reserved %d', s.sku, s.initial,"
     " s.available, coalesce(r.q, 0))"
     " FROM inv.stock s LEFT JOIN (SELECT sku, sum(qty) q FROM inv.reservations"
     " WHERE status = 'reserved' GROUP BY sku) r ON r.sku = s.sku"
     " WHERE s.initial != s.available + coalesce(r.q, 0)"
     " UNION ALL SELECT DISTINCT NULL, NULL, 'sku ' || r.sku || ': reserved but not in the stock table'"
     " FROM inv.reservations r WHERE r.status = 'reserved'"
     " AND NOT EXISTS (SELECT 1 FROM inv.stock s WHERE s.sku = r.sku)"},

    {"money_conserved", "money conserved: initial = balance + charged, per customer", NEED_PAYMENT,
     "SELECT count(*) FROM pay.accounts",
     "SELECT NULL, NULL, printf('customer %s: initial %d != balance %d + charged %d', a.customer,"
     " a.initial, a.balance, coalesce(c.q, 0))"
     " FROM pay.accounts a LEFT JOIN (SELECT customer, sum(amount) q FROM pay.charges"
     " WHERE status = 'charged' GROUP BY customer) c ON c.customer = a.customer"
     " WHERE a.initial != a.balance + coalesce(c.q, 0)"
     " UNION ALL SELECT DISTINCT NULL, NULL, 'customer ' || c.customer || ': charged but has no account'"
     " FROM pay.charges c WHERE c.status = 'charged'"
     " AND NOT EXISTS (SELECT 1 FROM pay.accounts a WHERE a.customer = c.customer)"},

    {"order_rows_owned", "order ledger: every command and order belongs to a saga step sagad knows", NEED_ORDER,
     "SELECT (SELECT count(*) FROM ord.processed) + (SELECT count(*) FROM ord.orders)",
     "SELECT p.saga_id, NULL, printf('order ledger: %d command(s) processed for a saga sagad does not"
     " know', count(*)) FROM ord.processed p"
     " WHERE NOT EXISTS (SELECT 1 FROM temp.all_sagas s WHERE s.id = p.saga_id) GROUP BY p.saga_id"
     " UNION ALL SELECT o.saga_id, NULL, 'order ' || o.order_id || ' was created by ' || o.idempotency_key"
     " || " KNOWN(o) " ', which is no order.create step of that saga' ELSE ' for a saga sagad does not know' END"
     " FROM ord.orders o WHERE NOT EXISTS (SELECT 1 FROM temp.exp e WHERE e.k = o.idempotency_key"
     " AND e.saga_id = o.saga_id AND e.action = 'order.create')"},

    {"inventory_rows_owned", "inventory ledger: every command and reservation belongs to a saga step sagad knows",
     NEED_INVENTORY,
     "SELECT (SELECT count(*) FROM inv.processed) + (SELECT count(*) FROM inv.reservations)",
     "SELECT p.saga_id, NULL, printf('inventory ledger: %d command(s) processed for a saga sagad does not"
     " know', count(*)) FROM inv.processed p"
     " WHERE NOT EXISTS (SELECT 1 FROM temp.all_sagas s WHERE s.id = p.saga_id) GROUP BY p.saga_id"
     " UNION ALL SELECT r.saga_id, NULL, printf('reservation %s (%d line(s)) was made by %s', r.reservation_id,"
     " count(*), r.idempotency_key) || " KNOWN(r) " ', which is no inventory.reserve step of that saga'"
     " ELSE ' for a saga sagad does not know' END"
     " FROM inv.reservations r WHERE NOT EXISTS (SELECT 1 FROM temp.exp e WHERE e.k = r.idempotency_key"
     " AND e.saga_id = r.saga_id AND e.action = 'inventory.reserve')"
     " GROUP BY r.saga_id, r.reservation_id, r.idempotency_key"},

    {"payment_rows_owned", "payment ledger: every command and charge belongs to a saga step sagad knows",
     NEED_PAYMENT,
     "SELECT (SELECT count(*) FROM pay.processed) + (SELECT count(*) FROM pay.charges)",
     "SELECT p.saga_id, NULL, printf('payment ledger: %d command(s) processed for a saga sagad does not"
     " know', count(*)) FROM pay.processed p"
     " WHERE NOT EXISTS (SELECT 1 FROM temp.all_sagas s WHERE s.id = p.saga_id) GROUP BY p.saga_id"
     " UNION ALL SELECT c.saga_id, NULL, printf('charge %s (%d cents, %s) was made by %s', c.payment_id,"
     " c.amount, c.status, c.idempotency_key) || " KNOWN(c) " ', which is no payment.charge step of that saga'"
     " ELSE ' for a saga sagad does not know' END"
     " FROM pay.charges c WHERE NOT EXISTS (SELECT 1 FROM temp.exp e WHERE e.k = c.idempotency_key"
     " AND e.saga_id = c.saga_id AND e.action = 'payment.charge')"},

    {"notification_rows_owned",
     "notification ledger: every command and notification belongs to a saga step sagad knows", NEED_NOTIFICATION,
     "SELECT (SELECT count(*) FROM ntf.processed) + (SELECT count(*) FROM ntf.notifications)",
     "SELECT p.saga_id, NULL, printf('notification ledger: %d command(s) processed for a saga sagad does"
     " not know', count(*)) FROM ntf.processed p"
     " WHERE NOT EXISTS (SELECT 1 FROM temp.all_sagas s WHERE s.id = p.saga_id) GROUP BY p.saga_id"
     " UNION ALL SELECT n.saga_id, NULL, 'notification ' || n.notification_id || ' was sent by '"
     " || n.idempotency_key || " KNOWN(n) " ', which is no notification.send step of that saga'"
     " ELSE ' for a saga sagad does not know' END"
     " FROM ntf.notifications n WHERE NOT EXISTS (SELECT 1 FROM temp.exp e WHERE e.k = n.idempotency_key"
     " AND e.saga_id = n.saga_id AND e.action = 'notification.send')"},
};
#define NCHECKS (sizeof CHECKS / sizeof CHECKS[0])

typedef struct {
    sqlite3 *db;
    const char *const *dbs; /* the --saga-db paths (ndbs) */
    int ndbs;
    audit_sources_t src; /* sagad's shard files, in partition order, and where each is from */
    FILE *out, *err;
    const sagactl_audit_opts_t *o;
    int have; /* NEED_* bits of the ledgers attached */
    long long checked[NCHECKS], problems[NCHECKS];
    int ran[NCHECKS];
    long long total;     /* discrepancies */
    json_t *found;       /* [{check, saga_id, step, message}], at most MAX_KEPT */
    json_t *by_status;   /* {status: count} */
    json_t *in_flight;   /* ids of running/compensating sagas (at most MAX_KEPT) */
    json_t *operator;    /* ids of compensation_failed sagas (at most MAX_KEPT) */
    long long sagas, n_in_flight, n_operator;
} audit_t;

static int fail_sql(audit_t *a, const char *what) {
    fprintf(a->err, "sagactl audit: %s: %s\n", what, sqlite3_errmsg(a->db));
    return SAGACTL_AUDIT_UNREADABLE;
}

/* Runs SQL with no result rows; 0 or SAGACTL_AUDIT_UNREADABLE. */
static int exec(audit_t *a, const char *sql, const char *what) {
    char *msg = NULL;
    if (sqlite3_exec(a->db, sql, NULL, NULL, &msg) == SQLITE_OK) return 0;
    fprintf(a->err, "sagactl audit: %s: %s\n", what, msg ? msg : sqlite3_errmsg(a->db));
    sqlite3_free(msg);
    return SAGACTL_AUDIT_UNREADABLE;
}

/* First column of the first row as an integer; -1 on error. */
static long long query_int(audit_t *a, const char *sql) {
    sqlite3_stmt *st = NULL;
    long long v = -1;
    if (sqlite3_prepare_v2(a->db, sql, -1, &st, NULL) != SQLITE_OK) return -1;
    if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* The tables a database must have; names is a NULL-terminated list. */
static int has_tables(audit_t *a, const char *schema, const char *path, const char *const *names) {
    for (const char *const *n = names; *n; n++) {
        char sql[256];
        snprintf(sql, sizeof sql, "SELECT count(*) FROM %s.sqlite_master WHERE type = 'table' AND name = '%s'",
                 schema, *n);
        long long c = query_int(a, sql);
        if (c < 0) return fail_sql(a, path);
        if (c == 0) {
            fprintf(a->err, "sagactl audit: %s has no table '%s' (is it the right database?)\n", path, *n);
            return SAGACTL_AUDIT_UNREADABLE;
        }
    }
    return 0;
}

static int readable(audit_t *a, const char *flag, const char *path) {
    if (access(path, R_OK) == 0) return 0;
    fprintf(a->err, "sagactl audit: %s %s: %s\n", flag, path, strerror(errno));
    return SAGACTL_AUDIT_UNREADABLE;
}

static int attach(audit_t *a, const char *flag, const char *path, const char *schema, int bit,
                  const char *const *tables) {
    if (!path) return 0;
    int rc = readable(a, flag, path);
    if (rc) return rc;
    char sql[64];
    snprintf(sql, sizeof sql, "ATTACH DATABASE ?1 AS %s", schema);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(a->db, sql, -1, &st, NULL) != SQLITE_OK) return fail_sql(a, path);
    sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC);
    int step = sqlite3_step(st);
    sqlite3_finalize(st);
    if (step != SQLITE_DONE) return fail_sql(a, path);
    if ((rc = has_tables(a, schema, path, tables))) return rc;
    a->have |= bit;
    return 0;
}

/* SQL: saga_shard_of(id), the shard a saga id belongs to among the audited ones. */
static void shard_of_fn(sqlite3_context *c, int argc, sqlite3_value **argv) {
    (void)argc;
    const int *count = sqlite3_user_data(c);
    const unsigned char *id = sqlite3_value_text(argv[0]);
    if (!id) sqlite3_result_null(c);
    else sqlite3_result_int(c, *count == 1 ? 0 : saga_partition_of((const char *)id, *count));
}

/* temp.all_sagas, all_steps, all_definitions and misplaced from every
 * shard: shard 0 is main, the others are attached one at a time. Each
 * shard is read in one transaction, so its sagas and steps agree. */
static int copy_shards(audit_t *a) {
    int rc = exec(a,
                  "CREATE TEMP TABLE all_sagas (id TEXT PRIMARY KEY, definition TEXT, version INTEGER, status TEXT,"
                  " shard INTEGER NOT NULL);"
                  "CREATE TEMP TABLE all_steps (saga_id TEXT NOT NULL, name TEXT, output TEXT);"
                  "CREATE TEMP TABLE all_definitions (name TEXT NOT NULL, version INTEGER NOT NULL, json TEXT,"
                  " PRIMARY KEY (name, version));"
                  "CREATE TEMP TABLE misplaced (saga_id TEXT, message TEXT NOT NULL);",
                  "temporary tables");
    if (rc) return rc;
    if (sqlite3_create_function(a->db, "saga_shard_of", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC, &a->src.nshards,
                                shard_of_fn, NULL, NULL) != SQLITE_OK)
        return fail_sql(a, "saga_shard_of");
    static const char *const saga_tables[] = {"sagas", "steps", "definitions", NULL};
    for (int i = 0; i < a->src.nshards; i++) {
        const char *schema = i == 0 ? "main" : "shard";
        if (i > 0) {
            sqlite3_stmt *st = NULL;
            if (sqlite3_prepare_v2(a->db, "ATTACH DATABASE ?1 AS shard", -1, &st, NULL) != SQLITE_OK)
                return fail_sql(a, a->src.shards[i]);
            sqlite3_bind_text(st, 1, a->src.shards[i], -1, SQLITE_STATIC);
            int step = sqlite3_step(st);
            sqlite3_finalize(st);
            if (step != SQLITE_DONE) return fail_sql(a, a->src.shards[i]);
        }
        if ((rc = has_tables(a, schema, a->src.shards[i], saga_tables))) return rc;
        /* A saga in two shards: the copy in the wrong one is misplaced
         * (its id hashes to one shard only); the first copy is audited. */
        char *q = sqlite3_mprintf(
            "BEGIN;"
            "INSERT INTO temp.misplaced SELECT id, printf('in shard %%d, but its id belongs in shard %%d', %d,"
            " saga_shard_of(id)) || ' (' || %Q || ')' FROM %s.sagas WHERE saga_shard_of(id) != %d;"
            "INSERT OR IGNORE INTO temp.all_sagas SELECT id, definition, version, status, %d FROM %s.sagas;"
            "INSERT INTO temp.all_steps SELECT saga_id, name, output FROM %s.steps;"
            "INSERT OR IGNORE INTO temp.all_definitions SELECT name, version, json FROM %s.definitions;"
            "COMMIT",
            i, a->src.shards[i], schema, i, i, schema, schema, schema);
        if (!q) return fail_sql(a, "out of memory");
        rc = exec(a, q, a->src.shards[i]);
        sqlite3_free(q);
        if (rc) {
            sqlite3_exec(a->db, "ROLLBACK", NULL, NULL, NULL);
            return rc;
        }
        if (i > 0 && (rc = exec(a, "DETACH DATABASE shard", a->src.shards[i]))) return rc;
    }
    return exec(a, "CREATE INDEX temp.all_steps_saga ON all_steps (saga_id, name)", "temporary table");
}

/* temp.def_steps from the definitions sagad stored. */
static int load_definitions(audit_t *a) {
    int rc = exec(a,
                  "CREATE TEMP TABLE def_steps (definition TEXT NOT NULL, version INTEGER NOT NULL,"
                  " step TEXT NOT NULL, action TEXT NOT NULL, PRIMARY KEY (definition, version, step))",
                  "temporary table");
    if (rc) return rc;
    sqlite3_stmt *sel = NULL, *ins = NULL;
    if (sqlite3_prepare_v2(a->db, "SELECT name, version, json FROM temp.all_definitions", -1, &sel, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(a->db, "INSERT OR IGNORE INTO temp.def_steps VALUES (?1, ?2, ?3, ?4)", -1, &ins, NULL) !=
            SQLITE_OK) {
        rc = fail_sql(a, "definitions");
        goto out;
    }
    int s;
    while ((s = sqlite3_step(sel)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(sel, 0);
        long long version = sqlite3_column_int64(sel, 1);
        const char *text = (const char *)sqlite3_column_text(sel, 2);
        json_error_t jerr = {0};
        json_t *doc = text ? json_loads(text, 0, &jerr) : NULL;
        json_t *steps = json_object_get(doc, "steps");
        if (!json_is_array(steps)) {
            /* sagas of this definition are reported by definitions_known */
            fprintf(a->err, "sagactl audit: definition %s version %lld: stored JSON has no steps array\n",
                    name ? name : "?", version);
            json_decref(doc);
            continue;
        }
        size_t i;
        json_t *step;
        json_array_foreach(steps, i, step) {
            const char *sname = json_string_value(json_object_get(step, "name"));
            const char *action = json_string_value(json_object_get(step, "action"));
            if (!sname || !action) continue;
            sqlite3_bind_text(ins, 1, name, -1, SQLITE_TRANSIENT);
            sqlite3_bind_int64(ins, 2, version);
            sqlite3_bind_text(ins, 3, sname, -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(ins, 4, action, -1, SQLITE_TRANSIENT);
            int is = sqlite3_step(ins);
            sqlite3_reset(ins);
            if (is != SQLITE_DONE) {
                json_decref(doc);
                rc = fail_sql(a, "temporary table");
                goto out;
            }
        }
        json_decref(doc);
    }
    if (s != SQLITE_DONE) rc = fail_sql(a, "definitions");
out:
    sqlite3_finalize(sel);
    sqlite3_finalize(ins);
    if (rc) return rc;
    return exec(a,
                "CREATE TEMP TABLE exp AS SELECT s.id AS saga_id, s.status AS status, d.step AS step,"
                " d.action AS action, s.id || '/' || d.step || '/action' AS k,"
                " CASE WHEN json_valid(st.output) THEN"
                "   CASE WHEN json_type(st.output, '$.amount') = 'integer'"
                "   THEN json_extract(st.output, '$.amount') END END AS out_amount"
                " FROM temp.all_sagas s JOIN temp.def_steps d ON d.definition = s.definition"
                " AND d.version = s.version"
                " LEFT JOIN temp.all_steps st ON st.saga_id = s.id AND st.name = d.step;"
                "CREATE INDEX temp.exp_action ON exp (action, status);"
                "CREATE INDEX temp.exp_k ON exp (k);",
                "temporary table");
}

static int count_statuses(audit_t *a) {
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(a->db, "SELECT status, count(*) FROM temp.all_sagas GROUP BY status ORDER BY status", -1, &st,
                           NULL) != SQLITE_OK)
        return fail_sql(a, "sagas");
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *status = (const char *)sqlite3_column_text(st, 0);
        long long n = sqlite3_column_int64(st, 1);
        json_object_set_new(a->by_status, status ? status : "", json_integer(n));
        a->sagas += n;
    }
    sqlite3_finalize(st);
    if (sqlite3_prepare_v2(a->db,
                           "SELECT id, status FROM temp.all_sagas WHERE status IN"
                           " ('running', 'compensating', 'compensation_failed') ORDER BY id",
                           -1, &st, NULL) != SQLITE_OK)
        return fail_sql(a, "sagas");
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(st, 0);
        const char *status = (const char *)sqlite3_column_text(st, 1);
        int op = status && strcmp(status, "compensation_failed") == 0;
        long long *n = op ? &a->n_operator : &a->n_in_flight;
        if (++*n <= MAX_KEPT) json_array_append_new(op ? a->operator : a->in_flight, json_string(id ? id : ""));
    }
    sqlite3_finalize(st);
    return 0;
}

static int run_check(audit_t *a, size_t i) {
    const check_t *c = &CHECKS[i];
    if ((c->needs & a->have) != c->needs) return 0;
    a->ran[i] = 1;
    a->checked[i] = c->count_sql ? query_int(a, c->count_sql) : 0;
    if (a->checked[i] < 0) return fail_sql(a, c->name);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(a->db, c->problem_sql, -1, &st, NULL) != SQLITE_OK) return fail_sql(a, c->name);
    int s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        a->problems[i]++;
        if (++a->total > MAX_KEPT) continue;
        json_t *p = json_pack("{s:s}", "check", c->name);
        const char *saga = (const char *)sqlite3_column_text(st, 0);
        const char *step = (const char *)sqlite3_column_text(st, 1);
        const char *msg = (const char *)sqlite3_column_text(st, 2);
        json_object_set_new(p, "saga_id", saga ? json_string(saga) : json_null());
        json_object_set_new(p, "step", step ? json_string(step) : json_null());
        json_object_set_new(p, "message", json_string(msg ? msg : "?"));
        json_array_append_new(a->found, p);
    }
    sqlite3_finalize(st);
    if (s != SQLITE_DONE) return fail_sql(a, c->name);
    return 0;
}

/* Prints s with control characters shown as '?'. */
static void put_clean(FILE *out, const char *s) {
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++)
        fputc(*p < 0x20 || *p == 0x7F ? '?' : *p, out);
}

static long long status_count(const audit_t *a, const char *status) {
    return json_integer_value(json_object_get(a->by_status, status));
}

static void print_ids(FILE *out, const char *label, const json_t *ids, long long n) {
    if (n == 0) return;
    fprintf(out, "%s (%lld):", label, n);
    size_t i;
    json_t *v;
    json_array_foreach(ids, i, v) {
        if (i >= 10) {
            fprintf(out, " ... %lld more", n - 10);
            break;
        }
        fputc(' ', out);
        put_clean(out, json_string_value(v));
    }
    fputc('\n', out);
}

static void print_text(const audit_t *a, FILE *out) {
    const sagactl_audit_opts_t *o = a->o;
    fputs("audit of ", out);
    for (int d = 0; d < a->ndbs; d++) {
        if (d) fputs(", ", out);
        put_clean(out, a->dbs[d]);
    }
    if (a->src.nshards > 1) fprintf(out, " (%d shards)", a->src.nshards);
    fputs("\n", out);
    if (a->ndbs > 1) { /* "  shards: 0-2,5 from DIR1; 3,4 from DIR2" */
        fputs("  shards:", out);
        for (int d = 0, n = 0; d < a->ndbs; d++) {
            char list[4096];
            if (audit_sources_list(&a->src, d, list, sizeof list) == 0) continue;
            fprintf(out, "%s %s from ", n++ ? ";" : "", list);
            put_clean(out, a->dbs[d]);
        }
        fputc('\n', out);
    }
    const char *names[] = {"order", "inventory", "payment", "notification"};
    const char *paths[] = {o->order_db, o->inventory_db, o->payment_db, o->notification_db};
    for (int i = 0; i < 4; i++) {
        fprintf(out, "  %-13s ", names[i]);
        if (paths[i]) put_clean(out, paths[i]);
        else fputs("(not given: its checks are skipped)", out);
        fputc('\n', out);
    }
    fprintf(out, "sagas: %lld (completed %lld, compensated %lld, compensation_failed %lld, in flight %lld",
            a->sagas, status_count(a, "completed"), status_count(a, "compensated"),
            status_count(a, "compensation_failed"), a->n_in_flight);
    const char *key;
    json_t *v;
    json_object_foreach(a->by_status, key, v) {
        if (strcmp(key, "completed") && strcmp(key, "compensated") && strcmp(key, "compensation_failed") &&
            strcmp(key, "running") && strcmp(key, "compensating")) {
            fputs(", ", out);
            put_clean(out, key);
            fprintf(out, " %lld", (long long)json_integer_value(v));
        }
    }
    fputs(")\n", out);
    print_ids(out, "in flight, not checked", a->in_flight, a->n_in_flight);
    print_ids(out, "waiting for an operator (compensation_failed)", a->operator, a->n_operator);
    fputs("checks:\n", out);
    int passed = 0, ran = 0;
    for (size_t i = 0; i < NCHECKS; i++) {
        if (!a->ran[i]) {
            fprintf(out, "  skip  %s\n", CHECKS[i].title);
            continue;
        }
        ran++;
        if (a->problems[i] == 0) passed++;
        fprintf(out, "  %-4s  %s (%lld checked", a->problems[i] ? "FAIL" : "ok", CHECKS[i].title, a->checked[i]);
        if (a->problems[i]) fprintf(out, ", %lld problem%s", a->problems[i], a->problems[i] == 1 ? "" : "s");
        fputs(")\n", out);
    }
    if (a->total) {
        long max = o->max_listed > 0 ? o->max_listed : SAGACTL_AUDIT_DEFAULT_MAX;
        fputs("discrepancies:\n", out);
        size_t i;
        json_array_foreach(a->found, i, v) {
            if ((long)i >= max) {
                fprintf(out, "  ... %lld more (--max N lists more, --json lists up to %d)\n", a->total - (long long)i,
                        MAX_KEPT);
                break;
            }
            const char *saga = json_string_value(json_object_get(v, "saga_id"));
            const char *step = json_string_value(json_object_get(v, "step"));
            fputs("  ", out);
            if (saga) {
                fputs("saga ", out);
                put_clean(out, saga);
                if (step) {
                    fputs(" step ", out);
                    put_clean(out, step);
                }
                fputs(": ", out);
            }
            put_clean(out, json_string_value(json_object_get(v, "message")));
            fputc('\n', out);
        }
    }
    fprintf(out, "audit: %s: %d of %d checks passed, %lld discrepanc%s\n", a->total ? "FAILED" : "passed", passed,
            ran, a->total, a->total == 1 ? "y" : "ies");
}

static void print_json(const audit_t *a, FILE *out) {
    json_t *checks = json_array();
    int passed = 0, ran = 0;
    for (size_t i = 0; i < NCHECKS; i++) {
        json_t *c = json_pack("{s:s, s:s, s:b}", "name", CHECKS[i].name, "title", CHECKS[i].title, "ran", a->ran[i]);
        if (a->ran[i]) {
            ran++;
            if (!a->problems[i]) passed++;
            json_object_set_new(c, "ok", json_boolean(a->problems[i] == 0));
            json_object_set_new(c, "checked", json_integer(a->checked[i]));
            json_object_set_new(c, "problems", json_integer(a->problems[i]));
        }
        json_array_append_new(checks, c);
    }
    json_t *doc = json_pack("{s:b, s:{s:I, s:O}, s:I, s:O, s:I, s:O, s:i, s:i, s:o, s:I, s:O}", "ok", a->total == 0,
                            "sagas", "total", (json_int_t)a->sagas, "by_status", a->by_status, "in_flight_count",
                            (json_int_t)a->n_in_flight, "in_flight", a->in_flight, "needs_operator_count",
                            (json_int_t)a->n_operator, "needs_operator", a->operator, "checks_run", ran,
                            "checks_passed", passed, "checks", checks, "discrepancies_count", (json_int_t)a->total,
                            "discrepancies", a->found);
    if (doc && a->ndbs > 1) { /* [{saga_db, shards: [p, ...]}], the directories shards were taken from */
        json_t *from = json_array();
        for (int d = 0; d < a->ndbs; d++) {
            json_t *list = json_array();
            for (int p = 0; p < a->src.nshards; p++)
                if (a->src.from[p] == d) json_array_append_new(list, json_integer(p));
            if (json_array_size(list))
                json_array_append_new(from, json_pack("{s:s, s:o}", "saga_db", a->dbs[d], "shards", list));
            else
                json_decref(list);
        }
        json_object_set_new(doc, "shard_sources", from);
    }
    char *text = doc ? json_dumps(doc, JSON_INDENT(2)) : NULL;
    if (text) {
        fputs(text, out);
        fputc('\n', out);
        json_free_t jfree;
        json_get_alloc_funcs(NULL, &jfree);
        jfree(text);
    } else {
        fputs("{\"ok\": false, \"error\": \"out of memory\"}\n", out);
    }
    json_decref(doc);
}

int sagactl_audit_run(const sagactl_audit_opts_t *opts, FILE *out, FILE *err) {
    audit_t a;
    memset(&a, 0, sizeof a);
    a.o = opts;
    a.out = out;
    a.err = err;
    a.dbs = opts->n_saga_dbs > 0 ? opts->saga_dbs : &opts->saga_db;
    a.ndbs = opts->n_saga_dbs > 0 ? opts->n_saga_dbs : 1;
    for (int i = 1; a.dbs && i < a.ndbs; i++)
        if (!a.dbs[i] || !*a.dbs[i]) a.dbs = NULL; /* reported as not given */
    const struct {
        const char *flag, *path;
    } required[] = {{"--saga-db (or SAGA_DBS or SAGA_DB)", a.dbs ? a.dbs[0] : NULL},
                    {"--order-db (or ORDER_DB)", opts->order_db},
                    {"--inventory-db (or INVENTORY_DB)", opts->inventory_db},
                    {"--payment-db (or PAYMENT_DB)", opts->payment_db}};
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++)
        if (!required[i].path || !*required[i].path) {
            fprintf(err, "sagactl audit: %s is required\n", required[i].flag);
            return SAGACTL_AUDIT_USAGE;
        }
    a.found = json_array();
    a.by_status = json_object();
    a.in_flight = json_array();
    a.operator = json_array();
    int rc = SAGACTL_AUDIT_UNREADABLE;
    if (!a.found || !a.by_status || !a.in_flight || !a.operator) {
        fprintf(err, "sagactl audit: out of memory\n");
        goto done;
    }
    for (int i = 0; i < a.ndbs; i++)
        if ((rc = readable(&a, "--saga-db", a.dbs[i]))) goto done;
    char why[4096];
    if ((rc = audit_sources_resolve(a.dbs, a.ndbs, &a.src, why, sizeof why))) {
        fprintf(err, "sagactl audit: %s\n", why);
        goto done;
    }
    for (int i = 0; i < a.src.nshards; i++)
        if ((rc = readable(&a, "--saga-db", a.src.shards[i]))) goto done;
    if (sqlite3_open_v2(a.src.shards[0], &a.db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        rc = fail_sql(&a, a.src.shards[0]);
        goto done;
    }
    sqlite3_busy_timeout(a.db, 5000);
    static const char *const order_tables[] = {"processed", "orders", NULL};
    static const char *const inv_tables[] = {"processed", "stock", "reservations", NULL};
    static const char *const pay_tables[] = {"processed", "accounts", "charges", NULL};
    static const char *const ntf_tables[] = {"processed", "notifications", NULL};
    if ((rc = copy_shards(&a)) ||
        (rc = attach(&a, "--order-db", opts->order_db, "ord", NEED_ORDER, order_tables)) ||
        (rc = attach(&a, "--inventory-db", opts->inventory_db, "inv", NEED_INVENTORY, inv_tables)) ||
        (rc = attach(&a, "--payment-db", opts->payment_db, "pay", NEED_PAYMENT, pay_tables)) ||
        (rc = attach(&a, "--notification-db", opts->notification_db, "ntf", NEED_NOTIFICATION, ntf_tables)))
        goto done;
    /* One read transaction over every database: a consistent snapshot of
     * each file even while the stack runs (sagad and the workers are not
     * mutually consistent at an instant; sagas in flight are not checked). */
    if ((rc = exec(&a, "BEGIN", "begin")) || (rc = load_definitions(&a)) || (rc = count_statuses(&a))) goto done;
    for (size_t i = 0; i < NCHECKS; i++)
        if ((rc = run_check(&a, i))) goto done;
    exec(&a, "COMMIT", "commit");
    if (opts->json) print_json(&a, out);
    else print_text(&a, out);
    rc = a.total ? SAGACTL_AUDIT_FAILED : SAGACTL_AUDIT_OK;
done:
    if (a.db) sqlite3_close(a.db);
    audit_sources_free(&a.src);
    json_decref(a.found);
    json_decref(a.by_status);
    json_decref(a.in_flight);
    json_decref(a.operator);
    return rc;
}
