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
 * sequence number and index to hand it the entry's results.
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
    pthread_mutex_unlock(&s->mu);
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

/* An apply op leaves the pending list when libraft calls back: the FSM
 * will not apply its entry any more. */
static op *pendingTake(store *s, uint64_t seq)
{
    for (op **pp = &s->pending; *pp; pp = &(*pp)->next) {
        if ((*pp)->seq == seq) {
            op *o = *pp;
            *pp = o->next;
            o->next = NULL;
            return o;
        }
    }
    return NULL;
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

/* The callbacks of the libraft calls that startOp makes: each completes
 * its op. */
static void applyCb(struct raft_apply *req, int status, void *result)
{
    op *o = req->data;
    (void)result;
    pendingTake(o->s, o->seq);
    /* The entry may still commit under the next leader: not retryable. */
    opFromStatus(o, status, STORE_ERROR, "leadership lost while committing log", "apply failed: ");
}

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
    case OP_APPLY: {
        struct raft_buffer b = {o->entry, o->entry_len};
        o->apply.data = o;
        rv = raft_apply(&s->raft, &o->apply, &b, 1, applyCb);
        if (rv == 0) {
            o->entry = NULL; /* raft owns it now */
            o->index = raft_last_index(&s->raft);
            o->next = s->pending;
            s->pending = o;
        }
        break;
    }
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
    if (rv != 0) {
        o->raft_rc = rv;
        if (rv == RAFT_NOTLEADER || rv == RAFT_LEADERSHIPLOST)
            storeOpComplete(o, STORE_NOT_LEADER, strdup("not leader"));
        else
            storeOpComplete(o, STORE_ERROR, rq_sprintf("%s", raft_errmsg(&s->raft)[0] ? raft_errmsg(&s->raft)
                                                                         : raft_strerror(rv)));
    }
}

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
    while (rev) {
        op *n = rev->next;
        rev->next = NULL;
        startOp(s, rev);
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
