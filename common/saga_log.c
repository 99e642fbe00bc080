#include "saga_log.h"
#include "saga_utf8.h"
#include "saga_clock.h"
#include "saga_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static saga_log_level_t min_level = SAGA_LOG_INFO;
static int json_output = 1;

static const char *const level_names[] = {
#define SAGA_LOG_NAME(name, str) str,
    SAGA_LOG_LEVELS(SAGA_LOG_NAME)
#undef SAGA_LOG_NAME
};

int saga_log_set_level_name(const char *name) {
    for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            min_level = (saga_log_level_t)i;
            return 0;
        }
    }
    return SAGA_EINVAL;
}

void saga_log_set_level(saga_log_level_t level) { min_level = level; }
int saga_log_enabled(saga_log_level_t level) { return level >= min_level; }
void saga_log_set_json(int json) { json_output = json; }

/* Writes s as the inside of a JSON string. */
static void put_escaped(FILE *f, const char *s) {
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (*p < 0x20) fprintf(f, "\\u%04x", *p);
            else fputc(*p, f);
        }
    }
}

static void put_field(FILE *f, const char *key, const char *value) {
    if (!value) return;
    fprintf(f, ",\"%s\":\"", key);
    put_escaped(f, value);
    fputc('"', f);
}

void saga_log(saga_log_level_t level, const char *component, const saga_log_ctx_t *ctx,
              const char *fmt, ...) {
    if (level < min_level) return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    saga_utf8_trim_cut(msg); /* a long line is cut on a character boundary */
    char ts[40];
    saga_format_time(saga_now_ms(), ts, sizeof ts);

    flockfile(stderr);
    if (json_output) {
        fprintf(stderr, "{\"ts\":\"%s\",\"level\":\"%s\"", ts, level_names[level]);
        put_field(stderr, "component", component);
        if (ctx) {
            put_field(stderr, "saga_id", ctx->saga_id);
            put_field(stderr, "step", ctx->step);
            put_field(stderr, "trace_id", ctx->trace_id);
        }
        put_field(stderr, "msg", msg);
        fputs("}\n", stderr);
    } else {
        fprintf(stderr, "%s %-5s [%s]%s%s %s\n", ts, level_names[level], component,
                ctx && ctx->saga_id ? " saga=" : "", ctx && ctx->saga_id ? ctx->saga_id : "", msg);
    }
    funlockfile(stderr);
}
