// The outcome of a command as sagad reads it from a reply's "status".
package dev.sagad.participant;

public enum Status {
    SUCCESS("success"), FAILURE("failure"), RETRY("retry");
    public final String wire;
    Status(String wire) { this.wire = wire; }
}
