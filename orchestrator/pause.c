/* Paused participant topics (POST /v1/topics/{topic}/pause, /resume): each
 * shard records the pause (paused_topics, its changelog record
 * pause/TOPIC), and the loop holds every command to a topic any owned shard
 * has paused, as an open circuit breaker that only an operator closes. */
#include "sagad.h"

#include <stdio.h>
#include <string.h>

#include "changelog.h"
#include "saga_alloc.h"
#include "saga_error.h"
#include "saga_log.h"

int sagad_pause_apply(sagad_t *d, sagad_shard_t *sh, const char *topic, bool paused, const char *reason, int64_t now) {
    int rc = paused ? saga_store_pause_set(sh->store, topic, now, reason) : saga_store_pause_clear(sh->store, topic);
    if (!rc && d->cfg.changelog_topic) {
        char key[300];
        char *value = paused ? saga_changelog_encode_pause(topic, now, reason) : NULL;
        if (saga_changelog_pause_key(topic, key, sizeof key) < 0) rc = SAGA_EINVAL;
        else if (paused && !value) rc = SAGA_ENOMEM;
        else rc = saga_store_outbox_add_to(sh->store, d->cfg.changelog_topic, sh->partition, key, "{}", value,
                                           value ? strlen(value) : 0, now);
        saga_free(value);
    }
    if (!rc) d->pause_dirty = true; /* the flags follow once the transaction is in */
    return rc;
}

static void mark(const char *topic, int64_t paused_at, const char *reason, void *user) {
    (void)paused_at;
    (void)reason;
    sagad_t *d = user;
    if (saga_flow_pause(d->flow, topic, true)) LOG_ERROR("flow", "out of memory pausing %s", topic);
}

int sagad_pause_sync(sagad_t *d) {
    if (!d->flow) return 0;
    saga_flow_unpause_all(d->flow);
    for (int p = 0; p < d->shard_count; p++) {
        if (!d->shards[p].store) continue;
        int n = saga_store_paused_topics(d->shards[p].store, mark, d);
        if (n < 0) return n;
    }
    d->pause_dirty = false;
    saga_flow_topic_stats_t t;
    char list[1024] = "";
    size_t used = 0;
    for (int i = 0; saga_flow_stats(d->flow, i, &t); i++)
        if (t.paused && used + strlen(t.topic) + 3 < sizeof list)
            used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", used ? ", " : "", t.topic);
    if (strcmp(list, d->paused_logged)) {
        LOG_INFO("flow", "paused topics: %s", list[0] ? list : "none");
        snprintf(d->paused_logged, sizeof d->paused_logged, "%s", list);
    }
    return 0;
}
