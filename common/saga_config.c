/* Options from one table: flags, environment, defaults and --help (saga_config.h). */
#include "saga_config.h"
#include "saga_error.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int set_value(const saga_config_option_t *opt, const char *value, const char *source,
                     char *err, size_t errlen) {
    switch (opt->type) {
    case SAGA_CFG_STRING:
        *(const char **)opt->target = value;
        return 0;
    case SAGA_CFG_INT: {
        char *end = NULL;
        errno = 0;
        long long v = strtoll(value, &end, 10);
        if (errno || end == value || *end) {
            snprintf(err, errlen, "%s: '%s' is not an integer", source, value);
            return SAGA_ECONFIG;
        }
        *(long long *)opt->target = v;
        return 0;
    }
    case SAGA_CFG_BOOL:
        if (!strcmp(value, "1") || !strcmp(value, "true") || !strcmp(value, "yes") || !strcmp(value, "on")) {
            *(bool *)opt->target = true;
        } else if (!strcmp(value, "0") || !strcmp(value, "false") || !strcmp(value, "no") || !strcmp(value, "off")) {
            *(bool *)opt->target = false;
        } else {
            snprintf(err, errlen, "%s: '%s' is not a boolean (true/false)", source, value);
            return SAGA_ECONFIG;
        }
        return 0;
    }
    return SAGA_ECONFIG;
}

static void env_name(const char *prefix, const char *name, char *out, size_t len) {
    size_t n = (size_t)snprintf(out, len, "%s_", prefix);
    for (const char *p = name; *p && n + 1 < len; p++, n++)
        out[n] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
    out[n < len ? n : len - 1] = '\0';
}

static int add_kafka_prop(saga_kv_list_t *props, char *kv, char *err, size_t errlen) {
    char *eq = strchr(kv, '=');
    if (!eq || eq == kv) {
        snprintf(err, errlen, "-X '%s': expected key=value", kv);
        return SAGA_ECONFIG;
    }
    if (props->count >= sizeof props->keys / sizeof props->keys[0]) {
        snprintf(err, errlen, "-X: too many properties (at most %zu)",
                 sizeof props->keys / sizeof props->keys[0]);
        return SAGA_ECONFIG;
    }
    *eq = '\0'; /* argv strings are writable */
    props->keys[props->count] = kv;
    props->values[props->count] = eq + 1;
    props->count++;
    return 0;
}

int saga_config_parse(const saga_config_option_t *table, const char *env_prefix,
                      const char *program, const char *summary, int argc, char **argv,
                      saga_kv_list_t *kafka_props, char *err, size_t errlen) {
    int rc;
    if (kafka_props) kafka_props->count = 0;
    for (const saga_config_option_t *o = table; o->name; o++) {
        if (o->default_value && (rc = set_value(o, o->default_value, o->name, err, errlen))) return rc;
        char var[128];
        env_name(env_prefix, o->name, var, sizeof var);
        const char *v = getenv(var);
        if (v && (rc = set_value(o, v, var, err, errlen))) return rc;
    }
    for (int i = 1; i < argc; i++) {
        char *arg = argv[i];
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
            saga_config_usage(stdout, table, env_prefix, program, summary, kafka_props != NULL);
            return 1;
        }
        if (kafka_props && !strcmp(arg, "-X")) {
            if (i + 1 >= argc) {
                snprintf(err, errlen, "-X needs key=value");
                return SAGA_ECONFIG;
            }
            if ((rc = add_kafka_prop(kafka_props, argv[++i], err, errlen))) return rc;
            continue;
        }
        if (strncmp(arg, "--", 2) != 0) {
            snprintf(err, errlen, "unexpected argument '%s' (see --help)", arg);
            return SAGA_ECONFIG;
        }
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t name_len = eq ? (size_t)(eq - name) : strlen(name);
        const saga_config_option_t *opt = NULL;
        for (const saga_config_option_t *o = table; o->name; o++)
            if (strlen(o->name) == name_len && !strncmp(o->name, name, name_len)) opt = o;
        if (!opt) {
            snprintf(err, errlen, "unknown option '--%.*s' (see --help)", (int)name_len, name);
            return SAGA_ECONFIG;
        }
        const char *value;
        if (eq) value = eq + 1;
        else if (opt->type == SAGA_CFG_BOOL && (i + 1 >= argc || strncmp(argv[i + 1], "--", 2) == 0 ||
                                               !strcmp(argv[i + 1], "-X")))
            value = "true"; /* a bare boolean flag */
        else if (i + 1 < argc) value = argv[++i];
        else {
            snprintf(err, errlen, "option '--%s' needs a value", opt->name);
            return SAGA_ECONFIG;
        }
        char source[80];
        snprintf(source, sizeof source, "--%s", opt->name);
        if ((rc = set_value(opt, value, source, err, errlen))) return rc;
    }
    return 0;
}

void saga_config_usage(FILE *out, const saga_config_option_t *table, const char *env_prefix,
                       const char *program, const char *summary, bool takes_kafka_props) {
    fprintf(out, "Usage: %s [options]\n%s\n\nOptions (flag, environment variable, default):\n",
            program, summary);
    for (const saga_config_option_t *o = table; o->name; o++) {
        char var[128];
        env_name(env_prefix, o->name, var, sizeof var);
        const char *kind = o->type == SAGA_CFG_INT ? "N" : o->type == SAGA_CFG_BOOL ? "BOOL" : "S";
        fprintf(out, "  --%s %s  (%s, default: %s)\n      %s\n", o->name, kind, var,
                o->default_value ? o->default_value : "none", o->help);
    }
    if (takes_kafka_props)
        fprintf(out, "  -X key=value\n      any librdkafka property (repeatable), e.g. -X security.protocol=SSL\n");
    fprintf(out, "  -h, --help\n      this text\n");
}
