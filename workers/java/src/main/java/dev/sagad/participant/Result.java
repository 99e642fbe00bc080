// What a handler decides: success with an output, a business failure, or a transient outcome.
package dev.sagad.participant;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

public final class Result {
    public final Status status;
    public final JsonNode output;
    public final String code, message;

    private Result(Status status, JsonNode output, String code, String message) {
        this.status = status;
        this.output = output;
        this.code = code;
        this.message = message;
    }

    /** An empty JSON object for an output. */
    public static ObjectNode object() { return Command.JSON.createObjectNode(); }

    /** Success: the handler's changes and the processed row commit; output null gives {}. */
    public static Result success(JsonNode output) { return new Result(Status.SUCCESS, output, null, null); }
    /** Business failure: the handler's changes roll back, the failure is recorded and answered. */
    public static Result failure(String code, String message) { return new Result(Status.FAILURE, null, code, message); }
    /** Transient: everything rolls back, nothing is recorded; the next attempt runs again. */
    public static Result retry(String code, String message) { return new Result(Status.RETRY, null, code, message); }
}
