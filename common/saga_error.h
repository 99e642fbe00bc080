/* Error codes shared by every sagad component. Functions return 0 or a
 * negative SAGA_E* code; saga_strerror() names it. One X-macro list keeps
 * codes, names and messages from drifting apart. */
#ifndef SAGA_ERROR_H
#define SAGA_ERROR_H

#define SAGA_ERRNO_MAP(X)                                   \
    X(OK,       0,   "success")                            \
    X(NOMEM,    -1,  "out of memory")                      \
    X(INVAL,    -2,  "invalid argument")                   \
    X(PARSE,    -3,  "malformed input")                    \
    X(NOTFOUND, -4,  "not found")                          \
    X(EXISTS,   -5,  "already exists")                     \
    X(IO,       -6,  "I/O error")                          \
    X(STORE,    -7,  "storage (SQLite) error")             \
    X(KAFKA,    -8,  "Kafka error")                        \
    X(TEMPLATE, -9,  "template could not be rendered")     \
    X(STALE,    -10, "stale or duplicate event")           \
    X(CONFIG,   -11, "configuration error")                \
    X(STATE,    -12, "operation not allowed in this state")\
    X(HTTP,     -13, "HTTP error")

enum saga_errno {
#define SAGA_ERR_ENUM(name, code, msg) SAGA_E##name = (code),
    SAGA_ERRNO_MAP(SAGA_ERR_ENUM)
#undef SAGA_ERR_ENUM
};

/* Static strings; never NULL. */
const char *saga_strerror(int err);
const char *saga_errname(int err);

#endif
