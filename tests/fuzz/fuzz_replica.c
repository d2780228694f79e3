/* libFuzzer: the differential replica fuzzer.
 *
 * The input drives a generator of statement batches, hostile ones included:
 * ATTACH (of our own file, of one scratch file under two names), pragmas of
 * every kind, NUL bytes and invalid UTF-8 in parameters, huge values,
 * runaway recursive CTEs, transactions left open, temp objects, connection
 * state, non-deterministic functions, and raw SQL text from the input.
 *
 * Each batch is a command applied as an entry to two independent databases
 * through the real apply path: the "leader" from the batch it built, the
 * "follower" from the bytes of the log entry decoded again (sometimes after
 * a restart: closed and opened again). The fuzzer fails on a crash, on a
 * failure classed as the node's own (db_execute() != 0: on a healthy disk
 * that is input stopping a node), and on any difference between the two
 * databases' dumps or user_version. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include "command/command.h"
#include "db/db.h"

#define CHECK(c) ((c) ? (void)0 : (fprintf(stderr, "CHECK failed: %s (line %d)\n", #c, __LINE__), abort()))

typedef struct rd {
    const uint8_t *p;
    size_t n;
} rd;

static unsigned u8(rd *r)
{
    if (r->n == 0)
        return 0;
    r->n--;
    return *r->p++;
}

static unsigned upto(rd *r, unsigned n)
{
    return n ? (u8(r) | u8(r) << 8) % n : 0;
}

static char dirA[64], dirB[64], pathA[96], pathB[96], scratch[96];

/* A value for a parameter, of a kind chosen by the input. */
static void addParam(cmd_batch *b, rd *r, const char *name)
{
    static char big[70000];
    switch (upto(r, 9)) {
    case 0:
        cmd_add_null(b, name);
        break;
    case 1:
        cmd_add_int(b, name, (int64_t)((uint64_t)u8(r) << 56 | (uint64_t)u8(r) << 8 | u8(r)));
        break;
    case 2:
        cmd_add_real(b, name, (double)(int8_t)u8(r) / 3.0);
        break;
    case 3: /* text with NUL bytes */
        cmd_add_text(b, name, "a\0b\0", 4);
        break;
    case 4: { /* invalid UTF-8 and raw input bytes as text */
        size_t n = upto(r, 16);
        char tmp[20] = "\xff\xfe";
        for (size_t i = 0; i < n; i++)
            tmp[2 + i] = (char)u8(r);
        cmd_add_text(b, name, tmp, 2 + n);
        break;
    }
    case 5: {
        size_t n = upto(r, 32);
        unsigned char tmp[32];
        for (size_t i = 0; i < n; i++)
            tmp[i] = (unsigned char)u8(r);
        cmd_add_blob(b, name, tmp, n);
        break;
    }
    case 6: /* a large value */
        memset(big, 'z', sizeof big);
        cmd_add_text(b, name, big, sizeof big);
        break;
    case 7:
        cmd_add_blob(b, name, big, 0);
        break;
    default:
        cmd_add_text(b, name, "x'00'", 5);
    }
}

