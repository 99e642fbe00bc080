/* sagactl's internal header: what main.c, http.c, text.c and the command
 * files (show.c, list.c, validate.c, post.c) share. Not installed. */
#ifndef SAGACTL_H
#define SAGACTL_H

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>

enum { EXIT_OK = 0, EXIT_API = 1, EXIT_USAGE = 2, EXIT_CONNECT = 3 };

typedef struct {
    char *base_url; /* without trailing '/' */
    int json;       /* --json: print the API's JSON as it came */
    long timeout_s;
    int timeout_set; /* --timeout given */
} ctl_t;

/* ---- main.c ---- */

/* Prints "sagactl: FMT" and the --help hint on stderr; returns EXIT_USAGE. */
int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- http.c ---- */

typedef struct {
    long status;
    char *body; /* NUL-terminated */
    size_t len;
    int overflow;
} reply_t;

/* METHOD base_url + path (path already escaped); body != NULL sends JSON with the
 * bearer token. EXIT_OK with *r filled (any HTTP status), else EXIT_CONNECT/EXIT_API. */
int http_request(ctl_t *ctl, const char *method, const char *path, const char *body, reply_t *r);
/* GET base_url + path, as http_request without a body. */
int http_get(ctl_t *ctl, const char *path, reply_t *r);
/* Frees the reply's body and zeroes it. */
void reply_free(reply_t *r);
/* Parses the reply as JSON; NULL (after a message) when it is not JSON. */
json_t *reply_json(ctl_t *ctl, const reply_t *r);
/* Reports an API error reply ({"error":{"code","message"}}); returns EXIT_API. */
int api_error(ctl_t *ctl, const reply_t *r);

/* ---- text.c ---- */

#define TABLE_MAX_COLS 8

typedef struct {
    size_t ncols, nrows, cap;
    const char *head[TABLE_MAX_COLS];
    char **cells; /* nrows * ncols, owned */
} table_t;

/* Prints s with control characters replaced; returns the columns used (code points). */
size_t put_text(FILE *out, const char *s);
/* Starts an empty table of ncols columns with these headings (not copied). */
void table_init(table_t *t, size_t ncols, const char *const *head);
/* Adds a row of ncols strings (copied, NULL as "-"). Returns 0 or -1 on allocation failure. */
int table_add(table_t *t, char *const *row);
/* Prints the heading and rows, columns aligned, each line indented by two spaces. */
void table_print(FILE *out, const table_t *t);
/* Frees the rows and zeroes the table. */
void table_free(table_t *t);
/* A JSON value as a short cell: strings as they are, numbers, booleans as yes/no, else "-". */
void cell(char *buf, size_t len, const json_t *v);
/* v's string, or dflt when v is not a string. */
const char *str_or(const json_t *v, const char *dflt);
/* One "label       value" line ("-" for an empty value), control characters replaced. */
void field(FILE *out, const char *label, const char *value);

/* ---- the commands: argv holds the command's arguments, argc of them; returns an exit code ---- */

int cmd_show(ctl_t *ctl, int argc, char **argv);     /* show.c */
int cmd_health(ctl_t *ctl, int argc, char **argv);   /* show.c */
int cmd_list(ctl_t *ctl, int argc, char **argv);     /* list.c */
int cmd_defs(ctl_t *ctl, int argc, char **argv);     /* list.c */
int cmd_stats(ctl_t *ctl, int argc, char **argv);    /* list.c */
int cmd_validate(ctl_t *ctl, int argc, char **argv); /* validate.c */
int cmd_abort(ctl_t *ctl, int argc, char **argv);    /* post.c */
int cmd_retry(ctl_t *ctl, int argc, char **argv);    /* post.c */
int cmd_start(ctl_t *ctl, int argc, char **argv);
int cmd_signal(ctl_t *ctl, int argc, char **argv);
int cmd_pause(ctl_t *ctl, int argc, char **argv);
int cmd_resume(ctl_t *ctl, int argc, char **argv);    /* post.c */
int cmd_reload(ctl_t *ctl, int argc, char **argv);   /* post.c */

#endif
