/* client.c: see client.h. */
#include "cli/client.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct client {
    shell_opts o;
    CURL *curl;
    char base[512]; /* scheme://host:port + prefix without trailing '/' */
};

client *client_new(const shell_opts *opts)
{
    client *c = calloc(1, sizeof *c);
    c->o = *opts;
    c->curl = curl_easy_init();
    const char *prefix = opts->prefix && *opts->prefix ? opts->prefix : "/";
    size_t pl = strlen(prefix);
    while (pl > 0 && prefix[pl - 1] == '/')
        pl--;
    bool v6 = strchr(opts->host, ':') != NULL;
    snprintf(c->base, sizeof c->base, "%s://%s%s%s:%s%s%.*s", opts->scheme, v6 ? "[" : "", opts->host,
             v6 ? "]" : "", opts->port, pl && prefix[0] != '/' ? "/" : "", (int)pl, prefix);
    return c;
}

void client_free(client *c)
{
    if (c == NULL)
        return;
    curl_easy_cleanup(c->curl);
    free(c);
}

/* libcurl hands headers one at a time; only the version matters (the
 * banner shows it), so it is picked out here rather than kept. */
static size_t onHeader(char *p, size_t size, size_t n, void *ud)
{
    client_resp *r = ud;
    size_t len = size * n;
    static const char name[] = "x-rqlite-version:";
    if (len > sizeof name - 1 && strncasecmp(p, name, sizeof name - 1) == 0) {
        const char *v = p + sizeof name - 1;
        size_t vl = len - (sizeof name - 1);
        while (vl && (*v == ' ')) {
            v++;
            vl--;
        }
        while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
            vl--;
        snprintf(r->version, sizeof r->version, "%.*s", (int)vl, v);
    }
    return len;
}

/* The options every request carries; curl_easy_reset clears them, so
 * they are set again each time rather than once. */
static void setCommon(client *c, const char *url, long timeout_ms, client_resp *r)
{
    CURL *h = c->curl;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, buf_write_cb);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &r->body);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, onHeader);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
    /* rqlite's client follows a follower's 301 to the leader itself, at most 21 times. */
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, 21L);
    curl_easy_setopt(h, CURLOPT_POSTREDIR, (long)CURL_REDIR_POST_ALL);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    if (timeout_ms > 0)
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
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

/* client_request and client_upload differ only in the time limit. */
static int perform(client *c, const char *method, const char *path, const char *body, size_t len,
                   const char *ctype, long timeout_ms, client_resp *r, char *err, size_t errlen)
{
    memset(r, 0, sizeof *r);
    buf_init(&r->body);
    snprintf(r->version, sizeof r->version, "unknown");
    buf url = BUF_INIT;
    buf_printf(&url, "%s%s", c->base, path);
    curl_easy_reset(c->curl);
    setCommon(c, url.data, timeout_ms, r);
    curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, method);
    struct curl_slist *hdrs = NULL;
    if (body) {
        curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE, (long)len);
        char h[128];
        snprintf(h, sizeof h, "Content-Type: %s", ctype ? ctype : "application/json");
        hdrs = curl_slist_append(hdrs, h);
        curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, hdrs);
    }
    CURLcode rc = curl_easy_perform(c->curl);
    curl_slist_free_all(hdrs);
    buf_free(&url);
    if (rc != CURLE_OK) {
        snprintf(err, errlen, "%s", curl_easy_strerror(rc));
        buf_free(&r->body);
        return rc == CURLE_COULDNT_CONNECT ? CLIENT_REFUSED : CLIENT_FAILED;
    }
    curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &r->status);
    return 0;
}

int client_request(client *c, const char *method, const char *path, const char *body, size_t len,
                   const char *ctype, client_resp *r, char *err, size_t errlen)
{
    return perform(c, method, path, body, len, ctype, c->o.timeout_ms, r, err, errlen);
}

int client_upload(client *c, const char *path, const char *body, size_t len, const char *ctype, client_resp *r,
                  char *err, size_t errlen)
{
    return perform(c, "POST", path, body, len, ctype, 0, r, err, errlen);
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
