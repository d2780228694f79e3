#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "util/os.h"

static int minLevel = RQ_LOG_INFO;

void rq_log_set_level(int level) { __atomic_store_n(&minLevel, level, __ATOMIC_RELAXED); }

int rq_log_enabled(int level) { return level >= __atomic_load_n(&minLevel, __ATOMIC_RELAXED); }

static void vlog(const char *tag, const char *fmt, va_list ap)
{
    char line[2048];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    int n = snprintf(line, sizeof line, "[%s] ", tag);
    n += (int)strftime(line + n, sizeof line - (size_t)n, "%Y/%m/%d %H:%M:%S ", &tm);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    if (m < 0)
        m = 0;
    n += m;
    if (n > (int)sizeof line - 2)
        n = (int)sizeof line - 2;
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}

void rq_log(const char *tag, const char *fmt, ...)
{
    if (!rq_log_enabled(RQ_LOG_INFO))
        return;
    va_list ap;
    va_start(ap, fmt);
    vlog(tag, fmt, ap);
    va_end(ap);
}

void rq_logl(int level, const char *tag, const char *fmt, ...)
{
    if (!rq_log_enabled(level))
        return;
    va_list ap;
    va_start(ap, fmt);
    vlog(tag, fmt, ap);
    va_end(ap);
}

void rq_progress_log(void *arg, long long done, long long total)
{
    rq_progress *p = arg;
    long long now = rq_now_ms();
    if (now - p->last_ms < p->every_ms || total <= 0)
        return;
    p->last_ms = now;
    rq_log(p->tag, "%s: copied %lld of %lld bytes (%d%%) in %.1f s", p->what, done, total, (int)(done * 100 / total),
           (double)(now - p->t0_ms) / 1000.0);
}

bool rq_log_limit_take(rq_log_limit *l, int max, int64_t window_ms, unsigned long *dropped)
{
    int64_t now = rq_now_ms();
    pthread_mutex_lock(&l->mu);
    if (now - l->window_ms >= window_ms) {
        l->window_ms = now;
        l->lines = 0;
    }
    bool ok = l->lines < max;
    if (ok) {
        l->lines++;
        *dropped = l->dropped;
        l->dropped = 0;
    } else {
        l->dropped++;
    }
    pthread_mutex_unlock(&l->mu);
    return ok;
}
