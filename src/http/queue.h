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

typedef struct wqueue wqueue;

/* Apply one merged batch; returns 0 once applied, < 0 to retry, > 0 when
 * it is refused for good (then each request is tried on its own). */
typedef int (*wqueue_flush_fn)(void *ctx, const cmd_view *stmts, bool tx);

wqueue *wqueue_start(int capacity, int batch_size, uint64_t timeout_ms, bool tx,
                     wqueue_flush_fn flush, void *ctx);
/* Flush what is queued and stop the background thread. */
void wqueue_stop(wqueue *q);

/* Queue statements (taken: *stmts is left empty; no statements is a flush
 * marker). Blocks while the queue is full. Returns the request's sequence
 * number. */
int64_t wqueue_add(wqueue *q, cmd_batch *stmts);
/* Wait until the batch holding seq is applied; false on timeout. */
bool wqueue_wait(wqueue *q, int64_t seq, uint64_t timeout_ms);
/* Highest sequence number handed out so far (for /status). */
int64_t wqueue_sequence(wqueue *q);

#endif
