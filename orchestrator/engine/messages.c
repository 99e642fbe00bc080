/* Parsers of saga.start and saga.reply messages (messages.h). Pure. */
#include "messages.h"

#include <stdio.h>
#include <string.h>

#include "saga_clock.h"
#include "saga_error.h"
#include "saga_utf8.h"

int saga_valid_id(const char *id, int allow_slash) {
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)id; *p; p++, n++) {
        if (n > SAGA_MESSAGE_ID_MAX) return 0;
        if (*p <= 0x20 || *p >= 0x7f || (*p == '/' && !allow_slash)) return 0;
    }
    return n > 0 && (allow_slash ? n <= SAGA_MESSAGE_ID_MAX : n < SAGA_ID_MAX);
}

#define FAIL(...) do { snprintf(err, errlen, __VA_ARGS__); return SAGA_EPARSE; } while (0)

static int get_string(const json_t *root, const char *type, const char *key, int required,
                      const char **out, char *err, size_t errlen) {
    json_t *v = json_object_get(root, key);
    *out = NULL;
    if (!v || json_is_null(v)) {
        if (required) FAIL("%s: missing '%s'", type, key);
        return 0;
    }
    if (!json_is_string(v)) FAIL("%s: '%s' must be a string", type, key);
    *out = json_string_value(v);
    if (strlen(*out) != json_string_length(v)) FAIL("%s: '%s' contains a NUL byte", type, key);
    return 0;
}

static int check_type(const json_t *root, const char *want, char *err, size_t errlen) {
    if (!json_is_object(root)) FAIL("%s: message is not a JSON object", want);
    const char *type = NULL;
    if (get_string(root, want, "type", 1, &type, err, errlen)) return SAGA_EPARSE;
    if (strcmp(type, want) != 0) FAIL("%s: unexpected type '%.*s'", want, saga_utf8_prefix(type, 64), type);
    return 0;
}

int saga_parse_start(const json_t *root, saga_start_msg_t *out, char *err, size_t errlen) {
    const char *t = "saga.start";
    memset(out, 0, sizeof *out);
    if (check_type(root, t, err, errlen) ||
        get_string(root, t, "message_id", 1, &out->message_id, err, errlen) ||
        get_string(root, t, "definition", 1, &out->definition, err, errlen) ||
        get_string(root, t, "saga_id", 0, &out->saga_id, err, errlen))
        return SAGA_EPARSE;
    if (!saga_valid_id(out->message_id, 1)) FAIL("%s: 'message_id' must be 1-%d printable ASCII bytes", t, SAGA_MESSAGE_ID_MAX);
    /* Names are ASCII ([a-z0-9_.-]): the loop quotes a name it does not
     * know, cut to a fixed length, in a dead letter's JSON headers, where a
     * cut inside a UTF-8 character would fail the transaction. */
    if (!saga_valid_id(out->definition, 0))
        FAIL("%s: 'definition' must be 1-127 printable ASCII bytes without '/'", t);
    if (out->saga_id && !saga_valid_id(out->saga_id, 0))
        FAIL("%s: 'saga_id' must be 1-127 printable ASCII bytes without '/'", t);
    json_t *version = json_object_get(root, "version");
    if (version && !json_is_null(version)) {
        /* a definition's version is 1..2147483647 (definition.c): each can be started */
        if (!json_is_integer(version) || json_integer_value(version) < 1 || json_integer_value(version) > 2147483647)
            FAIL("%s: 'version' must be an integer from 1 to 2147483647", t);
        out->version = (int)json_integer_value(version);
    }
    json_t *input = json_object_get(root, "input");
    if (input && !json_is_object(input)) FAIL("%s: 'input' must be an object", t);
    out->input = input;
    /* a delayed start: at a time, or after a while */
    const char *not_before = NULL, *delay = NULL;
    if (get_string(root, t, "not_before", 0, &not_before, err, errlen) ||
        get_string(root, t, "delay", 0, &delay, err, errlen))
        return SAGA_EPARSE;
    out->delay_ms = -1;
    if (not_before && delay) FAIL("%s: give 'not_before' or 'delay', not both", t);
    if (not_before && saga_parse_rfc3339(not_before, &out->not_before) != 0)
        FAIL("%s: 'not_before' must be an RFC 3339 time like 2026-12-24T18:00:00Z, not '%.*s'", t,
             saga_utf8_prefix(not_before, 64), not_before);
    if (delay) {
        if (saga_parse_duration(delay, &out->delay_ms) != 0)
            FAIL("%s: 'delay' must be a duration like \"90s\", \"15m\" or \"48h\", not '%.*s'", t,
                 saga_utf8_prefix(delay, 64), delay);
        if (out->delay_ms > SAGA_START_DELAY_MAX_MS) FAIL("%s: 'delay' must be at most 8784h (366 days)", t);
    }
    json_t *parent = json_object_get(root, "parent"); /* sagad's own, for a child saga */
    if (parent && !json_is_null(parent)) {
        const char *pid = NULL, *step = NULL;
        json_t *attempt = json_object_get(parent, "attempt"), *partition = json_object_get(parent, "partition");
        if (!json_is_object(parent) || get_string(parent, t, "saga_id", 1, &pid, err, errlen) ||
            get_string(parent, t, "step", 1, &step, err, errlen) || !saga_valid_id(pid, 0) || !saga_valid_id(step, 0) ||
            !json_is_integer(attempt) || json_integer_value(attempt) < 1 || json_integer_value(attempt) > SAGA_ATTEMPT_MAX ||
            !json_is_integer(partition) || json_integer_value(partition) < -1 || json_integer_value(partition) > 1000000)
            FAIL("%s: 'parent' must be {\"saga_id\", \"step\", \"attempt\" >= 1, \"partition\"}", t);
        if (!out->saga_id) FAIL("%s: a child saga's start names its 'saga_id'", t);
        out->parent = parent;
    }
    return 0;
}

