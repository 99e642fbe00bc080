/* POST endpoints: start, abort, retry. They check what the read-only
 * shards can tell (the saga in its shard, definitions in any shard) (the saga exists, its status allows the command, the
 * definition is known) and queue the command for the main loop, which
 * decides for good in its own transaction (the engine refuses a command the
 * saga's state does not allow by then). */
#include "admin_handlers.h"
#include "commands.h"
#include "definition.h"
#include "messages.h"

#include <stdio.h>
#include <string.h>

#include "saga_alloc.h"
#include "saga_error.h"
#include "saga_json.h"
#include "saga_utf8.h"
#include "saga_util.h"

/* The body as a JSON object; NULL with res filled when it is not one. An
 * empty body is {} when empty_ok. */
static json_t *body_object(const admin_request_t *req, int empty_ok, admin_response_t *res, int *rc) {
    if (req->body_len == 0 && empty_ok) return json_object();
    char err[200];
    json_t *doc = req->body_len ? saga_json_parse(req->body, req->body_len, err, sizeof err) : NULL;
    if (!doc) {
        *rc = admin_error(res, ADMIN_ERR_BAD_REQUEST, "body is not valid JSON: %s", req->body_len ? err : "empty");
        return NULL;
    }
    if (!json_is_object(doc)) {
        json_decref(doc);
        *rc = admin_error(res, ADMIN_ERR_BAD_REQUEST, "body must be a JSON object");
        return NULL;
    }
    return doc;
}

/* The saga's status into buf, from its shard; 1 found, 0 not, -1 with the
 * reason in why when the shard cannot be read. */
static int saga_status(admin_ctx_t *ctx, const char *id, char *buf, size_t len, char *why, size_t whylen) {
    int shard = admin_shard_of(ctx, id);
    sqlite3 *db = admin_shard_check(ctx, shard, why, whylen);
    if (!db) return -1;
    sqlite3_stmt *q = NULL;
    int found = -1;
    if (sqlite3_prepare_v2(db, "SELECT status FROM sagas WHERE id = ?", -1, &q, NULL) == SQLITE_OK &&
        sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC) == SQLITE_OK) {
        int rc = sqlite3_step(q);
        if (rc == SQLITE_ROW) {
            snprintf(buf, len, "%s", (const char *)sqlite3_column_text(q, 0));
            found = 1;
        } else if (rc == SQLITE_DONE) {
            found = 0;
        }
    }
    if (found < 0) {
        char name[400];
        snprintf(why, whylen, "%s: %s", admin_shard_name(ctx, shard, name, sizeof name), sqlite3_errmsg(db));
    }
    sqlite3_finalize(q);
    return found;
}

/* 1 when the definition (and version, when > 0) is stored in any shard, 0
 * when in none, -1 with the reason in why (and the shard in *bad) when a
 * shard cannot be read.
 * Retired versions count: the loop starts a saga on any version it holds
 * when the start names it. */
static int definition_known(admin_ctx_t *ctx, const char *name, int version, char *why, size_t whylen, int *bad) {
    for (int i = 0, n = admin_shard_count(ctx); i < n; i++) {
        *bad = i;
        if (!admin_shard_owned(ctx, i)) continue;
        sqlite3 *db = admin_shard_check(ctx, i, why, whylen);
        if (!db) return -1;
        sqlite3_stmt *q = NULL;
        int known = -1;
        if (sqlite3_prepare_v2(db, "SELECT 1 FROM definitions WHERE name = ?1 AND (?2 <= 0 OR version = ?2)", -1,
                               &q, NULL) == SQLITE_OK &&
            sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC) == SQLITE_OK &&
            sqlite3_bind_int(q, 2, version) == SQLITE_OK) {
            int rc = sqlite3_step(q);
            known = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
        }
        if (known < 0) {
            char sname[400];
            snprintf(why, whylen, "%s: %s", admin_shard_name(ctx, i, sname, sizeof sname), sqlite3_errmsg(db));
        }
        sqlite3_finalize(q);
        if (known != 0) return known;
    }
    return 0;
}

