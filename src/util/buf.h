/*
 * buf: a growable byte buffer, and a JSON writer that emits rqlite's exact
 * byte format (Go encoding/json rules) straight into it.
 *
 * Ownership: the caller owns a buf; buf_free() releases its memory. Out of
 * memory aborts the process (like Redis' zmalloc): every caller would only
 * be able to fail the request anyway, and half-written JSON is worse.
 */
#ifndef RQ_UTIL_BUF_H
#define RQ_UTIL_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

typedef struct buf {
    char *data;   /* NUL-terminated at data[len] whenever len > 0 */
    size_t len;
    size_t cap;
} buf;

#define BUF_INIT {NULL, 0, 0}

void buf_init(buf *b);
void buf_free(buf *b);
void buf_reset(buf *b);                       /* len = 0, keeps memory */
void buf_reserve(buf *b, size_t extra);
void buf_append(buf *b, const void *p, size_t n);
void buf_puts(buf *b, const char *s);
/* A write callback in the shape of libcurl's CURLOPT_WRITEFUNCTION (and
 * fwrite's): appends size*n bytes to the buf ud, returns size*n. */
size_t buf_write_cb(char *p, size_t size, size_t n, void *ud);
void buf_putc(buf *b, char c);
void buf_printf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Hand the memory to the caller (free() it); b is left empty. */
char *buf_detach(buf *b, size_t *len);

/* JSON scalars, Go encoding/json compatible:
 * - strings: '"', '\\' and control chars escaped; '<' '>' '&' as \u003c
 *   \u003e \u0026; U+2028/2029 escaped; invalid UTF-8 bytes become \ufffd.
 * - floats: shortest round-trip form, exponent only outside [1e-6, 1e21)
 *   ("2", "0.0001", "1e-7": Go drops the exponent's leading zero). */
void buf_json_str(buf *b, const char *s, size_t n);
void buf_json_cstr(buf *b, const char *s);
void buf_json_int(buf *b, int64_t v);
void buf_json_double(buf *b, double v);
/* Standard base64 (padded), quoted, for BLOB values. */
void buf_json_base64(buf *b, const void *p, size_t n);

#endif
