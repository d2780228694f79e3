/* codec.c: see codec.h. */
#include "store/codec.h"

#include <raft.h>
#include <string.h>

uint64_t rq_get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

void rq_put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++, v >>= 8)
        p[i] = (unsigned char)v;
}

void *rq_exec_encode(const rq_exec_entry *e, size_t *len)
{
    size_t padded = (RQ_EXEC_HDR + e->json_len + 7) & ~(size_t)7;
    unsigned char *p = raft_malloc(padded);
    if (p == NULL)
        return NULL;
    memcpy(p, RQ_EXEC_MAGIC, 8);
    rq_put64(p + 8, e->origin);
    rq_put64(p + 16, e->seq);
    rq_put64(p + 24, e->flags);
    rq_put64(p + 32, e->ms);
    rq_put64(p + 40, e->seed);
    rq_put64(p + 48, e->json_len);
    memcpy(p + RQ_EXEC_HDR, e->json, e->json_len);
    memset(p + RQ_EXEC_HDR + e->json_len, ' ', padded - RQ_EXEC_HDR - e->json_len);
    *len = padded;
    return p;
}

int rq_exec_decode(const void *base, size_t len, rq_exec_entry *e)
{
    const unsigned char *p = base;
    if (len < 8 || memcmp(p, RQ_EXEC_MAGIC, 8) != 0)
        return 1;
    if (len < RQ_EXEC_HDR)
        return -1;
    uint64_t n = rq_get64(p + 48);
    if (n > len - RQ_EXEC_HDR)
        return -1;
    e->origin = rq_get64(p + 8);
    e->seq = rq_get64(p + 16);
    e->flags = rq_get64(p + 24);
    e->ms = rq_get64(p + 32);
    e->seed = rq_get64(p + 40);
    e->json = (const char *)p + RQ_EXEC_HDR;
    e->json_len = (size_t)n;
    return 0;
}

int rq_load_decode(const void *base, size_t len, rq_load_entry *e)
{
    const unsigned char *p = base;
    if (len < 8 || memcmp(p, RQ_LOAD_MAGIC, 8) != 0)
        return 1;
    if (len < RQ_LOAD_HDR)
        return -1;
    uint64_t n = rq_get64(p + 24);
    if (n > len - RQ_LOAD_HDR)
        return -1;
    e->origin = rq_get64(p + 8);
    e->seq = rq_get64(p + 16);
    e->image = p + RQ_LOAD_HDR;
    e->image_len = (size_t)n;
    return 0;
}

int rq_snap_decode(const void *base, size_t len, rq_snapshot *s)
{
    const unsigned char *p = base;
    memset(s, 0, sizeof *s);
    if (p == NULL || len < 12)
        return -1;
    if (memcmp(p, RQ_SNAP_MAGIC, 8) == 0)
        s->version = 2;
    else if (memcmp(p, RQ_SNAP_MAGIC_V1, 8) == 0)
        s->version = 1;
    else
        return -1;
    size_t mlen = (size_t)p[8] << 24 | (size_t)p[9] << 16 | (size_t)p[10] << 8 | p[11];
    if (mlen > len - 12)
        return -1;
    json_t *j = json_loadb((const char *)p + 12, mlen, 0, NULL);
    if (s->version == 1) {
        s->metas = j;
        s->image = p + 12 + mlen;
        s->image_len = len - 12 - mlen;
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
