/* Private state of a participant; shared by the library's own files only. */
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

/* A retry reply (LEDGER_ERROR) for raw command bytes whose outcome was lost
 * because the commit failed; out is cleared when none can be built. */
void participant_lost_reply(participant_t *p, const char *bytes, size_t len, participant_reply_t *out);

#endif
