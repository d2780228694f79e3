/* command.c: see command.h. */
#include "command/command.h"
#include "util/le.h"

#include <ctype.h>
#include <jansson.h>
#include <lz4.h>
#include <stdlib.h>
#include <string.h>

/* ---- bytes ---------------------------------------------------------------- */

/* LEB128, as SQLite and protobuf write lengths: small numbers, one byte. */
static void putVarint(buf *b, uint64_t v)
{
    unsigned char tmp[10];
    size_t n = 0;
    do {
        unsigned char c = v & 0x7f;
        v >>= 7;
        tmp[n++] = c | (v ? 0x80 : 0);
    } while (v);
    buf_append(b, tmp, n);
}

/* False when the varint runs past end or is longer than 10 bytes. */
static bool getVarint(const unsigned char **pp, const unsigned char *end, uint64_t *out)
{
    const unsigned char *p = *pp;
    uint64_t v = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (p >= end)
            return false;
        unsigned char c = *p++;
        v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            *pp = p;
            *out = v;
            return true;
        }
    }
    return false;
}

/* Well-formed UTF-8 (no overlongs, surrogates or values past U+10FFFF),
 * the rule jansson applies to JSON strings: SQL text must be JSON-safe for
 * the error messages and logs that quote it. */
static bool validUtf8(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t k;
        uint32_t cp;
        if (c >= 0xc2 && c <= 0xdf) {
            k = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            k = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            k = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (n - i <= k)
            return false;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + j] & 0x3f);
        }
        if ((k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += k + 1;
    }
    return true;
}

/* ---- building ------------------------------------------------------------- */

void cmd_batch_init(cmd_batch *b)
{
    buf_init(&b->payload);
    b->n = 0;
    b->count_at = 0;
}

void cmd_batch_free(cmd_batch *b)
{
    buf_free(&b->payload);
    b->n = 0;
}

cmd_view cmd_batch_view(const cmd_batch *b)
{
    cmd_view v = {(const unsigned char *)b->payload.data, b->payload.len, b->n};
    return v;
}

void cmd_batch_concat(cmd_batch *dst, const cmd_view *src)
{
    if (src->len)
        buf_append(&dst->payload, src->data, src->len);
    dst->n += src->n;
}

int cmd_add_stmt(cmd_batch *b, const char *sql, size_t len, char **err)
{
    if (memchr(sql, 0, len) != NULL) {
        *err = strdup("invalid request: SQL text contains a NUL byte");
        return -1;
    }
    if (!validUtf8((const unsigned char *)sql, len)) {
        *err = strdup("invalid request: SQL text is not valid UTF-8");
        return -1;
    }
    static const char zero[5] = {0};
    putVarint(&b->payload, len);
    buf_append(&b->payload, sql, len);
    b->count_at = b->payload.len + 1;
    buf_append(&b->payload, zero, 5); /* terminator, n_params */
    b->n++;
    return 0;
}

/* A parameter's tag and name, counted in its statement's n_params. */
static void paramHead(cmd_batch *b, int type, const char *name)
{
    unsigned char *cnt = (unsigned char *)b->payload.data + b->count_at;
    le32_put(cnt, le32_get(cnt) + 1);
    buf_putc(&b->payload, (char)(type | (name ? CMD_NAMED : 0)));
    if (name) {
        size_t n = strlen(name);
        putVarint(&b->payload, n);
        buf_append(&b->payload, name, n + 1);
    }
}

void cmd_add_null(cmd_batch *b, const char *name)
{
    paramHead(b, CMD_NULL, name);
}

void cmd_add_int(cmd_batch *b, const char *name, int64_t v)
{
    unsigned char tmp[8];
    paramHead(b, CMD_INT, name);
    le64_put(tmp, (uint64_t)v);
    buf_append(&b->payload, tmp, 8);
}

void cmd_add_real(cmd_batch *b, const char *name, double v)
{
    unsigned char tmp[8];
    uint64_t bits;
    memcpy(&bits, &v, 8);
    paramHead(b, CMD_REAL, name);
    le64_put(tmp, bits);
    buf_append(&b->payload, tmp, 8);
}

/* TEXT and BLOB share their layout: tag, name, length, bytes. */
static void addBytes(cmd_batch *b, int type, const char *name, const void *p, size_t n)
{
    paramHead(b, type, name);
    putVarint(&b->payload, n);
    if (n)
        buf_append(&b->payload, p, n);
}

void cmd_add_text(cmd_batch *b, const char *name, const void *p, size_t n)
{
    addBytes(b, CMD_TEXT, name, p, n);
}

