/* Unit tests for db: request parsing, execution and rqlite's exact bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "command/command.h"
#include "db/db.h"
#include "db/internal.h"
#include "util/os.h"

typedef struct fixture {
    char dir[64];
    char path[128];
    db *d;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/rq-db-test-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/db.sqlite", f->dir);
    db_options o = {.fk = true, .max_ro_conns = 4};
    char *err = NULL;
    assert_int_equal(db_open(f->path, &o, &f->d, &err), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    db_close(f->d);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

/* A request body (rqlite's JSON) as a command. */
typedef struct req {
    cmd_batch b;
    cmd_view v;
} req;

static req *parse(const char *body)
{
    req *r = calloc(1, sizeof *r);
    char *err = NULL;
    if (cmd_from_json(body, strlen(body), &r->b, &err) != 0)
        fail_msg("parse %s: %s", body, err);
    r->v = cmd_batch_view(&r->b);
    return r;
}

static void reqFree(req *r)
{
    cmd_batch_free(&r->b);
    free(r);
}

/* Run body (JSON) through db_execute or db_query and compare bytes. */
static void run(db *d, bool query, const char *body, unsigned flags, const char *want)
{
    req *r = parse(body);
    buf out = BUF_INIT;
    if (query)
        db_query(d, &r->v, flags, 0, &out);
    else
        db_execute(d, &r->v, flags, &out);
    reqFree(r);
    assert_string_equal(out.data ? out.data : "", want);
    buf_free(&out);
}

#define EXEC(d, body, flags, want) run(d, false, body, flags, want)
#define QUERY(d, body, flags, want) run(d, true, body, flags, want)

static void test_execute_and_query_shapes(void **state)
{
    fixture *f = *state;
    EXEC(f->d, "[\"CREATE TABLE foo (id INTEGER NOT NULL PRIMARY KEY, name TEXT, age INTEGER, "
               "score REAL, data BLOB, ok BOOLEAN)\"]", 0, "{}");
    EXEC(f->d, "[[\"INSERT INTO foo(name, age, score, data, ok) VALUES(?, ?, ?, ?, ?)\", "
               "\"fiona\", 20, 2.5, \"x'DEADBEEF'\", true],"
               "[\"INSERT INTO foo(name, age) VALUES(:name, @age)\", {\"name\": \"declan\", \"age\": 30}],"
               "[\"INSERT INTO foo(name) VALUES($n)\", {\"n\": \"<&>\"}],"
               "\"INSERT INTO nope VALUES(1)\"]",
         0,
         "{\"last_insert_id\":1,\"rows_affected\":1},{\"last_insert_id\":2,\"rows_affected\":1},"
         "{\"last_insert_id\":3,\"rows_affected\":1},{\"error\":\"no such table: nope\"}");
    QUERY(f->d, "[\"SELECT * FROM foo ORDER BY id\"]", 0,
          "{\"columns\":[\"id\",\"name\",\"age\",\"score\",\"data\",\"ok\"],"
          "\"types\":[\"integer\",\"text\",\"integer\",\"real\",\"blob\",\"boolean\"],"
          "\"values\":[[1,\"fiona\",20,2.5,\"3q2+7w==\",true],[2,\"declan\",30,null,null,null],"
          "[3,\"\\u003c\\u0026\\u003e\",null,null,null,null]]}");
    QUERY(f->d, "[\"SELECT data FROM foo WHERE id = 1\"]", DB_BLOB_ARRAY,
          "{\"columns\":[\"data\"],\"types\":[\"blob\"],\"values\":[[[222,173,190,239]]]}");
    /* Expressions take their type from the first row; empty sets omit values. */
    QUERY(f->d, "[\"SELECT COUNT(*), 1.0*2, 'a' FROM foo\"]", 0,
          "{\"columns\":[\"COUNT(*)\",\"1.0*2\",\"'a'\"],\"types\":[\"integer\",\"real\",\"text\"],"
          "\"values\":[[3,2,\"a\"]]}");
    QUERY(f->d, "[\"SELECT id FROM foo WHERE id > 100\"]", 0,
          "{\"columns\":[\"id\"],\"types\":[\"integer\"]}");
    QUERY(f->d, "[[\"SELECT name, id FROM foo WHERE age = ?\", 30]]", DB_ASSOC,
          "{\"types\":{\"id\":\"integer\",\"name\":\"text\"},\"rows\":[{\"id\":2,\"name\":\"declan\"}]}");
    QUERY(f->d, "[\"SELECT id FROM foo WHERE 0\"]", DB_ASSOC,
          "{\"types\":{\"id\":\"integer\"},\"rows\":[]}");
    QUERY(f->d, "[\"DELETE FROM foo\"]", 0,
          "{\"error\":\"attempt to change database via query operation\"}");
    QUERY(f->d, "[\"SELECT * FROM nope\"]", 0, "{\"error\":\"no such table: nope\"}");
    /* rqlite's quirk: DDL reports the last DML's numbers. */
    EXEC(f->d, "[\"CREATE TABLE bar (x)\"]", 0, "{\"last_insert_id\":3,\"rows_affected\":1}");
    EXEC(f->d, "[\"\", \"SELECT 1\"]", DB_READ_ROWS,
         "{\"columns\":[\"1\"],\"types\":[\"integer\"],\"values\":[[1]]}");
    /* Through /db/execute a read gives an execute result, RETURNING rows. */
    EXEC(f->d, "[\"SELECT 1\", \"INSERT INTO bar VALUES (9) RETURNING x\"]", 0,
         "{\"last_insert_id\":3,\"rows_affected\":1},"
         "{\"columns\":[\"x\"],\"types\":[\"integer\"],\"values\":[[9]]}");
}

static void test_transaction_and_timings(void **state)
{
    fixture *f = *state;
    EXEC(f->d, "[\"CREATE TABLE t (v TEXT UNIQUE)\"]", 0, "{}");
    EXEC(f->d, "[\"INSERT INTO t VALUES('a')\", \"INSERT INTO t VALUES('a')\", \"INSERT INTO t VALUES('b')\"]",
         DB_TX, "{\"last_insert_id\":1,\"rows_affected\":1},{\"error\":\"UNIQUE constraint failed: t.v\"}");
    QUERY(f->d, "[\"SELECT COUNT(*) FROM t\"]", 0,
          "{\"columns\":[\"COUNT(*)\"],\"types\":[\"integer\"],\"values\":[[0]]}");
    req *s = parse("[\"INSERT INTO t VALUES('c')\"]");
    buf out = BUF_INIT;
    assert_int_equal(db_execute(f->d, &s->v, DB_TIMINGS, &out), 0);
    assert_non_null(strstr(out.data, "\"rows_affected\":1,\"time\":"));
    reqFree(s);
    buf_free(&out);
    /* A follower applying an entry nobody waits on (no output buffer): the
     * statements run all the same, they only encode nothing. New values, so
     * that rows appearing show that they ran. */
    s = parse("[\"INSERT INTO t VALUES('d')\", \"INSERT INTO t VALUES('e')\"]");
    assert_int_equal(db_execute(f->d, &s->v, 0, NULL), 0);
    reqFree(s);
    QUERY(f->d, "[\"SELECT v FROM t ORDER BY v\"]", 0,
          "{\"columns\":[\"v\"],\"types\":[\"text\"],\"values\":[[\"c\"],[\"d\"],[\"e\"]]}");
}

