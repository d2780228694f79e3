/* Unit tests for the shell: rqlite's exact output bytes (render), how a
 * line is read (parse), the command-line flags and RQLITE_HOST (options),
 * the failover host list (client), and what the shell asks a node for
 * each line (against fake nodes). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli/client.h"
#include "cli/options.h"
#include "cli/render.h"
#include "cli/shell.h"
#include "cli/complete.h"
#include "cli/progress.h"
#include "cli/shell_int.h"
#include "util/buf.h"

/* ---- render ------------------------------------------------------------ */

/* Render into a memory stream and compare. */
static void check_rows(const char *cols, const char *vals, render_mode mode, const char *want)
{
    json_t *c = json_loads(cols, 0, NULL), *v = vals ? json_loads(vals, 0, NULL) : NULL;
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    render_rows(f, c, v, mode);
    fclose(f);
    assert_string_equal(out, want);
    free(out);
    json_decref(c);
    json_decref(v);
}

/* render_response's printed text, its return and its error message. */
static int check_response(const char *doc, render_opts o, const char *want, const char *want_err)
{
    json_t *d = json_loads(doc, 0, NULL);
    assert_non_null(d);
    char *out = NULL, err[256] = "";
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    int rc = render_response(f, d, &o, err, sizeof err);
    fclose(f);
    assert_string_equal(out, want);
    assert_string_equal(err, want_err);
    free(out);
    json_decref(d);
    return rc;
}

static void test_table(void **st)
{
    check_rows("[\"id\"]", "[[1]]", MODE_COLUMN, "+----+\n| id |\n+----+\n| 1  |\n+----+\n");
    check_rows("[\"sql\"]", NULL, MODE_COLUMN, "+-----+\n| sql |\n+-----+\n");
    check_rows("[\"sql\"]", "[[\"CREATE TABLE foo (id INT)\"]]", MODE_COLUMN,
               "+---------------------------+\n| sql                       |\n"
               "+---------------------------+\n| CREATE TABLE foo (id INT) |\n"
               "+---------------------------+\n");
    check_rows("[\"a\",\"bb\"]", "[[null,2.5],[true,[1,2]]]", MODE_COLUMN,
               "+-------+-------+\n| a     | bb    |\n+-------+-------+\n| <nil> | 2.5   |\n"
               "+-------+-------+\n| true  | [1 2] |\n+-------+-------+\n");
    /* a row shorter than the header: the missing cells print NULL */
    check_rows("[\"a\",\"b\"]", "[[1]]", MODE_COLUMN,
               "+---+------+\n| a | b    |\n+---+------+\n| 1 | NULL |\n+---+------+\n");
}

static void test_other_modes(void **st)
{
    check_rows("[\"a\",\"b\"]", "[[1,\"x,y\"],[null,\"q\\\"\"]]", MODE_CSV, "a,b\n1,\"x,y\"\nNULL,\"q\"\"\"\n");
    check_rows("[\"id\",\"name\"]", "[[1,\"a\"],[2,\"b\"]]", MODE_LINE, "  id = 1\nname = a\n\n  id = 2\nname = b\n");
    check_rows("[\"b\",\"a\"]", "[[1,2]]", MODE_JSON, "[\n  {\n    \"a\": 2,\n    \"b\": 1\n  }\n]\n");
    check_rows("[\"a\"]", "[[null]]", MODE_LINE, "a = NULL\n");
    check_rows("[\"a\"]", "[[null]]", MODE_JSON, "[\n  {\n    \"a\": null\n  }\n]\n");
    check_rows("[\"a\"]", "[[\"line1\\nline2\"]]", MODE_CSV, "a\n\"line1\nline2\"\n");
}

/* JSON mode is Go's json.MarshalIndent of the rows: shortest floats, '<'
 * '>' '&' escaped, UTF-8 kept, nested arrays one element a line. */
static void test_json_mode(void **st)
{
    check_rows("[\"r\",\"s\"]", "[[0.1,\"a<b&c>\"]]", MODE_JSON,
               "[\n  {\n    \"r\": 0.1,\n    \"s\": \"a\\u003cb\\u0026c\\u003e\"\n  }\n]\n");
    check_rows("[\"r\"]", "[[1e30],[-2.5e-7],[3]]", MODE_JSON,
               "[\n  {\n    \"r\": 1e+30\n  },\n  {\n    \"r\": -2.5e-7\n  },\n  {\n    \"r\": 3\n  }\n]\n");
    check_rows("[\"b\",\"e\"]", "[[[1,2],[]]]", MODE_JSON,
               "[\n  {\n    \"b\": [\n      1,\n      2\n    ],\n    \"e\": []\n  }\n]\n");
    check_rows("[\"\u00e9\"]", "[[\"\u65e5\\n\\\"\\u2028\"]]", MODE_JSON,
               "[\n  {\n    \"\u00e9\": \"\u65e5\\n\\\"\\u2028\"\n  }\n]\n");
    /* a repeated column name keeps the last value, as a Go map does */
    check_rows("[\"a\",\"a\"]", "[[1,2]]", MODE_JSON, "[\n  {\n    \"a\": 2\n  }\n]\n");
}

/* Widths are bytes (rqlite's table writer uses len()) but padding counts
 * code points (Go's fmt), so multi-byte text gets rqlite's extra spaces. */
static void test_unicode_widths(void **st)
{
    check_rows("[\"x\"]", "[[\"\u00e9\"],[\"ab\"]]", MODE_COLUMN,
               "+----+\n| x  |\n+----+\n| \u00e9  |\n+----+\n| ab |\n+----+\n");
    check_rows("[\"k\"]", "[[\"\u65e5\u672c\"]]", MODE_COLUMN,
               "+--------+\n| k      |\n+--------+\n| \u65e5\u672c     |\n+--------+\n");
    check_rows("[\"\u00e9\",\"abc\"]", "[[1,2]]", MODE_LINE, "  \u00e9 = 1\nabc = 2\n");
    check_rows("[\"\u00e9\u00e9\",\"a\"]", "[[1,2]]", MODE_LINE, "  \u00e9\u00e9 = 1\n   a = 2\n");
}

/* Go's encoding/csv quoting: only when needed, and for a leading blank. */
static void test_csv_quoting(void **st)
{
    check_rows("[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\"]",
               "[[\" lead\",\"\\tx\",\"\u00a0x\",\"\\\\.\",\"\",\"a b\",\"\u3000x\"]]", MODE_CSV,
               "a,b,c,d,e,f,g\n\" lead\",\"\tx\",\"\u00a0x\",\"\\.\",,a b,\"\u3000x\"\n");
}

/* No columns at all: rqlite's table writer prints nothing. */
static void test_no_columns(void **st)
{
    check_rows("[]", "[[]]", MODE_COLUMN, "");
    render_opts col = {MODE_COLUMN, false, false, false};
    check_response("{\"results\":[{\"values\":[[1]]}]}", col, "", "");
    check_response("{\"results\":[{\"types\":[]}]}", col, "", "");
}

/* BLOBs come base64-encoded, or as byte arrays with blob_array. */
static void test_blobs(void **st)
{
    check_rows("[\"b\"]", "[[\"AQI=\"]]", MODE_COLUMN, "+------+\n| b    |\n+------+\n| AQI= |\n+------+\n");
    check_rows("[\"b\"]", "[[[1,2,255]]]", MODE_COLUMN,
               "+-----------+\n| b         |\n+-----------+\n| [1 2 255] |\n+-----------+\n");
    check_rows("[\"b\"]", "[[[1,2,255]]]", MODE_CSV, "b\n[1 2 255]\n");
    check_rows("[\"b\"]", "[[[]]]", MODE_LINE, "b = []\n");
}

/* No rows: the header alone in column and CSV mode, nothing in line
 * mode, an empty array in JSON mode. */
static void test_empty_results(void **st)
{
    check_rows("[\"a\",\"b\"]", "[]", MODE_COLUMN, "+---+---+\n| a | b |\n+---+---+\n");
    check_rows("[\"a\",\"b\"]", NULL, MODE_CSV, "a,b\n");
    check_rows("[\"a\",\"b\"]", NULL, MODE_LINE, "");
    check_rows("[\"a\",\"b\"]", NULL, MODE_JSON, "[]\n");
}

/* render_table without headers (.headers off): column and csv modes drop
 * the names, column widths are the data's, and no rows print nothing;
 * line and json modes are unchanged. */
static void check_table(const char *cols, const char *vals, render_mode mode, bool headers, const char *want)
{
    json_t *c = json_loads(cols, 0, NULL), *v = vals ? json_loads(vals, 0, NULL) : NULL;
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    render_table(f, c, v, mode, headers);
    fclose(f);
    assert_string_equal(out, want);
    free(out);
    json_decref(c);
    json_decref(v);
}

