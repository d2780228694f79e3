/* options.c: see options.h. */
#include "cli/options.h"

#include "util/buf.h"
#include "util/duration.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void options_usage(FILE *out)
{
    fprintf(out, "rqlite is the command-line interface for rqlite.\n\n"
                 "Options:\n\n"
                 "  -h, --help\n      display help information\n\n"
                 "  -a, --alternatives\n      comma separated list of 'host:port' pairs to use as fallback\n\n"
                 "  -s, --scheme[=http]\n      protocol scheme (http or https)\n\n"
                 "  -H, --host[=127.0.0.1]\n      rqlited host address\n\n"
                 "  -p, --port[=4001]\n      rqlited host port\n\n"
                 "  -P, --prefix[=/]\n      rqlited HTTP URL prefix\n\n"
                 "  -i, --insecure[=false]\n      do not verify rqlited HTTPS certificate\n\n"
                 "  -c, --ca-cert\n      path to trusted X.509 root CA certificate\n\n"
                 "  -d, --client-cert\n      path to client X.509 certificate for mutual TLS\n\n"
                 "  -k, --client-key\n      path to client X.509 key for mutual TLS\n\n"
                 "  -u, --user\n      set basic auth credentials in form username:password\n\n"
                 "  -v, --version\n      display CLI version\n\n"
                 "  -t, --http-timeout[=30s]\n      set timeout on HTTP requests\n");
}

/* One flag in its short and long spelling, so each flag is a single test
 * in options_parse. Returns the value ("" for a boolean given without
 * one), NULL when argv[*i] is another flag, and sets *missing when a
 * value-taking flag ends the command line. */
static const char *flagValue(int argc, char **argv, int *i, const char *s, const char *l, bool boolean,
                             bool *missing)
{
    const char *a = argv[*i];
    const char *name = NULL;
    if (a[0] == '-' && a[1] == '-')
        name = a + 2;
    else if (a[0] == '-')
        name = a + 1;
    else
        return NULL;
    size_t n = strcspn(name, "=");
    bool match = (strlen(s) == n && strncmp(name, s, n) == 0) || (strlen(l) == n && strncmp(name, l, n) == 0);
    if (!match)
        return NULL;
    if (name[n] == '=')
        return name + n + 1;
    if (boolean)
        return "";
    if (*i + 1 >= argc) {
        *missing = true;
        return "";
    }
    return argv[++*i];
}

/* -t's value: Go's duration syntax ("30s", "1m30s", "250ms", "1.5h"),
 * since rqlite reads it with time.ParseDuration. Returns milliseconds
 * (a positive value under 1 ms rounds up, so it still limits; zero or
 * negative means no limit, as Go's http.Client takes them), or -1 with
 * Go's message in err. */
static long parseDuration(const char *v, char *err, size_t errlen)
{
    int64_t ns;
    if (rq_duration_parse(v, &ns, err, errlen) != 0)
        return -1;
    if (ns <= 0)
        return 0;
    return (long)((ns + 999999) / 1000000);
}

/* The value-taking flags: where each one's value goes. */
static bool setValue(options *o, const char *flag, const char *v, char *err, size_t errlen)
{
    shell_opts *s = &o->shell;
    switch (flag[0]) {
    case 'H': s->host = v; o->addr_given = true; break;
    case 'p': s->port = v; o->addr_given = true; break;
    case 's': s->scheme = v; o->addr_given = true; break;
    case 'P': s->prefix = v; break;
    case 'c': s->ca_cert = v; break;
    case 'd': s->client_cert = v; break;
    case 'k': s->client_key = v; break;
    case 'a': s->alternatives = v; break;
    case 't':
        if ((s->timeout_ms = parseDuration(v, err, errlen)) < 0)
            return false;
        break;
    case 'u':
        if (strchr(v, ':') == NULL) {
            snprintf(err, errlen, "invalid Basic Auth credential format");
            return false;
        }
        s->user = v;
        break;
    }
    return true;
}

