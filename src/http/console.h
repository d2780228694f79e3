/*
 * console.h: the web console's files (src/http/console/), compiled into the
 * binary at build time by cmake/embed.cmake, served under /console/.
 */
#ifndef RQ_HTTP_CONSOLE_H
#define RQ_HTTP_CONSOLE_H

#include <stddef.h>

typedef struct console_file {
    const char *name;           /* "index.html"; NULL ends the table */
    const unsigned char *data;
    size_t len;
} console_file;

extern const console_file console_files[];

#endif