/* "1, 2" into buf: the stored versions of name in any shard (empty when none). */
static void stored_versions(admin_ctx_t *ctx, const char *name, char *buf, size_t len) {
    int seen[64], nseen = 0;
    size_t o = 0;
    buf[0] = '\0';
    for (int i = 0, n = admin_shard_count(ctx); i < n; i++) {
        char why[512];
        sqlite3 *db = admin_shard_check(ctx, i, why, sizeof why);
        sqlite3_stmt *q = NULL;
        if (db && sqlite3_prepare_v2(db, "SELECT version FROM definitions WHERE name = ? ORDER BY version", -1, &q,
                                     NULL) == SQLITE_OK &&
            sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC) == SQLITE_OK)
            while (nseen < 64 && sqlite3_step(q) == SQLITE_ROW) {
                int v = sqlite3_column_int(q, 0), dup = 0;
                for (int k = 0; k < nseen; k++) dup |= seen[k] == v;
                if (!dup) seen[nseen++] = v;
            }
        sqlite3_finalize(q);
    }
    for (int i = 1; i < nseen; i++) /* few: insertion sort */
        for (int k = i; k > 0 && seen[k - 1] > seen[k]; k--) {
            int t = seen[k];
            seen[k] = seen[k - 1];
            seen[k - 1] = t;
        }
    for (int i = 0; i < nseen && o + 16 < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%s%d", o ? ", " : "", seen[i]);
}

static int accepted(admin_response_t *res, unsigned status, const char *id, const char *what) {
    json_t *doc = json_pack("{s:s, s:s}", "saga_id", id, "status", what);
    if (!doc) return SAGA_ENOMEM;
    int rc = admin_json_response(res, status, doc);
    json_decref(doc);
    return rc;
}

static int queue_error(admin_response_t *res, int rc) {
    if (rc == SAGA_EIO) return admin_error(res, ADMIN_ERR_UNAVAILABLE, "too many commands waiting; try again");
    return rc;
}

char *admin_control_message(int kind, const char *message_id, const char *id, const json_t *start,
                            const char *reason) {
    json_t *doc = json_pack("{s:s, s:s, s:s, s:s}", "type", "saga.control", "message_id", message_id, "command",
                            saga_command_op_name((saga_command_kind_op_t)kind), "saga_id", id);
    if (doc && reason) json_object_set_new(doc, "reason", json_string(reason));
    if (doc && start) json_object_set(doc, kind == SAGA_CMD_SIGNAL ? "signal" : "start", (json_t *)start);
    char *payload = doc ? saga_json_dump(doc) : NULL;
    json_decref(doc);
    return payload;
}

/* An operator command for saga id: a saga.control message through Kafka
 * when sagad gave the admin API a publisher, else the command queue; the
 * 202 (or the error) into res. start: the saga.start body of a START, the
 * saga.signal message of a SIGNAL (else NULL). */
static int send_command(admin_ctx_t *ctx, saga_command_kind_op_t kind, const char *id, const json_t *start,
                        const char *reason, admin_response_t *res) {
    if (!ctx->publish) {
        char *body = start ? saga_json_dump(start) : NULL;
        int rc = start && !body ? SAGA_ENOMEM : saga_command_push(ctx->commands, kind, id, body, reason);
        saga_free(body);
        return rc ? queue_error(res, rc) : accepted(res, 202, id, "accepted");
    }
    char message_id[SAGA_ID_MAX + 64];
    saga_random_id("ctl-", message_id, sizeof message_id);
    char *payload = admin_control_message(kind, message_id, id, start, reason);
    if (!payload) return SAGA_ENOMEM;
    char why[512] = "";
    int shard = admin_shard_of(ctx, id);
    int rc = ctx->publish(ctx->publish_arg, shard, id, payload, why, sizeof why);
    saga_free(payload);
    if (rc)
        return admin_shard_error(res, ADMIN_ERR_UNAVAILABLE, shard, "the command could not be handed to Kafka: %s", why);
    return accepted(res, 202, id, "accepted");
}

