/*
 * shell.c: the rqlite shell's state, its dot commands as a table (name,
 * .help line, handler) and what each command asks the node.
 */
#include "cli/shell.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "cli/client.h"
#include "cli/complete.h"
#include "cli/progress.h"
#include "cli/shell_int.h"
#include "util/buf.h"

struct shell {
    shell_opts o;
    client *cl;
    char prompt[300];
    bool tty;
    FILE *meter;    /* progress lines: stderr when stdout and stderr are terminals, else NULL */
    /* settings */
    bool timer, changes, forcewrites, blobarray;
    bool headers; /* column names above column and csv results: on, as rqlite */
    char consistency[16];
    render_mode mode;
    FILE *out;      /* query and execute results: stdout or the .output file */
    char *out_path; /* NULL for stdout */
    /* Tab's table names (see shell_complete) */
    char **tables;
    size_t ntables;
    double tables_at;     /* monotonic time of the last attempt to get them, 0 never */
    bool tables_failed;   /* that attempt got no list */
    bool tables_stale;    /* a command ran since */
};

/* A handler gets what follows the command word; it returns 1 to end the shell. */
typedef int (*shell_cmd_fn)(shell *sh, const char *arg);

struct shell_cmd {
    const char *name;  /* ".backup", matched case-insensitively */
    const char *usage; /* ".backup FILE", as .help shows it */
    const char *help;
    shell_cmd_fn run;
};

shell *shell_new(const shell_opts *opts)
{
    shell *sh = calloc(1, sizeof *sh);
    sh->o = *opts;
    sh->cl = client_new(opts);
    bool v6 = strchr(opts->host, ':') != NULL;
    snprintf(sh->prompt, sizeof sh->prompt, "%s%s%s:%s", v6 ? "[" : "", opts->host, v6 ? "]" : "",
             opts->port);
    sh->tty = isatty(1);
    sh->meter = sh->tty && isatty(2) ? stderr : NULL;
    snprintf(sh->consistency, sizeof sh->consistency, "weak");
    sh->mode = MODE_COLUMN;
    sh->headers = true;
    sh->out = stdout;
    return sh;
}

void shell_free(shell *sh)
{
    if (sh == NULL)
        return;
    if (sh->out != stdout)
        fclose(sh->out);
    free(sh->out_path);
    complete_free(sh->tables);
    client_free(sh->cl);
    free(sh);
}

const char *shell_prompt(shell *sh) { return sh->prompt; }

void shell_err(shell *sh, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs(sh->tty ? "\x1b[31mERR!\x1b[0m " : "ERR! ", stdout);
    vfprintf(stdout, fmt, ap);
    fputc('\n', stdout);
    va_end(ap);
}

int shell_connect(shell *sh, char *version, size_t n)
{
    client_resp r;
    char err[256];
    if (client_request(sh->cl, "GET", "/status", NULL, 0, NULL, &r, err, sizeof err) != 0) {
        shell_err(sh, "%s", err);
        return -1;
    }
    buf_free(&r.body);
    /* rqlite's start-up takes an answer from an alternative for an error */
    const char *moved = client_host_change(sh->cl);
    if (moved) {
        shell_err(sh, "HostChangedErr: new host is '%s'", moved);
        return -1;
    }
    snprintf(version, n, "%s", r.version);
    return 0;
}

/* Go's error text for a failed file operation: strerror's, lower-cased
 * ("open x: no such file or directory"). */
static const char *goStrerror(int err)
{
    static char msg[128];
    snprintf(msg, sizeof msg, "%s", strerror(err));
    msg[0] = (char)tolower((unsigned char)msg[0]);
    return msg;
}

/* ---- talking to the node --------------------------------------------- */

/* After a failover the prompt names the host that answered, as rqlite's
 * does. Returns whether the last request moved. */
static bool moved(shell *sh)
{
    const char *host = client_host_change(sh->cl);
    if (host)
        snprintf(sh->prompt, sizeof sh->prompt, "%s", host);
    return host != NULL;
}

/* One request whose answer the caller reads: 0 with r filled, or -1 after
 * a transport failure (printed) or, for all but SQL (sql false), after a
 * failover: rqlite's commands then print nothing, the prompt alone shows
 * the new host (SQL lines print their result, and their callers move the
 * prompt once it printed). */
static int call(shell *sh, const char *method, const char *path, const char *body, const char *ctype, bool sql,
                client_resp *r)
{
    char err[256];
    if (client_request(sh->cl, method, path, body, body ? strlen(body) : 0, ctype, r, err, sizeof err) != 0) {
        shell_err(sh, "%s", err);
        return -1;
    }
    if (!sql && moved(sh)) {
        buf_free(&r->body);
        return -1;
    }
    return 0;
}

/* The request behind most commands: an answer other than 200 becomes
 * rqlite's error line here, so callers only see the parsed JSON body (or
 * NULL, the error already printed). rqlite's SQL path (sql) reports 401
 * like any other status; its other commands say "unauthorized". */
static json_t *callJson(shell *sh, const char *method, const char *path, const char *body, bool sql)
{
    client_resp r;
    if (call(sh, method, path, body, "application/json", sql, &r) != 0)
        return NULL;
    if (r.status == 401 && !sql) {
        shell_err(sh, "unauthorized");
        buf_free(&r.body);
        return NULL;
    }
    if (r.status != 200) {
        shell_err(sh, "server responded with %ld %s: %s", r.status, client_status_text(r.status),
                  r.body.data ? r.body.data : "");
        buf_free(&r.body);
        return NULL;
    }
    json_error_t jerr;
    json_t *doc = json_loadb(r.body.data ? r.body.data : "", r.body.len, JSON_DECODE_ANY, &jerr);
    if (doc == NULL)
        shell_err(sh, "invalid JSON response: %s", jerr.text);
    buf_free(&r.body);
    return doc;
}

