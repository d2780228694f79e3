/* Unit tests for http/queue.c: ?queue writes, batched by size and by
 * timeout, numbered, waited for, retried, split when refused, flushed at a
 * stop. The flush callback records what it is given instead of applying
 * it; a gate lets a test hold the queue's thread inside a flush. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http/queue.h"
#include "util/os.h"

#define MAX_CALLS 32

typedef struct recorder {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool gate_closed;        /* flush waits while closed */
    int fail_first;          /* so many calls answer -1 (retry) */
    bool refuse_merged;      /* a call of more than one statement answers 1 */
    const char *refuse;      /* a call holding this statement answers 1 */
    int entered;             /* calls begun, gate or no gate */
    int calls;               /* calls past the gate */
    char seen[MAX_CALLS][256]; /* each call's statements, joined by ';' */
} recorder;

static int recordFlush(void *ctx, const cmd_view *stmts, bool tx, const char *authorization)
{
    recorder *r = ctx;
    char line[256] = "";
    if (authorization) /* "creds|A;B" */
        snprintf(line, sizeof line, "%s|", authorization);
    size_t head = strlen(line);
    bool refused = false;
    cmd_iter it;
    cmd_stmt st;
    cmd_iter_init(&it, stmts);
    while (cmd_next(&it, &st) == 1) {
        if (strlen(line) > head)
            strcat(line, ";");
        strncat(line, st.sql, sizeof line - strlen(line) - 2);
        if (r->refuse && strcmp(st.sql, r->refuse) == 0)
            refused = true;
    }
    pthread_mutex_lock(&r->mu);
    r->entered++;
    pthread_cond_broadcast(&r->cv);
    while (r->gate_closed)
        pthread_cond_wait(&r->cv, &r->mu);
    int n = r->calls++;
    if (n < MAX_CALLS)
        snprintf(r->seen[n], sizeof r->seen[n], "%s", line);
    int rc = n < r->fail_first ? -1 : (refused || (r->refuse_merged && stmts->n > 1)) ? 1 : 0;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    return rc;
}

static recorder *newRecorder(void)
{
    recorder *r = calloc(1, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    return r;
}

static void freeRecorder(recorder *r)
{
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r);
}

