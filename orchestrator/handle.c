/* What each input does to its saga inside a loop iteration (sagad.h): a
 * consumed message (start, reply, signal, control), a due timer, an
 * operator's command; loop.c calls them and commits. */
#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "handle.h"
#include "messages.h"
#include "sagad.h"
#include "saga_alloc.h"
#include "saga_clock.h"
#include "saga_error.h"
#include "saga_utf8.h"
#include "saga_json.h"
#include "saga_kafka.h"
#include "saga_log.h"
#include "saga_util.h"

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

int sagad_fire_timer(sagad_t *d, sagad_shard_t *sh, const saga_timer_row_t *t, int64_t now) {
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
int sagad_run_command(sagad_t *d, const saga_command_t *cmd, int64_t now) {
    if (cmd->kind == SAGA_CMD_RELOAD) {
        d->reload_pending = true; /* it has its own transaction: after this one */
        return 0;
    }
    if (cmd->kind == SAGA_CMD_PAUSE || cmd->kind == SAGA_CMD_RESUME) { /* every owned shard (no Kafka: one instance) */
        int rc = 0;
        for (int p = 0; !rc && p < d->shard_count; p++) {
            if (!d->shards[p].store) continue;
            sagad_shard_t *sh = sagad_owned_shard_tx(d, NULL, p, NULL, now, &rc);
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

int sagad_handle_message(sagad_t *d, const rd_kafka_message_t *m, int64_t now) {
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
