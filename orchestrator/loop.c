/* The main loop: the only writer. Each iteration opens one SQLite
 * transaction per shard it touches (group commit) and commits them all;
 * then the relay delivers the outboxes in one Kafka transaction, which
 * also commits the offsets of the iterations it covers (relay.c). */
#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "messages.h"
#include "instances.h"
#include "sagad.h"
#include "saga_alloc.h"
#include "saga_clock.h"
#include "saga_error.h"
#include "saga_utf8.h"
#include "saga_json.h"
#include "saga_kafka.h"
#include "saga_log.h"
#include "saga_util.h"

#define MAX_BATCH 2048
#define MAX_TIMERS 512
#define MAX_TIMER_HOLD_MS 5000
#define CATCHUP_MAX_MS 10000    /* longest timers wait for a catch-up */
#define CATCHUP_QUERY_MS 2000   /* budget of the watermark queries that start one */
#define STALL_US 1000000        /* a poll that returned this much later than asked: a stall */
#define CLOCK_JUMP_MS 1000      /* wall clock moved this much more (or less) than the monotonic one */
#define MAX_COMMANDS 256

/* Sends a message that cannot be processed to the dead-letter topic with
 * its original bytes; the reason and source travel as headers. A message
 * too large to be published with those headers (--max-message-bytes) is cut:
 * the dead letter holds its first bytes and dlq_truncated=ORIGINAL_SIZE. */
int sagad_dead_letter(sagad_t *d, sagad_shard_t *sh, const rd_kafka_message_t *m, const char *reason, int64_t now) {
    char offset[32], partition[16];
    snprintf(offset, sizeof offset, "%lld", (long long)m->offset);
    snprintf(partition, sizeof partition, "%d", (int)m->partition);
    json_t *h = json_pack("{s:s, s:s, s:s, s:s}", "dlq_reason", reason, "dlq_topic",
                          rd_kafka_topic_name(m->rkt), "dlq_partition", partition, "dlq_offset", offset);
    size_t len = m->len, limit = d->engine.max_message_bytes;
    if (h && limit) {
        /* value + headers + key must stay within the limit */
        size_t room = limit > 2 * SAGA_MESSAGE_RESERVE + 1024 ? limit - SAGA_MESSAGE_RESERVE - 1024 : limit / 2;
        if (len > room) {
            char original[32];
            snprintf(original, sizeof original, "%zu", m->len);
            json_object_set_new(h, "dlq_truncated", json_string(original));
            len = room;
        }
    }
    char *headers = h ? saga_json_dump(h) : NULL;
    json_decref(h);
    if (!headers) return SAGA_ENOMEM;
    char key[SAGA_ID_MAX];
    snprintf(key, sizeof key, "%.*s", m->key_len < sizeof key - 1 ? (int)m->key_len : (int)sizeof key - 1,
             m->key ? (const char *)m->key : "");
    int rc = sagad_shard_begin(sh);
    if (!rc) rc = saga_store_outbox_add(sh->store, d->cfg.dlq_topic, key, headers, m->payload ? m->payload : "",
                                   m->payload ? len : 0, now);
    saga_free(headers);
    d->counters.dead_letters++;
    LOG_WARN("loop", "dead letter from %s [%d] @%lld: %s%s", rd_kafka_topic_name(m->rkt), (int)m->partition,
             (long long)m->offset, reason, len < m->len ? " (truncated)" : "");
    return rc;
}

/* Alerts wait for the commit of the transaction that raised them. */
void sagad_raise_alert(sagad_t *d, const char *kind, json_t *fields) {
    if (!d->alerts) {
        json_decref(fields);
        return;
    }
    if (!d->pending_alerts) d->pending_alerts = json_array();
    json_array_append_new(d->pending_alerts, json_pack("[s, o]", kind, fields ? fields : json_object()));
}

void sagad_send_alerts(sagad_t *d, bool committed) {
    size_t i;
    json_t *a;
    json_array_foreach(d->pending_alerts, i, a)
        if (committed) saga_alert(d->alerts, json_string_value(json_array_get(a, 0)), json_incref(json_array_get(a, 1)));
    json_array_clear(d->pending_alerts);
}

/* Counts and times what an apply decided, from its lifecycle events. */
static void observe(sagad_t *d, const saga_t *s, const saga_effects_t *fx) {
    for (int i = 0; i < fx->count; i++) {
        if (fx->items[i].kind != SAGA_FX_EVENT) continue;
        const json_t *ev = fx->items[i].message;
        const char *name = json_string_value(json_object_get(ev, "event"));
        const char *code = json_string_value(json_object_get(json_object_get(ev, "detail"), "code"));
        int slot = fx->items[i].slot;
        if (code && !strcmp(code, "STEP_TIMEOUT")) d->counters.timeouts++;
        if (!strcmp(name, "step.retry_scheduled") || !strcmp(name, "compensation.retry_scheduled")) d->counters.retries++;
        if (!strcmp(name, "step.succeeded") && slot >= 0)
            saga_histogram_add(&d->step_seconds, (double)(s->steps[slot].finished_at - s->steps[slot].started_at) / 1000.0);
        if (!strcmp(name, "saga.completed") || !strcmp(name, "saga.compensated") ||
            !strcmp(name, "saga.compensation_failed")) {
            d->counters.sagas_finished++;
            saga_histogram_add(&d->saga_seconds, (double)(s->updated_at - s->created_at) / 1000.0);
        }
    }
}

/* Applies ev to saga s and persists the outcome. */
int sagad_apply_and_save(sagad_t *d, sagad_shard_t *sh, saga_t *s, const saga_event_t *ev, int64_t now,
                         uint64_t *stale_counter) {
    char why[512];
    return sagad_apply_and_save_why(d, sh, s, ev, now, stale_counter, why, sizeof why);
}

