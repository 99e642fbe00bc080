/* The SQLite schema of sagad's database, one migration per entry;
 * PRAGMA user_version holds how many have been applied. Times are
 * milliseconds since the Unix epoch; JSON columns hold compact JSON text.
 * Readers (admin API, sagactl audit, tests) rely on these names. */
#ifndef SAGA_STORE_SCHEMA_H
#define SAGA_STORE_SCHEMA_H

static const char *const saga_store_migrations[] = {
    /* 1: the walking skeleton's tables */
    "CREATE TABLE definitions ("
    "  name TEXT NOT NULL, version INTEGER NOT NULL, hash TEXT NOT NULL,"
    "  json TEXT NOT NULL, loaded_at INTEGER NOT NULL,"
    "  PRIMARY KEY (name, version)) WITHOUT ROWID;"

    "CREATE TABLE sagas ("
    "  id TEXT PRIMARY KEY, definition TEXT NOT NULL, version INTEGER NOT NULL,"
    "  status TEXT NOT NULL, input TEXT NOT NULL, traceparent TEXT NOT NULL DEFAULT '',"
    "  start_message_id TEXT, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,"
    "  deadline_at INTEGER NOT NULL DEFAULT 0, seq INTEGER NOT NULL DEFAULT 0,"
    "  completions INTEGER NOT NULL DEFAULT 0,"
    "  error_code TEXT NOT NULL DEFAULT '', error_message TEXT NOT NULL DEFAULT '') WITHOUT ROWID;"
    "CREATE INDEX sagas_status ON sagas (status, updated_at);"

    "CREATE TABLE steps ("
    "  saga_id TEXT NOT NULL, idx INTEGER NOT NULL, name TEXT NOT NULL, status TEXT NOT NULL,"
    "  attempt INTEGER NOT NULL DEFAULT 0, comp_attempt INTEGER NOT NULL DEFAULT 0,"
    "  comp_budget_base INTEGER NOT NULL DEFAULT 0,"
    "  outcome_unknown INTEGER NOT NULL DEFAULT 0, output TEXT,"
    "  error_code TEXT NOT NULL DEFAULT '', error_message TEXT NOT NULL DEFAULT '',"
    "  started_at INTEGER NOT NULL DEFAULT 0, finished_at INTEGER NOT NULL DEFAULT 0,"
    "  updated_at INTEGER NOT NULL DEFAULT 0, completion_order INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (saga_id, idx)) WITHOUT ROWID;"

    /* Append-only audit log: one row per lifecycle event. */
    "CREATE TABLE history ("
    "  saga_id TEXT NOT NULL, seq INTEGER NOT NULL, at INTEGER NOT NULL,"
    "  event TEXT NOT NULL, step TEXT, status TEXT NOT NULL, detail TEXT NOT NULL,"
    "  PRIMARY KEY (saga_id, seq)) WITHOUT ROWID;"

    /* Messages to publish; a row is deleted once Kafka acknowledged it.
     * AUTOINCREMENT: ids must never be reused, the relay walks them upwards. */
    "CREATE TABLE outbox ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, key TEXT NOT NULL,"
    "  headers TEXT NOT NULL, payload TEXT NOT NULL, created_at INTEGER NOT NULL);"

    "CREATE TABLE dedup ("
    "  consumer TEXT NOT NULL, message_id TEXT NOT NULL, seen_at INTEGER NOT NULL,"
    "  PRIMARY KEY (consumer, message_id)) WITHOUT ROWID;"

    /* One timer per (saga, slot): slot = step index, -1 = saga deadline. */
    "CREATE TABLE timers ("
    "  saga_id TEXT NOT NULL, slot INTEGER NOT NULL, kind TEXT NOT NULL,"
    "  attempt INTEGER NOT NULL, due_at INTEGER NOT NULL,"
    "  PRIMARY KEY (saga_id, slot)) WITHOUT ROWID;"
    "CREATE INDEX timers_due ON timers (due_at);",

    /* 2: dedup rows are pruned by age */
    "CREATE INDEX dedup_seen ON dedup (seen_at);",

    /* 3: outbox rows the broker refused for good (too large, invalid, not
     * authorised, no such topic), kept for operators: the row as it was,
     * when and why it was parked, and what sagad did instead (outcome:
     * step_failed, compensation_failed, stub_sent, dropped). */
    "CREATE TABLE outbox_parked ("
    "  id INTEGER PRIMARY KEY, topic TEXT NOT NULL, key TEXT NOT NULL,"
    "  headers TEXT NOT NULL, payload BLOB NOT NULL, created_at INTEGER NOT NULL,"
    "  parked_at INTEGER NOT NULL, error TEXT NOT NULL, outcome TEXT NOT NULL);",
    /* 4: a start's message id is looked up in the saga it started (the
     * dedup row of a start without saga_id may have been pruned) */
    "CREATE INDEX sagas_start_message ON sagas (start_message_id) WHERE start_message_id IS NOT NULL;",
    /* 5: small facts about a shard file itself: which partition it holds
     * ("partition") and of how many ("partitions"; datadir.h), and
     * "changelog_offset", the offset of the last saga.changelog record
     * applied (changelog.h), so the loop can tell whether the file is older
     * than its changelog. Empty in a single-file database of an older release. */
    "CREATE TABLE shard_meta (key TEXT PRIMARY KEY, value NOT NULL) WITHOUT ROWID;",
    /* 6: outbox rows of saga.changelog go to their shard's partition
     * (kafka_partition >= 0; -1: by key, as before), and a tombstone row
     * is produced with a NULL value (payload is then empty). */
    ("ALTER TABLE outbox ADD COLUMN kafka_partition INTEGER NOT NULL DEFAULT -1;"
     "ALTER TABLE outbox ADD COLUMN tombstone INTEGER NOT NULL DEFAULT 0;"),
    /* 7: tombstone = 2 marks a saga's changelog record whose value is
     * encoded when the relay sends it (payload empty; changelog_out.c).
     * Nothing to change in the tables; the version moves so that an older
     * sagad, which would send such a row as a tombstone, refuses the file. */
    "SELECT 1;",
    /* 8: search attributes (docs/DEFINITIONS.md, "Search attributes"): a
     * saga's values, set once when it starts, as a JSON object of strings
     * in sagas.search (NULL: none), and one saga_search row per attribute,
     * which GET /v1/sagas?search.NAME=VALUE looks up. Triggers keep the
     * rows with their saga on every path that inserts or deletes one (a
     * start, retention, a changelog record, a data directory conversion). */
    ("ALTER TABLE sagas ADD COLUMN search TEXT;"
     "CREATE TABLE saga_search ("
     "  name TEXT NOT NULL, value TEXT NOT NULL, saga_id TEXT NOT NULL,"
     "  PRIMARY KEY (name, value, saga_id)) WITHOUT ROWID;"
     "CREATE INDEX saga_search_saga ON saga_search (saga_id);"
     "CREATE TRIGGER sagas_search_insert AFTER INSERT ON sagas WHEN new.search IS NOT NULL BEGIN"
     "  INSERT OR IGNORE INTO saga_search (name, value, saga_id)"
     "    SELECT key, value, new.id FROM json_each(new.search) WHERE type = 'text';"
     " END;"
     "CREATE TRIGGER sagas_search_delete AFTER DELETE ON sagas WHEN old.search IS NOT NULL BEGIN"
     "  DELETE FROM saga_search WHERE saga_id = old.id;"
     " END;"),
    /* 9: a signal step's signal that came before the step started
     * (docs/DEFINITIONS.md, "Signal steps"): {"status", "output"?,
     * "error"?} as JSON, NULL: none */
    "ALTER TABLE steps ADD COLUMN signal TEXT;",
    /* 10: participant topics an operator paused (POST /v1/topics/{topic}/pause):
     * no command goes to them until resumed. Every shard holds the same rows
     * (the pause reaches each shard's partition), and each row is carried by
     * the changelog record pause/TOPIC, so a restored shard is paused too. */
    ("CREATE TABLE paused_topics ("
     "  topic TEXT PRIMARY KEY, paused_at INTEGER NOT NULL, reason TEXT NOT NULL DEFAULT '') WITHOUT ROWID;"),
    /* 11: a child saga's parent (a step of kind saga started it): JSON
     * {"saga_id", "step", "attempt", "partition", "compensate"?}; NULL: none */
    "ALTER TABLE sagas ADD COLUMN parent TEXT;",
};

#endif