int admin_post_saga(admin_ctx_t *ctx, const admin_request_t *req, admin_response_t *res) {
    int rc = 0;
    json_t *doc = body_object(req, 0, res, &rc);
    if (!doc) return rc;
    /* The body is a saga.start without the envelope: type and (by
     * default) message_id and saga_id are filled in here. */
    char id[SAGA_ID_MAX], message_id[SAGA_ID_MAX + 8];
    const char *given = saga_json_str(doc, "saga_id");
    if (json_object_get(doc, "saga_id") && !given) {
        json_decref(doc);
        return admin_error(res, ADMIN_ERR_BAD_REQUEST, "'saga_id' must be a string");
    }
    if (given && strlen(given) >= sizeof id) { /* refused, not cut to 127 bytes */
        json_decref(doc);
        return admin_error(res, ADMIN_ERR_BAD_REQUEST, "'saga_id' must be 1-%d printable ASCII bytes without '/'",
                           SAGA_ID_MAX - 1);
    }
    if (given) snprintf(id, sizeof id, "%s", given);
    else /* a new id in a shard this instance owns, when it owns one (a cluster) */
        for (int tries = 0; tries == 0 || (tries < 256 && !admin_shard_owned(ctx, admin_shard_of(ctx, id))); tries++)
            saga_random_id("s-", id, sizeof id);
    if (ctx->shards && !admin_shard_owned(ctx, admin_shard_of(ctx, id))) { /* its owner starts it */
        json_decref(doc);
        return admin_elsewhere(ctx, req, admin_shard_of(ctx, id), res);
    }
    if (!json_object_get(doc, "message_id")) {
        snprintf(message_id, sizeof message_id, "http-%s", id);
        json_object_set_new(doc, "message_id", json_string(message_id));
    }
    json_object_set_new(doc, "saga_id", json_string(id));
    json_object_set_new(doc, "type", json_string("saga.start"));
    saga_start_msg_t start;
    char err[256];
    if (saga_parse_start(doc, &start, err, sizeof err)) {
        json_decref(doc);
        return admin_error(res, ADMIN_ERR_BAD_REQUEST, "%s", err);
    }
    char status[32], why[1024] = "";
    int bad = admin_shard_of(ctx, id); /* the shard that could not be read */
    int exists = saga_status(ctx, id, status, sizeof status, why, sizeof why);
    int known = exists == 0 ? definition_known(ctx, start.definition, 0, why, sizeof why, &bad) : 1;
    int version_known = known == 1 && exists == 0 && start.version > 0
                            ? definition_known(ctx, start.definition, start.version, why, sizeof why, &bad) : 1;
    if (exists < 0 || known < 0 || version_known < 0) {
        rc = admin_shard_error(res, ADMIN_ERR_UNAVAILABLE, bad, "%s", why);
    } else if (exists) {
        rc = accepted(res, 200, id, status); /* idempotent on saga_id */
    } else if (!known) {
        rc = admin_error(res, ADMIN_ERR_UNPROCESSABLE, "unknown definition '%.128s'", start.definition);
    } else if (!version_known) {
        char versions[128];
        stored_versions(ctx, start.definition, versions, sizeof versions);
        rc = admin_error(res, ADMIN_ERR_UNPROCESSABLE, "definition '%.128s' has no version %d (versions: %s)",
                         start.definition, start.version, versions);
    } else {
        rc = send_command(ctx, SAGA_CMD_START, id, doc, NULL, res);
    }
    json_decref(doc);
    return rc;
}

/* 1 when status is one of need's, "a or b" (saga status names hold no blank). */
static int status_in(const char *status, const char *need) {
    size_t n = strlen(status);
    for (const char *p = need; (p = strstr(p, status)) != NULL; p += n)
        if ((p == need || p[-1] == ' ') && (p[n] == '\0' || p[n] == ' ')) return 1;
    return 0;
}