int sagad_apply_and_save_why(sagad_t *d, sagad_shard_t *sh, saga_t *s, const saga_event_t *ev, int64_t now,
                             uint64_t *stale_counter, char *why, size_t why_len) {
    assert(sh->in_tx && why && why_len > 0);
    saga_effects_t fx;
    why[0] = '\0';
    saga_effects_init(&fx);
    int rc = saga_engine_apply(&d->engine, s, ev, now, &d->rng, &fx, why, why_len);
    if (rc == SAGA_ESTATE) {
        /* An engine bug: this saga is left as it was, loudly; others go on. */
        saga_log_ctx_t ctx = {.saga_id = s->id, .trace_id = s->traceparent};
        saga_log(SAGA_LOG_ERROR, "engine", &ctx, "event refused: %s", why);
        rc = 0;
    } else if (rc == SAGA_ESTALE) {
        (*stale_counter)++;
        d->stale_by_reason[fx.stale_reason]++;
        saga_log_ctx_t ctx = {.saga_id = s->id, .trace_id = s->traceparent};
        if (saga_log_enabled(SAGA_LOG_DEBUG)) saga_log(SAGA_LOG_DEBUG, "engine", &ctx, "ignored: %s", why);
        rc = 0;
    } else if (rc == 0) {
        why[0] = '\0'; /* it changed the saga */
        observe(d, s, &fx);
        rc = saga_store_save(sh->store, s, &fx, d->cfg.events_topic, now);
        if (!rc) rc = sagad_shard_touch(sh, s->id, s->def ? s->def->name : NULL, s->def ? s->def->version : 0);
        for (int i = 0; !rc && i < fx.count; i++) {
            if (fx.items[i].kind == SAGA_FX_WAIT_FOR_ROOM)
                rc = saga_flow_enqueue(d->flow, fx.items[i].topic, s->id, fx.items[i].slot);
            else if (fx.items[i].kind == SAGA_FX_ALERT && d->alerts)
                sagad_raise_alert(d, "compensation_failed", json_deep_copy(fx.items[i].message));
        }
    }
    saga_effects_free(&fx);
    return rc;
}

/* The shard of partition p with its transaction open; NULL and *rc on failure. */
static sagad_shard_t *shard_tx(sagad_t *d, int p, int *rc) {
    assert(p >= 0 && p < d->shard_count);
    sagad_shard_t *sh = &d->shards[p];
    *rc = sagad_shard_begin(sh);
    return *rc ? NULL : sh;
}

/* The shard of the message's own partition (dead letters of what names no saga). */
sagad_shard_t *sagad_message_shard(sagad_t *d, const rd_kafka_message_t *m, int *rc) {
    return shard_tx(d, sagad_shard_of_partition((int)m->partition, d->shard_count), rc);
}

/* Shard p with its transaction open when this instance owns it. Else NULL
 * with *rc 0: a message read on a partition this instance owns whose saga
 * belongs to another shard (its producer keyed it otherwise) is forwarded
 * to that shard's partition in the relay transaction, for its owner; an
 * operator's command (m NULL) is dropped, said in the log. */
sagad_shard_t *sagad_owned_shard_tx(sagad_t *d, const rd_kafka_message_t *m, int p, const char *saga_id, int64_t now,
                                     int *rc) {
    assert(p >= 0 && p < d->shard_count);
    if (d->shards[p].store) return shard_tx(d, p, rc);
    *rc = 0;
    if (!m) {
        d->counters.not_owner++;
        LOG_WARN("loop", "operator command for saga %s dropped: its shard %d is owned by another instance",
                 saga_id ? saga_id : "(new)", p);
        return NULL;
    }
    sagad_shard_t *own = sagad_message_shard(d, m, rc);
    if (!own) return NULL;
    char tp[128];
    json_t *h = saga_kafka_header(m, "traceparent", tp, sizeof tp) == 0 ? json_pack("{s:s}", "traceparent", tp) : NULL;
    char *headers = h ? saga_json_dump(h) : NULL;
    json_decref(h);
    *rc = saga_store_outbox_add_to(own->store, rd_kafka_topic_name(m->rkt), p, saga_id, headers, m->payload, m->len,
                                   now);
    saga_free(headers);
    d->counters.forwarded++;
    LOG_DEBUG("loop", "saga %s: message from %s [%d] forwarded to partition %d, its shard's", saga_id,
              rd_kafka_topic_name(m->rkt), (int)m->partition, p);
    return NULL;
}

/* A child saga's start that cannot be applied: its parent's step gets a
 * failure reply (in shard sh's transaction), so it does not wait for ever. */
static int child_start_failed(sagad_t *d, sagad_shard_t *sh, const saga_start_msg_t *start, const char *why, int64_t now) {
    const json_t *p = start->parent;
    const char *pid = saga_json_str(p, "saga_id"), *step = saga_json_str(p, "step");
    int attempt = (int)json_integer_value(json_object_get(p, "attempt"));
    char mid[SAGA_MESSAGE_ID_MAX + 1];
    snprintf(mid, sizeof mid, "%.200s/start-failed", start->message_id);
    json_t *reply = json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:s, s:{s:s, s:s}}", "type", "saga.reply", "message_id", mid,
                              "saga_id", pid, "step", step, "kind", "action", "attempt", attempt, "status", "failure",
                              "error", "code", "CHILD_START_FAILED", "message", why);
    char *text = reply ? saga_json_dump(reply) : NULL;
    json_decref(reply);
    if (!text) return SAGA_ENOMEM;
    int rc = saga_store_outbox_add_to(sh->store, d->cfg.replies_topic, (int)json_integer_value(json_object_get(p, "partition")),
                                      pid, "{}", text, strlen(text), now);
    saga_free(text);
    LOG_WARN("loop", "child saga %s of %s cannot start: %s", start->saga_id ? start->saga_id : "?", pid, why);
    return rc;
}

/* Starts the saga a start message asks for, unless it is a duplicate
 * (message_id seen, or the saga_id exists). m is the Kafka message (for
 * dead letters and its traceparent header), NULL for an operator's start;
 * then a problem is only logged (the admin API checked the request).
 * The saga goes to the shard of its id; a start without saga_id gets an id
 * that hashes to the partition it arrived on (an operator's: to the
 * partition of its message id), so that reading it again finds its dedup
 * row in the same shard. */
