// The participant's decision for each command and the ledger transaction around it: the same rules
// as workers/lib (participant.c, participant_ledger.c). Commands are processed in batches: one
// SQLite transaction per batch, one savepoint per command, one more around the handler.
package dev.sagad.participant;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Instant;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.Random;

public final class Participant implements AutoCloseable {
    /** The library's tables, byte for byte those of workers/lib: `processed` is the idempotency record. */
    static final String LIBRARY_SCHEMA = """
            CREATE TABLE IF NOT EXISTS processed (
              idempotency_key TEXT PRIMARY KEY,
              saga_id TEXT NOT NULL,
              step TEXT NOT NULL,
              kind TEXT NOT NULL CHECK (kind IN ('action','compensation')),
              action TEXT NOT NULL,
              status TEXT NOT NULL CHECK (status IN ('success','failure')),
              error_code TEXT,
              noop INTEGER NOT NULL DEFAULT 0,
              command_message_id TEXT NOT NULL,
              attempt INTEGER NOT NULL,
              reply TEXT NOT NULL,
              processed_at TEXT NOT NULL);
            CREATE INDEX IF NOT EXISTS processed_saga_step ON processed(saga_id, step, kind);
            CREATE TABLE IF NOT EXISTS participant_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            """;
    private static final DateTimeFormatter RFC3339 =
            DateTimeFormatter.ofPattern("uuuu-MM-dd'T'HH:mm:ss.SSS'Z'").withZone(ZoneOffset.UTC);

    /** Fault injection (tests only), as the C workers' flags. */
    public static final class Faults {
        public double failRate, retryRate, noReplyRate;
        public long delayMs, crashAfter;
        public long seed; // 0: random
        boolean any() { return failRate > 0 || retryRate > 0 || noReplyRate > 0 || delayMs > 0 || crashAfter > 0; }
    }

    final Spec spec;
    final Connection db;
    private Faults faults = new Faults();
    private Random rng = new Random();
    private long processed, batchCount;
    private boolean inBatch, batchBroken;

    public Participant(Spec spec, String dbPath) throws SQLException {
        this.spec = spec;
        try {
            db = DriverManager.getConnection("jdbc:sqlite:" + dbPath);
        } catch (SQLException e) {
            throw new SQLException("cannot open ledger '" + dbPath + "': " + e.getMessage(), e);
        }
        try (Statement st = db.createStatement()) {
            st.execute("PRAGMA busy_timeout=5000");
            st.execute("PRAGMA journal_mode=WAL");
            st.execute("PRAGMA synchronous=FULL");
            st.execute("PRAGMA foreign_keys=ON");
            execScript(LIBRARY_SCHEMA);
            if (spec.schemaSql != null) execScript(spec.schemaSql);
        } catch (SQLException e) {
            db.close();
            throw new SQLException("ledger '" + dbPath + "': " + e.getMessage(), e);
        }
    }

    private void execScript(String sql) throws SQLException {
        try (Statement st = db.createStatement()) {
            for (String one : sql.split(";")) if (!one.isBlank()) st.execute(one);
        }
    }

    public Connection db() { return db; }
    public long processedCount() { return processed; }
    public void setFaults(Faults f) {
        faults = f;
        if (f.seed != 0) rng = new Random(f.seed);
    }
    public Faults faults() { return faults; }

    private boolean roll(double rate) { return rate > 0 && rng.nextDouble() < rate; }

    public static String now() { return RFC3339.format(Instant.now()); }

    private void sql(String s) throws SQLException {
        try (Statement st = db.createStatement()) { st.execute(s); }
    }

    // ---- seed -----------------------------------------------------------------------------------

    /** Loads the seed file into a ledger never seeded and with no processed command; else ignores it. */
    public void seedFile(String path) throws IOException, SQLException {
        String text;
        try {
            text = Files.readString(Path.of(path));
        } catch (IOException e) {
            throw new IOException("cannot read seed file '" + path + "'", e);
        }
        JsonNode seed;
        try {
            seed = Command.JSON.readTree(text);
        } catch (IOException e) {
            throw new IOException(path + ": invalid JSON: " + e.getMessage(), e);
        }
        try {
            seedJson(seed);
        } catch (IllegalArgumentException | SQLException e) {
            throw new IOException(path + ": " + e.getMessage(), e);
        }
    }