static void test_check(void **state)
{
    fixture *f = *state;
    struct {
        const char *body;
        int verdict;
        bool readonly;
    } cases[] = {
        {"[\"SELECT 1\", [\"SELECT ?\", 1]]", DB_CHECK_OK, true},
        {"[\"SELECT 1\", \"CREATE TABLE x (a)\"]", DB_CHECK_OK, false},
        {"[\"SELEC 1\"]", DB_CHECK_OK, false},
        {"[\"PRAGMA journal_mode = DELETE\"]", DB_CHECK_DISALLOWED_PRAGMA, false},
        {"[\"pragma wal_checkpoint(FULL)\"]", DB_CHECK_DISALLOWED_PRAGMA, false},
        {"[\"PRAGMA synchronous=FULL\"]", DB_CHECK_DISALLOWED_PRAGMA, false},
        {"[\"PRAGMA  query_only = 1\"]", DB_CHECK_DISALLOWED_PRAGMA, false},
        /* however it is spelled */
        {"[\"PRAGMA main.query_only=1\"]", DB_CHECK_DISALLOWED_PRAGMA, false},
        {"[\"PRAGMA/**/query_only = 1\"]", DB_CHECK_DISALLOWED_PRAGMA, false},
        {"[\"PRAGMA query_only(1)\"]", DB_CHECK_DISALLOWED_PRAGMA, false},
        {"[\"-- c\\nPRAGMA synchronous=OFF\"]", DB_CHECK_DISALLOWED_PRAGMA, false},
        {"[\"SELECT 1; PRAGMA writable_schema=ON\"]", DB_CHECK_DISALLOWED_PRAGMA, false},
        {"[\"PRAGMA trusted_schema=1\"]", DB_CHECK_DISALLOWED_PRAGMA, false},
        /* reading them, or a string that mentions one, is fine */
        {"[\"PRAGMA foreign_keys\", \"PRAGMA query_only\"]", DB_CHECK_OK, true},
        {"[\"PRAGMA journal_mode\"]", DB_CHECK_OK, false}, /* SQLite: it might switch modes */
        {"[\"SELECT 'PRAGMA query_only=1'\"]", DB_CHECK_OK, true},
        {"[\"CREATE TABLE y (v)\", \"INSERT INTO y VALUES ('PRAGMA synchronous=OFF')\"]", DB_CHECK_OK, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        req *r = parse(cases[i].body);
        bool ro = !cases[i].readonly;
        int v = db_check(f->d, &r->v, &ro);
        if (v != cases[i].verdict || (v == DB_CHECK_OK && ro != cases[i].readonly))
            fail_msg("%s: verdict %d readonly %d", cases[i].body, v, ro);
        reqFree(r);
    }
    /* A pragma that takes effect when prepared leaves no trace on the pool. */
    req *set = parse("[\"PRAGMA foreign_keys=OFF\"]");
    bool ro;
    assert_int_equal(db_check(f->d, &set->v, &ro), DB_CHECK_OK);
    reqFree(set);
    QUERY(f->d, "[\"PRAGMA foreign_keys\"]", 0,
          "{\"columns\":[\"foreign_keys\"],\"types\":[\"integer\"],\"values\":[[1]]}");
}

/* Read a whole file (caller frees). */
static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *p = malloc((size_t)n + 1);
    assert_int_equal(fread(p, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    *len = (size_t)n;
    return p;
}

static void test_backup_restore(void **state)
{
    fixture *f = *state;
    char copy[200];
    snprintf(copy, sizeof copy, "%s/copy.sqlite", f->dir);
    size_t len = 0;
    char *err = NULL;
    uint32_t low = 99;
    EXEC(f->d, "[\"CREATE TABLE s (v)\", \"INSERT INTO s VALUES (42)\"]", 0,
         "{},{\"last_insert_id\":1,\"rows_affected\":1}");
    db_set_entry_index(f->d, 7);
    EXEC(f->d, "[\"INSERT INTO s VALUES (43)\"]", 0, "{\"last_insert_id\":2,\"rows_affected\":1}");
    /* A copy for a snapshot keeps the index; a user's backup does not. */
    assert_int_equal(db_backup_file(f->d, copy, DB_BACKUP_KEEP_INDEX, NULL, NULL, &low, &err), 0);
    assert_int_equal(low, 7);
    unsigned char *img = slurp(copy, &len);
    assert_int_equal(img[68] << 24 | img[69] << 16 | img[70] << 8 | img[71], 7);
    free(img);
    assert_int_equal(db_backup_file(f->d, copy, 0, NULL, NULL, NULL, &err), 0);
    img = slurp(copy, &len);
    assert_int_equal(img[68] | img[69] | img[70] | img[71], 0);
    EXEC(f->d, "[\"INSERT INTO s VALUES (44)\", \"CREATE TABLE other (x)\"]", 0,
         "{\"last_insert_id\":3,\"rows_affected\":1},{\"last_insert_id\":3,\"rows_affected\":1}");
    /* Restoring an image brings back exactly its content, with the index. */
    assert_int_equal(db_restore(f->d, img, len, 12, &err), 0);
    free(img);
    assert_int_equal(db_index(f->d), 12);
    QUERY(f->d, "[\"SELECT v FROM s\"]", 0, "{\"columns\":[\"v\"],\"types\":[\"integer\"],\"values\":[[42],[43]]}");
    QUERY(f->d, "[\"SELECT COUNT(*) FROM sqlite_master\"]", 0,
          "{\"columns\":[\"COUNT(*)\"],\"types\":[\"integer\"],\"values\":[[1]]}");
    /* An empty image empties the database. */
    assert_int_equal(db_restore(f->d, NULL, 0, 13, &err), 0);
    assert_int_equal(db_index(f->d), 13);
    QUERY(f->d, "[\"SELECT COUNT(*) FROM sqlite_master\"]", 0,
          "{\"columns\":[\"COUNT(*)\"],\"types\":[\"integer\"],\"values\":[[0]]}");
    /* Garbage is refused and leaves the database usable. */
    assert_int_not_equal(db_restore(f->d, "not a database, not at all, nope", 32, 14, &err), 0);
    free(err);
    EXEC(f->d, "[\"CREATE TABLE after (x)\"]", 0, "{}");
    assert_true(db_file_size(f->d) > 0);
    assert_string_equal(db_path(f->d), f->path);
}

/* A second database beside the fixture's, and where a copy of it goes. */
static db *openOther(fixture *f, char *copy, size_t n)
{
    char opath[200];
    char *err = NULL;
    snprintf(opath, sizeof opath, "%s/other.sqlite", f->dir);
    snprintf(copy, n, "%s/copy.sqlite", f->dir);
    db *other = NULL;
    assert_int_equal(db_open(opath, NULL, &other, &err), 0);
    return other;
}

/* A copy of the file installed in place of another database. */
static void test_install_file(void **state)
{
    fixture *f = *state;
    char copy[200];
    char *err = NULL;
    db *other = openOther(f, copy, sizeof copy);
    db_set_entry_index(other, 41);
    EXEC(other, "[\"CREATE TABLE m (v)\", \"INSERT INTO m VALUES ('moved')\"]", 0,
         "{},{\"last_insert_id\":1,\"rows_affected\":1}");
    assert_int_equal(db_backup_file(other, copy, DB_BACKUP_KEEP_INDEX, NULL, NULL, NULL, &err), 0);
    db_close(other);
    uint64_t peek = 0;
    assert_int_equal(db_file_index(copy, 40, &peek), 0);
    assert_int_equal(peek, 41);
    assert_int_equal(db_file_index(copy, ((uint64_t)1 << 32) + 7, &peek), 0);
    assert_int_equal(peek, ((uint64_t)1 << 32) + 41); /* low 32 bits, resolved near the hint */
    EXEC(f->d, "[\"CREATE TABLE gone (x)\"]", 0, "{}");
    assert_int_equal(db_install_file(f->d, copy, &err), 0);
    db_resolve_index(f->d, 40);
    assert_int_equal(db_index(f->d), 41);
    QUERY(f->d, "[\"SELECT v FROM m\"]", 0, "{\"columns\":[\"v\"],\"types\":[\"text\"],\"values\":[[\"moved\"]]}");
    QUERY(f->d, "[\"SELECT COUNT(*) FROM gone\"]", 0, "{\"error\":\"no such table: gone\"}");
    db_set_entry_index(f->d, 42);
    EXEC(f->d, "[\"INSERT INTO m VALUES ('more')\"]", 0, "{\"last_insert_id\":2,\"rows_affected\":1}");
    assert_int_equal(db_index(f->d), 42);
}

/* Readers racing db_install_file(): a query started after an install
 * returned reads the new file. A connection opened while the file was being
 * swapped once joined the pool on the old file and served it from then on. */
typedef struct racer {
    db *d;
    volatile int installed; /* rounds whose install has returned */
    volatile int stop;
    int stale;              /* queries that read an older round */
} racer;

static int markerOf(db *d)
{
    req *q = parse("[\"SELECT v FROM m\"]");
    buf out = BUF_INIT;
    db_query(d, &q->v, 0, 0, &out);
    reqFree(q);
    const char *p = out.data ? strstr(out.data, "[[") : NULL;
    int v = p ? atoi(p + 2) : -1;
    buf_free(&out);
    return v;
}

static void *raceReader(void *arg)
{
    racer *r = arg;
    while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
        int want = __atomic_load_n(&r->installed, __ATOMIC_ACQUIRE);
        if (want > 0 && markerOf(r->d) < want)
            __atomic_add_fetch(&r->stale, 1, __ATOMIC_RELAXED);
    }
    return NULL;
}

static void test_install_under_readers(void **state)
{
    fixture *f = *state;
    char copy[200];
    char *err = NULL;
    db *other = openOther(f, copy, sizeof copy);
    EXEC(other, "[\"CREATE TABLE m (v)\", \"INSERT INTO m VALUES (0)\"]", 0,
         "{},{\"last_insert_id\":1,\"rows_affected\":1}");
    racer r = {.d = f->d};
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, raceReader, &r), 0);
    for (int round = 1; round <= 300; round++) {
        char body[80];
        snprintf(body, sizeof body, "[\"UPDATE m SET v = %d\"]", round);
        EXEC(other, body, 0, "{\"last_insert_id\":1,\"rows_affected\":1}");
        assert_int_equal(db_backup_file(other, copy, 0, NULL, NULL, NULL, &err), 0);
        assert_int_equal(db_install_file(f->d, copy, &err), 0);
        __atomic_store_n(&r.installed, round, __ATOMIC_RELEASE);
    }
    __atomic_store_n(&r.stop, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    db_close(other);
    assert_int_equal(r.stale, 0);
    assert_int_equal(markerOf(f->d), 300);
}

