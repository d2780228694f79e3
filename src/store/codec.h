/*
 * codec: the bytes store/ puts in the Raft log and in snapshots, encoded
 * and decoded without any store state, so that they can be tested and
 * fuzzed on their own. Decoders never trust lengths from the input.
 *
 *   execute entry  "RQEXEC01", origin, seq, flags, clock (ms), random seed,
 *                  length of the statements' JSON (u64 LE each), the JSON,
 *                  space padding to 8 bytes
 *   load entry     "RQLOAD01", origin, seq, image length (u64 LE each), the
 *                  SQLite image, zero padding
 *   snapshot       "RQSNAP02", u32 BE length, JSON {"i","d","m"}; the old
 *                  "RQSNAP01" has a JSON metadata array and the image inline
 */
#ifndef RQ_STORE_CODEC_H
#define RQ_STORE_CODEC_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define RQ_EXEC_MAGIC "RQEXEC01"
#define RQ_EXEC_HDR 56
#define RQ_LOAD_MAGIC "RQLOAD01"
#define RQ_LOAD_HDR 32
#define RQ_SNAP_MAGIC "RQSNAP02"
#define RQ_SNAP_MAGIC_V1 "RQSNAP01"

uint64_t rq_get64(const unsigned char *p);
void rq_put64(unsigned char *p, uint64_t v);

typedef struct rq_exec_entry {
    uint64_t origin, seq, flags, ms, seed;
    const char *json;  /* points into the entry */
    size_t json_len;
} rq_exec_entry;

/* A raft_malloc'd execute entry; *len is its padded length. */
void *rq_exec_encode(const rq_exec_entry *e, size_t *len);
/* 0 and *e filled; 1 when p is not an execute entry; -1 when malformed. */
int rq_exec_decode(const void *p, size_t len, rq_exec_entry *e);

typedef struct rq_load_entry {
    uint64_t origin, seq;
    const unsigned char *image; /* points into the entry */
    size_t image_len;
} rq_load_entry;

/* Same returns as rq_exec_decode. */
int rq_load_decode(const void *p, size_t len, rq_load_entry *e);

typedef struct rq_snapshot {
    int version;                /* 2, or 1 for the old inline format */
    uint64_t raft_index;        /* v2 "i" */
    uint64_t db_index;          /* v2 "d": what a database file must hold */
    json_t *metas;              /* new reference or NULL */
    const unsigned char *image; /* v1 only, points into the snapshot */
    size_t image_len;
} rq_snapshot;

/* 0 and *s filled (caller json_decref's s->metas), or -1 when malformed. */
int rq_snap_decode(const void *p, size_t len, rq_snapshot *s);

#endif
