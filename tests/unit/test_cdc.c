/* Unit tests for cdc/: the -cdc-config parser, the envelope, the queue on
 * disk, and the capture on a database (db_cdc_enable) feeding it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cdc/cdc.h"
#include "command/command.h"
#include "db/db.h"

static char *tmpDir(void)
{
    char tmpl[] = "/tmp/rq-cdc-XXXXXX";
    return strdup(mkdtemp(tmpl));
}

static char *writeFile(const char *dir, const char *name, const char *text)
{
    char *p = malloc(strlen(dir) + strlen(name) + 2);
    sprintf(p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    fputs(text, f);
    fclose(f);
    return p;
}

static void test_config_defaults_url_stdout(void **st)
{
    cdc_config c;
    char *err = NULL;
    assert_int_equal(cdc_config_parse("http://127.0.0.1:9/x", &c, &err), 0);
    assert_string_equal(c.endpoint, "http://127.0.0.1:9/x");
    assert_int_equal(c.max_batch_size, 10);
    assert_int_equal(c.max_batch_delay_ns, 200000000ULL);
    assert_int_equal(c.hwm_interval_ns, 1000000000ULL);
    assert_int_equal(c.transmit_timeout_ns, 5000000000ULL);
    assert_int_equal(c.transmit_max_retries, -1);
    assert_int_equal(c.transmit_retry_policy, CDC_RETRY_LINEAR);
    assert_int_equal(c.transmit_min_backoff_ns, 1000000000ULL);
    assert_int_equal(c.transmit_max_backoff_ns, 30000000000ULL);
    assert_string_equal(c.service_id, "");
    assert_true(cdc_config_wants(&c, "anything"));
    cdc_config_free(&c);
    assert_int_equal(cdc_config_parse("stdout", &c, &err), 0);
    assert_string_equal(c.endpoint, "stdout");
    cdc_config_free(&c);
    /* Not a URL, so a file, which does not exist. */
    assert_int_equal(cdc_config_parse("HTTP://x", &c, &err), -1);
    assert_non_null(strstr(err, "cannot read"));
    free(err);
}

static void test_config_file(void **st)
{
    char *dir = tmpDir(), *err = NULL;
    char *p = writeFile(dir, "c.json",
                        "{\"endpoint\":\"https://h:1/p\",\"service_id\":\"s1\",\"row_ids_only\":true,"
                        "\"table_filter\":\"(?i)^user\\\\d\",\"max_batch_size\":3,\"max_batch_delay\":5000000,"
                        "\"high_watermark_interval\":0,\"transmit_timeout\":null,\"transmit_max_retries\":4,"
                        "\"transmit_retry_policy\":1,\"transmit_min_backoff\":7,\"transmit_max_backoff\":9,"
                        "\"unknown_field\":[1]}");
    cdc_config c;
    assert_int_equal(cdc_config_parse(p, &c, &err), 0);
    assert_string_equal(c.endpoint, "https://h:1/p");
    assert_string_equal(c.service_id, "s1");
    assert_true(c.row_ids_only);
    assert_int_equal(c.max_batch_size, 3);
    assert_int_equal(c.max_batch_delay_ns, 5000000);       /* nanoseconds, as given */
    assert_int_equal(c.hwm_interval_ns, 1000000000ULL);    /* 0: the default */
    assert_int_equal(c.transmit_timeout_ns, 5000000000ULL); /* null: the default */
    assert_int_equal(c.transmit_max_retries, 4);
    assert_int_equal(c.transmit_retry_policy, CDC_RETRY_EXPONENTIAL);
    assert_int_equal(c.transmit_min_backoff_ns, 7);
    assert_int_equal(c.transmit_max_backoff_ns, 9);
    assert_true(cdc_config_wants(&c, "USER7"));   /* (?i) and \d translated */
    assert_false(cdc_config_wants(&c, "userx"));
    assert_false(cdc_config_wants(&c, "a_user1"));
    cdc_config_free(&c);
    free(p);

    static const char *const bad[] = {
        "not json", "[]", "{\"endpoint\":\"http://h/\",\"max_batch_delay\":\"1s\"}",
        "{\"endpoint\":\"http://h/\",\"transmit_timeout\":1.5}", "{\"endpoint\":\"http://h/\",\"table_filter\":\"(\"}",
        "{\"endpoint\":\"http://h/\",\"row_ids_only\":\"yes\"}", "{\"endpoint\":\"\"}", "{}",
        "{\"endpoint\":\"http://h/\",\"transmit_retry_policy\":2}",
        "{\"endpoint\":\"http://h/\",\"high_watermark_interval\":-1}",
        "{\"endpoint\":\"https://h/\",\"tls\":{\"ca_cert_file\":\"/nonexistent\"}}",
        "{\"endpoint\":\"https://h/\",\"tls\":{\"key_file\":\"/etc/hostname\"}}",
        "{\"endpoint\":\"https://h/\",\"tls\":{\"ca_cert_file\":\"/etc/hostname\"}}", /* not PEM */
        "{\"endpoint\":\"http://h/\",\"endpoint\":\"http://g/\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        p = writeFile(dir, "bad.json", bad[i]);
        err = NULL;
        if (cdc_config_parse(p, &c, &err) != -1)
            fail_msg("accepted: %s", bad[i]);
        assert_non_null(err);
        free(err);
        free(p);
    }
    /* max_retries 0 or less: forever, as rqlite's attempt count never equals it. */
    p = writeFile(dir, "z.json", "{\"endpoint\":\"stdout\",\"transmit_max_retries\":0}");
    assert_int_equal(cdc_config_parse(p, &c, &err), 0);
    assert_int_equal(c.transmit_max_retries, -1);
    cdc_config_free(&c);
    free(p);
    free(dir);
}