static void test_headers(void **st)
{
    check_table("[\"name\"]", "[[1],[22]]", MODE_COLUMN, false, "+----+\n| 1  |\n+----+\n| 22 |\n+----+\n");
    check_table("[\"name\"]", "[[1],[22]]", MODE_COLUMN, true,
                "+------+\n| name |\n+------+\n| 1    |\n+------+\n| 22   |\n+------+\n");
    check_table("[\"a\",\"b\"]", "[]", MODE_COLUMN, false, "");
    check_table("[\"a\",\"b\"]", "[[1,\"x,y\"]]", MODE_CSV, false, "1,\"x,y\"\n");
    check_table("[\"a\",\"b\"]", "[[1,\"x,y\"]]", MODE_CSV, true, "a,b\n1,\"x,y\"\n");
    check_table("[\"a\",\"b\"]", NULL, MODE_CSV, false, "");
    check_table("[\"id\"]", "[[1]]", MODE_LINE, false, "id = 1\n");
    check_table("[\"id\"]", "[[1]]", MODE_JSON, false, "[\n  {\n    \"id\": 1\n  }\n]\n");
    render_opts off = {MODE_CSV, false, false, true};
    check_response("{\"results\":[{\"columns\":[\"n\"],\"values\":[[3]]}]}", off, "3\n", "");
}

/* The meter's text: decimal units, percent when the total is known. */
static void test_progress_format(void **st)
{
    char line[128];
    progress_format(line, sizeof line, 12.5e6, 40e6, 12.5 / 18.2);
    assert_string_equal(line, "  12.5 MB / 40.0 MB  31%  18.2 MB/s");
    progress_format(line, sizeof line, 40e6, 40e6, 2);
    assert_string_equal(line, "  40.0 MB / 40.0 MB  100%  20.0 MB/s");
    progress_format(line, sizeof line, 3.2e9, 0, 4);
    assert_string_equal(line, "  3.2 GB  800.0 MB/s");
    progress_format(line, sizeof line, 512, 2e6, 0);
    assert_string_equal(line, "  512 B / 2.0 MB  0%  512.0 kB/s");
    /* a meter without a terminal draws nothing, whatever it is told */
    progress p;
    progress_begin(&p, NULL);
    progress_update(&p, 5e6, 5e6);
    progress_end(&p);
    assert_false(p.drawn);
    /* with one, small transfers stay silent and large ones end in a newline */
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    progress_begin(&p, f);
    progress_update(&p, 1000, 2000);
    progress_end(&p);
    fflush(f);
    assert_int_equal(len, 0);
    progress_begin(&p, f);
    progress_update(&p, 0, 4e6);
    progress_update(&p, 4e6, 4e6);
    progress_end(&p);
    fclose(f);
    assert_true(strncmp(out, "\r  0 B / 4.0 MB  0%  ", strlen("\r  0 B / 4.0 MB  0%  ")) == 0);
    assert_non_null(strstr(out, "\r  4.0 MB / 4.0 MB  100%  "));
    assert_true(len > 0 && out[len - 1] == '\n');
    free(out);
}

/* ---- completion ---------------------------------------------------------- */

static int tablesAsked;

static const char *const *someTables(void *ud, size_t *n)
{
    static const char *const names[] = {"Orders", "order_items", "users"};
    tablesAsked++;
    *n = 3;
    return names;
}

/* The words offered for the last word of line, space-separated ("" for
 * none; "FILES" when file names are what fits). */
static void check_complete(const char *line, const char *want)
{
    static const char *const usages[] = {".backup FILE", ".blobarray [on|off]", ".dump FILE [TABLE,TABLE...]",
                                         ".mode [column|csv|json|line]", ".remove NODEID"};
    complete_src src = {usages, 5, someTables, NULL};
    size_t start = strlen(line);
    while (start > 0 && !strchr(" (,", line[start - 1]))
        start--;
    bool files = false;
    char **w = complete_words(&src, line, start, line + start, &files);
    buf got = BUF_INIT;
    buf_puts(&got, files ? "FILES" : "");
    for (char **p = w; p && *p; p++)
        buf_printf(&got, "%s%s", got.len ? " " : "", *p);
    assert_string_equal(got.data ? got.data : "", want);
    buf_free(&got);
    complete_free(w);
}

static void test_complete(void **st)
{
    tablesAsked = 0;
    check_complete(".b", ".backup .blobarray");
    check_complete("  .BA", ".BACKUP");
    check_complete(".x", "");
    assert_int_equal(tablesAsked, 0); /* the node is not asked for dot commands */
    check_complete(".mode c", "column csv");
    check_complete(".MODE J", "json");
    check_complete(".blobarray ", "off on");
    check_complete(".mode json x", "");
    check_complete(".backup /tm", "FILES");
    check_complete(".dump out.sql order_", "order_items");
    check_complete(".dump out.sql users,O", "Orders order_items");
    check_complete(".remove ", "");
    assert_int_equal(tablesAsked, 2);
    check_complete("sel", "select");
    check_complete("SEL", "SELECT");
    check_complete("Sel", "select");
    check_complete("SELECT * FROM ord", "Orders order order_items"); /* ORDER too, in the case typed */
    check_complete("SELECT * FROM users WHER", "WHERE");
    check_complete("select count(*) from users wher", "where");
    check_complete("SELECT a,use", "users");
    check_complete("SELECT zz", "");
}

static void test_responses(void **st)
{
    render_opts col = {MODE_COLUMN, false, false, false};
    render_opts timer = {MODE_COLUMN, true, false, false};
    render_opts changes = {MODE_COLUMN, false, true, false};
    assert_int_equal(check_response("{\"results\":[{\"error\":\"no such table: foo\"}]}", col,
                                    "Error: no such table: foo\n", ""),
                     0);
    assert_int_equal(check_response("{\"results\":[],\"error\":\"leader not found\"}", col, "", "leader not found"),
                     -1);
    assert_int_equal(check_response("{\"results\":[{},{}]}", col, "", "unexpected results length: 2"), -1);
    assert_int_equal(check_response("{\"results\":[]}", col, "", "unexpected results length: 0"), -1);
    check_response("{\"results\":[{\"rows_affected\":2,\"last_insert_id\":7}]}", col, "2 rows affected\n", "");
    check_response("{\"results\":[{\"last_insert_id\":7}]}", col, "0 row affected\n", "");
    check_response("{\"results\":[{\"rows_affected\":1,\"last_insert_id\":7,\"time\":0.000117}]}", timer,
                   "1 row affected (0.000117 sec)\n", "");
    check_response("{\"results\":[{\"rows_affected\":1,\"last_insert_id\":7}]}", changes,
                   "1 row affected\nlast insert ID: 7\n", "");
    /* the result's own time, not the request's */
    check_response("{\"results\":[{\"columns\":[\"x\"],\"types\":[\"integer\"],\"values\":[[1]],\"time\":0.25}],"
                   "\"time\":0.5}",
                   timer, "+---+\n| x |\n+---+\n| 1 |\n+---+\nRun Time: 0.250000 seconds\n", "");
    /* INSERT ... RETURNING: a table, not a count */
    check_response("{\"results\":[{\"columns\":[\"id\"],\"values\":[[3]],\"rows_affected\":1}]}", col,
                   "+----+\n| id |\n+----+\n| 3  |\n+----+\n", "");
}

static void test_affected_and_floats(void **st)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    render_affected(f, 0);
    render_affected(f, 1);
    render_affected(f, 7);
    fclose(f);
    assert_string_equal(out, "0 row affected\n1 row affected\n7 rows affected\n");
    free(out);
}

static void test_kv(void **st)
{
    json_t *doc = json_loads("{\"b\":{\"y\":\"v\",\"x\":[1,\"a\"]},\"a\":true,\"n\":null,\"c\":3}", 0, NULL);
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    render_kv(f, doc, 0);
    fclose(f);
    assert_string_equal(out, "a: true\nb:\n  x: [1 a]\n  y: v\nc: 3\n");
    free(out);
    json_decref(doc);
    /* numbers as the node wrote them (rqlite decodes with UseNumber), not
     * in Go's %v float style (1e+06, 3.8e-05) */
    doc = json_loads("{\"seq\":1796311238621977533,\"m\":1000000,\"f\":0.000038,\"t\":1.6999911167658865e-7,"
                     "\"l\":[{\"Size\":8,\"Frees\":12.5}]}", 0, NULL);
    f = open_memstream(&out, &len);
    render_kv(f, doc, 0);
    fclose(f);
    assert_string_equal(out, "f: 0.000038\nl: [map[Frees:12.5 Size:8]]\nm: 1000000\nseq: 1796311238621977533\n"
                             "t: 1.6999911167658865e-7\n");
    free(out);
    json_decref(doc);
}

/* ---- parsing a line ---------------------------------------------------- */

