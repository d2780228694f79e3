/*
 * tls.c: HTTPS for the API, on libmicrohttpd's GnuTLS, as rqlite's flags
 * ask for it:
 *   -http-cert, -http-key        the server's certificate (chain) and key,
 *                                re-read when either file changes;
 *   -http-verify-client          mutual TLS: a client must present a
 *                                certificate that chains to -http-ca-cert
 *                                (the system's roots without it), valid for
 *                                client authentication;
 *   -http-verify-common-name     ...and whose subject CN is exactly this.
 * TLS 1.2 and 1.3 only; ALPN offers http/1.1 (and http/1.0).
 *
 * The pair is handed to GnuTLS per handshake through libmicrohttpd's
 * certificate callback, as a fresh copy that GnuTLS frees with the
 * session: a reload never pulls a key from under a handshake in progress.
 * At most once a second a handshake looks at the files (mtime, size,
 * inode); when they changed the pair is read again, and used if it parses
 * and the key matches the certificate (rqlite's CertReloader, which keeps
 * the previous pair otherwise). A half-replaced pair (the certificate
 * written, the key not yet) fails that check and is tried again once the
 * files change again.
 *
 * Each connection's transport is ours (http_tls_conn: the socket, and the
 * way back to this object from GnuTLS's callbacks, which carry no other
 * pointer of ours). Its first read tells a TLS handshake from plain HTTP,
 * which gets Go's answer (400 "Client sent an HTTP request to an HTTPS
 * server.") and a close, as rqlite gives it.
 */
#include <errno.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include "http/internal.h"
#include "util/log.h"
#include "util/os.h"

/* TLS 1.2 or later, GnuTLS's NORMAL choice of everything else. */
#define TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"
/* Certificates of a client's chain looked at, at most. */
#define MAX_CHAIN 16

/* What tells that a file changed: rqlite looks at the mtime; a file
 * replaced by rename, or rewritten within one tick of the clock, shows in
 * the inode or the size. */
typedef struct fileStamp {
    struct timespec mtime;
    off_t size;
    ino_t ino;
    dev_t dev;
} fileStamp;

struct http_tls {
    const config *cfg;
    pthread_mutex_t mu;          /* guards everything below it */
    gnutls_datum_t cert, key;    /* the pair in use, PEM as read */
    unsigned n_certs;            /* certificates in cert (leaf first) */
    fileStamp seen_cert, seen_key; /* the files when last read (used or not) */
    int64_t checked_ms;          /* when the files were last looked at */
    gnutls_x509_trust_list_t trust; /* client verification; NULL without -http-verify-client */
    gnutls_datum_t ca;           /* -http-ca-cert's text (the CA names a server asks for) */
    int64_t refused_logged_ms;   /* refused clients: at most one line per 10 s */
    unsigned long refused;
    struct MHD_OptionItem opts[4];
    uint64_t fetches;            /* any thread, relaxed: handshakes given the pair */
};

static int stampOf(const char *path, fileStamp *s)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        return -1;
    *s = (fileStamp){sb.st_mtim, sb.st_size, sb.st_ino, sb.st_dev};
    return 0;
}

static bool sameStamp(const fileStamp *a, const fileStamp *b)
{
    return a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec && a->size == b->size &&
           a->ino == b->ino && a->dev == b->dev;
}

/* Reads the pair at the configured paths and checks it: the certificates
 * parse, the key parses, and the key is the leaf certificate's. On success
 * *cert, *key (gnutls_malloc'd) and *n_certs are set; else -1 and *err. */