static void test_envelope(void **st)
{
    cdc_entry e[2] = {{.index = 42, .ts_ms = 1709827200000, .events = "[{\"op\":\"INSERT\"}]", .len = 17},
                      {.index = 43, .ts_ms = 0, .events = "[]", .len = 2}};
    buf b = BUF_INIT;
    cdc_envelope(&b, "", "n<1", e, 2);
    assert_string_equal(b.data, "{\"node_id\":\"n\\u003c1\",\"payload\":[{\"index\":42,\"commit_timestamp\":1709827200000,"
                                "\"events\":[{\"op\":\"INSERT\"}]},{\"index\":43,\"events\":[]}]}");
    buf_reset(&b);
    cdc_envelope(&b, "svc", "1", e, 1);
    assert_non_null(strstr(b.data, "{\"service_id\":\"svc\",\"node_id\":\"1\",\"payload\":[{\"index\":42,"));
    buf_free(&b);
}

static void test_fifo(void **st)
{
    char *dir = tmpDir(), *err = NULL;
    char path[256];
    snprintf(path, sizeof path, "%s/fifo.db", dir);
    cdc_fifo *f;
    assert_int_equal(cdc_fifo_open(path, &f, &err), 0);
    assert_int_equal(cdc_fifo_enqueue(f, 5, 1, "[5]", 3), 1);
    assert_int_equal(cdc_fifo_enqueue(f, 7, 2, "[7]", 3), 1);
    assert_int_equal(cdc_fifo_enqueue(f, 7, 2, "[7]", 3), 0); /* replayed */
    assert_int_equal(cdc_fifo_enqueue(f, 6, 2, "[6]", 3), 0); /* below the highest */
    assert_int_equal(cdc_fifo_enqueue(f, 9, 3, "[9]", 3), 1);
    assert_int_equal(cdc_fifo_len(f), 3);
    cdc_entry *e;
    int n = cdc_fifo_read(f, 5, 10, &e);
    assert_int_equal(n, 2);
    assert_int_equal(e[0].index, 7);
    assert_string_equal(e[0].events, "[7]");
    assert_int_equal(e[1].ts_ms, 3);
    cdc_entries_free(e, n);
    n = cdc_fifo_read(f, 0, 1, &e);
    assert_int_equal(n, 1);
    assert_int_equal(e[0].index, 5);
    cdc_entries_free(e, n);
    assert_int_equal(cdc_fifo_prune(f, 7), 0);
    assert_int_equal(cdc_fifo_len(f), 1);
    assert_int_equal(cdc_fifo_hwm(f), 7);
    assert_int_equal(cdc_fifo_sync(f), 0);
    cdc_fifo_close(f);
    /* Reopened: the highest index, the HWM and the rest are kept. */
    assert_int_equal(cdc_fifo_open(path, &f, &err), 0);
    assert_int_equal(cdc_fifo_highest(f), 9);
    assert_int_equal(cdc_fifo_hwm(f), 7);
    assert_int_equal(cdc_fifo_len(f), 1);
    assert_int_equal(cdc_fifo_enqueue(f, 8, 1, "[8]", 3), 0);
    n = cdc_fifo_read(f, cdc_fifo_hwm(f), 10, &e);
    assert_int_equal(n, 1);
    assert_int_equal(e[0].index, 9);
    cdc_entries_free(e, n);
    cdc_fifo_close(f);
    free(dir);
}

/* ---- capture through db_execute -------------------------------------------------- */

