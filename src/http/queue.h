/*
 * queue: rqlite's queued writes (/db/execute?queue).
 *
 * A request is acknowledged at once with a sequence number; a background
 * thread (one per queue) merges what is queued, up to batch_size requests
 * or whatever has arrived timeout_ms after the first, into one batch and
 * hands it to the flush callback, which it retries every second until the
 * batch is applied. A batch refused for good (flush > 0) that merged
 * several requests is retried request by request, so that one bad request
 * cannot sink the others; a refused request is logged and dropped.
 *
 * Each request keeps the credentials it came with (its Authorization
 * header, with -auth), and a batch merges only requests with the same, so
 * that a follower forwards each batch with its own clients' credentials.
 *
 * Sequence numbers start at the queue's start time in nanoseconds (as in
 * rqlite) and grow by one per request. Every function is thread-safe.
 */
#ifndef RQ_HTTP_QUEUE_H
#define RQ_HTTP_QUEUE_H

#include <stdbool.h>
#include <stdint.h>

#include "command/command.h"

typedef struct queue queue;

/* Apply one merged batch (called on the queue's thread, never two at
 * once); returns 0 once applied, < 0 to retry, > 0 when it is refused for
 * good. tx is the queue's own flag, as given to queue_start();
 * authorization the batch's requests' credentials (NULL: none). */
typedef int (*queue_flush_fn)(void *ctx, const cmd_view *stmts, bool tx, const char *authorization);

/* capacity: requests queued before queue_add() blocks (0: 1024);
 * batch_size (0: 128); timeout_ms (0: 50). */
queue *queue_start(int capacity, int batch_size, uint64_t timeout_ms, bool tx, queue_flush_fn flush,
                   void *ctx);
/* Flush what is queued (once stopping, a batch whose flush fails is
 * dropped, not retried), stop the thread and free q. NULL is allowed. */
void queue_stop(queue *q);

/* Queue statements (taken: *stmts is left empty; no statements is a flush
 * marker) with the request's credentials (copied; NULL: none). Blocks
 * while the queue is full. Returns the request's sequence number. */
int64_t queue_add(queue *q, cmd_batch *stmts, const char *authorization);
/* Wait until the batch holding seq has been flushed (applied, or refused
 * and dropped); false on timeout. */
bool queue_wait(queue *q, int64_t seq, uint64_t timeout_ms);
/* Highest sequence number handed out so far (for /status). */
int64_t queue_sequence(queue *q);
/* Requests waiting to be merged into a batch (for /metrics). */
int queue_depth(queue *q);
/* rqlite's "queue" expvar map (a new object, caller owns): statements
 * queued (objects_rx) and handed to flush in batches (objects_tx), batches
 * that went partial when timeout_ms ran out (num_timeout), flush markers
 * (num_flush). q NULL: all 0. */
json_t *queue_vars(queue *q);

#endif
