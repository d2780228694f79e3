/*
 * queue: rqlite's queued writes (/db/execute?queue). Requests are
 * acknowledged at once with a sequence number, then merged, up to a batch
 * size or after a timeout, into one execute request, retried until it is
 * applied.
 */
#ifndef RQ_HTTP_QUEUE_H
#define RQ_HTTP_QUEUE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct wqueue wqueue;

/* Apply one merged batch; returns 0 once applied, non-zero to retry. */
typedef int (*wqueue_flush_fn)(void *ctx, const json_t *stmts, bool tx);

wqueue *wqueue_start(int capacity, int batch_size, uint64_t timeout_ms, bool tx,
                     wqueue_flush_fn flush, void *ctx);
/* Flush what is queued and stop the background thread. */
void wqueue_stop(wqueue *q);

/* Queue statements (may be NULL or empty: a flush marker). Blocks while
 * the queue is full. Returns the request's sequence number. */
int64_t wqueue_add(wqueue *q, json_t *stmts /* stolen */);
/* Wait until the batch holding seq is applied; false on timeout. */
bool wqueue_wait(wqueue *q, int64_t seq, uint64_t timeout_ms);
/* Highest sequence number handed out so far (for /status). */
int64_t wqueue_sequence(wqueue *q);

#endif
