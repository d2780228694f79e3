/*
 * shell.c: commands of the rqlite CLI over libcurl.
 */
#include "cli/shell.h"

#include <ctype.h>
#include <curl/curl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "util/buf.h"

struct shell {
    shell_opts o;
    CURL *curl;
    char base[512];        /* scheme://host:port + prefix without trailing '/' */
    char prompt[300];
    bool tty;
    /* settings */
    bool timer, changes, forcewrites, blobarray;
    char consistency[16];
    render_mode mode;
    FILE *out;
    char *out_path;
};

typedef struct http_resp {
    long status;
    buf body;
    char version[64];
} http_resp;

static size_t onHeader(char *p, size_t size, size_t n, void *ud)
{
    http_resp *r = ud;
    size_t len = size * n;
    static const char name[] = "x-rqlite-version:";
    if (len > sizeof name - 1 && strncasecmp(p, name, sizeof name - 1) == 0) {
        const char *v = p + sizeof name - 1;
        size_t vl = len - (sizeof name - 1);
        while (vl && (*v == ' ')) { v++; vl--; }
        while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' ')) vl--;
        snprintf(r->version, sizeof r->version, "%.*s", (int)vl, v);
    }
    return len;
}

void shell_err(shell *sh, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs(sh->tty ? "\x1b[31mERR!\x1b[0m " : "ERR! ", stdout);
    vfprintf(stdout, fmt, ap);
    fputc('\n', stdout);
    va_end(ap);
}

/* One HTTP request. Returns 0 when an HTTP answer came back, -1 on
 * transport failure (message in err). */
static int request(shell *sh, const char *method, const char *path, const char *body,
                   size_t body_len, const char *ctype, http_resp *r, char *err, size_t errlen)
{
    memset(r, 0, sizeof *r);
    buf_init(&r->body);
    snprintf(r->version, sizeof r->version, "unknown");
    buf url = BUF_INIT;
    buf_printf(&url, "%s%s", sh->base, path);
    CURL *c = sh->curl;
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url.data);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, buf_write_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r->body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, onHeader);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 21L);
    curl_easy_setopt(c, CURLOPT_POSTREDIR, (long)CURL_REDIR_POST_ALL);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (sh->o.timeout_ms > 0)
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, sh->o.timeout_ms);
    if (sh->o.insecure) {
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (sh->o.ca_cert)
        curl_easy_setopt(c, CURLOPT_CAINFO, sh->o.ca_cert);
    if (sh->o.user) {
        curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(c, CURLOPT_USERPWD, sh->o.user);
    }
    struct curl_slist *hdrs = NULL;
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)body_len);
        char h[128];
        snprintf(h, sizeof h, "Content-Type: %s", ctype ? ctype : "application/json");
        hdrs = curl_slist_append(hdrs, h);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    }
    CURLcode rc = curl_easy_perform(c);
    curl_slist_free_all(hdrs);
    buf_free(&url);
    if (rc != CURLE_OK) {
        snprintf(err, errlen, "%s", curl_easy_strerror(rc));
        buf_free(&r->body);
        return rc == CURLE_COULDNT_CONNECT ? -2 : -1;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    return 0;
}

shell *shell_new(const shell_opts *opts)
{
    shell *sh = calloc(1, sizeof *sh);
    sh->o = *opts;
    sh->curl = curl_easy_init();
    const char *prefix = opts->prefix && *opts->prefix ? opts->prefix : "/";
    size_t pl = strlen(prefix);
    while (pl > 0 && prefix[pl - 1] == '/')
        pl--;
    bool v6 = strchr(opts->host, ':') != NULL;
    snprintf(sh->base, sizeof sh->base, "%s://%s%s%s:%s%s%.*s", opts->scheme, v6 ? "[" : "",
             opts->host, v6 ? "]" : "", opts->port, pl && prefix[0] != '/' ? "/" : "", (int)pl, prefix);
    snprintf(sh->prompt, sizeof sh->prompt, "%s%s%s:%s", v6 ? "[" : "", opts->host, v6 ? "]" : "",
             opts->port);
    sh->tty = isatty(1);
    snprintf(sh->consistency, sizeof sh->consistency, "weak");
    sh->mode = MODE_COLUMN;
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
    curl_easy_cleanup(sh->curl);
    free(sh);
}

const char *shell_prompt(shell *sh) { return sh->prompt; }

