/* sagad's saga.changelog records: one outbox row per saga an iteration changed, whose value the relay encodes when it sends it, and a definition record before a shard's first saga of that definition, all to the shard's own partition (docs/DESIGN.md, "Changelog record"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "changelog.h"
#include "sagad.h"
#include "saga_alloc.h"
#include "saga_error.h"
#include "saga_log.h"

#define DEF_META_PREFIX "def_written/"

static int cmp_touched(const void *a, const void *b) {
    return strcmp(((const sagad_touched_t *)a)->id, ((const sagad_touched_t *)b)->id);
}

static bool def_known(const sagad_shard_t *sh, const char *key) {
    for (int i = 0; i < sh->defs_written_count; i++)
        if (!strcmp(sh->defs_written[i], key)) return true;
    return false;
}

static int def_remember(sagad_shard_t *sh, const char *key) {
    if (sh->defs_written_count == sh->defs_written_cap) {
        int cap = sh->defs_written_cap ? sh->defs_written_cap * 2 : 16;
        char **bigger = saga_realloc(sh->defs_written, (size_t)cap * sizeof *bigger);
        if (!bigger) return SAGA_ENOMEM;
        sh->defs_written = bigger;
        sh->defs_written_cap = cap;
    }
    char *copy = saga_strdup(key);
    if (!copy) return SAGA_ENOMEM;
    sh->defs_written[sh->defs_written_count++] = copy;
    return 0;
}

/* A record too large for --max-message-bytes is produced anyway, without
 * the limit (the changelog topic may take larger messages: give it a larger
 * max.message.bytes); never dropped silently: logged, counted, alerted. If
 * the broker refuses it too, the relay parks it (outbox_parked alert,
 * changelog_refused counter): that saga cannot be restored from Kafka. */
static int encode(sagad_t *d, sagad_shard_t *sh, const char *key, const char *def, int version, char **out,
                  size_t *len) {
    char err[512] = "";
    size_t limit = d->engine.max_message_bytes;
    int rc = def ? saga_changelog_encode_definition(sh->store, def, version, limit, out, len, err, sizeof err)
                 : saga_changelog_encode(sh->store, key, limit, out, len, err, sizeof err);
    if (rc != SAGA_EINVAL) {
        if (rc && rc != SAGA_ENOTFOUND) LOG_ERROR("changelog", "shard %d: record of %s: %s", sh->partition, key, err);
        return rc;
    }
    rc = def ? saga_changelog_encode_definition(sh->store, def, version, 0, out, len, err, sizeof err)
             : saga_changelog_encode(sh->store, key, 0, out, len, err, sizeof err);
    if (rc) return rc;
    d->counters.changelog_too_large++;
    saga_log_ctx_t ctx = {.saga_id = def ? NULL : key};
    saga_log(SAGA_LOG_ERROR, "changelog", &ctx,
             "shard %d: the changelog record of %s is %zu bytes, over --max-message-bytes %zu: produced anyway "
             "(%s needs max.message.bytes above it, else the record is parked and %s cannot be restored)",
             sh->partition, key, *len, limit, d->cfg.changelog_topic, key);
    sagad_raise_alert(d, "changelog_record_too_large",
                      json_pack("{s:s, s:i, s:I, s:I}", "key", key, "shard", sh->partition, "bytes",
                                (json_int_t)*len, "limit", (json_int_t)limit));
    return 0;
}

/* The definition record of (def, version), once per shard file. */
static int ensure_definition(sagad_t *d, sagad_shard_t *sh, const char *def, int version, int64_t now) {
    char key[SAGA_NAME_MAX + 32], meta[SAGA_NAME_MAX + 48];
    if (saga_changelog_definition_key(def, version, key, sizeof key) < 0) return SAGA_EINVAL;
    if (def_known(sh, key)) return 0;
    snprintf(meta, sizeof meta, DEF_META_PREFIX "%s", key);
    long long v;
    int rc = saga_store_meta_get(sh->store, meta, &v); /* 1: set, 0: not */
    if (rc < 0) return rc;
    if (rc == 1) return def_remember(sh, key);
    char *value = NULL;
    size_t len = 0;
    rc = encode(d, sh, key, def, version, &value, &len);
    if (rc == SAGA_ENOTFOUND) return 0; /* not stored: the saga record says which; nothing to write */
    if (!rc) rc = saga_store_outbox_add_to(sh->store, d->cfg.changelog_topic, sh->partition, key, "{}", value, len, now);
    saga_free(value);
    if (!rc) rc = saga_store_meta_set(sh->store, meta, now);
    if (!rc) rc = def_remember(sh, key);
    return rc;
}

int sagad_changelog_flush(sagad_t *d, sagad_shard_t *sh, int64_t now) {
    if (!d->cfg.changelog_topic || sh->touched_count == 0) {
        sh->touched_count = 0;
        return 0;
    }
    qsort(sh->touched, (size_t)sh->touched_count, sizeof *sh->touched, cmp_touched);
    int rc = 0;
    for (int i = 0; !rc && i < sh->touched_count; i++) {
        const sagad_touched_t *t = &sh->touched[i];
        if (i > 0 && !strcmp(t->id, sh->touched[i - 1].id)) continue; /* once per saga per iteration */
        if (t->def[0]) rc = ensure_definition(d, sh, t->def, t->version, now);
        if (!rc) rc = saga_store_outbox_add_record(sh->store, d->cfg.changelog_topic, sh->partition, t->id, now);
    }
    sh->touched_count = 0;
    return rc;
}

int sagad_changelog_record(sagad_t *d, sagad_shard_t *sh, const char *saga_id, char **value, size_t *len) {
    *value = NULL;
    *len = 0;
    /* committed state, or the iteration's, which commits before the Kafka
     * transaction does (a rollback resets the cache: sagad_rollback_shards) */
    int rc = saga_changelog_cache_history(sh->store);
    if (rc) return rc;
    return encode(d, sh, saga_id, NULL, 0, value, len);
}

void sagad_changelog_forget(sagad_shard_t *sh, bool committed) {
    sh->touched_count = 0;
    if (committed) {
        sh->defs_committed = sh->defs_written_count;
        return;
    }
    while (sh->defs_written_count > sh->defs_committed) saga_free(sh->defs_written[--sh->defs_written_count]);
}
