/*
 * buf.c: growable buffer and Go-compatible JSON scalar encoding.
 */
#include "util/buf.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(void) {
    fputs("fatal: out of memory\n", stderr);
    abort();
}

void buf_init(buf *b) { b->data = NULL; b->len = b->cap = 0; }

void buf_free(buf *b) {
    free(b->data);
    buf_init(b);
}

void buf_reset(buf *b) {
    b->len = 0;
    if (b->data) b->data[0] = '\0';
}

void buf_reserve(buf *b, size_t extra) {
    size_t need = b->len + extra + 1; /* room for the terminating NUL */
    if (need <= b->cap) return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p) oom();
    b->data = p;
    b->cap = cap;
}

void buf_append(buf *b, const void *p, size_t n) {
    if (n == 0) return;
    buf_reserve(b, n);
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

size_t buf_write_cb(char *p, size_t size, size_t n, void *ud) {
    buf_append(ud, p, size * n);
    return size * n;
}

void buf_puts(buf *b, const char *s) { buf_append(b, s, strlen(s)); }

void buf_putc(buf *b, char c) {
    buf_reserve(b, 1);
    b->data[b->len++] = c;
    b->data[b->len] = '\0';
}

void buf_printf(buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char tmp[256];
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof tmp) {
        buf_append(b, tmp, (size_t)n);
        return;
    }
    buf_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

char *buf_detach(buf *b, size_t *len) {
    if (!b->data) {
        buf_reserve(b, 0);
        b->data[0] = '\0'; /* an empty buffer still gives a string */
    }
    char *p = b->data;
    if (len) *len = b->len;
    buf_init(b);
    return p;
}

/* ---- JSON strings ------------------------------------------------------ */

/* Bytes that need more than a copy: controls, '"', '\\', and the HTML
 * characters Go escapes by default. Bytes >= 0x80 are validated separately. */
static const unsigned char special[256] = {
    [0 ... 31] = 1, ['"'] = 1, ['\\'] = 1, ['<'] = 1, ['>'] = 1, ['&'] = 1,
    [128 ... 255] = 2,
};

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 if invalid;
 * *cp gets the code point. */
static size_t utf8_seq(const unsigned char *s, size_t n, unsigned *cp) {
    unsigned c = s[0];
    size_t len;
    unsigned min;
    if (c >= 0xC2 && c <= 0xDF) { len = 2; c &= 0x1F; min = 0x80; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; c &= 0x0F; min = 0x800; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; c &= 0x07; min = 0x10000; }
    else return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        c = (c << 6) | (s[i] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return 0;
    *cp = c;
    return len;
}

void buf_json_str(buf *b, const char *str, size_t n) {
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str;
    buf_reserve(b, n + 2);
    buf_putc(b, '"');
    size_t start = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        if (!special[c]) { i++; continue; }
        if (c >= 0x80) {
            unsigned cp;
            size_t l = utf8_seq(s + i, n - i, &cp);
            if (l && cp != 0x2028 && cp != 0x2029) { i += l; continue; }
            buf_append(b, s + start, i - start);
            if (l) {
                buf_puts(b, cp == 0x2028 ? "\\u2028" : "\\u2029");
                i += l;
            } else {
                buf_puts(b, "\\ufffd");
                i++;
            }
            start = i;
            continue;
        }
        buf_append(b, s + start, i - start);
        switch (c) {
        case '"': buf_puts(b, "\\\""); break;
        case '\\': buf_puts(b, "\\\\"); break;
        case '\n': buf_puts(b, "\\n"); break;
        case '\r': buf_puts(b, "\\r"); break;
        case '\t': buf_puts(b, "\\t"); break;
        case '\b': buf_puts(b, "\\b"); break;
        case '\f': buf_puts(b, "\\f"); break;
        default: {
            char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            buf_append(b, u, 6);
        }
        }
        i++;
        start = i;
    }
    buf_append(b, s + start, n - start);
    buf_putc(b, '"');
}

void buf_json_cstr(buf *b, const char *s) {
    if (!s) buf_puts(b, "null");
    else buf_json_str(b, s, strlen(s));
}

/* Every result carries ids and counts: snprintf's parsing of its format
 * showed in profiles of bulk writes. */
void buf_json_int(buf *b, int64_t v) {
    char tmp[24];
    char *p = tmp + sizeof tmp;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) *--p = '-';
    buf_append(b, p, (size_t)(tmp + sizeof tmp - p));
}