static void setGate(recorder *r, bool closed)
{
    pthread_mutex_lock(&r->mu);
    r->gate_closed = closed;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

/* Until the queue's thread is inside its n-th flush. */
static void waitEntered(recorder *r, int n)
{
    pthread_mutex_lock(&r->mu);
    while (r->entered < n)
        pthread_cond_wait(&r->cv, &r->mu);
    pthread_mutex_unlock(&r->mu);
}

static int calls(recorder *r)
{
    pthread_mutex_lock(&r->mu);
    int n = r->calls;
    pthread_mutex_unlock(&r->mu);
    return n;
}

/* Queue one request of the given statements (";"-separated, or "" for a
 * request with none), with credentials authz (NULL: none). */
static int64_t addAs(queue *q, const char *sqls, const char *authz)
{
    cmd_batch b;
    cmd_batch_init(&b);
    char copy[256];
    snprintf(copy, sizeof copy, "%s", sqls);
    char *save = NULL;
    for (char *s = strtok_r(copy, ";", &save); s; s = strtok_r(NULL, ";", &save)) {
        char *err = NULL;
        assert_int_equal(cmd_add_stmt(&b, s, strlen(s), &err), 0);
    }
    int64_t seq = queue_add(q, &b, authz);
    assert_int_equal(b.n, 0); /* taken */
    cmd_batch_free(&b);
    return seq;
}

static int64_t add(queue *q, const char *sqls)
{
    return addAs(q, sqls, NULL);
}

static void test_sequence_numbers(void **state)
{
    recorder *r = newRecorder();
    struct timespec t0;
    clock_gettime(CLOCK_REALTIME, &t0);
    int64_t before = (int64_t)t0.tv_sec * 1000000000LL + t0.tv_nsec;
    queue *q = queue_start(16, 4, 10, false, recordFlush, r);
    int64_t start = queue_sequence(q);
    assert_true(start >= before); /* the start time in nanoseconds */
    int64_t a = add(q, "A"), b = add(q, "B"), c = add(q, "C");
    assert_int_equal(a, start + 1);
    assert_int_equal(b, a + 1);
    assert_int_equal(c, b + 1);
    assert_int_equal(queue_sequence(q), c);
    assert_true(queue_wait(q, c, 5000));
    queue_stop(q);
    freeRecorder(r);
}

static void test_batch_by_size(void **state)
{
    recorder *r = newRecorder();
    /* A timeout far beyond the test: only the size can end a batch. */
    queue *q = queue_start(16, 3, 60000, false, recordFlush, r);
    double t0 = rq_now_sec();
    add(q, "A");
    add(q, "B;C"); /* a request of two statements counts once */
    int64_t s = add(q, "D");
    assert_true(queue_wait(q, s, 10000));
    assert_true(rq_now_sec() - t0 < 10);
    assert_int_equal(calls(r), 1);
    assert_string_equal(r->seen[0], "A;B;C;D");
    /* rqlite's queue counters: statements in and out, no timeout yet. */
    json_t *v = queue_vars(q);
    assert_int_equal(json_integer_value(json_object_get(v, "objects_rx")), 4);
    assert_int_equal(json_integer_value(json_object_get(v, "objects_tx")), 4);
    assert_int_equal(json_integer_value(json_object_get(v, "num_timeout")), 0);
    assert_int_equal(json_integer_value(json_object_get(v, "num_flush")), 0);
    json_decref(v);
    add(q, ""); /* a flush marker */
    v = queue_vars(q);
    assert_int_equal(json_integer_value(json_object_get(v, "num_flush")), 1);
    json_decref(v);
    v = queue_vars(NULL);
    assert_int_equal(json_object_size(v), 4);
    json_decref(v);
    /* One more waits for the other two (or the timeout) ... */
    s = add(q, "E");
    assert_false(queue_wait(q, s, 200));
    assert_int_equal(calls(r), 1);
    queue_stop(q); /* ... or a stop */
    assert_int_equal(r->calls, 2);
    assert_string_equal(r->seen[1], "E");
    freeRecorder(r);
}

/* A batch merges requests with the same credentials only, and is
 * flushed with them (a follower forwards it so to the leader). */
static void test_batch_by_credentials(void **state)
{
    recorder *r = newRecorder();
    queue *q = queue_start(16, 100, 300, false, recordFlush, r);
    addAs(q, "A", "Basic YTpi");
    addAs(q, "B", "Basic YTpi");
    addAs(q, "C", NULL);
    addAs(q, "D", "Basic Yzpk");
    int64_t s = addAs(q, "E", "Basic Yzpk");
    addAs(q, "F", "Basic YTpi");
    assert_true(queue_wait(q, s, 10000));
    queue_stop(q);
    assert_int_equal(r->calls, 4);
    assert_string_equal(r->seen[0], "Basic YTpi|A;B");
    assert_string_equal(r->seen[1], "C");
    assert_string_equal(r->seen[2], "Basic Yzpk|D;E");
    assert_string_equal(r->seen[3], "Basic YTpi|F");
    freeRecorder(r);
}

static void test_batch_by_timeout(void **state)
{
    recorder *r = newRecorder();
    queue *q = queue_start(16, 100, 300, false, recordFlush, r);
    double t0 = rq_now_sec();
    add(q, "A");
    int64_t s = add(q, "B");
    assert_true(queue_wait(q, s, 10000));
    double took = rq_now_sec() - t0;
    assert_true(took >= 0.25); /* the partial batch was given its time */
    assert_true(took < 5);
    assert_int_equal(calls(r), 1);
    assert_string_equal(r->seen[0], "A;B");
    queue_stop(q);
    freeRecorder(r);
}

static void test_wait(void **state)
{
    recorder *r = newRecorder();
    setGate(r, true);
    queue *q = queue_start(16, 1, 10, false, recordFlush, r);
    int64_t s = add(q, "A");
    waitEntered(r, 1);
    assert_false(queue_wait(q, s, 200)); /* held in the flush */
    setGate(r, false);
    assert_true(queue_wait(q, s, 5000));
    assert_true(queue_wait(q, s - 1, 0)); /* an earlier number: at once */
    /* A request with no statements is a marker: nothing to flush, and
     * waiting for it waits for everything before it. */
    int64_t m = add(q, "");
    assert_true(queue_wait(q, m, 5000));
    assert_int_equal(calls(r), 1);
    queue_stop(q);
    freeRecorder(r);
}

typedef struct adder {
    queue *q;
    volatile bool done;
} adder;

static void *addInBackground(void *arg)
{
    adder *a = arg;
    add(a->q, "C");
    a->done = true;
    return NULL;
}

static void test_full_queue_blocks(void **state)
{
    recorder *r = newRecorder();
    setGate(r, true);
    queue *q = queue_start(1, 1, 10, false, recordFlush, r);
    add(q, "A");
    waitEntered(r, 1); /* A is off the queue, held in the flush: B fills it */
    add(q, "B");
    struct timespec ms = {0, 100 * 1000000L};
    adder a = {q, false};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, addInBackground, &a), 0);
    nanosleep(&ms, NULL);
    nanosleep(&ms, NULL);
    assert_false(a.done); /* C waits for room */
    setGate(r, false);
    pthread_join(t, NULL);
    assert_true(a.done);
    assert_true(queue_wait(q, queue_sequence(q), 5000));
    assert_int_equal(calls(r), 3);
    queue_stop(q);
    freeRecorder(r);
}

