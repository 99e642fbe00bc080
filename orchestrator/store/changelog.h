/* The changelog codec (issue 14): a shard's state as records of the
 * compacted Kafka topic saga.changelog, and the restore path that writes
 * such records back into a shard's SQLite file.
 *
 * Two kinds of record share the topic (docs/DESIGN.md, "Changelog record"):
 *   key SAGA_ID            value: everything stored for that saga (its sagas,
 *                          steps, history and timers rows), or a tombstone
 *                          (no value) once the saga is removed;
 *   key def/NAME/VERSION   value: a definition version some saga of the
 *                          shard runs on (its definitions row), produced to
 *                          the shard's partition before the first saga
 *                          record that needs it. Saga ids never hold '/'.
 * Values are compact JSON objects with a format version "v"
 * (SAGA_CHANGELOG_VERSION); a reader refuses a version it does not know.
 *
 * Not in any record, on purpose: dedup rows, outbox and outbox_parked rows
 * (see the comment at the top of changelog.c for why). */
#ifndef SAGA_CHANGELOG_H
#define SAGA_CHANGELOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

#define SAGA_CHANGELOG_VERSION 1
#define SAGA_CHANGELOG_DEF_PREFIX "def/"
#define SAGA_CHANGELOG_PAUSE_PREFIX "pause/"

typedef enum {
    SAGA_CHANGELOG_KEY_INVALID,
    SAGA_CHANGELOG_KEY_SAGA,       /* a saga id (saga_valid_id) */
    SAGA_CHANGELOG_KEY_DEFINITION, /* def/NAME/VERSION */
    SAGA_CHANGELOG_KEY_PAUSE,      /* pause/TOPIC: a paused participant topic (tombstone: resumed) */
} saga_changelog_key_kind_t;

/* What key (len bytes, not NUL-terminated) names. */
saga_changelog_key_kind_t saga_changelog_key_kind(const char *key, size_t len);

/* Writes "def/NAME/VERSION" into buf. Returns its length, or SAGA_EINVAL
 * when it does not fit. */
int saga_changelog_definition_key(const char *name, int version, char *buf, size_t len);

/* A paused topic's record: its key "pause/TOPIC" into buf (its length, or
 * SAGA_EINVAL when it does not fit), and its value
 * {"v":1,"pause":{"topic","paused_at","reason"}} (saga_free it; NULL
 * without memory). A resume is the key's tombstone. */
int saga_changelog_pause_key(const char *topic, char *buf, size_t len);
char *saga_changelog_encode_pause(const char *topic, int64_t paused_at, const char *reason);

/* The record value for saga_id as it is in the store now (read in the
 * caller's transaction, if one is open). On 0, *out (NUL-terminated,
 * *out_len bytes without the NUL) is the caller's to saga_free. Returns
 * SAGA_ENOTFOUND when the saga is not stored (the caller then produces a
 * tombstone); SAGA_EINVAL with err naming the saga, the size and the limit
 * when key plus value would exceed max_message_bytes - SAGA_MESSAGE_RESERVE
 * (0: no limit; *out is then NULL); SAGA_ESTORE / SAGA_EPARSE (a stored
 * JSON column that does not parse) / SAGA_ENOMEM with err set. */
int saga_changelog_encode(saga_store_t *st, const char *saga_id, size_t max_message_bytes, char **out,
                          size_t *out_len, char *err, size_t errlen);

/* From now on saga_changelog_encode keeps the encoded history of the
 * sagas it encodes (a bounded cache, SAGA_HISTORY_SLOTS per store) and reads
 * only the history rows added since. The caller encodes committed state,
 * or state its open transaction then commits; after a rollback it calls
 * saga_changelog_history_reset (a history row rolled back after it was
 * encoded would stay in the cache). Records stay byte-identical. 0 or
 * SAGA_ENOMEM / SAGA_ESTORE. */
int saga_changelog_cache_history(saga_store_t *st);
/* Empties the history cache (it stays on). */
void saga_changelog_history_reset(saga_store_t *st);
/* The store wrote history row seq of saga_id (a saga created at
 * created_at; NULL fields are SQL NULL, detail is JSON text): with the
 * cache on, the row joins that saga's cached history, so that its next
 * record reads no history row. Nothing when the cache holds another saga
 * there or not the rows before seq. */
