/* Private state of a participant and the functions its files share; for the library's own files only. */
#ifndef SAGA_PARTICIPANT_INTERNAL_H
#define SAGA_PARTICIPANT_INTERNAL_H

#include "participant.h"

struct participant {
    const participant_spec_t *spec;
    sqlite3 *db;
    participant_faults_t faults;
    unsigned long long rng;   /* fault injection only */
    long long processed;      /* committed commands, duplicates included */
    long long batch_count;    /* commands in the open batch */
    int in_batch;
    int batch_broken;         /* SQLite rolled the batch back on its own */
};

/* The readable part of a command (all borrowed from `doc`). */
typedef struct {
    json_t *doc;
    participant_command_t cmd;
    const char *reply_to;
    int reply_partition;      /* "reply_partition" when an integer >= 0, else -1 */
    int kind_ok, attempt_ok;
} participant_parsed_t;

/* ---- participant.c: command processing ---- */

/* A retry reply (LEDGER_ERROR) for raw command bytes whose outcome was lost
 * because the commit failed; out is cleared when none can be built. */
void participant_lost_reply(participant_t *p, const char *bytes, size_t len, participant_reply_t *out);

/* ---- participant_command.c: commands and replies ---- */

/* "action" or "compensation". */
const char *participant_kind_name(participant_kind_t k);
/* Parses a command: 0, or SAGA_EPARSE with the reason in why; readable fields stay in c; json_decref c->doc. */
int participant_parse_command(const char *bytes, size_t len, participant_parsed_t *c, char *why, size_t whylen);
/* 1 when c claims to be a saga.command and names whom to answer (message_id, saga_id, step, reply_to). */
int participant_reply_readable(const participant_parsed_t *c);
/* The message_id "r-<idempotency_key>/<attempt>" of a recorded reply (saga_free); NULL when out of memory. */
char *participant_reply_id(const participant_parsed_t *c);
/* A saga.reply object for c (NULL when out of memory); output (borrowed, may be NULL) only for success. */
json_t *participant_build_reply(const participant_parsed_t *c, const char *message_id, participant_status_t st,
                                const json_t *output, const char *code, const char *msg);
/* Fills out from reply (consumed; NULL gives SAGA_ENOMEM): body, message_id, topic, key, status. 0 or negative. */
int participant_finish_reply(participant_reply_t *out, const participant_parsed_t *c, json_t *reply,
                             participant_status_t st);
/* A reply that is not recorded (malformed command, transient outcome) into out; 0 or negative. */
int participant_unrecorded_reply(participant_t *p, const participant_parsed_t *c, participant_reply_t *out,
                                 participant_status_t st, const char *code, const char *msg);
/* Re-renders a stored reply for this delivery of c (ids, attempt) into out, marked duplicate; 0 or negative. */
int participant_resend_stored(const participant_parsed_t *c, const char *stored, participant_reply_t *out);

/* ---- participant_ledger.c: the SQLite side ---- */

/* Runs SQL text with sqlite3_exec: 0, or SAGA_ESTORE with the reason in err (logged when err is NULL). */
int participant_exec_sql(sqlite3 *db, const char *sql, char *err, size_t errlen);
/* The processed row of key: 1 (*reply_out the stored reply, saga_free; status copied), 0 none, <0 error. */
/* Finalizes the statements this thread cached for db (they are cached per
 * thread): participant_run calls it as it ends, so a participant run on
 * another thread than the one that closes it leaks nothing. */
void participant_drop_statements(sqlite3 *db);

int participant_lookup_processed(sqlite3 *db, const char *key, char **reply_out, char *status_out,
                                 size_t status_len);
/* The processed row of `kind` for the same saga step: 1 (outs may be NULL; strings saga_free), 0 none, <0 error. */
int participant_lookup_sibling(sqlite3 *db, const char *saga_id, const char *step, const char *kind,
                               char **key_out, char **reply_out, char *status_out, size_t status_len);
/* Inserts c's processed row holding its reply and renders that reply into out; 0 or negative. */
int participant_record_outcome(participant_t *p, const participant_parsed_t *c, participant_status_t st,
                               const json_t *output, const char *code, const char *msg, int noop,
                               participant_reply_t *out);

#endif
