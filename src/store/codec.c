/* codec.c: the log entry and snapshot formats, see codec.h. */
#include "store/codec.h"
#include "util/le.h"

#include <raft.h>
#include <stdlib.h>
#include <string.h>

/* The binary entries share one shape: an 8-byte magic, nf u64 fields, a
 * u64 payload length, the payload, then pad bytes up to a multiple of 8
 * (so the header is 16 + 8*nf bytes). Written and read here only, so that
 * each entry kind is just its list of fields. */
static unsigned char *entryPack(const char *magic, const uint64_t *f, int nf, const void *payload, size_t n,
                                int pad, size_t *len)
{
    size_t hdr = 16 + 8 * (size_t)nf;
    size_t padded = (hdr + n + 7) & ~(size_t)7;
    unsigned char *p = raft_malloc(padded);
    if (p == NULL)
        return NULL;
    memcpy(p, magic, 8);
    for (int i = 0; i < nf; i++)
        le64_put(p + 8 + 8 * i, f[i]);
    le64_put(p + hdr - 8, n);
    if (n)
        memcpy(p + hdr, payload, n);
    memset(p + hdr + n, pad, padded - hdr - n);
    *len = padded;
    return p;
}

/* Reads an entryPack'd entry: 1 when the magic is another's, -1 when the
 * header or the payload does not fit in len, else 0 with the fields, the
 * payload and its length. */
static int entryUnpack(const unsigned char *p, size_t len, const char *magic, uint64_t *f, int nf,
                       const unsigned char **payload, size_t *n)
{
    size_t hdr = 16 + 8 * (size_t)nf;
    if (len < 8 || memcmp(p, magic, 8) != 0)
        return 1;
    if (len < hdr)
        return -1;
    uint64_t plen = le64_get(p + hdr - 8);
    if (plen > len - hdr)
        return -1;
    for (int i = 0; i < nf; i++)
        f[i] = le64_get(p + 8 + 8 * i);
    *payload = p + hdr;
    *n = (size_t)plen;
    return 0;
}

/* JSON text as a raft_malloc'd entry, padded with JSON whitespace. */
static void *jsonEntry(json_t *j, size_t *len)
{
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (text == NULL)
        return NULL;
    size_t n = strlen(text);
    size_t padded = (n + 7) & ~(size_t)7;
    char *p = raft_malloc(padded);
    if (p != NULL) {
        memcpy(p, text, n);
        memset(p + n, ' ', padded - n);
        *len = padded;
    }
    free(text);
    return p;
}

void *codec_exec_encode(const codec_exec_entry *e, size_t *len)
{
    const uint64_t f[5] = {e->origin, e->seq, e->flags, e->ms, e->seed};
    return entryPack(CODEC_EXEC_MAGIC, f, 5, e->json, e->json_len, ' ', len);
}

int codec_exec_decode(const void *base, size_t len, codec_exec_entry *e)
{
    uint64_t f[5];
    const unsigned char *json;
    int rc = entryUnpack(base, len, CODEC_EXEC_MAGIC, f, 5, &json, &e->json_len);
    if (rc != 0)
        return rc;
    e->origin = f[0];
    e->seq = f[1];
    e->flags = f[2];
    e->ms = f[3];
    e->seed = f[4];
    e->json = (const char *)json;
    return 0;
}

char *codec_jexec_decode(const json_t *e, codec_exec_entry *x)
{
    const char *t = json_string_value(json_object_get(e, "t"));
    if (t == NULL || strcmp(t, "x") != 0)
        return NULL;
    x->origin = (uint64_t)json_integer_value(json_object_get(e, "o"));
    x->seq = (uint64_t)json_integer_value(json_object_get(e, "s"));
    x->flags = (uint64_t)json_integer_value(json_object_get(e, "f"));
    x->ms = (uint64_t)json_integer_value(json_object_get(e, "ts"));
    x->seed = (uint64_t)json_integer_value(json_object_get(e, "r"));
    char *q = json_dumps(json_object_get(e, "q"), JSON_COMPACT | JSON_ENCODE_ANY);
    if (q == NULL)
        q = strdup(""); /* no statements: read as no node can, alike everywhere */
    x->json = q;
    x->json_len = q ? strlen(q) : 0;
    return q;
}

