/* Configuration from one table (Redis' standardConfig): every option has a
 * name, a type, a default and a help line; command-line flags
 * (--name VALUE, --name=VALUE), environment variables (PREFIX_NAME, dashes
 * become underscores, upper case) and --help all come from that table.
 * Precedence: flag > environment > default.
 * `-X key=value` (repeatable, as in kcat) collects librdkafka properties. */
#ifndef SAGA_CONFIG_H
#define SAGA_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef enum { SAGA_CFG_STRING, SAGA_CFG_INT, SAGA_CFG_BOOL } saga_config_type_t;

typedef struct {
    const char *name;          /* flag name without dashes, e.g. "admin-port" */
    saga_config_type_t type;
    const char *default_value; /* NULL: no default (string stays NULL) */
    const char *help;
    void *target;              /* const char ** | long long * | bool * */
} saga_config_option_t;

/* Key/value pairs given with -X; strings point into argv or the environment. */
typedef struct {
    const char *keys[64];
    const char *values[64];
    size_t count;
} saga_kv_list_t;

/* Parses defaults, then the environment, then argv. Table ends with a
 * zeroed entry. `kafka_props` may be NULL when the program takes no -X.
 * Returns 0, 1 when --help was printed (caller exits 0), or SAGA_ECONFIG
 * with the reason in err (e.g. "--admin-port: 'x' is not an integer").
 * Strings stored in targets are owned by argv/environ/the table. */
int saga_config_parse(const saga_config_option_t *table, const char *env_prefix,
                      const char *program, const char *summary, int argc, char **argv,
                      saga_kv_list_t *kafka_props, char *err, size_t errlen);

void saga_config_usage(FILE *out, const saga_config_option_t *table, const char *env_prefix,
                       const char *program, const char *summary, bool takes_kafka_props);

#endif
