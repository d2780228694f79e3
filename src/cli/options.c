/* options.c: see options.h. */
#include "cli/options.h"

#include "util/duration.h"

#include <stdbool.h>
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
    case 'H': s->host = v; break;
    case 'p': s->port = v; break;
    case 's': s->scheme = v; break;
    case 'P': s->prefix = v; break;
    case 'c': s->ca_cert = v; break;
    case 'd': s->client_cert = v; break;
    case 'k': s->client_key = v; break;
    case 'a': o->alternatives = v; break;
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
    *o = (options){{"http", "127.0.0.1", "4001", "/", NULL, NULL, NULL, NULL, false, 30000}, NULL};
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