void cmd_add_blob(cmd_batch *b, const char *name, const void *p, size_t n)
{
    addBytes(b, CMD_BLOB, name, p, n);
}

/* ---- rqlite's JSON request format --------------------------------------------- */

/* x'ABCD' (whitespace trimmed, an even number of hex digits) is a BLOB, as
 * rqlite reads such strings. */
static bool hexBlobLiteral(const char *s, size_t n, size_t *start, size_t *nhex)
{
    size_t i = 0;
    while (i < n && isspace((unsigned char)s[i]))
        i++;
    while (n > i && isspace((unsigned char)s[n - 1]))
        n--;
    if (n - i < 3 || (s[i] != 'x' && s[i] != 'X') || s[i + 1] != '\'' || s[n - 1] != '\'')
        return false;
    size_t h = i + 2, e = n - 1;
    if ((e - h) % 2)
        return false;
    for (size_t k = h; k < e; k++)
        if (!isxdigit((unsigned char)s[k]))
            return false;
    *start = h;
    *nhex = e - h;
    return true;
}

static int hexval(char c)
{
    return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}

/* rqlite takes an array of integers 0-255 as a BLOB parameter. */
static bool byteArray(const json_t *v)
{
    size_t i;
    json_t *x;
    json_array_foreach(v, i, x) {
        if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) > 255)
            return false;
    }
    return true;
}

/* One JSON value as a parameter; false for a type rqlite does not take. */
static bool addJsonParam(cmd_batch *b, const char *name, const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_INTEGER:
        cmd_add_int(b, name, (int64_t)json_integer_value(v));
        return true;
    case JSON_REAL:
        cmd_add_real(b, name, json_real_value(v));
        return true;
    case JSON_TRUE:
        cmd_add_int(b, name, 1);
        return true;
    case JSON_FALSE:
        cmd_add_int(b, name, 0);
        return true;
    case JSON_NULL:
        cmd_add_null(b, name);
        return true;
    case JSON_STRING: {
        const char *s = json_string_value(v);
        size_t n = json_string_length(v), start, nhex;
        if (!hexBlobLiteral(s, n, &start, &nhex)) {
            cmd_add_text(b, name, s, n);
            return true;
        }
        unsigned char *blob = malloc(nhex / 2 + 1);
        for (size_t i = 0; i < nhex / 2; i++)
            blob[i] = (unsigned char)(hexval(s[start + 2 * i]) << 4 | hexval(s[start + 2 * i + 1]));
        cmd_add_blob(b, name, blob, nhex / 2);
        free(blob);
        return true;
    }
    case JSON_ARRAY: {
        if (!byteArray(v))
            return false;
        size_t n = json_array_size(v);
        unsigned char *blob = malloc(n + 1);
        for (size_t i = 0; i < n; i++)
            blob[i] = (unsigned char)json_integer_value(json_array_get(v, i));
        cmd_add_blob(b, name, blob, n);
        free(blob);
        return true;
    }
    default:
        return false;
    }
}

/* rqlite checks the whole request's shape before any statement. */
static const char *jsonShape(const json_t *a)
{
    if (!json_is_array(a))
        return "invalid request";
    if (json_array_size(a) == 0)
        return "no statements";
    size_t k;
    json_t *s;
    json_array_foreach(a, k, s) {
        if (json_is_string(s))
            continue;
        if (!json_is_array(s) || json_array_size(s) == 0 || !json_is_string(json_array_get(s, 0)))
            return "invalid request";
        for (size_t p = 1; p < json_array_size(s); p++) {
            json_t *v = json_array_get(s, p);
            if (json_is_object(v)) {
                const char *key;
                json_t *nv;
                json_object_foreach(v, key, nv) {
                    if (json_is_object(nv) || (json_is_array(nv) && !byteArray(nv)))
                        return "unsupported type";
                }
            } else if (json_is_object(v) || (json_is_array(v) && !byteArray(v))) {
                return "unsupported type";
            }
        }
    }
    return NULL;
}

