/*
 * options: the rqlite shell's command-line flags, with rqlite's names and
 * defaults, in the syntax of the Go library rqlite parses them with:
 * "-x v", "-x=v", "--long v", "--long=v"; booleans take no value.
 */
#ifndef RQ_CLI_OPTIONS_H
#define RQ_CLI_OPTIONS_H

#include <stddef.h>
#include <stdio.h>

#include "cli/shell.h"

typedef struct options {
    shell_opts shell;
    const char *alternatives; /* -a: parsed, not supported yet (NULL if not given) */
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

/* rqlite's -h text. */
void options_usage(FILE *out);

#endif
