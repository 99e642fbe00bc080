/* Participant commands and replies: parsing and validating a saga.command, building saga.reply bodies and ids. */
#include "participant.h"
#include "participant_internal.h"

#include "saga_alloc.h"
#include "saga_error.h"
#include "saga_json.h"
#include "saga_utf8.h"
#include "saga_util.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

const char *participant_status_name(participant_status_t s) {
    switch (s) {
#define PARTICIPANT_STATUS_NAME(name, str) case PARTICIPANT_##name: return str;
        PARTICIPANT_STATUS_MAP(PARTICIPANT_STATUS_NAME)
#undef PARTICIPANT_STATUS_NAME
    }
    return "unknown";
}

static int set_outcome(participant_result_t *r, participant_status_t st, const char *code,
                       const char *fmt, va_list ap) {
    r->status = st;
    saga_utf8_copy(r->error_code, sizeof r->error_code, code);
    vsnprintf(r->error_message, sizeof r->error_message, fmt, ap);
    saga_utf8_trim_cut(r->error_message); /* a long text is cut on a character boundary: it goes into JSON */
    return 0;
}

int participant_fail(participant_result_t *r, const char *code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    set_outcome(r, PARTICIPANT_FAILURE, code, fmt, ap);
    va_end(ap);
    return 0;
}

int participant_retry(participant_result_t *r, const char *code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    set_outcome(r, PARTICIPANT_RETRY, code, fmt, ap);
    va_end(ap);
    return 0;
}

/* ---- replies ----------------------------------------------------------- */

void participant_reply_clear(participant_reply_t *r) {
    if (!r) return;
    saga_free(r->body);
    saga_free(r->topic);
    saga_free(r->key);
    saga_free(r->message_id);
    memset(r, 0, sizeof *r);
}

const char *participant_kind_name(participant_kind_t k) {
    return k == PARTICIPANT_ACTION ? "action" : "compensation";
}

/* Builds a reply object. output (borrowed, may be NULL) only for success. */
json_t *participant_build_reply(const participant_parsed_t *c, const char *message_id, participant_status_t st,
                                const json_t *output, const char *code, const char *msg) {
    json_t *r = json_object();
    if (!r) return NULL;
    int bad = 0;
    bad |= json_object_set_new(r, "type", json_string("saga.reply"));
    bad |= json_object_set_new(r, "message_id", json_string(message_id));
    bad |= json_object_set_new(r, "in_reply_to", json_string(c->cmd.message_id));
    bad |= json_object_set_new(r, "saga_id", json_string(c->cmd.saga_id));
    bad |= json_object_set_new(r, "step", json_string(c->cmd.step));
    if (c->kind_ok) bad |= json_object_set_new(r, "kind", json_string(participant_kind_name(c->cmd.kind)));
    if (c->attempt_ok) bad |= json_object_set_new(r, "attempt", json_integer(c->cmd.attempt));
    bad |= json_object_set_new(r, "status", json_string(participant_status_name(st)));
    if (st == PARTICIPANT_SUCCESS) {
        bad |= json_object_set_new(r, "output", output ? json_deep_copy(output) : json_object());
    } else {
        json_t *e = json_object();
        if (e) {
            bad |= json_object_set_new(e, "code", json_string(code && *code ? code : "UNSPECIFIED"));
            bad |= json_object_set_new(e, "message", json_string(msg ? msg : ""));
        }
        bad |= json_object_set_new(r, "error", e);
    }
    if (bad) { json_decref(r); return NULL; }
    return r;
}

