/* Replay: rebuilds a saga's state from its lifecycle events (the saga.event
 * messages the engine emits, which the store keeps as `history` rows).
 * Pure, like the engine: no I/O, no clock.
 *
 * History is enough to rebuild everything saga_t holds except `traceparent`
 * (not part of any event; the store keeps it in the sagas row) and the
 * engine's scratch flags `step_dirty`. saga_equal ignores those two.
 *
 * An event is a JSON object in the saga.event shape:
 *   {seq, at, event, step?, step_status?, status?, detail?, saga_id?, definition?, version?}
 * `at` is an RFC 3339 string (as saga.event writes it) or integer milliseconds.
 * `status` (the saga status after the event) and `step_status` are checked when
 * present but not needed: the event name decides the new status. A history row
 * becomes such an object with saga_history_row_event. */
#ifndef SAGA_REPLAY_H
#define SAGA_REPLAY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine.h"

/* Rebuilds saga `saga_id` of definition `def` from `events` (any order: they
 * are sorted by seq; seq must run 1, 2, 3 ... without gap or duplicate),
 * applying only the events whose `at` is <= until_ms (INT64_MAX: all). The
 * first event must be saga.started.
 * Returns 0 with *out filled (the caller releases it with saga_clear);
 * SAGA_ENOTFOUND when no event is at or before until_ms (the saga did not
 * exist yet); SAGA_EPARSE when an event is missing, garbled or impossible
 * here, with the reason (event index, seq, name, what is wrong) in err;
 * SAGA_ENOMEM. On error *out holds nothing that needs saga_clear (calling
 * it is harmless). */
int saga_replay(const saga_definition_t *def, const char *saga_id, const json_t *const *events, int n,
                int64_t until_ms, saga_t *out, char *err, size_t errlen);

/* Incremental form (what saga_replay loops over): saga_replay_init prepares
 * an empty saga (seq 0, not started), saga_replay_event applies the next
 * event (its seq must be s->seq + 1). Returns 0, SAGA_EPARSE (reason in err;
 * s may be partly updated: discard it) or SAGA_ENOMEM. */
void saga_replay_init(saga_t *s, const saga_definition_t *def, const char *saga_id);
int saga_replay_event(saga_t *s, const json_t *event, char *err, size_t errlen);

/* Compares everything replay rebuilds (all of saga_t but traceparent and
 * step_dirty; the definition by name and version; JSON by value). Returns
 * true when equal; otherwise writes the first difference into diff, e.g.
 * "steps[2] (charge).attempt: 2 != 3". */
bool saga_equal(const saga_t *a, const saga_t *b, char *diff, size_t len);

/* Builds the event object for one `history` row (see store/schema.h:
 * saga_id, seq, at, event, step, status, detail). `status` is the step
 * status for step events (step != NULL) and the saga status otherwise;
 * detail_json is the row's detail text (NULL or "" = {}).
 * Returns a new reference, or NULL with the reason in err when detail_json
 * is not a JSON object (or memory runs out). */
json_t *saga_history_row_event(const char *saga_id, int64_t seq, int64_t at_ms, const char *event,
                               const char *step, const char *status, const char *detail_json, char *err,
                               size_t errlen);

#endif
