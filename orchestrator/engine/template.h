/* Payload templates: ${input.a.b}, ${steps.NAME.output.a}, ${saga.id},
 * ${saga.definition}; ${PATH:-JSON} falls back to the JSON literal JSON
 * (null, true, 0, "text", [], {}) when PATH has no value (absent or null). A string that is exactly one template keeps the JSON
 * type of the value; a template inside a longer string is interpolated
 * (strings as-is, other values as compact JSON); "$${" is a literal "${".
 * Pure. */
#ifndef SAGA_TEMPLATE_H
#define SAGA_TEMPLATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* Renders the template tree `tmpl` against `ctx`, an object
 * {"input": ..., "steps": {NAME: {"output": ...}}, "saga": {"id": ..., "definition": ...}}.
 * Returns a new value (caller decrefs) or NULL with err naming the
 * template that failed, e.g. "${input.customer}: no such value". */
json_t *saga_template_render(const json_t *tmpl, const json_t *ctx, char *err, size_t errlen);

/* Calls visit(path, user) for each template expression found in tmpl (the
 * text between "${" and "}" or ":-"), so the loader can check roots and step
 * references. Returns 0, or SAGA_EPARSE with err for an unterminated "${". */
int saga_template_scan(const json_t *tmpl, int (*visit)(const char *expr, void *user), void *user,
                       char *err, size_t errlen);

/* One template expression as the scan sees it: the path (without the
 * default), and whether it has a default. */
typedef struct {
    const char *path;
    bool has_default;
} saga_template_ref_t;

/* As saga_template_scan, with the default's presence: the loader refuses a
 * compensation reading its own step's output without one. Also returns
 * SAGA_EPARSE for a default that is not a JSON value. */
int saga_template_scan_refs(const json_t *tmpl, int (*visit)(const saga_template_ref_t *ref, void *user),
                            void *user, char *err, size_t errlen);

#endif
