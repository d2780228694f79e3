/* client.c: see client.h. */
#include "cli/client.h"

#include <ctype.h>
#include <curl/curl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "util/addr.h"

struct client {
    shell_opts o;
    CURL *curl;
    buf prefix;     /* the URL prefix without trailing '/' ("" for "/") */
    char **hosts;   /* client_host_list's */
    size_t nhosts;
    size_t current; /* the host requests go to first */
    long moved_to;  /* index of the host the last request moved to, or -1 */
    char *dial_addr; /* client_get_direct: where the connection went ("ip:port") */
    client_progress_fn progress;
    void *progress_ud;
    long connect_ms; /* client_get_quick's connect timeout, 0 for curl's */
};

size_t client_host_list(const char *host, const char *port, const char *alternatives, char ***hosts)
{
    const char *alt = alternatives ? alternatives : "";
    size_t n = 1;
    for (const char *p = alt; *p; p++)
        n += *p == ',';
    n++; /* room for one entry per comma, plus the last */
    size_t strings = strlen(host) + strlen(port) + 4 + strlen(alt) + n;
    char **list = calloc(1, n * sizeof *list + strings);
    char *s = (char *)(list + n);
    bool v6 = strchr(host, ':') != NULL;
    list[0] = s;
    s += sprintf(s, "%s%s%s:%s", v6 ? "[" : "", host, v6 ? "]" : "", port) + 1;
    size_t count = 1;
    for (const char *p = alt;; p++) {
        size_t len = strcspn(p, ",");
        const char *e = p + len;
        while (p < e && isspace((unsigned char)*p))
            p++;
        while (e > p && isspace((unsigned char)e[-1]))
            e--;
        if (e > p) {
            list[count++] = s;
            memcpy(s, p, (size_t)(e - p));
            s += e - p;
            *s++ = '\0';
        }
        p += strcspn(p, ",");
        if (*p == '\0')
            break;
    }
    *hosts = list;
    return count;
}

client *client_new(const shell_opts *opts)
{
    client *c = calloc(1, sizeof *c);
    c->o = *opts;
    c->curl = curl_easy_init();
    const char *prefix = opts->prefix && *opts->prefix ? opts->prefix : "/";
    size_t pl = strlen(prefix);
    while (pl > 0 && prefix[pl - 1] == '/')
        pl--;
    buf_init(&c->prefix);
    if (pl && prefix[0] != '/')
        buf_putc(&c->prefix, '/');
    buf_append(&c->prefix, prefix, pl);
    buf_putc(&c->prefix, '\0');
    c->nhosts = client_host_list(opts->host, opts->port, opts->alternatives, &c->hosts);
    c->moved_to = -1;
    return c;
}

void client_free(client *c)
{
    if (c == NULL)
        return;
    curl_easy_cleanup(c->curl);
    buf_free(&c->prefix);
    free(c->hosts);
    free(c);
}

const char *client_host_change(const client *c)
{
    return c->moved_to >= 0 ? c->hosts[c->moved_to] : NULL;
}

/* rqlite's client logs through Go's log package: "[client] " and the
 * local date and time before each line, on stderr. */