int shell_connect(shell *sh, char *version, size_t n)
{
    http_resp r;
    char err[256];
    int rc = request(sh, "GET", "/status", NULL, 0, NULL, &r, err, sizeof err);
    if (rc == -2) {
        char url[600];
        snprintf(url, sizeof url, "%s://%s:%s", sh->o.scheme, sh->o.host, sh->o.port);
        shell_err(sh, "Unable to connect to rqlited at %s - is it running?", url);
        return -1;
    }
    if (rc != 0) {
        shell_err(sh, "%s", err);
        return -1;
    }
    snprintf(version, n, "%s", r.version);
    buf_free(&r.body);
    return 0;
}

static const char *statusText(long code)
{
    switch (code) {
    case 200: return "OK";
    case 301: return "Moved Permanently";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Request Entity Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "";
    }
}

/* A 401 is printed as rqlite's dot commands print it; true if it was one. */
static bool refused(shell *sh, const http_resp *r)
{
    if (r->status == 401)
        shell_err(sh, "unauthorized");
    return r->status == 401;
}

/* GET/POST and check for 200; prints rqlite's error and returns NULL
 * otherwise. The parsed JSON body is returned (caller decrefs). */
static json_t *callJson(shell *sh, const char *method, const char *path, const char *body,
                        size_t len, const char *ctype)
{
    http_resp r;
    char err[256];
    if (request(sh, method, path, body, len, ctype, &r, err, sizeof err) != 0) {
        shell_err(sh, "%s", err);
        return NULL;
    }
    if (r.status == 401) {
        shell_err(sh, "unauthorized");
        buf_free(&r.body);
        return NULL;
    }
    if (r.status != 200) {
        shell_err(sh, "server responded with %ld %s: %s", r.status, statusText(r.status),
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

/* Print a data endpoint's answer the way rqlite's CLI does. */
static void printResults(shell *sh, json_t *doc, double elapsed)
{
    const char *top = json_string_value(json_object_get(doc, "error"));
    if (top) {
        shell_err(sh, "%s", top);
        return;
    }
    json_t *results = json_object_get(doc, "results");
    size_t n = json_array_size(results);
    if (n != 1) {
        shell_err(sh, "unexpected results length: %zu", n);
        return;
    }
    json_t *res = json_array_get(results, 0);
    const char *e = json_string_value(json_object_get(res, "error"));
    if (e) {
        fprintf(sh->out, "Error: %s\n", e);
        return;
    }
    json_t *cols = json_object_get(res, "columns");
    if (cols) {
        render_rows(sh->out, cols, json_object_get(res, "values"), sh->mode);
        if (sh->timer)
            fprintf(sh->out, "Run Time: %f seconds\n", elapsed);
        return;
    }
    long long ra = json_integer_value(json_object_get(res, "rows_affected"));
    if (sh->timer) {
        double t = json_number_value(json_object_get(res, "time"));
        fprintf(sh->out, "%lld %s affected (%f sec)\n", ra, ra > 1 ? "rows" : "row", t);
    } else {
        render_affected(sh->out, ra);
    }
    if (sh->changes)
        fprintf(sh->out, "last insert ID: %lld\n",
                (long long)json_integer_value(json_object_get(res, "last_insert_id")));
}

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

/* Which endpoint a line goes to: reads (SELECT, PRAGMA, EXPLAIN) to
 * /db/query at the shell's consistency level, plain writes to /db/execute,
 * anything else (WITH ...) to /db/request, which decides by itself. */
static const char *endpointFor(shell *sh, const char *sql)
{
    static const char *reads[] = {"SELECT", "PRAGMA", "EXPLAIN", "VALUES"};
    static const char *writes[] = {"INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP",
                                   "ALTER", "BEGIN", "COMMIT", "END", "ROLLBACK", "SAVEPOINT",
                                   "RELEASE", "VACUUM", "ANALYZE", "REINDEX", "ATTACH", "DETACH"};
    if (sh->forcewrites)
        return "/db/execute";
    while (isspace((unsigned char)*sql) || *sql == '(')
        sql++;
    size_t n = 0;
    while (isalpha((unsigned char)sql[n]))
        n++;
    for (size_t i = 0; i < sizeof reads / sizeof reads[0]; i++)
        if (strlen(reads[i]) == n && strncasecmp(sql, reads[i], n) == 0)
            return strchr(sql, '=') && strncasecmp(sql, "PRAGMA", 6) == 0 ? "/db/request"
                                                                         : "/db/query";
    for (size_t i = 0; i < sizeof writes / sizeof writes[0]; i++)
        if (strlen(writes[i]) == n && strncasecmp(sql, writes[i], n) == 0)
            return "/db/execute";
    return "/db/request";
}

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
    const char *ep = endpointFor(sh, sql);
    buf path = BUF_INIT;
    buf_puts(&path, ep);
    bool query = strcmp(ep, "/db/query") == 0;
    if (query)
        buf_printf(&path, "?level=%s", sh->consistency);
    if (sh->timer)
        buf_puts(&path, query ? "&timings" : "?timings");
    json_t *doc = callJson(sh, "POST", path.data, body, strlen(body), "application/json");
    free(body);
    buf_free(&path);
    if (doc) {
        json_t *t = json_object_get(doc, "time");
        printResults(sh, doc, t ? json_number_value(t) : 0);
        json_decref(doc);
    }
}

/* .tables/.schema/.indexes: a GET query at the configured consistency. */
static void runMetaQuery(shell *sh, const char *sql)
{
    buf path = BUF_INIT;
    buf_printf(&path, "/db/query?level=%s", sh->consistency);
    if (sh->blobarray)
        buf_puts(&path, "&blob_array");
    buf_puts(&path, "&q=");
    urlEscape(&path, sql);
    json_t *doc = callJson(sh, "GET", path.data, NULL, 0, NULL);
    buf_free(&path);
    if (doc) {
        printResults(sh, doc, 0);
        json_decref(doc);
    }
}

static void showKv(shell *sh, const char *path, const char *key)
{
    json_t *doc = callJson(sh, "GET", path, NULL, 0, NULL);
    if (doc == NULL)
        return;
    if (key && *key) {
        json_t *sub = json_object_get(doc, key);
        if (sub && json_is_object(sub)) {
            fprintf(sh->out, "%s:\n", key);
            render_kv(sh->out, sub, 2);
        } else if (sub) {
            json_t *w = json_object();
            json_object_set(w, key, sub);
            render_kv(sh->out, w, 0);
            json_decref(w);
        }
    } else {
        render_kv(sh->out, doc, 0);
    }
    json_decref(doc);
}

static const char *helpText =
    ".backup FILE                                  Write database backup to FILE\n"
    ".blobarray [on|off]                           Show setting, or set BLOB data display as byte arrays\n"
    ".boot FILE                                    Boot the node using a SQLite file read from FILE\n"
    ".changes [on|off]                             Show setting, or set display of last insert ID after writes\n"
    ".consistency [none|weak|linearizable|strong]  Show or set read consistency level\n"
    ".dump FILE [TABLE,TABLE...]                   Dump the database in SQL text to FILE, optionally limited to TABLEs\n"
    ".exit                                         Exit this program\n"
    ".expvar                                       Show expvar (Go runtime) information for connected node\n"
    ".extensions                                   Show loaded SQLite extensions\n"
    ".forcewrites [on|off]                         Show setting, or set all statements to be executed via /db/execute\n"
    ".help                                         Show this message\n"
    ".indexes                                      Show names of all indexes\n"
    ".leader                                       Show the current cluster leader\n"
    ".mode [column|csv|json|line]                  Show or set output mode for query results\n"
    ".nodes [all]                                  Show connection status of voting nodes. 'all' to show all nodes\n"
    ".output FILE                                  Send output to FILE, or stdout if FILE is omitted\n"
    ".quit                                         Exit this program\n"
    ".read FILE                                    Read and execute SQL statements from FILE\n"
    ".ready                                        Show ready status for connected node\n"
    ".reap                                         Request a snapshot reap on connected node\n"
    ".remove NODEID                                Remove node NODEID from the cluster\n"
    ".restore FILE                                 Load using SQLite file or SQL dump contained in FILE\n"
    ".schema                                       Show CREATE statements for all tables\n"
    ".show                                         Show the current values for various settings\n"
    ".snapshot [TRAILINGLOGS]                      Request a Raft snapshot and log truncation on connected node\n"
    ".status                                       Show status and diagnostic information for connected node\n"
    ".stepdown [NODEID]                            Instruct the leader to stepdown, optionally specifying new Leader node\n"
    ".sysdump FILE                                 Dump system diagnostics to FILE\n"
    ".tables                                       List names of tables\n"
    ".timer [on|off]                               Show setting, or set query timings on or off\n";

static void toggle(shell *sh, bool *flag, const char *arg)
{
    if (arg == NULL || *arg == '\0')
        fprintf(sh->out, "%s\n", *flag ? "on" : "off");
    else if (strcasecmp(arg, "on") == 0)
        *flag = true;
    else if (strcasecmp(arg, "off") == 0)
        *flag = false;
    else
        shell_err(sh, "invalid option '%s'. Use 'on' or 'off' (default)", arg);
}

static const char *modeName(render_mode m)
{
    return m == MODE_CSV ? "csv" : m == MODE_JSON ? "json" : m == MODE_LINE ? "line" : "column";
}

static void leaderCmd(shell *sh)
{
    json_t *doc = callJson(sh, "GET", "/nodes?nonvoters", NULL, 0, NULL);
    if (doc == NULL)
        return;
    const char *k;
    json_t *v;
    bool found = false;
    json_object_foreach(doc, k, v) {
        if (json_is_true(json_object_get(v, "leader"))) {
            render_kv(sh->out, v, 0);
            found = true;
            break;
        }
    }
    if (!found)
        shell_err(sh, "no leader found");
    json_decref(doc);
}

/* GET path and write the body to file (.backup, .dump). */
static void download(shell *sh, const char *path, const char *file, const char *done)
{
    http_resp r;
    char err[256];
    if (request(sh, "GET", path, NULL, 0, NULL, &r, err, sizeof err) != 0) {
        shell_err(sh, "%s", err);
        return;
    }
    if (refused(sh, &r)) {
    } else if (r.status != 200) {
        shell_err(sh, "server responded with %ld %s: %s", r.status, statusText(r.status),
                  r.body.data ? r.body.data : "");
    } else {
        FILE *f = fopen(file, "wb");
        if (f == NULL || fwrite(r.body.data ? r.body.data : "", 1, r.body.len, f) != r.body.len) {
            shell_err(sh, "cannot write %s", file);
        } else {
            fprintf(sh->out, "%s\n", done);
        }
        if (f)
            fclose(f);
    }
    buf_free(&r.body);
}

static bool slurp(shell *sh, const char *file, buf *out)
{
    FILE *f = fopen(file, "rb");
    if (f == NULL) {
        shell_err(sh, "cannot open %s", file);
        return false;
    }
    char tmp[65536];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
        buf_append(out, tmp, n);
    fclose(f);
    return true;
}

static bool isSqlite(const buf *b)
{
    return b->len >= 16 && memcmp(b->data, "SQLite format 3", 16) == 0;
}

/* .restore FILE: a SQLite file via /db/load, or SQL text. */
static void restoreCmd(shell *sh, const char *file)
{
    buf b = BUF_INIT;
    if (!slurp(sh, file, &b))
        return;
    bool image = isSqlite(&b);
    if (!image)
        buf_puts(&b, "\nPRAGMA foreign_keys=OFF;");
    json_t *doc = callJson(sh, "POST", "/db/load", b.data ? b.data : "", b.len,
                           image ? "application/octet-stream" : "text/plain");
    buf_free(&b);
    if (doc == NULL)
        return;
    const char *top = json_string_value(json_object_get(doc, "error"));
    json_t *res = json_array_get(json_object_get(doc, "results"), 0);
    if (top) {
        shell_err(sh, "%s", top);
    } else if (res && json_object_get(res, "error")) {
        fprintf(sh->out, "Error: %s\n", json_string_value(json_object_get(res, "error")));
    } else {
        if (res) {
            fprintf(sh->out, "last inserted ID: %lld\n",
                    (long long)json_integer_value(json_object_get(res, "last_insert_id")));
            fprintf(sh->out, "rows affected: %lld\n",
                    (long long)json_integer_value(json_object_get(res, "rows_affected")));
        }
        fprintf(sh->out, "Database restored successfully.\n");
    }
    json_decref(doc);
}

static void bootCmd(shell *sh, const char *file)
{
    buf b = BUF_INIT;
    if (!slurp(sh, file, &b))
        return;
    if (!isSqlite(&b)) {
        shell_err(sh, "%s is not a valid SQLite file", file);
        buf_free(&b);
        return;
    }
    http_resp r;
    char err[256];
    if (request(sh, "POST", "/boot", b.data, b.len, "application/octet-stream", &r, err, sizeof err) != 0) {
        shell_err(sh, "%s", err);
    } else {
        if (r.status == 200)
            fprintf(sh->out, "Node booted successfully.\n");
        else if (!refused(sh, &r))
            shell_err(sh, "boot failed, status code: %ld %s, %s", r.status, statusText(r.status),
                      r.body.data ? r.body.data : "");
        buf_free(&r.body);
    }
    buf_free(&b);
}

static void readFile(shell *sh, const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        shell_err(sh, "cannot open %s", path);
        return;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' '))
            line[--n] = '\0';
        char *s = line;
        while (*s == ' ' || *s == '\t')
            s++;
        if (*s == '\0' || strncmp(s, "--", 2) == 0)
            continue;
        runSql(sh, s);
    }
    free(line);
    fclose(f);
}

