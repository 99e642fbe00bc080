/* The notification participant: ledger schema, seed loader and handlers. */
#ifndef SAGA_WORKER_NOTIFICATION_H
#define SAGA_WORKER_NOTIFICATION_H

#include "participant.h"

/* Static description of the worker; pass to participant_open/main. */
const participant_spec_t *notification_worker_spec(void);

/* Delivers every notification by POSTing it to url (NULL or "": record
 * only) with this timeout (<= 0: keep the current one, 5000 ms by
 * default). Call curl_global_init first. 0 or SAGA_ENOMEM. */
int notification_worker_set_webhook(const char *url, long timeout_ms);

#endif