/* Shortest decimal digits that round-trip v (like Go's strconv with
 * precision -1): fills digits (no dot, no sign) and returns the decimal
 * exponent e such that v = 0.d1d2... x 10^e. */
static int shortest_digits(double v, char *digits, int *ndigits) {
    char tmp[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, v);
        if (strtod(tmp, NULL) == v || prec == 17) break;
    }
    /* tmp = "d.ddde[+-]XX" */
    int n = 0;
    char *p = tmp;
    for (; *p && *p != 'e'; p++)
        if (*p >= '0' && *p <= '9') digits[n++] = *p;
    int exp10 = atoi(p + 1);
    while (n > 1 && digits[n - 1] == '0') n--; /* trailing zeros */
    digits[n] = '\0';
    *ndigits = n;
    return exp10 + 1;
}

void buf_json_double(buf *b, double v) {
    if (isnan(v) || isinf(v)) { /* Go's encoder refuses these; null is safest */
        buf_puts(b, "null");
        return;
    }
    if (v == 0) {
        buf_puts(b, signbit(v) ? "-0" : "0");
        return;
    }
    char digits[32];
    int nd;
    double a = fabs(v);
    if (v < 0) buf_putc(b, '-');
    int e = shortest_digits(a, digits, &nd);
    if (a < 1e-6 || a >= 1e21) {
        /* d[.ddd]e±X, Go trims the exponent's leading zero ("1e-7"). */
        buf_putc(b, digits[0]);
        if (nd > 1) {
            buf_putc(b, '.');
            buf_append(b, digits + 1, (size_t)nd - 1);
        }
        int x = e - 1;
        buf_printf(b, "e%c%02d", x < 0 ? '-' : '+', x < 0 ? -x : x);
        if (b->len >= 2 && b->data[b->len - 2] == '0' &&
            b->data[b->len - 3] == '-') {
            b->data[b->len - 2] = b->data[b->len - 1];
            b->data[--b->len] = '\0';
        }
        return;
    }
    if (e <= 0) { /* 0.000ddd */
        buf_puts(b, "0.");
        for (int i = 0; i < -e; i++) buf_putc(b, '0');
        buf_append(b, digits, (size_t)nd);
    } else if (e >= nd) { /* ddd000 */
        buf_append(b, digits, (size_t)nd);
        for (int i = nd; i < e; i++) buf_putc(b, '0');
    } else { /* dd.ddd */
        buf_append(b, digits, (size_t)e);
        buf_putc(b, '.');
        buf_append(b, digits + e, (size_t)(nd - e));
    }
}

void buf_json_base64(buf *b, const void *data, size_t n) {
    static const char tbl[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *s = data;
    buf_reserve(b, (n + 2) / 3 * 4 + 2);
    char *o = b->data + b->len;
    *o++ = '"';
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        unsigned v = (unsigned)s[i] << 16 | (unsigned)s[i + 1] << 8 | s[i + 2];
        *o++ = tbl[v >> 18];
        *o++ = tbl[(v >> 12) & 63];
        *o++ = tbl[(v >> 6) & 63];
        *o++ = tbl[v & 63];
    }
    if (i < n) {
        unsigned v = (unsigned)s[i] << 16;
        if (i + 1 < n) v |= (unsigned)s[i + 1] << 8;
        *o++ = tbl[v >> 18];
        *o++ = tbl[(v >> 12) & 63];
        *o++ = i + 1 < n ? tbl[(v >> 6) & 63] : '=';
        *o++ = '=';
    }
    *o++ = '"';
    b->len = (size_t)(o - b->data);
    b->data[b->len] = '\0';
}
