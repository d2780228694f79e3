/*
 * render: how the rqlite shell prints results (pure functions, no I/O
 * besides the FILE given), byte-compatible with rqlite's CLI.
 */
#ifndef RQ_CLI_RENDER_H
#define RQ_CLI_RENDER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef enum { MODE_COLUMN, MODE_CSV, MODE_JSON, MODE_LINE } render_mode;

typedef struct render_opts {
    render_mode mode;
    bool timer;   /* "Run Time: ..." after a table, "(N sec)" after a write */
    bool changes; /* "last insert ID: N" after a write */
    bool no_headers; /* .headers off: no row of column names in column and
                      * csv modes (line and json modes name every value
                      * anyway). false, rqlite's only behaviour, by default */
} render_opts;

/* A data endpoint's answer ({"results":[...]}) as rqlite's shell prints it:
 * a table, "N row(s) affected", or "Error: ..." for a failed statement;
 * times are the result's own ("time", with ?timings). Returns 0, or -1 with the message
 * the shell prints as "ERR! ..." in err: an error for the whole request,
 * or not exactly one result. */
int render_response(FILE *out, const json_t *doc, const render_opts *o, char *err, size_t errlen);

/* A query result ({"columns":[..],"values":[[..]..]}) in the given mode. */
void render_rows(FILE *out, const json_t *columns, const json_t *values, render_mode mode);
/* The same, with the header row of column and csv modes left out unless
 * headers (without it and without rows, nothing is printed). */
void render_table(FILE *out, const json_t *columns, const json_t *values, render_mode mode, bool headers);
/* One cell as the column mode prints it (NULL -> "<nil>"); caller frees. */
char *render_cell(const json_t *v, int null_as_nil);
/* "N row affected" / "N rows affected". */
void render_affected(FILE *out, long long n);
/* .status/.nodes style: sorted "key: value" lines, nested objects indented. */
void render_kv(FILE *out, const json_t *obj, int indent);

#endif