static int start_saga(sagad_t *d, const rd_kafka_message_t *m, const json_t *root, int64_t now) {
    saga_start_msg_t start;
    char err[256];
    int rc = 0;
    if (saga_parse_start(root, &start, err, sizeof err)) {
        if (m) {
            sagad_shard_t *sh = sagad_message_shard(d, m, &rc);
            return sh ? sagad_dead_letter(d, sh, m, err, now) : rc;
        }
        LOG_WARN("loop", "operator start refused: %s", err);
        return 0;
    }
    const saga_definition_t *def = saga_registry_get(d->registry, start.definition, start.version);
    if (!def) {
        snprintf(err, sizeof err, "saga.start: unknown definition '%.*s'%s", saga_utf8_prefix(start.definition, 100), start.definition,
                 start.version ? " at that version" : "");
        if (m) {
            sagad_shard_t *sh = sagad_message_shard(d, m, &rc);
            if (sh && start.parent) rc = child_start_failed(d, sh, &start, err, now); /* its parent must not wait */
            return sh && !rc ? sagad_dead_letter(d, sh, m, err, now) : rc;
        }
        LOG_WARN("loop", "operator start refused: %s", err);
        return 0;
    }
    int64_t begin_at = saga_start_begin_at(&start, now);
    if (begin_at > now + SAGA_START_DELAY_MAX_MS) {
        snprintf(err, sizeof err, "saga.start: 'not_before' is more than 366 days ahead");
        if (m) {
            sagad_shard_t *sh = sagad_message_shard(d, m, &rc);
            return sh ? sagad_dead_letter(d, sh, m, err, now) : rc;
        }
        LOG_WARN("loop", "operator start refused: %s", err);
        return 0;
    }
    char id[SAGA_ID_MAX];
    int p = sagad_route_start(start.saga_id, start.message_id, m ? (int)m->partition : -1, d->shard_count);
    if (start.saga_id) snprintf(id, sizeof id, "%s", start.saga_id);
    else sagad_saga_id_for_partition(p, d->shard_count, id, sizeof id);
    sagad_shard_t *sh = sagad_owned_shard_tx(d, m, p, start.saga_id, now, &rc);
    if (!sh) return rc;
    rc = saga_store_dedup(sh->store, "start", start.message_id, now);
    /* New to dedup, whose rows are pruned by age: the saga row keeps the
     * message id of the start that created it for good (offsets reset, a
     * new consumer group, a re-published start: still the same start). */
    if (rc == 1) {
        int seen = saga_store_start_seen(sh->store, start.message_id);
        rc = seen < 0 ? seen : !seen;
    }
    if (rc <= 0) {
        if (rc == 0) d->counters.duplicate_message++;
        return rc;
    }
    if (start.saga_id) {
        rc = saga_store_saga_exists(sh->store, start.saga_id);
        if (rc != 0) {
            if (rc == 1) {
                d->counters.duplicate_start++;
                LOG_DEBUG("loop", "saga %s already exists: start ignored", start.saga_id);
            }
            return rc < 0 ? rc : 0;
        }
    }
    char traceparent[64] = "";
    if (!m || saga_kafka_header(m, "traceparent", traceparent, sizeof traceparent) != 0) {
        /* W3C trace context: version 00, random trace and span ids, sampled. */
        snprintf(traceparent, sizeof traceparent, "00-%016llx%016llx-%016llx-01", saga_random_u64(),
                 saga_random_u64(), saga_random_u64());
    }
    saga_t *s = &sh->scratch; /* one saga at a time: no 24 KB malloc per message */
    json_t *input = start.input ? json_incref((json_t *)start.input) : json_object();
    saga_init(s, id, def, input, traceparent, now);
    json_decref(input);
    s->search = saga_search_render(def, id, s->input);
    if (start.parent) /* a child saga answers its parent (the members the changelog record carries) */
        s->parent = json_pack("{s:s, s:s, s:I, s:I}", "saga_id", saga_json_str(start.parent, "saga_id"), "step",
                              saga_json_str(start.parent, "step"), "attempt",
                              json_integer_value(json_object_get(start.parent, "attempt")), "partition",
                              json_integer_value(json_object_get(start.parent, "partition")));
    rc = saga_store_insert(sh->store, s, start.message_id);
    if (!rc) rc = sagad_shard_touch(sh, id, def->name, def->version);
    saga_event_t ev = {.kind = SAGA_EV_START, .begin_at = begin_at};
    if (!rc) rc = sagad_apply_and_save(d, sh, s, &ev, now, &d->counters.duplicate_start);
    if (!rc) {
        d->counters.sagas_started++;
        saga_log_ctx_t ctx = {.saga_id = id, .trace_id = traceparent};
        if (saga_log_enabled(SAGA_LOG_DEBUG))
            saga_log(SAGA_LOG_DEBUG, "loop", &ctx, "%s %s v%d", begin_at > now ? "scheduled" : "started", def->name,
                     def->version);
    }
    saga_clear(s);
    return rc;
}

/* A reply goes to the shard of its saga (with one sagad owning every shard,
 * whatever partition it arrived on: see docs/DESIGN.md, "Shards"). */
static int handle_reply(sagad_t *d, const rd_kafka_message_t *m, json_t *root, int64_t now) {
    saga_reply_msg_t reply;
    char err[512];
    int rc = 0;
    if (saga_parse_reply(root, &reply, err, sizeof err)) {
        sagad_shard_t *sh = sagad_message_shard(d, m, &rc);
        return sh ? sagad_dead_letter(d, sh, m, err, now) : rc;
    }
    sagad_shard_t *sh = sagad_owned_shard_tx(d, m, sagad_shard_of_saga(reply.saga_id, d->shard_count), reply.saga_id, now, &rc);
    if (!sh) return rc;
    rc = saga_store_dedup(sh->store, "replies", reply.message_id, now);
    if (rc <= 0) {
        if (rc == 0) d->counters.duplicate_message++;
        return rc;
    }
    saga_t *s = &sh->scratch; /* one saga at a time: no 24 KB malloc per message */
    err[0] = '\0';
    rc = saga_store_load(sh->store, d->registry, reply.saga_id, s, err, sizeof err);
    if (rc == SAGA_ENOTFOUND) {
        char reason[700];
        snprintf(reason, sizeof reason, "saga.reply: %s", err[0] ? err : "unknown saga");
        if (!err[0]) snprintf(reason, sizeof reason, "saga.reply: unknown saga '%.*s'", saga_utf8_prefix(reply.saga_id, 128), reply.saga_id);
        return sagad_dead_letter(d, sh, m, reason, now);
    }
    if (rc) {
        LOG_ERROR("loop", "%s", err);
        return rc;
    }
    int step = saga_definition_step_index(s->def, reply.step);
    if (step < 0) {
        snprintf(err, sizeof err, "saga.reply: saga '%.*s' has no step '%.*s'", saga_utf8_prefix(reply.saga_id, 128), reply.saga_id, saga_utf8_prefix(reply.step, 128), reply.step);
        rc = sagad_dead_letter(d, sh, m, err, now);
    } else {
        saga_event_t ev = {.kind = SAGA_EV_REPLY, .step = step, .command_kind = reply.kind,
                           .attempt = reply.attempt, .reply_status = reply.status, .output = reply.output,
                           .error_code = reply.error_code, .error_message = reply.error_message};
        rc = sagad_apply_and_save(d, sh, s, &ev, now, &d->counters.stale_reply);
    }
    saga_clear(s);
    return rc;
}

