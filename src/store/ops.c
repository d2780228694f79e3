/*
 * ops.c: how a caller thread (an HTTP worker) gets work done by the Raft
 * thread, which alone may touch the Raft instance, its libuv loop, the FSM
 * and the database's write connection.
 *
 * An op is queued under s->mu, the loop is woken with uv_async_send(), the
 * Raft thread makes the libraft call (startOp), and the op completes
 * (condition variable) from the libraft callback, or after every loop
 * iteration for the ops libraft has no call for (linearizable reads,
 * readindex.c; user snapshots, fsm.c). A waiter that gives up (timeout)
 * leaves the op to be freed by the Raft thread: both hold a reference.
 *
 * An applied op also waits on s->pending, where the FSM finds it by
 * sequence number and index to hand it the entry's results, and completes
 * it (storeOpApplied). The writes queued together go to libraft as one
 * request of several entries (startApplies): one disk write and one
 * AppendEntries per follower for all of them, the group commit.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store/internal.h"
#include "util/os.h"

op *storeOpNew(store *s, int type)
{
    op *o = calloc(1, sizeof *o);
    o->type = type;
    o->refs = 2;
    o->s = s;
    buf_init(&o->out);
    pthread_cond_init(&o->cond, NULL);
    return o;
}

/* The last reference is gone: nobody will look at the op again. */
static void opFree(op *o)
{
    pthread_cond_destroy(&o->cond);
    buf_free(&o->out);
    free(o->err);
    free(o->marks);
    if (o->entry)
        raft_free(o->entry);
    free(o);
}

/* Drop one reference; caller holds s->mu. */
static void opUnrefLocked(op *o)
{
    if (--o->refs == 0)
        opFree(o);
}

void storeOpComplete(op *o, int rc, char *err)
{
    store *s = o->s;
    pthread_mutex_lock(&s->mu);
    o->done = true;
    o->rc = rc;
    if (err && !o->err)
        o->err = err;
    else
        free(err);
    pthread_cond_broadcast(&o->cond);
    opUnrefLocked(o);
    pthread_mutex_unlock(&s->mu);
}

/* A closing store takes no more ops: the Raft thread may be gone, so the
 * op is finished here, with only the caller's reference left. */
int storeOpRun(store *s, op *o, uint64_t timeout_ms)
{
    pthread_mutex_lock(&s->mu);
    if (s->closing) {
        pthread_mutex_unlock(&s->mu);
        o->refs = 1;
        o->rc = STORE_ERROR;
        o->err = strdup("store not open");
        o->done = true;
        return o->rc;
    }
    if (o->type == OP_APPLY)
        o->t_queued = rq_now_sec();
    o->next = s->queue;
    s->queue = o;
    pthread_mutex_unlock(&s->mu);
    uv_async_send(&s->wake);

    struct timespec deadline;
    rq_deadline(&deadline, timeout_ms);
    pthread_mutex_lock(&s->mu);
    while (!o->done) {
        if (pthread_cond_timedwait(&o->cond, &s->mu, &deadline) == ETIMEDOUT)
            break;
    }
    int rc = o->done ? o->rc : STORE_ERROR;
    double applied = o->t_applied;
    pthread_mutex_unlock(&s->mu);
    if (applied > 0)
        store_stage(s, STORE_STAGE_WAKE, rq_now_sec() - applied);
    return rc;
}

void storeOpRelease(store *s, op *o)
{
    pthread_mutex_lock(&s->mu);
    opUnrefLocked(o);
    pthread_mutex_unlock(&s->mu);
}

char *storeOpTakeErr(op *o, const char *timeout_msg)
{
    if (!o->done)
        return strdup(timeout_msg);
    char *e = o->err;
    o->err = NULL;
    return e ? e : strdup("unknown error");
}

/* The ops queued by caller threads, taken all at once (under s->mu). */
static op *takeQueue(store *s)
{
    pthread_mutex_lock(&s->mu);
    op *q = s->queue;
    s->queue = NULL;
    pthread_mutex_unlock(&s->mu);
    return q;
}

op *storeOpNewApply(store *s)
{
    op *o = storeOpNew(s, OP_APPLY);
    pthread_mutex_lock(&s->mu);
    o->seq = ++s->next_seq;
    pthread_mutex_unlock(&s->mu);
    return o;
}

int storeOpNoMemory(store *s, op *o, char **err)
{
    storeOpRelease(s, o);
    storeOpRelease(s, o);
    *err = strdup("out of memory");
    return STORE_ERROR;
}

void storeOpFailAll(op **list, const char *why)
{
    op *o = *list;
    *list = NULL;
    while (o) {
        op *n = o->next;
        o->next = NULL;
        storeOpComplete(o, STORE_ERROR, strdup(why));
        o = n;
    }
}

