/*
 * s3.c: the "s3" storage type, any S3-compatible service, over libcurl.
 *
 * libcurl signs every request (AWS Signature Version 4, CURLOPT_AWS_SIGV4)
 * when an access key and secret are given; the body is sent unsigned
 * (x-amz-content-sha256: UNSIGNED-PAYLOAD, which S3 accepts on every
 * request, and which lets the body stream from a file). The upload is one
 * PUT of known length from the file, with the id as the object's metadata
 * x-amz-meta-x-rqlite-auto-backup-id; HEAD reads it back; GET downloads.
 *
 * One PUT is limited to 5 GiB by S3 (rqlite's SDK would switch to a
 * multipart upload): a larger upload fails and says why.
 */
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "backup/internal.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/os.h"

#define ID_HEADER "x-amz-meta-x-rqlite-auto-backup-id"

typedef struct s3Client {
    backupClient base;
    char *base_url;   /* "scheme://host[:port]" plus "/bucket" when path-style */
    char *key;        /* the object's key, as configured */
    char *sigv4;      /* "aws:amz:REGION:s3" */
    char *access_key, *secret;
    bool timestamp;
} s3Client;

/* RFC 3986 percent-encoding of a key, '/' kept (S3's canonical URI). */
static void encodeKey(buf *b, const char *key)
{
    for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
        if (isalnum(*p) || *p == '-' || *p == '_' || *p == '.' || *p == '~' || *p == '/')
            buf_putc(b, (char)*p);
        else
            buf_printf(b, "%%%02X", *p);
    }
}

static char *objectUrl(s3Client *c, const char *key)
{
    buf b = BUF_INIT;
    buf_puts(&b, c->base_url);
    buf_putc(&b, '/');
    encodeKey(&b, key);
    return b.data;
}

/* What a request shares: signing, timeouts, headers. */
static CURL *newEasy(s3Client *c, const char *url, struct curl_slist **hdrs, const char *id)
{
    CURL *e = curl_easy_init();
    if (e == NULL)
        return NULL;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 30000L);
    /* No fixed bound on a transfer that moves: a stalled one ends. */
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, 120L);
    if (c->access_key && *c->access_key && c->secret && *c->secret) {
        curl_easy_setopt(e, CURLOPT_AWS_SIGV4, c->sigv4);
        curl_easy_setopt(e, CURLOPT_USERNAME, c->access_key);
        curl_easy_setopt(e, CURLOPT_PASSWORD, c->secret);
    }
    *hdrs = curl_slist_append(NULL, "x-amz-content-sha256: UNSIGNED-PAYLOAD");
    if (id) {
        char h[300];
        snprintf(h, sizeof h, ID_HEADER ": %s", id);
        *hdrs = curl_slist_append(*hdrs, h);
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, *hdrs);
    return e;
}

/* S3's error document, reduced to its Code and Message for the log. */
static char *s3Error(const char *op, const char *desc, CURLcode cc, long status, const buf *body,
                     const char *cerr)
{
    if (cc != CURLE_OK)
        return rq_sprintf("failed to %s %s: %s", op, desc, *cerr ? cerr : curl_easy_strerror(cc));
    const char *text = body->data ? body->data : "";
    char code[128] = "", msg[512] = "";
    const char *p;
    if ((p = strstr(text, "<Code>")) != NULL)
        sscanf(p + 6, "%127[^<]", code);
    if ((p = strstr(text, "<Message>")) != NULL)
        sscanf(p + 9, "%511[^<]", msg);
    return rq_sprintf("failed to %s %s: HTTP %ld%s%s%s%s", op, desc, status, *code ? " " : "", code,
                      *msg ? ": " : "", msg);
}

/* Run e: 0 on a 2xx answer, else -1 with *err saying what op on desc met
 * (libcurl's error in cerr, or the status and body). */
static int s3Perform(CURL *e, const char *op, const char *desc, const buf *body, const char *cerr, char **err)
{
    CURLcode cc = curl_easy_perform(e);
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    if (cc == CURLE_OK && status / 100 == 2)
        return 0;
    *err = s3Error(op, desc, cc, status, body, cerr);
    return -1;
}

typedef struct progress {
    const bool *cancel;
    const char *desc;
    int64_t started_ms, logged_ms;
} progress;

