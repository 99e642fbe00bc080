/* Signals for signal steps (docs/PROTOCOL.md, "saga.signal"): from
 * saga.replies or an operator (the admin API's saga.control "signal"),
 * applied once (dedup "signals" by message_id); what cannot apply (unknown
 * saga or signal, a finished saga, a signal already received) goes to
 * saga.dlq with the reason, or to the log for an operator's. */
#include "sagad.h"

#include <stdio.h>
#include <string.h>

#include "messages.h"
#include "saga_error.h"
#include "saga_log.h"
#include "saga_utf8.h"

/* A signal that does not apply: dead-lettered, or logged (operator). */
static int refuse(sagad_t *d, sagad_shard_t *sh, const rd_kafka_message_t *m, const char *reason, int64_t now) {
    d->counters.signals_refused++;
    if (m) {
        int rc = 0;
        if (!sh) sh = sagad_message_shard(d, m, &rc);
        return sh ? sagad_dead_letter(d, sh, m, reason, now) : rc;
    }
    LOG_WARN("signals", "operator signal refused: %s", reason);
    return 0;
}

int sagad_handle_signal(sagad_t *d, const rd_kafka_message_t *m, const json_t *root, int64_t now) {
    saga_signal_msg_t sig;
    char err[600];
    int rc = 0;
    if (saga_parse_signal(root, &sig, err, sizeof err)) return refuse(d, NULL, m, err, now);
    sagad_shard_t *sh = sagad_owned_shard_tx(d, m, sagad_shard_of_saga(sig.saga_id, d->shard_count), sig.saga_id, now, &rc);
    if (!sh) return rc;
    rc = saga_store_dedup(sh->store, "signals", sig.message_id, now);
    if (rc <= 0) {
        if (rc == 0) d->counters.duplicate_message++;
        return rc;
    }
    saga_t *s = &sh->scratch; /* one saga at a time */
    err[0] = '\0';
    rc = saga_store_load(sh->store, d->registry, sig.saga_id, s, err, sizeof err);
    if (rc == SAGA_ENOTFOUND) {
        char reason[700];
        if (err[0]) snprintf(reason, sizeof reason, "saga.signal: %s", err);
        else snprintf(reason, sizeof reason, "saga.signal: unknown saga '%.*s'", saga_utf8_prefix(sig.saga_id, 128), sig.saga_id);
        return refuse(d, m ? sh : NULL, m, reason, now);
    }
    if (rc) {
        LOG_ERROR("signals", "%s", err);
        return rc;
    }
    int step = saga_definition_signal_step(s->def, sig.signal);
    if (step < 0) {
        snprintf(err, sizeof err, "saga.signal: saga '%s' (%s v%d) waits for no signal '%.*s'", s->id, s->def->name,
                 s->def->version, saga_utf8_prefix(sig.signal, 128), sig.signal);
        rc = refuse(d, m ? sh : NULL, m, err, now);
    } else {
        saga_event_t ev = {.kind = SAGA_EV_SIGNAL, .step = step, .reply_status = sig.status, .output = sig.output,
                           .error_code = sig.error_code, .error_message = sig.error_message};
        char why[512];
        uint64_t stale = 0;
        rc = sagad_apply_and_save_why(d, sh, s, &ev, now, &stale, why, sizeof why);
        if (!rc && why[0]) {
            snprintf(err, sizeof err, "saga.signal: %s", why);
            rc = refuse(d, m ? sh : NULL, m, err, now);
        } else if (!rc) {
            d->counters.signals_applied++;
            saga_log_ctx_t ctx = {.saga_id = s->id, .trace_id = s->traceparent};
            saga_log(SAGA_LOG_INFO, "signals", &ctx, "signal '%s' (%s) for step '%s'", sig.signal,
                     sig.status == SAGA_REPLY_SUCCESS ? "success" : "failure", s->def->steps[step].name);
        }
    }
    saga_clear(s);
    return rc;
}
