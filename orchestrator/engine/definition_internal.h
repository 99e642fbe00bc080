/* What definition.c and definition_check.c share: error collection with
 * JSON pointers, and the checks of templates and search attributes. */
#ifndef SAGA_DEFINITION_INTERNAL_H
#define SAGA_DEFINITION_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "definition.h"

/* An RFC 6901 JSON pointer into the document being validated. */
typedef struct {
    char s[256];
} ptr_t;

ptr_t def_ptr_key(const ptr_t *base, const char *key); /* base + "/" + escaped key */
ptr_t def_ptr_idx(const ptr_t *base, size_t i);
const char *def_type_name(const json_t *v);            /* "an object", "a string", ... */

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
void def_add_err(saga_def_errors_t *errs, const char *pointer, const char *fmt, ...);

typedef struct {
    const saga_definition_t *def;
    int step;                 /* index of the step whose payload is checked */
    bool compensation;        /* checking compensation_payload */
    uint64_t ancestors;       /* bit j: step j runs (succeeds) before this step */
    const ptr_t *at;          /* pointer of the string being scanned */
    saga_def_errors_t *errs;
    bool search;              /* checking a search attribute: only input and saga roots */
} tmpl_check_t;

/* Checks every template string in v (roots, step references, defaults). */
void def_check_templates(const json_t *v, const ptr_t *at, tmpl_check_t *t);

/* Decodes and checks the optional "search" member of the definition json
 * into def->search / def->search_count. */
void def_decode_search(saga_definition_t *def, const json_t *json, saga_def_errors_t *errs);

#endif
