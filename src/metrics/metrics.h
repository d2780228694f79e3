/*
 * metrics: Prometheus' text exposition format (version 0.0.4), and the
 * latency histograms the other modules keep for it.
 *
 * A histogram is a fixed set of counters, updated with relaxed atomics
 * from any thread and read without a lock at scrape time: a scrape may see
 * a count one observation ahead of its buckets, which Prometheus tolerates
 * (rates are what anyone reads). Buckets are shared by every histogram:
 * 100 µs to 10 s, which covers an fsync'd write, a read and a snapshot.
 *
 * Writing: a family is its "# HELP"/"# TYPE" lines then its samples, all
 * together, as the format requires; names follow Prometheus' conventions
 * (base units, _total for counters, _seconds, _bytes). Label values are
 * escaped here.
 */
#ifndef RQ_METRICS_METRICS_H
#define RQ_METRICS_METRICS_H

#include <stdint.h>

#include "util/buf.h"

#define METRICS_BUCKETS 12

typedef struct metrics_hist {
    uint64_t bucket[METRICS_BUCKETS]; /* observations <= each bound, not cumulated */
    uint64_t count;                   /* all, +Inf included */
    uint64_t sum_ns;
} metrics_hist;

/* The upper bounds of the buckets, in seconds. */
extern const double metrics_bounds[METRICS_BUCKETS];

/* Any thread. */
void metrics_observe(metrics_hist *h, double seconds);

/* "# HELP name help" and "# TYPE name type" (counter, gauge, histogram). */
void metrics_family(buf *b, const char *name, const char *type, const char *help);
/* One sample: name{labels} value; labels is "" or already formatted
 * (metrics_label). */
void metrics_sample(buf *b, const char *name, const char *labels, double v);
/* A whole family of one sample: metrics_family then metrics_sample. */
void metrics_one(buf *b, const char *name, const char *type, const char *help, double v);
/* A histogram's samples (_bucket with le, _sum, _count) under labels. */
void metrics_hist_write(buf *b, const char *name, const char *labels, const metrics_hist *h);
/* Append key="value" (escaped) to a label list, comma-separated. */
void metrics_label(buf *labels, const char *key, const char *value);

#endif
