/* render.c: see render.h. */
#include "cli/render.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"

char *render_cell(const json_t *v, int null_as_nil)
{
    buf b = BUF_INIT;
    switch (json_typeof(v)) {
    case JSON_STRING:
        buf_append(&b, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        buf_printf(&b, "%lld", (long long)json_integer_value(v));
        break;
    case JSON_REAL:
        buf_json_double(&b, json_real_value(v));
        break;
    case JSON_TRUE:
        buf_puts(&b, "true");
        break;
    case JSON_FALSE:
        buf_puts(&b, "false");
        break;
    case JSON_ARRAY: { /* Go prints slices as [a b c] */
        buf_putc(&b, '[');
        for (size_t i = 0; i < json_array_size(v); i++) {
            char *c = render_cell(json_array_get(v, i), null_as_nil);
            if (i)
                buf_putc(&b, ' ');
            buf_puts(&b, c);
            free(c);
        }
        buf_putc(&b, ']');
        break;
    }
    case JSON_OBJECT: {
        char *t = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
        buf_puts(&b, t ? t : "");
        free(t);
        break;
    }
    default:
        buf_puts(&b, null_as_nil ? "<nil>" : "NULL");
    }
    char *s = buf_detach(&b, NULL);
    return s;
}

/* Go prints map keys sorted. */
static int cmpStr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* +------+----+ : each column as wide as its widest cell plus a space each side. */
static void border(FILE *out, const size_t *w, size_t nc)
{
    fputc('+', out);
    for (size_t i = 0; i < nc; i++) {
        for (size_t k = 0; k < w[i] + 2; k++)
            fputc('-', out);
        fputc('+', out);
    }
}

/* Code points in s (valid UTF-8: the JSON parser accepts nothing else). */
static size_t runes(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

/* Go's fmt pads to a width in code points while rqlite's table writer
 * measures in bytes; both are copied, so a cell with multi-byte characters
 * gets the same (wider) padding as in rqlite. */
static void pad(FILE *out, size_t width, const char *s)
{
    for (size_t n = runes(s); n < width; n++)
        fputc(' ', out);
}

/* | a  | bb | : cells left-justified to the column width plus one. */
static void row(FILE *out, char **cells, const size_t *w, size_t nc)
{
    fputc('|', out);
    for (size_t i = 0; i < nc; i++) {
        fputc(' ', out);
        fputs(cells[i], out);
        pad(out, w[i] + 1, cells[i]);
        fputc('|', out);
    }
}

/* Go's unicode.IsSpace for the first character of a CSV field: Latin-1
 * blanks and the White_Space characters above. */
static bool startsWithSpace(const unsigned char *s)
{
    if (s[0] && strchr("\t\n\v\f\r ", s[0]))
        return true;
    unsigned cp = 0;
    if ((s[0] & 0xE0) == 0xC0 && s[1])
        cp = (s[0] & 0x1Fu) << 6 | (s[1] & 0x3Fu);
    else if ((s[0] & 0xF0) == 0xE0 && s[1] && s[2])
        cp = (s[0] & 0x0Fu) << 12 | (s[1] & 0x3Fu) << 6 | (s[2] & 0x3Fu);
    return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
           cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

/* Go's encoding/csv quotes only fields that need it (separators, quotes,
 * line breaks, a leading blank, and "\\." which ends input to psql). */
static void csvField(FILE *out, const char *s)
{
    if (*s == '\0' || (strpbrk(s, ",\"\r\n") == NULL && !startsWithSpace((const unsigned char *)s) &&
                        strcmp(s, "\\.") != 0)) {
        fputs(s, out);
        return;
    }
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', out);
        fputc(*s, out);
    }
    fputc('"', out);
}

/* The cells as text, row 0 the header, so the text modes share one
 * formatting of values (and column mode can measure before printing). */
static char ***cellMatrix(const json_t *columns, const json_t *values, size_t nc, size_t nr, render_mode mode)
{
    char ***cells = calloc(nr + 1, sizeof *cells);
    for (size_t r = 0; r <= nr; r++) {
        cells[r] = calloc(nc ? nc : 1, sizeof **cells);
        const json_t *vals = r ? json_array_get(values, r - 1) : NULL;
        for (size_t c = 0; c < nc; c++) {
            if (r == 0)
                cells[r][c] = strdup(json_string_value(json_array_get(columns, c)) ?: "");
            else if (c < json_array_size(vals))
                cells[r][c] = render_cell(json_array_get(vals, c), mode == MODE_COLUMN);
            else
                cells[r][c] = strdup("NULL");
        }
    }
    return cells;
}

/* cellMatrix's counterpart (it allocates one string per cell). */
static void freeMatrix(char ***cells, size_t nc, size_t nr)
{
    for (size_t r = 0; r <= nr; r++) {
        for (size_t c = 0; c < nc; c++)
            free(cells[r][c]);
        free(cells[r]);
    }
    free(cells);
}

/* rqlite's bordered table. Widths are byte lengths: its table writer
 * measures with len(), and byte-identical output is the goal. Without
 * headers (a shell addition) the widths are the data's, and no rows draw
 * nothing, as sqlite3's column mode. */
static void renderColumn(FILE *out, char ***cells, size_t nc, size_t nr, bool headers)
{
    if (nc == 0 || (!headers && nr == 0)) /* rqlite's table writer draws nothing without columns */
        return;
    size_t *w = calloc(nc ? nc : 1, sizeof *w);
    for (size_t r = headers ? 0 : 1; r <= nr; r++)
        for (size_t c = 0; c < nc; c++)
            if (strlen(cells[r][c]) > w[c])
                w[c] = strlen(cells[r][c]);
    border(out, w, nc);
    if (headers) {
        fputc('\n', out);
        row(out, cells[0], w, nc);
        fputc('\n', out);
        border(out, w, nc);
    }
    for (size_t r = 1; r <= nr; r++) {
        fputc('\n', out);
        row(out, cells[r], w, nc);
        fputc('\n', out);
        border(out, w, nc);
    }
    fputc('\n', out);
    free(w);
}

/* Header row first (unless headers is off), NULL spelled out, as
 * rqlite's CSV writer does. */
static void renderCsv(FILE *out, char ***cells, size_t nc, size_t nr, bool headers)
{
    for (size_t r = headers ? 0 : 1; r <= nr; r++) {
        for (size_t c = 0; c < nc; c++) {
            if (c)
                fputc(',', out);
            csvField(out, cells[r][c]);
        }
        fputc('\n', out);
    }
}

/* sqlite3's .mode line layout, which rqlite copies: names right-aligned
 * to the widest, a blank line between rows. */
static void renderLine(FILE *out, char ***cells, size_t nc, size_t nr)
{
    size_t wn = 0;
    for (size_t c = 0; c < nc; c++)
        if (strlen(cells[0][c]) > wn)
            wn = strlen(cells[0][c]);
    for (size_t r = 1; r <= nr; r++) {
        if (r > 1)
            fputc('\n', out);
        for (size_t c = 0; c < nc; c++) {
            pad(out, wn, cells[0][c]);
            fprintf(out, "%s = %s\n", cells[0][c], cells[r][c]);
        }
    }
}

/* Go's json.MarshalIndent layout (two spaces, one member per line, empty
 * containers as [] and {}), with the scalars written by util/buf's
 * Go-compatible writer: jansson would print 0.1 as 0.10000000000000001
 * and leave '<' unescaped where rqlite's shell writes \u003c. */
static void jsonIndent(buf *b, const json_t *v, int depth)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        size_t n = json_object_size(v), i = 0;
        if (n == 0) {
            buf_puts(b, "{}");
            break;
        }
        const char **keys = calloc(n, sizeof *keys);
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x) keys[i++] = k;
        qsort(keys, n, sizeof *keys, cmpStr);
        buf_puts(b, "{\n");
        for (i = 0; i < n; i++) {
            buf_printf(b, "%*s", 2 * (depth + 1), "");
            buf_json_cstr(b, keys[i]);
            buf_puts(b, ": ");
            jsonIndent(b, json_object_get(v, keys[i]), depth + 1);
            buf_puts(b, i + 1 < n ? ",\n" : "\n");
        }
        buf_printf(b, "%*s}", 2 * depth, "");
        free(keys);
        break;
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(v);
        if (n == 0) {
            buf_puts(b, "[]");
            break;
        }
        buf_puts(b, "[\n");
        for (size_t i = 0; i < n; i++) {
            buf_printf(b, "%*s", 2 * (depth + 1), "");
            jsonIndent(b, json_array_get(v, i), depth + 1);
            buf_puts(b, i + 1 < n ? ",\n" : "\n");
        }
        buf_printf(b, "%*s]", 2 * depth, "");
        break;
    }
    case JSON_STRING: buf_json_str(b, json_string_value(v), json_string_length(v)); break;
    case JSON_INTEGER: buf_json_int(b, json_integer_value(v)); break;
    case JSON_REAL: buf_json_double(b, json_real_value(v)); break;
    case JSON_TRUE: buf_puts(b, "true"); break;
    case JSON_FALSE: buf_puts(b, "false"); break;
    default: buf_puts(b, "null");
    }
}

