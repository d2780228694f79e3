/*
 * queue.c: see queue.h for the contract. A singly linked list of requests
 * under one mutex; one condition variable says "something changed" (a
 * request added, a batch taken or flushed, a stop), which producers
 * blocked on a full queue, the queue's thread and queue_wait() callers all
 * wait on, each re-checking its own condition.
 */
#include "http/queue.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/log.h"
#include "util/os.h"

typedef struct item {
    int64_t seq;
    cmd_batch stmts;
    char *auth;       /* the request's Authorization, NULL if none */
    struct item *next;
} item;

static bool sameAuth(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

struct queue {
    int capacity, batch_size;
    uint64_t timeout_ms;
    bool tx;
    queue_flush_fn flush;
    void *ctx;
    pthread_mutex_t mu;
    pthread_cond_t changed;   /* items added, applied or stopping */
    item *head, *tail;
    int n;
    int64_t next_seq;         /* last handed out */
    int64_t applied_seq;      /* every request up to here is applied */
    bool stopping;
    pthread_t thread;
    /* rqlite's "queue" counters (queue_vars), any thread, relaxed. */
    uint64_t objects_rx, objects_tx, timeouts, flushes;
};

static void qstat(uint64_t *c, uint64_t n)
{
    __atomic_fetch_add(c, n, __ATOMIC_RELAXED);
}


/* Apply stmts, retrying every second until applied, as rqlite does (a stop
 * gives up after one try). Returns 0 once applied, > 0 when refused for
 * good, < 0 when given up at a stop. */
static int flushRetrying(queue *q, const cmd_view *stmts, const char *auth)
{
    int tries = 0, rc;
    if (stmts->n == 0)
        return 0;
    while ((rc = q->flush(q->ctx, stmts, q->tx, auth)) < 0) {
        if (tries++ == 0)
            rq_logl(RQ_LOG_WARN, "http", "queued write batch failed, retrying every second");
        pthread_mutex_lock(&q->mu);
        bool stop = q->stopping;
        pthread_mutex_unlock(&q->mu);
        if (stop) {
            rq_log("http", "dropping a queued write batch at shutdown");
            return -1;
        }
        struct timespec one = {1, 0};
        nanosleep(&one, NULL);
    }
    return rc;
}

/* Take the next batch off the queue: up to batch_size requests with the
 * first one's credentials, a partial batch being given timeout_ms to fill
 * so that a burst becomes one Raft entry rather than one each. Called and
 * returns with q->mu held; NULL once stopping with nothing left. */
static item *takeBatch(queue *q)
{
    while (q->n == 0 && !q->stopping)
        pthread_cond_wait(&q->changed, &q->mu);
    if (q->n == 0)
        return NULL;
    struct timespec dl;
    rq_deadline(&dl, q->timeout_ms);
    while (q->n < q->batch_size && !q->stopping)
        if (pthread_cond_timedwait(&q->changed, &q->mu, &dl) == ETIMEDOUT) {
            qstat(&q->timeouts, 1); /* a partial batch goes */
            break;
        }
    item *batch = q->head, *last = NULL;
    int k = 0;
    for (item *it = q->head; it && k < q->batch_size && sameAuth(it->auth, batch->auth); it = it->next, k++)
        last = it;
    q->head = last->next;
    if (q->head == NULL)
        q->tail = NULL;
    last->next = NULL;
    q->n -= k;
    pthread_cond_broadcast(&q->changed); /* room for blocked producers */
    return batch;
}

/* Flush a batch as one merged request; one the flush refuses for good is
 * tried request by request, so that one (too large for an entry, say)
 * cannot sink the rest. Frees the batch; returns its last sequence number. */
static int64_t flushBatch(queue *q, item *batch)
{
    cmd_batch merged;
    cmd_batch_init(&merged);
    int64_t max_seq = 0;
    for (item *it = batch; it; it = it->next) {
        cmd_view v = cmd_batch_view(&it->stmts);
        cmd_batch_concat(&merged, &v);
        max_seq = it->seq;
    }
    qstat(&q->objects_tx, merged.n);
    cmd_view mv = cmd_batch_view(&merged);
    int rc = flushRetrying(q, &mv, batch->auth);
    if (rc > 0 && batch->next) {
        for (item *it = batch; it; it = it->next) {
            cmd_view v = cmd_batch_view(&it->stmts);
            if (flushRetrying(q, &v, it->auth) > 0)
                rq_logl(RQ_LOG_WARN, "http", "queued write %lld refused, dropped", (long long)it->seq);
        }
    } else if (rc > 0) {
        rq_logl(RQ_LOG_WARN, "http", "queued write %lld refused, dropped", (long long)max_seq);
    }
    cmd_batch_free(&merged);
    while (batch) {
        item *n = batch->next;
        cmd_batch_free(&batch->stmts);
        if (batch->auth) /* a password, encoded */
            explicit_bzero(batch->auth, strlen(batch->auth));
        free(batch->auth);
        free(batch);
        batch = n;
    }
    return max_seq;
}

/* The queue's thread: the flush runs without q->mu, so that producers keep
 * queueing (up to capacity) while a batch waits for Raft. */
static void *run(void *arg)
{
    queue *q = arg;
    pthread_mutex_lock(&q->mu);
    item *batch;
    while ((batch = takeBatch(q)) != NULL) {
        pthread_mutex_unlock(&q->mu);
        int64_t seq = flushBatch(q, batch);
        pthread_mutex_lock(&q->mu);
        q->applied_seq = seq;
        pthread_cond_broadcast(&q->changed);
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

queue *queue_start(int capacity, int batch_size, uint64_t timeout_ms, bool tx, queue_flush_fn flush,
                   void *ctx)
{
    queue *q = calloc(1, sizeof *q);
    q->capacity = capacity > 0 ? capacity : 1024;
    q->batch_size = batch_size > 0 ? batch_size : 128;
    q->timeout_ms = timeout_ms ? timeout_ms : 50;
    q->tx = tx;
    q->flush = flush;
    q->ctx = ctx;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    /* Like rqlite: numbers start at the node's start time in nanoseconds. */
    q->next_seq = (int64_t)now.tv_sec * 1000000000LL + now.tv_nsec;
    q->applied_seq = q->next_seq;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->changed, NULL);
    pthread_create(&q->thread, NULL, run, q);
    return q;
}

void queue_stop(queue *q)
{
    if (q == NULL)
        return;
    pthread_mutex_lock(&q->mu);
    q->stopping = true;
    pthread_cond_broadcast(&q->changed);
    pthread_mutex_unlock(&q->mu);
    pthread_join(q->thread, NULL);
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->changed);
    free(q);
}

int64_t queue_add(queue *q, cmd_batch *stmts, const char *authorization)
{
    item *it = calloc(1, sizeof *it);
    qstat(stmts->n ? &q->objects_rx : &q->flushes, stmts->n ? stmts->n : 1);
    it->stmts = *stmts;
    it->auth = authorization ? strdup(authorization) : NULL;
    cmd_batch_init(stmts);
    pthread_mutex_lock(&q->mu);
    while (q->n >= q->capacity && !q->stopping)
        pthread_cond_wait(&q->changed, &q->mu);
    it->seq = ++q->next_seq;
    if (q->tail)
        q->tail->next = it;
    else
        q->head = it;
    q->tail = it;
    q->n++;
    pthread_cond_broadcast(&q->changed);
    int64_t seq = it->seq;
    pthread_mutex_unlock(&q->mu);
    return seq;
}

bool queue_wait(queue *q, int64_t seq, uint64_t timeout_ms)
{
    struct timespec dl;
    rq_deadline(&dl, timeout_ms);
    pthread_mutex_lock(&q->mu);
    while (q->applied_seq < seq)
        if (pthread_cond_timedwait(&q->changed, &q->mu, &dl) == ETIMEDOUT)
            break;
    bool ok = q->applied_seq >= seq;
    pthread_mutex_unlock(&q->mu);
    return ok;
}

int queue_depth(queue *q)
{
    pthread_mutex_lock(&q->mu);
    int n = q->n;
    pthread_mutex_unlock(&q->mu);
    return n;
}

int64_t queue_sequence(queue *q)
{
    pthread_mutex_lock(&q->mu);
    int64_t s = q->next_seq;
    pthread_mutex_unlock(&q->mu);
    return s;
}

json_t *queue_vars(queue *q)
{
    json_t *v = json_object();
    struct {
        const char *name;
        uint64_t *c;
    } k[] = {{"objects_rx", q ? &q->objects_rx : NULL},
             {"objects_tx", q ? &q->objects_tx : NULL},
             {"num_timeout", q ? &q->timeouts : NULL},
             {"num_flush", q ? &q->flushes : NULL}};
    for (size_t i = 0; i < sizeof k / sizeof *k; i++)
        json_object_set_new(v, k[i].name, json_integer(k[i].c ? (json_int_t)__atomic_load_n(k[i].c, __ATOMIC_RELAXED) : 0));
    return v;
}
