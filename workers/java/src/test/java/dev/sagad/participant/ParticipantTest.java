// The participant library's rules on a temporary SQLite ledger, no Kafka: the same cases as
// tests/unit/test_participant.c (duplicates, compensation pairing, malformed and unknown commands,
// transient outcomes, maximum-length ids), with the Java payment worker's handlers.
package dev.sagad.participant;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.sagad.payment.PaymentWorker;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.sql.SQLException;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ParticipantTest {
    static final ObjectMapper M = new ObjectMapper();
    @TempDir Path dir;
    Participant p;

    @BeforeEach
    void open() throws Exception {
        p = new Participant(new PaymentWorker(true, 10).spec(), dir.resolve("payment.db").toString());
        p.seedJson(M.readTree("{\"accounts\":{\"c-1\":10000,\"c-broke\":0,\"c-flaky\":5000}}"));
    }

    @AfterEach
    void close() throws SQLException { p.close(); }

    static ObjectNode command(String saga, String kind, String action, long attempt, String payload) throws Exception {
        ObjectNode c = M.createObjectNode();
        c.put("type", "saga.command").put("message_id", saga + "/charge_payment/" + kind + "/" + attempt).put("saga_id", saga)
                .put("definition", "order_fulfillment").put("step", "charge_payment").put("kind", kind).put("action", action)
                .put("attempt", attempt).put("idempotency_key", saga + "/charge_payment/" + kind)
                .put("reply_to", "saga.replies").put("reply_partition", 5);
        c.set("payload", M.readTree(payload));
        return c;
    }

    Reply send(JsonNode cmd) { return p.process(cmd.toString().getBytes(StandardCharsets.UTF_8), null); }
    JsonNode body(Reply r) throws Exception { return M.readTree(r.body); }
    long q(String sql) throws SQLException { Long v = Participant.queryLong(p.db(), sql); return v == null ? -1 : v; }
    long balance(String customer) throws SQLException { return q("SELECT balance FROM accounts WHERE customer='" + customer + "'"); }

    @Test
    void chargeThenDuplicateGetsTheStoredReplyAndRunsNothing() throws Exception {
        Reply r1 = send(command("s-1", "action", "payment.charge", 1, "{\"customer\":\"c-1\",\"amount\":1999}"));
        JsonNode b1 = body(r1);
        assertEquals("success", b1.get("status").asText());
        assertEquals("r-s-1/charge_payment/action/1", b1.get("message_id").asText());
        assertEquals("s-1/charge_payment/action/1", b1.get("in_reply_to").asText());
        assertEquals("pay-s-1/charge_payment", b1.at("/output/payment_id").asText());
        assertEquals(1999, b1.at("/output/amount").asLong());
        assertEquals("saga.replies", r1.topic);
        assertEquals(5, r1.partition);
        assertEquals("s-1", r1.key);
        assertEquals(10000 - 1999, balance("c-1"));

        Reply same = send(command("s-1", "action", "payment.charge", 1, "{\"customer\":\"c-1\",\"amount\":1999}"));
        assertTrue(same.duplicate);
        assertEquals(r1.bodyText(), same.bodyText(), "the same delivery gets the same reply, same id");
        Reply next = send(command("s-1", "action", "payment.charge", 2, "{\"customer\":\"c-1\",\"amount\":1999}"));
        JsonNode b2 = body(next);
        assertEquals("r-s-1/charge_payment/action/2", b2.get("message_id").asText());
        assertEquals(2, b2.get("attempt").asLong());
        assertEquals(b1.get("output"), b2.get("output"));
        assertEquals(10000 - 1999, balance("c-1"), "charged once");
        assertEquals(1, q("SELECT count(*) FROM charges"));
        assertEquals(1, q("SELECT count(*) FROM processed"));
    }

    @Test
    void refundGivesBackExactlyOnce() throws Exception {
        send(command("s-2", "action", "payment.charge", 1, "{\"customer\":\"c-1\",\"amount\":700}"));
        ObjectNode comp = command("s-2", "compensation", "payment.refund", 1, "{\"customer\":\"c-1\",\"amount\":700,\"action_output\":null}");
        JsonNode b = body(send(comp));
        assertEquals("success", b.get("status").asText());
        assertEquals(700, b.at("/output/refunded").asLong());
        assertEquals("pay-s-2/charge_payment", b.at("/output/payment_id").asText(), "from the ledger, not the payload's null");
        assertEquals(10000, balance("c-1"));
        assertTrue(send(comp).duplicate);
        send(command("s-2", "compensation", "payment.refund", 2, "{}"));
        assertEquals(10000, balance("c-1"), "refunded once");
        assertEquals(0, q("SELECT noop FROM processed WHERE kind='compensation'"));
    }

    @Test
    void compensationBeforeItsActionIsANoOpAndTheLateActionIsRefused() throws Exception {
        JsonNode c = body(send(command("s-3", "compensation", "payment.refund", 1, "{\"action_output\":null}")));
        assertEquals("success", c.get("status").asText());
        assertTrue(c.at("/output/noop").asBoolean());
        assertEquals(1, q("SELECT noop FROM processed WHERE saga_id='s-3' AND kind='compensation'"), "the mark");
        JsonNode a = body(send(command("s-3", "action", "payment.charge", 1, "{\"customer\":\"c-1\",\"amount\":100}")));
        assertEquals("failure", a.get("status").asText());
        assertEquals("COMPENSATED_BEFORE_ACTION", a.at("/error/code").asText());
        assertEquals(10000, balance("c-1"), "the late action charged nothing");
        assertEquals(0, q("SELECT count(*) FROM charges"));
        assertEquals(1, q("SELECT noop FROM processed WHERE saga_id='s-3' AND kind='action'"));
    }

    @Test
    void declinedIsARecordedFailureWithNothingChanged() throws Exception {
        JsonNode b = body(send(command("s-4", "action", "payment.charge", 1, "{\"customer\":\"c-broke\",\"amount\":1}")));
        assertEquals("failure", b.get("status").asText());
        assertEquals("PAYMENT_DECLINED", b.at("/error/code").asText());
        assertFalse(b.has("output"));
        assertEquals("PAYMENT_DECLINED", Participant.queryRow(p.db(), "SELECT error_code FROM processed")[0]);
        JsonNode comp = body(send(command("s-4", "compensation", "payment.refund", 1, "{}")));
        assertTrue(comp.at("/output/noop").asBoolean(), "a failed action's compensation is a no-op");
        assertEquals("INVALID_PAYLOAD", body(send(command("s-5", "action", "payment.charge", 1, "{\"customer\":\"c-1\",\"amount\":1.5}"))).at("/error/code").asText());
        assertEquals("INVALID_PAYLOAD", body(send(command("s-6", "action", "payment.charge", 1, "{\"amount\":5}"))).at("/error/code").asText());
    }

    @Test
    void transientIsNotRecordedAndHasAUniqueId() throws Exception {
        Reply r = send(command("s-7", "action", "payment.charge", 1, "{\"customer\":\"c-flaky\",\"amount\":10}"));
        JsonNode b = body(r);
        assertEquals("retry", b.get("status").asText());
        assertEquals("TEST_TRANSIENT", b.at("/error/code").asText());
        assertTrue(b.get("message_id").asText().matches("r-s-7/charge_payment/action/1/t-[0-9a-f]{16}"));
        assertEquals(0, q("SELECT count(*) FROM processed"));
        assertNotEquals(b.get("message_id"), body(send(command("s-7", "action", "payment.charge", 1, "{\"customer\":\"c-flaky\",\"amount\":10}"))).get("message_id"));
        assertEquals("success", body(send(command("s-7", "action", "payment.charge", 2, "{\"customer\":\"c-flaky\",\"amount\":10}"))).get("status").asText());
        assertEquals(4990, balance("c-flaky"));
    }

    @Test
    void malformedAndUnknownCommandsAreAnsweredAsTheCLibraryDoes() throws Exception {
        ObjectNode noPayload = command("s-8", "action", "payment.charge", 1, "{}");
        noPayload.remove("payload");
        Reply r = send(noPayload);
        JsonNode b = body(r);
        assertEquals("failure", b.get("status").asText());
        assertEquals("MALFORMED_COMMAND", b.at("/error/code").asText());
        assertEquals("\"payload\" must be a JSON object", b.at("/error/message").asText());
        assertEquals("r-s-8/charge_payment/action/1", b.get("message_id").asText());

        ObjectNode badAttempt = command("s-9", "action", "payment.charge", 1, "{}");
        badAttempt.put("attempt", "one");
        JsonNode ba = body(send(badAttempt));
        assertEquals("MALFORMED_COMMAND", ba.at("/error/code").asText());
        assertFalse(ba.has("attempt"), "an unreadable attempt is left out, as in C");

        assertNull(send(M.readTree("{\"type\":\"saga.start\",\"message_id\":\"m\"}")), "not a command: nobody waits");
        assertNull(p.process("not json".getBytes(StandardCharsets.UTF_8), null));
        ObjectNode noReplyTo = command("s-10", "action", "payment.charge", 1, "{}");
        noReplyTo.remove("reply_to");
        assertNull(send(noReplyTo), "no reply_to: nowhere to answer");

        JsonNode u = body(send(command("s-11", "action", "payment.teleport", 1, "{}")));
        assertEquals("UNKNOWN_ACTION", u.at("/error/code").asText());
        assertEquals("payment does not handle action 'payment.teleport'", u.at("/error/message").asText());
        JsonNode wrongKind = body(send(command("s-12", "action", "payment.refund", 1, "{}")));
        assertEquals("UNKNOWN_ACTION", wrongKind.at("/error/code").asText());
        assertEquals(0, q("SELECT count(*) FROM processed"), "unknown and malformed commands are not recorded");
    }

    @Test
    void replyPartitionAbsentOrInvalidIsMinusOne() throws Exception {
        ObjectNode c = command("s-13", "action", "payment.charge", 1, "{\"customer\":\"c-1\",\"amount\":1}");
        c.remove("reply_partition");
        assertEquals(-1, send(c).partition);
        ObjectNode d = command("s-14", "action", "payment.charge", 1, "{\"customer\":\"c-1\",\"amount\":1}");
        d.put("reply_partition", 3.0);
        assertEquals(-1, send(d).partition, "a real is not a partition number (jansson's json_is_integer)");
    }

    @Test
    void maximumLengthIdsWork() throws Exception {
        String saga = "s" + "x".repeat(126); // 127 bytes, the documented maximum
        String step = "charge_" + "p".repeat(120); // 127 bytes
        ObjectNode c = command(saga, "action", "payment.charge", 1000000, "{\"customer\":\"c-1\",\"amount\":5}");
        c.put("step", step).put("message_id", saga + "/" + step + "/action/1000000").put("idempotency_key", saga + "/" + step + "/action");
        JsonNode b = body(send(c));
        assertEquals("success", b.get("status").asText());
        assertTrue(b.get("message_id").asText().length() <= 400);
        assertEquals("pay-" + saga + "/" + step, b.at("/output/payment_id").asText());
        ObjectNode comp = command(saga, "compensation", "payment.refund", 1, "{}");
        comp.put("step", step).put("message_id", saga + "/" + step + "/compensation/1").put("idempotency_key", saga + "/" + step + "/compensation");
        assertEquals(5, body(send(comp)).at("/output/refunded").asLong());
        assertEquals(10000, balance("c-1"));
    }

    @Test
    void aBatchIsOneTransactionAndRollsBackWhole() throws Exception {
        p.batchBegin();
        p.batchProcess(command("s-15", "action", "payment.charge", 1, "{\"customer\":\"c-1\",\"amount\":10}").toString().getBytes(StandardCharsets.UTF_8), null);
        p.batchProcess(command("s-16", "action", "payment.charge", 1, "{\"customer\":\"c-1\",\"amount\":10}").toString().getBytes(StandardCharsets.UTF_8), null);
        p.batchRollback();
        assertEquals(10000, balance("c-1"));
        assertEquals(0, q("SELECT count(*) FROM processed"));
    }

    @Test
    void seedLoadsOnlyOnce() throws Exception {
        p.seedJson(M.readTree("{\"accounts\":{\"c-new\":1}}"));
        assertEquals(-1, balance("c-new"), "an already seeded ledger ignores seed data");
    }
}
