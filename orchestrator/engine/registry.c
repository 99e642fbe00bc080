/* The in-memory registry of loaded definitions: name and version to
 * saga_definition_t, the newest non-retired version by default. Pure. */
#include "definition.h"

#include <string.h>

#include "saga_alloc.h"
#include "saga_error.h"

struct saga_registry {
    saga_definition_t **defs;
    int count, cap;
};

saga_registry_t *saga_registry_new(void) { return saga_calloc(1, sizeof(saga_registry_t)); }

void saga_registry_free(saga_registry_t **reg) {
    if (!reg || !*reg) return;
    for (int i = 0; i < (*reg)->count; i++) saga_definition_free(&(*reg)->defs[i]);
    saga_free((*reg)->defs);
    saga_free(*reg);
    *reg = NULL;
}

int saga_registry_add(saga_registry_t *reg, saga_definition_t *def) {
    if (!reg || !def) {
        saga_definition_free(&def);
        return SAGA_EINVAL;
    }
    for (int i = 0; i < reg->count; i++) {
        const saga_definition_t *d = reg->defs[i];
        if (d->version == def->version && strcmp(d->name, def->name) == 0) {
            int rc = strcmp(d->hash, def->hash) == 0 ? 0 : SAGA_EEXISTS;
            saga_definition_free(&def);
            return rc;
        }
    }
    if (reg->count == reg->cap) {
        int cap = reg->cap ? reg->cap * 2 : 8;
        saga_definition_t **p = saga_realloc(reg->defs, (size_t)cap * sizeof *p);
        if (!p) {
            saga_definition_free(&def);
            return SAGA_ENOMEM;
        }
        reg->defs = p;
        reg->cap = cap;
    }
    reg->defs[reg->count++] = def;
    return 0;
}

const saga_definition_t *saga_registry_get(const saga_registry_t *reg, const char *name, int version) {
    if (!reg || !name) return NULL;
    const saga_definition_t *best = NULL;
    for (int i = 0; i < reg->count; i++) {
        const saga_definition_t *d = reg->defs[i];
        if (strcmp(d->name, name) != 0) continue;
        if (version > 0 && d->version == version) return d;
        if (version <= 0 && !d->retired && (!best || d->version > best->version)) best = d;
    }
    return best;
}

int saga_registry_count(const saga_registry_t *reg) { return reg ? reg->count : 0; }

const saga_definition_t *saga_registry_at(const saga_registry_t *reg, int i) {
    if (!reg || i < 0 || i >= reg->count) return NULL;
    return reg->defs[i];
}