int cmd_from_json(const char *body, size_t len, cmd_batch *out, char **err)
{
    size_t i = 0;
    while (i < len && isspace((unsigned char)body[i]))
        i++;
    if (i == len || body[i] != '[') {
        *err = strdup("invalid request");
        return -1;
    }
    /* \u0000 is valid JSON: a parameter may hold NUL bytes (kept exactly). */
    json_t *a = json_loadb(body, len, JSON_ALLOW_NUL, NULL);
    if (a == NULL) {
        *err = strdup("invalid JSON body");
        return -1;
    }
    const char *bad = jsonShape(a);
    if (bad) {
        json_decref(a);
        *err = strdup(bad);
        return -1;
    }
    cmd_batch_init(out);
    size_t k;
    json_t *s;
    json_array_foreach(a, k, s) {
        const json_t *sql = json_is_string(s) ? s : json_array_get(s, 0);
        if (cmd_add_stmt(out, json_string_value(sql), json_string_length(sql), err) != 0)
            goto fail;
        for (size_t p = 1; json_is_array(s) && p < json_array_size(s); p++) {
            json_t *v = json_array_get(s, p);
            if (!json_is_object(v)) {
                addJsonParam(out, NULL, v);
                continue;
            }
            const char *key;
            json_t *nv;
            json_object_foreach(v, key, nv) addJsonParam(out, key, nv);
        }
    }
    json_decref(a);
    return 0;
fail:
    json_decref(a);
    cmd_batch_free(out);
    return -1;
}

int cmd_from_sql(const char *sql, size_t len, cmd_batch *out, char **err)
{
    cmd_batch_init(out);
    if (cmd_add_stmt(out, sql ? sql : "", sql ? len : 0, err) != 0) {
        cmd_batch_free(out);
        return -1;
    }
    return 0;
}

/* ---- reading ----------------------------------------------------------------- */

void cmd_iter_init(cmd_iter *it, const cmd_view *v)
{
    it->p = v->data;
    it->end = v->data ? v->data + v->len : v->data;
    it->left = v->n;
}

/* Skip one parameter, checking it; false if malformed. */
static bool paramRead(const unsigned char **pp, const unsigned char *end, cmd_param *out)
{
    const unsigned char *p = *pp;
    if (p >= end)
        return false;
    unsigned tag = *p++;
    out->type = (int)(tag & ~(unsigned)CMD_NAMED);
    out->name = NULL;
    out->name_len = 0;
    if (tag & CMD_NAMED) {
        uint64_t n;
        if (!getVarint(&p, end, &n) || n >= (uint64_t)(end - p) || p[n] != 0 || memchr(p, 0, n))
            return false;
        out->name = (const char *)p;
        out->name_len = (size_t)n;
        p += n + 1;
    }
    switch (out->type) {
    case CMD_NULL:
        break;
    case CMD_INT:
    case CMD_REAL: {
        if (end - p < 8)
            return false;
        uint64_t bits = le64_get(p);
        p += 8;
        out->i = (int64_t)bits;
        memcpy(&out->r, &bits, 8);
        break;
    }
    case CMD_TEXT:
    case CMD_BLOB: {
        uint64_t n;
        if (!getVarint(&p, end, &n) || n > (uint64_t)(end - p))
            return false;
        out->p = p;
        out->n = (size_t)n;
        p += n;
        break;
    }
    default:
        return false;
    }
    *pp = p;
    return true;
}

int cmd_next(cmd_iter *it, cmd_stmt *s)
{
    if (it->left == 0)
        return it->p == it->end ? 0 : -1;
    const unsigned char *p = it->p, *end = it->end;
    uint64_t n;
    if (!getVarint(&p, end, &n) || n >= (uint64_t)(end - p) || (end - p) - n < 5 || p[n] != 0 ||
        memchr(p, 0, n))
        return -1;
    s->sql = (const char *)p;
    s->sql_len = (size_t)n;
    p += n + 1;
    s->n_params = le32_get(p);
    p += 4;
    s->params = p;
    cmd_param tmp;
    for (uint32_t i = 0; i < s->n_params; i++)
        if (!paramRead(&p, end, &tmp))
            return -1;
    s->params_end = p;
    it->p = p;
    it->left--;
    return 1;
}

void cmd_param_iter_init(cmd_param_iter *it, const cmd_stmt *s)
{
    it->p = s->params;
    it->end = s->params_end;
    it->left = s->n_params;
}

int cmd_param_next(cmd_param_iter *it, cmd_param *out)
{
    if (it->left == 0)
        return 0;
    if (!paramRead(&it->p, it->end, out))
        return -1;
    it->left--;
    return 1;
}

bool cmd_valid(const cmd_view *v)
{
    if (v->len > 0 && v->data == NULL)
        return false;
    cmd_iter it;
    cmd_stmt s;
    int rc;
    cmd_iter_init(&it, v);
    while ((rc = cmd_next(&it, &s)) == 1)
        ;
    return rc == 0;
}

/* One parameter as JSON; a BLOB as a byte array (a string would be read
 * back as text). */
