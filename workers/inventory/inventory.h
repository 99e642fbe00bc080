/* The inventory participant: ledger schema, seed loader and handlers. */
#ifndef SAGA_WORKER_INVENTORY_H
#define SAGA_WORKER_INVENTORY_H

#include "participant.h"

/* Static description of the worker; pass to participant_open/main. */
const participant_spec_t *inventory_worker_spec(void);

#endif
