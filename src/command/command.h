/*
 * command: a request's statements, typed, and the one binary encoding of
 * them that the Raft log carries.
 *
 * The HTTP layer builds a command once (from rqlite's JSON request format or
 * from plain SQL text), validating it on the way: whatever a command holds
 * can be encoded, and whatever is encoded decodes the same way on every
 * node, so nothing a follower could fail to read ever enters the log. The
 * leader applies the very bytes it proposes, decoded as followers decode
 * them.
 *
 * Statements payload: a sequence of records (no header; the count is kept
 * beside it, so two payloads concatenate into one):
 *
 *   stmt   := varint sql_len, sql bytes, 0x00, n_params (u32 LE), param*
 *   param  := u8 tag, [varint name_len, name bytes, 0x00]  (tag & CMD_NAMED)
 *             value
 *   value  := nothing (NULL) | 8 bytes LE (INT, REAL as IEEE-754 bits)
 *             | varint len, bytes (TEXT, BLOB)
 *
 * varint is LEB128 (7 bits a byte, low first, at most 10 bytes). SQL text
 * and parameter names hold no NUL byte and are NUL-terminated in the
 * payload, so that they can be used as C strings where they lie; TEXT and
 * BLOB values are length-delimited and may hold anything.
 *
 * Execute log entry (version 1):
 *
 *   "RQCMD001"  origin seq flags unix_ms seed steps   (u64 LE each)
 *   n_stmts (u32 LE)  encoding (u32 LE)  payload_len (u64 LE)
 *   payload, then zero padding to a multiple of 8 (libraft's encoders need it)
 *
 * encoding 0: the payload as above. encoding 1 (CMD_LZ4): a u64 LE of the
 * payload's length, then the payload as one LZ4 block; used when the
 * payload is at least CMD_COMPRESS_MIN bytes and shrinks by an eighth or
 * more. LZ4 over zstd: every node decompresses every entry on the Raft
 * thread, and LZ4 does it 5 times faster (10 us against 52 us for 1,000
 * varied rows here) for a ratio of 3.2 instead of 5.1 (bench in the issue
 * note); repeated statements, the common bulk case, shrink 190-fold.
 *
 * Ownership: a cmd_batch owns its payload buffer (cmd_batch_free); views
 * (cmd_view, cmd_stmt, cmd_param) point into bytes someone else owns and
 * live no longer than them.
 */
#ifndef RQ_COMMAND_COMMAND_H
#define RQ_COMMAND_COMMAND_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

enum { CMD_NULL = 0, CMD_INT = 1, CMD_REAL = 2, CMD_TEXT = 3, CMD_BLOB = 4, CMD_NAMED = 0x80 };

/* A decoded parameter. name is NULL for a positional one; text and blob
 * values are at p (n bytes, not NUL-terminated). */
typedef struct cmd_param {
    int type;
    const char *name;
    size_t name_len;
    int64_t i;
    double r;
    const void *p;
    size_t n;
} cmd_param;

/* A decoded statement: sql is NUL-terminated (sql[sql_len] == 0) and holds
 * no other NUL; its parameters follow in params (n_params of them). */
typedef struct cmd_stmt {
    const char *sql;
    size_t sql_len;
    uint32_t n_params;
    const unsigned char *params;
    const unsigned char *params_end;
} cmd_stmt;

/* A read-only view of a statements payload with its count. */
typedef struct cmd_view {
    const unsigned char *data;
    size_t len;
    uint32_t n;
} cmd_view;

/* Statements being built, or held: payload + count. */
typedef struct cmd_batch {
    buf payload;
    uint32_t n;
    size_t count_at;  /* building: offset of the last statement's n_params */
} cmd_batch;

void cmd_batch_init(cmd_batch *b);
void cmd_batch_free(cmd_batch *b);
cmd_view cmd_batch_view(const cmd_batch *b);
/* Append src's statements to dst (queued writes merge this way). */
void cmd_batch_concat(cmd_batch *dst, const cmd_view *src);

/* Building. cmd_add_stmt() starts a statement; the parameters that follow
 * belong to it. Returns 0, or -1 with *err ("invalid request: ...") when
 * sql holds a NUL byte or is not UTF-8. */