/* The index goes in with the entry's changes and survives reopening; a
 * failed ?transaction keeps nothing but its index (a restart does not run
 * it again); low 32 bits resolve near a hint. */
static void test_index_persists(void **state)
{
    fixture *f = *state;
    char *err = NULL;
    db_set_entry_index(f->d, 5);
    EXEC(f->d, "[\"CREATE TABLE t (v UNIQUE)\", \"INSERT INTO t VALUES (1)\"]", 0,
         "{},{\"last_insert_id\":1,\"rows_affected\":1}");
    assert_int_equal(db_index(f->d), 5);
    db_set_entry_index(f->d, 6);
    EXEC(f->d, "[\"INSERT INTO t VALUES (2)\", \"INSERT INTO t VALUES (1)\"]", DB_TX,
         "{\"last_insert_id\":2,\"rows_affected\":1},{\"error\":\"UNIQUE constraint failed: t.v\"}");
    assert_int_equal(db_index(f->d), 6);
    /* Entries with their own transaction control take the guarded path. */
    db_set_entry_index(f->d, 7);
    EXEC(f->d, "[\"BEGIN\", \"INSERT INTO t VALUES (3)\", \"COMMIT\"]", 0,
         "{\"last_insert_id\":2},{\"last_insert_id\":2,\"rows_affected\":1},"
         "{\"last_insert_id\":2,\"rows_affected\":1}");
    assert_int_equal(db_index(f->d), 7);
    db_set_entry_index(f->d, ((uint64_t)3 << 32) + 8);
    EXEC(f->d, "[\"INSERT INTO t VALUES ('the end; begin')\"]", 0, "{\"last_insert_id\":3,\"rows_affected\":1}");
    db_close(f->d);
    assert_int_equal(db_open(f->path, NULL, &f->d, &err), 0);
    assert_false(db_recovered(f->d));
    db_resolve_index(f->d, ((uint64_t)3 << 32) + 2);
    assert_int_equal(db_index(f->d), ((uint64_t)3 << 32) + 8);
    db_resolve_index(f->d, ((uint64_t)3 << 32) + ((uint64_t)1 << 31)); /* half way to the next 2^32 */
    assert_int_equal(db_index(f->d), ((uint64_t)3 << 32) + 8);
    QUERY(f->d, "[\"SELECT COUNT(*) FROM t\"]", 0,
          "{\"columns\":[\"COUNT(*)\"],\"types\":[\"integer\"],\"values\":[[3]]}");
}

