// What a participant is: its names, its tables, its seed loader and its handlers (participant_spec_t).
package dev.sagad.participant;

import com.fasterxml.jackson.databind.JsonNode;

import java.sql.Connection;
import java.sql.SQLException;
import java.util.LinkedHashMap;
import java.util.Map;

public final class Spec {
    /** Loads seed JSON into a ledger never seeded; IllegalArgumentException names what is wrong. */
    @FunctionalInterface
    public interface Seeder { void seed(Connection db, JsonNode seed) throws SQLException; }

    public final String name, program, envPrefix, summary, schemaSql;
    public final Seeder seeder;
    final Map<String, Handler> actions = new LinkedHashMap<>(), compensations = new LinkedHashMap<>();

    /** name "payment": topic payment.commands, group payment-worker, ledger ./payment.db by default. */
    public Spec(String name, String program, String envPrefix, String summary, String schemaSql, Seeder seeder) {
        this.name = name;
        this.program = program;
        this.envPrefix = envPrefix;
        this.summary = summary;
        this.schemaSql = schemaSql;
        this.seeder = seeder;
    }

    public Spec action(String action, Handler h) { actions.put(action, h); return this; }
    public Spec compensation(String action, Handler h) { compensations.put(action, h); return this; }
}
