/* saga_registry_load_dir: the only I/O of the definition code. Reads the
 * *.json files of one directory in name order (so reports and load order
 * do not depend on the file system). */
#include "definition.h"

#include "saga_alloc.h"
#include "saga_error.h"
#include "saga_util.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct {
    char *buf;
    size_t len, used;
} report_t;

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void report_line(report_t *r, const char *fmt, ...) {
    if (!r->buf || r->len == 0 || r->used + 1 >= r->len) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(r->buf + r->used, r->len - r->used, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n >= r->len - r->used) {
        r->used = r->len - 1; /* truncated; still NUL-terminated */
        return;
    }
    r->used += (size_t)n;
    if (r->used + 1 < r->len) {
        r->buf[r->used++] = '\n';
        r->buf[r->used] = '\0';
    }
}

static int cmp_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool wanted(const char *name) {
    size_t n = strlen(name);
    /* hidden files (editor locks like .#x.json) are skipped */
    return name[0] != '.' && n > 5 && strcmp(name + n - 5, ".json") == 0;
}

/* Loads one file; returns true when it went into reg. */
static bool load_file(saga_registry_t *reg, const char *path, report_t *r) {
    size_t len = 0;
    char *text = saga_read_file(path, &len);
    if (!text) {
        report_line(r, "%s: cannot read: %s", path, strerror(errno));
        return false;
    }
    saga_def_errors_t errs;
    memset(&errs, 0, sizeof errs);
    saga_definition_t *def = saga_definition_parse(text, len, &errs);
    saga_free(text);
    if (!def) {
        int kept = errs.count < 32 ? errs.count : 32;
        for (int i = 0; i < kept; i++) {
            const saga_def_error_t *e = &errs.items[i];
            if (e->line > 0) report_line(r, "%s:%d:%d: %s", path, e->line, e->column, e->message);
            else report_line(r, "%s:%s: %s", path, e->pointer, e->message);
        }
        if (errs.count > kept) report_line(r, "%s: %d more errors not shown", path, errs.count - kept);
        if (errs.count == 0) report_line(r, "%s: invalid definition", path);
        return false;
    }
    char name[SAGA_NAME_MAX];
    int version = def->version;
    snprintf(name, sizeof name, "%s", def->name);
    int rc = saga_registry_add(reg, def); /* takes def */
    if (rc == SAGA_EEXISTS) {
        report_line(r, "%s:/version: definition '%s' version %d is already loaded with other content "
                       "(give the changed definition a new version)", path, name, version);
        return false;
    }
    if (rc != 0) {
        report_line(r, "%s: %s", path, saga_strerror(rc));
        return false;
    }
    return true;
}

int saga_registry_load_dir(saga_registry_t *reg, const char *dir, char *report, size_t report_len) {
    report_t r = {report, report_len, 0};
    if (report && report_len) report[0] = '\0';
    if (!reg || !dir) return SAGA_EINVAL;
    DIR *d = opendir(dir);
    if (!d) {
        report_line(&r, "%s: cannot open directory: %s", dir, strerror(errno));
        return SAGA_EIO;
    }
    char **names = NULL;
    size_t count = 0, cap = 0;
    int rc = 0;
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL) {
        if (!wanted(ent->d_name)) continue;
        if (count == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            char **p = saga_realloc(names, ncap * sizeof *p);
            if (!p) { rc = SAGA_ENOMEM; break; }
            names = p;
            cap = ncap;
        }
        names[count] = saga_strdup(ent->d_name);
        if (!names[count]) { rc = SAGA_ENOMEM; break; }
        count++;
    }
    closedir(d);
    if (rc == 0 && count > 1) qsort(names, count, sizeof *names, cmp_names);

    int failed = 0;
    for (size_t i = 0; rc == 0 && i < count; i++) {
        size_t plen = strlen(dir) + 1 + strlen(names[i]) + 1;
        char *path = saga_malloc(plen);
        if (!path) { rc = SAGA_ENOMEM; break; }
        snprintf(path, plen, "%s/%s", dir, names[i]);
        struct stat st;
        if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) { /* e.g. a directory named x.json */
            saga_free(path);
            continue;
        }
        if (!load_file(reg, path, &r)) failed++;
        saga_free(path);
    }
    for (size_t i = 0; i < count; i++) saga_free(names[i]);
    saga_free(names);
    if (rc != 0) report_line(&r, "%s: %s", dir, saga_strerror(rc));
    return rc != 0 ? rc : failed;
}