int cmd_add_stmt(cmd_batch *b, const char *sql, size_t len, char **err);
/* name NULL: positional. Named: without the :, @ or $ prefix. */
void cmd_add_null(cmd_batch *b, const char *name);
void cmd_add_int(cmd_batch *b, const char *name, int64_t v);
void cmd_add_real(cmd_batch *b, const char *name, double v);
void cmd_add_text(cmd_batch *b, const char *name, const void *p, size_t n);
void cmd_add_blob(cmd_batch *b, const char *name, const void *p, size_t n);

/* rqlite's JSON request body: an array whose elements are SQL strings or
 * arrays [sql, param...] with positional values and objects of named ones
 * (numbers, strings, booleans, null, byte arrays; a string x'..' of hex
 * digits is a BLOB). On error returns -1 with *err set to rqlite's message
 * ("invalid request", "invalid JSON body", "no statements", "unsupported
 * type", "invalid request: SQL text contains a NUL byte"): 400 material. */
int cmd_from_json(const char *body, size_t len, cmd_batch *out, char **err);
/* One statement of plain SQL text (text/plain bodies, ?q=, /db/load). */
int cmd_from_sql(const char *sql, size_t len, cmd_batch *out, char **err);

/* The statements back as rqlite's JSON request body (malloc'd text), for
 * forwarding to the leader: cmd_from_json() of it gives the same payload. */
char *cmd_to_json(const cmd_view *v);

/* Walking a payload. Each returns 1 with the next item, 0 at the end, -1
 * when the bytes are malformed (never trusting a length in them). */
typedef struct cmd_iter {
    const unsigned char *p, *end;
    uint32_t left;
} cmd_iter;
void cmd_iter_init(cmd_iter *it, const cmd_view *v);
int cmd_next(cmd_iter *it, cmd_stmt *s);

typedef struct cmd_param_iter {
    const unsigned char *p, *end;
    uint32_t left;
} cmd_param_iter;
void cmd_param_iter_init(cmd_param_iter *it, const cmd_stmt *s);
int cmd_param_next(cmd_param_iter *it, cmd_param *out);

/* Is the whole payload well-formed (count, lengths, terminators, tags,
 * nothing left over)? The leader checks before proposing. */
bool cmd_valid(const cmd_view *v);

/* ---- the execute log entry ------------------------------------------------ */

#define CMD_ENTRY_MAGIC "RQCMD001"
#define CMD_ENTRY_HDR 72

#define CMD_LZ4 1
#define CMD_COMPRESS_MIN 4096
/* The most a compressed payload may claim to hold (decoding allocates it). */
#define CMD_MAX_PAYLOAD ((uint64_t)1 << 30)

typedef struct cmd_entry {
    uint64_t origin, seq, flags;
    uint64_t unix_ms;   /* the proposer's clock: SQLite's 'now' on every node */
    uint64_t seed;      /* random()/randomblob() on every node */
    uint64_t steps;     /* VM step budget of the whole entry */
    cmd_view stmts;     /* decode: points into the entry, or into owned */
    void *owned;        /* decode: the decompressed payload (cmd_entry_free) */
} cmd_entry;

/* The padded length of an uncompressed entry for a payload of len bytes,
 * and its encoding into out (cmd_entry_size() bytes). */
size_t cmd_entry_size(size_t payload_len);
void cmd_entry_encode(const cmd_entry *e, void *out);
/* The whole entry for e (header and e->stmts, compressed when worth it),
 * padded, in malloc'd memory (caller frees); *len its length. */
void *cmd_entry_pack(const cmd_entry *e, size_t *len);
/* Is a packed entry (len bytes) LZ4-compressed? */
bool cmd_entry_compressed(const void *entry, size_t len);
/* 0 with *e filled (its stmts validated with cmd_valid; release it with
 * cmd_entry_free); 1 when p is not a command entry; -1 when it is one but
 * malformed. */
int cmd_entry_decode(const void *p, size_t len, cmd_entry *e);
void cmd_entry_free(cmd_entry *e);

/* rqlite's expvar maps for this module (new objects, caller owns):
 * "proto", what cmd_entry_pack did in this process (entries packed, sent
 * compressed or not, bytes before and after, compression not worth it),
 * and "sql.processor", which we keep at 0 (see command.c). Any thread. */
json_t *command_vars(void);
json_t *command_sql_vars(void);

#endif