/* A line every 5 s while a transfer lasts. */
static int logProgress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
    progress *p = arg;
    if (__atomic_load_n(p->cancel, __ATOMIC_RELAXED))
        return 1; /* abandoned: the node is stopping */
    int64_t now = rq_now_ms();
    if (now - p->logged_ms < 5000)
        return 0;
    p->logged_ms = now;
    bool up = ultotal > 0;
    curl_off_t done = up ? ulnow : dlnow, total = up ? ultotal : dltotal;
    rq_log(up ? "uploader" : "downloader", "%s %s: %lld of %lld bytes (%d%%) in %.1f s",
           up ? "uploading to" : "downloading from", p->desc, (long long)done, (long long)total,
           total > 0 ? (int)(done * 100 / total) : 0, (double)(now - p->started_ms) / 1000.0);
    return 0;
}

/* A transfer's errors in cerr and its progress (and cancellation) in p. */
static void watchTransfer(CURL *e, char *cerr, progress *p)
{
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, logProgress);
    curl_easy_setopt(e, CURLOPT_XFERINFODATA, p);
}

static int s3Upload(backupClient *bc, int fd, uint64_t size, const char *id, char **err)
{
    s3Client *c = (s3Client *)bc;
    if (size > (5ULL << 30)) {
        *err = rq_sprintf("failed to upload to %s: %llu bytes is more than S3's 5 GiB limit for one PUT "
                          "(multipart upload is not implemented)", c->base.desc, (unsigned long long)size);
        return -1;
    }
    char *key = c->timestamp ? backup_timestamped(c->key, time(NULL)) : strdup(c->key);
    char *url = objectUrl(c, key);
    free(key);
    int dfd = dup(fd);
    FILE *in = dfd >= 0 ? fdopen(dfd, "rb") : NULL;
    if (in == NULL || fseeko(in, 0, SEEK_SET) != 0) {
        *err = rq_sprintf("cannot read the backup: %s", strerror(errno));
        if (in)
            fclose(in);
        else if (dfd >= 0)
            close(dfd);
        free(url);
        return -1;
    }
    struct curl_slist *hdrs = NULL;
    CURL *e = newEasy(c, url, &hdrs, id);
    buf body = BUF_INIT;
    char cerr[CURL_ERROR_SIZE] = "";
    progress prog = {&c->base.cancel, c->base.desc, rq_now_ms(), rq_now_ms()};
    curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(e, CURLOPT_READDATA, in);
    curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)size);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, buf_write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &body);
    watchTransfer(e, cerr, &prog);
    int rc = s3Perform(e, "upload to", url, &body, cerr, err);
    curl_easy_cleanup(e);
    curl_slist_free_all(hdrs);
    fclose(in);
    buf_free(&body);
    free(url);
    return rc;
}

typedef struct idCapture {
    char *id;
} idCapture;

/* HEAD's headers: the id's, whatever its case. */
static size_t headerCb(char *p, size_t size, size_t n, void *arg)
{
    idCapture *ic = arg;
    size_t len = size * n, hl = strlen(ID_HEADER);
    if (len > hl + 1 && strncasecmp(p, ID_HEADER, hl) == 0 && p[hl] == ':') {
        const char *v = p + hl + 1;
        const char *end = p + len;
        while (v < end && (*v == ' ' || *v == '\t'))
            v++;
        while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
            end--;
        free(ic->id);
        ic->id = strndup(v, (size_t)(end - v));
    }
    return len;
}

/* The id of the object at the configured key (not a timestamped one:
 * rqlite's HEAD too), an error when it is missing or has none. */
static int s3CurrentId(backupClient *bc, char **id, char **err)
{
    s3Client *c = (s3Client *)bc;
    char *url = objectUrl(c, c->key);
    struct curl_slist *hdrs = NULL;
    CURL *e = newEasy(c, url, &hdrs, NULL);
    idCapture ic = {NULL};
    char cerr[CURL_ERROR_SIZE] = "";
    buf none = BUF_INIT;
    curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, headerCb);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, &ic);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 60000L);
    int rc = s3Perform(e, "get object head for", c->base.desc, &none, cerr, err);
    if (rc == 0 && ic.id == NULL) {
        *err = rq_sprintf("sum metadata not found for %s", c->base.desc);
        rc = -1;
    } else if (rc == 0) {
        *id = ic.id;
        ic.id = NULL;
    }
    free(ic.id);
    curl_easy_cleanup(e);
    curl_slist_free_all(hdrs);
    free(url);
    return rc;
}

typedef struct sink {
    int fd;
    long status;
    CURL *e;
    buf errbody; /* an error's document instead of the object */
    uint64_t bytes;
    bool failed;
} sink;