static int loadPair(const config *cfg, gnutls_datum_t *cert, gnutls_datum_t *key, unsigned *n_certs, char **err)
{
    gnutls_x509_crt_t *crts = NULL;
    unsigned n = 0;
    gnutls_x509_privkey_t pk = NULL;
    int rc;
    *cert = (gnutls_datum_t){NULL, 0};
    *key = (gnutls_datum_t){NULL, 0};
    if ((rc = gnutls_load_file(cfg->http_cert, cert)) < 0) {
        *err = rq_sprintf("cannot read %s: %s", cfg->http_cert, gnutls_strerror(rc));
        goto fail;
    }
    if ((rc = gnutls_load_file(cfg->http_key, key)) < 0) {
        *err = rq_sprintf("cannot read %s: %s", cfg->http_key, gnutls_strerror(rc));
        goto fail;
    }
    if ((rc = gnutls_x509_crt_list_import2(&crts, &n, cert, GNUTLS_X509_FMT_PEM, 0)) < 0 || n == 0) {
        *err = rq_sprintf("no X.509 certificate in %s: %s", cfg->http_cert,
                          rc < 0 ? gnutls_strerror(rc) : "empty");
        goto fail;
    }
    if (gnutls_x509_privkey_init(&pk) < 0 ||
        (rc = gnutls_x509_privkey_import2(pk, key, GNUTLS_X509_FMT_PEM, NULL, 0)) < 0) {
        *err = rq_sprintf("no usable private key in %s: %s", cfg->http_key, gnutls_strerror(rc));
        goto fail;
    }
    unsigned char a[64], b[64];
    size_t an = sizeof a, bn = sizeof b;
    if (gnutls_x509_crt_get_key_id(crts[0], 0, a, &an) < 0 || gnutls_x509_privkey_get_key_id(pk, 0, b, &bn) < 0 ||
        an != bn || memcmp(a, b, an) != 0) {
        *err = rq_sprintf("the private key in %s does not match the certificate in %s", cfg->http_key,
                          cfg->http_cert);
        goto fail;
    }
    for (unsigned i = 0; i < n; i++)
        gnutls_x509_crt_deinit(crts[i]);
    gnutls_free(crts);
    gnutls_x509_privkey_deinit(pk);
    *n_certs = n;
    return 0;
fail:
    for (unsigned i = 0; i < n; i++)
        gnutls_x509_crt_deinit(crts[i]);
    gnutls_free(crts);
    if (pk)
        gnutls_x509_privkey_deinit(pk);
    gnutls_free(cert->data);
    gnutls_free(key->data);
    *cert = (gnutls_datum_t){NULL, 0};
    *key = (gnutls_datum_t){NULL, 0};
    return -1;
}

/* Called with t->mu held, at most once a second: reads the pair again if
 * either file changed since it was last read. A pair that fails keeps the
 * one in use, and is tried again when the files change again. */
static void maybeReload(http_tls *t)
{
    fileStamp c, k;
    if (stampOf(t->cfg->http_cert, &c) != 0 || stampOf(t->cfg->http_key, &k) != 0) {
        /* rqlite keeps the prior pair too; said once per change of state */
        if (t->seen_cert.size != -1)
            rq_logl(RQ_LOG_WARN, "cert-reloader", "cannot stat %s or %s (%s): keeping the certificate in use",
                    t->cfg->http_cert, t->cfg->http_key, strerror(errno));
        t->seen_cert.size = -1;
        return;
    }
    if (sameStamp(&c, &t->seen_cert) && sameStamp(&k, &t->seen_key))
        return;
    t->seen_cert = c;
    t->seen_key = k;
    gnutls_datum_t cert, key;
    unsigned n;
    char *err = NULL;
    if (loadPair(t->cfg, &cert, &key, &n, &err) != 0) {
        rq_logl(RQ_LOG_WARN, "cert-reloader", "failed to reload certificate (%s), keeping the certificate in use", err);
        free(err);
        return;
    }
    rq_log("cert-reloader", "reloading certificate at %s and key at %s", t->cfg->http_cert, t->cfg->http_key);
    gnutls_free(t->cert.data);
    gnutls_free(t->key.data);
    t->cert = cert;
    t->key = key;
    t->n_certs = n;
}

/* GnuTLS's certificate callback (libmicrohttpd's HTTPS_CERT_CALLBACK2),
 * once per handshake: a copy of the current pair, which GnuTLS frees with
 * the session (GNUTLS_CERT_RETR_DEINIT_ALL). */
