/*
 * store: one real node (libraft + libuv + SQLite) in a temporary directory,
 * on loopback. Checks writes, reads at each level, and that a restart comes
 * back with exactly the same database (no entry applied twice or skipped).
 * The file records the Raft index it holds, so a restart applies nothing
 * again: with a tiny snapshot threshold libraft starts from a snapshot and
 * a log tail, and the store skips both (the snapshot is not restored).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <pthread.h>
#include <raft.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "store/codec.h"
#include "store/internal.h"
#include "store/store.h"

static int freePort(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(fd, (struct sockaddr *)&a, sizeof a);
    socklen_t n = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &n);
    close(fd);
    return ntohs(a.sin_port);
}

typedef struct fixture {
    char dir[256];
    char raft_addr[64];
    char http_addr[64];
    config cfg;
} fixture;

static void fixtureConfig(fixture *f)
{
    memset(&f->cfg, 0, sizeof f->cfg);
    f->cfg.data_dir = f->dir;
    f->cfg.node_id = "1";
    f->cfg.raft_addr = f->cfg.raft_adv_addr = f->raft_addr;
    f->cfg.http_addr = f->cfg.http_adv_addr = f->http_addr;
    f->cfg.join_attempts = 1;
    f->cfg.raft_snap = 4; /* snapshot every few entries, */
    f->cfg.raft_snap_int_ms = 10; /* checked on every tick of the loop */
    f->cfg.raft_election_timeout_ms = 200;
    f->cfg.raft_heartbeat_timeout_ms = 200;
    f->cfg.raft_apply_timeout_ms = 5000;
    f->cfg.db_max_ro_conns = 4;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/rq-store-test-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->raft_addr, sizeof f->raft_addr, "127.0.0.1:%d", freePort());
    snprintf(f->http_addr, sizeof f->http_addr, "127.0.0.1:%d", freePort());
    fixtureConfig(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static store *openReady(fixture *f)
{
    store *s = NULL;
    char *err = NULL;
    int rc = store_open(&f->cfg, &s, &err);
    if (rc != 0)
        fprintf(stderr, "store_open: %s\n", err ? err : "?");
    assert_int_equal(rc, 0);
    for (int i = 0; i < 200 && !store_ready(s); i++)
        usleep(20000);
    assert_true(store_ready(s));
    assert_true(store_is_leader(s));
    return s;
}

static void exec1(store *s, const char *body, const char *expect)
{
    char *err = NULL;
    cmd_batch b;
    assert_int_equal(cmd_from_json(body, strlen(body), &b, &err), 0);
    cmd_view v = cmd_batch_view(&b);
    buf out = BUF_INIT;
    assert_int_equal(store_execute(s, &v, 0, 0, &out, NULL, &err), STORE_OK);
    if (expect)
        assert_string_equal(out.data, expect);
    buf_free(&out);
    cmd_batch_free(&b);
}

static void query1(store *s, store_level level, const char *body, const char *expect)
{
    char *err = NULL;
    cmd_batch b;
    assert_int_equal(cmd_from_json(body, strlen(body), &b, &err), 0);
    cmd_view v = cmd_batch_view(&b);
    buf out = BUF_INIT;
    store_read r = {.level = level};
    assert_int_equal(store_query(s, &v, 0, &r, &out, &err), STORE_OK);
    assert_string_equal(out.data, expect);
    buf_free(&out);
    cmd_batch_free(&b);
}

static void test_single_node_crud(void **state)
{
    fixture *f = *state;
    store *s = openReady(f);
    exec1(s, "[\"CREATE TABLE foo (id INTEGER NOT NULL PRIMARY KEY, name TEXT)\"]", "{}");
    exec1(s, "[[\"INSERT INTO foo(name) VALUES(?)\", \"fiona\"]]",
          "{\"last_insert_id\":1,\"rows_affected\":1}");
    const char *rows = "{\"columns\":[\"id\",\"name\"],\"types\":[\"integer\",\"text\"],"
                       "\"values\":[[1,\"fiona\"]]}";
    query1(s, STORE_LEVEL_WEAK, "[\"SELECT * FROM foo\"]", rows);
    query1(s, STORE_LEVEL_NONE, "[\"SELECT * FROM foo\"]", rows);
    query1(s, STORE_LEVEL_STRONG, "[\"SELECT * FROM foo\"]", rows);
    store_node *nodes = NULL;
    int n = store_nodes(s, &nodes);
    assert_int_equal(n, 1);
    assert_string_equal(nodes[0].id, "1");
    assert_true(nodes[0].voter);
    free(nodes);
    store_close(s);
}

/* Wait (up to 5 s) until a snapshot has been taken: the interval check
 * runs on the Raft thread's timer, not with the writes. */
static void waitSnapshot(store *s)
{
    raft_index idx = 0;
    for (int i = 0; i < 250 && idx == 0; i++) {
        pthread_mutex_lock(&s->mu);
        idx = s->snapshot_index;
        pthread_mutex_unlock(&s->mu);
        if (idx == 0)
            usleep(20000);
    }
    assert_true(idx > 0);
}

static void test_restart_exactly_once(void **state)
{
    fixture *f = *state;
    store *s = openReady(f);
    exec1(s, "[\"CREATE TABLE t (n INTEGER)\"]", NULL);
    /* 23 inserts with a threshold of 4: several snapshots plus a tail. */
    for (int i = 0; i < 23; i++) {
        char body[128];
        snprintf(body, sizeof body, "[\"INSERT INTO t VALUES(%d)\"]", i);
        exec1(s, body, NULL);
    }
    const char *expect = "{\"columns\":[\"COUNT(*)\",\"SUM(n)\"],\"types\":[\"integer\",\"integer\"],"
                         "\"values\":[[23,253]]}";
    query1(s, STORE_LEVEL_NONE, "[\"SELECT COUNT(*), SUM(n) FROM t\"]", expect);
    waitSnapshot(s);
    store_close(s);

    for (int round = 0; round < 2; round++) {
        fixtureConfig(f);
        s = openReady(f);
        assert_false(store_was_new(s));
        query1(s, STORE_LEVEL_WEAK, "[\"SELECT COUNT(*), SUM(n) FROM t\"]", expect);
        /* libraft handed the store its snapshot at start: skipped, since
         * the file holds it already. */
        json_t *st = store_status(s);
        assert_int_equal(json_integer_value(json_object_get(st, "num_restores")), 0);
        assert_int_equal(json_integer_value(json_object_get(st, "num_restores_start_skipped")), 1);
        assert_int_equal(json_integer_value(json_object_get(st, "num_restores_start")), 0);
        json_decref(st);
        store_close(s);
    }
}

/* The upgrade path: execute entries written before commands existed
 * (RQEXEC01, statements as JSON) still in a node's log are applied, the
 * proposer getting its results, a NUL in SQL skipped as it is everywhere,
 * and a restart replays none of them. */
static void propose(store *s, const void *entry, size_t len, const char *expect)
{
    op *o = storeOpNewApply(s);
    o->entry = raft_malloc(len);
    memcpy(o->entry, entry, len);
    o->entry_len = len;
    o->want_results = true;
    assert_int_equal(storeOpRun(s, o, 5000), STORE_OK);
    assert_string_equal(o->out.data ? o->out.data : "", expect);
    storeOpRelease(s, o);
}

static void proposeLegacy(store *s, const char *json, const char *expect)
{
    pthread_mutex_lock(&s->mu);
    uint64_t seq = s->next_seq + 1; /* the number storeOpNewApply takes */
    pthread_mutex_unlock(&s->mu);
    codec_exec_entry e = {.origin = s->id, .seq = seq, .ms = 1700000000000ULL, .seed = 7, .json = json,
                       .json_len = strlen(json)};
    size_t len = 0;
    void *p = codec_exec_encode(&e, &len);
    propose(s, p, len, expect);
    raft_free(p);
}

static void test_legacy_entries(void **state)
{
    fixture *f = *state;
    store *s = openReady(f);
    proposeLegacy(s, "[\"CREATE TABLE old (v)\", [\"INSERT INTO old VALUES(?)\", \"a\\u0000b\"]]",
                  "{},{\"last_insert_id\":1,\"rows_affected\":1}");
    proposeLegacy(s, "[\"INSERT INTO old VALUES('x\\u0000')\"]", ""); /* skipped on every node */
    proposeLegacy(s, "[\"INSERT INTO old VALUES(randomblob(4) IS NOT NULL)\"]",
                  "{\"last_insert_id\":2,\"rows_affected\":1}");
    const char *expect = "{\"columns\":[\"count(*)\",\"sum(length(CAST(v AS BLOB)))\"],"
                         "\"types\":[\"integer\",\"integer\"],\"values\":[[2,4]]}";
    query1(s, STORE_LEVEL_NONE, "[\"SELECT count(*), sum(length(CAST(v AS BLOB))) FROM old\"]", expect);
    store_close(s);
    fixtureConfig(f);
    s = openReady(f);
    query1(s, STORE_LEVEL_WEAK, "[\"SELECT count(*), sum(length(CAST(v AS BLOB))) FROM old\"]", expect);
    store_close(s);
}

/* Writes queued together go to libraft as one request of several entries
 * (group commit): every writer still gets its own entry's results. */
#define WRITERS 16
#define WRITES 25

typedef struct writer {
    store *s;
    int id;
    int bad;
} writer;

static void *writeMany(void *arg)
{
    writer *w = arg;
    for (int i = 0; i < WRITES; i++) {
        char body[160];
        snprintf(body, sizeof body, "[[\"INSERT INTO g(id, w) VALUES(?, ?)\", %d, %d], \"SELECT 1\"]", w->id * 1000 + i,
                 w->id);
        char *err = NULL;
        cmd_batch b;
        if (cmd_from_json(body, strlen(body), &b, &err) != 0) {
            w->bad++;
            continue;
        }
        cmd_view v = cmd_batch_view(&b);
        buf out = BUF_INIT;
        long long id = 0;
        /* Its own row's id, which it chose. */
        if (store_execute(w->s, &v, 0, 0, &out, NULL, &err) != STORE_OK || out.data == NULL ||
            sscanf(out.data, "{\"last_insert_id\":%lld", &id) != 1 || id != (long long)w->id * 1000 + i)
            w->bad++;
        free(err);
        buf_free(&out);
        cmd_batch_free(&b);
    }
    return NULL;
}

static void test_concurrent_writers(void **state)
{
    fixture *f = *state;
    store *s = openReady(f);
    exec1(s, "[\"CREATE TABLE g (id INTEGER PRIMARY KEY, w)\"]", NULL);
    uint64_t entries0 = s->appended, writes0 = s->m_stage[STORE_STAGE_APPEND].count;
    pthread_t t[WRITERS];
    writer w[WRITERS];
    for (int k = 0; k < WRITERS; k++) {
        w[k] = (writer){.s = s, .id = k + 1};
        assert_int_equal(pthread_create(&t[k], NULL, writeMany, &w[k]), 0);
    }
    for (int k = 0; k < WRITERS; k++) {
        pthread_join(t[k], NULL);
        assert_int_equal(w[k].bad, 0);
    }
    char expect[200];
    snprintf(expect, sizeof expect, "{\"columns\":[\"count(*)\"],\"types\":[\"integer\"],\"values\":[[%d]]}",
             WRITERS * WRITES);
    query1(s, STORE_LEVEL_STRONG, "[\"SELECT count(*) FROM g\"]", expect);
    /* Every entry went through a timed disk write of this node. */
    uint64_t entries = __atomic_load_n(&s->appended, __ATOMIC_RELAXED) - entries0;
    uint64_t writes = __atomic_load_n(&s->m_stage[STORE_STAGE_APPEND].count, __ATOMIC_RELAXED) - writes0;
    assert_true(entries >= WRITERS * WRITES);
    assert_true(writes >= 1 && writes <= entries);
    store_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_single_node_crud, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_exactly_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_legacy_entries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_writers, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