static json_t *paramJson(const cmd_param *p)
{
    switch (p->type) {
    case CMD_INT:
        return json_integer((json_int_t)p->i);
    case CMD_REAL:
        return json_real(p->r);
    case CMD_TEXT:
        return json_stringn_nocheck(p->n ? p->p : "", p->n);
    case CMD_BLOB: {
        json_t *a = json_array();
        for (size_t i = 0; i < p->n; i++)
            json_array_append_new(a, json_integer(((const unsigned char *)p->p)[i]));
        return a;
    }
    default:
        return json_null();
    }
}

char *cmd_to_json(const cmd_view *v)
{
    json_t *a = json_array();
    cmd_iter it;
    cmd_stmt s;
    cmd_iter_init(&it, v);
    while (cmd_next(&it, &s) == 1) {
        json_t *e = json_array();
        json_array_append_new(e, json_stringn_nocheck(s.sql, s.sql_len));
        cmd_param_iter pi;
        cmd_param p;
        cmd_param_iter_init(&pi, &s);
        while (cmd_param_next(&pi, &p) == 1) {
            if (p.name) {
                json_t *o = json_object();
                json_object_set_new_nocheck(o, p.name, paramJson(&p));
                json_array_append_new(e, o);
            } else {
                json_array_append_new(e, paramJson(&p));
            }
        }
        json_array_append_new(a, e);
    }
    char *text = json_dumps(a, JSON_COMPACT);
    json_decref(a);
    return text;
}

/* ---- the log entry ----------------------------------------------------------- */

/* The header of an entry whose payload is len bytes as stored. */
static void putHeader(unsigned char *p, const cmd_entry *e, uint32_t encoding, size_t len)
{
    memcpy(p, CMD_ENTRY_MAGIC, 8);
    le64_put(p + 8, e->origin);
    le64_put(p + 16, e->seq);
    le64_put(p + 24, e->flags);
    le64_put(p + 32, e->unix_ms);
    le64_put(p + 40, e->seed);
    le64_put(p + 48, e->steps);
    le32_put(p + 56, e->stmts.n);
    le32_put(p + 60, encoding);
    le64_put(p + 64, len);
}

size_t cmd_entry_size(size_t payload_len)
{
    return (CMD_ENTRY_HDR + payload_len + 7) & ~(size_t)7;
}

void cmd_entry_encode(const cmd_entry *e, void *out)
{
    unsigned char *p = out;
    size_t total = cmd_entry_size(e->stmts.len);
    putHeader(p, e, 0, e->stmts.len);
    if (e->stmts.len)
        memcpy(p + CMD_ENTRY_HDR, e->stmts.data, e->stmts.len);
    memset(p + CMD_ENTRY_HDR + e->stmts.len, 0, total - CMD_ENTRY_HDR - e->stmts.len);
}

/* rqlite's "proto" counters (command/marshal.go), for every entry packed
 * by this process: process-wide, as packing needs no object. */
enum {
    PSTAT_REQUESTS,
    PSTAT_COMPRESSED_REQUESTS,
    PSTAT_UNCOMPRESSED_REQUESTS,
    PSTAT_COMPRESSED_BYTES,
    PSTAT_PRECOMPRESSED_BYTES,
    PSTAT_UNCOMPRESSED_BYTES,
    PSTAT_COMPRESSION_MISSES,
    PSTAT_N
};
static uint64_t pstats[PSTAT_N];
static const char *const pstat_names[PSTAT_N] = {
    [PSTAT_REQUESTS] = "num_requests",
    [PSTAT_COMPRESSED_REQUESTS] = "num_compressed_requests",
    [PSTAT_UNCOMPRESSED_REQUESTS] = "num_uncompressed_requests",
    [PSTAT_COMPRESSED_BYTES] = "num_compressed_bytes",
    [PSTAT_PRECOMPRESSED_BYTES] = "num_precompressed_bytes",
    [PSTAT_UNCOMPRESSED_BYTES] = "num_uncompressed_bytes",
    [PSTAT_COMPRESSION_MISSES] = "num_compression_misses",
};

static void pstat(int which, uint64_t n)
{
    __atomic_fetch_add(&pstats[which], n, __ATOMIC_RELAXED);
}

json_t *command_vars(void)
{
    json_t *v = json_object();
    for (int i = 0; i < PSTAT_N; i++)
        json_object_set_new(v, pstat_names[i], json_integer((json_int_t)__atomic_load_n(&pstats[i], __ATOMIC_RELAXED)));
    return v;
}

json_t *command_sql_vars(void)
{
    /* rqlite's sql.processor rewrites RANDOM() and 'now' in the SQL text,
     * and counts Go parser panics; we never rewrite (the clock and the
     * generator are frozen per entry instead) and parse nothing ourselves. */
    return json_pack("{s:i,s:i}", "num_rewritten_stmts", 0, "num_parser_panics", 0);
}

