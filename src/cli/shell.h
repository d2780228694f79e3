/*
 * shell: the rqlite CLI's state, HTTP client and command dispatch.
 */
#ifndef RQ_CLI_SHELL_H
#define RQ_CLI_SHELL_H

#include <stdbool.h>
#include <stdio.h>

#include "cli/render.h"

typedef struct shell_opts {
    const char *scheme;    /* "http" */
    const char *host;      /* "127.0.0.1" */
    const char *port;      /* "4001" */
    const char *prefix;    /* "/" */
    const char *alternatives; /* -a: "host:port,host:port" to fail over to, or NULL */
    const char *user;      /* "user:pass" or NULL */
    const char *ca_cert;
    const char *client_cert; /* mutual TLS: PEM certificate and key, or NULL */
    const char *client_key;
    bool insecure;
    long timeout_ms;       /* whole-request timeout */
} shell_opts;

typedef struct shell shell;

shell *shell_new(const shell_opts *opts);
void shell_free(shell *sh);

/* GET /status: returns 0 and fills version (X-RQLITE-VERSION, "unknown"
 * when absent) or prints rqlite's connection error and returns -1. */
int shell_connect(shell *sh, char *version, size_t n);

/* Run one input line. Returns 1 when the shell should exit. */
int shell_run_line(shell *sh, const char *line);

/* Tab at the prompt: complete.h's words for text, the word of line that
 * begins at byte start (complete_free them), or NULL; *files when the line
 * editor should offer file names instead. Table names come from the node,
 * asked at most SHELL_TABLES_TIMEOUT_MS for them (the current host only,
 * nothing logged), then cached: asked again after any command, or
 * SHELL_TABLES_TTL seconds, and not for SHELL_TABLES_BACKOFF seconds after
 * an attempt failed, when the cached names (or none) and the keywords are
 * offered: a node that is down or stuck costs one short wait at most. */
#define SHELL_TABLES_TIMEOUT_MS 400
#define SHELL_TABLES_TTL 10.0
#define SHELL_TABLES_BACKOFF 5.0
char **shell_complete(shell *sh, const char *line, size_t start, const char *text, bool *files);

/* "host:port" as the prompt shows it. */
const char *shell_prompt(shell *sh);

/* Print "ERR! msg" (red on a terminal). */
void shell_err(shell *sh, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