/* A guarded entry killed half-way (its own COMMIT done, the index not yet
 * recorded) leaves nothing behind once the file is reopened. */
static void test_guarded_entry_crash(void **state)
{
    fixture *f = *state;
    char *err = NULL;
    db_set_entry_index(f->d, 1);
    EXEC(f->d, "[\"CREATE TABLE t (v)\", \"INSERT INTO t VALUES (1)\"]", 0,
         "{},{\"last_insert_id\":1,\"rows_affected\":1}");
    db_close(f->d);
    f->d = NULL;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        db *d = NULL;
        if (db_open(f->path, NULL, &d, &err) != 0)
            _exit(2);
        db_set_entry_index(d, 2);
        /* Commits a row, then runs forever: the parent kills it there. */
        req *stmts = parse("[\"BEGIN\", \"INSERT INTO t VALUES (2)\", \"COMMIT\", "
                              "\"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) "
                              "SELECT count(*) FROM c\"]");
        db_execute(d, &stmts->v, 0, NULL);
        _exit(3);
    }
    /* Wait (bounded) until the child's row is committed in the WAL. */
    sqlite3 *c = NULL;
    assert_int_equal(sqlite3_open_v2(f->path, &c, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    long long rows = 0;
    for (int i = 0; i < 500 && rows < 2; i++) {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(c, "SELECT COUNT(*) FROM t", -1, &st, NULL) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW)
            rows = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        if (rows < 2)
            usleep(10000);
    }
    sqlite3_close(c);
    assert_int_equal(rows, 2);
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(db_open(f->path, NULL, &f->d, &err), 0);
    assert_true(db_recovered(f->d));
    assert_int_equal(db_index(f->d), 1);
    QUERY(f->d, "[\"SELECT COUNT(*) FROM t\"]", 0,
          "{\"columns\":[\"COUNT(*)\"],\"types\":[\"integer\"],\"values\":[[1]]}");
}

/* An entry that fails on this node alone (here a lock another process
 * holds) is not recorded: db_execute says so, and nothing of it remains.
 * A SQL error is an answer like any other: the entry counts as applied. */