int64_t saga_start_begin_at(const saga_start_msg_t *start, int64_t now_ms) {
    if (start->not_before > 0) return start->not_before;
    if (start->delay_ms > 0) return now_ms + start->delay_ms;
    return now_ms;
}

int saga_parse_reply(const json_t *root, saga_reply_msg_t *out, char *err, size_t errlen) {
    const char *t = "saga.reply";
    const char *kind = NULL, *status = NULL;
    memset(out, 0, sizeof *out);
    if (check_type(root, t, err, errlen) ||
        get_string(root, t, "message_id", 1, &out->message_id, err, errlen) ||
        get_string(root, t, "in_reply_to", 0, &out->in_reply_to, err, errlen) ||
        get_string(root, t, "saga_id", 1, &out->saga_id, err, errlen) ||
        get_string(root, t, "step", 1, &out->step, err, errlen) ||
        get_string(root, t, "kind", 1, &kind, err, errlen) ||
        get_string(root, t, "status", 1, &status, err, errlen))
        return SAGA_EPARSE;
    if (!saga_valid_id(out->message_id, 1)) FAIL("%s: 'message_id' must be 1-%d printable ASCII bytes", t, SAGA_MESSAGE_ID_MAX);
    /* Ids as in saga.start, for the same reason (unknown saga or step). */
    if (!saga_valid_id(out->saga_id, 0)) FAIL("%s: 'saga_id' must be 1-127 printable ASCII bytes without '/'", t);
    if (!saga_valid_id(out->step, 0)) FAIL("%s: 'step' must be 1-127 printable ASCII bytes without '/'", t);
    int k = saga_command_kind_parse(kind);
    if (k < 0) FAIL("%s: 'kind' must be \"action\" or \"compensation\"", t);
    out->kind = (saga_command_kind_t)k;
    if (!strcmp(status, "success")) out->status = SAGA_REPLY_SUCCESS;
    else if (!strcmp(status, "failure")) out->status = SAGA_REPLY_FAILURE;
    else if (!strcmp(status, "retry")) out->status = SAGA_REPLY_RETRY;
    else FAIL("%s: 'status' must be \"success\", \"failure\" or \"retry\"", t);
    json_t *attempt = json_object_get(root, "attempt");
    if (!json_is_integer(attempt) || json_integer_value(attempt) < 1 || json_integer_value(attempt) > SAGA_ATTEMPT_MAX)
        FAIL("%s: 'attempt' must be an integer from 1 to %d", t, SAGA_ATTEMPT_MAX);
    out->attempt = (int)json_integer_value(attempt);
    json_t *output = json_object_get(root, "output");
    out->output = output && !json_is_null(output) ? output : NULL;
    json_t *error = json_object_get(root, "error");
    if (error && !json_is_null(error)) {
        if (!json_is_object(error)) FAIL("%s: 'error' must be an object", t);
        if (get_string(error, t, "code", 0, &out->error_code, err, errlen) ||
            get_string(error, t, "message", 0, &out->error_message, err, errlen))
            return SAGA_EPARSE;
    }
    return 0;
}

int saga_parse_signal(const json_t *root, saga_signal_msg_t *out, char *err, size_t errlen) {
    const char *t = "saga.signal", *status = NULL;
    memset(out, 0, sizeof *out);
    if (check_type(root, t, err, errlen) || get_string(root, t, "message_id", 1, &out->message_id, err, errlen) ||
        get_string(root, t, "saga_id", 1, &out->saga_id, err, errlen) ||
        get_string(root, t, "signal", 1, &out->signal, err, errlen) ||
        get_string(root, t, "status", 1, &status, err, errlen))
        return SAGA_EPARSE;
    if (!saga_valid_id(out->message_id, 1)) FAIL("%s: 'message_id' must be 1-%d printable ASCII bytes", t, SAGA_MESSAGE_ID_MAX);
    if (!saga_valid_id(out->saga_id, 0)) FAIL("%s: 'saga_id' must be 1-127 printable ASCII bytes without '/'", t);
    if (!saga_valid_id(out->signal, 0)) FAIL("%s: 'signal' must be 1-127 printable ASCII bytes without '/'", t);
    if (strcmp(status, "success") == 0) out->status = SAGA_REPLY_SUCCESS;
    else if (strcmp(status, "failure") == 0) out->status = SAGA_REPLY_FAILURE;
    else FAIL("%s: 'status' must be \"success\" or \"failure\", not '%.*s'", t, saga_utf8_prefix(status, 32), status);
    json_t *output = json_object_get(root, "output");
    if (output && !json_is_null(output)) {
        if (!json_is_object(output)) FAIL("%s: 'output' must be an object", t);
        if (out->status != SAGA_REPLY_SUCCESS) FAIL("%s: 'output' goes with status success (a failure has 'error')", t);
        out->output = output;
    }
    json_t *error = json_object_get(root, "error");
    if (error && !json_is_null(error)) {
        if (!json_is_object(error)) FAIL("%s: 'error' must be an object {\"code\", \"message\"}", t);
        if (out->status != SAGA_REPLY_FAILURE) FAIL("%s: 'error' goes with status failure", t);
        if (get_string(error, t, "code", 0, &out->error_code, err, errlen) ||
            get_string(error, t, "message", 0, &out->error_message, err, errlen))
            return SAGA_EPARSE;
        if (out->error_code && strlen(out->error_code) > 63) FAIL("%s: 'error.code' is longer than 63 bytes", t);
    }
    return 0;
}
