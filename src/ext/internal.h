/*
 * internal: what the ext module's files share (not for other modules).
 */
#ifndef RQ_EXT_INTERNAL_H
#define RQ_EXT_INTERNAL_H

#include <stdbool.h>

/* A new file dir/name for writing (never an existing one, never through a
 * link): its descriptor, or -1 with *err. An existing file means two
 * extensions of that name were given. */
int extCreate(const char *dir, const char *name, char **err);

/* Where extWrite's bytes come from: up to n into buf, 0 at the end, or -1
 * with *err set. */
typedef long (*extReader)(void *ctx, char *buf, unsigned long n, char **err);
/* A new file dir/name (extCreate) filled from next until its end: 0, or -1
 * with *err. */
int extWrite(const char *dir, const char *name, extReader next, void *ctx, char **err);

/* Extract the archive open on fd (src: its path, for messages), a zip file
 * when zip, else a gzipped tar file, into dir: every regular file at its
 * top level, except those whose name starts with '.'. Anything else in it
 * (a subdirectory, an absolute path, "..", a link, a device) and any
 * corruption fails the whole: 0, or -1 with *err. fd stays open. */
int extExtract(int fd, const char *src, bool zip, const char *dir, char **err);

#endif
