/*
 * options: the rqlite shell's command-line flags, with rqlite's names and
 * defaults, in the syntax of the Go library rqlite parses them with:
 * "-x v", "-x=v", "--long v", "--long=v"; booleans take no value.
 */
#ifndef RQ_CLI_OPTIONS_H
#define RQ_CLI_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "cli/shell.h"

typedef struct options {
    shell_opts shell;
    bool addr_given;     /* -H, -p or -s was given: RQLITE_HOST is not read */
    char env_host[256];  /* the host and port RQLITE_HOST set, when it did */
    char env_port[24];
} options;

typedef enum {
    OPTIONS_RUN,     /* start the shell */
    OPTIONS_HELP,    /* -h: print options_usage */
    OPTIONS_VERSION, /* -v */
    OPTIONS_UNKNOWN, /* a flag rqlite does not have (message in err) */
    OPTIONS_ERROR,   /* a bad value or a missing one (message in err) */
} options_action;

/* Fill o from argv[1..argc-1]. Strings in o point into argv. */
options_action options_parse(int argc, char **argv, options *o, char *err, size_t errlen);

/* RQLITE_HOST, "[scheme:]//host[:port]" (value NULL when it is not set),
 * unless -H, -p or -s was given: its scheme, host and port (a port of 0
 * or none leaves -p's default) replace o's, as in rqlite. Returns 0, or -1
 * with rqlite's message in err, Go's url.Parse words included
 * ("parse \"x\": missing ']' in host", "unsupported protocol ftp",
 * "RQLITE_HOST does not contain a hostname", ...). */
int options_host_env(options *o, const char *value, char *err, size_t errlen);

/* rqlite's -h text. */
void options_usage(FILE *out);

#endif