static shell_line parse(const char *text, char *scratch, size_t n)
{
    snprintf(scratch, n, "%s", text);
    shell_line l;
    shell_parse_line(scratch, &l);
    return l;
}

static void check_line(const char *text, shell_line_kind kind, const char *name, const char *arg)
{
    char s[256];
    shell_line l = parse(text, s, sizeof s);
    assert_int_equal(l.kind, kind);
    if (name)
        assert_string_equal(l.name, name);
    else
        assert_null(l.name);
    assert_string_equal(l.arg, arg);
}

static void test_parse_line(void **st)
{
    check_line("", SHELL_LINE_EMPTY, NULL, "");
    check_line(" \t ", SHELL_LINE_EMPTY, NULL, "");
    /* the first word picks the command, in any case; the rest is its argument */
    check_line(".tables", SHELL_LINE_COMMAND, ".tables", "");
    check_line("  .TaBlEs  ", SHELL_LINE_COMMAND, ".tables", "");
    check_line(".mode   csv  ", SHELL_LINE_COMMAND, ".mode", "csv");
    check_line(".mode\tjson", SHELL_LINE_COMMAND, ".mode", "json");
    check_line(".dump out.sql t1,t2", SHELL_LINE_COMMAND, ".dump", "out.sql t1,t2");
    check_line(".read my file.sql", SHELL_LINE_COMMAND, ".read", "my file.sql");
    check_line(".remove 3", SHELL_LINE_COMMAND, ".remove", "3");
    /* exit and quit, dotted or not, any case, with or without words after */
    check_line("exit", SHELL_LINE_COMMAND, ".exit", "");
    check_line("QUIT", SHELL_LINE_COMMAND, ".quit", "");
    check_line(".Exit", SHELL_LINE_COMMAND, ".exit", "");
    check_line("exit now", SHELL_LINE_COMMAND, ".exit", "now");
    check_line("exits", SHELL_LINE_SQL, NULL, "");
    check_line(".reap", SHELL_LINE_COMMAND, ".reap", "");
    check_line(".STEPDOWN 2", SHELL_LINE_COMMAND, ".stepdown", "2");
    check_line(".sysdump  /tmp/x ", SHELL_LINE_COMMAND, ".sysdump", "/tmp/x");
    /* words that are no command */
    check_line(".nope x", SHELL_LINE_UNKNOWN, NULL, "x");
    check_line(".tablesx", SHELL_LINE_UNKNOWN, NULL, "");
    check_line(".", SHELL_LINE_UNKNOWN, NULL, "");
    /* SQL is the whole line, trimmed */
    char s[256];
    shell_line l = parse("   SELECT * FROM t WHERE a = ' x '  \n", s, sizeof s);
    assert_int_equal(l.kind, SHELL_LINE_SQL);
    assert_string_equal(l.text, "SELECT * FROM t WHERE a = ' x '");
    l = parse("  .nope x", s, sizeof s);
    assert_int_equal(l.wordlen, 5);
    assert_memory_equal(l.text, ".nope", 5);
}

/* ---- the failover list ------------------------------------------------- */