static size_t sinkWrite(char *p, size_t size, size_t n, void *arg)
{
    sink *s = arg;
    size_t len = size * n;
    if (s->status == 0)
        curl_easy_getinfo(s->e, CURLINFO_RESPONSE_CODE, &s->status);
    if (s->status / 100 != 2) {
        if (s->errbody.len < 4096)
            buf_append(&s->errbody, p, len);
        return len;
    }
    if (rq_write_all(s->fd, p, len) != 0) {
        s->failed = true;
        return 0;
    }
    s->bytes += len;
    return len;
}

static int s3Download(backupClient *bc, int fd, uint64_t timeout_ms, uint64_t *bytes, char **err)
{
    s3Client *c = (s3Client *)bc;
    char *url = objectUrl(c, c->key);
    struct curl_slist *hdrs = NULL;
    CURL *e = newEasy(c, url, &hdrs, NULL);
    sink s = {.fd = fd, .e = e};
    char cerr[CURL_ERROR_SIZE] = "";
    progress prog = {&c->base.cancel, c->base.desc, rq_now_ms(), rq_now_ms()};
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, sinkWrite);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    watchTransfer(e, cerr, &prog);
    CURLcode cc = curl_easy_perform(e);
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    int rc = 0;
    if (s.failed) {
        *err = rq_sprintf("failed to download from %s: cannot write the temporary file: %s", c->base.desc,
                          strerror(errno));
        rc = -1;
    } else if (cc != CURLE_OK || status / 100 != 2) {
        *err = s3Error("download from", c->base.desc, cc, status, &s.errbody, cerr);
        rc = -1;
    }
    *bytes = s.bytes;
    curl_easy_cleanup(e);
    curl_slist_free_all(hdrs);
    buf_free(&s.errbody);
    free(url);
    return rc;
}

static void s3Free(backupClient *bc)
{
    s3Client *c = (s3Client *)bc;
    free(c->base_url);
    free(c->key);
    free(c->sigv4);
    free(c->access_key);
    free(c->secret);
    free(c);
}

/* Is host (no port) an IP address or localhost, where a bucket cannot be
 * a subdomain? */
static bool literalHost(const char *host, size_t n)
{
    if (n == 9 && strncasecmp(host, "localhost", 9) == 0)
        return true;
    if (n > 0 && host[0] == '[')
        return true;
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)host[i]) && host[i] != '.')
            return false;
    return n > 0;
}

backupClient *backupS3New(const backup_config *cfg, char **err)
{
    const char *region = cfg->region && *cfg->region ? cfg->region : "us-east-1";
    char *endpoint;
    if (cfg->endpoint && *cfg->endpoint)
        endpoint = strstr(cfg->endpoint, "://") ? strdup(cfg->endpoint) : rq_sprintf("https://%s", cfg->endpoint);
    else
        endpoint = rq_sprintf("https://s3.%s.amazonaws.com", region);
    size_t el = strlen(endpoint);
    while (el > 0 && endpoint[el - 1] == '/')
        endpoint[--el] = '\0';
    const char *host = strstr(endpoint, "://") + 3;
    if (strchr(host, '/')) {
        *err = rq_sprintf("s3: endpoint %s must not hold a path", cfg->endpoint);
        free(endpoint);
        return NULL;
    }
    const char *colon = host[0] == '[' ? strchr(host, ']') : strchr(host, ':');
    size_t hl = colon ? (size_t)(colon - host) + (host[0] == '[') : strlen(host);
    s3Client *c = calloc(1, sizeof *c);
    if (cfg->force_path_style || literalHost(host, hl))
        c->base_url = rq_sprintf("%s/%s", endpoint, cfg->bucket);
    else
        c->base_url = rq_sprintf("%.*s%s.%s", (int)(host - endpoint), endpoint, cfg->bucket, host);
    c->key = strdup(cfg->path[0] == '/' ? cfg->path + 1 : cfg->path);
    c->sigv4 = rq_sprintf("aws:amz:%s:s3", region);
    c->access_key = cfg->access_key_id ? strdup(cfg->access_key_id) : NULL;
    c->secret = cfg->secret_access_key ? strdup(cfg->secret_access_key) : NULL;
    c->timestamp = cfg->timestamp;
    c->base.upload = s3Upload;
    c->base.current_id = s3CurrentId;
    c->base.download = s3Download;
    c->base.free = s3Free;
    /* rqlite's String(): AWS itself as s3://, others by their endpoint. */
    if (!(cfg->endpoint && *cfg->endpoint) || strstr(host, "amazonaws.com"))
        snprintf(c->base.desc, sizeof c->base.desc, "s3://%s/%s", cfg->bucket, cfg->path);
    else
        snprintf(c->base.desc, sizeof c->base.desc, "%s/%s/%s", endpoint, cfg->bucket, cfg->path);
    free(endpoint);
    return &c->base;
}
