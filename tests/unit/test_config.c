/* Unit tests for config: rqlited's flags, Go flag-package semantics. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
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

/* Like parse(), with an argv array, and what config_parse wrote to stderr
 * kept in errout (NUL-terminated). */
static int parseCapture(config *cfg, int *code, char **args, char *errout, size_t errlen)
{
    char *argv[64] = {"rqlited"};
    int argc = 1;
    while (*args && argc < 63)
        argv[argc++] = *args++;
    char tmpl[] = "/tmp/test_config_err_XXXXXX";
    int tfd = mkstemp(tmpl);
    assert_true(tfd >= 0);
    unlink(tmpl);
    fflush(stdout);
    fflush(stderr);
    int o = dup(1), e = dup(2);
    FILE *null = fopen("/dev/null", "w");
    dup2(fileno(null), 1);
    dup2(tfd, 2);
    int rc = config_parse(cfg, argc, argv, code);
    fflush(stdout);
    fflush(stderr);
    dup2(o, 1);
    dup2(e, 2);
    close(o);
    close(e);
    fclose(null);
    ssize_t n = pread(tfd, errout, errlen - 1, 0);
    errout[n > 0 ? n : 0] = '\0';
    close(tfd);
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
    /* every form of Go's syntax */
    assert_int_equal(config_parse_duration("1.5s", &ms), 0);
    assert_int_equal(ms, 1500);
    assert_int_equal(config_parse_duration("1h2m", &ms), 0);
    assert_int_equal(ms, 3720000);
    assert_int_equal(config_parse_duration("+300ms", &ms), 0);
    assert_int_equal(ms, 300);
    uint64_t ns;
    assert_int_equal(config_parse_duration_ns("500us", &ns), 0);
    assert_int_equal(ns, 500000);
    assert_int_equal(config_parse_duration_ns("500\xc2\xb5s", &ns), 0);
    assert_int_equal(ns, 500000);
    assert_int_equal(config_parse_duration_ns(".25ms", &ns), 0);
    assert_int_equal(ns, 250000);
    assert_int_not_equal(config_parse_duration("1e3s", &ms), 0);
    assert_int_not_equal(config_parse_duration("0x10s", &ms), 0);
    assert_int_not_equal(config_parse_duration("1d", &ms), 0);
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

/* No security flag refuses the start any more (each is implemented), but
 * a boolean one with a malformed value still exits 1; asking for no
 * security (empty or false values) is fine and warns about nothing;
 * -auth takes a readable file and -join-as needs it. */
static void test_security_refused(void **st)
{
    char file[] = "/tmp/test_config_sec_XXXXXX";
    int fd = mkstemp(file);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "[]\n", 3), 3);
    close(fd);
    static const char *bool_flags[] = {"-http-verify-client", "-node-verify-client", "-node-no-verify"};
    config c;
    int code;
    char err[2048];
    for (size_t i = 0; i < sizeof bool_flags / sizeof *bool_flags; i++) {
        char eq[64];
        snprintf(eq, sizeof eq, "%s=maybe", bool_flags[i]);
        char *bad[] = {eq, "/tmp/never-created", NULL};
        assert_int_equal(parseCapture(&c, &code, bad, err, sizeof err), 1);
        assert_int_equal(code, 1);
    }
    /* Asking for no security is fine, and warns about nothing. */
    char *none[] = {"-auth", "", "-join-as=", "-http-cert", "", "-http-key", "", "-node-cert=", "-node-key=",
                    "-http-ca-cert=", "-node-ca-cert=", "-http-verify-client=false", "-node-verify-client=0",
                    "-node-no-verify=false", "-http-verify-common-name=", "-node-verify-common-name=",
                    "-node-verify-server-name=", "/tmp/d", NULL};
    assert_int_equal(parseCapture(&c, &code, none, err, sizeof err), 0);
    assert_int_equal(code, 0);
    assert_string_equal(err, "");
    assert_false(c.http_verify_client);
    assert_false(c.node_no_verify);
    config_free(&c);

    /* -auth and -join-as are implemented: a readable file starts (what it
     * says is main.c's to check), -join-as needs -auth. */
    char *with_auth[] = {"-auth", file, "-join-as", "fiona", "/tmp/d", NULL};
    assert_int_equal(parseCapture(&c, &code, with_auth, err, sizeof err), 0);
    assert_string_equal(err, "");
    assert_string_equal(c.auth, file);
    assert_string_equal(c.join_as, "fiona");
    assert_null(c.creds);
    config_free(&c);
    char *join_as_alone[] = {"-join-as", "fiona", "/tmp/never-created", NULL};
    assert_int_equal(parseCapture(&c, &code, join_as_alone, err, sizeof err), 1);
    assert_int_equal(code, 1);
    assert_string_equal(err, "fatal: -join-as requires -auth: the user's password is read from that file\n");
    unlink(file);
}