static const char *const templates[] = {
    "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v, w UNIQUE)",
    "CREATE TABLE IF NOT EXISTS u (id INTEGER PRIMARY KEY, t_id REFERENCES t(id), s)",
    "INSERT INTO t(v, w) VALUES (?, ?)",
    "INSERT OR REPLACE INTO t(v, w) VALUES (:a, @b)",
    "INSERT INTO u(t_id, s) VALUES (?, ?)",
    "UPDATE t SET v = ? WHERE id % 3 = 0",
    "DELETE FROM t WHERE id IN (SELECT id FROM t ORDER BY random() LIMIT 2)",
    "INSERT INTO t(v) VALUES (random()), (randomblob(8)), (datetime('now')), (CURRENT_TIMESTAMP)",
    "INSERT INTO t(v) VALUES (last_insert_rowid())",
    "INSERT INTO t(v) SELECT total_changes()",
    "INSERT INTO t(v) WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT x FROM c",
    "INSERT INTO t(v) VALUES (zeroblob(1000000000))",
    "CREATE INDEX IF NOT EXISTS ti ON t(v)",
    "CREATE TRIGGER IF NOT EXISTS tr AFTER INSERT ON t BEGIN INSERT INTO u(s) VALUES (random()); END",
    "CREATE TEMP TABLE IF NOT EXISTS tmp (x)",
    "INSERT INTO t(v) SELECT count(*) FROM temp.sqlite_master",
    "CREATE VIEW IF NOT EXISTS vv AS SELECT v FROM t",
    "DROP TABLE IF EXISTS u",
    "BEGIN",
    "COMMIT",
    "ROLLBACK",
    "SAVEPOINT sp",
    "RELEASE sp",
    "VACUUM",
    "PRAGMA foreign_keys=ON",
    "PRAGMA recursive_triggers=1",
    "PRAGMA max_page_count=3",
    "PRAGMA user_version=7",
    "PRAGMA cache_size=-4000",
    "PRAGMA main.query_only=1",
    "PRAGMA journal_mode=DELETE",
    "PRAGMA writable_schema=1",
    "PRAGMA wal_checkpoint(TRUNCATE)",
    "PRAGMA integrity_check",
    "ATTACH ':memory:' AS m",
    "ATTACH DATABASE (SELECT file FROM pragma_database_list WHERE name='main') AS me",
    "INSERT INTO me.t(v) VALUES (2)",
    "ATTACH ? AS a",
    "ATTACH ? AS a2",
    "CREATE TABLE IF NOT EXISTS a.x (v)",
    "INSERT INTO a.x VALUES (1)",
    "INSERT INTO a2.x VALUES (2)",
    "INSERT INTO t(v) SELECT count(*) FROM a.x",
    "DETACH a",
    "VACUUM INTO ?",
    "SELECT * FROM t",
    "INSERT INTO t(v) VALUES (changes())",
};

/* One batch from the input. */
static void genBatch(rd *r, cmd_batch *b)
{
    cmd_batch_init(b);
    unsigned n = 1 + upto(r, 6);
    char *err = NULL;
    for (unsigned i = 0; i < n; i++) {
        unsigned k = upto(r, sizeof templates / sizeof templates[0] + 1);
        if (k == sizeof templates / sizeof templates[0]) { /* raw SQL from the input */
            size_t len = upto(r, 48);
            char sql[64];
            for (size_t j = 0; j < len; j++)
                sql[j] = (char)u8(r);
            if (cmd_add_stmt(b, sql, len, &err) != 0) {
                free(err);
                err = NULL;
            }
            continue;
        }
        const char *t = templates[k];
        CHECK(cmd_add_stmt(b, t, strlen(t), &err) == 0);
        if (strncmp(t, "ATTACH ?", 8) == 0) {
            cmd_add_text(b, NULL, scratch, strlen(scratch));
        } else if (strcmp(t, "VACUUM INTO ?") == 0) {
            const char *in = u8(r) & 1 ? "/tmp/rq-fuzz-dir-a-peers.json" : NULL;
            char p[128];
            snprintf(p, sizeof p, "%s/raft-peers.json", dirA);
            cmd_add_text(b, NULL, in ? in : p, strlen(in ? in : p));
        } else {
            unsigned np = upto(r, 3);
            for (unsigned j = 0; j < np; j++)
                addParam(b, r, (u8(r) & 3) == 0 ? (j ? "b" : "a") : NULL);
        }
    }
}

static void dumpOf(db *d, buf *out)
{
    char *err = NULL;
    CHECK(db_dump(d, NULL, out, &err) == 0);
    cmd_batch q;
    CHECK(cmd_from_sql("PRAGMA user_version", 19, &q, &err) == 0);
    cmd_view v = cmd_batch_view(&q);
    db_query(d, &v, 0, 0, out);
    cmd_batch_free(&q);
}

