/*
 * os: small process-level helpers shared by the modules.
 */
#ifndef RQ_UTIL_OS_H
#define RQ_UTIL_OS_H

/* mkdir -p; returns 0 or -1 with errno set. */
int rq_mkdir_all(const char *path);

/* printf into a new malloc'd string (NULL only when out of memory). */
char *rq_sprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