options_action options_parse(int argc, char **argv, options *o, char *err, size_t errlen)
{
    static const struct {
        const char *s, *l;
        bool boolean;
    } flags[] = {
        {"h", "help", true},   {"v", "version", true},      {"H", "host", false},
        {"p", "port", false},  {"s", "scheme", false},      {"P", "prefix", false},
        {"u", "user", false},  {"c", "ca-cert", false},     {"i", "insecure", true},
        {"t", "http-timeout", false}, {"a", "alternatives", false}, {"d", "client-cert", false},
        {"k", "client-key", false},
    };
    *o = (options){.shell = {.scheme = "http", .host = "127.0.0.1", .port = "4001", .prefix = "/", .timeout_ms = 30000}};
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *v = NULL;
        size_t f;
        bool missing = false;
        for (f = 0; f < sizeof flags / sizeof flags[0]; f++)
            if ((v = flagValue(argc, argv, &i, flags[f].s, flags[f].l, flags[f].boolean, &missing)))
                break;
        if (v == NULL) {
            snprintf(err, errlen, "unknown option: %s", arg);
            return OPTIONS_UNKNOWN;
        }
        if (missing) {
            snprintf(err, errlen, "option %s requires a value", arg);
            return OPTIONS_ERROR;
        }
        if (flags[f].s[0] == 'h')
            return OPTIONS_HELP;
        if (flags[f].s[0] == 'v')
            return OPTIONS_VERSION;
        if (flags[f].s[0] == 'i')
            o->shell.insecure = strcmp(v, "false") != 0;
        else if (!setValue(o, flags[f].s, v, err, errlen))
            return OPTIONS_ERROR;
    }
    return OPTIONS_RUN;
}

/* ---- RQLITE_HOST ----------------------------------------------------------
 * rqlite reads it with Go's url.Parse; what follows is the part of that
 * parser a "[scheme:]//host[:port]" value goes through, with its checks
 * and its words, so that a value Go refuses is refused here alike. */

/* Go's strconv.Quote, for the value in "parse \"...\": ..." messages. */
static void goQuote(buf *b, const char *s, size_t n)
{
    buf_putc(b, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = strchr("\a\b\f\n\r\t\v", c);
        if (c == '"' || c == '\\')
            buf_printf(b, "\\%c", c);
        else if (c && esc)
            buf_printf(b, "\\%c", "abfnrtv"[esc - "\a\b\f\n\r\t\v"]);
        else if (c < 0x20 || c == 0x7f)
            buf_printf(b, "\\x%02x", c);
        else
            buf_putc(b, (char)c);
    }
    buf_putc(b, '"');
}

/* Go's validOptionalPort: "" or ':' followed by digits only. */
static bool validOptionalPort(const char *p, size_t n)
{
    if (n == 0)
        return true;
    if (p[0] != ':')
        return false;
    for (size_t i = 1; i < n; i++)
        if (p[i] < '0' || p[i] > '9')
            return false;
    return true;
}

/* Go's unescape checks: each '%' starts two hex digits and, in a host,
 * escapes only a non-ASCII byte (or is "%25"); a host's other ASCII bytes
 * must be ones URLs allow there. The offending text goes in why. */
static bool checkEscapes(const char *s, size_t n, bool host, buf *why)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%') {
            bool bad = i + 2 >= n || !isxdigit((unsigned char)s[i + 1]) || !isxdigit((unsigned char)s[i + 2]);
            if (bad || (host && s[i + 1] < '8' && strncmp(s + i, "%25", 3) != 0)) {
                buf_puts(why, "invalid URL escape ");
                goQuote(why, s + i, n - i < 3 ? n - i : 3);
                return false;
            }
            i += 2;
        } else if (host && c < 0x80 && !isalnum(c) && strchr("!$&'()*+,;=:[]<>\"-_.~", c) == NULL) {
            buf_puts(why, "invalid character ");
            goQuote(why, s + i, 1);
            buf_puts(why, " in host name");
            return false;
        }
    }
    return true;
}

