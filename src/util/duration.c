/*
 * duration.c: Go's duration syntax, parsed and printed the way Go's time
 * package does (see duration.h): integers for the whole parts, the
 * fraction of a unit in double as Go computes it (so "1.1s" is exactly
 * 1100000000 ns), and values past Go's range (about 292 years) refused.
 */
#include "util/duration.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static const struct {
    const char *name;
    uint64_t ns;
} units[] = {
    {"ns", 1ULL},
    {"us", 1000ULL},
    {"\xc2\xb5s", 1000ULL}, /* U+00B5 micro sign */
    {"\xce\xbcs", 1000ULL}, /* U+03BC Greek small letter mu */
    {"ms", 1000000ULL},
    {"s", 1000000000ULL},
    {"m", 60000000000ULL},
    {"h", 3600000000000ULL},
};

static int failed(char *err, size_t errlen, const char *fmt, const char *a, const char *b)
{
    if (err && errlen)
        snprintf(err, errlen, fmt, a, b);
    return -1;
}

int rq_duration_parse(const char *s, int64_t *ns, char *err, size_t errlen)
{
    const char *orig = s ? s : "";
    const char *invalid = "time: invalid duration \"%s\"%s";
    if (s == NULL)
        return failed(err, errlen, invalid, orig, "");
    bool neg = false;
    if (*s == '-' || *s == '+')
        neg = *s++ == '-';
    if (strcmp(s, "0") == 0) {
        *ns = 0;
        return 0;
    }
    if (*s == '\0')
        return failed(err, errlen, invalid, orig, "");
    const uint64_t max = (uint64_t)INT64_MAX + (neg ? 1 : 0);
    uint64_t total = 0;
    while (*s) {
        if (!(*s == '.' || (*s >= '0' && *s <= '9')))
            return failed(err, errlen, invalid, orig, "");
        /* The integer part, then the fraction (its digits past what
         * uint64 holds are dropped, as Go drops them). */
        uint64_t whole = 0, frac = 0;
        double scale = 1;
        bool digits = false, overflow = false, frac_full = false;
        for (; *s >= '0' && *s <= '9'; s++, digits = true) {
            if (whole > (UINT64_MAX - 9) / 10)
                overflow = true;
            whole = whole * 10 + (uint64_t)(*s - '0');
        }
        if (*s == '.') {
            for (s++; *s >= '0' && *s <= '9'; s++, digits = true) {
                if (frac_full || frac > (uint64_t)INT64_MAX / 10) {
                    frac_full = true;
                    continue;
                }
                frac = frac * 10 + (uint64_t)(*s - '0');
                scale *= 10;
            }
        }
        if (!digits || overflow)
            return failed(err, errlen, invalid, orig, "");
        size_t ul = strcspn(s, ".0123456789");
        if (ul == 0)
            return failed(err, errlen, "time: missing unit in duration \"%s\"%s", orig, "");
        size_t u = 0;
        while (u < sizeof units / sizeof units[0] && (strlen(units[u].name) != ul || strncmp(s, units[u].name, ul)))
            u++;
        if (u == sizeof units / sizeof units[0]) {
            char unit[64];
            snprintf(unit, sizeof unit, "%.*s", (int)(ul < 32 ? ul : 32), s);
            return failed(err, errlen, "time: unknown unit \"%s\" in duration \"%s\"", unit, orig);
        }
        s += ul;
        uint64_t unit = units[u].ns;
        if (whole > max / unit)
            return failed(err, errlen, invalid, orig, "");
        uint64_t v = whole * unit;
        /* frac/scale of a unit, computed in double as Go does. */
        if (frac)
            v += (uint64_t)((double)frac * ((double)unit / scale));
        if (v > max || total > max - v)
            return failed(err, errlen, invalid, orig, "");
        total += v;
    }
    *ns = neg ? (int64_t)(0 - total) : (int64_t)total;
    return 0;
}

/* v's digits with the fractional part of prec decimal places, trailing
 * zeros (and a bare point) dropped: Go's fmtFrac and fmtInt together. */
static int fracString(char *out, size_t size, uint64_t v, int prec)
{
    uint64_t p = 1;
    for (int i = 0; i < prec; i++)
        p *= 10;
    uint64_t whole = v / p, frac = v % p;
    if (frac == 0)
        return snprintf(out, size, "%llu", (unsigned long long)whole);
    char f[32];
    snprintf(f, sizeof f, "%0*llu", prec, (unsigned long long)frac);
    size_t n = strlen(f);
    while (n > 0 && f[n - 1] == '0')
        f[--n] = '\0';
    return snprintf(out, size, "%llu.%s", (unsigned long long)whole, f);
}

void rq_duration_format(int64_t ns, char *out, size_t size)
{
    if (size == 0)
        return;
    if (ns == 0) {
        snprintf(out, size, "0s");
        return;
    }
    const char *sign = ns < 0 ? "-" : "";
    uint64_t u = ns < 0 ? (uint64_t)0 - (uint64_t)ns : (uint64_t)ns;
    char num[48];
    if (u < 1000ULL) {
        snprintf(out, size, "%s%lluns", sign, (unsigned long long)u);
    } else if (u < 1000000ULL) {
        fracString(num, sizeof num, u, 3);
        snprintf(out, size, "%s%s\xc2\xb5s", sign, num);
    } else if (u < 1000000000ULL) {
        fracString(num, sizeof num, u, 6);
        snprintf(out, size, "%s%sms", sign, num);
    } else {
        uint64_t secs_ns = u % 60000000000ULL;
        uint64_t mins = u / 60000000000ULL;
        fracString(num, sizeof num, secs_ns, 9);
        if (mins == 0)
            snprintf(out, size, "%s%ss", sign, num);
        else if (mins < 60)
            snprintf(out, size, "%s%llum%ss", sign, (unsigned long long)mins, num);
        else
            snprintf(out, size, "%s%lluh%llum%ss", sign, (unsigned long long)(mins / 60),
                     (unsigned long long)(mins % 60), num);
    }
}

void rq_go_time(int64_t sec, long nsec, char *out, size_t size)
{
    time_t t = (time_t)sec;
    struct tm tm;
    gmtime_r(&t, &tm);
    size_t n = strftime(out, size, "%Y-%m-%dT%H:%M:%S", &tm);
    if (nsec > 0 && n < size) {
        int m = snprintf(out + n, size - n, ".%09ld", nsec);
        if (m > 0 && (size_t)m < size - n) {
            n += (size_t)m;
            while (out[n - 1] == '0')
                out[--n] = '\0';
        }
    }
    if (n < size)
        snprintf(out + n, size - n, "Z");
}