/* A request whose answer is not JSON to print (.ready, .remove, .snapshot,
 * downloads): the status code, the body in answer if one is given, or -1
 * when call() gave nothing. */
static long callStatus(shell *sh, const char *method, const char *path, const char *body, buf *answer)
{
    client_resp r;
    if (call(sh, method, path, body, "application/json", false, &r) != 0)
        return -1;
    if (answer)
        *answer = r.body;
    else
        buf_free(&r.body);
    return r.status;
}

/* rqlite's check of the answer to .reap and .stepdown: 401 is
 * "unauthorized", anything but 200 the status line alone. */
static bool statusOk(shell *sh, const client_resp *r)
{
    if (r->status == 401)
        shell_err(sh, "unauthorized");
    else if (r->status != 200 && r->status_text[0])
        shell_err(sh, "server responded with %s", r->status_text);
    else if (r->status != 200)
        shell_err(sh, "server responded with %ld %s", r->status, client_status_text(r->status));
    return r->status == 200;
}

/* Go's encoding/json error for a body that does not decode, in the two
 * cases a node's non-JSON answers give (nothing, or text); jansson's words
 * otherwise. */
static void jsonError(shell *sh, const char *prefix, const buf *body, const json_error_t *jerr)
{
    const char *p = body->data ? body->data : "";
    size_t i = 0;
    while (i < body->len && isspace((unsigned char)p[i]))
        i++;
    unsigned char c = i < body->len ? (unsigned char)p[i] : 0;
    char q[8]; /* Go's quoteChar */
    if (c == '\'')
        snprintf(q, sizeof q, "'\\''");
    else if (c >= 0x20 && c < 0x7f)
        snprintf(q, sizeof q, "'%c'", c);
    else
        snprintf(q, sizeof q, "'\\x%02x'", c);
    if (i == body->len)
        shell_err(sh, "%sEOF", prefix);
    else if (c == 0 || strchr("{[\"-0123456789tfn", c) == NULL)
        shell_err(sh, "%sinvalid character %s looking for beginning of value", prefix, q);
    else
        shell_err(sh, "%sinvalid JSON response: %s", prefix, jerr->text);
}

/* encoding/json's name for the kind of a value that does not fit. */
static const char *goKind(const json_t *v)
{
    return json_is_string(v) ? "string" : json_is_number(v) ? "number" : json_is_boolean(v) ? "bool"
         : json_is_array(v)  ? "array"  : "object";
}

/* The body of an answer as JSON, or NULL after jsonError (its message
 * after prefix). */
static json_t *decodeBody(shell *sh, const char *prefix, const buf *body)
{
    json_error_t jerr;
    json_t *doc = json_loadb(body->data ? body->data : "", body->len, JSON_DECODE_ANY, &jerr);
    if (doc == NULL)
        jsonError(sh, prefix, body, &jerr);
    return doc;
}

/* Results go to the .output file; what went wrong goes to the screen.
 * Returns whether the result printed without an "ERR!". */
static bool printResults(shell *sh, json_t *doc)
{
    render_opts ro = {sh->mode, sh->timer, sh->changes, !sh->headers};
    char err[512];
    if (render_response(sh->out, doc, &ro, err, sizeof err) == 0)
        return true;
    shell_err(sh, "%s", err);
    return false;
}

/* SQL lines and .tables and its kind: the answer is printed whatever host
 * gave it, and the prompt follows a failover only once a result printed
 * (rqlite drops the news of it with any error). */
static void runAndPrint(shell *sh, const char *method, const char *path, const char *body)
{
    json_t *doc = callJson(sh, method, path, body, true);
    if (doc && printResults(sh, doc))
        moved(sh);
    json_decref(doc);
}

/* Query strings carry file names and SQL; curl would not escape them. */
static void urlEscape(buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (isalnum(*p) || strchr("-_.~", *p))
            buf_putc(b, (char)*p);
        else
            buf_printf(b, "%%%c%c", hex[*p >> 4], hex[*p & 15]);
    }
}

/* One SQL line, sent as a one-statement JSON array as rqlite's shell does,
 * to /db/request (which runs reads and writes alike) or, with
 * .forcewrites, to /db/execute; with no consistency level, as rqlite. */
static void runSql(shell *sh, const char *sql)
{
    json_t *stmts = json_array();
    json_t *str = json_string(sql);
    if (str == NULL) {
        json_decref(stmts);
        shell_err(sh, "the statement is not valid UTF-8");
        return;
    }
    json_array_append_new(stmts, str);
    char *body = json_dumps(stmts, JSON_COMPACT);
    json_decref(stmts);
    buf path = BUF_INIT;
    buf_puts(&path, sh->forcewrites ? "/db/execute" : "/db/request");
    if (sh->timer)
        buf_puts(&path, "?timings");
    runAndPrint(sh, "POST", path.data, body);
    free(body);
    buf_free(&path);
}

/* .tables/.schema/.indexes: a GET query at the configured consistency,
 * the one place rqlite applies .blobarray; timed like any query. */