typedef struct got {
    uint64_t index[16];
    char *events[16];
    int n;
} got;

static int gotEntry(void *arg, uint64_t index, int64_t ts, const char *events, size_t len)
{
    got *g = arg;
    assert_true(ts > 0);
    g->index[g->n] = index;
    g->events[g->n++] = strndup(events, len);
    return 0;
}

static bool noSkip(void *arg, const char *t) { return strcmp(t, "skip") != 0; }

static void run(db *d, uint64_t index, const char *json, unsigned flags)
{
    cmd_batch b;
    char *err = NULL;
    assert_int_equal(cmd_from_json(json, strlen(json), &b, &err), 0);
    cmd_view v = cmd_batch_view(&b);
    db_set_entry_index(d, index);
    db_set_entropy(d, 1000, 1);
    buf out = BUF_INIT;
    assert_int_equal(db_execute(d, &v, flags, &out), 0);
    buf_free(&out);
    cmd_batch_free(&b);
}

static void test_capture(void **st)
{
    char *dir = tmpDir(), *err = NULL;
    char path[256];
    snprintf(path, sizeof path, "%s/db.sqlite", dir);
    db *d;
    assert_int_equal(db_open(path, NULL, &d, &err), 0);
    got g = {0};
    db_cdc_sink sink = {.arg = &g, .want = noSkip, .entry = gotEntry};
    assert_int_equal(db_cdc_enable(d, &sink, &err), 0);
    run(d, 1, "[\"CREATE TABLE t(id INTEGER PRIMARY KEY, b TEXT, a REAL)\", \"CREATE TABLE skip(x)\"]", 0);
    assert_int_equal(g.n, 0); /* no rows changed: nothing */
    run(d, 2, "[\"INSERT INTO t VALUES(1, 'x', 0.5)\", \"INSERT INTO skip VALUES(1)\"]", 0);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.index[0], 2);
    assert_string_equal(g.events[0], "[{\"op\":\"INSERT\",\"table\":\"t\",\"new_row_id\":1,"
                                     "\"after\":{\"a\":0.5,\"b\":\"x\",\"id\":1}}]");
    /* The failing second statement is rolled back with its savepoint; a
     * schema change within the entry is seen by the next statement. */
    run(d, 3, "[\"INSERT INTO t VALUES(2, 'y', 1)\", \"INSERT INTO t VALUES(1, 'dup', 1)\", "
              "\"ALTER TABLE t ADD COLUMN c\", \"UPDATE t SET c = x'00' WHERE id = 2\"]", 0);
    assert_int_equal(g.n, 2);
    assert_string_equal(g.events[1],
                        "[{\"op\":\"INSERT\",\"table\":\"t\",\"new_row_id\":2,\"after\":{\"a\":1,\"b\":\"y\",\"id\":2}},"
                        "{\"op\":\"UPDATE\",\"table\":\"t\",\"new_row_id\":2,\"old_row_id\":2,"
                        "\"before\":{\"a\":1,\"b\":\"y\",\"c\":null,\"id\":2},"
                        "\"after\":{\"a\":1,\"b\":\"y\",\"c\":\"AA==\",\"id\":2}}]");
    /* ?transaction with a failure: nothing. */
    run(d, 4, "[\"DELETE FROM t WHERE id = 1\", \"INSERT INTO t VALUES(2, 'dup', 1, 1)\"]", 1);
    assert_int_equal(g.n, 2);
    /* Client transactions and savepoints. */
    run(d, 5, "[\"BEGIN\", \"DELETE FROM t WHERE id = 1\", \"SAVEPOINT \\\"A b\\\"\", "
              "\"DELETE FROM t WHERE id = 2\", \"ROLLBACK TO [a B]\", \"COMMIT\"]", 0);
    assert_int_equal(g.n, 3);
    assert_non_null(strstr(g.events[2], "\"op\":\"DELETE\",\"table\":\"t\",\"old_row_id\":1,"));
    assert_null(strstr(g.events[2], "\"old_row_id\":2"));
    run(d, 6, "[\"BEGIN\", \"DELETE FROM t\", \"ROLLBACK\"]", 0);
    assert_int_equal(g.n, 3);
    for (int i = 0; i < g.n; i++)
        free(g.events[i]);
    db_close(d);
    free(dir);
}

int main(void)
{
    char *err = NULL;
    db_extensions_check(NULL, 0, &err); /* SQLite's process-wide settings first, as rqlited does */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_defaults_url_stdout),
        cmocka_unit_test(test_config_file),
        cmocka_unit_test(test_envelope),
        cmocka_unit_test(test_fifo),
        cmocka_unit_test(test_capture),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
