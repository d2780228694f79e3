/*
 * metrics.c: histograms and the text exposition format (metrics.h).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "metrics/metrics.h"

const double metrics_bounds[METRICS_BUCKETS] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                                0.01,   0.025,   0.1,    0.5,   2.5,    10};

void metrics_observe(metrics_hist *h, double seconds)
{
    if (!(seconds >= 0)) /* NaN, or a clock that went back */
        seconds = 0;
    int i = 0;
    while (i < METRICS_BUCKETS && seconds > metrics_bounds[i])
        i++;
    if (i < METRICS_BUCKETS)
        __atomic_fetch_add(&h->bucket[i], 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&h->sum_ns, (uint64_t)(seconds * 1e9), __ATOMIC_RELAXED);
    __atomic_fetch_add(&h->count, 1, __ATOMIC_RELAXED);
}

void metrics_family(buf *b, const char *name, const char *type, const char *help)
{
    buf_printf(b, "# HELP %s ", name);
    for (const char *p = help; *p; p++) { /* the format escapes \ and newline in help */
        if (*p == '\\')
            buf_puts(b, "\\\\");
        else if (*p == '\n')
            buf_puts(b, "\\n");
        else
            buf_putc(b, *p);
    }
    buf_printf(b, "\n# TYPE %s %s\n", name, type);
}

/* Integers (most of ours) print as integers; other values with 15
 * significant digits, more than any of our measurements has. */
static void putValue(buf *b, double v)
{
    if (isnan(v))
        buf_puts(b, "NaN");
    else if (isinf(v))
        buf_puts(b, v > 0 ? "+Inf" : "-Inf");
    else if (v == (double)(int64_t)v && fabs(v) < 9e15)
        buf_printf(b, "%lld", (long long)v);
    else
        buf_printf(b, "%.15g", v);
}

void metrics_sample(buf *b, const char *name, const char *labels, double v)
{
    buf_puts(b, name);
    if (labels && *labels)
        buf_printf(b, "{%s}", labels);
    buf_putc(b, ' ');
    putValue(b, v);
    buf_putc(b, '\n');
}

void metrics_one(buf *b, const char *name, const char *type, const char *help, double v)
{
    metrics_family(b, name, type, help);
    metrics_sample(b, name, "", v);
}

void metrics_label(buf *labels, const char *key, const char *value)
{
    if (labels->len)
        buf_putc(labels, ',');
    buf_printf(labels, "%s=\"", key);
    for (const char *p = value; *p; p++) {
        if (*p == '\\' || *p == '"')
            buf_putc(labels, '\\');
        if (*p == '\n')
            buf_puts(labels, "\\n");
        else
            buf_putc(labels, *p);
    }
    buf_putc(labels, '"');
}

void metrics_hist_write(buf *b, const char *name, const char *labels, const metrics_hist *h)
{
    char n[200], le[32];
    uint64_t cum = 0;
    uint64_t count = __atomic_load_n(&h->count, __ATOMIC_RELAXED);
    for (int i = 0; i <= METRICS_BUCKETS; i++) {
        if (i < METRICS_BUCKETS) {
            cum += __atomic_load_n(&h->bucket[i], __ATOMIC_RELAXED);
            snprintf(le, sizeof le, "%g", metrics_bounds[i]);
        } else {
            snprintf(le, sizeof le, "+Inf");
            if (cum > count) /* a scrape between two updates */
                count = cum;
        }
        buf l = BUF_INIT;
        if (labels && *labels)
            buf_puts(&l, labels);
        metrics_label(&l, "le", le);
        snprintf(n, sizeof n, "%s_bucket", name);
        metrics_sample(b, n, l.data, (double)(i < METRICS_BUCKETS ? cum : count));
        buf_free(&l);
    }
    snprintf(n, sizeof n, "%s_sum", name);
    metrics_sample(b, n, labels, (double)__atomic_load_n(&h->sum_ns, __ATOMIC_RELAXED) / 1e9);
    snprintf(n, sizeof n, "%s_count", name);
    metrics_sample(b, n, labels, (double)count);
}
