/* Payment participant. Ledger (money in integer cents):
 *   accounts(customer PK, balance >= 0, initial)   initial = seeded balance
 *   charges(payment_id PK, idempotency_key UNIQUE, saga_id, customer,
 *           amount > 0, status charged|refunded, created_at, refunded_at)
 * Invariant per customer (audit): initial = balance + SUM(amount) of its
 * 'charged' rows. payment.charge over the balance or for an unknown customer
 * is a business failure PAYMENT_DECLINED; payment.refund gives back exactly
 * what that saga step charged, once.
 *
 * Test triggers (off unless payment_worker_set_test_triggers(1); the
 * worker turns them on with PAYMENT_WORKER_TEST_TRIGGERS=1), used by
 * tests/e2e to make outcomes deterministic:
 *   customer "c-flaky..."  attempt 1 of a charge is a transient failure
 *                          (retry TEST_TRANSIENT, nothing recorded);
 *   customer "c-slow..."   attempt 1 of a charge sleeps slow_ms (1500 by
 *                          default) before it runs: its reply arrives after
 *                          a short step timeout. */
#include "payment.h"

#include "saga_error.h"
#include "saga_json.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static struct {
    int on;
    long long slow_ms;
} test_triggers = {0, 1500};

void payment_worker_set_test_triggers(int on, long long slow_ms) {
    test_triggers.on = on;
    if (slow_ms > 0) test_triggers.slow_ms = slow_ms;
}

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS accounts ("
    "  customer TEXT PRIMARY KEY,"
    "  balance INTEGER NOT NULL CHECK (balance >= 0),"
    "  initial INTEGER NOT NULL CHECK (initial >= 0));"
    "CREATE TABLE IF NOT EXISTS charges ("
    "  payment_id TEXT PRIMARY KEY,"
    "  idempotency_key TEXT NOT NULL UNIQUE,"
    "  saga_id TEXT NOT NULL,"
    "  customer TEXT NOT NULL REFERENCES accounts(customer),"
    "  amount INTEGER NOT NULL CHECK (amount > 0),"
    "  status TEXT NOT NULL CHECK (status IN ('charged','refunded')),"
    "  created_at TEXT NOT NULL,"
    "  refunded_at TEXT);"
    "CREATE INDEX IF NOT EXISTS charges_saga ON charges(saga_id);";

static int payment_seed(sqlite3 *db, const json_t *seed, char *err, size_t errlen) {
    json_t *accounts = json_object_get(seed, "accounts");
    if (!accounts) return 0;
    if (!json_is_object(accounts)) {
        snprintf(err, errlen, "/accounts must be an object {\"customer\": balance_in_cents}");
        return SAGA_EPARSE;
    }
    const char *customer;
    json_t *bal;
    json_object_foreach(accounts, customer, bal) {
        if (!json_is_integer(bal) || json_integer_value(bal) < 0) {
            snprintf(err, errlen, "/accounts/%s must be an integer number of cents >= 0", customer);
            return SAGA_EPARSE;
        }
        long long b = json_integer_value(bal);
        if (participant_exec(db, "INSERT INTO accounts(customer, balance, initial) VALUES(?,?,?)", "tii",
                             customer, b, b)) {
            snprintf(err, errlen, "/accounts/%s: %s", customer, sqlite3_errmsg(db));
            return SAGA_ESTORE;
        }
    }
    return 0;
}

static int payment_charge(sqlite3 *db, const participant_command_t *cmd, participant_result_t *res, void *user) {
    (void)user;
    const char *customer = saga_json_str(cmd->payload, "customer");
    long long amount = 0;
    if (!customer || !*customer)
        return participant_fail(res, "INVALID_PAYLOAD", "payload.customer must be a non-empty string");
    if (saga_json_int(cmd->payload, "amount", &amount) || amount <= 0)
        return participant_fail(res, "INVALID_PAYLOAD", "payload.amount must be an integer number of cents > 0");
    if (test_triggers.on && cmd->attempt == 1 && strncmp(customer, "c-flaky", 7) == 0)
        return participant_retry(res, "TEST_TRANSIENT", "test trigger: first attempt for %s fails transiently",
                                 customer);
    if (test_triggers.on && cmd->attempt == 1 && strncmp(customer, "c-slow", 6) == 0) {
        struct timespec ts = {test_triggers.slow_ms / 1000, (test_triggers.slow_ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0) {
        }
    }
    long long balance = 0;
    int rc = participant_query_int(db, &balance, "SELECT balance FROM accounts WHERE customer = ?", "t", customer);
    if (rc < 0) return rc;
    if (rc == 0) return participant_fail(res, "PAYMENT_DECLINED", "unknown customer %s", customer);
    if (balance < amount)
        return participant_fail(res, "PAYMENT_DECLINED", "insufficient funds: %lld cents wanted, balance %lld",
                                amount, balance);
    if ((rc = participant_exec(db, "UPDATE accounts SET balance = balance - ? WHERE customer = ?", "it", amount,
                               customer)))
        return rc;
    char pid[512], now[40];
    snprintf(pid, sizeof pid, "pay-%s/%s", cmd->saga_id, cmd->step);
    if ((rc = participant_exec(db,
                               "INSERT INTO charges(payment_id, idempotency_key, saga_id, customer, amount, status,"
                               " created_at) VALUES(?,?,?,?,?,'charged',?)",
                               "ttttit", pid, cmd->idempotency_key, cmd->saga_id, customer, amount,
                               participant_now(now, sizeof now))))
        return rc;
    res->output = json_pack("{s:s,s:I}", "payment_id", pid, "amount", (json_int_t)amount);
    return res->output ? 0 : SAGA_ENOMEM;
}

static int payment_refund(sqlite3 *db, const participant_command_t *cmd, participant_result_t *res, void *user) {
    (void)user;
    long long amount = 0;
    int rc = participant_query_int(db, &amount,
                                   "SELECT amount FROM charges WHERE idempotency_key = ? AND status = 'charged'", "t",
                                   cmd->action_key);
    if (rc < 0) return rc;
    if (rc == 1) {
        if ((rc = participant_exec(db,
                                   "UPDATE accounts SET balance = balance + ?1 WHERE customer ="
                                   " (SELECT customer FROM charges WHERE idempotency_key = ?2)",
                                   "it", amount, cmd->action_key)))
            return rc;
        char now[40];
        if ((rc = participant_exec(db,
                                   "UPDATE charges SET status = 'refunded', refunded_at = ? WHERE idempotency_key = ?",
                                   "tt", participant_now(now, sizeof now), cmd->action_key)))
            return rc;
    } else {
        amount = 0; /* nothing charged any more: nothing to give back */
    }
    const char *pid = saga_json_str(cmd->action_output, "payment_id");
    res->output = json_pack("{s:s?,s:I}", "payment_id", pid, "refunded", (json_int_t)amount);
    return res->output ? 0 : SAGA_ENOMEM;
}

static const participant_handler_t HANDLERS[] = {
    {"payment.charge", PARTICIPANT_ACTION, payment_charge},
    {"payment.refund", PARTICIPANT_COMPENSATION, payment_refund},
    {NULL, PARTICIPANT_ACTION, NULL},
};

static const participant_spec_t SPEC = {
    .name = "payment",
    .program = "payment-worker",
    .env_prefix = "PAYMENT_WORKER",
    .summary = "Example saga participant: charges and refunds customers in cents (payment.charge / payment.refund).",
    .schema_sql = SCHEMA,
    .seed = payment_seed,
    .handlers = HANDLERS,
    .user = NULL,
};

const participant_spec_t *payment_worker_spec(void) { return &SPEC; }