/* abort and retry: the saga must exist and be in one of `need` ("a or b"). */
static int post_command(admin_ctx_t *ctx, const char *id, const admin_request_t *req, admin_response_t *res,
                        saga_command_kind_op_t kind, const char *need) {
    int rc = 0;
    json_t *doc = body_object(req, 1, res, &rc);
    if (!doc) return rc;
    json_t *reason = json_object_get(doc, "reason");
    if (reason && !json_is_string(reason)) {
        json_decref(doc);
        return admin_error(res, ADMIN_ERR_BAD_REQUEST, "'reason' must be a string");
    }
    char status[32], why[1024] = "";
    int exists = saga_status(ctx, id, status, sizeof status, why, sizeof why);
    if (exists < 0) rc = admin_shard_error(res, ADMIN_ERR_UNAVAILABLE, admin_shard_of(ctx, id), "%s", why);
    else if (!exists) rc = admin_error(res, ADMIN_ERR_NOT_FOUND, "no saga '%s'", id);
    else if (!status_in(status, need))
        rc = admin_error(res, ADMIN_ERR_CONFLICT, "saga '%s' is %s; %s needs it %s", id, status,
                         kind == SAGA_CMD_ABORT ? "abort" : "retry", need);
    else {
        rc = send_command(ctx, kind, id, NULL, reason ? json_string_value(reason) : NULL, res);
    }
    json_decref(doc);
    return rc;
}

int admin_post_abort(admin_ctx_t *ctx, const char *id, const admin_request_t *req, admin_response_t *res) {
    return post_command(ctx, id, req, res, SAGA_CMD_ABORT, "running or scheduled");
}

int admin_post_retry(admin_ctx_t *ctx, const char *id, const admin_request_t *req, admin_response_t *res) {
    return post_command(ctx, id, req, res, SAGA_CMD_RETRY, "compensation_failed");
}

int admin_post_reload(admin_ctx_t *ctx, const admin_request_t *req, admin_response_t *res) {
    int rc = 0;
    rc = saga_command_push(ctx->commands, SAGA_CMD_RELOAD, "", NULL, NULL);
    if (rc) return queue_error(res, rc);
    json_t *doc = json_pack("{s:s, s:s}", "status", "accepted", "check",
                            "GET /v1/definitions (the log says why when a reload is refused)");
    if (!doc) return SAGA_ENOMEM;
    rc = admin_json_response(res, 202, doc);
    json_decref(doc);
    return rc;
}

/* ---- POST /v1/sagas/{id}/signals/{name} ---- */

/* The definition saga id runs on, from its shard (NULL: none, with res
 * filled) and the status of the saga into status. */
static saga_definition_t *saga_definition_of(admin_ctx_t *ctx, const char *id, char *status, size_t len,
                                             admin_response_t *res, int *rc) {
    char why[600] = "";
    int shard = admin_shard_of(ctx, id);
    sqlite3 *db = admin_shard_check(ctx, shard, why, sizeof why);
    if (!db) {
        *rc = admin_shard_error(res, ADMIN_ERR_UNAVAILABLE, shard, "%s", why);
        return NULL;
    }
    sqlite3_stmt *q = NULL;
    saga_definition_t *def = NULL;
    int step = SQLITE_ERROR;
    if (sqlite3_prepare_v2(db, "SELECT s.status, d.json FROM sagas s LEFT JOIN definitions d ON d.name = s.definition"
                               " AND d.version = s.version WHERE s.id = ?", -1, &q, NULL) == SQLITE_OK &&
        sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC) == SQLITE_OK)
        step = sqlite3_step(q);
    if (step == SQLITE_ROW) {
        snprintf(status, len, "%s", (const char *)sqlite3_column_text(q, 0));
        const char *json = (const char *)sqlite3_column_text(q, 1);
        saga_def_errors_t errs = {.stored = true};
        def = json ? saga_definition_parse(json, strlen(json), &errs) : NULL;
        if (!def) *rc = admin_error(res, ADMIN_ERR_INTERNAL, "saga '%s': its definition is not stored or does not load", id);
    } else if (step == SQLITE_DONE) {
        *rc = admin_error(res, ADMIN_ERR_NOT_FOUND, "no saga '%s'", id);
    } else {
        *rc = admin_db_error(ctx, shard, res, step, "reading the saga");
    }
    sqlite3_finalize(q);
    return def;
}

/* 1 when step idx of saga id is past waiting for its signal (it has it, or
 * no longer waits), with the step's status in status; 0 when it waits or
 * will; -1 on a read error. */
