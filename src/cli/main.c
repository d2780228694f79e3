/*
 * rqlite: the command-line shell for rqlited.
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <editline/readline.h>

#include "cli/shell.h"

static void usage(void)
{
    printf("rqlite is the command-line interface for rqlite.\n\n"
           "Options:\n\n"
           "  -h, --help\n      display help information\n\n"
           "  -a, --alternatives\n      comma separated list of 'host:port' pairs to use as fallback\n\n"
           "  -s, --scheme[=http]\n      protocol scheme (http or https)\n\n"
           "  -H, --host[=127.0.0.1]\n      rqlited host address\n\n"
           "  -p, --port[=4001]\n      rqlited host port\n\n"
           "  -P, --prefix[=/]\n      rqlited HTTP URL prefix\n\n"
           "  -i, --insecure[=false]\n      do not verify rqlited HTTPS certificate\n\n"
           "  -c, --ca-cert\n      path to trusted X.509 root CA certificate\n\n"
           "  -u, --user\n      set basic auth credentials in form username:password\n\n"
           "  -v, --version\n      display CLI version\n\n"
           "  -t, --http-timeout[=30s]\n      set timeout on HTTP requests\n");
}

/* Match "-x", "--long", "-x=v", "--long=v"; value from the next argument
 * otherwise. Returns the value, "" for booleans, or NULL if no match. */
static const char *flagValue(int argc, char **argv, int *i, const char *s, const char *l, bool boolean)
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
        fprintf(stderr, "ERR! option %s requires a value\n", a);
        exit(1);
    }
    return argv[++*i];
}

static long parseTimeout(const char *v)
{
    char *end;
    double x = strtod(v, &end);
    if (strcmp(end, "ms") == 0) return (long)x;
    if (strcmp(end, "s") == 0 || *end == '\0') return (long)(x * 1000);
    if (strcmp(end, "m") == 0) return (long)(x * 60000);
    return 30000;
}

int main(int argc, char **argv)
{
    shell_opts o = {"http", "127.0.0.1", "4001", "/", NULL, NULL, false, 30000};
    for (int i = 1; i < argc; i++) {
        const char *v;
        if ((v = flagValue(argc, argv, &i, "h", "help", true))) {
            usage();
            return 0;
        } else if ((v = flagValue(argc, argv, &i, "v", "version", true))) {
            printf("Version %s, commit unknown, built on unknown\n", RQ_VERSION);
            return 0;
        } else if ((v = flagValue(argc, argv, &i, "H", "host", false))) {
            o.host = v;
        } else if ((v = flagValue(argc, argv, &i, "p", "port", false))) {
            o.port = v;
        } else if ((v = flagValue(argc, argv, &i, "s", "scheme", false))) {
            o.scheme = v;
        } else if ((v = flagValue(argc, argv, &i, "P", "prefix", false))) {
            o.prefix = v;
        } else if ((v = flagValue(argc, argv, &i, "u", "user", false))) {
            if (strchr(v, ':') == NULL) {
                fprintf(stderr, "ERR! invalid Basic Auth credential format\n");
                return 1;
            }
            o.user = v;
        } else if ((v = flagValue(argc, argv, &i, "c", "ca-cert", false))) {
            o.ca_cert = v;
        } else if ((v = flagValue(argc, argv, &i, "i", "insecure", true))) {
            o.insecure = strcmp(v, "false") != 0;
        } else if ((v = flagValue(argc, argv, &i, "t", "http-timeout", false))) {
            o.timeout_ms = parseTimeout(v);
        } else if ((v = flagValue(argc, argv, &i, "a", "alternatives", false))) {
            fprintf(stderr, "warning: --alternatives is not supported yet by this build; ignored\n");
        } else {
            fprintf(stderr, "ERR! unknown option: %s\n", argv[i]);
            usage();
            return 1;
        }
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    shell *sh = shell_new(&o);
    char version[64];
    if (shell_connect(sh, version, sizeof version) != 0) {
        shell_free(sh);
        curl_global_cleanup();
        return 0; /* rqlite exits 0 here too */
    }
    printf("Welcome to the rqlite CLI.\nEnter \".help\" for usage hints.\n");
    printf("Connected to %s://%s:%s running version %s\n", o.scheme, o.host, o.port, version);
    fflush(stdout);

    bool tty = isatty(0);
    char histfile[4096] = "";
    const char *home = getenv("HOME");
    if (home)
        snprintf(histfile, sizeof histfile, "%s/.rqlite_history", home);
    if (tty && histfile[0]) {
        using_history();
        stifle_history(1000);
        read_history(histfile);
    }
    char prompt[320];
    snprintf(prompt, sizeof prompt, "%s> ", shell_prompt(sh));
    for (;;) {
        char *line = NULL;
        if (tty) {
            line = readline(prompt);
        } else {
            size_t cap = 0;
            fputs(prompt, stdout);
            fflush(stdout);
            if (getline(&line, &cap, stdin) < 0) {
                free(line);
                line = NULL;
            }
        }
        if (line == NULL) {
            if (!tty)
                putchar('\n');
            break;
        }
        size_t n = strlen(line);
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (tty && line[strspn(line, " \t")] != '\0')
            add_history(line);
        int done = shell_run_line(sh, line);
        free(line);
        if (done)
            break;
    }
    if (tty && histfile[0]) {
        const char *hs = getenv("RQLITE_HISTFILESIZE");
        if (hs && atoi(hs) <= 0 && strspn(hs, "-0123456789") == strlen(hs))
            unlink(histfile);
        else
            write_history(histfile);
    }
    printf("bye~\n");
    shell_free(sh);
    curl_global_cleanup();
    return 0;
}