static void check_hosts(const char *host, const char *alt, size_t n, ...)
{
    char **hosts = NULL;
    assert_int_equal(client_host_list(host, "4001", alt, &hosts), n);
    va_list ap;
    va_start(ap, n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(hosts[i], va_arg(ap, const char *));
    va_end(ap);
    free(hosts);
}

static void test_host_list(void **st)
{
    check_hosts("127.0.0.1", NULL, 1, "127.0.0.1:4001");
    check_hosts("::1", "", 1, "[::1]:4001");
    check_hosts("h1", "h2:4003,h3:4005", 3, "h1:4001", "h2:4003", "h3:4005");
    /* blanks trimmed, empty entries skipped, anything else kept as given */
    check_hosts("h1", " h2:1 ,,\t, ,h3 ,", 3, "h1:4001", "h2:1", "h3");
    check_hosts("h1", ",,,", 1, "h1:4001");
    check_hosts("h1", "bad host, [::1]:9,http://x/", 4, "h1:4001", "bad host", "[::1]:9", "http://x/");
    check_hosts("", ",", 1, ":4001");
}

/* ---- flags ------------------------------------------------------------- */

static options_action parse_args(options *o, char *err, ...)
{
    char *argv[32] = {"rqlite"};
    int argc = 1;
    va_list ap;
    va_start(ap, err);
    for (char *a; argc < 31 && (a = va_arg(ap, char *)) != NULL;)
        argv[argc++] = a;
    va_end(ap);
    err[0] = '\0';
    return options_parse(argc, argv, o, err, 256);
}

static void test_options(void **st)
{
    options o;
    char err[256];
    assert_int_equal(parse_args(&o, err, NULL), OPTIONS_RUN);
    assert_string_equal(o.shell.scheme, "http");
    assert_string_equal(o.shell.host, "127.0.0.1");
    assert_string_equal(o.shell.port, "4001");
    assert_string_equal(o.shell.prefix, "/");
    assert_null(o.shell.user);
    assert_false(o.shell.insecure);
    assert_int_equal(o.shell.timeout_ms, 30000);
    assert_null(o.shell.alternatives);
    assert_false(o.addr_given);

    assert_int_equal(parse_args(&o, err, "-H", "db.example", "-p", "4101", "-s", "https", "-P", "/rq/", "-u",
                                "bob:se:cret", "-c", "ca.pem", "-i", "-t", "250ms", "-a", "h2:4001", "-d", "me.pem", "-k",
                                "me.key", NULL),
                     OPTIONS_RUN);
    assert_string_equal(o.shell.host, "db.example");
    assert_string_equal(o.shell.port, "4101");
    assert_string_equal(o.shell.scheme, "https");
    assert_string_equal(o.shell.prefix, "/rq/");
    assert_string_equal(o.shell.user, "bob:se:cret");
    assert_string_equal(o.shell.ca_cert, "ca.pem");
    assert_string_equal(o.shell.client_cert, "me.pem");
    assert_string_equal(o.shell.client_key, "me.key");
    assert_true(o.shell.insecure);
    assert_int_equal(o.shell.timeout_ms, 250);
    assert_string_equal(o.shell.alternatives, "h2:4001");
    assert_true(o.addr_given);

    /* long names, and values after '=' */
    assert_int_equal(parse_args(&o, err, "--host=h", "--port", "1", "--http-timeout=2m", "--insecure=false",
                                "--prefix=/x", "--client-cert=c.pem", "--client-key", "c.key", NULL),
                     OPTIONS_RUN);
    assert_string_equal(o.shell.host, "h");
    assert_string_equal(o.shell.port, "1");
    assert_string_equal(o.shell.client_cert, "c.pem");
    assert_string_equal(o.shell.client_key, "c.key");
    assert_int_equal(o.shell.timeout_ms, 120000);
    assert_false(o.shell.insecure);
    assert_string_equal(o.shell.prefix, "/x");

    /* -t is a Go duration */
    static const struct {
        const char *in;
        long ms;
    } durations[] = {{"1.5s", 1500}, {"1m30s", 90000}, {"2h", 7200000}, {"250ms", 250}, {"0", 0},
                     {"500us", 1},   {"1500000ns", 2},  {"-1s", 0},     {".5s", 500},   {"1.s", 1000},
                     {"+3s", 3000},  {"1h0m0.5s", 3600500}, {"10\u00b5s", 1}};
    for (size_t i = 0; i < sizeof durations / sizeof durations[0]; i++) {
        assert_int_equal(parse_args(&o, err, "-t", durations[i].in, NULL), OPTIONS_RUN);
        assert_int_equal(o.shell.timeout_ms, durations[i].ms);
    }
    assert_int_equal(parse_args(&o, err, "-t", "5", NULL), OPTIONS_ERROR);
    assert_string_equal(err, "time: missing unit in duration \"5\"");
    assert_int_equal(parse_args(&o, err, "-t", "5x", NULL), OPTIONS_ERROR);
    assert_string_equal(err, "time: unknown unit \"x\" in duration \"5x\"");
    assert_int_equal(parse_args(&o, err, "--http-timeout=soon", NULL), OPTIONS_ERROR);
    assert_string_equal(err, "time: invalid duration \"soon\"");
    assert_int_equal(parse_args(&o, err, "-t", "", NULL), OPTIONS_ERROR);
    assert_int_equal(parse_args(&o, err, "-t", "1..5s", NULL), OPTIONS_ERROR);
    assert_int_equal(parse_args(&o, err, "-t", ".s", NULL), OPTIONS_ERROR);
    assert_int_equal(parse_args(&o, err, "-h", NULL), OPTIONS_HELP);
    assert_int_equal(parse_args(&o, err, "-p", "1", "--help", NULL), OPTIONS_HELP);
    assert_int_equal(parse_args(&o, err, "--version", NULL), OPTIONS_VERSION);
    assert_int_equal(parse_args(&o, err, "-x", NULL), OPTIONS_UNKNOWN);
    assert_string_equal(err, "unknown option: -x");
    assert_int_equal(parse_args(&o, err, "db.example", NULL), OPTIONS_UNKNOWN);
    assert_int_equal(parse_args(&o, err, "-H", NULL), OPTIONS_ERROR);
    assert_string_equal(err, "option -H requires a value");
    assert_int_equal(parse_args(&o, err, "-u", "bob", NULL), OPTIONS_ERROR);
    assert_string_equal(err, "invalid Basic Auth credential format");
}

/* ---- RQLITE_HOST ----------------------------------------------------------- */

static void env_ok(const char *value, const char *scheme, const char *host, const char *port)
{
    options o;
    char err[256] = "";
    assert_int_equal(parse_args(&o, err, NULL), OPTIONS_RUN);
    assert_int_equal(options_host_env(&o, value, err, sizeof err), 0);
    assert_string_equal(o.shell.scheme, scheme);
    assert_string_equal(o.shell.host, host);
    assert_string_equal(o.shell.port, port);
}

static void env_err(const char *value, const char *want)
{
    options o;
    char err[256] = "";
    assert_int_equal(parse_args(&o, err, NULL), OPTIONS_RUN);
    assert_int_equal(options_host_env(&o, value, err, sizeof err), -1);
    assert_string_equal(err, want);
}

/* rqlite's ParseHostEnv over Go's url.Parse: its cases, and hostile ones */
static void test_host_env(void **st)
{
    env_ok(NULL, "http", "127.0.0.1", "4001");
    env_ok("https://localhost:4002", "https", "localhost", "4002");
    env_ok("http://localhost", "http", "localhost", "4001");
    env_ok("//localhost", "http", "localhost", "4001");
    env_ok("HTTPS://Db.Example:4101/some/path?x=1#frag", "https", "Db.Example", "4101");
    env_ok("//[::1]:4003", "http", "::1", "4003");
    env_ok("http://user:pw@h:5", "http", "h", "5");
    env_ok("http://h:0", "http", "h", "4001"); /* port 0 keeps the default */
    env_ok("http://h:", "http", "h", "4001");
    env_ok("http://h:065535", "http", "h", "65535");
    env_ok("http://h%C3%A9:7", "http", "h\xC3\xA9", "7");

    env_err("", "RQLITE_HOST does not contain a hostname");
    env_err("localhost", "RQLITE_HOST does not contain a hostname");
    env_err("http:///path", "RQLITE_HOST does not contain a hostname");
    env_err("http:localhost", "RQLITE_HOST does not contain a hostname");
    env_err("ftp://localhost:4001", "unsupported protocol ftp");
    env_err("localhost:4001", "unsupported protocol localhost");
    env_err("http://[invalid:url", "parse \"http://[invalid:url\": missing ']' in host");
    env_err("http://localhost:99999999", "port number 99999999 is outside of valid range [0, 65535]");
    env_err("http://localhost:-1", "parse \"http://localhost:-1\": invalid port \":-1\" after host");
    env_err("http://localhost:port", "parse \"http://localhost:port\": invalid port \":port\" after host");
    env_err("127.0.0.1:4001", "parse \"127.0.0.1:4001\": first path segment in URL cannot contain colon");
    env_err("://x", "parse \"://x\": missing protocol scheme");
    env_err("http://a b", "parse \"http://a b\": invalid character \" \" in host name");
    env_err("http://h\x01", "parse \"http://h\\x01\": net/url: invalid control character in URL");
    env_err("http://h%2f", "parse \"http://h%2f\": invalid URL escape \"%2f\"");
    env_err("http://h/%zz", "parse \"http://h/%zz\": invalid URL escape \"%zz\"");
    env_err("http://h%", "parse \"http://h%\": invalid URL escape \"%\"");
    env_err("http://h#%zz", "parse \"http://h#%zz\": invalid URL escape \"%zz\"");
    env_err("http://h:99999999999999999999", "port '99999999999999999999' is not a valid number: strconv.Atoi: "
                                               "parsing \"99999999999999999999\": value out of range");
    char longhost[400] = "http://";
    memset(longhost + 7, 'a', 300);
    env_err(longhost, "RQLITE_HOST's hostname is too long");

    /* -H, -p or -s given: RQLITE_HOST is not read, whatever it holds */
    options o;
    char err[256] = "";
    assert_int_equal(parse_args(&o, err, "-p", "4005", NULL), OPTIONS_RUN);
    assert_int_equal(options_host_env(&o, "ftp://[nonsense", err, sizeof err), 0);
    assert_string_equal(o.shell.host, "127.0.0.1");
    assert_string_equal(o.shell.port, "4005");
    assert_int_equal(parse_args(&o, err, "--scheme=https", NULL), OPTIONS_RUN);
    assert_int_equal(options_host_env(&o, "http://elsewhere:1", err, sizeof err), 0);
    assert_string_equal(o.shell.host, "127.0.0.1");
    assert_int_equal(parse_args(&o, err, "-P", "/x", "-a", "h:1", NULL), OPTIONS_RUN);
    assert_int_equal(options_host_env(&o, "http://elsewhere:1", err, sizeof err), 0);
    assert_string_equal(o.shell.host, "elsewhere");
}

/* ---- the shell against a fake node --------------------------------------- */

/* A one-connection-at-a-time HTTP server on 127.0.0.1 that logs each
 * request ("METHOD target" and body) and answers with the canned reply. */
typedef struct fake_node {
    int fd, port;
    pthread_t thread;
    pthread_mutex_t mu;
    bool stop;
    buf log;          /* "METHOD target\n" per request */
    buf last_body;
    int status;       /* answer's status code */
    const char *reply;
    int delay_ms;     /* before answering */
} fake_node;

static fake_node node;

/* Read one request; returns false when the peer sent nothing usable. */
static bool fakeRead(int c, buf *req, size_t *body_at, size_t *body_len)
{
    char tmp[4096];
    char *end = NULL;
    while ((end = req->data ? strstr(req->data, "\r\n\r\n") : NULL) == NULL) {
        ssize_t n = read(c, tmp, sizeof tmp);
        if (n <= 0)
            return false;
        buf_append(req, tmp, (size_t)n);
    }
    *body_at = (size_t)(end - req->data) + 4;
    const char *cl = strcasestr(req->data, "\r\nContent-Length:");
    *body_len = cl && cl < end ? strtoul(cl + 17, NULL, 10) : 0;
    while (req->len < *body_at + *body_len) {
        ssize_t n = read(c, tmp, sizeof tmp);
        if (n <= 0)
            return false;
        buf_append(req, tmp, (size_t)n);
    }
    return true;
}

static void fakeServe(int c)
{
    buf req = BUF_INIT;
    size_t at, len;
    if (fakeRead(c, &req, &at, &len)) {
        pthread_mutex_lock(&node.mu);
        buf_append(&node.log, req.data, strcspn(req.data, " "));
        const char *target = req.data + strcspn(req.data, " ") + 1;
        buf_append(&node.log, target - 1, strcspn(target, " ") + 1);
        buf_putc(&node.log, '\n');
        buf_reset(&node.last_body);
        buf_append(&node.last_body, req.data + at, len);
        buf_putc(&node.last_body, '\0');
        int delay = node.delay_ms;
        buf out = BUF_INIT;
        buf_printf(&out,
                   "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nX-RQLITE-VERSION: vfake\r\n"
                   "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                   node.status, strlen(node.reply), node.reply);
        pthread_mutex_unlock(&node.mu);
        if (delay)
            poll(NULL, 0, delay);
        ssize_t w = write(c, out.data, out.len);
        (void)w;
        buf_free(&out);
    }
    buf_free(&req);
    close(c);
}

static void *fakeLoop(void *arg)
{
    for (;;) {
        pthread_mutex_lock(&node.mu);
        bool stop = node.stop;
        pthread_mutex_unlock(&node.mu);
        if (stop)
            return NULL;
        struct pollfd p = {node.fd, POLLIN, 0};
        if (poll(&p, 1, 50) == 1) {
            int c = accept(node.fd, NULL, NULL);
            if (c >= 0)
                fakeServe(c);
        }
    }
}

static int fake_start(void **st)
{
    memset(&node, 0, sizeof node);
    pthread_mutex_init(&node.mu, NULL);
    node.fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (bind(node.fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(node.fd, 8) != 0 ||
        getsockname(node.fd, (struct sockaddr *)&a, &al) != 0)
        return -1;
    node.port = ntohs(a.sin_port);
    node.status = 200;
    node.reply = "{}";
    return pthread_create(&node.thread, NULL, fakeLoop, NULL);
}

static int fake_stop(void **st)
{
    pthread_mutex_lock(&node.mu);
    node.stop = true;
    pthread_mutex_unlock(&node.mu);
    pthread_join(node.thread, NULL);
    close(node.fd);
    buf_free(&node.log);
    buf_free(&node.last_body);
    return 0;
}

static void fake_reply(int status, const char *reply)
{
    pthread_mutex_lock(&node.mu);
    node.status = status;
    node.reply = reply;
    node.delay_ms = 0;
    buf_reset(&node.log);
    pthread_mutex_unlock(&node.mu);
}

static void fake_delay(int ms)
{
    pthread_mutex_lock(&node.mu);
    node.delay_ms = ms;
    pthread_mutex_unlock(&node.mu);
}

/* The requests since the last fake_reply, "METHOD target" a line. */
static char *fake_log(void)
{
    pthread_mutex_lock(&node.mu);
    char *s = strdup(node.log.data ? node.log.data : "");
    pthread_mutex_unlock(&node.mu);
    return s;
}

static void assert_log(const char *want)
{
    char *got = fake_log();
    assert_string_equal(got, want);
    free(got);
}

static void check_body(const char *want);

/* A shell made while stdout is not a terminal, so ERR! has no colour. */
static shell *new_shell_timeout(int port, long timeout_ms)
{
    static char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    shell_opts o = {.scheme = "http", .host = "127.0.0.1", .port = portstr, .prefix = "/", .timeout_ms = timeout_ms};
    fflush(stdout);
    int saved = dup(1), null = open("/dev/null", O_WRONLY);
    dup2(null, 1);
    shell *sh = shell_new(&o);
    dup2(saved, 1);
    close(saved);
    close(null);
    return sh;
}

static shell *new_shell(int port)
{
    return new_shell_timeout(port, 5000);
}

/* All of what was written to f, which is closed (caller frees). */
static char *slurp(FILE *f)
{
    long n = ftell(f);
    char *s = calloc(1, (size_t)(n > 0 ? n : 0) + 1);
    rewind(f);
    if (n > 0 && fread(s, 1, (size_t)n, f) != (size_t)n)
        s[0] = '\0';
    fclose(f);
    return s;
}

static char *last_stderr; /* what the last run() printed on stderr */

/* Run one line; returns what it printed on stdout (caller frees), and
 * keeps its stderr (the client's failover log) in last_stderr. */
static char *run(shell *sh, const char *line, int *ret)
{
    fflush(stdout);
    fflush(stderr);
    FILE *out = tmpfile(), *err = tmpfile();
    int saved = dup(1), esaved = dup(2);
    dup2(fileno(out), 1);
    dup2(fileno(err), 2);
    int r = shell_run_line(sh, line);
    fflush(stdout);
    fflush(stderr);
    dup2(saved, 1);
    dup2(esaved, 2);
    close(saved);
    close(esaved);
    if (ret)
        *ret = r;
    free(last_stderr);
    last_stderr = slurp(err);
    return slurp(out);
}

static void check_run(shell *sh, const char *line, const char *want)
{
    char *got = run(sh, line, NULL);
    assert_string_equal(got, want);
    free(got);
}

static void test_settings(void **st)
{
    shell *sh = new_shell(node.port);
    check_run(sh, ".show", "  blobarray: off\n  changes: off\n  consistency: weak\n  forcewrites: off\n"
                           "  headers: on\n  mode: column\n  output: stdout\n  timer: off\n");
    check_run(sh, ".timer", "off\n");
    check_run(sh, ".timer on", "");
    check_run(sh, ".timer", "on\n");
    check_run(sh, ".timer maybe", "ERR! invalid option 'maybe'. Use 'on' or 'off' (default)\n");
    check_run(sh, ".mode", "column\n");
    check_run(sh, ".mode csv", "");
    check_run(sh, ".mode", "csv\n");
    check_run(sh, ".mode table", "ERR! invalid mode 'table'. Use 'column', 'csv', 'json', or 'line'\n");
    check_run(sh, ".consistency", "weak\n");
    check_run(sh, ".consistency strong", "");
    check_run(sh, ".consistency", "strong\n");
    check_run(sh, ".consistency eventual",
              "ERR! invalid consistency 'eventual'. Use 'none', 'weak', 'linearizable', or 'strong'\n");
    check_run(sh, ".changes on", "");
    check_run(sh, ".forcewrites on", "");
    check_run(sh, ".blobarray on", "");
    check_run(sh, ".headers", "on\n");
    check_run(sh, ".headers off", "");
    check_run(sh, ".headers", "off\n");
    check_run(sh, ".headers none", "ERR! invalid option 'none'. Use 'on' or 'off' (default)\n");
    check_run(sh, ".show", "  blobarray: on\n  changes: on\n  consistency: strong\n  forcewrites: on\n"
                           "  headers: off\n  mode: csv\n  output: stdout\n  timer: on\n");
    check_run(sh, ".frobnicate now", "ERR! unknown command: .frobnicate; enter \".help\" for usage hints\n");
    check_run(sh, "", "");
    int ret = 0;
    free(run(sh, "quit", &ret));
    assert_int_equal(ret, 1);
    free(run(sh, ".timer off", &ret));
    assert_int_equal(ret, 0);
    shell_free(sh);
}

static void test_help(void **st)
{
    shell *sh = new_shell(node.port);
    char *h = run(sh, ".help", NULL);
    /* rqlite's 30 lines and our .headers, sorted, descriptions from column 47 */
    assert_non_null(strstr(h, ".backup FILE                                  Write database backup to FILE\n"));
    assert_non_null(strstr(h, ".consistency [none|weak|linearizable|strong]  Show or set read consistency level\n"));
    assert_non_null(strstr(h, ".timer [on|off]                               Show setting, or set query timings on or off\n"));
    int lines = 0;
    const char *prev = "";
    for (char *p = h; *p; p = strchr(p, '\n') + 1) {
        assert_true(strcmp(prev, p) < 0);
        prev = p;
        lines++;
    }
    assert_int_equal(lines, 31);
    assert_non_null(strstr(h, ".forcewrites [on|off]                         Show setting, or set all statements to be "
                              "executed via /db/execute\n.headers [on|off]                             Show setting, or "
                              "set display of column names in column and csv modes\n.help "));
    assert_true(strncmp(h, ".backup", 7) == 0);
    free(h);
    shell_free(sh);
}

/* Which endpoint, with which parameters, each kind of line reaches: SQL
 * to /db/request (rqlite v10's shell), with no level; the meta queries
 * at the .consistency level. */
static void test_sql_requests(void **st)
{
    shell *sh = new_shell(node.port);
    fake_reply(200, "{\"results\":[{\"columns\":[\"a\"],\"types\":[\"integer\"],\"values\":[[1]]}]}");
    check_run(sh, "SELECT 1", "+---+\n| a |\n+---+\n| 1 |\n+---+\n");
    assert_log("POST /db/request\n");
    check_body("[\"SELECT 1\"]");

    check_run(sh, ".consistency strong", "");
    fake_reply(200, "{\"results\":[{\"columns\":[\"a\"],\"values\":[[1]]}]}");
    free(run(sh, "select \"x\"", NULL));
    assert_log("POST /db/request\n");
    check_body("[\"select \\\"x\\\"\"]");

    /* what the answer holds decides how it prints, whatever the statement */
    fake_reply(200, "{\"results\":[{\"rows_affected\":1,\"last_insert_id\":4}]}");
    check_run(sh, "INSERT INTO t VALUES (1)", "1 row affected\n");
    assert_log("POST /db/request\n");
    check_run(sh, "WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x", "1 row affected\n");
    fake_reply(200, "{\"results\":[{\"columns\":[\"id\"],\"types\":[\"integer\"],\"values\":[[9]]}]}");
    check_run(sh, "INSERT INTO t VALUES (9) RETURNING id", "+----+\n| id |\n+----+\n| 9  |\n+----+\n");

    check_run(sh, ".timer on", "");
    check_run(sh, ".changes on", "");
    fake_reply(200, "{\"results\":[{\"rows_affected\":2,\"last_insert_id\":4,\"time\":0.5}],\"time\":0.75}");
    check_run(sh, "INSERT INTO t VALUES (1)", "2 rows affected (0.500000 sec)\nlast insert ID: 4\n");
    assert_log("POST /db/request?timings\n");
    check_run(sh, ".changes off", "");
    fake_reply(200, "{\"results\":[{\"columns\":[\"a\"],\"values\":[[1]],\"time\":0.125}],\"time\":0.75}");
    check_run(sh, "SELECT 1", "+---+\n| a |\n+---+\n| 1 |\n+---+\nRun Time: 0.125000 seconds\n");
    assert_log("POST /db/request?timings\n");
    fake_reply(200, "{\"results\":[{\"columns\":[\"name\"],\"values\":[],\"time\":0.001}]}");
    check_run(sh, ".tables", "+------+\n| name |\n+------+\nRun Time: 0.001000 seconds\n");
    assert_log("GET /db/query?level=strong&timings&q=SELECT%20name%20FROM%20sqlite_master%20WHERE%20"
               "type%3D%22table%22%20ORDER%20BY%20name%20ASC\n");

    check_run(sh, ".timer off", "");
    check_run(sh, ".forcewrites on", "");
    fake_reply(200, "{\"results\":[{\"columns\":[\"a\"],\"values\":[[1]]}]}");
    free(run(sh, "SELECT 1", NULL));
    assert_log("POST /db/execute\n");

    /* .tables and friends: GET queries at the level, with blob_array */
    check_run(sh, ".blobarray on", "");
    fake_reply(200, "{\"results\":[{\"columns\":[\"name\"],\"values\":[[\"t\"]]}]}");
    check_run(sh, ".tables", "+------+\n| name |\n+------+\n| t    |\n+------+\n");
    assert_log("GET /db/query?level=strong&blob_array&q=SELECT%20name%20FROM%20sqlite_master%20WHERE%20"
               "type%3D%22table%22%20ORDER%20BY%20name%20ASC\n");
    shell_free(sh);
}

static void test_errors(void **st)
{
    shell *sh = new_shell(node.port);
    fake_reply(200, "{\"results\":[{\"error\":\"no such table: nope\"}]}");
    check_run(sh, "SELECT * FROM nope", "Error: no such table: nope\n");
    fake_reply(200, "{\"results\":[],\"error\":\"something broke\"}");
    check_run(sh, "SELECT 1", "ERR! something broke\n");
    fake_reply(503, "leader not found\n");
    check_run(sh, "INSERT INTO t VALUES (1)", "ERR! server responded with 503 Service Unavailable: leader not found\n\n");
    /* a 401 on SQL is a status like others; on other commands "unauthorized" */
    fake_reply(401, "bad credentials");
    check_run(sh, "SELECT 1", "ERR! server responded with 401 Unauthorized: bad credentials\n");
    check_run(sh, ".tables", "ERR! server responded with 401 Unauthorized: bad credentials\n");
    check_run(sh, ".status", "ERR! unauthorized\n");
    check_run(sh, ".nodes", "ERR! unauthorized\n");
    check_run(sh, ".leader", "ERR! unauthorized\n");
    check_run(sh, ".remove 2", "ERR! unauthorized\n");
    fake_reply(200, "not json");
    char *out = run(sh, "SELECT 1", NULL);
    assert_true(strncmp(out, "ERR! invalid JSON response: ", 28) == 0);
    free(out);
    shell_free(sh);
    /* nothing listening */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    sh = new_shell(ntohs(a.sin_port));
    close(fd);
    out = run(sh, "SELECT 1", NULL);
    assert_string_equal(out, "ERR! no host available to perform the request\n");
    free(out);
    char want[256];
    snprintf(want, sizeof want, "host '127.0.0.1:%d' is unavailable, retrying with the next available host\n",
             ntohs(a.sin_port));
    assert_non_null(strstr(last_stderr, want));
    assert_true(strncmp(last_stderr, "[client] 20", 11) == 0);
    assert_non_null(strstr(last_stderr, "] ")); /* "[client] YYYY/MM/DD hh:mm:ss host ..." */
    assert_true(strlen(last_stderr) > strlen(want) &&
                strcmp(last_stderr + strlen(last_stderr) - 43, "none of the available hosts are responsive\n") == 0);
    shell_free(sh);
}

static void test_node_commands(void **st)
{
    shell *sh = new_shell(node.port);
    fake_reply(200, "[+]node ok");
    check_run(sh, ".ready", "ready\n");
    assert_log("GET /readyz\n");
    fake_reply(503, "[+]node ok\n[-]leader not contactable");
    check_run(sh, ".ready", "not ready\n");

    fake_reply(200, "");
    check_run(sh, ".remove 3", "");
    assert_log("DELETE /remove\n");
    pthread_mutex_lock(&node.mu);
    assert_string_equal(node.last_body.data, "{\"id\":\"3\"}");
    pthread_mutex_unlock(&node.mu);
    fake_reply(404, "");
    check_run(sh, ".remove 9", "ERR! server responded with: 404 Not Found\n");
    fake_reply(200, "");
    check_run(sh, ".remove", "ERR! please specify a node ID\n");
    assert_log("");

    fake_reply(200, "{\"store\":{\"node_id\":\"1\",\"raft\":{\"state\":\"Leader\"}},\"build\":{\"version\":\"v\"}}");
    check_run(sh, ".status store", "store:\n  node_id: 1\n  raft:\n    state: Leader\n");
    assert_log("GET /status\n");
    /* the key is the word after the command: rqlite splits the line at spaces */
    check_run(sh, ".status build more words", "build:\n  version: v\n");
    check_run(sh, ".status nosuchkey", "");
    fake_reply(200, "{\"1\":{\"id\":\"1\",\"leader\":false},\"2\":{\"id\":\"2\",\"leader\":false}}");
    check_run(sh, ".nodes all", "1:\n  id: 1\n  leader: false\n2:\n  id: 2\n  leader: false\n");
    assert_log("GET /nodes?nonvoters\n");
    fake_reply(200, "{}");
    free(run(sh, ".nodes", NULL));
    free(run(sh, ".nodes everything", NULL));
    assert_log("GET /nodes\nGET /nodes?nonvoters\n");

    /* .leader: the leader's entry under its ID */
    fake_reply(200, "{\"1\":{\"id\":\"1\",\"leader\":false},\"2\":{\"id\":\"2\",\"api_addr\":\"http://h:4003\","
                    "\"addr\":\"h:4004\",\"leader\":true,\"time\":0.000038}}");
    check_run(sh, ".leader", "2:\n  addr: h:4004\n  api_addr: http://h:4003\n  id: 2\n  leader: true\n  time: 0.000038\n");
    assert_log("GET /nodes\n");
    fake_reply(200, "{\"1\":{\"id\":\"1\",\"leader\":false}}");
    check_run(sh, ".leader", "ERR! no leader found\n");
    fake_reply(503, "store not open\n");
    check_run(sh, ".leader", "ERR! server responded with 503 Service Unavailable: store not open\n\n");
    shell_free(sh);
}

/* .read runs each line of a file as a statement; .output sends results
 * to a file. */
static void test_read_and_output(void **st)
{
    char dir[] = "/tmp/test_cli.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char in[256], out[256];
    snprintf(in, sizeof in, "%s/in.sql", dir);
    snprintf(out, sizeof out, "%s/out.txt", dir);
    FILE *f = fopen(in, "w");
    fputs("-- a comment\nINSERT INTO t VALUES (1)\n\n   \n  INSERT INTO t VALUES (2)  \r\n", f);
    fclose(f);
    shell *sh = new_shell(node.port);
    fake_reply(200, "{\"results\":[{\"rows_affected\":1}]}");
    char cmd[300];
    snprintf(cmd, sizeof cmd, ".read %s", in);
    check_run(sh, cmd, "1 row affected\n1 row affected\n");
    assert_log("POST /db/request\nPOST /db/request\n");
    pthread_mutex_lock(&node.mu);
    assert_string_equal(node.last_body.data, "[\"INSERT INTO t VALUES (2)\"]");
    pthread_mutex_unlock(&node.mu);

    snprintf(cmd, sizeof cmd, ".output %s", out);
    check_run(sh, cmd, "");
    fake_reply(200, "{\"results\":[{\"columns\":[\"a\"],\"values\":[[1]]}]}");
    check_run(sh, "SELECT 1", "");
    /* only results go to the file: settings and errors stay on screen */
    char want[512];
    snprintf(want, sizeof want, "  blobarray: off\n  changes: off\n  consistency: weak\n  forcewrites: off\n"
                                "  headers: on\n  mode: column\n  output: %s\n  timer: off\n", out);
    check_run(sh, ".show", want);
    check_run(sh, ".timer", "off\n");
    fake_reply(200, "{\"results\":[{\"error\":\"no such table: x\"}]}");
    check_run(sh, "SELECT * FROM x", "");
    fake_reply(200, "{\"error\":\"not leader\"}");
    check_run(sh, "SELECT 1", "ERR! not leader\n");
    /* a file that cannot be made leaves the output where it was */
    check_run(sh, ".output /nonexistent/dir/out.txt", "ERR! open /nonexistent/dir/out.txt: no such file or directory\n");
    fake_reply(200, "{\"results\":[{\"rows_affected\":2}]}");
    check_run(sh, "DELETE FROM t", "");
    check_run(sh, ".output stdout", "");
    check_run(sh, ".show", "  blobarray: off\n  changes: off\n  consistency: weak\n  forcewrites: off\n"
                           "  headers: on\n  mode: column\n  output: stdout\n  timer: off\n");
    fake_reply(200, "{\"results\":[{\"columns\":[\"a\"],\"values\":[[1]]}]}");
    check_run(sh, "SELECT 1", "+---+\n| a |\n+---+\n| 1 |\n+---+\n");
    f = fopen(out, "r");
    char got[512] = "";
    size_t n = fread(got, 1, sizeof got - 1, f);
    got[n] = '\0';
    fclose(f);
    assert_string_equal(got, "+---+\n| a |\n+---+\n| 1 |\n+---+\nError: no such table: x\n2 rows affected\n");
    shell_free(sh);
    unlink(in);
    unlink(out);
    rmdir(dir);
}

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    fclose(f);
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *s = calloc(1, 4096);
    size_t n = fread(s, 1, 4095, f);
    s[n] = '\0';
    fclose(f);
    return s;
}

static void check_body(const char *want)
{
    pthread_mutex_lock(&node.mu);
    assert_string_equal(node.last_body.data ? node.last_body.data : "", want);
    pthread_mutex_unlock(&node.mu);
}

/* .backup, .dump, .restore and .boot: files, uploads and rqlite's messages. */
static void test_file_commands(void **st)
{
    char dir[] = "/tmp/test_cli.XXXXXX", path[256], cmd[300];
    assert_non_null(mkdtemp(dir));
    shell *sh = new_shell(node.port);

    snprintf(path, sizeof path, "%s/backup.db", dir);
    snprintf(cmd, sizeof cmd, ".backup %s", path);
    fake_reply(200, "SQLite format 3 and the rest");
    check_run(sh, cmd, "backup file written successfully\n");
    assert_log("GET /db/backup\n");
    char *got = read_text(path);
    assert_string_equal(got, "SQLite format 3 and the rest");
    free(got);
    fake_reply(401, "");
    check_run(sh, cmd, "ERR! unauthorized\n");
    fake_reply(503, "leader not found");
    check_run(sh, cmd, "ERR! server responded with: 503 Service Unavailable\n");
    fake_reply(200, "x");
    check_run(sh, ".backup /nonexistent/dir/b.db", "ERR! open /nonexistent/dir/b.db: no such file or directory\n");
    assert_log("");
    check_run(sh, ".backup", "ERR! please specify an output file for the backup\n");

    snprintf(cmd, sizeof cmd, ".dump %s/d.sql t1,t2", dir);
    fake_reply(200, "BEGIN;");
    check_run(sh, cmd, "SQL text file written successfully\n");
    assert_log("GET /db/backup?fmt=sql&tables=t1%2Ct2\n");
    check_run(sh, ".dump", "ERR! please specify an output file for the SQL text\n");

    /* .restore: SQL text with the pragma appended, or an image as is */
    snprintf(path, sizeof path, "%s/r.sql", dir);
    write_file(path, "CREATE TABLE r (a);", 19);
    snprintf(cmd, sizeof cmd, ".restore %s", path);
    fake_reply(200, "{\"results\":[{\"last_insert_id\":3,\"rows_affected\":1}]}");
    check_run(sh, cmd, "last inserted ID: 3\nrows affected: 1\nDatabase restored successfully.\n");
    assert_log("POST /db/load\n");
    check_body("CREATE TABLE r (a);\nPRAGMA foreign_keys=OFF;");
    fake_reply(200, "{\"results\":[{\"error\":\"near x: syntax error\"}]}");
    check_run(sh, cmd, "Error: near x: syntax error\n");
    fake_reply(503, "no leader");
    check_run(sh, cmd, "ERR! server responded with: 503 Service Unavailable\n");
    snprintf(path, sizeof path, "%s/r.db", dir);
    write_file(path, "SQLite format 3\0page", 20);
    snprintf(cmd, sizeof cmd, ".restore %s", path);
    fake_reply(200, "{\"results\":[]}");
    check_run(sh, cmd, "Database restored successfully.\n");
    check_body("SQLite format 3");
    check_run(sh, ".restore", "ERR! please specify an input file to restore from\n");
    snprintf(cmd, sizeof cmd, ".restore %s/missing.sql", dir);
    char want[512];
    snprintf(want, sizeof want, "ERR! open %s/missing.sql: no such file or directory\n", dir);
    check_run(sh, cmd, want);

    /* .boot: images only */
    snprintf(cmd, sizeof cmd, ".boot %s", path);
    fake_reply(200, "");
    check_run(sh, cmd, "Node booted successfully.\n");
    assert_log("POST /boot\n");
    fake_reply(503, "not a clean node");
    check_run(sh, cmd, "ERR! boot failed, status code: 503 Service Unavailable, not a clean node\n");
    fake_reply(503, "");
    check_run(sh, cmd, "ERR! boot failed, status code: 503 Service Unavailable\n");
    snprintf(cmd, sizeof cmd, ".boot %s/r.sql", dir);
    snprintf(want, sizeof want, "ERR! %s/r.sql is not a valid SQLite file\n", dir);
    fake_reply(200, "");
    check_run(sh, cmd, want);
    snprintf(cmd, sizeof cmd, ".boot %s/missing.db", dir);
    snprintf(want, sizeof want, "ERR! %s/missing.db is not a valid SQLite file\n", dir);
    check_run(sh, cmd, want);
    assert_log("");
    check_run(sh, ".boot", "ERR! please specify an input file to boot with\n");

    check_run(sh, ".read", "ERR! please specify an input file to read from\n");
    snprintf(cmd, sizeof cmd, ".read %s/missing.sql", dir);
    snprintf(want, sizeof want, "ERR! open %s/missing.sql: no such file or directory\n", dir);
    check_run(sh, cmd, want);
    shell_free(sh);

    /* -t bounds every request but the uploads */
    sh = new_shell_timeout(node.port, 200);
    fake_reply(200, "{\"results\":[{\"columns\":[\"a\"],\"values\":[[1]]}]}");
    fake_delay(600);
    /* a timeout is a host that did not answer: with no other to try, none is left */
    check_run(sh, "SELECT 1", "ERR! no host available to perform the request\n");
    fake_reply(200, "{\"results\":[]}");
    fake_delay(600);
    snprintf(cmd, sizeof cmd, ".restore %s", path);
    check_run(sh, cmd, "Database restored successfully.\n");
    shell_free(sh);

    const char *files[] = {"backup.db", "d.sql", "r.sql", "r.db"};
    for (size_t i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
}

/* .expvar, .extensions, .reap, .stepdown: endpoints and rqlite's words */
static void test_node_tools(void **st)
{
    shell *sh = new_shell(node.port);
    fake_reply(200, "{\"cmdline\":[\"rqlited\",\"-node-id\",\"1\"],\"memstats\":{\"Sys\":11407360},"
                    "\"http\":{\"queries\":3},\"nil\":null}");
    check_run(sh, ".expvar", "cmdline: [rqlited -node-id 1]\nhttp:\n  queries: 3\nmemstats:\n  Sys: 11407360\n");
    assert_log("GET /debug/vars\n");
    check_run(sh, ".expvar memstats", "memstats:\n  Sys: 11407360\n");
    check_run(sh, ".EXPVAR cmdline", "cmdline: [rqlited -node-id 1]\n");
    check_run(sh, ".expvar nothere", "");
    fake_reply(401, "");
    check_run(sh, ".expvar", "ERR! unauthorized\n");

    fake_reply(200, "{\"dir\":\"/x\",\"names\":[\"sqlean.so\",\"vec0.so\"]}");
    check_run(sh, ".extensions", "sqlean.so\nvec0.so\n");
    assert_log("GET /status?key=extensions\n");
    fake_reply(200, "{}");
    check_run(sh, ".extensions", "");
    fake_reply(200, "{\"names\":\"not a list\"}");
    check_run(sh, ".extensions", "");
    fake_reply(404, "");
    check_run(sh, ".extensions", "");
    fake_reply(401, "unauthorized");
    check_run(sh, ".extensions", "ERR! unauthorized\n");
    fake_reply(503, "oops");
    check_run(sh, ".extensions", "ERR! invalid character 'o' looking for beginning of value\n");

    fake_reply(200, "{\"snapshots_reaped\":2,\"wals_checkpointed\":5}");
    check_run(sh, ".reap", "snapshots reaped: 2, WALs checkpointed: 5\n");
    assert_log("POST /reap\n");
    check_body("");
    fake_reply(503, "store not open");
    check_run(sh, ".reap", "ERR! server responded with 503 X\n"); /* the status line as the node sent it */
    fake_reply(401, "");
    check_run(sh, ".reap", "ERR! unauthorized\n");
    fake_reply(200, "");
    check_run(sh, ".reap", "ERR! failed to decode response: EOF\n");
    fake_reply(200, "{\"snapshots_reaped\":\"two\"}");
    check_run(sh, ".reap", "ERR! failed to decode response: json: cannot unmarshal string into Go value of type int\n");
    fake_reply(200, "[1]");
    check_run(sh, ".reap",
              "ERR! failed to decode response: json: cannot unmarshal array into Go value of type map[string]int\n");

    fake_reply(200, "");
    check_run(sh, ".stepdown", "");
    assert_log("POST /leader?wait=true\n");
    check_body("");
    check_run(sh, ".stepdown  2 ", "");
    check_body("{\"id\":\"2\"}");
    check_run(sh, ".stepdown a\"b<\xff", "");
    check_body("{\"id\":\"a\\\"b\\u003c\\ufffd\"}");
    fake_reply(500, "stepdown: there's no other voting server");
    check_run(sh, ".stepdown", "ERR! server responded with 500 X\n");
    fake_reply(401, "");
    check_run(sh, ".stepdown 3", "ERR! unauthorized\n");
    shell_free(sh);
}

/* A port nothing listens on (bound, then closed). */
static int dead_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* .sysdump FILE: every node's four URLs, straight to each node */
static void test_sysdump(void **st)
{
    char dir[] = "/tmp/test_cli.XXXXXX", path[256], cmd[300], nodes[512], want[8192];
    assert_non_null(mkdtemp(dir));
    int dead = dead_port();
    snprintf(nodes, sizeof nodes, "{\"1\":{\"api_addr\":\"http://127.0.0.1:%d\",\"id\":\"1\"},"
             "\"2\":{\"api_addr\":\"http://127.0.0.1:%d\"},\"3\":{\"id\":\"3\"}}", node.port, dead);
    shell *sh = new_shell(node.port);
    fake_reply(200, nodes);
    snprintf(path, sizeof path, "%s/dump.txt", dir);
    snprintf(cmd, sizeof cmd, ".sysdump %s", path);
    check_run(sh, cmd, "");
    assert_log("GET /nodes\nGET /status?pretty\nGET /nodes?pretty\nGET /readyz\nGET /debug/vars\n");
    static const char *const paths[] = {"/status?pretty", "/nodes?pretty", "/readyz", "/debug/vars"};
    size_t n = 0;
    for (int i = 0; i < 4; i++)
        n += (size_t)snprintf(want + n, sizeof want - n,
                              "\n=========================================\nURL: http://127.0.0.1:%d%s\n"
                              "Status: 200 X\n\n%s", node.port, paths[i], nodes);
    for (int i = 0; i < 4; i++)
        n += (size_t)snprintf(want + n, sizeof want - n,
                              "\n=========================================\nURL: http://127.0.0.1:%d%s\n"
                              "Status: Get \"http://127.0.0.1:%d%s\": dial tcp 127.0.0.1:%d: connect: "
                              "connection refused\n\n", dead, paths[i], dead, paths[i], dead);
    char *got = read_text(path);
    assert_string_equal(got, want);
    free(got);

    check_run(sh, ".sysdump", "ERR! please specify an output file for the sysdump\n");
    check_run(sh, ".sysdump /nonexistent/dir/x", "ERR! open /nonexistent/dir/x: no such file or directory\n");
    snprintf(cmd, sizeof cmd, ".sysdump %s", dir);
    snprintf(want, sizeof want, "ERR! open %s: is a directory\n", dir);
    check_run(sh, cmd, want);
    check_run(sh, ".sysdump /dev/full", "ERR! write /dev/full: no space left on device\n");
    /* the node list is asked for first: no answer, no file */
    snprintf(path, sizeof path, "%s/none.txt", dir);
    snprintf(cmd, sizeof cmd, ".sysdump %s", path);
    fake_reply(401, "unauthorized");
    check_run(sh, cmd, "ERR! invalid character 'u' looking for beginning of value\n");
    fake_reply(200, "[1]");
    check_run(sh, cmd, "ERR! json: cannot unmarshal array into Go value of type main.Nodes\n");
    assert_int_equal(access(path, F_OK), -1);
    shell_free(sh);
    snprintf(path, sizeof path, "%s/dump.txt", dir);
    unlink(path);
    rmdir(dir);
}

static shell *new_shell_alt(int port, const char *alternatives)
{
    shell *sh = new_shell(port);
    shell_free(sh);
    static char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    shell_opts o = {.scheme = "http", .host = "127.0.0.1", .port = portstr, .prefix = "/",
                    .alternatives = alternatives, .timeout_ms = 5000};
    return shell_new(&o);
}

/* -a: a host that does not answer is left for the next; SQL prints its
 * result and the prompt follows, other commands print nothing the first
 * time (rqlite's), uploads do not move the client. */
static void test_failover(void **st)
{
    int dead = dead_port();
    char alt[128], prompt[64], was[64], want[256];
    snprintf(alt, sizeof alt, " , bad host,,127.0.0.1:%d ", node.port);
    snprintf(prompt, sizeof prompt, "127.0.0.1:%d", node.port);
    snprintf(was, sizeof was, "127.0.0.1:%d", dead);
    shell *sh = new_shell_alt(dead, alt);
    assert_string_equal(shell_prompt(sh), was);
    fake_reply(200, "{\"results\":[{\"columns\":[\"a\"],\"values\":[[1]]}]}");
    check_run(sh, "SELECT 1", "+---+\n| a |\n+---+\n| 1 |\n+---+\n");
    snprintf(want, sizeof want, "host '%s' is unavailable, retrying with the next available host\n", was);
    assert_non_null(strstr(last_stderr, want));
    assert_non_null(strstr(last_stderr, "host 'bad host' is unavailable, retrying with the next available host\n"));
    assert_string_equal(shell_prompt(sh), prompt);
    check_run(sh, "SELECT 1", "+---+\n| a |\n+---+\n| 1 |\n+---+\n");
    assert_string_equal(last_stderr, ""); /* it stays on the host that answered */
    assert_log("POST /db/request\nPOST /db/request\n");
    shell_free(sh);

    sh = new_shell_alt(dead, alt);
    fake_reply(200, "{\"store\":{\"x\":1}}");
    check_run(sh, ".status", "");
    assert_string_equal(shell_prompt(sh), prompt);
    check_run(sh, ".status", "store:\n  x: 1\n");
    assert_log("GET /status\nGET /status\n");
    shell_free(sh);

    /* an error answer drops the news of the move: the prompt stays */
    sh = new_shell_alt(dead, alt);
    fake_reply(503, "leader not found");
    check_run(sh, "SELECT 1", "ERR! server responded with 503 Service Unavailable: leader not found\n");
    assert_string_equal(shell_prompt(sh), was);
    shell_free(sh);

    /* an upload fails over without moving the client */
    char dir[] = "/tmp/test_cli.XXXXXX", path[256], cmd[300];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/r.db", dir);
    write_file(path, "SQLite format 3\0page", 20);
    snprintf(cmd, sizeof cmd, ".restore %s", path);
    sh = new_shell_alt(dead, alt);
    fake_reply(200, "{\"results\":[]}");
    check_run(sh, cmd, "");
    assert_string_equal(shell_prompt(sh), prompt);
    check_run(sh, cmd, "");
    assert_non_null(strstr(last_stderr, want));
    assert_log("POST /db/load\nPOST /db/load\n");
    shell_free(sh);
    unlink(path);
    rmdir(dir);

    /* nothing answers */
    snprintf(alt, sizeof alt, "127.0.0.1:%d,,", dead_port());
    sh = new_shell_alt(dead, alt);
    check_run(sh, ".status", "ERR! no host available to perform the request\n");
    assert_non_null(strstr(last_stderr, want));
    assert_non_null(strstr(last_stderr, "none of the available hosts are responsive\n"));
    assert_string_equal(shell_prompt(sh), was);
    shell_free(sh);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_other_modes),
        cmocka_unit_test(test_json_mode),
        cmocka_unit_test(test_unicode_widths),
        cmocka_unit_test(test_csv_quoting),
        cmocka_unit_test(test_no_columns),
        cmocka_unit_test(test_blobs),
        cmocka_unit_test(test_empty_results),
        cmocka_unit_test(test_headers),
        cmocka_unit_test(test_progress_format),
        cmocka_unit_test(test_complete),
        cmocka_unit_test(test_responses),
        cmocka_unit_test(test_affected_and_floats),
        cmocka_unit_test(test_kv),
        cmocka_unit_test(test_parse_line),
        cmocka_unit_test(test_host_list),
        cmocka_unit_test(test_host_env),
        cmocka_unit_test(test_options),
    };
    const struct CMUnitTest with_node[] = {
        cmocka_unit_test(test_settings),
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_sql_requests),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_node_commands),
        cmocka_unit_test(test_read_and_output),
        cmocka_unit_test(test_file_commands),
        cmocka_unit_test(test_node_tools),
        cmocka_unit_test(test_sysdump),
        cmocka_unit_test(test_failover),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    failed += cmocka_run_group_tests_name("against a fake node", with_node, fake_start, fake_stop);
    free(last_stderr);
    return failed;
}