static void runMetaQuery(shell *sh, const char *sql)
{
    buf path = BUF_INIT;
    buf_printf(&path, "/db/query?level=%s", sh->consistency);
    if (sh->blobarray)
        buf_puts(&path, "&blob_array");
    if (sh->timer)
        buf_puts(&path, "&timings");
    buf_puts(&path, "&q=");
    urlEscape(&path, sql);
    runAndPrint(sh, "GET", path.data, NULL);
    buf_free(&path);
}

/* .status, .expvar and .nodes print JSON as sorted "key: value" lines;
 * with a KEY (the word after the command: rqlite splits the line at
 * spaces) only that top-level member. */
static void showKv(shell *sh, const char *path, const char *arg)
{
    json_t *doc = callJson(sh, "GET", path, NULL, false);
    if (doc == NULL)
        return;
    char *key = strndup(arg, strcspn(arg, " "));
    json_t *sub = json_object_get(doc, key);
    if (*key == '\0') {
        render_kv(stdout, doc, 0);
    } else if (sub) {
        json_t *w = json_object();
        json_object_set(w, key, sub);
        render_kv(stdout, w, 0);
        json_decref(w);
    }
    free(key);
    json_decref(doc);
}

/* rqlite's words for an answer other than 200 to the file and cluster
 * commands: no body, unlike a query's error. */
static bool answerOk(shell *sh, long status)
{
    if (status == 200)
        return true;
    if (status == 401)
        shell_err(sh, "unauthorized");
    else if (status >= 0)
        shell_err(sh, "server responded with: %ld %s", status, client_status_text(status));
    return false;
}

/* The client's progress reports, drawn by the meter. */
static void onProgress(void *ud, double done, double total)
{
    progress_update(ud, done, total);
}

/* A transfer's meter (see progress.h): begun before the request, ended,
 * its line finished, before the command prints its own. */
static void meterBegin(shell *sh, progress *p)
{
    progress_begin(p, sh->meter);
    client_on_progress(sh->cl, onProgress, p);
}

static void meterEnd(shell *sh, progress *p)
{
    client_on_progress(sh->cl, NULL, NULL);
    progress_end(p);
}

/* GET path into file (.backup, .dump). The file is opened first, as rqlite
 * does, so a path that cannot be written costs no download. */
static void download(shell *sh, const char *path, const char *file, const char *done)
{
    FILE *f = fopen(file, "wb");
    if (f == NULL) {
        shell_err(sh, "open %s: %s", file, goStrerror(errno));
        return;
    }
    buf body = BUF_INIT;
    progress meter;
    meterBegin(sh, &meter);
    long status = callStatus(sh, "GET", path, NULL, &body);
    meterEnd(sh, &meter);
    if (answerOk(sh, status)) {
        if (fwrite(body.data ? body.data : "", 1, body.len, f) != body.len || fflush(f) != 0)
            shell_err(sh, "write %s: %s", file, goStrerror(errno));
        else
            printf("%s\n", done);
    }
    fclose(f);
    buf_free(&body);
}

/* Uploads (.restore, .boot) send the file whole, as rqlite's shell does.
 * Returns false if it cannot be opened. */
static bool readFile(const char *file, buf *out)
{
    FILE *f = fopen(file, "rb");
    if (f == NULL)
        return false;
    char tmp[65536];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
        buf_append(out, tmp, n);
    fclose(f);
    return true;
}

/* The header every SQLite database file starts with. */
static bool isSqlite(const buf *b)
{
    return b->len > 13 && memcmp(b->data, "SQLite format", 13) == 0;
}

/* ---- the commands ------------------------------------------------------ */

static int cmdExit(shell *sh, const char *arg) { return 1; }

static int cmdTables(shell *sh, const char *arg)
{
    runMetaQuery(sh, "SELECT name FROM sqlite_master WHERE type=\"table\" ORDER BY name ASC");
    return 0;
}

static int cmdIndexes(shell *sh, const char *arg)
{
    runMetaQuery(sh, "SELECT sql FROM sqlite_master WHERE type=\"index\"");
    return 0;
}

static int cmdSchema(shell *sh, const char *arg)
{
    runMetaQuery(sh, "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY rowid ASC");
    return 0;
}

static int cmdStatus(shell *sh, const char *arg)
{
    showKv(sh, "/status", arg);
    return 0;
}

static int cmdNodes(shell *sh, const char *arg)
{
    showKv(sh, *arg ? "/nodes?nonvoters" : "/nodes", ""); /* rqlite: any argument means all */
    return 0;
}

/* The leader's entry of /nodes under its ID, as rqlite prints it: the node
 * list is the one answer that says which node leads and where it is. */
static int cmdLeader(shell *sh, const char *arg)
{
    json_t *doc = callJson(sh, "GET", "/nodes", NULL, false);
    if (doc == NULL)
        return 0;
    const char *k;
    json_t *v;
    bool found = false;
    json_object_foreach(doc, k, v) {
        if (json_is_true(json_object_get(v, "leader"))) {
            json_t *one = json_pack("{sO}", k, v);
            render_kv(stdout, one, 0);
            json_decref(one);
            found = true;
            break;
        }
    }
    if (!found)
        shell_err(sh, "no leader found");
    json_decref(doc);
    return 0;
}

/* /readyz answers 503 with reasons when not ready; the shell says just that. */
static int cmdReady(shell *sh, const char *arg)
{
    long status = callStatus(sh, "GET", "/readyz", NULL, NULL);
    if (status >= 0)
        printf("%s\n", status == 200 ? "ready" : "not ready");
    return 0;
}