static int retrieveCert(gnutls_session_t s, const struct gnutls_cert_retr_st *info, gnutls_pcert_st **certs,
                        unsigned int *n_certs, gnutls_ocsp_data_st **ocsp, unsigned int *n_ocsp,
                        gnutls_privkey_t *key, unsigned int *flags)
{
    (void)info;
    http_tls_conn *tc = gnutls_transport_get_ptr(s);
    http_tls *t = tc->tls;
    *certs = NULL;
    *n_certs = 0;
    *ocsp = NULL;
    *n_ocsp = 0;
    *key = NULL;
    *flags = GNUTLS_CERT_RETR_DEINIT_ALL;
    __atomic_fetch_add(&t->fetches, 1, __ATOMIC_RELAXED);
    pthread_mutex_lock(&t->mu);
    int64_t now = rq_now_ms();
    if (now - t->checked_ms >= 1000) {
        t->checked_ms = now;
        maybeReload(t);
    }
    unsigned n = t->n_certs;
    gnutls_pcert_st *pc = gnutls_calloc(n, sizeof *pc);
    gnutls_privkey_t pk = NULL;
    bool have_certs = false;
    int rc = pc ? gnutls_pcert_list_import_x509_raw(pc, &n, &t->cert, GNUTLS_X509_FMT_PEM, 0) : GNUTLS_E_MEMORY_ERROR;
    if (rc >= 0) {
        have_certs = true;
        if ((rc = gnutls_privkey_init(&pk)) >= 0)
            rc = gnutls_privkey_import_x509_raw(pk, &t->key, GNUTLS_X509_FMT_PEM, NULL, 0);
    }
    pthread_mutex_unlock(&t->mu);
    if (rc < 0) {
        if (pk)
            gnutls_privkey_deinit(pk);
        for (unsigned i = 0; have_certs && i < n; i++)
            gnutls_pcert_deinit(&pc[i]);
        gnutls_free(pc);
        return -1;
    }
    *certs = pc;
    *n_certs = n;
    *key = pk;
    return 0;
}

/* A refused client, logged at most once per 10 s with the count since. */
static void noteRefused(http_tls *t, const char *why)
{
    pthread_mutex_lock(&t->mu);
    t->refused++;
    int64_t now = rq_now_ms();
    unsigned long n = 0;
    if (now - t->refused_logged_ms >= 10000) {
        n = t->refused;
        t->refused = 0;
        t->refused_logged_ms = now;
    }
    pthread_mutex_unlock(&t->mu);
    if (n)
        rq_logl(RQ_LOG_WARN, "http", "refused a client certificate: %s (%lu refused since the last such line)", why, n);
}

/* GnuTLS's verification of a client's certificate, during the handshake
 * (the session's verify function, with GNUTLS_CERT_REQUIRE: a client that
 * sends none has failed the handshake already). Non-zero ends it. */
