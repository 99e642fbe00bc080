/* Payload templates: ${input.a.b}, ${steps.NAME.output.a}, ${saga.id},
 * ${saga.definition}. A string that is exactly one template keeps the JSON
 * type of the value; a template inside a longer string is interpolated
 * (strings as-is, other values as compact JSON); "$${" is a literal "${".
 * Pure. */
#ifndef SAGA_TEMPLATE_H
#define SAGA_TEMPLATE_H

#include <jansson.h>
#include <stddef.h>

/* Renders the template tree `tmpl` against `ctx`, an object
 * {"input": ..., "steps": {NAME: {"output": ...}}, "saga": {"id": ..., "definition": ...}}.
 * Returns a new value (caller decrefs) or NULL with err naming the
 * template that failed, e.g. "${input.customer}: no such value". */
json_t *saga_template_render(const json_t *tmpl, const json_t *ctx, char *err, size_t errlen);

/* Calls visit(path, user) for each template expression found in tmpl (the
 * text between "${" and "}"), so the loader can check roots and step
 * references. Returns 0, or SAGA_EPARSE with err for an unterminated "${". */
int saga_template_scan(const json_t *tmpl, int (*visit)(const char *expr, void *user), void *user,
                       char *err, size_t errlen);

#endif