static char *fmt_alloc(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *fmt_alloc(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return NULL;
    char *s = saga_malloc((size_t)n + 1);
    if (!s) return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

/* The message_id of a recorded outcome's reply: the same for every
 * delivery of the same attempt. */
char *participant_reply_id(const participant_parsed_t *c) {
    return fmt_alloc("r-%s/%lld", c->cmd.idempotency_key, c->cmd.attempt);
}

/* Fills out from a reply object (consumed). */
int participant_finish_reply(participant_reply_t *out, const participant_parsed_t *c, json_t *reply,
                             participant_status_t st) {
    if (!reply) return SAGA_ENOMEM;
    out->body = saga_json_dump(reply);
    out->message_id = saga_strdup(saga_json_str(reply, "message_id"));
    json_decref(reply);
    out->topic = saga_strdup(c->reply_to);
    out->key = saga_strdup(c->cmd.saga_id);
    out->partition = c->reply_partition;
    out->status = st;
    if (!out->body || !out->topic || !out->key || !out->message_id) {
        participant_reply_clear(out);
        return SAGA_ENOMEM;
    }
    return 0;
}

/* A reply that is not recorded (malformed command, transient outcome). */
int participant_unrecorded_reply(participant_t *p, const participant_parsed_t *c, participant_reply_t *out,
                                 participant_status_t st, const char *code, const char *msg) {
    char *mid;
    if (st == PARTICIPANT_RETRY) {
        /* Not a stable answer (the next delivery runs again), so not a
         * deterministic id either: sagad treats a later different answer
         * for the same attempt as stale instead of as a duplicate. */
        char rnd[40];
        saga_random_id("t-", rnd, sizeof rnd);
        mid = fmt_alloc("r-%s/%lld/%s", c->cmd.idempotency_key ? c->cmd.idempotency_key : c->cmd.message_id,
                        c->cmd.attempt, rnd);
    } else {
        mid = fmt_alloc("r-%s", c->cmd.message_id);
    }
    if (!mid) return SAGA_ENOMEM;
    json_t *r = participant_build_reply(c, mid, st, NULL, code, msg);
    saga_free(mid);
    return participant_finish_reply(out, c, r, st);
}

/* Re-renders a stored reply for the current command. */
int participant_resend_stored(const participant_parsed_t *c, const char *stored, participant_reply_t *out) {
    json_t *r = saga_json_parse(stored, strlen(stored), NULL, 0);
    if (!json_is_object(r)) { json_decref(r); return SAGA_ESTORE; }
    char *mid = participant_reply_id(c);
    if (!mid) { json_decref(r); return SAGA_ENOMEM; }
    int bad = json_object_set_new(r, "message_id", json_string(mid));
    bad |= json_object_set_new(r, "in_reply_to", json_string(c->cmd.message_id));
    bad |= json_object_set_new(r, "attempt", json_integer(c->cmd.attempt));
    saga_free(mid);
    if (bad) { json_decref(r); return SAGA_ENOMEM; }
    const char *st = saga_json_str(r, "status");
    participant_status_t status = st && !strcmp(st, "success") ? PARTICIPANT_SUCCESS : PARTICIPANT_FAILURE;
    int rc = participant_finish_reply(out, c, r, status);
    out->duplicate = 1;
    return rc;
}

/* ---- parsing ------------------------------------------------------------ */

static const char *nonempty(const json_t *o, const char *k) {
    const char *s = saga_json_str(o, k);
    return s && *s ? s : NULL;
}

/* 0, or SAGA_EPARSE with the reason in why. Fields that could be read are
 * left in c even on error (for a failure reply). */
int participant_parse_command(const char *bytes, size_t len, participant_parsed_t *c, char *why,
                              size_t whylen) {
    memset(c, 0, sizeof *c);
    c->reply_partition = -1;
    char jerr[160];
    c->doc = saga_json_parse(bytes, len, jerr, sizeof jerr);
    if (!c->doc) { snprintf(why, whylen, "invalid JSON: %s", jerr); return SAGA_EPARSE; }
    if (!json_is_object(c->doc)) { snprintf(why, whylen, "command is not a JSON object"); return SAGA_EPARSE; }
    json_t *d = c->doc;
    participant_command_t *cmd = &c->cmd;
    cmd->message_id = nonempty(d, "message_id");
    cmd->saga_id = nonempty(d, "saga_id");
    cmd->step = nonempty(d, "step");
    cmd->action = nonempty(d, "action");
    cmd->idempotency_key = nonempty(d, "idempotency_key");
    cmd->definition = saga_json_str(d, "definition");
    c->reply_to = nonempty(d, "reply_to");
    /* The saga's partition of reply_to (docs/PROTOCOL.md). Absent (an older
     * sagad) or not a partition number: the reply is keyed by saga_id and
     * Kafka's default partitioner picks its partition. */
    json_t *rp = json_object_get(d, "reply_partition");
    c->reply_partition = json_is_integer(rp) && json_integer_value(rp) >= 0 && json_integer_value(rp) <= INT32_MAX
                             ? (int)json_integer_value(rp) : -1;
    const char *kind = saga_json_str(d, "kind");
    if (kind && !strcmp(kind, "action")) { cmd->kind = PARTICIPANT_ACTION; c->kind_ok = 1; }
    else if (kind && !strcmp(kind, "compensation")) { cmd->kind = PARTICIPANT_COMPENSATION; c->kind_ok = 1; }
    c->attempt_ok = saga_json_int(d, "attempt", &cmd->attempt) == 0 && cmd->attempt >= 1;
    cmd->payload = json_object_get(d, "payload");

    const char *type = saga_json_str(d, "type");
    const char *missing = NULL;
    if (!type || strcmp(type, "saga.command")) {
        snprintf(why, whylen, "\"type\" is %s%.*s%s, expected \"saga.command\"", type ? "\"" : "",
                 type ? saga_utf8_prefix(type, 64) : 7, type ? type : "missing", type ? "\"" : "");
        return SAGA_EPARSE;
    }
    if (!cmd->message_id) missing = "message_id";
    else if (!cmd->saga_id) missing = "saga_id";
    else if (!cmd->step) missing = "step";
    else if (!c->reply_to) missing = "reply_to";
    else if (!cmd->action) missing = "action";
    else if (!cmd->idempotency_key) missing = "idempotency_key";
    if (missing) {
        snprintf(why, whylen, "\"%s\" is missing or not a non-empty string", missing);
        return SAGA_EPARSE;
    }
    if (!c->kind_ok) {
        snprintf(why, whylen, "\"kind\" must be \"action\" or \"compensation\"");
        return SAGA_EPARSE;
    }
    if (!c->attempt_ok) {
        snprintf(why, whylen, "\"attempt\" must be an integer >= 1");
        return SAGA_EPARSE;
    }
    if (!json_is_object(cmd->payload)) {
        snprintf(why, whylen, "\"payload\" must be a JSON object");
        return SAGA_EPARSE;
    }
    return 0;
}

int participant_reply_readable(const participant_parsed_t *c) {
    /* Only answer what claims to be a command: anything else on the topic
     * (a start event, junk) has no one waiting for a reply. */
    const char *type = c->doc ? saga_json_str(c->doc, "type") : NULL;
    return type && !strcmp(type, "saga.command") && c->cmd.message_id && c->cmd.saga_id && c->cmd.step &&
           c->reply_to;
}
