// Log lines on stderr in the C workers' format (common/saga_log.c): one JSON object per line, or plain text.
package dev.sagad.participant;

import com.fasterxml.jackson.databind.node.ObjectNode;

public final class Log {
    public enum Level { DEBUG, INFO, WARN, ERROR }

    private static volatile Level min = Level.INFO;
    private static volatile boolean json = true;

    private Log() {}

    public static void setJson(boolean on) { json = on; }
    /** false when name is not debug, info, warn or error. */
    public static boolean setLevel(String name) {
        for (Level l : Level.values()) if (l.name().equalsIgnoreCase(name)) { min = l; return true; }
        return false;
    }

    public static void debug(String component, String sagaId, String step, String msg) { log(Level.DEBUG, component, sagaId, step, msg); }
    public static void info(String component, String sagaId, String step, String msg) { log(Level.INFO, component, sagaId, step, msg); }
    public static void warn(String component, String sagaId, String step, String msg) { log(Level.WARN, component, sagaId, step, msg); }
    public static void error(String component, String sagaId, String step, String msg) { log(Level.ERROR, component, sagaId, step, msg); }
    public static void info(String component, String msg) { log(Level.INFO, component, null, null, msg); }
    public static void warn(String component, String msg) { log(Level.WARN, component, null, null, msg); }
    public static void error(String component, String msg) { log(Level.ERROR, component, null, null, msg); }

    static void log(Level level, String component, String sagaId, String step, String msg) {
        if (level.ordinal() < min.ordinal()) return;
        String ts = Participant.now(), name = level.name().toLowerCase();
        String line;
        if (json) {
            ObjectNode o = Command.JSON.createObjectNode().put("ts", ts).put("level", name).put("component", component);
            if (sagaId != null) o.put("saga_id", sagaId);
            if (step != null) o.put("step", step);
            o.put("msg", msg);
            line = Command.dump(o);
        } else {
            line = String.format("%s %-5s [%s]%s %s", ts, name, component, sagaId != null ? " saga=" + sagaId : "", msg);
        }
        synchronized (System.err) { System.err.println(line); }
    }
}
