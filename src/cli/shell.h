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

/* "host:port" as the prompt shows it. */
const char *shell_prompt(shell *sh);

/* Print "ERR! msg" (red on a terminal). */
void shell_err(shell *sh, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
