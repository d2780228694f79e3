/*
 * log: rqlite-style log lines on stderr, one per event:
 *   [store] 2022/01/29 14:42:42 opening store with node ID 1
 * Thread-safe (each line is written with one write()).
 */
#ifndef RQ_UTIL_LOG_H
#define RQ_UTIL_LOG_H

void rq_log(const char *tag, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