/* The payload as an LZ4 block after its length, into out (malloc'd), when
 * that saves an eighth or more; else 0. Counted as rqlite counts: bytes
 * before any compression, then either the compressed bytes or a miss
 * (compression tried, not worth it), or the bytes sent as they are. */
static size_t compress(const cmd_view *v, unsigned char **out)
{
    pstat(PSTAT_REQUESTS, 1);
    pstat(PSTAT_PRECOMPRESSED_BYTES, v->len);
    if (v->len < CMD_COMPRESS_MIN || v->len > (size_t)LZ4_MAX_INPUT_SIZE) {
        pstat(PSTAT_UNCOMPRESSED_REQUESTS, 1);
        pstat(PSTAT_UNCOMPRESSED_BYTES, v->len);
        return 0;
    }
    int bound = LZ4_compressBound((int)v->len);
    unsigned char *c = malloc(8 + (size_t)bound);
    if (c == NULL)
        return 0;
    int n = LZ4_compress_default((const char *)v->data, (char *)c + 8, (int)v->len, bound);
    if (n <= 0 || (size_t)n + 8 > v->len - v->len / 8) {
        free(c);
        pstat(PSTAT_COMPRESSION_MISSES, 1);
        return 0;
    }
    pstat(PSTAT_COMPRESSED_REQUESTS, 1);
    pstat(PSTAT_COMPRESSED_BYTES, 8 + (size_t)n);
    le64_put(c, v->len);
    *out = c;
    return 8 + (size_t)n;
}

void *cmd_entry_pack(const cmd_entry *e, size_t *len)
{
    unsigned char *z = NULL;
    size_t zlen = compress(&e->stmts, &z);
    const unsigned char *body = z ? z : e->stmts.data;
    size_t blen = z ? zlen : e->stmts.len;
    size_t total = (CMD_ENTRY_HDR + blen + 7) & ~(size_t)7;
    unsigned char *p = malloc(total);
    if (p) {
        putHeader(p, e, z ? CMD_LZ4 : 0, blen);
        if (blen)
            memcpy(p + CMD_ENTRY_HDR, body, blen);
        memset(p + CMD_ENTRY_HDR + blen, 0, total - CMD_ENTRY_HDR - blen);
        *len = total;
    }
    free(z);
    return p;
}

bool cmd_entry_compressed(const void *entry, size_t len)
{
    const unsigned char *p = entry;
    return len >= CMD_ENTRY_HDR && le32_get(p + 60) == CMD_LZ4;
}

int cmd_entry_decode(const void *base, size_t len, cmd_entry *e)
{
    const unsigned char *p = base;
    if (p == NULL || len < 8 || memcmp(p, CMD_ENTRY_MAGIC, 8) != 0)
        return 1;
    if (len < CMD_ENTRY_HDR)
        return -1;
    uint64_t n = le64_get(p + 64);
    uint32_t encoding = le32_get(p + 60);
    if (n > len - CMD_ENTRY_HDR || encoding > CMD_LZ4)
        return -1;
    e->origin = le64_get(p + 8);
    e->seq = le64_get(p + 16);
    e->flags = le64_get(p + 24);
    e->unix_ms = le64_get(p + 32);
    e->seed = le64_get(p + 40);
    e->steps = le64_get(p + 48);
    e->stmts.n = le32_get(p + 56);
    e->stmts.data = p + CMD_ENTRY_HDR;
    e->stmts.len = (size_t)n;
    e->owned = NULL;
    if (encoding == CMD_LZ4) {
        uint64_t raw = n >= 8 ? le64_get(p + CMD_ENTRY_HDR) : 0;
        if (n < 8 || raw == 0 || raw > CMD_MAX_PAYLOAD || n - 8 > (uint64_t)INT32_MAX)
            return -1;
        unsigned char *out = malloc((size_t)raw);
        if (out == NULL)
            return -1;
        int got = LZ4_decompress_safe((const char *)p + CMD_ENTRY_HDR + 8, (char *)out, (int)(n - 8), (int)raw);
        if (got < 0 || (uint64_t)got != raw) {
            free(out);
            return -1;
        }
        e->owned = out;
        e->stmts.data = out;
        e->stmts.len = (size_t)raw;
    }
    if (!cmd_valid(&e->stmts)) {
        cmd_entry_free(e);
        return -1;
    }
    return 0;
}

void cmd_entry_free(cmd_entry *e)
{
    free(e->owned);
    e->owned = NULL;
}