/* Go's parseAuthority and parseHost: [userinfo@]host[:port] with the
 * host's checks; *host and *hostlen get the host with its port. */
static bool parseAuthority(const char *a, size_t n, const char **host, size_t *hostlen, buf *why)
{
    const char *at = NULL;
    for (size_t i = 0; i < n; i++)
        if (a[i] == '@')
            at = a + i;
    const char *h = at ? at + 1 : a;
    size_t hl = n - (size_t)(h - a);
    const char *colon = NULL;
    if (hl && h[0] == '[') {
        const char *close = NULL;
        for (size_t i = 0; i < hl; i++)
            if (h[i] == ']')
                close = h + i;
        if (close == NULL) {
            buf_puts(why, "missing ']' in host");
            return false;
        }
        colon = close + 1;
    } else {
        for (size_t i = 0; i < hl; i++)
            if (h[i] == ':')
                colon = h + i;
    }
    size_t pl = colon ? hl - (size_t)(colon - h) : 0;
    if (colon && !validOptionalPort(colon, pl)) {
        buf_puts(why, "invalid port ");
        goQuote(why, colon, pl);
        buf_puts(why, " after host");
        return false;
    }
    if (!checkEscapes(h, hl, true, why))
        return false;
    for (const char *u = a; at && u < at; u++) {
        if (!isalnum((unsigned char)*u) && strchr("-._:~!$&'()*+,;=%@", *u) == NULL) {
            buf_puts(why, "net/url: invalid userinfo");
            return false;
        }
    }
    if (at && !checkEscapes(a, (size_t)(at - a), false, why))
        return false;
    *host = h;
    *hostlen = hl;
    return true;
}

/* Go's url.Parse as far as the scheme and the authority: *scheme gets the
 * lower-cased scheme ("" if none), *host the authority's host[:port]
 * (NULL when the URL has none). Returns false with Go's reason in why. */
static bool parseUrl(const char *v, char *scheme, size_t sl, const char **host, size_t *hostlen, buf *why)
{
    *host = NULL;
    *hostlen = 0;
    scheme[0] = '\0';
    size_t n = strcspn(v, "#"), i = 0; /* Go cuts the fragment off first */
    for (const char *p = v; p < v + n; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            buf_puts(why, "net/url: invalid control character in URL");
            return false;
        }
    }
    while (i < n && (isalpha((unsigned char)v[i]) || (i && (isdigit((unsigned char)v[i]) || strchr("+-.", v[i])))))
        i++;
    const char *rest = v;
    if (i < n && v[i] == ':') {
        if (i == 0) {
            buf_puts(why, "missing protocol scheme");
            return false;
        }
        snprintf(scheme, sl, "%.*s", (int)i, v);
        for (char *c = scheme; *c; c++)
            *c = (char)tolower((unsigned char)*c);
        rest = v + i + 1;
    }
    size_t rl = n - (size_t)(rest - v);
    const char *q = memchr(rest, '?', rl);
    if (q)
        rl = (size_t)(q - rest);
    if (rl == 0 || rest[0] != '/') {
        size_t seg = strcspn(rest, "/");
        if (*scheme == '\0' && memchr(rest, ':', seg < rl ? seg : rl)) {
            buf_puts(why, "first path segment in URL cannot contain colon");
            return false;
        }
        return *scheme ? true : checkEscapes(rest, rl, false, why);
    }
    if (rl >= 2 && rest[1] == '/' && (*scheme || rl < 3 || rest[2] != '/')) {
        const char *a = rest + 2;
        size_t al = rl - 2, pathAt = strcspn(a, "/");
        if (pathAt > al)
            pathAt = al;
        if (!parseAuthority(a, pathAt, host, hostlen, why))
            return false;
        rest = a + pathAt;
        rl = al - pathAt;
    }
    return checkEscapes(rest, rl, false, why);
}

