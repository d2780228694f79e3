/* Unit tests for config: rqlited's flags, Go flag-package semantics. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

/* Parse a NULL-terminated argument list with stdout/stderr silenced. */
static int parse(config *cfg, int *code, ...)
{
    char *argv[64] = {"rqlited"};
    int argc = 1;
    va_list ap;
    va_start(ap, code);
    for (char *a; (a = va_arg(ap, char *)) != NULL;)
        argv[argc++] = a;
    va_end(ap);
    fflush(stdout);
    fflush(stderr);
    int o = dup(1), e = dup(2);
    FILE *null = fopen("/dev/null", "w");
    dup2(fileno(null), 1);
    dup2(fileno(null), 2);
    int rc = config_parse(cfg, argc, argv, code);
    fflush(stdout);
    fflush(stderr);
    dup2(o, 1);
    dup2(e, 2);
    close(o);
    close(e);
    fclose(null);
    return rc;
}

static void test_defaults(void **st)
{
    config c;
    int code = -1;
    assert_int_equal(parse(&c, &code, "/tmp/d", NULL), 0);
    assert_string_equal(c.data_dir, "/tmp/d");
    assert_string_equal(c.http_addr, "localhost:4001");
    assert_string_equal(c.http_adv_addr, "localhost:4001");
    assert_string_equal(c.raft_addr, "localhost:4002");
    assert_string_equal(c.raft_adv_addr, "localhost:4002");
    assert_string_equal(c.node_id, "localhost:4002");
    assert_int_equal(c.join_attempts, 5);
    assert_int_equal(c.join_interval_ms, 3000);
    assert_int_equal(c.raft_election_timeout_ms, 1000);
    assert_int_equal(c.raft_heartbeat_timeout_ms, 1000);
    assert_int_equal(c.raft_snap, 8192);
    assert_int_equal(c.db_max_ro_conns, 256);
    assert_true(c.raft_shutdown_stepdown);
    assert_false(c.fk);
    assert_int_equal(c.n_join, 0);
    config_free(&c);
}

static void test_forms(void **st)
{
    config c;
    int code;
    assert_int_equal(parse(&c, &code, "-node-id", "1", "--http-addr=127.0.0.1:5001", "-fk",
                           "-raft-addr", "127.0.0.1:5002", "-raft-shutdown-stepdown=false",
                           "-raft-timeout", "250ms", "-raft-election-timeout=2s",
                           "-join", "http://127.0.0.1:4001, 127.0.0.1:4002", "rel/dir", NULL), 0);
    assert_string_equal(c.node_id, "1");
    assert_string_equal(c.http_addr, "127.0.0.1:5001");
    assert_string_equal(c.http_adv_addr, "127.0.0.1:5001");
    assert_true(c.fk);
    assert_false(c.raft_shutdown_stepdown);
    assert_int_equal(c.raft_heartbeat_timeout_ms, 250);
    assert_int_equal(c.raft_election_timeout_ms, 2000);
    assert_int_equal(c.n_join, 2);
    assert_string_equal(c.join[0], "http://127.0.0.1:4001");
    assert_string_equal(c.join[1], "127.0.0.1:4002");
    char cwd[4096], want[4200];
    assert_non_null(getcwd(cwd, sizeof cwd));
    snprintf(want, sizeof want, "%s/rel/dir", cwd);
    assert_string_equal(c.data_dir, want);
    config_free(&c);
}

static void test_durations(void **st)
{
    uint64_t ms;
    assert_int_equal(config_parse_duration("500ms", &ms), 0);
    assert_int_equal(ms, 500);
    assert_int_equal(config_parse_duration("3s", &ms), 0);
    assert_int_equal(ms, 3000);
    assert_int_equal(config_parse_duration("2m0s", &ms), 0);
    assert_int_equal(ms, 120000);
    assert_int_equal(config_parse_duration("1h2m3.5s", &ms), 0);
    assert_int_equal(ms, 3723500);
    assert_int_equal(config_parse_duration("0", &ms), 0);
    assert_int_equal(ms, 0);
    assert_int_not_equal(config_parse_duration("5", &ms), 0);
    assert_int_not_equal(config_parse_duration("", &ms), 0);
    assert_int_not_equal(config_parse_duration("3x", &ms), 0);
    assert_int_not_equal(config_parse_duration("-1s", &ms), 0);
}

static void test_errors(void **st)
{
    config c;
    int code;
    assert_int_equal(parse(&c, &code, "-nope", "/tmp/d", NULL), 1);
    assert_int_equal(code, 1);
    assert_int_equal(parse(&c, &code, NULL), 1);
    assert_int_equal(code, 1);
    assert_int_equal(parse(&c, &code, "-node-id", "1", NULL), 1);
    assert_int_equal(code, 1);
    assert_int_equal(parse(&c, &code, "/tmp/d", "extra", NULL), 1);
    assert_int_equal(code, 1);
    assert_int_equal(parse(&c, &code, "-join-interval", "5", "/tmp/d", NULL), 1);
    assert_int_equal(code, 1);
    assert_int_equal(parse(&c, &code, "-http-addr", "http://x:1", "/tmp/d", NULL), 1);
    assert_int_equal(code, 1);
    assert_int_equal(parse(&c, &code, "-http-addr", "localhost:4002", "/tmp/d", NULL), 1);
    assert_int_equal(code, 1);
    assert_int_equal(parse(&c, &code, "-join", "localhost:4002", "/tmp/d", NULL), 1);
    assert_int_equal(code, 1);
    assert_int_equal(parse(&c, &code, "-join", "nope", "/tmp/d", NULL), 1);
    assert_int_equal(code, 1);
    assert_int_equal(parse(&c, &code, "-raft-addr", NULL), 1);
    assert_int_equal(code, 1);
    assert_int_equal(parse(&c, &code, "-version", NULL), 1);
    assert_int_equal(code, 0);
    assert_int_equal(parse(&c, &code, "-h", NULL), 1);
    assert_int_equal(code, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_forms),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