void saga_changelog_history_note(saga_store_t *st, const char *saga_id, int64_t created_at, int64_t seq, int64_t at,
                                 const char *event, const char *step, const char *status, const char *detail);

/* The record value for key def/NAME/VERSION: the stored definitions row.
 * Same returns as saga_changelog_encode. */
int saga_changelog_encode_definition(saga_store_t *st, const char *name, int version, size_t max_message_bytes,
                                     char **out, size_t *out_len, char *err, size_t errlen);

/* Applies one changelog record, read at `offset` of the shard's partition,
 * inside the caller's open transaction (SAGA_ESTATE without one):
 *  - saga key, value: replaces every sagas/steps/history/timers row of that
 *    saga with the record's (the record must name the same saga id);
 *  - saga key, tombstone (value NULL or len 0): deletes all of them;
 *  - definition key, value: stores the definitions row (same rule as
 *    saga_store_put_definition: a (name, version) stored with another hash
 *    is refused); tombstone: deletes it unless a stored saga runs on it.
 * When offset >= 0 the shard's changelog marker becomes max(marker, offset).
 * The record is validated whole before anything is written, and writes run
 * under a savepoint: on any error nothing of it is applied (the caller's
 * transaction stays usable) and err names the key and what is wrong.
 * Returns 0, SAGA_EPARSE (the record is corrupt or hostile), SAGA_EEXISTS
 * (definition hash conflict), SAGA_ESTATE, SAGA_ESTORE or SAGA_ENOMEM.
 * Records must be applied in offset order (an older record replaces a
 * newer state: the caller reads from the marker on). */
int saga_changelog_apply(saga_store_t *st, const char *key, size_t key_len, const char *value, size_t value_len,
                         int64_t offset, char *err, size_t errlen);

/* Catch-up in place of a shard that kept its file: with on, a saga record
 * is skipped when the stored saga is at least as new (its seq, then
 * updated_at) and a tombstone when the stored saga has not finished — the
 * shard may hold changes committed in SQLite whose records were never
 * produced or whose marker was not moved yet (SQLite commits before the
 * Kafka transaction), and an older record must not replace them. Off (the
 * default) for a rebuild into an empty file. */
void saga_changelog_only_newer(saga_store_t *st, bool on);

typedef struct {
    const char *key, *value; /* value NULL or value_len 0: a tombstone */
    size_t key_len, value_len;
    int64_t offset;
} saga_changelog_record_t;

/* qsort comparator of saga_changelog_record_t: by key, then offset. */
int saga_changelog_record_cmp(const void *a, const void *b);

/* Applies n records in one transaction of its own (call it outside one),
 * after sorting them by key, then offset (recs is reordered): records of
 * different keys are independent, so the result is that of offset order,
 * and the inserts land next to each other in the B-trees (a changelog's
 * saga ids come in random order: sorting batches of 10,000 halves the
 * restore's writes). On any error the whole batch is rolled back and err
 * names the record (saga_changelog_apply's codes). */
int saga_changelog_apply_batch(saga_store_t *st, saga_changelog_record_t *recs, size_t n, char *err,
                               size_t errlen);

/* Bulk restore, for a shard file that is not the shard's yet: a new file
 * (say DIR/shard-P.db.restoring) that the caller renames into place once
 * the restore is complete, and deletes when it finds one left by a crash.
 * bulk_begin turns the journal and fsync off and grows the page cache
 * (journal_mode=OFF, synchronous=OFF, 256 MB): a restore of 100,000 sagas
 * runs about twice as fast, but a crash leaves the file unusable, hence the
 * rename. bulk_end turns WAL and `synchronous` (NULL: FULL) back on and
 * fsyncs the file, so that the rename publishes a durable file. Both are
 * called outside a transaction; 0 or SAGA_ESTORE / SAGA_EIO with err. */
int saga_changelog_bulk_begin(saga_store_t *st, char *err, size_t errlen);
int saga_changelog_bulk_end(saga_store_t *st, const char *synchronous, char *err, size_t errlen);

/* The shard's changelog marker: the offset of the last record applied or
 * produced and committed (shard_meta 'changelog_offset'). 0 with *offset,
 * SAGA_ENOTFOUND when none was ever recorded, or SAGA_ESTORE. */
int saga_changelog_offset_get(saga_store_t *st, int64_t *offset);
/* Sets the marker to offset (>= 0), in the caller's transaction. */
int saga_changelog_offset_set(saga_store_t *st, int64_t offset);

#endif