/* rqlite's ParseHostEnv: the scheme must be http, https or none, the host
 * must be there, a port must be a number in [0, 65535]. */
static int parseHostEnv(const char *v, char *scheme, size_t sl, char *host, size_t hl, long *port, buf *why)
{
    const char *h = NULL;
    size_t n = 0;
    const char *frag = v + strcspn(v, "#"); /* Go unescapes the fragment after the rest */
    if (!parseUrl(v, scheme, sl, &h, &n, why) || (*frag && !checkEscapes(frag + 1, strlen(frag + 1), false, why))) {
        buf b = BUF_INIT;
        buf_puts(&b, "parse ");
        goQuote(&b, v, strlen(v));
        buf_printf(&b, ": %s", why->data);
        buf_reset(why);
        buf_puts(why, b.data);
        buf_free(&b);
        return -1;
    }
    if (*scheme && strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) {
        buf_printf(why, "unsupported protocol %s", scheme);
        return -1;
    }
    /* Go's Hostname and Port: split at a last ':' followed by digits only */
    const char *colon = NULL;
    for (size_t i = 0; h && i < n; i++)
        if (h[i] == ':')
            colon = h + i;
    size_t pl = colon && validOptionalPort(colon, n - (size_t)(colon - h)) ? n - (size_t)(colon - h) : 0;
    size_t namel = n - pl;
    const char *name = h;
    if (namel >= 2 && name[0] == '[' && name[namel - 1] == ']') {
        name++;
        namel -= 2;
    }
    if (h == NULL || namel == 0) {
        buf_puts(why, "RQLITE_HOST does not contain a hostname");
        return -1;
    }
    if (namel >= hl) {
        buf_puts(why, "RQLITE_HOST's hostname is too long");
        return -1;
    }
    size_t o = 0; /* Go's Hostname is unescaped; checkEscapes vouched for each '%' */
    for (size_t i = 0; i < namel; i++) {
        if (name[i] == '%') {
            char hex[3] = {name[i + 1], name[i + 2], 0};
            host[o++] = (char)strtol(hex, NULL, 16);
            i += 2;
        } else {
            host[o++] = name[i];
        }
    }
    host[o] = '\0';
    *port = 0;
    if (pl > 1) {
        char digits[32];
        snprintf(digits, sizeof digits, "%.*s", (int)(pl - 1), colon + 1);
        if (pl - 1 > 19 || strtoull(digits, NULL, 10) > (unsigned long long)INT64_MAX) {
            buf_printf(why, "port '%.*s' is not a valid number: strconv.Atoi: parsing \"%.*s\": value out of range",
                       (int)(pl - 1), colon + 1, (int)(pl - 1), colon + 1);
            return -1;
        }
        long long p = strtoll(digits, NULL, 10);
        if (p > 65535) {
            buf_printf(why, "port number %lld is outside of valid range [0, 65535]", p);
            return -1;
        }
        *port = (long)p;
    }
    return 0;
}

int options_host_env(options *o, const char *value, char *err, size_t errlen)
{
    if (value == NULL || o->addr_given)
        return 0;
    char scheme[32];
    long port;
    buf why = BUF_INIT;
    int rc = parseHostEnv(value, scheme, sizeof scheme, o->env_host, sizeof o->env_host, &port, &why);
    if (rc != 0) {
        snprintf(err, errlen, "%s", why.data);
    } else {
        if (*scheme)
            o->shell.scheme = strcmp(scheme, "http") == 0 ? "http" : "https";
        o->shell.host = o->env_host;
        if (port) {
            snprintf(o->env_port, sizeof o->env_port, "%ld", port);
            o->shell.port = o->env_port;
        }
    }
    buf_free(&why);
    return rc;
}