    public void seedJson(JsonNode seed) throws SQLException {
        if (exists("SELECT 1 FROM participant_meta WHERE key='seeded_at'")) {
            Log.info(spec.name, "ledger already seeded: seed data ignored");
            return;
        }
        if (exists("SELECT 1 FROM processed LIMIT 1")) {
            Log.warn(spec.name, "ledger has processed commands: seed data ignored (seed only loads into an empty ledger)");
            return;
        }
        if (seed == null || !seed.isObject()) throw new IllegalArgumentException("seed data must be a JSON object");
        sql("BEGIN IMMEDIATE");
        try {
            if (spec.seeder != null) spec.seeder.seed(db, seed);
            update(db, "INSERT INTO participant_meta(key, value) VALUES('seeded_at', ?)", now());
            sql("COMMIT");
        } catch (SQLException | RuntimeException e) {
            sql("ROLLBACK");
            throw e;
        }
        Log.info(spec.name, "ledger seeded");
    }

    private boolean exists(String q) throws SQLException {
        try (Statement st = db.createStatement(); ResultSet rs = st.executeQuery(q)) { return rs.next(); }
    }

    // ---- SQL helpers for handlers ---------------------------------------------------------------

    /** Runs a statement with bound parameters; returns the rows changed. */
    public static int update(Connection db, String sql, Object... args) throws SQLException {
        try (PreparedStatement st = db.prepareStatement(sql)) {
            for (int i = 0; i < args.length; i++) st.setObject(i + 1, args[i]);
            return st.executeUpdate();
        }
    }

    /** The first column of the first row as a long, or null when there is no row. */
    public static Long queryLong(Connection db, String sql, Object... args) throws SQLException {
        try (PreparedStatement st = db.prepareStatement(sql)) {
            for (int i = 0; i < args.length; i++) st.setObject(i + 1, args[i]);
            try (ResultSet rs = st.executeQuery()) { return rs.next() ? rs.getLong(1) : null; }
        }
    }

    /** The first row's columns as strings, or null when there is no row. */
    static String[] queryRow(Connection db, String sql, Object... args) throws SQLException {
        try (PreparedStatement st = db.prepareStatement(sql)) {
            for (int i = 0; i < args.length; i++) st.setObject(i + 1, args[i]);
            try (ResultSet rs = st.executeQuery()) {
                if (!rs.next()) return null;
                String[] row = new String[rs.getMetaData().getColumnCount()];
                for (int i = 0; i < row.length; i++) row[i] = rs.getString(i + 1);
                return row;
            }
        }
    }

    // ---- batches --------------------------------------------------------------------------------

    public void batchBegin() throws SQLException {
        if (inBatch) throw new IllegalStateException("a batch is already open");
        sql("BEGIN IMMEDIATE");
        inBatch = true;
        batchBroken = false;
        batchCount = 0;
    }

    public void batchRollback() {
        if (!inBatch) return;
        try {
            sql("ROLLBACK");
        } catch (SQLException e) {
            // no transaction left: SQLite already rolled it back
        }
        processed -= batchCount;
        inBatch = false;
        batchBroken = false;
        batchCount = 0;
    }

    /** Commits the batch; false (rolled back, logged) when the ledger refused. */
    public boolean batchCommit() {
        if (!inBatch) throw new IllegalStateException("no batch open");
        try {
            if (batchBroken) throw new SQLException("the batch was rolled back by SQLite");
            sql("COMMIT");
        } catch (SQLException e) {
            Log.error(spec.name, "ledger commit failed: " + e.getMessage() + "; batch rolled back");
            batchRollback();
            return false;
        }
        inBatch = false;
        batchCount = 0;
        if (faults.crashAfter > 0 && processed >= faults.crashAfter) {
            Log.error(spec.name, "fault injection: abort after " + processed + " commands (--crash-after)");
            Runtime.getRuntime().halt(134);
        }
        return true;
    }

    /** One command in its own transaction (tests; the runner's fallback after a failed batch). */
    public Reply process(byte[] bytes, String where) {
        boolean began;
        try {
            batchBegin();
            began = true;
        } catch (SQLException e) {
            began = false;
        }
        Outcome o = batchProcess(bytes, where);
        if (!began) return o.malformed ? o.reply : lostReply(bytes);
        if (!batchCommit()) return o.malformed ? o.reply : lostReply(bytes);
        return o.reply;
    }

    /** What batchProcess did: the reply (null: none to send) and whether the command was malformed. */
    public record Outcome(Reply reply, boolean malformed, boolean ledgerError) {}

