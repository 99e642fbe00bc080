/* Saga definitions: the typed form of the sagas/ JSON files (see docs/DEFINITIONS.md
 * and schemas/saga-definition.schema.json). Pure: no I/O except the
 * directory loader at the bottom, which lives in definition_dir.c. */
#ifndef SAGA_DEFINITION_H
#define SAGA_DEFINITION_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SAGA_NAME_MAX 128
#define SAGA_MAX_STEPS 64
#define SAGA_MAX_SEARCH 8          /* search attributes per definition */
#define SAGA_SEARCH_NAME_MAX 64    /* bytes of an attribute's name */
#define SAGA_SEARCH_VALUE_MAX 256  /* bytes of a value; a longer one is cut on a character boundary */

typedef enum { SAGA_JITTER_FULL, SAGA_JITTER_NONE } saga_jitter_t;

typedef struct {
    int max_attempts;        /* >= 1; 1 means no retry */
    int64_t initial_backoff_ms;
    double multiplier;       /* >= 1 */
    int64_t max_backoff_ms;  /* >= initial_backoff_ms */
    saga_jitter_t jitter;
} saga_retry_policy_t;

/* What a step does: send a command to a participant (the default), wait
 * for a named signal from outside (an approval, a callback), or run a
 * child saga of another definition. */
#define SAGA_STEP_KIND_MAP(X) X(COMMAND, "command") X(SIGNAL, "signal") X(CHILD, "saga")

typedef enum {
#define SAGA_STEP_KIND_ENUM(name, str) SAGA_STEP_KIND_##name,
    SAGA_STEP_KIND_MAP(SAGA_STEP_KIND_ENUM)
#undef SAGA_STEP_KIND_ENUM
} saga_step_kind_t;

typedef struct {
    char name[SAGA_NAME_MAX];
    saga_step_kind_t kind;
    char signal[SAGA_NAME_MAX];       /* SIGNAL: the signal it waits for (unique in the definition) */
    char child[SAGA_NAME_MAX];        /* CHILD: the definition of the child saga it runs */
    int child_version;                /* CHILD: its version, 0: the newest loaded when it starts */
    char topic[256];
    char action[SAGA_NAME_MAX];
    char compensation[SAGA_NAME_MAX]; /* "" when the step has nothing to undo */
    json_t *payload;                  /* template tree, owned; never NULL ({} default); CHILD: the
                                         child's input */
    json_t *compensation_payload;     /* owned; NULL: use payload */
    int64_t timeout_ms;               /* SIGNAL: 0 = waits until the saga's deadline, if any */
    saga_retry_policy_t retry;
    saga_retry_policy_t compensation_retry;
    int after[SAGA_MAX_STEPS];        /* indexes of steps that must succeed first */
    int after_count;
} saga_step_def_t;

/* A search attribute: its name and its template (a string borrowed from
 * the definition's source), rendered once when a saga starts. */
typedef struct {
    char name[SAGA_SEARCH_NAME_MAX + 1];
    const json_t *tmpl;
} saga_search_def_t;

typedef struct saga_definition {
    char name[SAGA_NAME_MAX];
    int version;
    char description[512];
    int64_t timeout_ms;               /* saga deadline; 0 = none */
    saga_step_def_t steps[SAGA_MAX_STEPS];
    int step_count;
    saga_search_def_t search[SAGA_MAX_SEARCH];
    int search_count;
    const json_t *output;             /* "output": the template of what a completed saga gives
                                         the parent that ran it as a child (borrowed from source);
                                         NULL: {} */
    char hash[65];                    /* SHA-256 hex of the canonical JSON */
    bool retired;                     /* no longer in the definitions directory: kept
                                         only for sagas that started on it */
    json_t *source;                   /* the JSON as loaded, owned */
} saga_definition_t;

/* One validation problem: where (JSON pointer) and what. */
typedef struct {
    char pointer[256];
    char message[256];
    int line, column;                 /* for JSON syntax errors, else 0 */
} saga_def_error_t;

typedef struct {
    saga_def_error_t items[32];
    int count;                        /* may exceed 32: only the first 32 are kept */
    bool stored;                      /* in: the definition comes from the database (an
                                         earlier sagad accepted it and sagas may run on
                                         it): rules added since are not applied (a
                                         compensation_payload reading its own step's
                                         output without a default) */
} saga_def_errors_t;

/* Decodes and validates a definition from parsed JSON. Every problem is
 * appended to errs (all of them, not only the first). Returns the new
 * definition (caller frees with saga_definition_free) or NULL when errs has
 * at least one entry. Does not take ownership of json. */
saga_definition_t *saga_definition_from_json(json_t *json, saga_def_errors_t *errs);

/* Parses text then validates; syntax errors carry line and column. */
saga_definition_t *saga_definition_parse(const char *text, size_t len, saga_def_errors_t *errs);

void saga_definition_free(saga_definition_t **def);

/* A search attribute name: a letter, then letters, digits or '_', at
 * most SAGA_SEARCH_NAME_MAX bytes. */
bool saga_search_name_ok(const char *name, size_t len);

/* The search attributes of a saga of def with this id and input: an
 * object {NAME: "value"} (values are strings: a number or other JSON value
 * becomes its compact JSON text, cut to SAGA_SEARCH_VALUE_MAX bytes); an
 * attribute whose template has no value (absent or null) is left out.
 * NULL when def declares none or memory runs out. Pure (search.c). */
json_t *saga_search_render(const saga_definition_t *def, const char *saga_id, const json_t *input);

/* Index of the step called name, or -1. */
int saga_definition_step_index(const saga_definition_t *def, const char *name);
/* Index of the signal step waiting for signal `name`, or -1. */
int saga_definition_signal_step(const saga_definition_t *def, const char *name);

/* A set of definitions, looked up by (name, version) or the newest. */
typedef struct saga_registry saga_registry_t;

saga_registry_t *saga_registry_new(void);
void saga_registry_free(saga_registry_t **reg);
/* Takes ownership of def. Returns 0, or SAGA_EEXISTS when (name, version)
 * is already there with another hash (def is then freed). */
int saga_registry_add(saga_registry_t *reg, saga_definition_t *def);
/* version 0 = the newest that is not retired. Borrowed pointer, valid
 * while reg lives. */
const saga_definition_t *saga_registry_get(const saga_registry_t *reg, const char *name, int version);
int saga_registry_count(const saga_registry_t *reg);
const saga_definition_t *saga_registry_at(const saga_registry_t *reg, int i);

/* Loads every *.json file of dir (not recursive) into reg. Problems are
 * written to `report` one per line as "FILE:POINTER: message" (or
 * "FILE:LINE:COL: message" for syntax errors). Returns the number of
 * files that failed (0 = all good), or a negative SAGA_E* code when the
 * directory cannot be read. */
int saga_registry_load_dir(saga_registry_t *reg, const char *dir, char *report, size_t report_len);

#endif