static int fire_timer(sagad_t *d, sagad_shard_t *sh, const saga_timer_row_t *t, int64_t now) {
    int rc = sagad_shard_begin(sh);
    if (!rc) rc = saga_store_timer_delete(sh->store, t);
    if (!rc) rc = sagad_shard_touch(sh, t->saga_id, NULL, 0); /* its timers are in its record */
    if (rc) return rc;
    saga_t *s = &sh->scratch; /* one saga at a time: no 24 KB malloc per message */
    char err[512] = "";
    rc = saga_store_load(sh->store, d->registry, t->saga_id, s, err, sizeof err);
    if (rc) {
        LOG_WARN("loop", "timer for saga %s dropped: %s", t->saga_id, rc == SAGA_ENOTFOUND && !err[0] ? "no such saga" : err);
        return rc == SAGA_ENOTFOUND ? 0 : rc;
    }
    saga_event_t ev = {.kind = SAGA_EV_TIMER, .slot = t->slot, .timer_kind = t->kind,
                       .timer_attempt = t->attempt};
    rc = sagad_apply_and_save(d, sh, s, &ev, now, &d->counters.stale_timer);
    saga_clear(s);
    return rc;
}

/* An operator's abort or retry of saga_id in shard sh (its transaction open). */
static int operator_event(sagad_t *d, sagad_shard_t *sh, const char *saga_id, saga_command_kind_op_t kind,
                          const char *reason, int64_t now) {
    saga_t *s = &sh->scratch; /* one saga at a time: no 24 KB malloc per message */
    char err[512] = "";
    int rc = saga_store_load(sh->store, d->registry, saga_id, s, err, sizeof err);
    if (rc == 0) {
        uint64_t refused = 0;
        saga_event_t ev = {.kind = kind == SAGA_CMD_ABORT ? SAGA_EV_ABORT : SAGA_EV_RETRY, .reason = reason};
        rc = sagad_apply_and_save(d, sh, s, &ev, now, &refused);
        saga_log_ctx_t ctx = {.saga_id = s->id, .trace_id = s->traceparent};
        saga_log(refused ? SAGA_LOG_WARN : SAGA_LOG_INFO, "loop", &ctx, "operator %s%s%s",
                 saga_command_op_name(kind), refused ? " refused: saga is " : "",
                 refused ? saga_status_name(s->status) : "");
        saga_clear(s);
    } else if (rc == SAGA_ENOTFOUND) {
        LOG_WARN("loop", "operator command for saga %s: %s", saga_id, err[0] ? err : "no such saga");
        rc = 0;
    }
    return rc;
}

/* An operator's command from the admin API's queue: to the shard of its saga. */
static int run_command(sagad_t *d, const saga_command_t *cmd, int64_t now) {
    if (cmd->kind == SAGA_CMD_RELOAD) {
        d->reload_pending = true; /* it has its own transaction: after this one */
        return 0;
    }
    if (cmd->kind == SAGA_CMD_PAUSE || cmd->kind == SAGA_CMD_RESUME) { /* every owned shard (no Kafka: one instance) */
        int rc = 0;
        for (int p = 0; !rc && p < d->shard_count; p++) {
            if (!d->shards[p].store) continue;
            sagad_shard_t *sh = shard_tx(d, p, &rc);
            if (sh) rc = sagad_pause_apply(d, sh, cmd->saga_id, cmd->kind == SAGA_CMD_PAUSE, cmd->reason, now);
        }
        return rc;
    }
    if (cmd->kind == SAGA_CMD_START || cmd->kind == SAGA_CMD_SIGNAL) {
        json_t *root = saga_json_parse(cmd->body, strlen(cmd->body), NULL, 0);
        int rc = !root ? 0 : cmd->kind == SAGA_CMD_START ? start_saga(d, NULL, root, now) : sagad_handle_signal(d, NULL, root, now);
        json_decref(root);
        return rc;
    }
    int rc = 0;
    sagad_shard_t *sh = sagad_owned_shard_tx(d, NULL, sagad_shard_of_saga(cmd->saga_id, d->shard_count), cmd->saga_id, now, &rc);
    return sh ? operator_event(d, sh, cmd->saga_id, cmd->kind, cmd->reason, now) : rc;
}

/* A parent saga compensates the step that ran this child saga: the child
 * undoes itself and answers (a child that does not exist has nothing to
 * undo: the parent gets a success at once). */
static int compensate_child(sagad_t *d, const rd_kafka_message_t *m, const json_t *root, const char *saga_id,
                            const char *message_id, int64_t now) {
    int rc = 0;
    sagad_shard_t *sh = sagad_owned_shard_tx(d, m, sagad_shard_of_saga(saga_id, d->shard_count), saga_id, now, &rc);
    if (!sh) return rc;
    rc = saga_store_dedup(sh->store, "control", message_id, now);
    if (rc <= 0) return rc;
    int attempt = (int)json_integer_value(json_object_get(json_object_get(root, "parent"), "attempt"));
    saga_t *s = &sh->scratch;
    char err[512] = "";
    rc = saga_store_load(sh->store, d->registry, saga_id, s, err, sizeof err);
    if (rc == SAGA_ENOTFOUND) {
        LOG_WARN("loop", "compensate for child saga %s, which is not stored: nothing to undo", saga_id);
        return 0;
    }
    if (rc) return rc;
    uint64_t stale = 0;
    saga_event_t ev = {.kind = SAGA_EV_COMPENSATE, .attempt = attempt};
    rc = sagad_apply_and_save(d, sh, s, &ev, now, &stale);
    saga_clear(s);
    return rc;
}

