/* Structured logs: one JSON object per line on stderr (or plain text with
 * saga_log_set_json(0)). Fields: ts, level, component, msg, and saga_id,
 * step, trace_id when the caller knows them. */
#ifndef SAGA_LOG_H
#define SAGA_LOG_H

#define SAGA_LOG_LEVELS(X) X(DEBUG, "debug") X(INFO, "info") X(WARN, "warn") X(ERROR, "error")

typedef enum {
#define SAGA_LOG_ENUM(name, str) SAGA_LOG_##name,
    SAGA_LOG_LEVELS(SAGA_LOG_ENUM)
#undef SAGA_LOG_ENUM
} saga_log_level_t;

/* Context of a log line; any field may be NULL. */
typedef struct {
    const char *saga_id;
    const char *step;
    const char *trace_id;
} saga_log_ctx_t;

/* Returns 0, or SAGA_EINVAL for a name that is not a level. */
int saga_log_set_level_name(const char *name);
void saga_log_set_level(saga_log_level_t level);
int saga_log_enabled(saga_log_level_t level);
void saga_log_set_json(int json);

void saga_log(saga_log_level_t level, const char *component, const saga_log_ctx_t *ctx,
              const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#define LOG_DEBUG(comp, ...) do { if (saga_log_enabled(SAGA_LOG_DEBUG)) saga_log(SAGA_LOG_DEBUG, comp, NULL, __VA_ARGS__); } while (0)
#define LOG_INFO(comp, ...)  saga_log(SAGA_LOG_INFO, comp, NULL, __VA_ARGS__)
#define LOG_WARN(comp, ...)  saga_log(SAGA_LOG_WARN, comp, NULL, __VA_ARGS__)
#define LOG_ERROR(comp, ...) saga_log(SAGA_LOG_ERROR, comp, NULL, __VA_ARGS__)

#endif