int shell_run_line(shell *sh, const char *input)
{
    char *line = strdup(input);
    char *s = line;
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    int ret = 0;
    if (*s == '\0')
        goto done;
    /* The first word, upper-cased, selects a command. */
    char cmd[64];
    size_t w = strcspn(s, " \t");
    snprintf(cmd, sizeof cmd, "%.*s", (int)(w < sizeof cmd - 1 ? w : sizeof cmd - 1), s);
    for (char *p = cmd; *p; p++)
        *p = (char)toupper((unsigned char)*p);
    char *arg = s + w;
    while (*arg == ' ' || *arg == '\t')
        arg++;

    if (!strcmp(cmd, ".EXIT") || !strcmp(cmd, ".QUIT") || !strcmp(cmd, "EXIT") || !strcmp(cmd, "QUIT")) {
        ret = 1;
    } else if (!strcmp(cmd, ".HELP")) {
        fputs(helpText, sh->out);
    } else if (!strcmp(cmd, ".TABLES")) {
        runMetaQuery(sh, "SELECT name FROM sqlite_master WHERE type=\"table\" ORDER BY name ASC");
    } else if (!strcmp(cmd, ".INDEXES")) {
        runMetaQuery(sh, "SELECT sql FROM sqlite_master WHERE type=\"index\"");
    } else if (!strcmp(cmd, ".SCHEMA")) {
        runMetaQuery(sh, "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY rowid ASC");
    } else if (!strcmp(cmd, ".STATUS")) {
        showKv(sh, "/status", arg);
    } else if (!strcmp(cmd, ".NODES")) {
        showKv(sh, strcasecmp(arg, "all") == 0 ? "/nodes?nonvoters" : "/nodes", NULL);
    } else if (!strcmp(cmd, ".LEADER")) {
        leaderCmd(sh);
    } else if (!strcmp(cmd, ".READY")) {
        http_resp r;
        char err[256];
        if (request(sh, "GET", "/readyz", NULL, 0, NULL, &r, err, sizeof err) != 0) {
            shell_err(sh, "%s", err);
        } else {
            fprintf(sh->out, "%s\n", r.status == 200 ? "ready" : "not ready");
            buf_free(&r.body);
        }
    } else if (!strcmp(cmd, ".TIMER")) {
        toggle(sh, &sh->timer, arg);
    } else if (!strcmp(cmd, ".CHANGES")) {
        toggle(sh, &sh->changes, arg);
    } else if (!strcmp(cmd, ".FORCEWRITES")) {
        toggle(sh, &sh->forcewrites, arg);
    } else if (!strcmp(cmd, ".BLOBARRAY")) {
        toggle(sh, &sh->blobarray, arg);
    } else if (!strcmp(cmd, ".CONSISTENCY")) {
        if (*arg == '\0')
            fprintf(sh->out, "%s\n", sh->consistency);
        else if (!strcmp(arg, "none") || !strcmp(arg, "weak") || !strcmp(arg, "linearizable") ||
                 !strcmp(arg, "strong"))
            snprintf(sh->consistency, sizeof sh->consistency, "%s", arg);
        else
            shell_err(sh, "invalid consistency '%s'. Use 'none', 'weak', 'linearizable', or 'strong'", arg);
    } else if (!strcmp(cmd, ".MODE")) {
        if (*arg == '\0')
            fprintf(sh->out, "%s\n", modeName(sh->mode));
        else if (!strcmp(arg, "column")) sh->mode = MODE_COLUMN;
        else if (!strcmp(arg, "csv")) sh->mode = MODE_CSV;
        else if (!strcmp(arg, "json")) sh->mode = MODE_JSON;
        else if (!strcmp(arg, "line")) sh->mode = MODE_LINE;
        else shell_err(sh, "invalid mode '%s'. Use 'column', 'csv', 'json', or 'line'", arg);
    } else if (!strcmp(cmd, ".SHOW")) {
        fprintf(sh->out, "  blobarray: %s\n  changes: %s\n  consistency: %s\n  forcewrites: %s\n"
                         "  mode: %s\n  output: %s\n  timer: %s\n",
                sh->blobarray ? "on" : "off", sh->changes ? "on" : "off", sh->consistency,
                sh->forcewrites ? "on" : "off", modeName(sh->mode), sh->out_path ? sh->out_path : "stdout",
                sh->timer ? "on" : "off");
    } else if (!strcmp(cmd, ".REMOVE")) {
        if (*arg == '\0') {
            shell_err(sh, "please specify a node ID");
        } else {
            json_t *b = json_pack("{s:s}", "id", arg);
            char *body = json_dumps(b, JSON_COMPACT);
            json_decref(b);
            http_resp r;
            char err[256];
            if (request(sh, "DELETE", "/remove", body, strlen(body), "application/json", &r, err, sizeof err) != 0)
                shell_err(sh, "%s", err);
            else {
                if (!refused(sh, &r) && r.status != 200)
                    shell_err(sh, "server responded with: %ld %s", r.status, statusText(r.status));
                buf_free(&r.body);
            }
            free(body);
        }
    } else if (!strcmp(cmd, ".OUTPUT")) {
        if (sh->out != stdout)
            fclose(sh->out);
        free(sh->out_path);
        sh->out_path = NULL;
        sh->out = stdout;
        if (*arg) {
            FILE *f = fopen(arg, "w");
            if (f == NULL) {
                shell_err(sh, "cannot open %s", arg);
            } else {
                sh->out = f;
                sh->out_path = strdup(arg);
            }
        }
    } else if (!strcmp(cmd, ".BACKUP") || !strcmp(cmd, ".RESTORE") || !strcmp(cmd, ".BOOT")) {
        if (*arg == '\0')
            shell_err(sh, "please specify an output file for the backup");
        else if (cmd[1] == 'B' && cmd[2] == 'A')
            download(sh, "/db/backup", arg, "backup file written successfully");
        else if (cmd[1] == 'R')
            restoreCmd(sh, arg);
        else
            bootCmd(sh, arg);
    } else if (!strcmp(cmd, ".SNAPSHOT")) {
        buf path = BUF_INIT;
        buf_puts(&path, "/snapshot");
        if (*arg) {
            buf_puts(&path, "?trailing_logs=");
            urlEscape(&path, arg);
        }
        http_resp r;
        char err[256];
        if (request(sh, "POST", path.data, "", 0, "application/json", &r, err, sizeof err) != 0) {
            shell_err(sh, "%s", err);
        } else {
            if (!refused(sh, &r) && r.status != 200 && r.status != 204)
                shell_err(sh, "server responded with %ld %s: %s", r.status, statusText(r.status),
                          r.body.data ? r.body.data : "");
            buf_free(&r.body);
        }
        buf_free(&path);
    } else if (!strcmp(cmd, ".DUMP")) {
        char file[1024] = "", tables[1024] = "";
        if (sscanf(arg, "%1023s %1023s", file, tables) < 1) {
            shell_err(sh, "please specify an output file for the SQL text");
        } else {
            buf path = BUF_INIT;
            buf_puts(&path, "/db/backup?fmt=sql");
            if (tables[0]) {
                buf_puts(&path, "&tables=");
                urlEscape(&path, tables);
            }
            download(sh, path.data, file, "SQL text file written successfully");
            buf_free(&path);
        }
    } else if (!strcmp(cmd, ".READ")) {
        if (*arg == '\0')
            shell_err(sh, "please specify a file to read");
        else
            readFile(sh, arg);
    } else if (cmd[0] == '.') {
        /* A command rqlite has but this build lacks is said so plainly. */
        char pat[80];
        snprintf(pat, sizeof pat, "%.*s ", (int)(w < 64 ? w : 64), s);
        for (char *p = pat; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        const char *hit = strstr(helpText, pat);
        if (hit && (hit == helpText || hit[-1] == '\n'))
            shell_err(sh, "%.*s is not supported yet by this build", (int)(w < 64 ? w : 64), s);
        else
            shell_err(sh, "unknown command: %.*s; enter \".help\" for usage hints", (int)(w < 64 ? w : 64), s);
    } else {
        runSql(sh, s);
    }
done:
    fflush(sh->out);
    free(line);
    return ret;
}