/* The on/off settings: no argument shows the value. */
static void toggle(shell *sh, bool *flag, const char *arg)
{
    if (*arg == '\0')
        printf("%s\n", *flag ? "on" : "off");
    else if (strcasecmp(arg, "on") == 0)
        *flag = true;
    else if (strcasecmp(arg, "off") == 0)
        *flag = false;
    else
        shell_err(sh, "invalid option '%s'. Use 'on' or 'off' (default)", arg);
}

static int cmdTimer(shell *sh, const char *arg)
{
    toggle(sh, &sh->timer, arg);
    return 0;
}

static int cmdChanges(shell *sh, const char *arg)
{
    toggle(sh, &sh->changes, arg);
    return 0;
}

static int cmdForcewrites(shell *sh, const char *arg)
{
    toggle(sh, &sh->forcewrites, arg);
    return 0;
}

/* sqlite3's .headers, which rqlite's shell lacks: column and csv modes
 * print the row of column names unless it is off. */
static int cmdHeaders(shell *sh, const char *arg)
{
    toggle(sh, &sh->headers, arg);
    return 0;
}

static int cmdBlobarray(shell *sh, const char *arg)
{
    toggle(sh, &sh->blobarray, arg);
    return 0;
}

/* The level is only sent with reads, so a bad one is refused here rather
 * than by the node on the next SELECT. */
static int cmdConsistency(shell *sh, const char *arg)
{
    if (*arg == '\0')
        printf("%s\n", sh->consistency);
    else if (!strcmp(arg, "none") || !strcmp(arg, "weak") || !strcmp(arg, "linearizable") || !strcmp(arg, "strong"))
        snprintf(sh->consistency, sizeof sh->consistency, "%s", arg);
    else
        shell_err(sh, "invalid consistency '%s'. Use 'none', 'weak', 'linearizable', or 'strong'", arg);
    return 0;
}

static const char *const modeNames[] = {[MODE_COLUMN] = "column", [MODE_CSV] = "csv", [MODE_JSON] = "json",
                                        [MODE_LINE] = "line"};

/* The names index modeNames, so the table is the one list of modes. */
static int cmdMode(shell *sh, const char *arg)
{
    if (*arg == '\0') {
        printf("%s\n", modeNames[sh->mode]);
        return 0;
    }
    for (size_t m = 0; m < sizeof modeNames / sizeof modeNames[0]; m++) {
        if (strcmp(arg, modeNames[m]) == 0) {
            sh->mode = (render_mode)m;
            return 0;
        }
    }
    shell_err(sh, "invalid mode '%s'. Use 'column', 'csv', 'json', or 'line'", arg);
    return 0;
}

/* rqlite's order and spelling, so scripts reading .show keep working;
 * headers (ours) in its alphabetical place. */
static int cmdShow(shell *sh, const char *arg)
{
    printf("  blobarray: %s\n  changes: %s\n  consistency: %s\n  forcewrites: %s\n  headers: %s\n"
           "  mode: %s\n  output: %s\n  timer: %s\n",
           sh->blobarray ? "on" : "off", sh->changes ? "on" : "off", sh->consistency,
           sh->forcewrites ? "on" : "off", sh->headers ? "on" : "off", modeNames[sh->mode],
           sh->out_path ? sh->out_path : "stdout", sh->timer ? "on" : "off");
    return 0;
}

/* Silent on success as in rqlite: the change shows in .nodes. */
static int cmdRemove(shell *sh, const char *arg)
{
    if (*arg == '\0') {
        shell_err(sh, "please specify a node ID");
        return 0;
    }
    json_t *b = json_pack("{s:s}", "id", arg);
    char *body = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    answerOk(sh, callStatus(sh, "DELETE", "/remove", body, NULL));
    free(body);
    return 0;
}

/* Only query and execute results follow .output, as in rqlite: settings,
 * messages and errors stay on the screen. A file that cannot be opened
 * leaves the output where it was. */
static int cmdOutput(shell *sh, const char *arg)
{
    FILE *f = stdout;
    if (*arg && strcmp(arg, "stdout") != 0 && (f = fopen(arg, "w")) == NULL) {
        shell_err(sh, "open %s: %s", arg, goStrerror(errno));
        return 0;
    }
    if (sh->out != stdout)
        fclose(sh->out);
    free(sh->out_path);
    sh->out = f;
    sh->out_path = f == stdout ? NULL : strdup(arg);
    return 0;
}

static int cmdBackup(shell *sh, const char *arg)
{
    if (*arg == '\0')
        shell_err(sh, "please specify an output file for the backup");
    else
        download(sh, "/db/backup", arg, "backup file written successfully");
    return 0;
}

/* .dump FILE [T1,T2]: the table list is passed to the node as is. */
static int cmdDump(shell *sh, const char *arg)
{
    char file[1024] = "", tables[1024] = "";
    if (sscanf(arg, "%1023s %1023s", file, tables) < 1) {
        shell_err(sh, "please specify an output file for the SQL text");
        return 0;
    }
    buf path = BUF_INIT;
    buf_puts(&path, "/db/backup?fmt=sql");
    if (tables[0]) {
        buf_puts(&path, "&tables=");
        urlEscape(&path, tables);
    }
    download(sh, path.data, file, "SQL text file written successfully");
    buf_free(&path);
    return 0;
}

/* .restore FILE: a SQLite file goes to /db/load as an image, anything else
 * as SQL text, with the foreign-key pragma rqlite's shell appends. */
