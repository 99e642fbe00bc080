// A reply ready to be produced: topic, partition (-1: keyed by saga_id), key, JSON body.
package dev.sagad.participant;

public final class Reply {
    public final String messageId, topic, key;
    public int partition;
    public byte[] body;           // null: not sent (--no-reply-rate)
    public final Status status;
    public final boolean duplicate; // a stored reply re-sent: nothing ran

    Reply(String messageId, String topic, int partition, String key, byte[] body, Status status, boolean duplicate) {
        this.messageId = messageId;
        this.topic = topic;
        this.partition = partition;
        this.key = key;
        this.body = body;
        this.status = status;
        this.duplicate = duplicate;
    }

    public String bodyText() { return body == null ? null : new String(body, java.nio.charset.StandardCharsets.UTF_8); }
}
