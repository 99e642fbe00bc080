/* Participant command processing: the decision for one command and the ledger transaction around it.
 * The ledger is in participant_ledger.c, commands and replies in participant_command.c,
 * the Kafka runner in participant_run.c, the CLI in participant_main.c. */
#include "participant.h"
#include "participant_internal.h"

#include "saga_alloc.h"
#include "saga_error.h"
#include "saga_json.h"
#include "saga_log.h"
#include "saga_utf8.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void participant_set_faults(participant_t *p, const participant_faults_t *f) {
    p->faults = *f;
    if (f->rng_seed) p->rng = f->rng_seed | 1;
}

long long participant_processed_count(const participant_t *p) { return p->processed; }

static double next_random(participant_t *p) {
    /* xorshift64*: fault injection only, never for ids. */
    p->rng ^= p->rng >> 12;
    p->rng ^= p->rng << 25;
    p->rng ^= p->rng >> 27;
    return (double)((p->rng * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

static int roll(participant_t *p, double rate) { return rate > 0 && next_random(p) < rate; }

static const participant_handler_t *find_handler(const participant_t *p, const char *action,
                                                 participant_kind_t kind, int *wrong_kind) {
    *wrong_kind = 0;
    for (const participant_handler_t *h = p->spec->handlers; h && h->action; h++) {
        if (strcmp(h->action, action)) continue;
        if (h->kind == kind) return h;
        *wrong_kind = 1;
    }
    return NULL;
}

static int savepoint(participant_t *p, const char *sql) { return participant_exec_sql(p->db, sql, NULL, 0); }

static void log_cmd(saga_log_level_t lvl, const participant_t *p, const participant_parsed_t *c, const char *fmt,
                    ...) __attribute__((format(printf, 4, 5)));
static void log_cmd(saga_log_level_t lvl, const participant_t *p, const participant_parsed_t *c, const char *fmt,
                    ...) {
    if (!saga_log_enabled(lvl)) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    saga_utf8_trim_cut(msg);
    saga_log_ctx_t ctx = {c->cmd.saga_id, c->cmd.step, NULL};
    saga_log(lvl, p->spec->name, &ctx, "%s", msg);
}

/* The decision for one valid command; inside the savepoint "cmd". */
static int decide(participant_t *p, participant_parsed_t *c, participant_reply_t *out) {
    sqlite3 *db = p->db;
    participant_command_t *cmd = &c->cmd;

    char *stored = NULL;
    char status[16] = "";
    int rc = participant_lookup_processed(db, cmd->idempotency_key, &stored, status, sizeof status);
    if (rc < 0) return rc;
    if (rc == 1) {
        rc = participant_resend_stored(c, stored, out);
        saga_free(stored);
        log_cmd(SAGA_LOG_INFO, p, c, "duplicate %s %s (attempt %lld): stored %s reply re-sent, nothing ran",
                participant_kind_name(cmd->kind), cmd->action, cmd->attempt, status);
        return rc;
    }

    int wrong_kind;
    const participant_handler_t *h = find_handler(p, cmd->action, cmd->kind, &wrong_kind);
    if (!h) {
        log_cmd(SAGA_LOG_ERROR, p, c, "unknown %s '%s' (message %s)%s", participant_kind_name(cmd->kind), cmd->action,
                cmd->message_id, wrong_kind ? ": registered with the other kind" : "");
        char msg[256];
        snprintf(msg, sizeof msg, "%s does not handle %s '%s'", p->spec->name, participant_kind_name(cmd->kind),
                 cmd->action);
        saga_utf8_trim_cut(msg);
        rc = participant_unrecorded_reply(p, c, out, PARTICIPANT_FAILURE, "UNKNOWN_ACTION", msg);
        return rc ? rc : SAGA_EPARSE;
    }

    participant_result_t res;
    memset(&res, 0, sizeof res);
    res.status = PARTICIPANT_SUCCESS;
    char *sibling_key = NULL, *sibling_reply = NULL;
    json_t *action_reply = NULL;
    int noop = 0, ran = 0;

    if (cmd->kind == PARTICIPANT_ACTION) {
        rc = participant_lookup_sibling(db, cmd->saga_id, cmd->step, "compensation", NULL, NULL, NULL, 0);
        if (rc < 0) goto done;
        if (rc == 1) {
            log_cmd(SAGA_LOG_WARN, p, c, "late action %s (attempt %lld) after its compensation: refused, nothing ran",
                    cmd->action, cmd->attempt);
            participant_fail(&res, "COMPENSATED_BEFORE_ACTION",
                             "step %s of saga %s was already compensated; the action is refused", cmd->step,
                             cmd->saga_id);
            noop = 1;
        }
    } else {
        char sib_status[16] = "";
        rc = participant_lookup_sibling(db, cmd->saga_id, cmd->step, "action", &sibling_key, &sibling_reply,
                                        sib_status, sizeof sib_status);
        if (rc < 0) goto done;
        if (rc == 0 || strcmp(sib_status, "success")) {
            log_cmd(SAGA_LOG_INFO, p, c, "compensation %s: the action %s here, no-op recorded", cmd->action,
                    rc == 0 ? "never ran" : "did not succeed");
            noop = 1;
        } else {
            action_reply = saga_json_parse(sibling_reply, strlen(sibling_reply), NULL, 0);
            json_t *o = action_reply ? json_object_get(action_reply, "output") : NULL;
            cmd->action_key = sibling_key;
            cmd->action_output = o ? o : json_null();
        }
    }
    rc = 0;

    if (!noop) {
        if (roll(p, p->faults.retry_rate)) {
            participant_retry(&res, "INJECTED_TRANSIENT", "fault injection: transient failure (--retry-rate)");
        } else if (cmd->kind == PARTICIPANT_ACTION && roll(p, p->faults.fail_rate)) {
            participant_fail(&res, "INJECTED_FAILURE", "fault injection: business failure (--fail-rate)");
            noop = 1;
        } else {
            if ((rc = savepoint(p, "SAVEPOINT handler"))) goto done;
            rc = h->fn(db, cmd, &res, p->spec->user);
            ran = 1;
            if (rc < 0 || res.status != PARTICIPANT_SUCCESS) {
                /* Business failure, transient or ledger error: the handler's
                 * changes are undone. */
                if (savepoint(p, "ROLLBACK TO handler") || savepoint(p, "RELEASE handler")) rc = SAGA_ESTORE;
            } else if (savepoint(p, "RELEASE handler")) {
                rc = SAGA_ESTORE;
            }
            if (rc < 0) {
                log_cmd(SAGA_LOG_ERROR, p, c, "%s %s: ledger error (%s)", participant_kind_name(cmd->kind),
                        cmd->action, saga_strerror(rc));
                goto done;
            }
        }
    }

    if (res.status == PARTICIPANT_RETRY) {
        log_cmd(SAGA_LOG_WARN, p, c, "%s %s attempt %lld: transient %s: %s (not recorded)",
                participant_kind_name(cmd->kind), cmd->action, cmd->attempt, res.error_code, res.error_message);
        rc = participant_unrecorded_reply(p, c, out, PARTICIPANT_RETRY, res.error_code, res.error_message);
        goto done;
    }
    json_t *output = res.output;
    json_t *noop_out = NULL;
    if (res.status == PARTICIPANT_SUCCESS && noop) {
        noop_out = json_pack("{s:b}", "noop", 1);
        output = noop_out;
    }
    rc = participant_record_outcome(p, c, res.status, output, res.error_code, res.error_message, noop, out);
    json_decref(noop_out);
    if (!rc)
        log_cmd(res.status == PARTICIPANT_SUCCESS ? SAGA_LOG_DEBUG : SAGA_LOG_INFO, p, c,
                "%s %s attempt %lld: %s%s%s%s", participant_kind_name(cmd->kind), cmd->action, cmd->attempt,
                participant_status_name(res.status), res.status == PARTICIPANT_SUCCESS ? "" : " ",
                res.error_code, ran ? "" : " (handler not run)");
done:
    json_decref(res.output);
    json_decref(action_reply);
    saga_free(sibling_key);
    saga_free(sibling_reply);
    return rc;
}

static void sleep_ms(long long ms) {
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {}
}

int participant_batch_process(participant_t *p, const char *bytes, size_t len, const char *where,
                              participant_reply_t *out) {
    memset(out, 0, sizeof *out);
    if (!where) where = "(direct)";
    participant_parsed_t c;
    char why[300];
    int rc = participant_parse_command(bytes, len, &c, why, sizeof why);
    if (rc) {
        saga_log_ctx_t ctx = {c.cmd.saga_id, c.cmd.step, NULL};
        saga_log(SAGA_LOG_ERROR, p->spec->name, &ctx, "malformed command at %s skipped: %s", where, why);
        if (participant_reply_readable(&c) &&
            participant_unrecorded_reply(p, &c, out, PARTICIPANT_FAILURE, "MALFORMED_COMMAND", why))
            participant_reply_clear(out);
        json_decref(c.doc);
        return SAGA_EPARSE;
    }
    if (!p->in_batch || p->batch_broken) {
        rc = SAGA_ESTORE;
    } else {
        if (p->faults.delay_ms > 0) sleep_ms(p->faults.delay_ms);
        rc = savepoint(p, "SAVEPOINT cmd");
        if (!rc) {
            rc = decide(p, &c, out);
            if (rc < 0 && rc != SAGA_EPARSE) {
                participant_reply_clear(out);
                if (savepoint(p, "ROLLBACK TO cmd")) rc = SAGA_ESTORE;
            }
            if (savepoint(p, "RELEASE cmd")) rc = SAGA_ESTORE;
        }
        /* An I/O error or a full disk can make SQLite roll the whole
         * transaction back: the batch cannot be committed any more. */
        if (sqlite3_get_autocommit(p->db)) p->batch_broken = 1;
    }
    if (rc == SAGA_ESTORE || (rc < 0 && rc != SAGA_EPARSE)) {
        participant_reply_clear(out);
        saga_log_ctx_t ctx = {c.cmd.saga_id, c.cmd.step, NULL};
        saga_log(SAGA_LOG_ERROR, p->spec->name, &ctx, "command %s at %s: %s%s%s; nothing applied, replying retry",
                 c.cmd.message_id, where, saga_strerror(rc), rc == SAGA_ESTORE ? ": " : "",
                 rc == SAGA_ESTORE ? sqlite3_errmsg(p->db) : "");
        if (participant_unrecorded_reply(p, &c, out, PARTICIPANT_RETRY, "LEDGER_ERROR",
                                         "the participant's ledger failed"))
            participant_reply_clear(out);
        rc = SAGA_ESTORE;
    } else if (rc == 0) {
        p->processed++;
        p->batch_count++;
        if (roll(p, p->faults.no_reply_rate)) {
            log_cmd(SAGA_LOG_WARN, p, &c, "fault injection: reply %s not sent (--no-reply-rate)",
                    out->message_id ? out->message_id : "?");
            saga_free(out->body);
            out->body = NULL;
            out->suppressed = 1;
        }
    }
    json_decref(c.doc);
    return rc;
}

int participant_batch_begin(participant_t *p) {
    if (p->in_batch) return SAGA_ESTATE;
    if (participant_exec_sql(p->db, "BEGIN IMMEDIATE", NULL, 0)) return SAGA_ESTORE;
    p->in_batch = 1;
    p->batch_broken = 0;
    p->batch_count = 0;
    return 0;
}

void participant_batch_rollback(participant_t *p) {
    if (!p->in_batch) return;
    if (!sqlite3_get_autocommit(p->db)) participant_exec_sql(p->db, "ROLLBACK", NULL, 0);
    p->processed -= p->batch_count;
    p->in_batch = 0;
    p->batch_broken = 0;
    p->batch_count = 0;
}

int participant_batch_commit(participant_t *p) {
    if (!p->in_batch) return SAGA_ESTATE;
    if (p->batch_broken || participant_exec_sql(p->db, "COMMIT", NULL, 0)) {
        LOG_ERROR(p->spec->name, "ledger commit failed: %s; batch rolled back", sqlite3_errmsg(p->db));
        participant_batch_rollback(p);
        return SAGA_ESTORE;
    }
    p->in_batch = 0;
    p->batch_count = 0;
    if (p->faults.crash_after > 0 && p->processed >= p->faults.crash_after) {
        LOG_ERROR(p->spec->name, "fault injection: abort() after %lld commands (--crash-after)", p->processed);
        abort();
    }
    return 0;
}

int participant_process(participant_t *p, const char *bytes, size_t len, const char *where,
                        participant_reply_t *out) {
    memset(out, 0, sizeof *out);
    int brc = participant_batch_begin(p);
    int rc = participant_batch_process(p, bytes, len, where, out);
    if (brc) return rc == SAGA_EPARSE ? rc : SAGA_ESTORE;
    if (participant_batch_commit(p)) {
        if (rc == SAGA_EPARSE) return rc; /* nothing was written for it */
        /* The outcome is lost with the transaction: answer transient so
         * sagad asks again. */
        participant_lost_reply(p, bytes, len, out);
        return SAGA_ESTORE;
    }
    return rc;
}

void participant_lost_reply(participant_t *p, const char *bytes, size_t len, participant_reply_t *out) {
    participant_reply_clear(out);
    participant_parsed_t c;
    char why[300];
    if (participant_parse_command(bytes, len, &c, why, sizeof why) == 0 &&
        participant_unrecorded_reply(p, &c, out, PARTICIPANT_RETRY, "LEDGER_ERROR",
                                     "the participant's ledger commit failed"))
        participant_reply_clear(out);
    json_decref(c.doc);
}