static int cmdRestore(shell *sh, const char *file)
{
    buf b = BUF_INIT;
    if (*file == '\0') {
        shell_err(sh, "please specify an input file to restore from");
        return 0;
    }
    if (!readFile(file, &b)) {
        shell_err(sh, "open %s: %s", file, goStrerror(errno));
        return 0;
    }
    bool image = isSqlite(&b);
    if (!image)
        buf_puts(&b, "\nPRAGMA foreign_keys=OFF;");
    client_resp r;
    char err[256];
    progress meter;
    meterBegin(sh, &meter);
    int rc = client_upload(sh->cl, "/db/load", b.data ? b.data : "", b.len,
                           image ? "application/octet-stream" : "text/plain", &r, err, sizeof err);
    meterEnd(sh, &meter);
    buf_free(&b);
    if (rc != 0) {
        shell_err(sh, "%s", err);
        return 0;
    }
    if (moved(sh)) { /* as any command but SQL: the answer is dropped */
        buf_free(&r.body);
        return 0;
    }
    json_t *doc = NULL;
    if (answerOk(sh, r.status) && (doc = json_loadb(r.body.data ? r.body.data : "", r.body.len, 0, NULL)) == NULL)
        shell_err(sh, "invalid JSON response");
    buf_free(&r.body);
    if (doc == NULL)
        return 0;
    json_t *results = json_object_get(doc, "results"), *res = json_array_get(results, 0);
    if (!image && res == NULL) {
        shell_err(sh, "unexpected results length: %zu", json_array_size(results));
    } else if (!image && json_object_get(res, "error")) {
        printf("Error: %s\n", json_string_value(json_object_get(res, "error")));
    } else {
        if (!image) {
            printf("last inserted ID: %lld\n", (long long)json_integer_value(json_object_get(res, "last_insert_id")));
            printf("rows affected: %lld\n", (long long)json_integer_value(json_object_get(res, "rows_affected")));
        }
        printf("Database restored successfully.\n");
    }
    json_decref(doc);
    return 0;
}

/* /boot takes only a SQLite image; anything else (a missing file too) is
 * refused before the upload, in rqlite's words. */
static int cmdBoot(shell *sh, const char *file)
{
    if (*file == '\0') {
        shell_err(sh, "please specify an input file to boot with");
        return 0;
    }
    buf b = BUF_INIT;
    if (!readFile(file, &b) || !isSqlite(&b)) {
        shell_err(sh, "%s is not a valid SQLite file", file);
        buf_free(&b);
        return 0;
    }
    client_resp r;
    char err[256];
    progress meter;
    meterBegin(sh, &meter);
    int rc = client_upload(sh->cl, "/boot", b.data, b.len, "application/octet-stream", &r, err, sizeof err);
    meterEnd(sh, &meter);
    if (rc != 0) {
        shell_err(sh, "%s", err);
    } else if (moved(sh)) {
        buf_free(&r.body);
    } else {
        if (r.status == 200)
            printf("Node booted successfully.\n");
        else if (r.status == 401)
            shell_err(sh, "unauthorized");
        else
            shell_err(sh, "boot failed, status code: %ld %s%s%s", r.status, client_status_text(r.status),
                      r.body.len ? ", " : "", r.body.len ? r.body.data : "");
        buf_free(&r.body);
    }
    buf_free(&b);
    return 0;
}

/* 204 is the node saying nothing was new to snapshot: not an error. */
static int cmdSnapshot(shell *sh, const char *arg)
{
    buf path = BUF_INIT;
    buf_puts(&path, "/snapshot");
    if (*arg) {
        buf_puts(&path, "?trailing_logs=");
        urlEscape(&path, arg);
    }
    buf body = BUF_INIT;
    long status = callStatus(sh, "POST", path.data, "", &body);
    if (status >= 0 && status != 200 && status != 204)
        shell_err(sh, "server responded with %ld %s: %s", status, client_status_text(status),
                  body.data ? body.data : "");
    buf_free(&body);
    buf_free(&path);
    return 0;
}

static int cmdExpvar(shell *sh, const char *arg)
{
    showKv(sh, "/debug/vars", arg);
    return 0;
}

/* The names under /status's "extensions" (rqlite's extension store); a
 * node without that section (404) lists none. */
static int cmdExtensions(shell *sh, const char *arg)
{
    client_resp r;
    if (call(sh, "GET", "/status?key=extensions", NULL, NULL, false, &r) != 0)
        return 0;
    json_t *doc = NULL;
    if (r.status == 401)
        shell_err(sh, "unauthorized");
    else if (r.status != 404 && (doc = decodeBody(sh, "", &r.body)) != NULL) {
        size_t i;
        json_t *name;
        json_array_foreach(json_object_get(doc, "names"), i, name) {
            if (json_is_string(name))
                printf("%s\n", json_string_value(name));
        }
    }
    json_decref(doc);
    buf_free(&r.body);
    return 0;
}

/* rqlite decodes /reap's answer into a map of ints: anything else in it
 * is its decoding error. */
