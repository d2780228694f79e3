/*
 * progress: the one-line meter the shell draws during its long transfers
 * (.backup, .dump downloads; .restore, .boot uploads), a shell addition
 * rqlite's own does not have:
 *
 *       12.5 MB / 40.0 MB  31%  18.2 MB/s
 *
 * Where and when: on stderr, and only when both stdout and stderr are
 * terminals (a piped or redirected shell, and every script, stays
 * byte-for-byte rqlite's). Only transfers of PROGRESS_MIN_BYTES or more are
 * shown, so small backups print exactly what they always did. The line is
 * redrawn in place at most every PROGRESS_INTERVAL seconds; at the end it
 * is drawn once more with the final count and left on the screen (ended
 * by a newline), above the command's own message, which is unchanged.
 */
#ifndef RQ_CLI_PROGRESS_H
#define RQ_CLI_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define PROGRESS_MIN_BYTES (1024.0 * 1024.0)
#define PROGRESS_INTERVAL 0.1

typedef struct progress {
    FILE *out;     /* where the line goes (stderr), NULL: draw nothing */
    double start;  /* monotonic seconds at progress_begin */
    double last;   /* when the line was last drawn */
    double done, total;
    bool drawn;    /* a line is on the screen, to be ended by progress_end */
} progress;

/* Start a meter; out NULL makes every other call a no-op. */
void progress_begin(progress *p, FILE *out);

/* Bytes moved so far of total (0 when unknown); draws when due. */
void progress_update(progress *p, double done, double total);

/* The final line and its newline, when a line was due at all. */
void progress_end(progress *p);

/* The meter's text (no "\r", no newline) for done of total (0: unknown)
 * bytes after elapsed seconds; returns snprintf's count. */
int progress_format(char *out, size_t n, double done, double total, double elapsed);

#endif
