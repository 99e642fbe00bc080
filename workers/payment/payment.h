/* The payment participant: ledger schema, seed loader and handlers. */
#ifndef SAGA_WORKER_PAYMENT_H
#define SAGA_WORKER_PAYMENT_H

#include "participant.h"

/* Static description of the worker; pass to participant_open/main. */
const participant_spec_t *payment_worker_spec(void);

/* Deterministic test triggers (payment.c, docs/PARTICIPANTS.md): off by
 * default. slow_ms <= 0 keeps the current delay (1500 ms). */
void payment_worker_set_test_triggers(int on, long long slow_ms);

#endif
