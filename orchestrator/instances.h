/* The cluster's instance registry (docs/DESIGN.md, "Cluster"): every sagad
 * instance of a group publishes under "<group>/<instance id>" to the
 * compacted topic saga.instances (one partition) the record
 *   {"group", "instance", "admin_url", "shards": [p, ...], "at": ms}
 * when the shards it owns change and every 5 s, a tombstone when it stops,
 * and reads the topic whole. The admin API asks it who owns a shard, to
 * send an operator there (307). A thread of its own: a producer and a
 * group-less consumer; nothing here touches the shards. */
#ifndef SAGAD_INSTANCES_H
#define SAGAD_INSTANCES_H

#include <jansson.h>
#include <stddef.h>

#include "saga_config.h"

typedef struct sagad_instances sagad_instances_t; /* struct sagad_instances: opaque */

typedef struct {
    const char *bootstrap;
    const saga_kv_list_t *props;  /* -X overrides */
    const char *topic;            /* saga.instances */
    const char *group;
    const char *instance_id;
    const char *admin_url;        /* this instance's admin API, as others reach it */
    const unsigned char *owned;   /* owned[p], read with __atomic loads (sagad_t.owned) */
    int shards;                   /* P */
    const char *control_topic;    /* saga.control: operator commands (sagad_instances_publish) */
} sagad_instances_config_t;

/* Starts the thread; NULL with err set when a client cannot be made. */
sagad_instances_t *sagad_instances_start(const sagad_instances_config_t *cfg, char *err, size_t errlen);

/* The admin URL of the other instance that owns shard p (the newest record
 * naming it, at most 30 s old) into url: 0, or -1 when none is known. The
 * signature of the admin API's owner_of callback (arg: the registry). */
int sagad_instances_owner(void *registry, int shard, char *url, size_t len);

/* Produces payload to partition `shard` of the control topic, keyed,  and
 * waits for its acknowledgement (message.timeout.ms at most): 0, or -1 with why. Any
 * thread (the admin API's). The signature of the admin API's publish
 * callback (arg: the registry, whose producer it uses). */
int sagad_instances_publish(void *registry, int shard, const char *key, const char *payload, char *why, size_t whylen);

/* sagad_instances_publish for n messages: produces them all, then waits for
 * every acknowledgement; failed[i] set for each not acknowledged. Returns
 * how many failed (why: the first reason). The admin API's publish_batch
 * callback (the bulk commands). */
int sagad_instances_publish_batch(void *registry, int n, const int *shards, const char *const *keys,
                                  const char *const *payloads, unsigned char *failed, char *why, size_t whylen);

/* [{instance, admin_url, shards, age_ms, self}] of the group, for stats. */
json_t *sagad_instances_json(sagad_instances_t *r);

/* Publishes the tombstone, stops the thread, frees everything. */
void sagad_instances_stop(sagad_instances_t **r);

#endif