/* A file flag naming a file that cannot be read says which and why, before
 * anything else (also before the "not supported" refusal of another flag). */
static void test_security_unreadable_file(void **st)
{
    static const char *file_flags[] = {"-auth", "-http-cert", "-http-key", "-http-ca-cert",
                                       "-node-cert", "-node-key", "-node-ca-cert"};
    config c;
    int code;
    char err[2048], want[1024];
    char dir[] = "/tmp/test_config_dir_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char missing[600];
    snprintf(missing, sizeof missing, "%s/no/such/file", dir);
    for (size_t i = 0; i < sizeof file_flags / sizeof *file_flags; i++) {
        /* Another security flag first on the line: the file is still reported. */
        char *args[] = {"-join-as", "fiona", (char *)file_flags[i], missing, "/tmp/never-created", NULL};
        assert_int_equal(parseCapture(&c, &code, args, err, sizeof err), 1);
        assert_int_equal(code, 1);
        snprintf(want, sizeof want, "fatal: cannot read %s file %s: No such file or directory\n",
                 file_flags[i], missing);
        assert_string_equal(err, want);
        /* A directory cannot be read as a file. */
        char *dargs[] = {(char *)file_flags[i], dir, "/tmp/never-created", NULL};
        assert_int_equal(parseCapture(&c, &code, dargs, err, sizeof err), 1);
        assert_int_equal(code, 1);
        snprintf(want, sizeof want, "fatal: cannot read %s file %s: Is a directory\n", file_flags[i], dir);
        assert_string_equal(err, want);
    }
    /* A file without read permission. Root reads any file, so as root the
     * check runs in a child that has become nobody (65534). */
    char file[700];
    snprintf(file, sizeof file, "%s/secret", dir);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fputs("[]\n", f);
    fclose(f);
    assert_int_equal(chmod(file, 0), 0);
    assert_int_equal(chmod(dir, 0711), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
            _exit(3);
        for (size_t i = 0; i < sizeof file_flags / sizeof *file_flags; i++) {
            char *args[] = {(char *)file_flags[i], file, "/tmp/never-created", NULL};
            if (parseCapture(&c, &code, args, err, sizeof err) != 1 || code != 1)
                _exit(1);
            snprintf(want, sizeof want, "fatal: cannot read %s file %s: Permission denied\n", file_flags[i], file);
            if (strcmp(err, want) != 0) {
                fprintf(stderr, "got: %s", err);
                _exit(2);
            }
        }
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    unlink(file);
    rmdir(dir);
}

/* The HTTPS flags start a node (the files are only checked for being
 * readable here; the HTTP server loads them), with rqlite's cross-checks,
 * and make the advertised API address https://. */
static void test_https_flags(void **st)
{
    char file[] = "/tmp/test_config_pem_XXXXXX";
    int fd = mkstemp(file);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "x\n", 2), 2);
    close(fd);
    config c;
    int code;
    char err[2048];
    char *plain[] = {"/tmp/d", NULL};
    assert_int_equal(parseCapture(&c, &code, plain, err, sizeof err), 0);
    assert_false(config_https(&c));
    assert_string_equal(c.http_api_url, "http://localhost:4001");
    config_free(&c);

    char *https[] = {"-http-cert", file, "-http-key", file, "-http-adv-addr", "db.example:443", "/tmp/d", NULL};
    assert_int_equal(parseCapture(&c, &code, https, err, sizeof err), 0);
    assert_string_equal(err, "");
    assert_true(config_https(&c));
    assert_string_equal(c.http_api_url, "https://db.example:443");
    config_free(&c);

    char *mtls[] = {"-http-cert", file, "-http-key", file, "-http-ca-cert", file, "-http-verify-client",
                    "-http-verify-common-name", "client", "/tmp/d", NULL};
    assert_int_equal(parseCapture(&c, &code, mtls, err, sizeof err), 0);
    assert_string_equal(err, "");
    assert_true(c.http_verify_client);
    assert_string_equal(c.http_verify_common_name, "client");
    config_free(&c);

    /* A CA alone is for verifying other nodes' HTTPS: accepted. */
    char *ca[] = {"-http-ca-cert", file, "/tmp/d", NULL};
    assert_int_equal(parseCapture(&c, &code, ca, err, sizeof err), 0);
    assert_false(config_https(&c));
    config_free(&c);

    /* "F" stands for the file. */
    static const struct {
        const char *args[8];
        const char *err;
    } bad[] = {
        {{"-http-cert", "F", "/tmp/d"}, "fatal: either both -http-cert and -http-key must be set, or neither\n"},
        {{"-http-key", "F", "/tmp/d"}, "fatal: either both -http-cert and -http-key must be set, or neither\n"},
        {{"-http-cert", "F", "-http-key", "F", "-http-verify-common-name", "x", "/tmp/d"},
         "fatal: -http-verify-common-name requires -http-verify-client\n"},
        {{"-http-verify-client", "/tmp/d"}, "fatal: -http-verify-client requires -http-cert and -http-key\n"},
        {{"-http-ca-cert", "F", "-http-verify-client", "/tmp/d"},
         "fatal: -http-verify-client requires -http-cert and -http-key\n"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char *args[9] = {NULL};
        for (int k = 0; k < 8 && bad[i].args[k] != NULL; k++)
            args[k] = strcmp(bad[i].args[k], "F") == 0 ? file : (char *)bad[i].args[k];
        assert_int_equal(parseCapture(&c, &code, args, err, sizeof err), 1);
        assert_int_equal(code, 1);
        assert_string_equal(err, bad[i].err);
    }
    unlink(file);
}