static int cmdReap(shell *sh, const char *arg)
{
    client_resp r;
    if (call(sh, "POST", "/reap", "", "", false, &r) != 0)
        return 0;
    json_t *doc = NULL;
    if (statusOk(sh, &r) && (doc = decodeBody(sh, "failed to decode response: ", &r.body)) != NULL) {
        const char *k, *bad = json_is_object(doc) || json_is_null(doc) ? NULL : goKind(doc);
        json_t *v;
        json_object_foreach(doc, k, v) {
            if (!json_is_integer(v) && !json_is_null(v))
                bad = goKind(v);
        }
        if (bad)
            shell_err(sh, "failed to decode response: json: cannot unmarshal %s into Go value of type %s", bad,
                      json_is_object(doc) ? "int" : "map[string]int");
        else
            printf("snapshots reaped: %lld, WALs checkpointed: %lld\n",
                   (long long)json_integer_value(json_object_get(doc, "snapshots_reaped")),
                   (long long)json_integer_value(json_object_get(doc, "wals_checkpointed")));
    }
    json_decref(doc);
    buf_free(&r.body);
    return 0;
}

/* POST /leader: with an ID the leader hands over to that node. Silent on
 * success, as rqlite: .leader shows the outcome. */
static int cmdStepdown(shell *sh, const char *id)
{
    buf body = BUF_INIT;
    buf_puts(&body, "{\"id\":");
    buf_json_cstr(&body, id);
    buf_putc(&body, '}');
    client_resp r;
    if (call(sh, "POST", "/leader?wait=true", *id ? body.data : "", *id ? "application/json" : "", false, &r) == 0) {
        statusOk(sh, &r);
        buf_free(&r.body);
    }
    buf_free(&body);
    return 0;
}

/* One node's part of a sysdump: each URL, its status line (or why it got
 * none) and, when 200, its body; straight to that node, without failover
 * or redirects, as rqlite's. */
static void sysdumpNode(shell *sh, FILE *f, const char *api)
{
    static const char *const paths[] = {"/status?pretty", "/nodes?pretty", "/readyz", "/debug/vars"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        buf url = BUF_INIT;
        buf_printf(&url, "%s%s", api, paths[i]);
        fprintf(f, "\n=========================================\nURL: %s\n", url.data);
        client_resp r;
        char err[1024];
        if (client_get_direct(sh->cl, url.data, &r, err, sizeof err) != 0) {
            fprintf(f, "Status: %s\n\n", err);
        } else {
            if (r.status_text[0])
                fprintf(f, "Status: %s\n\n", r.status_text);
            else
                fprintf(f, "Status: %ld %s\n\n", r.status, client_status_text(r.status));
            if (r.status == 200 && r.body.len)
                fwrite(r.body.data, 1, r.body.len, f);
            buf_free(&r.body);
        }
        buf_free(&url);
    }
}

/* .sysdump FILE: the diagnostics of every voter /nodes lists, in one file.
 * The node list comes first, as in rqlite, so a node that cannot be asked
 * leaves no file behind. */
static int cmdSysdump(shell *sh, const char *file)
{
    if (*file == '\0') {
        shell_err(sh, "please specify an output file for the sysdump");
        return 0;
    }
    client_resp r;
    if (call(sh, "GET", "/nodes", NULL, NULL, false, &r) != 0)
        return 0;
    json_t *nodes = decodeBody(sh, "", &r.body);
    buf_free(&r.body);
    if (nodes == NULL)
        return 0;
    bool ok = json_is_object(nodes) || json_is_null(nodes);
    FILE *f = ok ? fopen(file, "w") : NULL;
    if (!ok)
        shell_err(sh, "json: cannot unmarshal %s into Go value of type main.Nodes", goKind(nodes));
    else if (f == NULL)
        shell_err(sh, "open %s: %s", file, goStrerror(errno));
    const char *id;
    json_t *n;
    json_object_foreach(f ? nodes : NULL, id, n) {
        const char *api = json_string_value(json_object_get(n, "api_addr"));
        if (api && *api)
            sysdumpNode(sh, f, api);
    }
    if (f && (fflush(f) != 0 || ferror(f)))
        shell_err(sh, "write %s: %s", file, goStrerror(errno));
    if (f)
        fclose(f);
    json_decref(nodes);
    return 0;
}

/* Whether s holds nothing but blanks and "--" comment lines. */
static bool onlyComments(const char *s)
{
    for (;;) {
        s += strspn(s, " \t\r\n");
        if (*s == '\0')
            return true;
        if (strncmp(s, "--", 2) != 0)
            return false;
        s += strcspn(s, "\n");
    }
}

/* One line of a .read file that is not part of a statement: skipped when
 * blank or a "--" comment, a dot command when it starts with '.' (as
 * sqlite3's .read runs them; rqlite's would send it as SQL), else SQL. */
static void readLine(shell *sh, char *s, bool sql)
{
    if (*s == '\0' || strncmp(s, "--", 2) == 0)
        return;
    if (*s == '.')
        shell_run_line(sh, s);
    else if (sql)
        runSql(sh, s);
}

/* sqlite3's way, for files whose statements end in ';': the text so far
 * (stmt) is cut at each ';' that completes a statement (sqlite3_complete:
 * not in a string, comment or trigger body), each piece run, the rest kept. */
static void runComplete(shell *sh, buf *stmt)
{
    size_t from = 0;
    for (size_t i = 0; i < stmt->len; i++) {
        if (stmt->data[i] != ';')
            continue;
        char c = stmt->data[i + 1];
        stmt->data[i + 1] = '\0';
        bool done = sqlite3_complete(stmt->data + from) != 0;
        stmt->data[i + 1] = c;
        if (!done)
            continue;
        char *piece = strndup(stmt->data + from, i + 1 - from);
        char *p = piece + strspn(piece, " \t\r\n");
        if (!onlyComments(p))
            runSql(sh, p);
        free(piece);
        from = i + 1;
    }
    char *rest = strdup(stmt->data + from);
    buf_reset(stmt);
    if (!onlyComments(rest))
        buf_puts(stmt, rest);
    free(rest);
}

