/*
 * os: small process-level helpers shared by the modules.
 */
#ifndef RQ_UTIL_OS_H
#define RQ_UTIL_OS_H

#include <stddef.h>
#include <stdint.h>

/* mkdir -p; returns 0 or -1 with errno set. */
int rq_mkdir_all(const char *path);

struct timespec;
/* An absolute CLOCK_REALTIME deadline ms from now, for pthread_cond_timedwait. */
void rq_deadline(struct timespec *ts, uint64_t ms);

/* Monotonic clock, for durations and timeouts. */
int64_t rq_now_ms(void);
/* Wall-clock time in Unix milliseconds (for times shown or stored). */
int64_t rq_wall_ms(void);
/* Start fn(arg) on a detached thread (nobody joins it); pthread_create's code. */
int rq_thread_detached(void *(*fn)(void *), void *arg);
double rq_now_sec(void);

/* Write all n bytes of p to fd (retrying short writes and EINTR); 0, or
 * -1 with errno set. */
int rq_write_all(int fd, const void *p, size_t n);

/* printf into a new malloc'd string (NULL only when out of memory). */
char *rq_sprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* This process's memory and threads from /proc/self (statm, status), for
 * /debug/vars and /metrics; a figure that cannot be read is 0. */
typedef struct rq_proc_stats {
    long long vsize, rss, peak_rss; /* bytes: virtual, resident, VmHWM */
    long threads;
} rq_proc_stats;
void rq_proc_read(rq_proc_stats *out);

#endif
