/* sagactl validate: saga definition files checked offline with the daemon's loader. */
#include "sagactl.h"
#include "definition.h"
#include "saga_alloc.h"
#include "saga_clock.h"
#include "saga_error.h"
#include "saga_utf8.h"
#include "saga_util.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Whole of stdin; NULL on error (errno set). Caller frees with saga_free. */
static char *read_stdin(size_t *len_out) {
    size_t cap = 4096, len = 0;
    char *buf = saga_malloc(cap);
    if (!buf) return NULL;
    for (;;) {
        if (cap - len < 2) {
            char *grown = saga_realloc(buf, cap * 2);
            if (!grown) {
                saga_free(buf);
                errno = ENOMEM;
                return NULL;
            }
            buf = grown;
            cap *= 2;
        }
        size_t n = fread(buf + len, 1, cap - len - 1, stdin);
        len += n;
        if (n == 0) break;
    }
    if (ferror(stdin)) {
        saga_free(buf);
        errno = EIO;
        return NULL;
    }
    buf[len] = '\0';
    *len_out = len;
    return buf;
}

/* line < 0 marks a problem of the whole file (cannot read it), which has
 * no pointer: "FILE: message". */
#define WHOLE_FILE (-1)

/* One problem line, "FILE:POINTER: message" or "FILE:LINE:COL: message"
 * (the format of saga_registry_load_dir's report), with control
 * characters shown as '?'. */
static void problem(const char *file, const saga_def_error_t *e) {
    put_text(stderr, file);
    if (e->line == WHOLE_FILE) fputs(": ", stderr);
    else if (e->line > 0) fprintf(stderr, ":%d:%d: ", e->line, e->column);
    else {
        fputc(':', stderr);
        put_text(stderr, e->pointer);
        fputs(": ", stderr);
    }
    put_text(stderr, e->message);
    fputc('\n', stderr);
}

/* A file's verdict for --json: {"file", "ok", "name", "version", "steps",
 * "hash"} or {"file", "ok": false, "errors": [{"pointer"|"line","column",
 * "message"}], "more_errors": N}. NULL on allocation failure. */
static json_t *verdict_json(const char *file, const saga_definition_t *def, const saga_def_errors_t *errs) {
    json_t *v = json_pack("{s:s, s:b}", "file", file, "ok", def != NULL);
    if (!v) return NULL;
    if (def) {
        json_t *more = json_pack("{s:s, s:i, s:i, s:s}", "name", def->name, "version", def->version, "steps",
                                 def->step_count, "hash", def->hash);
        if (!more || json_object_update(v, more) != 0) {
            json_decref(more);
            json_decref(v);
            return NULL;
        }
        json_decref(more);
        return v;
    }
    json_t *list = json_array();
    int kept = errs->count < 32 ? errs->count : 32;
    for (int i = 0; list && i < kept; i++) {
        const saga_def_error_t *e = &errs->items[i];
        json_t *item = e->line == WHOLE_FILE ? json_pack("{s:s}", "message", e->message)
                       : e->line > 0 ? json_pack("{s:i, s:i, s:s}", "line", e->line, "column", e->column,
                                                 "message", e->message)
                                     : json_pack("{s:s, s:s}", "pointer", e->pointer, "message", e->message);
        if (!item || json_array_append_new(list, item) != 0) {
            json_decref(list);
            list = NULL;
        }
    }
    if (!list || json_object_set_new(v, "errors", list) != 0 ||
        (errs->count > kept && json_object_set_new(v, "more_errors", json_integer(errs->count - kept)) != 0)) {
        json_decref(v);
        return NULL;
    }
    return v;
}

/* Validates each file with the daemon's loader (saga_definition_parse),
 * and the files together as one registry: two files with the same name
 * and version but other content conflict, as they would in sagad's
 * definitions directory. Needs no admin API. */
int cmd_validate(ctl_t *ctl, int argc, char **argv) {
    saga_registry_t *reg = saga_registry_new();
    json_t *results = ctl->json ? json_array() : NULL;
    if (!reg || (ctl->json && !results)) {
        saga_registry_free(&reg);
        json_decref(results);
        fprintf(stderr, "sagactl: out of memory\n");
        return EXIT_API;
    }
    int bad = 0, oom = 0;
    for (int i = 0; i < argc && !oom; i++) {
        const char *file = argv[i];
        saga_def_errors_t errs;
        memset(&errs, 0, sizeof errs);
        saga_definition_t *def = NULL;
        size_t len = 0;
        struct stat st;
        char *text = NULL;
        if (strcmp(file, "-") == 0) text = read_stdin(&len);
        else if (stat(file, &st) == 0 && S_ISDIR(st.st_mode)) errno = EISDIR;
        else text = saga_read_file(file, &len);
        if (!text) {
            snprintf(errs.items[0].message, sizeof errs.items[0].message, "cannot read: %s", strerror(errno));
            errs.items[0].line = WHOLE_FILE;
            errs.count = 1;
        } else {
            def = saga_definition_parse(text, len, &errs);
            saga_free(text);
            if (!def && errs.count == 0) {
                snprintf(errs.items[0].message, sizeof errs.items[0].message, "invalid definition");
                errs.items[0].line = WHOLE_FILE;
                errs.count = 1;
            }
        }
        /* what the registry needs after saga_registry_add took def */
        char name[SAGA_NAME_MAX] = "";
        int version = 0, steps = 0;
        if (def) {
            snprintf(name, sizeof name, "%s", def->name);
            version = def->version;
            steps = def->step_count;
            int rc = saga_registry_add(reg, def); /* takes def */
            def = NULL;
            if (rc == SAGA_EEXISTS) {
                snprintf(errs.items[0].pointer, sizeof errs.items[0].pointer, "/version");
                snprintf(errs.items[0].message, sizeof errs.items[0].message,
                         "definition '%s' version %d is already loaded with other content "
                         "(give the changed definition a new version)", name, version);
                errs.count = 1;
            } else if (rc != 0) {
                oom = 1;
                break;
            }
        }
        bool ok = errs.count == 0;
        if (!ok) bad++;
        if (ctl->json) {
            const saga_definition_t *got = ok ? saga_registry_get(reg, name, version) : NULL;
            json_t *v = verdict_json(file, got, &errs);
            if (!v || json_array_append_new(results, v) != 0) oom = 1;
        } else if (ok) {
            put_text(stdout, file);
            printf(": ok (%s v%d, %d step%s)\n", name, version, steps, steps == 1 ? "" : "s");
        } else {
            int kept = errs.count < 32 ? errs.count : 32;
            for (int k = 0; k < kept; k++) problem(file, &errs.items[k]);
            if (errs.count > kept) {
                put_text(stderr, file);
                fprintf(stderr, ": %d more errors not shown\n", errs.count - kept);
            }
        }
    }
    if (!oom && ctl->json) {
        json_t *doc = json_pack("{s:b, s:i, s:i, s:O}", "ok", bad == 0, "files", argc, "invalid", bad,
                                "results", results);
        char *text = doc ? json_dumps(doc, JSON_INDENT(2)) : NULL;
        if (text) puts(text);
        else oom = 1;
        json_free_t jfree;
        json_get_alloc_funcs(NULL, &jfree);
        if (text) jfree(text);
        json_decref(doc);
    }
    json_decref(results);
    saga_registry_free(&reg);
    if (oom) {
        fprintf(stderr, "sagactl: out of memory\n");
        return EXIT_API;
    }
    return bad ? EXIT_API : EXIT_OK;
}