static void clientLog(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void clientLog(const char *fmt, ...)
{
    char ts[32];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(ts, sizeof ts, "%Y/%m/%d %H:%M:%S", &tm);
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "[client] %s ", ts);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* Go puts the host into the URL escaped, then refuses to parse it back if
 * escaping was needed: such a host (a space, '/', '@' ...) fails like an
 * unreachable one, and never reaches curl, which would read it as a path
 * or credentials. */
static bool hostUsable(const char *host)
{
    for (const unsigned char *p = (const unsigned char *)host; *p; p++)
        if (!isalnum(*p) && *p < 0x80 && strchr("!$&'()*+,;=:[]<>\"-_.~", *p) == NULL)
            return false;
    return true;
}

/* libcurl hands headers one at a time: the status line (the last one, after
 * redirects) and the version are kept, the rest is not needed. */
static size_t onHeader(char *p, size_t size, size_t n, void *ud)
{
    client_resp *r = ud;
    size_t len = size * n, vl = len;
    static const char name[] = "x-rqlite-version:";
    char *dst = NULL;
    const char *v = p;
    if (len > 5 && strncmp(p, "HTTP/", 5) == 0) {
        v = memchr(p, ' ', len);
        vl = v ? len - (size_t)(v - p) : 0;
        dst = r->status_text;
        snprintf(r->version, sizeof r->version, "unknown"); /* a redirect's answer starts anew */
    } else if (len > sizeof name - 1 && strncasecmp(p, name, sizeof name - 1) == 0) {
        v = p + sizeof name - 1;
        vl = len - (sizeof name - 1);
        dst = r->version;
    }
    if (dst == NULL || v == NULL)
        return len;
    while (vl && *v == ' ') {
        v++;
        vl--;
    }
    while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
        vl--;
    snprintf(dst, dst == r->version ? sizeof r->version : sizeof r->status_text, "%.*s", (int)vl, v);
    return len;
}

/* Records the address each connection goes to (Go names it in a dial
 * error; curl keeps it only for connections that succeeded). */
static curl_socket_t openSocket(void *ud, curlsocktype purpose, struct curl_sockaddr *a)
{
    char *dst = ud;
    if (a->family == AF_INET || a->family == AF_INET6)
        addr_format(&a->addr, dst, 128);
    return socket(a->family, a->socktype, a->protocol);
}

/* libcurl's CURLOPT_XFERINFOFUNCTION: an upload's count while there is one,
 * else the download's. Never aborts the transfer. */
static int onXferInfo(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
    client *c = ud;
    if (ultotal > 0 || ulnow > 0)
        c->progress(c->progress_ud, (double)ulnow, (double)ultotal);
    else
        c->progress(c->progress_ud, (double)dlnow, (double)dltotal);
    return 0;
}

void client_on_progress(client *c, client_progress_fn fn, void *ud)
{
    c->progress = fn;
    c->progress_ud = ud;
}

/* The options every request carries; curl_easy_reset clears them, so
 * they are set again each time rather than once. */
static void setCommon(client *c, const char *url, long timeout_ms, bool follow, client_resp *r)
{
    CURL *h = c->curl;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1); /* rqlite's client offers no h2 */
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, buf_write_cb);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &r->body);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, onHeader);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
    /* rqlite's client follows a follower's 301 to the leader itself, at most 21 times. */
    if (follow) {
        curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
        curl_easy_setopt(h, CURLOPT_MAXREDIRS, 21L);
        curl_easy_setopt(h, CURLOPT_POSTREDIR, (long)CURL_REDIR_POST_ALL);
        curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    }
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    if (c->dial_addr) {
        curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, openSocket);
        curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, c->dial_addr);
    }
    if (timeout_ms > 0)
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    if (c->connect_ms > 0)
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->connect_ms);
    if (c->progress) {
        curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, onXferInfo);
        curl_easy_setopt(h, CURLOPT_XFERINFODATA, c);
    }
    if (c->o.insecure) {
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (c->o.ca_cert)
        curl_easy_setopt(h, CURLOPT_CAINFO, c->o.ca_cert);
    if (c->o.client_cert)
        curl_easy_setopt(h, CURLOPT_SSLCERT, c->o.client_cert);
    if (c->o.client_key)
        curl_easy_setopt(h, CURLOPT_SSLKEY, c->o.client_key);
    if (c->o.user) {
        curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(h, CURLOPT_USERPWD, c->o.user);
    }
}

