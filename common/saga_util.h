/* Small process helpers: files, signals, ids. */
#ifndef SAGA_UTIL_H
#define SAGA_UTIL_H

#include <signal.h>
#include <stddef.h>

/* Whole file as a NUL-terminated string; caller frees with saga_free.
 * NULL on error (errno set). *len_out (may be NULL) gets the byte count. */
char *saga_read_file(const char *path, size_t *len_out);

/* Writes content to path through a temporary file and rename, so a reader
 * never sees half a file. Returns 0 or SAGA_EIO. */
int saga_write_file_atomic(const char *path, const char *content);

/* SIGINT/SIGTERM set *stop, SIGHUP sets *reload (may be NULL). The
 * handlers only store into the flags. SIGPIPE is ignored. */
void saga_signals_install(volatile sig_atomic_t *stop, volatile sig_atomic_t *reload);

/* A random id: prefix followed by 16 hex digits from getrandom(2). */
void saga_random_id(const char *prefix, char *buf, size_t len);

/* Random 64 bits from getrandom(2) (seed for engine jitter). */
unsigned long long saga_random_u64(void);

#endif