void storeOpFailQueued(store *s, const char *why)
{
    op *q = takeQueue(s);
    storeOpFailAll(&q, why);
}

/* Take o off the pending list: false if it was not there (completed
 * already). Whoever takes it completes it. */
static bool pendingTake(store *s, op *o)
{
    for (op **pp = &s->pending; *pp; pp = &(*pp)->next) {
        if (*pp == o) {
            *pp = o->next;
            o->next = NULL;
            return true;
        }
    }
    return false;
}

void storeOpApplied(store *s, op *o, double t_applied)
{
    if (!pendingTake(s, o))
        return;
    pthread_mutex_lock(&s->mu);
    o->t_applied = t_applied;
    pthread_mutex_unlock(&s->mu);
    storeOpComplete(o, STORE_OK, NULL);
}

void storeOpSettle(store *s, raft_index applied)
{
    op *o = s->pending;
    while (o) {
        op *n = o->next;
        /* Its index is applied and the entry there was not its own (the
         * FSM would have completed it): a new leader replaced it. */
        if (o->batchable && o->index <= applied && pendingTake(s, o))
            storeOpComplete(o, STORE_ERROR, strdup("leadership lost while committing log"));
        o = n;
    }
}

/* Finish an op from a libraft callback status. A lost leadership is
 * lost_rc with lost_msg; other failures are "<what>: <libraft error>". */
static void opFromStatus(op *o, int status, int lost_rc, const char *lost_msg, const char *what)
{
    if (status == 0)
        storeOpComplete(o, STORE_OK, NULL);
    else if (status == RAFT_LEADERSHIPLOST || status == RAFT_NOTLEADER)
        storeOpComplete(o, lost_rc, strdup(lost_msg));
    else
        storeOpComplete(o, STORE_ERROR, rq_sprintf("%s%s", what, raft_strerror(status)));
}

/* Writes proposed together (startApplies), each op referenced until
 * libraft is done with the request. */
typedef struct applyBatch {
    struct raft_apply req;
    store *s;
    unsigned n;
    op *ops[];
} applyBatch;

static void batchFree(applyBatch *b)
{
    pthread_mutex_lock(&b->s->mu);
    for (unsigned i = 0; i < b->n; i++)
        opUnrefLocked(b->ops[i]);
    pthread_mutex_unlock(&b->s->mu);
    free(b);
}

/* libraft calls back once its first entry is applied (status 0: the FSM
 * completes each command as it applies its entry; another kind of entry,
 * never batched with others, completes here), or when the request failed:
 * that fails the ops still waiting. */
static void batchCb(struct raft_apply *req, int status, void *result)
{
    applyBatch *b = req->data;
    (void)result;
    if (status == 0 && pendingTake(b->s, b->ops[0]))
        storeOpComplete(b->ops[0], STORE_OK, NULL);
    for (unsigned i = 0; i < b->n && status != 0; i++)
        if (pendingTake(b->s, b->ops[i]))
            /* The entry may still commit under the next leader: not retryable. */
            opFromStatus(b->ops[i], status, STORE_ERROR, "leadership lost while committing log", "apply failed: ");
    batchFree(b);
}

/* Fail a startOp whose libraft call returned rv. */
static void opFailStart(store *s, op *o, int rv)
{
    o->raft_rc = rv;
    if (rv == RAFT_NOTLEADER || rv == RAFT_LEADERSHIPLOST)
        storeOpComplete(o, STORE_NOT_LEADER, strdup("not leader"));
    else
        storeOpComplete(o, STORE_ERROR,
                        rq_sprintf("%s", raft_errmsg(&s->raft)[0] ? raft_errmsg(&s->raft) : raft_strerror(rv)));
}

/* Propose n queued writes as one libraft request of n entries (n > 1:
 * batchable ones only). */
static void startApplies(store *s, op **ops, unsigned n)
{
    int rv = RAFT_NOTLEADER;
    applyBatch *b = NULL;
    struct raft_buffer *bufs = NULL;
    if (s->raft.state == RAFT_LEADER) {
        b = malloc(sizeof *b + n * sizeof *ops);
        bufs = malloc(n * sizeof *bufs);
        rv = b && bufs ? 0 : RAFT_NOMEM;
    }
    if (rv == 0) {
        double now = rq_now_sec();
        for (unsigned i = 0; i < n; i++) {
            bufs[i] = (struct raft_buffer){ops[i]->entry, ops[i]->entry_len};
            ops[i]->t_proposed = now;
            store_stage(s, STORE_STAGE_QUEUE, now - ops[i]->t_queued);
        }
        *b = (applyBatch){.s = s, .n = n};
        memcpy(b->ops, ops, n * sizeof *ops);
        b->req.data = b;
        rv = raft_apply(&s->raft, &b->req, bufs, n, batchCb);
    }
    free(bufs);
    if (rv != 0) {
        free(b);
        for (unsigned i = 0; i < n; i++)
            opFailStart(s, ops[i], rv);
        return;
    }
    raft_index first = raft_last_index(&s->raft) - n + 1;
    pthread_mutex_lock(&s->mu);
    for (unsigned i = 0; i < n; i++)
        ops[i]->refs++; /* the batch's */
    pthread_mutex_unlock(&s->mu);
    for (unsigned i = 0; i < n; i++) {
        op *o = ops[i];
        o->entry = NULL; /* raft owns it now */
        o->index = first + i;
        o->next = s->pending;
        s->pending = o;
    }
}

