/* The payment participant: ledger schema, seed loader and handlers. */
#ifndef SAGA_WORKER_PAYMENT_H
#define SAGA_WORKER_PAYMENT_H

#include "participant.h"

/* Static description of the worker; pass to participant_open/main. */
const participant_spec_t *payment_worker_spec(void);

#endif