    /** Processes one command inside the open batch. */
    public Outcome batchProcess(byte[] bytes, String where) {
        if (where == null) where = "(direct)";
        Command c;
        try {
            c = Command.parse(bytes);
        } catch (Command.Malformed m) {
            Command part = m.command;
            Log.error(spec.name, part.sagaId, part.step, "malformed command at " + where + " skipped: " + m.getMessage());
            Reply r = part.replyReadable() ? unrecorded(part, Status.FAILURE, "MALFORMED_COMMAND", m.getMessage()) : null;
            return new Outcome(r, true, false);
        }
        Reply reply = null;
        String error = null;
        if (!inBatch || batchBroken) {
            error = "no ledger transaction";
        } else {
            try {
                if (faults.delayMs > 0) Thread.sleep(faults.delayMs);
                sql("SAVEPOINT cmd");
                try {
                    reply = decide(c);
                    sql("RELEASE cmd");
                } catch (SQLException | RuntimeException e) {
                    error = e.getMessage();
                    try {
                        sql("ROLLBACK TO cmd");
                        sql("RELEASE cmd");
                    } catch (SQLException e2) {
                        batchBroken = true;
                    }
                }
            } catch (SQLException e) {
                error = e.getMessage();
                batchBroken = true;
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                error = "interrupted";
            }
        }
        if (error != null) {
            Log.error(spec.name, c.sagaId, c.step, "command " + c.messageId + " at " + where + ": " + error
                    + "; nothing applied, replying retry");
            return new Outcome(unrecorded(c, Status.RETRY, "LEDGER_ERROR", "the participant's ledger failed"), false, true);
        }
        processed++;
        batchCount++;
        if (reply != null && roll(faults.noReplyRate)) {
            Log.warn(spec.name, c.sagaId, c.step, "fault injection: reply " + reply.messageId + " not sent (--no-reply-rate)");
            reply.body = null;
        }
        return new Outcome(reply, false, false);
    }

    /** A retry reply for a command whose outcome was lost with its transaction. */
    private Reply lostReply(byte[] bytes) {
        try {
            return unrecorded(Command.parse(bytes), Status.RETRY, "LEDGER_ERROR", "the participant's ledger commit failed");
        } catch (Command.Malformed m) {
            return null;
        }
    }

    /** A reply that is not recorded (malformed or unknown command, transient outcome). */
    static Reply unrecorded(Command c, Status st, String code, String msg) {
        String id = st == Status.RETRY ? c.retryReplyId() : "r-" + c.messageId;
        return c.toReply(c.buildReply(id, st, null, code, msg), st, false);
    }