/* A pause or resume of a participant topic, sent to every partition of
 * saga.control: applied in the shard of the partition it came on, once. */
static int handle_pause(sagad_t *d, const rd_kafka_message_t *m, const json_t *root, bool paused, int64_t now) {
    const char *topic = saga_json_str(root, "topic"), *message_id = saga_json_str(root, "message_id");
    const char *reason = saga_json_str(root, "reason");
    int rc = 0;
    sagad_shard_t *sh = sagad_message_shard(d, m, &rc);
    if (!sh) return rc;
    if (!topic || !*topic || strlen(topic) > 249 || !message_id || !*message_id)
        return sagad_dead_letter(d, sh, m, "saga.control: a pause or resume needs 'topic' and 'message_id'", now);
    rc = saga_store_dedup(sh->store, "control", message_id, now);
    if (rc <= 0) return rc;
    rc = sagad_pause_apply(d, sh, topic, paused, reason, now);
    if (!rc) LOG_INFO("flow", "shard %d: topic %s %s%s%s", sh->partition, topic, paused ? "paused" : "resumed",
                      reason ? ": " : "", reason ? reason : "");
    return rc;
}

/* A saga.control message: an operator's command the admin API of any
 * instance handed to Kafka (the 202 came after its acknowledgement), for
 * the saga's shard; applied once (dedup by message_id), in this
 * transaction, whichever instance owns the shard now. */
static int handle_control(sagad_t *d, const rd_kafka_message_t *m, json_t *root, int64_t now) {
    const char *command = saga_json_str(root, "command"), *saga_id = saga_json_str(root, "saga_id");
    int op = saga_command_op_parse(command);
    if (op == SAGA_CMD_PAUSE || op == SAGA_CMD_RESUME) return handle_pause(d, m, root, op == SAGA_CMD_PAUSE, now);
    const char *message_id = saga_json_str(root, "message_id"), *reason = saga_json_str(root, "reason");
    int kind = saga_command_op_parse(command), rc = 0;
    json_t *start = json_object_get(root, "start"), *signal = json_object_get(root, "signal");
    const char *problem = !saga_id || !*saga_id || strlen(saga_id) >= SAGA_ID_MAX ? "saga.control: 'saga_id' is missing or too long"
                        : !message_id || !*message_id ? "saga.control: 'message_id' is missing"
                        : kind != SAGA_CMD_START && kind != SAGA_CMD_ABORT && kind != SAGA_CMD_RETRY && kind != SAGA_CMD_SIGNAL &&
                                  kind != SAGA_CMD_COMPENSATE
                            ? "saga.control: 'command' is not start, abort, retry, signal or compensate"
                        : kind == SAGA_CMD_COMPENSATE && json_integer_value(json_object_get(json_object_get(root, "parent"), "attempt")) < 1
                            ? "saga.control: a compensate needs 'parent' with its 'attempt'"
                        : kind == SAGA_CMD_START && !json_is_object(start) ? "saga.control: a start needs the 'start' object"
                        : kind == SAGA_CMD_SIGNAL && !json_is_object(signal) ? "saga.control: a signal needs the 'signal' object"
                        : NULL;
    if (problem) {
        sagad_shard_t *sh = sagad_message_shard(d, m, &rc);
        return sh ? sagad_dead_letter(d, sh, m, problem, now) : rc;
    }
    if (kind == SAGA_CMD_START) return start_saga(d, m, start, now); /* deduplicated as any start */
    if (kind == SAGA_CMD_SIGNAL) return sagad_handle_signal(d, m, signal, now); /* and as any signal */
    if (kind == SAGA_CMD_COMPENSATE) return compensate_child(d, m, root, saga_id, message_id, now);
    sagad_shard_t *sh = sagad_owned_shard_tx(d, m, sagad_shard_of_saga(saga_id, d->shard_count), saga_id, now, &rc);
    if (!sh) return rc;
    rc = saga_store_dedup(sh->store, "control", message_id, now);
    if (rc <= 0) {
        if (rc == 0) d->counters.duplicate_message++;
        return rc;
    }
    return operator_event(d, sh, saga_id, (saga_command_kind_op_t)kind, reason, now);
}

static int handle_message(sagad_t *d, const rd_kafka_message_t *m, int64_t now) {
    char err[256];
    int rc = 0;
    sagad_shard_t *own = NULL;
    if (!m->payload || m->len == 0) {
        own = sagad_message_shard(d, m, &rc);
        return own ? sagad_dead_letter(d, own, m, "empty message", now) : rc;
    }
    json_t *root = saga_json_parse(m->payload, m->len, err, sizeof err);
    if (!root) {
        char reason[300];
        snprintf(reason, sizeof reason, "invalid JSON: %s", err);
        own = sagad_message_shard(d, m, &rc);
        return own ? sagad_dead_letter(d, own, m, reason, now) : rc;
    }
    const char *topic = rd_kafka_topic_name(m->rkt);
    if (strcmp(topic, d->cfg.start_topic) == 0) rc = start_saga(d, m, root, now);
    else if (strcmp(topic, d->cfg.replies_topic) == 0) {
        const char *type = saga_json_str(root, "type"); /* participants' replies and outside signals */
        rc = type && strcmp(type, "saga.signal") == 0 ? sagad_handle_signal(d, m, root, now) : handle_reply(d, m, root, now);
    }
    else if (strcmp(topic, d->cfg.control_topic) == 0) rc = handle_control(d, m, root, now);
    else if ((own = sagad_message_shard(d, m, &rc))) rc = sagad_dead_letter(d, own, m, "message from a topic sagad does not route", now);
    json_decref(root);
    return rc;
}

