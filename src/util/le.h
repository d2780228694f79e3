/*
 * le: little-endian integers in byte buffers, whatever the host. Every
 * binary format of ours is little-endian, as libraft's wire format is: log
 * entries (command/, store/codec.c), the Raft port's handshake and image
 * framing (store/transport.c, cluster/).
 */
#ifndef RQ_UTIL_LE_H
#define RQ_UTIL_LE_H

#include <stdint.h>

static inline uint64_t le64_get(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static inline void le64_put(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++, v >>= 8)
        p[i] = (unsigned char)v;
}

static inline uint32_t le32_get(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void le32_put(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++, v >>= 8)
        p[i] = (unsigned char)v;
}

#endif
