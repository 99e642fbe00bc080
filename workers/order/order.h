/* The order participant: ledger schema, seed loader and handlers. */
#ifndef SAGA_WORKER_ORDER_H
#define SAGA_WORKER_ORDER_H

#include "participant.h"

/* Static description of the worker; pass to participant_open/main. */
const participant_spec_t *order_worker_spec(void);

/* Deterministic test trigger (order.c, docs/PARTICIPANTS.md): off by default. */
void order_worker_set_test_triggers(int on);

#endif
