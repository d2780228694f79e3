/* progress.c: see progress.h. */
#include "cli/progress.h"

#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Decimal units, one decimal, as transfer tools print them. */
static void human(char *out, size_t n, double b)
{
    if (b < 1e3)
        snprintf(out, n, "%.0f B", b);
    else if (b < 1e6)
        snprintf(out, n, "%.1f kB", b / 1e3);
    else if (b < 1e9)
        snprintf(out, n, "%.1f MB", b / 1e6);
    else
        snprintf(out, n, "%.1f GB", b / 1e9);
}

int progress_format(char *out, size_t n, double done, double total, double elapsed)
{
    char d[32], t[32], r[32];
    human(d, sizeof d, done);
    human(r, sizeof r, done / (elapsed > 1e-3 ? elapsed : 1e-3));
    if (total <= 0)
        return snprintf(out, n, "  %s  %s/s", d, r);
    human(t, sizeof t, total);
    int pct = (int)(done * 100.0 / total);
    return snprintf(out, n, "  %s / %s  %d%%  %s/s", d, t, pct > 100 ? 100 : pct, r);
}

void progress_begin(progress *p, FILE *out)
{
    *p = (progress){.out = out, .start = now()};
}

/* "\r", the line, and erase what a longer earlier line left after it. */
static void draw(progress *p, double t)
{
    char line[128];
    progress_format(line, sizeof line, p->done, p->total, t - p->start);
    fprintf(p->out, "\r%s\x1b[K", line);
    fflush(p->out);
    p->last = t;
    p->drawn = true;
}

void progress_update(progress *p, double done, double total)
{
    if (p->out == NULL)
        return;
    p->done = done;
    p->total = total;
    if (done < PROGRESS_MIN_BYTES && total < PROGRESS_MIN_BYTES)
        return;
    double t = now();
    if (!p->drawn || t - p->last >= PROGRESS_INTERVAL)
        draw(p, t);
}

void progress_end(progress *p)
{
    if (p->out == NULL || (p->done < PROGRESS_MIN_BYTES && p->total < PROGRESS_MIN_BYTES))
        return;
    draw(p, now());
    fputc('\n', p->out);
    fflush(p->out);
}