static int verifyClient(gnutls_session_t s)
{
    http_tls_conn *tc = gnutls_transport_get_ptr(s);
    http_tls *t = tc->tls;
    unsigned n = 0;
    const gnutls_datum_t *raw = gnutls_certificate_get_peers(s, &n);
    if (raw == NULL || n == 0 || gnutls_certificate_type_get(s) != GNUTLS_CRT_X509) {
        noteRefused(t, "no certificate");
        return -1;
    }
    if (n > MAX_CHAIN)
        n = MAX_CHAIN;
    gnutls_x509_crt_t chain[MAX_CHAIN];
    unsigned got = 0; /* initialised, to deinit below */
    int rc = 0;
    for (; got < n; got++) {
        if ((rc = gnutls_x509_crt_init(&chain[got])) < 0)
            break;
        if ((rc = gnutls_x509_crt_import(chain[got], &raw[got], GNUTLS_X509_FMT_DER)) < 0) {
            got++;
            break;
        }
    }
    const char *why = NULL;
    char text[256];
    if (rc < 0) {
        snprintf(text, sizeof text, "unreadable certificate: %s", gnutls_strerror(rc));
        why = text;
    } else {
        gnutls_typed_vdata_st purpose = {GNUTLS_DT_KEY_PURPOSE_OID, (unsigned char *)GNUTLS_KP_TLS_WWW_CLIENT, 0};
        unsigned status = 0;
        rc = gnutls_x509_trust_list_verify_crt2(t->trust, chain, n, &purpose, 1, 0, &status, NULL);
        gnutls_datum_t out = {NULL, 0};
        if (rc < 0) {
            snprintf(text, sizeof text, "%s", gnutls_strerror(rc));
            why = text;
        } else if (status != 0) {
            gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &out, 0);
            snprintf(text, sizeof text, "%s", out.data ? (char *)out.data : "not trusted");
            gnutls_free(out.data);
            for (size_t k = strlen(text); k > 0 && text[k - 1] == ' '; k--)
                text[k - 1] = '\0';
            why = text;
        }
    }
    const char *want = t->cfg->http_verify_common_name;
    if (why == NULL && want && *want) {
        char cn[256];
        size_t cn_len = sizeof cn;
        if (gnutls_x509_crt_get_dn_by_oid(chain[0], GNUTLS_OID_X520_COMMON_NAME, 0, 0, cn, &cn_len) < 0 ||
            strcmp(cn, want) != 0) {
            snprintf(text, sizeof text, "client did not provide any valid certificate that matches CN \"%s\"",
                     want);
            why = text;
        }
    }
    for (unsigned i = 0; i < got; i++)
        gnutls_x509_crt_deinit(chain[i]);
    if (why == NULL)
        return 0;
    noteRefused(t, why);
    return -1;
}

/* The transport GnuTLS reads through. The first bytes of a connection
 * must be a TLS handshake record (content type 22); a client speaking plain
 * HTTP gets Go's answer to that and the connection ends. */
static ssize_t pullFn(gnutls_transport_ptr_t p, void *data, size_t len)
{
    http_tls_conn *tc = p;
    ssize_t n = recv(tc->fd, data, len, 0);
    if (n <= 0 || tc->checked)
        return n;
    tc->checked = true;
    unsigned char first = *(unsigned char *)data;
    if (first == 22)
        return n;
    if (first >= 'A' && first <= 'Z') {
        static const char answer[] = "HTTP/1.0 400 Bad Request\r\n\r\n"
                                     "Client sent an HTTP request to an HTTPS server.\n";
        if (send(tc->fd, answer, sizeof answer - 1, MSG_NOSIGNAL | MSG_DONTWAIT) > 0)
            shutdown(tc->fd, SHUT_WR);
        /* What else the client sent is read, so that the close does not
         * become a reset that could overtake the answer. */
        char sink[4096];
        for (int i = 0; i < 16 && recv(tc->fd, sink, sizeof sink, MSG_DONTWAIT) > 0; i++)
            ;
    }
    errno = ECONNRESET;
    return -1;
}

/* ...and writes through, never raising SIGPIPE. */
static ssize_t pushFn(gnutls_transport_ptr_t p, const giovec_t *iov, int iovcnt)
{
    http_tls_conn *tc = p;
    struct msghdr m = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt};
    return sendmsg(tc->fd, &m, MSG_NOSIGNAL);
}