/* The callbacks of the libraft calls that startOp makes: each completes
 * its op. */

static void barrierCb(struct raft_barrier *req, int status)
{
    opFromStatus(req->data, status, STORE_NOT_LEADER, "leadership lost", "barrier failed: ");
}

static void changeCb(struct raft_change *req, int status)
{
    op *o = req->data;
    o->raft_rc = status;
    opFromStatus(o, status, STORE_NOT_LEADER, "not leader", "");
}

/* A stepdown's op ends when libraft gives up or hands over leadership. */
static void transferCb(struct raft_transfer *req)
{
    op *o = req->data;
    store *s = o->s;
    /* The transfer callback carries no status: success means someone else
     * leads now. */
    if (s->raft.state != RAFT_LEADER)
        storeOpComplete(o, STORE_OK, NULL);
    else
        storeOpComplete(o, STORE_ERROR, strdup("leadership transfer failed"));
}

/* Raft thread: make the libraft call an op asks for; its callback (or a
 * failure to make it) completes the op. */
static void startOp(store *s, op *o)
{
    int rv = 0;
    if (o->type == OP_SNAPSHOT) {
        storeSnapStart(s, o);
        return;
    }
    if (s->raft.state != RAFT_LEADER) {
        storeOpComplete(o, STORE_NOT_LEADER, strdup("not leader"));
        return;
    }
    switch (o->type) {
    case OP_APPLY:
        startApplies(s, &o, 1);
        return;
    case OP_BARRIER:
        o->barrier.data = o;
        rv = raft_barrier(&s->raft, &o->barrier, barrierCb);
        break;
    case OP_ADD:
        o->change.data = o;
        rv = raft_add(&s->raft, &o->change, o->rid, o->addr, changeCb);
        break;
    case OP_ASSIGN:
        o->change.data = o;
        rv = raft_assign(&s->raft, &o->change, o->rid, o->role, changeCb);
        break;
    case OP_REMOVE:
        o->change.data = o;
        rv = raft_remove(&s->raft, &o->change, o->rid, changeCb);
        break;
    case OP_READINDEX:
        if (!s->leader_ready) {
            /* Nothing committed in this term yet: the commit index may be
             * stale, so go through the log once (rqlite's upgrade). */
            o->barrier.data = o;
            rv = raft_barrier(&s->raft, &o->barrier, barrierCb);
        } else {
            storeReadStart(s, o);
            s->reads_started = true;
        }
        break;
    case OP_TRANSFER:
        o->transfer.data = o;
        rv = raft_transfer(&s->raft, &o->transfer, o->rid, transferCb);
        break;
    default:
        rv = RAFT_INVALID;
    }
    if (rv != 0)
        opFailStart(s, o, rv);
}

/* The most writes proposed as one request. */
#define BATCH_MAX 256

/* Raft thread, on wake: start every queued op. */
static void drainQueue(store *s)
{
    op *q = takeQueue(s);
    /* Reverse to start ops in arrival order. */
    op *rev = NULL;
    while (q) {
        op *n = q->next;
        q->next = rev;
        rev = q;
        q = n;
    }
    op *run[BATCH_MAX];
    unsigned n_run = 0;
    while (rev) {
        op *n = rev->next;
        rev->next = NULL;
        if (rev->type == OP_APPLY && rev->batchable) {
            run[n_run++] = rev;
        } else if (rev->type == OP_APPLY) {
            if (n_run)
                startApplies(s, run, n_run);
            n_run = 0;
            startApplies(s, &rev, 1);
        } else {
            if (n_run)
                startApplies(s, run, n_run);
            n_run = 0;
            startOp(s, rev);
        }
        if (n_run && (n_run == BATCH_MAX || n == NULL)) {
            startApplies(s, run, n_run);
            n_run = 0;
        }
        rev = n;
    }
    if (s->reads_started) {
        s->reads_started = false;
        storeHeartbeatNow(s);
    }
}

void storeOnWake(uv_async_t *h)
{
    store *s = h->data;
    if (s->raft_shut != RAFT_RUNNING) {
        storeOpFailQueued(s, "raft is shut down: this node was removed from the cluster");
        return;
    }
    if (s->raft_started) {
        storeFetchDone(s);
        drainQueue(s);
    }
}
