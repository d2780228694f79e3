/*
 * codec: the bytes store/ puts in the Raft log and in snapshots, encoded
 * and decoded without any store state, so that they can be tested and
 * fuzzed on their own. Decoders never trust lengths from the input.
 *
 * Log entries (libraft's encoders need lengths that are multiples of 8, so
 * every encoder pads):
 *
 *   execute entry   "RQCMD001", the command module's format: see
 *                   command/command.h (cmd_entry_encode). Written today.
 *   load entry      "RQLOAD01", origin, seq, image length (u64 LE each), the
 *                   SQLite image, zero padding. Written today.
 *   metadata entry  JSON {"t":"m","id","rid","addr","api"}, space padding:
 *                   a node's ID, Raft ID, Raft and API addresses. Written
 *                   today.
 *   old execute     "RQEXEC01", origin, seq, flags, clock (ms), random seed,
 *                   length of the statements' JSON (u64 LE each), the JSON,
 *                   space padding. Only read, from logs of older versions.
 *   older execute   JSON {"t":"x","o","s","f","ts","r","q":[statements]}.
 *                   Only read.
 *
 * ORIGIN/SEQ let the proposing node find its waiting request when the entry
 * is applied; the clock and seed are the proposer's, so that every replica
 * evaluates 'now' and random() alike.
 *
 * Snapshots carry no data, only a marker (the database file is the state):
 *
 *   "RQSNAP02", u32 BE length, JSON {"i": Raft index, "d": index of the last
 *   SQL entry then (what a database file must hold to stand for the
 *   snapshot), "m": node metadata array}. Written today.
 *   "RQSNAP01", u32 BE length, a JSON metadata array, then the whole SQLite
 *   image. Only restored, from snapshots of older versions.
 *
 * Ownership: encoders return raft_malloc'd buffers (libraft takes them as
 * entries and snapshots). Decoded structs point into the input, except
 * the json_t references and strings the comments name.
 */
#ifndef RQ_STORE_CODEC_H
#define RQ_STORE_CODEC_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define CODEC_EXEC_MAGIC "RQEXEC01"
#define CODEC_EXEC_HDR 56
#define CODEC_LOAD_MAGIC "RQLOAD01"
#define CODEC_LOAD_HDR 32
#define CODEC_SNAP_MAGIC "RQSNAP02"
#define CODEC_SNAP_MAGIC_V1 "RQSNAP01"
#define CODEC_SNAP_HDR 12


typedef struct codec_exec_entry {
    uint64_t origin, seq, flags, ms, seed;
    const char *json;  /* points into the entry */
    size_t json_len;
} codec_exec_entry;

/* A raft_malloc'd old execute entry (kept for tests: nothing writes them
 * any more); *len is its padded length. */
void *codec_exec_encode(const codec_exec_entry *e, size_t *len);
/* 0 and *e filled; 1 when p is not an execute entry; -1 when malformed. */
int codec_exec_decode(const void *p, size_t len, codec_exec_entry *e);

/* The older JSON execute entry e ({"t":"x",...}): NULL when e is not one;
 * else *x filled and the statements' JSON text returned (malloc'd, caller
 * frees; "" when the entry has none), which x->json points to. */
char *codec_jexec_decode(const json_t *e, codec_exec_entry *x);

typedef struct codec_load_entry {
    uint64_t origin, seq;
    const unsigned char *image; /* points into the entry */
    size_t image_len;
} codec_load_entry;

/* The padded length of a load entry holding an image of image_len bytes. */
size_t codec_load_size(size_t image_len);
/* A raft_malloc'd load entry of codec_load_size(e->image_len) bytes (*len),
 * or NULL when out of memory. */
void *codec_load_encode(const codec_load_entry *e, size_t *len);
/* Same returns as codec_exec_decode. */
int codec_load_decode(const void *p, size_t len, codec_load_entry *e);

typedef struct codec_meta_entry {
    const char *id;     /* NULL when absent (decoded) */
    uint64_t rid;
    const char *addr;   /* NULL when absent (decoded) */
    const char *api;    /* NULL: "" (encoded), absent (decoded) */
} codec_meta_entry;

/* A raft_malloc'd metadata entry (*len, padded), or NULL when out of
 * memory. */
void *codec_meta_encode(const codec_meta_entry *m, size_t *len);
/* The JSON entry e as a metadata entry: 0 and *m filled (strings borrowed
 * from e), or 1 when e is not one. */
int codec_meta_decode(const json_t *e, codec_meta_entry *m);

typedef struct codec_snapshot {
    int version;                /* 2, or 1 for the old inline format */
    uint64_t raft_index;        /* v2 "i" */
    uint64_t db_index;          /* v2 "d": what a database file must hold */
    json_t *metas;              /* decode: new reference or NULL */
    const unsigned char *image; /* v1 only, points into the snapshot */
    size_t image_len;
} codec_snapshot;

/* A raft_malloc'd "RQSNAP02" marker of s->raft_index, s->db_index and
 * s->metas (borrowed; NULL leaves "m" out), its length in *len; NULL when
 * out of memory. s->version and the image are not looked at. */
void *codec_snap_encode(const codec_snapshot *s, size_t *len);
/* 0 and *s filled (caller json_decref's s->metas), or -1 when malformed. */
int codec_snap_decode(const void *p, size_t len, codec_snapshot *s);

#endif