/* Node-to-node TLS is on with -node-cert and -node-key together (their
 * files readable: test_security_unreadable_file); without them any other
 * -node-* TLS flag refuses the start instead of running in plaintext, and
 * -node-verify-common-name needs -node-verify-client (rqlite's rule). */
static void test_node_tls_flags(void **st)
{
    char file[] = "/tmp/test_config_node_XXXXXX";
    int fd = mkstemp(file);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "x\n", 2), 2);
    close(fd);
    config c;
    int code;
    char err[2048];
    char *ok[] = {"-node-cert", file, "-node-key", file, "-node-ca-cert", file, "-node-verify-client",
                  "-node-verify-common-name", "rq", "-node-verify-server-name", "db.example", "-node-no-verify",
                  "/tmp/d", NULL};
    assert_int_equal(parseCapture(&c, &code, ok, err, sizeof err), 0);
    assert_string_equal(err, "");
    assert_string_equal(c.node_cert, file);
    assert_true(c.node_verify_client);
    assert_true(c.node_no_verify);
    assert_string_equal(c.node_verify_common_name, "rq");
    assert_string_equal(c.node_verify_server_name, "db.example");
    assert_null(c.node_tls);
    config_free(&c);
    char *nokey[] = {"-node-cert", file, "/tmp/d", NULL};
    assert_int_equal(parseCapture(&c, &code, nokey, err, sizeof err), 1);
    assert_int_equal(code, 1);
    assert_string_equal(err, "fatal: either both -node-cert and -node-key must be set, or neither\n");
    char *cn[] = {"-node-cert", file, "-node-key", file, "-node-verify-common-name", "rq", "/tmp/d", NULL};
    assert_int_equal(parseCapture(&c, &code, cn, err, sizeof err), 1);
    assert_string_equal(err, "fatal: -node-verify-common-name requires -node-verify-client\n");
    struct {
        char *args[4];
        const char *flag;
    } alone[] = {
        {{"-node-ca-cert", file, "/tmp/d", NULL}, "-node-ca-cert"},
        {{"-node-verify-client", "/tmp/d", NULL}, "-node-verify-client"},
        {{"-node-verify-server-name", "x", "/tmp/d", NULL}, "-node-verify-server-name"},
        {{"-node-no-verify", "/tmp/d", NULL}, "-node-no-verify"},
    };
    for (size_t i = 0; i < sizeof alone / sizeof *alone; i++) {
        assert_int_equal(parseCapture(&c, &code, alone[i].args, err, sizeof err), 1);
        assert_int_equal(code, 1);
        char want[256];
        snprintf(want, sizeof want,
                 "fatal: %s requires -node-cert and -node-key (node-to-node TLS is off without them)\n",
                 alone[i].flag);
        assert_string_equal(err, want);
    }
    unlink(file);
}