/* .read FILE. A file without a line ending in ';' is read as rqlite does:
 * each line a statement, blank lines and "--" comments skipped. One with
 * such lines is read as sqlite3 reads it: statements end at their ';',
 * spanning lines or sharing one. Either way a line starting with '.' where
 * a statement could start is a dot command (.read within .read too, a few
 * deep). */
#define SHELL_READ_DEPTH 8
static int cmdRead(shell *sh, const char *path)
{
    static int depth;
    if (*path == '\0') {
        shell_err(sh, "please specify an input file to read from");
        return 0;
    }
    if (depth >= SHELL_READ_DEPTH) {
        shell_err(sh, "%s: .read nested more than %d deep", path, SHELL_READ_DEPTH);
        return 0;
    }
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        shell_err(sh, "open %s: %s", path, goStrerror(errno));
        return 0;
    }
    /* the lines, trimmed, each NUL-terminated, one after the other */
    buf text = BUF_INIT;
    char *line = NULL;
    size_t cap = 0, nlines = 0;
    ssize_t n;
    bool terminated = false;
    while ((n = getline(&line, &cap, f)) > 0) {
        while (n > 0 && isspace((unsigned char)line[n - 1]))
            line[--n] = '\0';
        char *s = line + strspn(line, " \t");
        if (strncmp(s, "--", 2) != 0 && *s && s[strlen(s) - 1] == ';')
            terminated = true;
        buf_append(&text, s, strlen(s) + 1);
        nlines++;
    }
    free(line);
    fclose(f);
    depth++;
    buf stmt = BUF_INIT;
    char *s = text.data;
    for (size_t i = 0; i < nlines; i++, s += strlen(s) + 1) {
        if (!terminated) {
            readLine(sh, s, true);
        } else if (stmt.len == 0 && (*s == '.' || *s == '\0' || strncmp(s, "--", 2) == 0)) {
            readLine(sh, s, false);
        } else {
            buf_puts(&stmt, s);
            buf_putc(&stmt, '\n');
            runComplete(sh, &stmt);
        }
    }
    while (stmt.len && isspace((unsigned char)stmt.data[stmt.len - 1]))
        stmt.data[--stmt.len] = '\0';
    if (stmt.len) /* no ';' after the last one: sent as it is, as rqlite would */
        runSql(sh, stmt.data + strspn(stmt.data, " \t\r\n"));
    depth--;
    buf_free(&stmt);
    buf_free(&text);
    return 0;
}

static int cmdHelp(shell *sh, const char *arg);

/* rqlite's .help, in its order (sorted); .headers is ours. */
static const shell_cmd commands[] = {
    {".backup", ".backup FILE", "Write database backup to FILE", cmdBackup},
    {".blobarray", ".blobarray [on|off]", "Show setting, or set BLOB data display as byte arrays", cmdBlobarray},
    {".boot", ".boot FILE", "Boot the node using a SQLite file read from FILE", cmdBoot},
    {".changes", ".changes [on|off]", "Show setting, or set display of last insert ID after writes", cmdChanges},
    {".consistency", ".consistency [none|weak|linearizable|strong]", "Show or set read consistency level",
     cmdConsistency},
    {".dump", ".dump FILE [TABLE,TABLE...]",
     "Dump the database in SQL text to FILE, optionally limited to TABLEs", cmdDump},
    {".exit", ".exit", "Exit this program", cmdExit},
    {".expvar", ".expvar", "Show expvar (Go runtime) information for connected node", cmdExpvar},
    {".extensions", ".extensions", "Show loaded SQLite extensions", cmdExtensions},
    {".forcewrites", ".forcewrites [on|off]",
     "Show setting, or set all statements to be executed via /db/execute", cmdForcewrites},
    {".headers", ".headers [on|off]", "Show setting, or set display of column names in column and csv modes",
     cmdHeaders},
    {".help", ".help", "Show this message", cmdHelp},
    {".indexes", ".indexes", "Show names of all indexes", cmdIndexes},
    {".leader", ".leader", "Show the current cluster leader", cmdLeader},
    {".mode", ".mode [column|csv|json|line]", "Show or set output mode for query results", cmdMode},
    {".nodes", ".nodes [all]", "Show connection status of voting nodes. 'all' to show all nodes", cmdNodes},
    {".output", ".output FILE", "Send output to FILE, or stdout if FILE is omitted", cmdOutput},
    {".quit", ".quit", "Exit this program", cmdExit},
    {".read", ".read FILE", "Read and execute SQL statements from FILE", cmdRead},
    {".ready", ".ready", "Show ready status for connected node", cmdReady},
    {".reap", ".reap", "Request a snapshot reap on connected node", cmdReap},
    {".remove", ".remove NODEID", "Remove node NODEID from the cluster", cmdRemove},
    {".restore", ".restore FILE", "Load using SQLite file or SQL dump contained in FILE", cmdRestore},
    {".schema", ".schema", "Show CREATE statements for all tables", cmdSchema},
    {".show", ".show", "Show the current values for various settings", cmdShow},
    {".snapshot", ".snapshot [TRAILINGLOGS]", "Request a Raft snapshot and log truncation on connected node",
     cmdSnapshot},
    {".status", ".status", "Show status and diagnostic information for connected node", cmdStatus},
    {".stepdown", ".stepdown [NODEID]", "Instruct the leader to stepdown, optionally specifying new Leader node",
     cmdStepdown},
    {".sysdump", ".sysdump FILE", "Dump system diagnostics to FILE", cmdSysdump},
    {".tables", ".tables", "List names of tables", cmdTables},
    {".timer", ".timer [on|off]", "Show setting, or set query timings on or off", cmdTimer},
};