    /** The decision for one valid command, inside the savepoint "cmd". */
    private Reply decide(Command c) throws SQLException {
        String[] stored = queryRow(db, "SELECT reply, status FROM processed WHERE idempotency_key = ?", c.idempotencyKey);
        if (stored != null) {
            Log.info(spec.name, c.sagaId, c.step, "duplicate " + c.kind.wire + " " + c.action + " (attempt " + c.attempt
                    + "): stored " + stored[1] + " reply re-sent, nothing ran");
            return resendStored(c, stored[0]);
        }
        Handler h = (c.kind == Command.Kind.ACTION ? spec.actions : spec.compensations).get(c.action);
        if (h == null) {
            boolean wrongKind = (c.kind == Command.Kind.ACTION ? spec.compensations : spec.actions).containsKey(c.action);
            Log.error(spec.name, c.sagaId, c.step, "unknown " + c.kind.wire + " '" + c.action + "' (message " + c.messageId + ")"
                    + (wrongKind ? ": registered with the other kind" : ""));
            return unrecorded(c, Status.FAILURE, "UNKNOWN_ACTION",
                    spec.name + " does not handle " + c.kind.wire + " '" + c.action + "'");
        }
        Result res = null;
        boolean noop = false, ran = false;
        String[] sibling = queryRow(db, "SELECT idempotency_key, reply, status FROM processed "
                + "WHERE saga_id = ? AND step = ? AND kind = ? LIMIT 1", c.sagaId, c.step,
                c.kind == Command.Kind.ACTION ? "compensation" : "action");
        if (c.kind == Command.Kind.ACTION) {
            if (sibling != null) {
                Log.warn(spec.name, c.sagaId, c.step, "late action " + c.action + " (attempt " + c.attempt
                        + ") after its compensation: refused, nothing ran");
                res = Result.failure("COMPENSATED_BEFORE_ACTION",
                        "step " + c.step + " of saga " + c.sagaId + " was already compensated; the action is refused");
                noop = true;
            }
        } else if (sibling == null || !"success".equals(sibling[2])) {
            Log.info(spec.name, c.sagaId, c.step, "compensation " + c.action + ": the action "
                    + (sibling == null ? "never ran" : "did not succeed") + " here, no-op recorded");
            res = Result.success(Command.JSON.createObjectNode().put("noop", true));
            noop = true;
        } else {
            c.actionKey = sibling[0];
            JsonNode actionReply = parseOrNull(sibling[1]);
            JsonNode out = actionReply == null ? null : actionReply.get("output");
            c.actionOutput = out != null ? out : Command.JSON.nullNode();
        }
        if (!noop) {
            if (roll(faults.retryRate)) {
                res = Result.retry("INJECTED_TRANSIENT", "fault injection: transient failure (--retry-rate)");
            } else if (c.kind == Command.Kind.ACTION && roll(faults.failRate)) {
                res = Result.failure("INJECTED_FAILURE", "fault injection: business failure (--fail-rate)");
                noop = true;
            } else {
                sql("SAVEPOINT handler");
                try {
                    res = h.handle(db, c);
                    if (res == null) res = Result.success(null);
                } catch (SQLException | RuntimeException e) {
                    sql("ROLLBACK TO handler");
                    sql("RELEASE handler");
                    Log.error(spec.name, c.sagaId, c.step, c.kind.wire + " " + c.action + ": ledger error (" + e.getMessage() + ")");
                    throw e instanceof SQLException s ? s : new SQLException(e);
                }
                ran = true;
                // Business failure or transient: the handler's changes are undone.
                if (res.status != Status.SUCCESS) sql("ROLLBACK TO handler");
                sql("RELEASE handler");
            }
        }
        if (res.status == Status.RETRY) {
            Log.warn(spec.name, c.sagaId, c.step, c.kind.wire + " " + c.action + " attempt " + c.attempt + ": transient "
                    + res.code + ": " + res.message + " (not recorded)");
            return unrecorded(c, Status.RETRY, res.code, res.message);
        }
        Reply r = recordOutcome(c, res, noop);
        String line = c.kind.wire + " " + c.action + " attempt " + c.attempt + ": " + res.status.wire
                + (res.status == Status.SUCCESS ? "" : " " + res.code) + (ran ? "" : " (handler not run)");
        if (res.status == Status.SUCCESS) Log.debug(spec.name, c.sagaId, c.step, line);
        else Log.info(spec.name, c.sagaId, c.step, line);
        return r;
    }

    private static JsonNode parseOrNull(String text) {
        try {
            return Command.JSON.readTree(text);
        } catch (IOException e) {
            return null;
        }
    }

    /** Inserts the processed row holding the reply, in the command's savepoint. */
    private Reply recordOutcome(Command c, Result res, boolean noop) throws SQLException {
        ObjectNode r = c.buildReply(c.recordedReplyId(), res.status, res.output, res.code, res.message);
        update(db, "INSERT INTO processed(idempotency_key, saga_id, step, kind, action, status, error_code, noop,"
                        + " command_message_id, attempt, reply, processed_at) VALUES(?,?,?,?,?,?,?,?,?,?,?,?)",
                c.idempotencyKey, c.sagaId, c.step, c.kind.wire, c.action, res.status.wire,
                res.status == Status.SUCCESS ? null : res.code, noop ? 1 : 0, c.messageId, c.attempt, Command.dump(r), now());
        return c.toReply(r, res.status, false);
    }

    /** The stored reply again, for this delivery: its ids and attempt. */
    private static Reply resendStored(Command c, String stored) throws SQLException {
        JsonNode n = parseOrNull(stored);
        if (!(n instanceof ObjectNode r)) throw new SQLException("stored reply of " + c.idempotencyKey + " is not a JSON object");
        r.put("message_id", c.recordedReplyId());
        r.put("in_reply_to", c.messageId);
        r.put("attempt", c.attempt);
        Status st = "success".equals(r.path("status").asText()) ? Status.SUCCESS : Status.FAILURE;
        return c.toReply(r, st, true);
    }

    @Override
    public void close() throws SQLException {
        batchRollback();
        db.close();
    }
}
