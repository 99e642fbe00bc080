/* The notification participant: ledger schema, seed loader and handlers. */
#ifndef SAGA_WORKER_NOTIFICATION_H
#define SAGA_WORKER_NOTIFICATION_H

#include "participant.h"

/* Static description of the worker; pass to participant_open/main. */
const participant_spec_t *notification_worker_spec(void);

#endif