int http_tls_open(const config *cfg, http_tls **out, char **err)
{
    *out = NULL;
    if (!config_https(cfg))
        return 0;
    http_tls *t = calloc(1, sizeof *t);
    if (t == NULL) {
        *err = strdup("out of memory");
        return -1;
    }
    t->cfg = cfg;
    pthread_mutex_init(&t->mu, NULL);
    t->checked_ms = rq_now_ms();
    char *why = NULL;
    stampOf(cfg->http_cert, &t->seen_cert);
    stampOf(cfg->http_key, &t->seen_key);
    if (loadPair(cfg, &t->cert, &t->key, &t->n_certs, &why) != 0) {
        *err = rq_sprintf("cannot use -http-cert %s and -http-key %s: %s", cfg->http_cert, cfg->http_key, why);
        goto fail;
    }
    if (cfg->http_verify_client) {
        int rc = gnutls_x509_trust_list_init(&t->trust, 0);
        if (rc >= 0 && cfg->http_ca_cert && *cfg->http_ca_cert) {
            rc = gnutls_x509_trust_list_add_trust_file(t->trust, cfg->http_ca_cert, NULL, GNUTLS_X509_FMT_PEM, 0, 0);
            if (rc == 0)
                rc = GNUTLS_E_NO_CERTIFICATE_FOUND;
            if (rc > 0)
                rc = gnutls_load_file(cfg->http_ca_cert, &t->ca);
            if (rc < 0) {
                *err = rq_sprintf("cannot use -http-ca-cert %s: %s", cfg->http_ca_cert, gnutls_strerror(rc));
                goto fail;
            }
        } else if (rc >= 0) {
            rc = gnutls_x509_trust_list_add_system_trust(t->trust, 0, 0);
            if (rc <= 0) {
                *err = rq_sprintf("-http-verify-client without -http-ca-cert needs the system's CA "
                                  "certificates, and none were found: %s",
                                  rc < 0 ? gnutls_strerror(rc) : "empty");
                goto fail;
            }
        }
        if (rc < 0) {
            *err = rq_sprintf("cannot set up client verification: %s", gnutls_strerror(rc));
            goto fail;
        }
    }
    int i = 0;
    t->opts[i++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)TLS_PRIORITIES};
    t->opts[i++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_CERT_CALLBACK2, 0, (void *)retrieveCert};
    if (t->ca.data) /* its names go in the server's certificate request */
        t->opts[i++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_TRUST, 0, t->ca.data};
    t->opts[i] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    *out = t;
    return 0;
fail:
    free(why);
    http_tls_close(t);
    return -1;
}

const struct MHD_OptionItem *http_tls_options(const http_tls *t)
{
    static const struct MHD_OptionItem none[] = {{MHD_OPTION_END, 0, NULL}};
    return t ? t->opts : none;
}

void http_tls_attach(http_tls *t, http_tls_conn *tc, void *session, int fd)
{
    gnutls_session_t s = session;
    tc->tls = t;
    tc->fd = fd;
    tc->checked = false;
    gnutls_transport_set_ptr(s, tc);
    gnutls_transport_set_pull_function(s, pullFn);
    gnutls_transport_set_vec_push_function(s, pushFn);
    if (t->trust) {
        gnutls_certificate_server_set_request(s, GNUTLS_CERT_REQUIRE);
        gnutls_session_set_verify_function(s, verifyClient);
    }
}

int http_tls_send(struct MHD_Connection *c, const void *data, size_t len)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    if (ci == NULL || ci->tls_session == NULL)
        return -1;
    return gnutls_record_send(ci->tls_session, data, len) == (ssize_t)len ? 0 : -1;
}

uint64_t http_tls_cert_fetches(http_tls *t)
{
    return t ? __atomic_load_n(&t->fetches, __ATOMIC_RELAXED) : 0;
}

json_t *http_tls_status(const http_tls *t)
{
    if (t == NULL)
        return json_pack("{s:s}", "enabled", "false");
    const config *cfg = t->cfg;
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:[s,s]}", "enabled", "true", "client_auth",
                     cfg->http_verify_client ? "RequireAndVerifyClientCert" : "NoClientCert", "cert_file",
                     cfg->http_cert, "key_file", cfg->http_key, "ca_file",
                     cfg->http_ca_cert ? cfg->http_ca_cert : "", "next_protos", "http/1.1", "http/1.0");
}

void http_tls_close(http_tls *t)
{
    if (t == NULL)
        return;
    gnutls_free(t->cert.data);
    gnutls_free(t->key.data);
    gnutls_free(t->ca.data);
    if (t->trust)
        gnutls_x509_trust_list_deinit(t->trust, 1);
    pthread_mutex_destroy(&t->mu);
    free(t);
}