static const size_t ncommands = sizeof commands / sizeof commands[0];

/* Printed from the table, so a command cannot be added without its line. */
static int cmdHelp(shell *sh, const char *arg)
{
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        printf("%-46s%s\n", commands[i].usage, commands[i].help);
    return 0;
}

/* ---- completion ------------------------------------------------------------ */

static double monoNow(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The node's tables and views, without SQLite's own, at level none so
 * that any node answers from its copy without a trip to the leader. */
static char **fetchTables(shell *sh, size_t *n)
{
    static const char q[] = "/db/query?level=none&q=SELECT%20name%20FROM%20sqlite_master%20WHERE%20type%20IN%20"
                            "(%27table%27%2C%27view%27)%20AND%20name%20NOT%20LIKE%20%27sqlite_%25%27";
    client_resp r;
    if (client_get_quick(sh->cl, q, SHELL_TABLES_TIMEOUT_MS, &r) != 0)
        return NULL;
    json_t *doc = r.status == 200 ? json_loadb(r.body.data ? r.body.data : "", r.body.len, 0, NULL) : NULL;
    buf_free(&r.body);
    json_t *values = json_object_get(json_array_get(json_object_get(doc, "results"), 0), "values");
    char **names = NULL;
    if (json_is_array(values)) {
        names = calloc(json_array_size(values) + 1, sizeof *names);
        size_t i;
        json_t *row;
        *n = 0;
        json_array_foreach(values, i, row) {
            const char *name = json_string_value(json_array_get(row, 0));
            if (name)
                names[(*n)++] = strdup(name);
        }
    }
    json_decref(doc);
    return names;
}

static const char *const *tableNames(void *ud, size_t *n)
{
    shell *sh = ud;
    double now = monoNow();
    double wait = sh->tables_failed ? SHELL_TABLES_BACKOFF : sh->tables_stale ? 0 : SHELL_TABLES_TTL;
    if (sh->tables_at == 0 || now - sh->tables_at >= wait) {
        size_t count = 0;
        char **names = fetchTables(sh, &count);
        sh->tables_at = monoNow();
        sh->tables_failed = names == NULL;
        if (names) {
            complete_free(sh->tables);
            sh->tables = names;
            sh->ntables = count;
            sh->tables_stale = false;
        }
    }
    *n = sh->ntables;
    return (const char *const *)sh->tables;
}

char **shell_complete(shell *sh, const char *line, size_t start, const char *text, bool *files)
{
    const char *usages[64];
    size_t n = 0;
    for (size_t i = 0; i < ncommands && n < sizeof usages / sizeof usages[0]; i++)
        usages[n++] = commands[i].usage;
    complete_src src = {usages, n, tableNames, sh};
    return complete_words(&src, line, start, text, files);
}

/* ---- lines --------------------------------------------------------------- */

/* Case-insensitive: rqlite upper-cases the word, so .TABLES works. */
static const shell_cmd *findCommand(const char *word, size_t n)
{
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strlen(commands[i].name) == n && strncasecmp(commands[i].name, word, n) == 0)
            return &commands[i];
    return NULL;
}

shell_line_kind shell_parse_line(char *line, shell_line *out)
{
    char *s = line;
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    *out = (shell_line){SHELL_LINE_SQL, s, strcspn(s, " \t"), "", NULL, NULL};
    out->arg = s + out->wordlen + strspn(s + out->wordlen, " \t");
    if (*s == '\0')
        return out->kind = SHELL_LINE_EMPTY;
    /* rqlite ends on exit and quit without the dot too */
    if (out->wordlen == 4 && (strncasecmp(s, "exit", 4) == 0 || strncasecmp(s, "quit", 4) == 0))
        out->cmd = findCommand(strncasecmp(s, "exit", 4) == 0 ? ".exit" : ".quit", 5);
    else if (*s == '.')
        out->cmd = findCommand(s, out->wordlen);
    else
        return out->kind;
    if (out->cmd == NULL)
        return out->kind = SHELL_LINE_UNKNOWN;
    out->name = out->cmd->name;
    return out->kind = SHELL_LINE_COMMAND;
}

int shell_run_line(shell *sh, const char *input)
{
    char *line = strdup(input);
    shell_line l;
    int ret = 0;
    shell_parse_line(line, &l);
    int w = l.wordlen < 64 ? (int)l.wordlen : 64; /* an unknown word is echoed, but not a page of it */
    if (l.kind != SHELL_LINE_EMPTY)
        sh->tables_stale = true; /* a statement may have made or dropped a table */
    switch (l.kind) {
    case SHELL_LINE_EMPTY:
        break;
    case SHELL_LINE_COMMAND:
        ret = l.cmd->run(sh, l.arg);
        break;
    case SHELL_LINE_UNKNOWN:
        shell_err(sh, "unknown command: %.*s; enter \".help\" for usage hints", w, l.text);
        break;
    case SHELL_LINE_SQL:
        runSql(sh, l.text);
        break;
    }
    fflush(stdout);
    fflush(sh->out);
    free(line);
    return ret;
}