/* Queued steps whose topic has room again, oldest first, each in its saga's shard. */
static int resume_waiters(sagad_t *d, int64_t now) {
    saga_flow_waiter_t w;
    int rc = 0;
    while (!rc && saga_flow_next_ready(d->flow, now, &w)) {
        sagad_shard_t *sh = shard_tx(d, sagad_shard_of_saga(w.saga_id, d->shard_count), &rc);
        if (!sh) break;
        saga_t *s = &sh->scratch; /* one saga at a time: no 24 KB malloc per message */
        char err[512] = "";
        rc = saga_store_load(sh->store, d->registry, w.saga_id, s, err, sizeof err);
        if (rc == SAGA_ENOTFOUND) {
            saga_flow_release(d->flow, w.topic);
            rc = 0;
            continue;
        }
        if (!rc) {
            uint64_t stale = 0;
            saga_event_t ev = {.kind = SAGA_EV_RESUME, .slot = w.slot};
            rc = sagad_apply_and_save(d, sh, s, &ev, now, &stale);
            if (stale) saga_flow_release(d->flow, w.topic); /* it moved on meanwhile */
            else d->counters.resumed++;
            saga_clear(s);
        }
    }
    return rc;
}

static void log_breakers(sagad_t *d) {
    saga_flow_topic_stats_t t;
    for (int i = 0; i < 256 && saga_flow_stats(d->flow, i, &t); i++) {
        if (t.breaker == d->breaker_logged[i]) continue;
        if (t.breaker == SAGA_BREAKER_OPEN) {
            LOG_WARN("flow", "circuit for %s opened after %d consecutive timeouts or retries; %d command(s) waiting",
                     t.topic, t.consecutive_failures, t.waiting);
            saga_alert(d->alerts, "circuit_open",
                       json_pack("{s:s, s:i, s:i}", "topic", t.topic, "consecutive_failures", t.consecutive_failures,
                                 "waiting", t.waiting));
        }
        else
            LOG_INFO("flow", "circuit for %s is %s", t.topic, saga_breaker_state_name(t.breaker));
        d->breaker_logged[i] = t.breaker;
    }
}

/* Compares the wall clock's progress with the monotonic clock's since the
 * last call: a difference over CLOCK_JUMP_MS is a jump (NTP step, operator,
 * VM restore). Timers are due by the wall clock (their due_at is stored
 * as wall-clock time, so they survive restarts): a forward jump makes the
 * timers it skipped due at once, a backward jump delays them (see
 * docs/OPERATIONS.md). Returns the jump in ms (0: none). */
static int64_t check_clock(sagad_t *d, int64_t wall_ms, int64_t mono_us) {
    int64_t jump = 0;
    if (d->last_mono_us) {
        jump = (wall_ms - d->last_wall_ms) - (mono_us - d->last_mono_us) / 1000;
        if (jump > -CLOCK_JUMP_MS && jump < CLOCK_JUMP_MS) jump = 0;
    }
    d->last_wall_ms = wall_ms;
    d->last_mono_us = mono_us;
    if (jump) {
        d->counters.clock_jumps++;
        d->clock_offset_ms += jump;
        LOG_WARN("loop", "the wall clock jumped %s by %lld ms (monotonic clock as reference); %s", jump > 0 ? "forward" : "backward",
                 (long long)(jump > 0 ? jump : -jump),
                 jump > 0 ? "timers due within the jump fire now, after the replies already in Kafka are read"
                          : "timers fire that much later");
    }
    return jump;
}

/* Due timers wait until the replies already in Kafka are read: after each
 * assignment, after a stall (the process was stopped, swapped, or an
 * iteration took very long) and after a forward clock jump, the replies
 * partitions' high watermarks are asked for and timers are held until the
 * consumer's position reaches them (at most CATCHUP_MAX_MS). Otherwise a
 * timeout could win over a reply that arrived while sagad was not looking. */
static void maybe_catch_up(sagad_t *d, int wait_ms, int64_t poll_end_us, int64_t jump_ms) {
    uint64_t gen = saga_bus_assignments(d->bus);
    const char *why = NULL;
    char stall[64];
    if (gen != d->assign_gen) {
        why = "an assignment";
    } else if (d->last_poll_us && poll_end_us - d->last_poll_us > (int64_t)wait_ms * 1000 + STALL_US) {
        snprintf(stall, sizeof stall, "a stall of %.1f s", (double)(poll_end_us - d->last_poll_us) / 1e6);
        why = stall;
    } else if (jump_ms > 0) {
        why = "a clock jump";
    }
    d->assign_gen = gen;
    d->last_poll_us = poll_end_us;
    if (!why || !saga_bus_consuming(d->bus)) return;
    int64_t behind = saga_bus_catchup_begin(d->bus, d->cfg.replies_topic, CATCHUP_QUERY_MS);
    d->last_poll_us = saga_monotonic_us(); /* slow queries (a broker down) are not the next stall */
    if (behind > 0) {
        d->counters.catchups++;
        LOG_INFO("loop", "after %s: %lld repl%s waiting in %s; due timers wait until they are read (at most %d s)",
                 why, (long long)behind, behind == 1 ? "y" : "ies", d->cfg.replies_topic, CATCHUP_MAX_MS / 1000);
    } else {
        LOG_INFO("loop", "after %s: no reply waiting in %s beyond the batch at hand; due timers may fire", why,
                 d->cfg.replies_topic);
    }
}

/* The earliest timer of any shard (INT64_MAX: none). */
static int64_t next_timer_due(sagad_t *d) {
    int64_t due = INT64_MAX;
    for (int p = 0; p < d->shard_count; p++) {
        if (!d->shards[p].store) continue;
        int64_t t = saga_store_next_timer_due(d->shards[p].store);
        if (t < due) due = t;
    }
    return due;
}

/* How long the batch's records waited between their producer and this
 * poll (broker, fetch, the previous iteration): their timestamp
 * (CreateTime, the producer's clock: meaningful on one host or with
 * synchronised clocks) to now. */
static void note_consume_lag(sagad_t *d, rd_kafka_message_t **msgs, int n) {
    int64_t now = saga_now_ms();
    for (int i = 0; i < n; i++) {
        rd_kafka_timestamp_type_t type;
        int64_t ts = rd_kafka_message_timestamp(msgs[i], &type);
        if (ts > 0 && type == RD_KAFKA_TIMESTAMP_CREATE_TIME && now >= ts)
            saga_histogram_add(&d->consume_lag_seconds, (double)(now - ts) / 1000.0);
    }
}

