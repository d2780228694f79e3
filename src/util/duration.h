/*
 * duration: Go's time.Duration as text, which rqlite's flags, query
 * parameters and shell all use ("1.5s", "300ms", "1h2m", "500us"), and
 * Go's time.Time as JSON shows it.
 */
#ifndef RQ_UTIL_DURATION_H
#define RQ_UTIL_DURATION_H

#include <stddef.h>
#include <stdint.h>

/* Go's time.ParseDuration: an optional sign, then one or more decimal
 * numbers (fraction allowed) each with a unit (ns, us, µs, μs, ms, s, m,
 * h); "0" alone needs no unit. Returns 0 with *ns set (negative for a
 * leading '-'), or -1 with Go's message in err (when err is not NULL):
 *   time: invalid duration "X"
 *   time: missing unit in duration "X"
 *   time: unknown unit "U" in duration "X" */
int rq_duration_parse(const char *s, int64_t *ns, char *err, size_t errlen);

/* Go's Duration.String(): "0s", "1.5µs", "300ms", "1.5s", "1m0s",
 * "1h2m3.5s". Writes into out (32 bytes are always enough). */
void rq_duration_format(int64_t ns, char *out, size_t size);

/* Go's time.Time in JSON, UTC (time.RFC3339Nano): "2006-01-02T15:04:05Z",
 * with the fraction of a second when there is one, trailing zeros
 * dropped ("...05.12Z"). 64 bytes are always enough. */
void rq_go_time(int64_t sec, long nsec, char *out, size_t size);

#endif