static void test_node_local_failure(void **state)
{
    fixture *f = *state;
    db_close(f->d);
    db_options o = {.busy_ms = 50};
    char *err = NULL;
    assert_int_equal(db_open(f->path, &o, &f->d, &err), 0);
    req *create = parse("[\"CREATE TABLE t (x)\"]");
    db_set_entry_index(f->d, 1);
    assert_int_equal(db_execute(f->d, &create->v, 0, NULL), 0);
    sqlite3 *holder = NULL;
    assert_int_equal(sqlite3_open(f->path, &holder), SQLITE_OK);
    assert_int_equal(sqlite3_exec(holder, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);

    req *batch = parse("[\"INSERT INTO t VALUES (1)\", \"INSERT INTO t VALUES (2)\"]");
    buf out = BUF_INIT;
    db_set_entry_index(f->d, 2);
    assert_int_equal(db_execute(f->d, &batch->v, 0, &out), SQLITE_BUSY);
    assert_int_equal(db_index(f->d), 1);
    req *guarded = parse("[\"BEGIN\", \"INSERT INTO t VALUES (3)\", \"COMMIT\"]");
    db_set_entry_index(f->d, 2);
    assert_int_equal(db_execute(f->d, &guarded->v, 0, NULL), SQLITE_BUSY);
    assert_int_equal(db_index(f->d), 1);

    assert_int_equal(sqlite3_exec(holder, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(holder);
    QUERY(f->d, "[\"SELECT COUNT(*) FROM t\"]", 0,
          "{\"columns\":[\"COUNT(*)\"],\"types\":[\"integer\"],\"values\":[[0]]}");
    /* Applied again, as after a restart, the entries go in. */
    db_set_entry_index(f->d, 2);
    assert_int_equal(db_execute(f->d, &batch->v, 0, NULL), 0);
    db_set_entry_index(f->d, 3);
    assert_int_equal(db_execute(f->d, &guarded->v, 0, NULL), 0);
    assert_int_equal(db_index(f->d), 3);
    QUERY(f->d, "[\"SELECT COUNT(*) FROM t\"]", 0,
          "{\"columns\":[\"COUNT(*)\"],\"types\":[\"integer\"],\"values\":[[3]]}");
    /* Errors the SQL itself brings, SQLITE_FULL from max_page_count too. */
    req *bad = parse("[\"INSERT INTO nosuch VALUES (1)\"]");
    db_set_entry_index(f->d, 4);
    assert_int_equal(db_execute(f->d, &bad->v, 0, NULL), 0);
    req *big = parse("[\"PRAGMA max_page_count=2\", \"INSERT INTO t VALUES (randomblob(100000))\"]");
    db_set_entry_index(f->d, 5);
    buf_reset(&out);
    assert_int_equal(db_execute(f->d, &big->v, 0, &out), 0);
    assert_non_null(strstr(out.data, ",{\"error\":\"database or disk is full\"}"));
    assert_int_equal(db_index(f->d), 5);
    /* The pragma's setting lasted its request: the next entry has room. */
    req *after = parse("[\"INSERT INTO t VALUES (randomblob(100000))\"]");
    db_set_entry_index(f->d, 6);
    buf_reset(&out);
    assert_int_equal(db_execute(f->d, &after->v, 0, &out), 0);
    assert_non_null(strstr(out.data, "\"rows_affected\":1"));
    reqFree(after);
    reqFree(big);
    reqFree(bad);
    reqFree(guarded);
    reqFree(batch);
    reqFree(create);
    buf_free(&out);
}

/* ?db_timeout: a read past its deadline is interrupted, with rqlite's
 * message; the connection serves the next read as usual. */
static void test_query_timeout(void **state)
{
    fixture *f = *state;
    req *q = parse("[\"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) "
                      "SELECT count(*) FROM c\", \"SELECT 1\"]");
    buf out = BUF_INIT;
    double t0 = rq_now_sec();
    db_query(f->d, &q->v, 0, 50000, &out);
    assert_true(rq_now_sec() - t0 < 5.0);
    assert_non_null(strstr(out.data, "{\"error\":\"query timeout\"}"));
    buf_free(&out);
    reqFree(q);
    QUERY(f->d, "[\"SELECT 1\"]", 0, "{\"columns\":[\"1\"],\"types\":[\"integer\"],\"values\":[[1]]}");
}

/* A batch commits once, yet each statement still stands or fails alone. */
static void test_grouped_batches(void **state)
{
    fixture *f = *state;
    EXEC(f->d, "[\"CREATE TABLE g (v TEXT UNIQUE)\", \"CREATE TABLE r (v UNIQUE ON CONFLICT ROLLBACK)\"]", 0,
         "{},{}");
    EXEC(f->d, "[\"INSERT INTO g VALUES('a')\", \"INSERT INTO g VALUES('a')\", \"INSERT INTO g VALUES('b')\"]", 0,
         "{\"last_insert_id\":1,\"rows_affected\":1},{\"error\":\"UNIQUE constraint failed: g.v\"},"
         "{\"last_insert_id\":2,\"rows_affected\":1}");
    QUERY(f->d, "[\"SELECT COUNT(*) FROM g\"]", 0,
          "{\"columns\":[\"COUNT(*)\"],\"types\":[\"integer\"],\"values\":[[2]]}");
    /* ON CONFLICT ROLLBACK would undo the whole group: the batch is rerun
     * statement by statement, so the first insert stays. */
    EXEC(f->d, "[\"INSERT INTO r VALUES(1)\", \"INSERT INTO r VALUES(1)\", \"INSERT INTO r VALUES(2)\"]", 0,
         "{\"last_insert_id\":1,\"rows_affected\":1},{\"error\":\"UNIQUE constraint failed: r.v\"},"
         "{\"last_insert_id\":2,\"rows_affected\":1}");
    QUERY(f->d, "[\"SELECT COUNT(*) FROM r\"]", 0,
          "{\"columns\":[\"COUNT(*)\"],\"types\":[\"integer\"],\"values\":[[2]]}");
}

/* Same clock and seed: same values, in any database, at any time. */
static void test_entropy_is_replayable(void **state)
{
    fixture *f = *state;
    db *other = NULL;
    char path[200], *err = NULL;
    snprintf(path, sizeof path, "%s/other.sqlite", f->dir);
    assert_int_equal(db_open(path, NULL, &other, &err), 0);
    const char *body = "[\"CREATE TABLE r (a, b, c, d, e DEFAULT CURRENT_TIMESTAMP)\","
                       "\"INSERT INTO r(a, b, c, d) VALUES (random(), randomblob(8), datetime('now'), "
                       "strftime('%s', 'now'))\"]";
    req *stmts = parse(body);
    buf r1 = BUF_INIT, r2 = BUF_INIT;
    req *q = parse("[\"SELECT * FROM r\"]");
    db_set_entropy(f->d, 1700000000123LL, 42);
    db_execute(f->d, &stmts->v, 0, NULL);
    db_set_entropy(other, 1700000000123LL, 42);
    db_execute(other, &stmts->v, 0, NULL);
    db_query(f->d, &q->v, 0, 0, &r1);
    db_query(other, &q->v, 0, 0, &r2);
    assert_string_equal(r1.data, r2.data);
    assert_non_null(strstr(r1.data, "\"2023-11-14 22:13:20\",\"1700000000\",\"2023-11-14 22:13:20\""));
    /* Another seed gives other random values. */
    buf_reset(&r2);
    db_set_entropy(other, 1700000000123LL, 43);
    req *ins = parse("[\"DELETE FROM r\", \"INSERT INTO r(a) VALUES (random())\"]");
    db_execute(other, &ins->v, 0, NULL);
    db_query(other, &q->v, 0, 0, &r2);
    assert_string_not_equal(r1.data, r2.data);
    reqFree(ins);
    reqFree(q);
    reqFree(stmts);
    buf_free(&r1);
    buf_free(&r2);
    db_close(other);
}

/* The policy's table, rule by rule (policy.c). */
/* What differs between nodes cannot flow into a write; fts3_tokenizer()
 * is refused everywhere; reads may look at the rest. */
static void test_node_own_sources(void **state)
{
    fixture *f = *state;
    EXEC(f->d, "[\"CREATE TABLE s (v)\"]", 0, "{}");
    const char *refused[] = {
        "[\"INSERT INTO s SELECT file FROM pragma_database_list\"]",
        "[\"INSERT INTO s SELECT sql FROM sqlite_stmt\"]",
        "[\"INSERT INTO s SELECT pageno FROM dbstat\"]",
        "[\"INSERT INTO s SELECT data_version FROM pragma_data_version\"]",
        "[\"INSERT INTO s SELECT total_changes()\"]",
        "[\"INSERT INTO s SELECT fts3_tokenizer('simple', x'4141414141414141')\"]",
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        req *r = parse(refused[i]);
        buf out = BUF_INIT;
        db_execute(f->d, &r->v, 0, &out);
        if (strstr(out.data, "\"error\":\"") == NULL || strstr(out.data, "rows_affected"))
            fail_msg("%s: %s", refused[i], out.data);
        buf_free(&out);
        reqFree(r);
    }
    /* Files ATTACH and VACUUM INTO may not open: inside our data directory
     * or another node's on the same host, special files; elsewhere they may. */
    char other[300], body[1200];
    snprintf(other, sizeof other, "%s/node.2/raft", f->dir);
    assert_int_equal(rq_mkdir_all(other), 0);
    snprintf(other, sizeof other, "%s/node.2/raft/rqnode.json", f->dir);
    FILE *fp = fopen(other, "w");
    fclose(fp);
    snprintf(other, sizeof other, "%s/fifo", f->dir);
    assert_int_equal(mkfifo(other, 0600), 0);
    const char *targets[] = {"%s/x.db", "%s/node.2/x.db", "%s/node.2/raft/peers.json", "%s/fifo", "/dev/zero"};
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
        char path[400];
        snprintf(path, sizeof path, targets[i], f->dir);
        snprintf(body, sizeof body, "[\"ATTACH '%s' AS a\", \"VACUUM INTO '%s'\"]", path, path);
        req *r = parse(body);
        buf out = BUF_INIT;
        assert_int_equal(db_execute(f->d, &r->v, 0, &out), 0);
        if (strstr(out.data, "{\"error\":\"unable to open database") != out.data ||
            strstr(out.data, ",{\"error\":\"unable to open database") == NULL)
            fail_msg("%s: %s", path, out.data);
        buf_free(&out);
        reqFree(r);
    }
    snprintf(body, sizeof body, "[\"VACUUM INTO '/tmp/rq-db-test-vacuum-%d.db'\"]", (int)getpid());
    EXEC(f->d, body, 0, "{}");
    snprintf(body, sizeof body, "/tmp/rq-db-test-vacuum-%d.db", (int)getpid());
    assert_int_equal(unlink(body), 0);
    QUERY(f->d, "[\"SELECT count(*) > 0 FROM pragma_database_list\"]", 0,
          "{\"columns\":[\"count(*) \\u003e 0\"],\"types\":[\"integer\"],\"values\":[[1]]}");
    QUERY(f->d, "[\"SELECT hex(fts3_tokenizer('simple'))\"]", 0,
          "{\"error\":\"not authorized to use function: fts3_tokenizer\"}");
}

/* A statement's result is bounded (-db-max-result-size), and so is any
 * single value (SQLITE_LIMIT_LENGTH from -raft-max-entry-size). */
static void test_result_bounds(void **state)
{
    fixture *f = *state;
    db_close(f->d);
    db_options o = {.max_length = 100000, .max_result = 10000};
    char *err = NULL;
    assert_int_equal(db_open(f->path, &o, &f->d, &err), 0);
    QUERY(f->d, "[\"SELECT length(zeroblob(100001))\", \"SELECT length(zeroblob(100000))\"]", 0,
          "{\"error\":\"string or blob too big\"},"
          "{\"columns\":[\"length(zeroblob(100000))\"],\"types\":[\"integer\"],\"values\":[[100000]]}");
    QUERY(f->d, "[\"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT x FROM c\"]", 0,
          "{\"error\":\"result too large: over 10000 bytes (-db-max-result-size)\"}");
    EXEC(f->d, "[\"CREATE TABLE r (v)\", \"INSERT INTO r WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL "
               "SELECT x+1 FROM c LIMIT 5000) SELECT x FROM c RETURNING v\", \"SELECT count(*) FROM r\"]",
         DB_READ_ROWS,
         "{},{\"error\":\"result too large: over 10000 bytes (-db-max-result-size)\"},"
         "{\"columns\":[\"count(*)\"],\"types\":[\"integer\"],\"values\":[[0]]}");
}

static void test_policy_table(void **state)
{
    struct {
        const char *name;
        bool set;
        int rule;
    } cases[] = {
        {"journal_mode", true, POLICY_DENY},      {"journal_mode", false, POLICY_OK},
        {"synchronous", true, POLICY_DENY},       {"wal_autocheckpoint", true, POLICY_DENY},
        {"wal_checkpoint", false, POLICY_DENY},   {"query_only", true, POLICY_DENY},
        {"QUERY_ONLY", true, POLICY_DENY},        {"query_only", false, POLICY_OK},
        {"writable_schema", true, POLICY_DENY},   {"locking_mode", true, POLICY_DENY},
        {"application_id", true, POLICY_DENY},    {"schema_version", true, POLICY_DENY},
        {"trusted_schema", true, POLICY_DENY},    {"hard_heap_limit", true, POLICY_DENY},
        {"busy_timeout", true, POLICY_DENY},      {"mmap_size", true, POLICY_DENY},
        {"foreign_keys", true, POLICY_STATE},     {"foreign_keys", false, POLICY_OK},
        {"recursive_triggers", true, POLICY_STATE}, {"max_page_count", true, POLICY_STATE},
        {"cache_size", true, POLICY_STATE},       {"some_future_pragma", true, POLICY_STATE},
        {"table_info", true, POLICY_OK},          {"integrity_check", true, POLICY_OK},
        {"optimize", false, POLICY_OK},           {"user_version", true, POLICY_OK},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (policy_pragma_rule(cases[i].name, cases[i].set) != cases[i].rule)
            fail_msg("pragma %s (set %d): rule %d", cases[i].name, cases[i].set,
                     policy_pragma_rule(cases[i].name, cases[i].set));
    /* Failures: this node's own, or an answer. */
    assert_true(policy_node_local(SQLITE_IOERR, false, false));
    assert_true(policy_node_local(SQLITE_IOERR_WRITE, false, false));
    assert_true(policy_node_local(SQLITE_BUSY, false, false));
    assert_false(policy_node_local(SQLITE_BUSY, false, true));  /* a file the request attached */
    assert_false(policy_node_local(SQLITE_IOERR, false, true));
    assert_true(policy_node_local(SQLITE_FULL, true, false));   /* recording the index */
    assert_false(policy_node_local(SQLITE_FULL, false, false)); /* max_page_count */
    assert_true(policy_node_local(SQLITE_NOMEM, true, false));
    assert_false(policy_node_local(SQLITE_NOMEM, false, false));
    assert_false(policy_node_local(SQLITE_INTERRUPT, false, false)); /* the step budget */
    assert_false(policy_node_local(SQLITE_CONSTRAINT, true, false));
    assert_false(policy_node_local(SQLITE_AUTH, false, false));
    assert_false(policy_node_local(SQLITE_TOOBIG, false, false));
}

/* Apply body as entry index on d, with a fixed clock, seed and budget. */
static void applyEntry(db *d, uint64_t index, const char *body, uint64_t steps, buf *out)
{
    req *r = parse(body);
    db_set_entropy(d, 1700000000000LL + (int64_t)index, index);
    db_set_entry_index(d, index);
    db_set_step_budget(d, steps);
    assert_int_equal(db_execute(d, &r->v, 0, out), 0);
    reqFree(r);
}

static void dumpOf(db *d, buf *out)
{
    char *err = NULL;
    assert_int_equal(db_dump(d, NULL, out, &err), 0);
}

/* Two replicas apply the same entries, one of them restarted between each
 * two: every entry starts from the same connection state, so they end
 * identical, whatever the request did to its connection. */
/* Without ?transaction each statement commits or fails on its own, as in
 * rqlite's autocommit: OR FAIL keeps the rows before the conflict, ABORT
 * keeps none, a string of several statements is undone whole, and the
 * statements around a failure stay. */
static void test_statement_failures_in_a_batch(void **state)
{
    fixture *f = *state;
    EXEC(f->d, "[\"CREATE TABLE u (x UNIQUE)\"]", 0, "{}");
    EXEC(f->d,
         "[\"INSERT INTO u VALUES(1)\", \"INSERT OR FAIL INTO u VALUES(2),(3),(1),(4)\", "
         "\"INSERT INTO u VALUES(5),(6),(5)\", \"INSERT INTO u VALUES(7); INSERT INTO u VALUES(1)\", "
         "\"INSERT INTO u VALUES(8)\"]",
         0,
         "{\"last_insert_id\":1,\"rows_affected\":1},{\"error\":\"UNIQUE constraint failed: u.x\"},"
         "{\"error\":\"UNIQUE constraint failed: u.x\"},{\"error\":\"UNIQUE constraint failed: u.x\"},"
         "{\"last_insert_id\":4,\"rows_affected\":1}");
    QUERY(f->d, "[\"SELECT group_concat(x) FROM (SELECT x FROM u ORDER BY x)\"]", 0,
          "{\"columns\":[\"group_concat(x)\"],\"types\":[\"text\"],\"values\":[[\"1,2,3,8\"]]}");
}

/* Read connections keep the statements they ran (exec.c, roKeptGet): a
 * kept one follows a change of schema, a write kept by db_check is still
 * refused by a query, and more distinct statements than are kept work. */
static void test_read_statements_kept(void **state)
{
    fixture *f = *state;
    EXEC(f->d, "[\"CREATE TABLE k (a)\", \"INSERT INTO k VALUES(1)\"]", 0,
         "{},{\"last_insert_id\":1,\"rows_affected\":1}");
    for (int i = 0; i < 3; i++)
        QUERY(f->d, "[\"SELECT * FROM k\"]", 0, "{\"columns\":[\"a\"],\"types\":[\"integer\"],\"values\":[[1]]}");
    EXEC(f->d, "[\"DROP TABLE k\", \"CREATE TABLE k (a, b)\", \"INSERT INTO k VALUES(2, 3)\"]", 0,
         "{\"last_insert_id\":1,\"rows_affected\":1},{\"last_insert_id\":1,\"rows_affected\":1},"
         "{\"last_insert_id\":1,\"rows_affected\":1}");
    QUERY(f->d, "[\"SELECT * FROM k\"]", 0,
          "{\"columns\":[\"a\",\"b\"],\"types\":[\"integer\",\"integer\"],\"values\":[[2,3]]}");
    const char *ins = "[\"INSERT INTO k VALUES(4, 5)\"]";
    cmd_batch b;
    char *err = NULL;
    assert_int_equal(cmd_from_json(ins, strlen(ins), &b, &err), 0);
    cmd_view v = cmd_batch_view(&b);
    for (int i = 0; i < 2; i++) {
        bool ro = true;
        assert_int_equal(db_check(f->d, &v, &ro), DB_CHECK_OK);
        assert_false(ro);
    }
    cmd_batch_free(&b);
    QUERY(f->d, ins, 0, "{\"error\":\"attempt to change database via query operation\"}");
    for (int i = 0; i < 40; i++) {
        char body[64], want[160];
        snprintf(body, sizeof body, "[\"SELECT %d + a FROM k\"]", i);
        snprintf(want, sizeof want, "{\"columns\":[\"%d + a\"],\"types\":[\"integer\"],\"values\":[[%d]]}", i, i + 2);
        QUERY(f->d, body, 0, want);
    }
}

static void test_entry_state_is_per_entry(void **state)
{
    fixture *f = *state;
    db *other = NULL;
    char path[200], *err = NULL;
    snprintf(path, sizeof path, "%s/other/db.sqlite", f->dir);
    char dir[200];
    snprintf(dir, sizeof dir, "%s/other", f->dir);
    assert_int_equal(rq_mkdir_all(dir), 0);
    db_options o = {.fk = true, .max_ro_conns = 4};
    assert_int_equal(db_open(path, &o, &other, &err), 0);
    const char *entries[] = {
        "[\"CREATE TABLE p (id INTEGER PRIMARY KEY)\", \"CREATE TABLE t (v, p REFERENCES p(id))\","
        " \"INSERT INTO p VALUES (1), (2), (3)\"]",
        /* changes() and last_insert_rowid() read what this entry did, else 0 */
        "[\"INSERT INTO t(v) VALUES (changes())\", \"INSERT INTO t(v) VALUES (last_insert_rowid())\"]",
        "[\"INSERT INTO t(v) SELECT changes() + last_insert_rowid()\"]",
        /* connection state lasts one request */
        "[\"PRAGMA foreign_keys=OFF\", \"INSERT INTO t(v, p) VALUES ('fk off here', 99)\"]",
        "[\"INSERT INTO t(v, p) VALUES ('fk on again', 98)\"]",
        "[\"CREATE TEMP TABLE tmp (x)\", \"INSERT INTO tmp VALUES (1)\"]",
        "[\"INSERT INTO t(v) SELECT count(*) FROM temp.sqlite_master\"]",
        "[\"ATTACH ':memory:' AS m\", \"CREATE TABLE m.x (a)\"]",
        "[\"INSERT INTO t(v) SELECT 'still attached' FROM m.x\"]",
        "[\"DROP TABLE temp._rq_nochange\"]",
        "[\"INSERT INTO p VALUES (4)\"]",
        "[\"INSERT INTO t(v) VALUES (changes())\", \"INSERT INTO t(v) SELECT total_changes()\"]",
        /* a runaway statement stops at the same step on both, cached (A) or
         * freshly prepared (B), and its last rowid before the interrupt shows
         * it (the fuzz corpus keeps the case where a cached statement's
         * earlier steps shifted the budget's count: replica/budget-phase-*) */
        "[\"CREATE TABLE r (v)\"]",
        "[[\"INSERT INTO r(v) WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < ?) "
        "SELECT x FROM c\", 777]]",
        "[[\"INSERT INTO r(v) WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < ?) "
        "SELECT x FROM c\", 1000000000], \"INSERT INTO r(v) VALUES (last_insert_rowid())\"]",
        /* the budget runs out at the same statement on both */
        "[\"INSERT INTO t(v) WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c LIMIT 3000) "
        "SELECT x FROM c\", \"INSERT INTO t(v) WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c "
        "LIMIT 3000) SELECT x FROM c\", \"INSERT INTO t(v) WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT "
        "x+1 FROM c LIMIT 3000) SELECT x FROM c\"]",
    };
    size_t n = sizeof entries / sizeof entries[0];
    for (size_t i = 0; i < n; i++) {
        buf out = BUF_INIT;
        applyEntry(f->d, i + 1, entries[i], 100000, &out);
        db_close(other); /* a replica that restarts before every entry */
        assert_int_equal(db_open(path, &o, &other, &err), 0);
        applyEntry(other, i + 1, entries[i], 100000, NULL);
        buf_free(&out);
    }
    buf a = BUF_INIT, b = BUF_INIT;
    dumpOf(f->d, &a);
    dumpOf(other, &b);
    assert_string_equal(a.data, b.data);
    /* What the entries saw, spelled out. */
    assert_non_null(strstr(a.data, "INSERT INTO \"t\" VALUES(0,NULL);\nINSERT INTO \"t\" VALUES(1,NULL);\n"));
    assert_non_null(strstr(a.data, "VALUES('fk off here',99)"));
    assert_null(strstr(a.data, "fk on again"));
    assert_non_null(strstr(a.data, "VALUES(1,NULL);\nINSERT INTO \"t\" VALUES(0,NULL);"));
    assert_null(strstr(a.data, "still attached"));
    buf_free(&a);
    buf_free(&b);
    /* The runaway entry: its first statement fit in the budget, not all. */
    buf out = BUF_INIT;
    req *q = parse("[\"SELECT count(*) FROM t WHERE v > 2 AND typeof(v) = 'integer'\"]");
    db_query(f->d, &q->v, 0, 0, &out);
    assert_non_null(strstr(out.data, "[[2998]]"));
    reqFree(q);
    buf_free(&out);
    db_close(other);
}

/* rqlite's settings, and checkpoints made by us alone: with no automatic
 * ones the WAL grows past SQLite's 1000 pages, db_sync empties it (not
 * waiting for a reader that holds part of it: then it only copies), and
 * the file reopens whole. */
static void test_checkpoints_are_ours(void **state)
{
    fixture *f = *state;
    db_pragmas ro, rw;
    assert_int_equal(db_get_pragmas(f->d, &ro, &rw), 0);
    assert_string_equal(rw.synchronous, "0");
    assert_string_equal(rw.wal_autocheckpoint, "0");
    assert_string_equal(rw.journal_mode, "wal");
    assert_string_equal(ro.synchronous, "0");
    assert_string_equal(ro.wal_autocheckpoint, "1000");
    EXEC(f->d, "[\"CREATE TABLE b (v)\"]", 0, "{}");
    for (int i = 1; i <= 600; i++) {
        buf out = BUF_INIT;
        applyEntry(f->d, (uint64_t)i, "[\"INSERT INTO b VALUES (randomblob(8000))\"]", 0, &out);
        buf_free(&out);
    }
    assert_true(db_wal_size(f->d) > 1000 * 4096);
    assert_int_equal(db_sync(f->d), 0);
    assert_int_equal(db_wal_size(f->d), 0);
    /* a reader in the middle of the WAL: copied as far as it allows */
    buf out = BUF_INIT;
    applyEntry(f->d, 601, "[\"INSERT INTO b VALUES (1)\"]", 0, &out);
    sqlite3 *c = dbRoGet(f->d);
    assert_int_equal(dbExecSimple(c, "BEGIN; SELECT COUNT(*) FROM b", NULL), 0);
    applyEntry(f->d, 602, "[\"INSERT INTO b VALUES (2)\"]", 0, &out);
    assert_int_equal(db_sync(f->d), 0);
    assert_true(db_wal_size(f->d) > 0);
    dbExecSimple(c, "COMMIT", NULL);
    dbRoPut(f->d, c, false);
    assert_int_equal(db_sync(f->d), 0);
    assert_int_equal(db_wal_size(f->d), 0);
    applyEntry(f->d, 603, "[\"INSERT INTO b VALUES (3)\"]", 0, &out);
    buf_free(&out);
    char *err = NULL;
    db_close(f->d);
    assert_int_equal(db_open(f->path, NULL, &f->d, &err), 0);
    assert_int_equal(db_index(f->d), 603);
    QUERY(f->d, "[\"SELECT COUNT(*) FROM b\"]", 0,
          "{\"columns\":[\"COUNT(*)\"],\"types\":[\"integer\"],\"values\":[[603]]}");
    QUERY(f->d, "[\"PRAGMA integrity_check\"]", 0,
          "{\"columns\":[\"integrity_check\"],\"types\":[\"text\"],\"values\":[[\"ok\"]]}");
}

static long long var(json_t *v, const char *key)
{
    json_t *x = json_object_get(v, key);
    if (!json_is_integer(x))
        fail_msg("no integer %s", key);
    return (long long)json_integer_value(x);
}

/* db_vars: every key of rqlite's "db" map, statements counted per kind
 * and failure, ?transaction requests, checkpoints (db_sync) and backups. */
static void test_vars(void **state)
{
    fixture *f = *state;
    json_t *z = db_vars(NULL);
    assert_int_equal(json_object_size(z), 33);
    assert_int_equal(var(z, "executions"), 0);
    json_decref(z);
    EXEC(f->d, "[\"CREATE TABLE t (v TEXT UNIQUE)\", \"INSERT INTO t VALUES('a')\"]", 0,
         "{},{\"last_insert_id\":1,\"rows_affected\":1}");
    EXEC(f->d, "[\"INSERT INTO t VALUES('a')\"]", DB_TX, "{\"error\":\"UNIQUE constraint failed: t.v\"}");
    EXEC(f->d, "[\"INSERT INTO t VALUES('b') RETURNING v\"]", DB_READ_ROWS,
         "{\"columns\":[\"v\"],\"types\":[\"text\"],\"values\":[[\"b\"]]}");
    QUERY(f->d, "[\"SELECT COUNT(*) FROM t\", \"SELECT nope\"]", 0,
          "{\"columns\":[\"COUNT(*)\"],\"types\":[\"integer\"],\"values\":[[2]]},"
          "{\"error\":\"no such column: nope\"}");
    assert_int_equal(db_sync(f->d), 0);
    char dest[200];
    snprintf(dest, sizeof dest, "%s/copy.sqlite", f->dir);
    uint32_t low;
    char *err = NULL;
    assert_int_equal(db_backup_file(f->d, dest, 0, NULL, NULL, &low, &err), 0);
    json_t *v = db_vars(f->d);
    assert_int_equal(json_object_size(v), 33);
    assert_int_equal(var(v, "executions"), 3);
    assert_int_equal(var(v, "execution_errors"), 1);
    assert_int_equal(var(v, "execute_transactions"), 1);
    assert_int_equal(var(v, "requests"), 1);
    assert_int_equal(var(v, "executions_force_queries"), 1);
    assert_int_equal(var(v, "queries"), 2);
    assert_int_equal(var(v, "query_errors"), 1);
    assert_int_equal(var(v, "checkpoint_total"), 1);
    assert_int_equal(var(v, "checkpoints"), 1);
    assert_int_equal(var(v, "checkpoint_errors"), 0);
    assert_int_equal(var(v, "checkpoint_wal_truncated"), 1);
    assert_true(var(v, "checkpointed_moves") > 0);
    assert_true(var(v, "precompact_wal_size") > 0);
    assert_int_equal(var(v, "backup_step_dones"), 1);
    assert_int_equal(var(v, "backup_step_errors"), 0);
    assert_int_equal(var(v, "compacted_wal_size"), 0); /* no counterpart */
    json_decref(v);
    json_t *w = db_wal_vars();
    assert_int_equal(json_object_size(w), 5);
    json_decref(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_execute_and_query_shapes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transaction_and_timings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backup_restore, setup, teardown),
        cmocka_unit_test_setup_teardown(test_install_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_install_under_readers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_index_persists, setup, teardown),
        cmocka_unit_test_setup_teardown(test_guarded_entry_crash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_entropy_is_replayable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_grouped_batches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_local_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_timeout, setup, teardown),
        cmocka_unit_test(test_policy_table),
        cmocka_unit_test_setup_teardown(test_result_bounds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_own_sources, setup, teardown),
        cmocka_unit_test_setup_teardown(test_statement_failures_in_a_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_statements_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_entry_state_is_per_entry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoints_are_ours, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vars, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