int sagad_iterate(sagad_t *d, int max_wait_ms) {
    static rd_kafka_message_t *msgs[MAX_BATCH];
    static saga_timer_row_t timers[MAX_TIMERS];
    static int timer_shard[MAX_TIMERS];
    if (d->pause_dirty) { /* a pause or resume came in the last iteration: the flags follow the shards */
        int prc = sagad_pause_sync(d);
        if (prc) return prc;
    }
    int64_t now = saga_now_ms();
    int64_t next_due = next_timer_due(d);
    int wait = max_wait_ms;
    if (next_due != INT64_MAX && next_due - now < wait) wait = next_due <= now ? 0 : (int)(next_due - now);
    if (!saga_bus_consuming(d->bus)) wait = max_wait_ms; /* timers are held until then: do not spin */
    if (d->catching && wait < 10) wait = 10;          /* timers held by a catch-up: do not spin either */
    if (d->commands && saga_command_pending(d->commands) > 0) wait = 0;
    if (saga_bus_in_flight(d->bus) > 0 && wait > 5) wait = 5; /* keep serving delivery reports */
    for (int p = 0; p < d->shard_count; p++)
        if (d->shards[p].resend_count > 0 && wait > 20) wait = 20; /* resends waiting for their backoff */

    int batch = d->cfg.batch_size > 0 && d->cfg.batch_size < MAX_BATCH ? (int)d->cfg.batch_size : MAX_BATCH;
    int n = saga_bus_poll(d->bus, msgs, batch, wait);
    int64_t poll_end_us = saga_monotonic_us();
    /* Shards follow the assignment the poll may have changed; what was read
     * for a shard given up goes to its new owner (its offsets never leave). */
    int orc = sagad_ownership_sync(d);
    int kept = 0;
    for (int i = 0; i < n; i++) {
        if (!orc && d->shards[sagad_shard_of_partition((int)msgs[i]->partition, d->shard_count)].store)
            msgs[kept++] = msgs[i];
        else rd_kafka_message_destroy(msgs[i]);
    }
    n = kept;
    if (orc) return orc;
    note_consume_lag(d, msgs, n);
    saga_bus_serve(d->bus, 0);
    sagad_relay_check_fenced(d); /* a fenced producer found between transactions */
    now = saga_now_ms();
    maybe_catch_up(d, wait, poll_end_us, check_clock(d, now, poll_end_us));
    /* Timers wait while replies may still be queued in Kafka: before the
     * consumer has its partitions (after a start, and from a revocation to
     * the next assignment, e.g. when the session expired in a stall), during a catch-up
     * (above: until the replies are read up to the high watermark seen at
     * the wake-up), and while the poll returns full batches — a reply that
     * arrived during an outage must win over the timeout it would otherwise
     * lose to. A steady backlog holds them at most MAX_TIMER_HOLD_MS. */
    int64_t waited_ms = 0;
    bool catching = saga_bus_catching_up(d->bus, CATCHUP_MAX_MS, &waited_ms);
    if (d->catching && !catching) LOG_INFO("loop", "catch-up done after %lld ms: due timers may fire", (long long)waited_ms);
    d->catching = catching;
    d->catch_ms = waited_ms;
    bool caught_up = saga_bus_consuming(d->bus) && !catching && n < batch;
    int64_t mono_ms = poll_end_us / 1000;
    if (next_due <= now && !caught_up && saga_bus_ready(d->bus) && d->timers_held_since == 0)
        d->timers_held_since = mono_ms;
    if (caught_up || (!catching && saga_bus_consuming(d->bus) && d->timers_held_since && mono_ms - d->timers_held_since > MAX_TIMER_HOLD_MS)) {
        caught_up = true;
        d->timers_held_since = 0;
    }
    /* Due timers of every shard, up to MAX_TIMERS in all; the first shard
     * asked turns round, so that a backlog in one does not starve the others. */
    static int timer_turn;
    int ntimers = 0;
    if (caught_up && next_due <= now) timer_turn = (timer_turn + 1) % d->shard_count;
    for (int k = 0; caught_up && next_due <= now && k < d->shard_count && ntimers < MAX_TIMERS; k++) {
        int p = (timer_turn + k) % d->shard_count;
        if (!d->shards[p].store) continue;
        int got = saga_store_due_timers(d->shards[p].store, now, timers + ntimers, MAX_TIMERS - ntimers);
        if (got < 0) return got;
        for (int i = 0; i < got; i++) timer_shard[ntimers + i] = p;
        ntimers += got;
    }

    static saga_command_t commands[MAX_COMMANDS];
    int ncommands = d->commands ? saga_command_take(d->commands, commands, MAX_COMMANDS) : 0;
    if (n == 0 && ntimers == 0 && ncommands == 0 && saga_bus_acked_count(d->bus) == 0 &&
        saga_bus_failed_count(d->bus) == 0 && !saga_flow_has_ready(d->flow, now)) {
        int sent = sagad_relay(d);
        return sent < 0 ? sent : 0;
    }
    int64_t started_us = saga_monotonic_us();
    int rc = 0;
    for (int i = 0; !rc && i < n; i++) rc = handle_message(d, msgs[i], now);
    for (int i = 0; !rc && i < ntimers; i++) rc = fire_timer(d, &d->shards[timer_shard[i]], &timers[i], now);
    for (int i = 0; i < ncommands; i++) {
        if (!rc) rc = run_command(d, &commands[i], now);
        saga_command_clear(&commands[i]);
    }
    if (!rc) rc = resume_waiters(d, now);
    if (!rc) rc = sagad_relay_acked(d);
    if (!rc) rc = sagad_relay_failures(d, now);
    /* The iteration's changelog record rows are written, then its relay pass
     * is produced from the shards' open transactions and travels while they
     * commit; the Kafka transaction commits only after all of them did
     * (docs/DESIGN.md, "The commit sequence"). The offsets wait for the
     * relay transaction that delivers this iteration's outbox rows. */
    if (!rc) rc = sagad_flush_changelogs(d, now);
    if (!rc) {
        sagad_relay_note_iteration(d, msgs, n);
        int sent = sagad_relay_send(d);
        if (sent < 0) rc = sent;
        if (sent > 0) sagad_crash_point(SAGAD_CRASH_BEFORE_SQLITE_COMMIT);
    }
    int64_t commit_us = saga_monotonic_us();
    saga_histogram_add(&d->handle_seconds, (double)(commit_us - started_us) / 1e6);
    /* Every touched shard commits before any offset of this batch is stored.
     * If one fails, those before it stay committed: the batch is read again
     * after the restart and their shards' dedup absorbs it (docs/DESIGN.md). */
    if (!rc) rc = sagad_commit_shards(d);
    saga_histogram_add(&d->commit_seconds, (double)(saga_monotonic_us() - commit_us) / 1e6);
    if (rc) {
        LOG_ERROR("loop", "transaction failed (%s); stopping without storing offsets", saga_strerror(rc));
        sagad_relay_abandon(d);
        sagad_rollback_shards(d);
        d->deleted_in_tx = false;
        sagad_send_alerts(d, false);
        for (int i = 0; i < n; i++) rd_kafka_message_destroy(msgs[i]);
        return rc;
    }
    sagad_crash_point(SAGAD_CRASH_AFTER_SQLITE_COMMIT);
    if (d->deleted_in_tx) sagad_crash_point(SAGAD_CRASH_AFTER_OUTBOX_DELETE);
    d->deleted_in_tx = false;
    sagad_send_alerts(d, true);
    log_breakers(d);
    d->counters.messages += (uint64_t)n;
    for (int i = 0; i < n; i++) rd_kafka_message_destroy(msgs[i]);
    int64_t relay_us = saga_monotonic_us();
    bool relaying = d->relay_pending;
    rc = sagad_relay_commit(d);
    if (relaying) saga_histogram_add(&d->relay_seconds, (double)(saga_monotonic_us() - relay_us) / 1e6);
    saga_histogram_add(&d->iteration_seconds, (double)(saga_monotonic_us() - started_us) / 1e6);
    return rc;
}

