/*
 * log: rqlite-style log lines on stderr, one per event:
 *   [store] 2022/01/29 14:42:42 opening store with node ID 1
 * Thread-safe (each line is written with one write()).
 *
 * Levels (-log-level, beyond rqlite, whose server has none): rq_log is
 * INFO; rq_logl says which. Lines below the process's level are dropped.
 * The values are config.h's CONFIG_LOG_* ones.
 */
#ifndef RQ_UTIL_LOG_H
#define RQ_UTIL_LOG_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

enum { RQ_LOG_DEBUG = -2, RQ_LOG_INFO = -1, RQ_LOG_WARN = 0, RQ_LOG_ERROR = 1, RQ_LOG_OFF = 2 };

void rq_log(const char *tag, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void rq_logl(int level, const char *tag, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Progress of a long copy in the log (a db_progress_fn): a line
 * "<what>: copied D of T bytes (P%) in S s" under tag, at most one every
 * every_ms, so that whoever watches the log sees it move. Set tag, what,
 * every_ms and t0_ms = last_ms = rq_now_ms() before the copy. */
typedef struct rq_progress {
    const char *tag, *what;
    int every_ms;
    long long t0_ms, last_ms;
} rq_progress;
void rq_progress_log(void *arg, long long done, long long total);
/* A rate limit for one kind of line that a flood could repeat (a client,
 * a library): at most max lines per window_ms. rq_log_limit_take says
 * whether one more may go out and, when it may, *dropped how many were
 * held back since the last one (to say so in it). Any thread. */
typedef struct rq_log_limit {
    pthread_mutex_t mu;
    int64_t window_ms;
    int lines;
    unsigned long dropped;
} rq_log_limit;
#define RQ_LOG_LIMIT_INIT {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0}
bool rq_log_limit_take(rq_log_limit *l, int max, int64_t window_ms, unsigned long *dropped);
/* Set once at start (default INFO). */
void rq_log_set_level(int level);
/* Would a line at level be written? */
int rq_log_enabled(int level);

#endif
