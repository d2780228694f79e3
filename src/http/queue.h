/*
 * queue: rqlite's queued writes (/db/execute?queue). Requests are
 * acknowledged at once with a sequence number, then merged, up to a batch
 * size or after a timeout, into one execute request, retried until it is
 * applied.
 */
#ifndef RQ_HTTP_QUEUE_H
#define RQ_HTTP_QUEUE_H

#include <stdbool.h>
#include <stdint.h>

#include "command/command.h"

typedef struct queue queue;

/* Apply one merged batch; returns 0 once applied, < 0 to retry, > 0 when
 * it is refused for good (then each request is tried on its own). */
typedef int (*queue_flush_fn)(void *ctx, const cmd_view *stmts, bool tx);

queue *queue_start(int capacity, int batch_size, uint64_t timeout_ms, bool tx,
                     queue_flush_fn flush, void *ctx);
/* Flush what is queued and stop the background thread. */
void queue_stop(queue *q);

/* Queue statements (taken: *stmts is left empty; no statements is a flush
 * marker). Blocks while the queue is full. Returns the request's sequence
 * number. */
int64_t queue_add(queue *q, cmd_batch *stmts);
/* Wait until the batch holding seq is applied; false on timeout. */
bool queue_wait(queue *q, int64_t seq, uint64_t timeout_ms);
/* Highest sequence number handed out so far (for /status). */
int64_t queue_sequence(queue *q);

#endif