/* JSON mode works on the values themselves, not their text: an array of
 * row objects (a repeated column name keeps its last value, as in a Go map). */
static void renderJson(FILE *out, char ***cells, const json_t *values, size_t nc, size_t nr)
{
    json_t *arr = json_array();
    for (size_t r = 1; r <= nr; r++) {
        json_t *o = json_object();
        const json_t *vals = json_array_get(values, r - 1);
        for (size_t c = 0; c < nc; c++) {
            json_t *v = json_array_get(vals, c);
            json_object_set(o, cells[0][c], v ? v : json_null());
        }
        json_array_append_new(arr, o);
    }
    buf b = BUF_INIT;
    jsonIndent(&b, arr, 0);
    buf_putc(&b, '\n');
    fwrite(b.data, 1, b.len, out);
    buf_free(&b);
    json_decref(arr);
}

void render_rows(FILE *out, const json_t *columns, const json_t *values, render_mode mode)
{
    render_table(out, columns, values, mode, true);
}

void render_table(FILE *out, const json_t *columns, const json_t *values, render_mode mode, bool headers)
{
    size_t nc = json_array_size(columns);
    size_t nr = json_array_size(values);
    char ***cells = cellMatrix(columns, values, nc, nr, mode);
    switch (mode) {
    case MODE_COLUMN: renderColumn(out, cells, nc, nr, headers); break;
    case MODE_CSV: renderCsv(out, cells, nc, nr, headers); break;
    case MODE_LINE: renderLine(out, cells, nc, nr); break;
    case MODE_JSON: renderJson(out, cells, values, nc, nr); break;
    }
    freeMatrix(cells, nc, nr);
}

