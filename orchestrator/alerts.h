/* Alerts to an operator's webhook (--alert-webhook): JSON POSTs
 * {"type":"saga.alert","alert":KIND,"at":TIME,...fields} sent by a
 * background thread with retries (exponential backoff from 0.5 s, 6 tries;
 * a 4xx other than 408/429 is not retried). */
#ifndef SAGA_ALERTS_H
#define SAGA_ALERTS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct saga_alerter saga_alerter_t;

/* NULL with err on failure. At most max_queue alerts wait; more are
 * dropped (and logged). */
saga_alerter_t *saga_alerter_start(const char *url, size_t max_queue, char *err, size_t errlen);

/* Queues an alert; steals `fields` (an object, may be NULL). No-op when
 * a is NULL (no webhook configured). Never blocks on the network. */
void saga_alert(saga_alerter_t *a, const char *kind, json_t *fields);

/* Sends what is queued (shorter retries), then stops the thread. */
void saga_alerter_stop(saga_alerter_t **a);

#endif