static int signal_step_state(admin_ctx_t *ctx, const char *id, int idx, char *status, size_t len) {
    sqlite3 *db = admin_shard_check(ctx, admin_shard_of(ctx, id), status, len);
    sqlite3_stmt *q = NULL;
    int out = -1;
    if (db && sqlite3_prepare_v2(db, "SELECT status, signal IS NOT NULL FROM steps WHERE saga_id = ? AND idx = ?", -1, &q,
                                 NULL) == SQLITE_OK &&
        sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC) == SQLITE_OK && sqlite3_bind_int(q, 2, idx) == SQLITE_OK) {
        int step = sqlite3_step(q);
        if (step == SQLITE_DONE) out = 0; /* not started: no row yet */
        else if (step == SQLITE_ROW) {
            snprintf(status, len, "%s", (const char *)sqlite3_column_text(q, 0));
            out = sqlite3_column_int(q, 1) ? 1 : strcmp(status, "pending") != 0 && strcmp(status, "waiting") != 0;
            if (sqlite3_column_int(q, 1)) snprintf(status, len, "received");
        }
    }
    sqlite3_finalize(q);
    return out;
}

int admin_post_signal(admin_ctx_t *ctx, const char *id, const char *name, const admin_request_t *req,
                      admin_response_t *res) {
    int rc = 0;
    json_t *doc = body_object(req, 0, res, &rc);
    if (!doc) return rc;
    static const char *const members[] = {"status", "output", "error", "message_id", NULL};
    const char *key;
    json_t *v;
    json_object_foreach(doc, key, v) {
        size_t k = 0;
        while (members[k] && strcmp(members[k], key)) k++;
        if (!members[k]) { /* the answer first: key lives in doc */
            rc = admin_error(res, ADMIN_ERR_BAD_REQUEST, "unknown member '%.*s' (a signal has status, output, error,"
                             " message_id)", saga_utf8_prefix(key, 64), key);
            json_decref(doc);
            return rc;
        }
    }
    /* the saga.signal message as a service would publish it, checked by the loop's own parser */
    char message_id[SAGA_ID_MAX + 64], err[300];
    const char *given = saga_json_str(doc, "message_id");
    if (given) snprintf(message_id, sizeof message_id, "%s", given);
    else saga_random_id("http-signal-", message_id, sizeof message_id);
    json_t *msg = json_deep_copy(doc);
    json_decref(doc);
    if (!msg) return SAGA_ENOMEM;
    json_object_set_new(msg, "type", json_string("saga.signal"));
    json_object_set_new(msg, "message_id", json_string(message_id));
    json_object_set_new(msg, "saga_id", json_string(id));
    json_object_set_new(msg, "signal", json_string(name));
    saga_signal_msg_t sig;
    if (saga_parse_signal(msg, &sig, err, sizeof err)) {
        json_decref(msg);
        return admin_error(res, ADMIN_ERR_BAD_REQUEST, "%s", err);
    }
    char status[64] = "", step_status[600] = "";
    saga_definition_t *def = saga_definition_of(ctx, id, status, sizeof status, res, &rc);
    int step = def ? saga_definition_signal_step(def, name) : -1, past = 0;
    if (!def) {
        /* res holds the 404 / 500 / 503 */
    } else if (step < 0) {
        rc = admin_error(res, ADMIN_ERR_NOT_FOUND, "saga '%s' (%s v%d) waits for no signal '%s'", id, def->name,
                         def->version, name);
    } else if (!strcmp(status, "completed") || !strcmp(status, "compensated") || !strcmp(status, "compensation_failed") ||
               !strcmp(status, "compensating")) {
        rc = admin_error(res, ADMIN_ERR_CONFLICT, "saga '%s' is %s; it waits for no signal any more", id, status);
    } else if ((past = signal_step_state(ctx, id, step, step_status, sizeof step_status)) != 0) {
        rc = past < 0 ? admin_error(res, ADMIN_ERR_UNAVAILABLE, "reading step '%s': %s", def->steps[step].name, step_status)
                      : admin_error(res, ADMIN_ERR_CONFLICT, "signal '%s' of saga '%s' was already received (step '%s' is %s)",
                                    name, id, def->steps[step].name, step_status);
    } else {
        rc = send_command(ctx, SAGA_CMD_SIGNAL, id, msg, NULL, res);
    }
    saga_definition_free(&def);
    json_decref(msg);
    return rc;
}

