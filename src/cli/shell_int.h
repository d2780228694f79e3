/*
 * shell_int: the shell's line parsing, for shell.c and its unit tests.
 * Nothing here does I/O.
 */
#ifndef RQ_CLI_SHELL_INT_H
#define RQ_CLI_SHELL_INT_H

#include <stdbool.h>
#include <stddef.h>

typedef struct shell_cmd shell_cmd;

typedef enum {
    SHELL_LINE_EMPTY,       /* blanks only: ignored */
    SHELL_LINE_COMMAND,     /* a dot command this build runs (exit and quit too) */
    SHELL_LINE_UNKNOWN,     /* any other first word starting with '.' */
    SHELL_LINE_SQL,         /* everything else: one statement */
} shell_line_kind;

typedef struct shell_line {
    shell_line_kind kind;
    const char *text;     /* the line without surrounding blanks */
    size_t wordlen;       /* bytes of its first word */
    const char *arg;      /* what follows the first word, blanks skipped ("" if nothing) */
    const char *name;     /* COMMAND: the command's name in .help (".tables") */
    const shell_cmd *cmd; /* COMMAND: its table entry */
} shell_line;

/* Classify line, trimming it in place; out's pointers point into line. */
shell_line_kind shell_parse_line(char *line, shell_line *out);

#endif