size_t codec_load_size(size_t image_len)
{
    return (CODEC_LOAD_HDR + image_len + 7) & ~(size_t)7;
}

void *codec_load_encode(const codec_load_entry *e, size_t *len)
{
    const uint64_t f[2] = {e->origin, e->seq};
    return entryPack(CODEC_LOAD_MAGIC, f, 2, e->image, e->image_len, 0, len);
}

int codec_load_decode(const void *base, size_t len, codec_load_entry *e)
{
    uint64_t f[2];
    int rc = entryUnpack(base, len, CODEC_LOAD_MAGIC, f, 2, &e->image, &e->image_len);
    if (rc != 0)
        return rc;
    e->origin = f[0];
    e->seq = f[1];
    return 0;
}

void *codec_meta_encode(const codec_meta_entry *m, size_t *len)
{
    return jsonEntry(json_pack("{s:s,s:s,s:I,s:s,s:s}", "t", "m", "id", m->id, "rid", (json_int_t)m->rid,
                               "addr", m->addr, "api", m->api ? m->api : ""),
                     len);
}

int codec_meta_decode(const json_t *e, codec_meta_entry *m)
{
    const char *t = json_string_value(json_object_get(e, "t"));
    if (t == NULL || strcmp(t, "m") != 0)
        return 1;
    m->id = json_string_value(json_object_get(e, "id"));
    m->rid = (uint64_t)json_integer_value(json_object_get(e, "rid"));
    m->addr = json_string_value(json_object_get(e, "addr"));
    m->api = json_string_value(json_object_get(e, "api"));
    return 0;
}

void *codec_snap_encode(const codec_snapshot *s, size_t *len)
{
    json_t *j = json_object();
    json_object_set_new(j, "i", json_integer((json_int_t)s->raft_index));
    json_object_set_new(j, "d", json_integer((json_int_t)s->db_index));
    if (s->metas)
        json_object_set(j, "m", s->metas);
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (text == NULL)
        return NULL;
    size_t mlen = strlen(text);
    unsigned char *p = mlen <= UINT32_MAX ? raft_malloc(CODEC_SNAP_HDR + mlen) : NULL;
    if (p != NULL) {
        memcpy(p, CODEC_SNAP_MAGIC, 8);
        p[8] = (unsigned char)(mlen >> 24);
        p[9] = (unsigned char)(mlen >> 16);
        p[10] = (unsigned char)(mlen >> 8);
        p[11] = (unsigned char)mlen;
        memcpy(p + CODEC_SNAP_HDR, text, mlen);
        *len = CODEC_SNAP_HDR + mlen;
    }
    free(text);
    return p;
}

int codec_snap_decode(const void *base, size_t len, codec_snapshot *s)
{
    const unsigned char *p = base;
    memset(s, 0, sizeof *s);
    if (p == NULL || len < CODEC_SNAP_HDR)
        return -1;
    if (memcmp(p, CODEC_SNAP_MAGIC, 8) == 0)
        s->version = 2;
    else if (memcmp(p, CODEC_SNAP_MAGIC_V1, 8) == 0)
        s->version = 1;
    else
        return -1;
    size_t mlen = (size_t)p[8] << 24 | (size_t)p[9] << 16 | (size_t)p[10] << 8 | p[11];
    if (mlen > len - CODEC_SNAP_HDR)
        return -1;
    json_t *j = json_loadb((const char *)p + CODEC_SNAP_HDR, mlen, 0, NULL);
    if (s->version == 1) {
        s->metas = j;
        s->image = p + CODEC_SNAP_HDR + mlen;
        s->image_len = len - CODEC_SNAP_HDR - mlen;
        return 0;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        return -1;
    }
    s->raft_index = (uint64_t)json_integer_value(json_object_get(j, "i"));
    s->db_index = (uint64_t)json_integer_value(json_object_get(j, "d"));
    s->metas = json_incref(json_object_get(j, "m"));
    json_decref(j);
    return 0;
}
