// One saga.command as a participant reads it: parsing and validation exactly as workers/lib
// (participant_command.c), and the saga.reply bodies built for it.
package dev.sagad.participant;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.nio.charset.StandardCharsets;
import java.security.SecureRandom;

public final class Command {
    public enum Kind {
        ACTION("action"), COMPENSATION("compensation");
        public final String wire;
        Kind(String wire) { this.wire = wire; }
    }

    static final ObjectMapper JSON = new ObjectMapper();
    private static final SecureRandom RANDOM = new SecureRandom();

    public JsonNode doc;
    public String messageId, sagaId, step, action, idempotencyKey, definition, replyTo;
    /** The saga's partition of reply_to, or -1 when absent or not a partition number. */
    public int replyPartition = -1;
    public Kind kind;          // null when not "action"/"compensation"
    public long attempt;       // valid when attemptOk
    public boolean attemptOk;
    public ObjectNode payload;
    /** Compensations only: the idempotency key and the recorded output of the action they undo. */
    public String actionKey;
    public JsonNode actionOutput;

    /** Thrown by parse with the reason; the fields that could be read stay in command. */
    public static final class Malformed extends Exception {
        private static final long serialVersionUID = 1L;
        public final transient Command command;
        Malformed(Command c, String why) { super(why); command = c; }
    }

    private static String nonEmpty(JsonNode d, String k) {
        JsonNode v = d.get(k);
        return v != null && v.isTextual() && !v.asText().isEmpty() ? v.asText() : null;
    }

    public static Command parse(byte[] bytes) throws Malformed {
        Command c = new Command();
        try {
            c.doc = JSON.readTree(bytes == null ? new byte[0] : bytes);
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new Malformed(c, "invalid JSON: " + e.getOriginalMessage());
        } catch (java.io.IOException e) {
            throw new Malformed(c, "invalid JSON: " + e.getMessage());
        }
        if (c.doc == null || !c.doc.isObject()) throw new Malformed(c, "command is not a JSON object");
        JsonNode d = c.doc;
        c.messageId = nonEmpty(d, "message_id");
        c.sagaId = nonEmpty(d, "saga_id");
        c.step = nonEmpty(d, "step");
        c.action = nonEmpty(d, "action");
        c.idempotencyKey = nonEmpty(d, "idempotency_key");
        c.definition = d.path("definition").isTextual() ? d.get("definition").asText() : null;
        c.replyTo = nonEmpty(d, "reply_to");
        JsonNode rp = d.get("reply_partition");
        if (rp != null && rp.isIntegralNumber() && rp.canConvertToLong() && rp.asLong() >= 0 && rp.asLong() <= Integer.MAX_VALUE)
            c.replyPartition = (int) rp.asLong();
        String kind = d.path("kind").isTextual() ? d.get("kind").asText() : null;
        if ("action".equals(kind)) c.kind = Kind.ACTION;
        else if ("compensation".equals(kind)) c.kind = Kind.COMPENSATION;
        JsonNode at = d.get("attempt");
        if (at != null && at.isIntegralNumber() && at.canConvertToLong()) c.attempt = at.asLong();
        c.attemptOk = at != null && at.isIntegralNumber() && at.canConvertToLong() && c.attempt >= 1;
        if (d.get("payload") instanceof ObjectNode o) c.payload = o;

        JsonNode type = d.get("type");
        if (type == null || !type.isTextual() || !"saga.command".equals(type.asText()))
            throw new Malformed(c, "\"type\" is " + (type != null && type.isTextual() ? "\"" + prefix(type.asText(), 64) + "\"" : "missing")
                    + ", expected \"saga.command\"");
        String missing = c.messageId == null ? "message_id" : c.sagaId == null ? "saga_id" : c.step == null ? "step"
                : c.replyTo == null ? "reply_to" : c.action == null ? "action" : c.idempotencyKey == null ? "idempotency_key" : null;
        if (missing != null) throw new Malformed(c, "\"" + missing + "\" is missing or not a non-empty string");
        if (c.kind == null) throw new Malformed(c, "\"kind\" must be \"action\" or \"compensation\"");
        if (!c.attemptOk) throw new Malformed(c, "\"attempt\" must be an integer >= 1");
        if (c.payload == null) throw new Malformed(c, "\"payload\" must be a JSON object");
        return c;
    }

    private static String prefix(String s, int n) { return s.length() <= n ? s : s.substring(0, n); }

    /** Whether whoever sent it waits for an answer: it claims to be a command and names whom to answer. */
    public boolean replyReadable() {
        return doc != null && doc.isObject() && "saga.command".equals(doc.path("type").asText(null))
                && messageId != null && sagaId != null && step != null && replyTo != null;
    }

    /** The message id of a recorded outcome's reply: the same for every delivery of one attempt. */
    String recordedReplyId() { return "r-" + idempotencyKey + "/" + attempt; }

    /** A retry answer is not stable (the next delivery runs again): a unique id. */
    String retryReplyId() {
        byte[] b = new byte[8];
        RANDOM.nextBytes(b);
        StringBuilder hex = new StringBuilder("t-");
        for (byte x : b) hex.append(String.format("%02x", x));
        return "r-" + (idempotencyKey != null ? idempotencyKey : messageId) + "/" + attempt + "/" + hex;
    }

    /** A saga.reply object; output (may be null: {}) only for success, error code and message otherwise. */
    ObjectNode buildReply(String replyId, Status st, JsonNode output, String code, String message) {
        ObjectNode r = JSON.createObjectNode();
        r.put("type", "saga.reply");
        r.put("message_id", replyId);
        r.put("in_reply_to", messageId);
        r.put("saga_id", sagaId);
        r.put("step", step);
        if (kind != null) r.put("kind", kind.wire);
        if (attemptOk) r.put("attempt", attempt);
        r.put("status", st.wire);
        if (st == Status.SUCCESS) {
            r.set("output", output != null ? output.deepCopy() : JSON.createObjectNode());
        } else {
            ObjectNode e = r.putObject("error");
            e.put("code", code != null && !code.isEmpty() ? code : "UNSPECIFIED");
            e.put("message", message != null ? message : "");
        }
        return r;
    }

    static String dump(JsonNode n) {
        try {
            return JSON.writeValueAsString(n);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("cannot serialize a reply", e);
        }
    }

    /** What ends up on reply_to. */
    Reply toReply(ObjectNode r, Status st, boolean duplicate) {
        return new Reply(r.get("message_id").asText(), replyTo, replyPartition, sagaId,
                dump(r).getBytes(StandardCharsets.UTF_8), st, duplicate);
    }
}