void sagad_publish_runtime(sagad_t *d) {
    json_t *counters = json_object(), *ignored = json_object(), *topics = json_array();
    if (d->bus) d->counters.producers_recreated = saga_bus_producers_recreated(d->bus); /* the bus counts them */
#define SAGAD_COUNTER_JSON(name, help) json_object_set_new(counters, #name, json_integer((json_int_t)d->counters.name));
    SAGAD_COUNTERS(SAGAD_COUNTER_JSON)
#undef SAGAD_COUNTER_JSON
    for (int r = 1; r < SAGA_STALE__COUNT; r++)
        json_object_set_new(ignored, saga_stale_reason_name((saga_stale_reason_t)r),
                            json_integer((json_int_t)d->stale_by_reason[r]));
    saga_flow_topic_stats_t t;
    for (int i = 0; saga_flow_stats(d->flow, i, &t); i++)
        json_array_append_new(topics, json_pack("{s:s, s:i, s:i, s:b, s:s, s:i}", "topic", t.topic, "in_flight", t.in_flight,
                                                "waiting", t.waiting, "paused", t.paused,
                                                "circuit", saga_breaker_state_name(t.breaker),
                                                "consecutive_failures", t.consecutive_failures));
    json_t *lag = json_object(), *lag_by_partition = json_object();
    saga_bus_lag(d->bus, lag, lag_by_partition);
    json_t *snap = json_pack("{s:b, s:i, s:o, s:o, s:o, s:o, s:{s:o, s:o, s:o, s:o, s:o, s:o, s:o}}",
                             "kafka_ready", saga_bus_ready(d->bus), "outbox_in_flight", saga_bus_in_flight(d->bus),
                             "counters", counters, "ignored_events", ignored, "topics", topics,
                             "consumer_lag", lag, "histograms",
                             "commit_seconds", saga_histogram_json(&d->commit_seconds),
                             "iteration_seconds", saga_histogram_json(&d->iteration_seconds),
                             "step_seconds", saga_histogram_json(&d->step_seconds),
                             "saga_seconds", saga_histogram_json(&d->saga_seconds),
                             "consume_lag_seconds", saga_histogram_json(&d->consume_lag_seconds),
                             "handle_seconds", saga_histogram_json(&d->handle_seconds),
                             "relay_seconds", saga_histogram_json(&d->relay_seconds));
    if (snap && d->restore_stats) {
        json_t *restore = sagad_restore_json(d->restore_stats, d->shard_count);
        size_t i;
        json_t *entry;
        json_array_foreach(restore, i, entry) {
            char key[16];
            snprintf(key, sizeof key, "%zu", i); /* shard p reads partition p of each topic */
            json_object_set_new(entry, "owned", json_boolean(d->shards[i].store != NULL));
            json_object_set_new(entry, "lag", json_integer(json_integer_value(json_object_get(lag_by_partition, key))));
        }
        json_object_set_new(snap, "restore", restore);
        json_object_set_new(snap, "owned_shards", json_integer(d->owned_count));
        if (d->cfg.instance_id) json_object_set_new(snap, "instance", json_string(d->cfg.instance_id));
        if (d->instances) json_object_set_new(snap, "cluster", sagad_instances_json(d->instances));
    }
    json_decref(lag_by_partition);
    if (snap) sagad_runtime_publish(d->runtime, snap);
}

static int recover_step(const char *saga_id, const char *definition, int version, int idx, const char *status,
                        void *user) {
    sagad_t *d = user;
    const saga_definition_t *def = saga_registry_get(d->registry, definition, version);
    if (!def || idx < 0 || idx >= def->step_count) return 0;
    const char *topic = def->steps[idx].topic;
    if (!strcmp(status, "queued") || !strcmp(status, "compensation_queued"))
        return saga_flow_enqueue(d->flow, topic, saga_id, idx) ? 1 : 0;
    saga_flow_count_in_flight(d->flow, topic);
    return 0;
}

int sagad_flow_recover(sagad_t *d) {
    int n = 0;
    for (int p = 0; p < d->shard_count; p++) {
        if (!d->shards[p].store) continue;
        int got = saga_store_active_steps(d->shards[p].store, recover_step, d);
        if (got < 0) return got;
        n += got;
    }
    if (n > 0) LOG_INFO("flow", "recovered %d step(s) in flight or waiting for room", n);
    return n < 0 ? n : sagad_pause_sync(d);
}
