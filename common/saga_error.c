/* saga_strerror: names of the SAGA_E* codes, from SAGA_ERRNO_MAP. */
#include "saga_error.h"

const char *saga_strerror(int err) {
    switch (err) {
#define SAGA_ERR_MSG(name, code, msg) case code: return msg;
        SAGA_ERRNO_MAP(SAGA_ERR_MSG)
#undef SAGA_ERR_MSG
    }
    return "unknown error";
}

const char *saga_errname(int err) {
    switch (err) {
#define SAGA_ERR_NAME(name, code, msg) case code: return #name;
        SAGA_ERRNO_MAP(SAGA_ERR_NAME)
#undef SAGA_ERR_NAME
    }
    return "UNKNOWN";
}
