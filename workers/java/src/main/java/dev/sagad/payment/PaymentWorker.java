// The payment participant in Java: workers/payment/payment.c's ledger, actions, seed and test
// triggers on the Java participant library, so `sagactl audit` reads its ledger as the C worker's.
// PAYMENT_WORKER_TEST_TRIGGERS=1: customer c-flaky* gets retry TEST_TRANSIENT on attempt 1 of a
// charge; c-slow* makes attempt 1 sleep PAYMENT_WORKER_TEST_SLOW_MS (1500) first.
package dev.sagad.payment;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.sagad.participant.Command;
import dev.sagad.participant.Participant;
import dev.sagad.participant.Result;
import dev.sagad.participant.Spec;
import dev.sagad.participant.WorkerMain;

import java.sql.Connection;
import java.sql.SQLException;
import java.util.Iterator;
import java.util.Map;

public final class PaymentWorker {
    static final String SCHEMA = """
            CREATE TABLE IF NOT EXISTS accounts (
              customer TEXT PRIMARY KEY,
              balance INTEGER NOT NULL CHECK (balance >= 0),
              initial INTEGER NOT NULL CHECK (initial >= 0));
            CREATE TABLE IF NOT EXISTS charges (
              payment_id TEXT PRIMARY KEY,
              idempotency_key TEXT NOT NULL UNIQUE,
              saga_id TEXT NOT NULL,
              customer TEXT NOT NULL REFERENCES accounts(customer),
              amount INTEGER NOT NULL CHECK (amount > 0),
              status TEXT NOT NULL CHECK (status IN ('charged','refunded')),
              created_at TEXT NOT NULL,
              refunded_at TEXT);
            CREATE INDEX IF NOT EXISTS charges_saga ON charges(saga_id);
            """;

    private final boolean testTriggers;
    private final long slowMs;

    public PaymentWorker(boolean testTriggers, long slowMs) {
        this.testTriggers = testTriggers;
        this.slowMs = slowMs > 0 ? slowMs : 1500;
    }

    public Spec spec() {
        return new Spec("payment", "payment-worker", "PAYMENT_WORKER",
                "Example saga participant in Java: charges and refunds customers in cents (payment.charge / payment.refund).",
                SCHEMA, PaymentWorker::seed)
                .action("payment.charge", this::charge)
                .compensation("payment.refund", this::refund);
    }

    /** seed.json's "accounts": {"customer": balance_in_cents}. */
    static void seed(Connection db, JsonNode seed) throws SQLException {
        JsonNode accounts = seed.get("accounts");
        if (accounts == null) return;
        if (!accounts.isObject()) throw new IllegalArgumentException("/accounts must be an object {\"customer\": balance_in_cents}");
        for (Iterator<Map.Entry<String, JsonNode>> it = accounts.fields(); it.hasNext();) {
            Map.Entry<String, JsonNode> e = it.next();
            JsonNode bal = e.getValue();
            if (!bal.isIntegralNumber() || !bal.canConvertToLong() || bal.asLong() < 0)
                throw new IllegalArgumentException("/accounts/" + e.getKey() + " must be an integer number of cents >= 0");
            Participant.update(db, "INSERT INTO accounts(customer, balance, initial) VALUES(?,?,?)", e.getKey(), bal.asLong(), bal.asLong());
        }
    }

    Result charge(Connection db, Command cmd) throws SQLException {
        JsonNode c = cmd.payload.get("customer"), a = cmd.payload.get("amount");
        if (c == null || !c.isTextual() || c.asText().isEmpty())
            return Result.failure("INVALID_PAYLOAD", "payload.customer must be a non-empty string");
        if (a == null || !a.isIntegralNumber() || !a.canConvertToLong() || a.asLong() <= 0)
            return Result.failure("INVALID_PAYLOAD", "payload.amount must be an integer number of cents > 0");
        String customer = c.asText();
        long amount = a.asLong();
        if (testTriggers && cmd.attempt == 1 && customer.startsWith("c-flaky"))
            return Result.retry("TEST_TRANSIENT", "test trigger: first attempt for " + customer + " fails transiently");
        if (testTriggers && cmd.attempt == 1 && customer.startsWith("c-slow")) {
            try {
                Thread.sleep(slowMs);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        Long balance = Participant.queryLong(db, "SELECT balance FROM accounts WHERE customer = ?", customer);
        if (balance == null) return Result.failure("PAYMENT_DECLINED", "unknown customer " + customer);
        if (balance < amount)
            return Result.failure("PAYMENT_DECLINED", "insufficient funds: " + amount + " cents wanted, balance " + balance);
        Participant.update(db, "UPDATE accounts SET balance = balance - ? WHERE customer = ?", amount, customer);
        String paymentId = "pay-" + cmd.sagaId + "/" + cmd.step;
        Participant.update(db, "INSERT INTO charges(payment_id, idempotency_key, saga_id, customer, amount, status, created_at)"
                + " VALUES(?,?,?,?,?,'charged',?)", paymentId, cmd.idempotencyKey, cmd.sagaId, customer, amount, Participant.now());
        ObjectNode out = Result.object();
        return Result.success(out.put("payment_id", paymentId).put("amount", amount));
    }

    /** Gives back exactly what the step's charge took, once; nothing charged any more gives back 0. */
    Result refund(Connection db, Command cmd) throws SQLException {
        Long amount = Participant.queryLong(db, "SELECT amount FROM charges WHERE idempotency_key = ? AND status = 'charged'", cmd.actionKey);
        if (amount != null) {
            Participant.update(db, "UPDATE accounts SET balance = balance + ?1 WHERE customer ="
                    + " (SELECT customer FROM charges WHERE idempotency_key = ?2)", amount, cmd.actionKey);
            Participant.update(db, "UPDATE charges SET status = 'refunded', refunded_at = ? WHERE idempotency_key = ?",
                    Participant.now(), cmd.actionKey);
        }
        ObjectNode out = Result.object();
        JsonNode pid = cmd.actionOutput == null ? null : cmd.actionOutput.get("payment_id");
        if (pid != null && pid.isTextual()) out.put("payment_id", pid.asText());
        else out.putNull("payment_id");
        return Result.success(out.put("refunded", amount == null ? 0 : amount));
    }

    public static void main(String[] args) {
        String slow = System.getenv("PAYMENT_WORKER_TEST_SLOW_MS");
        PaymentWorker w = new PaymentWorker("1".equals(System.getenv("PAYMENT_WORKER_TEST_TRIGGERS")),
                slow == null ? 0 : Long.parseLong(slow.trim()));
        System.exit(WorkerMain.run(w.spec(), args));
    }
}