static db *openDb(const char *path)
{
    db *d = NULL;
    char *err = NULL;
    db_options o = {.max_length = 1 << 20};
    if (db_open(path, &o, &d, &err) != 0) {
        fprintf(stderr, "open %s: %s\n", path, err);
        abort();
    }
    return d;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    /* In memory when the machine has /dev/shm: fsync costs nothing there. */
    struct stat st;
    const char *base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : "/tmp";
    snprintf(dirA, sizeof dirA, "%s/rq-fuzz-replica-%d-a", base, (int)getpid());
    snprintf(dirB, sizeof dirB, "%s/rq-fuzz-replica-%d-b", base, (int)getpid());
    snprintf(pathA, sizeof pathA, "%s/db.sqlite", dirA);
    snprintf(pathB, sizeof pathB, "%s/db.sqlite", dirB);
    snprintf(scratch, sizeof scratch, "/tmp/rq-fuzz-replica-%d-scratch.db", (int)getpid());
    return 0;
}

static int unlinkOne(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void wipe(const char *dir)
{
    nftw(dir, unlinkOne, 8, FTW_DEPTH | FTW_PHYS);
    CHECK(mkdir(dir, 0755) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rd r = {data, size};
    wipe(dirA);
    wipe(dirB);
    db *a = openDb(pathA), *b = openDb(pathB);
    uint64_t index = 1;
    unsigned batches = 1 + upto(&r, 8);
    for (unsigned i = 0; i < batches && r.n > 0; i++, index++) {
        cmd_batch cb;
        genBatch(&r, &cb);
        cmd_view v = cmd_batch_view(&cb);
        unsigned flags = u8(&r) & 1 ? DB_TX : 0;
        cmd_entry e = {.origin = 1, .seq = index, .flags = flags, .unix_ms = 1700000000000ULL + index,
                       .seed = index * 7919, .steps = 200000, .stmts = v};
        size_t len = 0;
        unsigned char *entry = cmd_entry_pack(&e, &len); /* compressed when it pays */
        cmd_entry fe;
        CHECK(cmd_entry_decode(entry, len, &fe) == 0);
        /* The leader: the batch it built, results encoded. Files client
         * SQL names outside the data directory are each node's own: both
         * start from none. */
        unlink(scratch);
        unlink("/tmp/rq-fuzz-dir-a-peers.json");
        buf out = BUF_INIT;
        db_set_entropy(a, (int64_t)e.unix_ms, e.seed);
        db_set_entry_index(a, index);
        db_set_step_budget(a, e.steps);
        CHECK(db_execute(a, &v, flags, &out) == 0);
        if (getenv("RQ_FUZZ_VERBOSE")) {
            cmd_iter it;
            cmd_stmt st;
            cmd_iter_init(&it, &v);
            fprintf(stderr, "entry %llu (flags %u), index now %llu:\n", (unsigned long long)index, flags,
                    (unsigned long long)db_index(a));
            while (cmd_next(&it, &st) == 1)
                fprintf(stderr, "  %s\n", st.sql);
            fprintf(stderr, "  -> %s\n", out.data ? out.data : "");
        }
        buf_free(&out);
        /* A follower: the entry's bytes, decoded; sometimes just restarted. */
        if (u8(&r) % 4 == 0) {
            db_close(b);
            b = openDb(pathB);
            CHECK(db_index(b) == index - 1);
        }
        unlink(scratch);
        unlink("/tmp/rq-fuzz-dir-a-peers.json");
        db_set_entropy(b, (int64_t)fe.unix_ms, fe.seed);
        db_set_entry_index(b, index);
        db_set_step_budget(b, fe.steps);
        CHECK(db_execute(b, &fe.stmts, (unsigned)fe.flags, NULL) == 0);
        CHECK(db_index(a) == db_index(b));
        cmd_entry_free(&fe);
        free(entry);
        cmd_batch_free(&cb);
    }
    buf da = BUF_INIT, dbb = BUF_INIT;
    dumpOf(a, &da);
    dumpOf(b, &dbb);
    if (da.len != dbb.len || memcmp(da.data, dbb.data, da.len) != 0) {
        fprintf(stderr, "replicas differ\n--- leader\n%s\n--- follower\n%s\n", da.data, dbb.data);
        abort();
    }
    buf_free(&da);
    buf_free(&dbb);
    db_close(a);
    db_close(b);
    unlink(scratch);
    return 0;
}