/* Non-security flags that are not implemented yet still only warn. */
static void test_todo_warns(void **st)
{
    config c;
    int code;
    char err[2048];
    char *args[] = {"-trace-profile", "t.out", "/tmp/d", NULL};
    assert_int_equal(parseCapture(&c, &code, args, err, sizeof err), 0);
    assert_non_null(strstr(err, "warning: -trace-profile is accepted but not supported yet"));
    config_free(&c);
    /* -cdc-config is implemented (cdc/): kept for main, refused on a non-voter as by rqlite. */
    char *cdc[] = {"-cdc-config", "cdc.json", "/tmp/d", NULL};
    assert_int_equal(parseCapture(&c, &code, cdc, err, sizeof err), 0);
    assert_string_equal(err, "");
    assert_string_equal(c.cdc_config, "cdc.json");
    config_free(&c);
    char *nv[] = {"-cdc-config", "stdout", "-raft-non-voter", "/tmp/d", NULL};
    assert_int_equal(parseCapture(&c, &code, nv, err, sizeof err), 1);
    assert_string_equal(err, "fatal: CDC cannot be enabled on non-voting nodes\n");
    /* -http-allow-origin is honoured (http/respond.c): no warning. */
    char *origin[] = {"-http-allow-origin", "*", "/tmp/d", NULL};
    assert_int_equal(parseCapture(&c, &code, origin, err, sizeof err), 0);
    assert_string_equal(err, "");
    assert_string_equal(c.http_allow_origin, "*");
    config_free(&c);
}

/* -extensions-path: rqlite's check that each comma-separated entry exists
 * (none trimmed: an empty entry or a leading blank fails too); the node
 * installs them later (ext/ext.h). */
static void test_extensions_path(void **st)
{
    config c;
    int code;
    char err[2048];
    char *ok[] = {"-extensions-path", "/tmp,/", "/tmp/d", NULL};
    assert_int_equal(parseCapture(&c, &code, ok, err, sizeof err), 0);
    assert_string_equal(err, ""); /* implemented: no warning */
    assert_string_equal(c.extensions_path, "/tmp,/");
    assert_int_equal(c.n_extensions, 0); /* filled by main, not the parser */
    config_free(&c);
    static const struct {
        const char *value, *want;
    } bad[] = {
        {"/no/such/ext.so", "fatal: extension path does not exist: /no/such/ext.so\n"},
        {"/tmp,/no/such.zip", "fatal: extension path does not exist: /no/such.zip\n"},
        {"/tmp,", "fatal: extension path does not exist: \n"},
        {"/tmp, /tmp", "fatal: extension path does not exist:  /tmp\n"},
        {",", "fatal: extension path does not exist: \n"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char *args[] = {"-extensions-path", (char *)bad[i].value, "/tmp/d", NULL};
        assert_int_equal(parseCapture(&c, &code, args, err, sizeof err), 1);
        assert_int_equal(code, 1);
        assert_string_equal(err, bad[i].want);
    }
}

/* The Raft timers hashicorp raft refuses stop the start with its
 * messages; a lease up to the heartbeat timeout and a snapshot interval are
 * used, without a warning. */
static void test_raft_timers(void **st)
{
    config c;
    int code;
    char err[2048];
    char *lease[] = {"-raft-timeout", "500ms", "-raft-leader-lease-timeout", "750ms", "/tmp/d", NULL};
    assert_int_equal(parseCapture(&c, &code, lease, err, sizeof err), 1);
    assert_int_equal(code, 1);
    assert_non_null(strstr(err, "fatal: failed to open store: creating the raft system failed: "
                                "LeaderLeaseTimeout cannot be larger than heartbeat timeout"));
    char *low[] = {"-raft-leader-lease-timeout", "4ms", "/tmp/d", NULL};
    assert_int_equal(parseCapture(&c, &code, low, err, sizeof err), 1);
    assert_non_null(strstr(err, "LeaderLeaseTimeout is too low"));
    char *snap[] = {"-raft-snap-int", "1ms", "/tmp/d", NULL};
    assert_int_equal(parseCapture(&c, &code, snap, err, sizeof err), 1);
    assert_non_null(strstr(err, "SnapshotInterval is too low"));
    char *ok[] = {"-raft-timeout", "500ms", "-raft-leader-lease-timeout", "500ms", "-raft-snap-int", "0s",
                  "/tmp/d", NULL};
    assert_int_equal(parseCapture(&c, &code, ok, err, sizeof err), 0);
    assert_string_equal(err, "");
    assert_int_equal(c.raft_leader_lease_timeout_ms, 500);
    assert_int_equal(c.raft_snap_int_ms, 0);
    config_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_forms),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_security_refused),
        cmocka_unit_test(test_security_unreadable_file),
        cmocka_unit_test(test_node_tls_flags),
        cmocka_unit_test(test_https_flags),
        cmocka_unit_test(test_todo_warns),
        cmocka_unit_test(test_extensions_path),
        cmocka_unit_test(test_raft_timers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