void render_affected(FILE *out, long long n)
{
    fprintf(out, "%lld %s affected\n", n, n > 1 ? "rows" : "row");
}

int render_response(FILE *out, const json_t *doc, const render_opts *o, char *err, size_t errlen)
{
    const char *top = json_string_value(json_object_get(doc, "error"));
    if (top) {
        snprintf(err, errlen, "%s", top);
        return -1;
    }
    json_t *results = json_object_get(doc, "results");
    size_t n = json_array_size(results);
    if (n != 1) {
        snprintf(err, errlen, "unexpected results length: %zu", n);
        return -1;
    }
    json_t *res = json_array_get(results, 0);
    const char *e = json_string_value(json_object_get(res, "error"));
    if (e) {
        fprintf(out, "Error: %s\n", e);
        return 0;
    }
    /* rqlite's test for a query result: any of the three keys */
    json_t *cols = json_object_get(res, "columns");
    if (cols || json_object_get(res, "types") || json_object_get(res, "values")) {
        render_table(out, cols, json_object_get(res, "values"), o->mode, !o->no_headers);
        if (o->timer)
            fprintf(out, "Run Time: %f seconds\n", json_number_value(json_object_get(res, "time")));
        return 0;
    }
    long long ra = json_integer_value(json_object_get(res, "rows_affected"));
    if (o->timer) {
        double t = json_number_value(json_object_get(res, "time"));
        fprintf(out, "%lld %s affected (%f sec)\n", ra, ra > 1 ? "rows" : "row", t);
    } else {
        render_affected(out, ra);
    }
    if (o->changes)
        fprintf(out, "last insert ID: %lld\n", (long long)json_integer_value(json_object_get(res, "last_insert_id")));
    return 0;
}

/* A value as Go's %v prints what encoding/json decoded. rqlite decodes
 * with UseNumber, so a number prints as the node wrote it: an integer as
 * is, a float as Go encodes one (which is how rqlited, and ours, write
 * them), never in %v's float style (1e+06). */
static void scalar(buf *b, const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_STRING:
        buf_puts(b, json_string_value(v));
        break;
    case JSON_INTEGER:
        buf_printf(b, "%lld", (long long)json_integer_value(v));
        break;
    case JSON_REAL:
        buf_json_double(b, json_real_value(v));
        break;
    case JSON_TRUE: buf_puts(b, "true"); break;
    case JSON_FALSE: buf_puts(b, "false"); break;
    case JSON_ARRAY:
        buf_putc(b, '[');
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i)
                buf_putc(b, ' ');
            const json_t *e = json_array_get(v, i);
            if (json_is_object(e)) {
                /* Go prints a map as map[k:v ...] */
                buf_puts(b, "map[");
                const char *k;
                json_t *x;
                size_t n = json_object_size(e), j = 0;
                const char **keys = calloc(n ? n : 1, sizeof *keys);
                json_object_foreach((json_t *)e, k, x) keys[j++] = k;
                qsort(keys, n, sizeof *keys, cmpStr);
                for (j = 0; j < n; j++) {
                    if (j)
                        buf_putc(b, ' ');
                    buf_printf(b, "%s:", keys[j]);
                    scalar(b, json_object_get(e, keys[j]));
                }
                free(keys);
                buf_putc(b, ']');
            } else {
                scalar(b, e);
            }
        }
        buf_putc(b, ']');
        break;
    default:
        break;
    }
}

void render_kv(FILE *out, const json_t *obj, int indent)
{
    size_t n = json_object_size(obj), i = 0;
    const char **keys = calloc(n ? n : 1, sizeof *keys);
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v) keys[i++] = k;
    qsort(keys, n, sizeof *keys, cmpStr);
    for (i = 0; i < n; i++) {
        v = json_object_get(obj, keys[i]);
        if (json_is_null(v))
            continue;
        if (json_is_object(v)) {
            fprintf(out, "%*s%s:\n", indent, "", keys[i]);
            render_kv(out, v, indent + 2);
            continue;
        }
        buf b = BUF_INIT;
        scalar(&b, v);
        fprintf(out, "%*s%s: %s\n", indent, "", keys[i], b.data ? b.data : "");
        buf_free(&b);
    }
    free(keys);
}