static void test_retry_until_applied(void **state)
{
    recorder *r = newRecorder();
    r->fail_first = 1;
    queue *q = queue_start(16, 2, 10, false, recordFlush, r);
    add(q, "A");
    int64_t s = add(q, "B");
    assert_true(queue_wait(q, s, 10000)); /* retried a second later */
    assert_int_equal(calls(r), 2);
    assert_string_equal(r->seen[0], "A;B");
    assert_string_equal(r->seen[1], "A;B");
    queue_stop(q);
    freeRecorder(r);
}

/* A merged batch refused for good is retried request by request, so that
 * one bad request does not sink the others; a refused request is dropped
 * (and counts as done for queue_wait). */
static void test_refused_batch_fallback(void **state)
{
    recorder *r = newRecorder();
    r->refuse_merged = true;
    r->refuse = "BAD";
    queue *q = queue_start(16, 3, 60000, false, recordFlush, r);
    add(q, "A");
    add(q, "BAD");
    int64_t s = add(q, "C");
    assert_true(queue_wait(q, s, 10000));
    assert_int_equal(calls(r), 4);
    assert_string_equal(r->seen[0], "A;BAD;C");
    assert_string_equal(r->seen[1], "A");
    assert_string_equal(r->seen[2], "BAD");
    assert_string_equal(r->seen[3], "C");
    queue_stop(q);
    /* A request alone that is refused is tried once, and dropped. */
    r->calls = 0;
    q = queue_start(16, 1, 10, false, recordFlush, r);
    s = add(q, "BAD");
    assert_true(queue_wait(q, s, 10000));
    s = add(q, "D");
    assert_true(queue_wait(q, s, 10000));
    assert_int_equal(calls(r), 2);
    assert_string_equal(r->seen[0], "BAD");
    assert_string_equal(r->seen[1], "D");
    queue_stop(q);
    freeRecorder(r);
}

static void test_stop_flushes_what_is_queued(void **state)
{
    recorder *r = newRecorder();
    queue *q = queue_start(16, 100, 60000, true, recordFlush, r);
    add(q, "A");
    add(q, "B");
    add(q, "C");
    queue_stop(q); /* does not wait out the 60 s */
    assert_int_equal(r->calls, 1);
    assert_string_equal(r->seen[0], "A;B;C");
    /* A batch that cannot be applied at a stop is dropped, not retried for
     * ever. */
    r->calls = 0;
    r->fail_first = 1000;
    q = queue_start(16, 100, 60000, false, recordFlush, r);
    add(q, "D");
    queue_stop(q);
    assert_int_equal(r->calls, 1);
    queue_stop(NULL);
    freeRecorder(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sequence_numbers),
        cmocka_unit_test(test_batch_by_size),
        cmocka_unit_test(test_batch_by_credentials),
        cmocka_unit_test(test_batch_by_timeout),
        cmocka_unit_test(test_wait),
        cmocka_unit_test(test_full_queue_blocks),
        cmocka_unit_test(test_retry_until_applied),
        cmocka_unit_test(test_refused_batch_fallback),
        cmocka_unit_test(test_stop_flushes_what_is_queued),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
