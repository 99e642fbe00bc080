/* sagactl's text output: control-character-safe printing, aligned tables, cells and fields. */
#include "sagactl.h"
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

/* Prints s with control characters replaced, so a hostile name cannot
 * drive the terminal. Returns the number of columns used (code points). */
size_t put_text(FILE *out, const char *s) {
    size_t cols = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        fputc(*p < 0x20 || *p == 0x7F ? '?' : *p, out);
        if ((*p & 0xC0) != 0x80) cols++;
    }
    return cols;
}

static size_t text_cols(const char *s) {
    size_t cols = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if ((*p & 0xC0) != 0x80) cols++;
    return cols;
}

void table_init(table_t *t, size_t ncols, const char *const *head) {
    memset(t, 0, sizeof *t);
    t->ncols = ncols;
    for (size_t i = 0; i < ncols; i++) t->head[i] = head[i];
}

/* Adds a row of ncols strings (copied). Returns 0 or -1 on allocation failure. */
int table_add(table_t *t, char *const *row) {
    if (t->nrows == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        char **grown = saga_realloc(t->cells, cap * t->ncols * sizeof *grown);
        if (!grown) return -1;
        t->cells = grown;
        t->cap = cap;
    }
    for (size_t i = 0; i < t->ncols; i++) {
        t->cells[t->nrows * t->ncols + i] = saga_strdup(row[i] ? row[i] : "-");
        if (!t->cells[t->nrows * t->ncols + i]) return -1;
    }
    t->nrows++;
    return 0;
}

void table_print(FILE *out, const table_t *t) {
    size_t width[TABLE_MAX_COLS];
    for (size_t c = 0; c < t->ncols; c++) {
        width[c] = text_cols(t->head[c]);
        for (size_t r = 0; r < t->nrows; r++) {
            size_t w = text_cols(t->cells[r * t->ncols + c]);
            if (w > width[c]) width[c] = w;
        }
    }
    for (size_t r = 0; r <= t->nrows; r++) {
        fputs("  ", out);
        for (size_t c = 0; c < t->ncols; c++) {
            const char *s = r == 0 ? t->head[c] : t->cells[(r - 1) * t->ncols + c];
            size_t w = put_text(out, s);
            if (c + 1 < t->ncols)
                for (; w < width[c] + 2; w++) fputc(' ', out);
        }
        fputc('\n', out);
    }
}

void table_free(table_t *t) {
    for (size_t i = 0; i < t->nrows * t->ncols; i++) saga_free(t->cells[i]);
    saga_free(t->cells);
    memset(t, 0, sizeof *t);
}

/* A JSON value as a short cell: strings as they are, numbers, null as "-". */
void cell(char *buf, size_t len, const json_t *v) {
    if (json_is_string(v)) snprintf(buf, len, "%s", json_string_value(v));
    else if (json_is_integer(v)) snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else if (json_is_true(v)) snprintf(buf, len, "yes");
    else if (json_is_false(v)) snprintf(buf, len, "no");
    else snprintf(buf, len, "-");
}

const char *str_or(const json_t *v, const char *dflt) {
    return json_is_string(v) ? json_string_value(v) : dflt;
}

void field(FILE *out, const char *label, const char *value) {
    fprintf(out, "%-11s ", label);
    put_text(out, value && *value ? value : "-");
    fputc('\n', out);
}