/* ---- POST /v1/topics/{topic}/pause, /resume ---- */

/* A participant topic's name as Kafka takes it: [A-Za-z0-9._-], 1-249. */
static int topic_name_ok(const char *t) {
    size_t n = strlen(t);
    if (n == 0 || n > 249) return 0;
    for (size_t i = 0; i < n; i++)
        if (!((t[i] >= 'a' && t[i] <= 'z') || (t[i] >= 'A' && t[i] <= 'Z') || (t[i] >= '0' && t[i] <= '9') ||
              t[i] == '.' || t[i] == '_' || t[i] == '-'))
            return 0;
    return 1;
}

/* The pause (or resume) goes to every shard's partition of saga.control:
 * each shard records it, whichever instance owns it now or later. */
int admin_post_pause(admin_ctx_t *ctx, const char *topic, bool paused, const admin_request_t *req,
                     admin_response_t *res) {
    int rc = 0;
    if (!topic_name_ok(topic))
        return admin_error(res, ADMIN_ERR_BAD_REQUEST, "'%.*s' is not a Kafka topic name (1-249 of A-Z a-z 0-9 . _ -)",
                           saga_utf8_prefix(topic, 64), topic);
    json_t *doc = body_object(req, 1, res, &rc);
    if (!doc) return rc;
    json_t *reason = json_object_get(doc, "reason");
    const char *key;
    json_t *v;
    json_object_foreach(doc, key, v) if (strcmp(key, "reason")) { /* the answer first: key lives in doc */
        rc = admin_error(res, ADMIN_ERR_BAD_REQUEST, "unknown member '%.*s' (the body may hold only 'reason')",
                         saga_utf8_prefix(key, 64), key);
        json_decref(doc);
        return rc;
    }
    if (reason && (!json_is_string(reason) || json_string_length(reason) > 512)) {
        json_decref(doc);
        return admin_error(res, ADMIN_ERR_BAD_REQUEST, "'reason' must be a string of at most 512 bytes");
    }
    const char *why_text = reason ? json_string_value(reason) : NULL;
    saga_command_kind_op_t kind = paused ? SAGA_CMD_PAUSE : SAGA_CMD_RESUME;
    int shards = admin_shard_count(ctx);
    if (!ctx->publish) {
        rc = saga_command_push(ctx->commands, kind, topic, NULL, why_text);
    } else {
        char message_id[SAGA_ID_MAX + 64], why[512] = "";
        saga_random_id("ctl-", message_id, sizeof message_id);
        json_t *msg = json_pack("{s:s, s:s, s:s, s:s}", "type", "saga.control", "message_id", message_id, "command",
                                saga_command_op_name(kind), "topic", topic);
        if (msg && why_text) json_object_set_new(msg, "reason", json_string(why_text));
        char *payload = msg ? saga_json_dump(msg) : NULL;
        json_decref(msg);
        if (!payload) rc = SAGA_ENOMEM;
        for (int p = 0; !rc && p < shards; p++)
            if (ctx->publish(ctx->publish_arg, p, topic, payload, why, sizeof why)) {
                rc = admin_shard_error(res, ADMIN_ERR_UNAVAILABLE, p,
                                       "the %s could not be handed to Kafka for shard %d (the shards before it have"
                                       " it; send it again): %s", paused ? "pause" : "resume", p, why);
                saga_free(payload);
                json_decref(doc);
                return rc;
            }
        saga_free(payload);
    }
    json_decref(doc);
    if (rc) return queue_error(res, rc);
    json_t *ans = json_pack("{s:s, s:b, s:i}", "topic", topic, "paused", paused, "shards", shards);
    if (!ans) return SAGA_ENOMEM;
    rc = admin_json_response(res, 202, ans);
    json_decref(ans);
    return rc;
}