/* One request to one URL; r is filled when it returns CURLE_OK. */
static CURLcode attempt(client *c, const char *url, const char *method, const char *body, size_t len,
                        const char *ctype, long timeout_ms, bool follow, client_resp *r)
{
    memset(r, 0, sizeof *r);
    buf_init(&r->body);
    snprintf(r->version, sizeof r->version, "unknown");
    curl_easy_reset(c->curl);
    setCommon(c, url, timeout_ms, follow, r);
    curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, method);
    struct curl_slist *hdrs = NULL;
    if (body) {
        curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE, (long)len);
        char h[128];
        snprintf(h, sizeof h, "Content-Type:%s%s", ctype && !*ctype ? "" : " ", ctype ? ctype : "application/json");
        hdrs = curl_slist_append(hdrs, h); /* "Content-Type:" alone: curl sends none */
        curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, hdrs);
    }
    CURLcode rc = curl_easy_perform(c->curl);
    curl_slist_free_all(hdrs);
    if (rc != CURLE_OK)
        buf_free(&r->body);
    else
        curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &r->status);
    return rc;
}

/* rqlite's doRequest: from the current host, each host at most once, until
 * one answers; the client stays on the host that answered. */
static int failover(client *c, const char *method, const char *path, const char *body, size_t len,
                    const char *ctype, long timeout_ms, client_resp *r, char *err, size_t errlen)
{
    c->moved_to = -1;
    for (size_t tried = 0; tried < c->nhosts; tried++) {
        const char *host = c->hosts[c->current];
        CURLcode rc = CURLE_URL_MALFORMAT;
        if (hostUsable(host)) {
            buf url = BUF_INIT;
            buf_printf(&url, "%s://%s%s%s", c->o.scheme, host, c->prefix.data, path);
            rc = attempt(c, url.data, method, body, len, ctype, timeout_ms, true, r);
            buf_free(&url);
        }
        if (rc == CURLE_OK) {
            if (tried > 0)
                c->moved_to = (long)c->current;
            return 0;
        }
        if (rc == CURLE_TOO_MANY_REDIRECTS)
            clientLog("too many redirects from host: '%s'", host);
        clientLog("host '%s' is unavailable, retrying with the next available host", host);
        c->current = (c->current + 1) % c->nhosts;
    }
    clientLog("none of the available hosts are responsive");
    snprintf(err, errlen, "no host available to perform the request");
    return CLIENT_FAILED;
}

int client_request(client *c, const char *method, const char *path, const char *body, size_t len,
                   const char *ctype, client_resp *r, char *err, size_t errlen)
{
    return failover(c, method, path, body, len, ctype, c->o.timeout_ms, r, err, errlen);
}

int client_upload(client *c, const char *path, const char *body, size_t len, const char *ctype, client_resp *r,
                  char *err, size_t errlen)
{
    size_t current = c->current;
    int rc = failover(c, "POST", path, body, len, ctype, 0, r, err, errlen);
    c->current = current;
    return rc;
}

int client_get_direct(client *c, const char *url, client_resp *r, char *err, size_t errlen)
{
    char addr[128] = "";
    c->dial_addr = addr;
    CURLcode rc = attempt(c, url, "GET", NULL, 0, NULL, c->o.timeout_ms, false, r);
    c->dial_addr = NULL;
    if (rc == CURLE_OK)
        return 0;
    /* Go's net/http words for the failures a node that is down causes */
    if (rc == CURLE_COULDNT_CONNECT && addr[0])
        snprintf(err, errlen, "Get \"%s\": dial tcp %s: connect: connection refused", url, addr);
    else if (rc == CURLE_OPERATION_TIMEDOUT)
        snprintf(err, errlen, "Get \"%s\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
                 url);
    else
        snprintf(err, errlen, "Get \"%s\": %s", url, curl_easy_strerror(rc));
    return CLIENT_FAILED;
}

int client_get_quick(client *c, const char *path, long timeout_ms, client_resp *r)
{
    const char *host = c->hosts[c->current];
    if (!hostUsable(host))
        return CLIENT_FAILED;
    buf url = BUF_INIT;
    buf_printf(&url, "%s://%s%s%s", c->o.scheme, host, c->prefix.data, path);
    c->connect_ms = timeout_ms;
    CURLcode rc = attempt(c, url.data, "GET", NULL, 0, NULL, timeout_ms, true, r);
    c->connect_ms = 0;
    buf_free(&url);
    return rc == CURLE_OK ? 0 : CLIENT_FAILED;
}

const char *client_status_text(long code)
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
