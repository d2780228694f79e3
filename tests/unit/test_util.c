/* Unit tests for util/: buf and the Go-compatible JSON writers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include "util/addr.h"
#include "util/buf.h"
#include "util/duration.h"
#include "util/job.h"

static void check_str(const char *in, size_t n, const char *want) {
    buf b = BUF_INIT;
    buf_json_str(&b, in, n);
    assert_string_equal(b.data, want);
    buf_free(&b);
}

static void test_buf_basics(void **st) {
    buf b = BUF_INIT;
    buf_puts(&b, "abc");
    buf_putc(&b, 'd');
    buf_printf(&b, "%d-%s", 42, "x");
    assert_string_equal(b.data, "abcd42-x");
    assert_int_equal(b.len, 8);
    /* printf larger than the stack scratch space */
    char big[1000];
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    buf_reset(&b);
    buf_printf(&b, "<%s>", big);
    assert_int_equal(b.len, 1001);
    assert_int_equal(b.data[1000], '>');
    size_t len;
    char *p = buf_detach(&b, &len);
    assert_int_equal(len, 1001);
    assert_null(b.data);
    free(p);
    p = buf_detach(&b, &len); /* empty buffer still gives a string */
    assert_string_equal(p, "");
    free(p);
}

static void test_json_str(void **st) {
    check_str("plain", 5, "\"plain\"");
    check_str("a\"b\\c", 5, "\"a\\\"b\\\\c\"");
    check_str("\n\r\t\b\f\x01\x1f", 7, "\"\\n\\r\\t\\b\\f\\u0001\\u001f\"");
    check_str("<a>&", 4, "\"\\u003ca\\u003e\\u0026\"");
    check_str("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14,
              "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
    check_str("\xe2\x80\xa8\xe2\x80\xa9", 6, "\"\\u2028\\u2029\"");
    check_str("a\xffz", 3, "\"a\\ufffdz\"");
    check_str("\xc0\xaf", 2, "\"\\ufffd\\ufffd\"");      /* overlong */
    check_str("\xed\xa0\x80", 3, "\"\\ufffd\\ufffd\\ufffd\""); /* surrogate */
    check_str("\xe2\x82", 2, "\"\\ufffd\\ufffd\"");      /* truncated */
    check_str("a\0b", 3, "\"a\\u0000b\"");
    buf b = BUF_INIT;
    buf_json_cstr(&b, NULL);
    assert_string_equal(b.data, "null");
    buf_free(&b);
}

static void check_double(double v, const char *want) {
    buf b = BUF_INIT;
    buf_json_double(&b, v);
    assert_string_equal(b.data, want);
    buf_free(&b);
}

static void test_json_numbers(void **st) {
    check_double(2, "2");
    check_double(-2.5, "-2.5");
    check_double(0, "0");
    check_double(0.0001, "0.0001");
    check_double(0.000001, "0.000001");
    check_double(1e-7, "1e-7");
    check_double(1.5e-10, "1.5e-10");
    check_double(123456789.0, "123456789");
    check_double(1e20, "100000000000000000000");
    check_double(1e21, "1e+21");
    check_double(3.14159, "3.14159");
    check_double(0.1 + 0.2, "0.30000000000000004");
    check_double(1.7976931348623157e308, "1.7976931348623157e+308");
    check_double(NAN, "null");
    buf b = BUF_INIT;
    buf_json_int(&b, INT64_MIN);
    buf_putc(&b, ' ');
    buf_json_int(&b, 42);
    assert_string_equal(b.data, "-9223372036854775808 42");
    buf_free(&b);
}

static void test_json_base64(void **st) {
    const char *cases[][2] = {
        {"", "\"\""}, {"f", "\"Zg==\""}, {"fo", "\"Zm8=\""},
        {"foo", "\"Zm9v\""}, {"foob", "\"Zm9vYg==\""}, {"fooba", "\"Zm9vYmE=\""},
        {"foobar", "\"Zm9vYmFy\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        buf b = BUF_INIT;
        buf_json_base64(&b, cases[i][0], strlen(cases[i][0]));
        assert_string_equal(b.data, cases[i][1]);
        buf_free(&b);
    }
}

static void test_addr(void **state)
{
    char h[256], p[16];
    assert_int_equal(addr_split("localhost:4001", h, sizeof h, p, sizeof p), 0);
    assert_string_equal(h, "localhost");
    assert_string_equal(p, "4001");
    assert_int_equal(addr_split("[::1]:4002", h, sizeof h, p, sizeof p), 0);
    assert_string_equal(h, "::1");
    assert_int_equal(addr_split(":4001", h, sizeof h, p, sizeof p), 0);
    assert_string_equal(h, "");
    assert_int_equal(addr_split("localhost", h, sizeof h, p, sizeof p), -1);
    assert_int_equal(addr_split("localhost:", h, sizeof h, p, sizeof p), -1);
    assert_int_equal(addr_split("h:4001", h, 1, p, sizeof p), -1);
    assert_int_equal(addr_port("a:0"), 0);
    assert_int_equal(addr_port("a:65535"), 65535);
    assert_int_equal(addr_port("a:65536"), -1);
    assert_int_equal(addr_port("a:4x"), -1);
    assert_int_equal(addr_port("a:-1"), -1);
    assert_int_equal(addr_port("a:123456"), -1);
    struct sockaddr_storage ss;
    socklen_t len = 0;
    char *err = NULL;
    assert_int_equal(addr_resolve("localhost:4001", true, &ss, &len, &err), 0);
    assert_int_equal(ss.ss_family, AF_INET); /* Go's choice for localhost */
    assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 4001);
    assert_int_equal(addr_resolve("nohostport", true, &ss, &len, &err), -1);
    assert_string_equal(err, "invalid address nohostport");
    free(err);
    char out[64];
    addr_numeric_ipv4("localhost:4002", out, sizeof out);
    assert_string_equal(out, "127.0.0.1:4002");
    addr_numeric_ipv4("10.1.2.3:4002", out, sizeof out);
    assert_string_equal(out, "10.1.2.3:4002");
    /* socket addresses as Go's JoinHostPort spells them */
    struct sockaddr_in v4 = {.sin_family = AF_INET, .sin_port = htons(4001)};
    inet_pton(AF_INET, "127.0.0.1", &v4.sin_addr);
    char s[64];
    addr_format((struct sockaddr *)&v4, s, sizeof s);
    assert_string_equal(s, "127.0.0.1:4001");
    struct sockaddr_in6 v6 = {.sin6_family = AF_INET6, .sin6_port = htons(4002)};
    inet_pton(AF_INET6, "::1", &v6.sin6_addr);
    addr_format((struct sockaddr *)&v6, s, sizeof s);
    assert_string_equal(s, "[::1]:4002");
    addr_format(NULL, s, sizeof s);
    assert_string_equal(s, "?");
}

/* Go's time.ParseDuration, case by case (values from Go's own table). */
static void test_duration_parse(void **st) {
    static const struct {
        const char *in;
        int64_t ns;
    } ok[] = {
        {"0", 0}, {"+0", 0}, {"-0", 0}, {"5s", 5000000000LL}, {"30s", 30000000000LL},
        {"1478s", 1478000000000LL}, {"-5s", -5000000000LL}, {"+5s", 5000000000LL},
        {"5.0s", 5000000000LL}, {"5.6s", 5600000000LL}, {"5.s", 5000000000LL}, {".5s", 500000000LL},
        {"1.0s", 1000000000LL}, {"1.00s", 1000000000LL}, {"1.004s", 1004000000LL},
        {"100.00100s", 100001000000LL}, {"10ns", 10}, {"11us", 11000}, {"12\xc2\xb5s", 12000},
        {"12\xce\xbcs", 12000}, {"13ms", 13000000}, {"14s", 14000000000LL}, {"15m", 900000000000LL},
        {"16h", 57600000000000LL}, {"3h30m", 12600000000000LL}, {"10.5s4m", 250500000000LL},
        {"-2m3.4s", -123400000000LL}, {"1h2m3s4ms5us6ns", 3723004005006LL}, {"39h9m14.425s", 140954425000000LL},
        {"52763797000ns", 52763797000LL}, {"0.3333333333333333333h", 1200000000000LL},
        {"9007199254740993ns", 9007199254740993LL}, {"9223372036854775807ns", INT64_MAX},
        {"-9223372036854775808ns", INT64_MIN}, {"1.5s", 1500000000LL}, {"300ms", 300000000LL},
        {"1h2m", 3720000000000LL}, {"500us", 500000},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int64_t ns = 42;
        char err[128] = "";
        assert_int_equal(rq_duration_parse(ok[i].in, &ns, err, sizeof err), 0);
        if (ns != ok[i].ns)
            fail_msg("%s: %lld, want %lld", ok[i].in, (long long)ns, (long long)ok[i].ns);
    }
    static const struct {
        const char *in, *err;
    } bad[] = {
        {"", "time: invalid duration \"\""}, {"3", "time: missing unit in duration \"3\""},
        {"-", "time: invalid duration \"-\""}, {"s", "time: invalid duration \"s\""},
        {".", "time: invalid duration \".\""}, {"-.", "time: invalid duration \"-.\""},
        {".s", "time: invalid duration \".s\""}, {"+.s", "time: invalid duration \"+.s\""},
        {"1d", "time: unknown unit \"d\" in duration \"1d\""},
        {"3000000h", "time: invalid duration \"3000000h\""},
        {"9223372036854775808ns", "time: invalid duration \"9223372036854775808ns\""},
        {"9223372036854775.808us", "time: invalid duration \"9223372036854775.808us\""},
        {"1e3s", "time: unknown unit \"e\" in duration \"1e3s\""}, {"0x10s", "time: unknown unit \"x\" in duration \"0x10s\""},
        {"inf", "time: invalid duration \"inf\""}, {"5 s", "time: unknown unit \" s\" in duration \"5 s\""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t ns = 42;
        char err[128] = "";
        if (rq_duration_parse(bad[i].in, &ns, err, sizeof err) == 0)
            fail_msg("%s: accepted as %lld", bad[i].in, (long long)ns);
        assert_string_equal(err, bad[i].err);
    }
}

/* Go's Duration.String(). */
static void test_duration_format(void **st) {
    static const struct {
        int64_t ns;
        const char *want;
    } cases[] = {
        {0, "0s"}, {1, "1ns"}, {1100, "1.1\xc2\xb5s"}, {2200000, "2.2ms"}, {3300000000LL, "3.3s"},
        {-3300000000LL, "-3.3s"}, {4000000000LL * 60 + 5000000000LL, "4m5s"},
        {4000000000LL * 60 + 5001000000LL, "4m5.001s"}, {5LL * 3600000000000LL + 6LL * 60000000000LL + 7001000000LL, "5h6m7.001s"},
        {8LL * 60000000000LL + 1, "8m0.000000001s"}, {60000000000LL, "1m0s"}, {86400000000000LL, "24h0m0s"},
        {10000000000LL, "10s"}, {50000000, "50ms"}, {500000, "500\xc2\xb5s"},
        {INT64_MAX, "2562047h47m16.854775807s"}, {INT64_MIN, "-2562047h47m16.854775808s"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[48];
        rq_duration_format(cases[i].ns, out, sizeof out);
        assert_string_equal(out, cases[i].want);
    }
}

/* Go's time.Time in JSON (RFC3339Nano, UTC). */
static void test_go_time(void **st) {
    (void)st;
    static const struct {
        int64_t sec;
        long nsec;
        const char *want;
    } cases[] = {
        {0, 0, "1970-01-01T00:00:00Z"},
        {1796321897, 0, "2026-12-03T18:18:17Z"},
        {1796321897, 120000000, "2026-12-03T18:18:17.12Z"},
        {1796321897, 1, "2026-12-03T18:18:17.000000001Z"},
        {1796321897, 999999999, "2026-12-03T18:18:17.999999999Z"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[64];
        rq_go_time(cases[i].sec, cases[i].nsec, out, sizeof out);
        assert_string_equal(out, cases[i].want);
    }
}

/* A job's thread that holds until the test lets it finish. */
typedef struct {
    job *j;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool go;
    int runs;
} jobArg;

static void *jobRun(void *p)
{
    jobArg *a = p;
    pthread_mutex_lock(&a->mu);
    while (!a->go)
        pthread_cond_wait(&a->cv, &a->mu);
    a->runs++;
    a->go = false;
    pthread_mutex_unlock(&a->mu);
    job_done(a->j);
    return NULL;
}

static void test_job(void **st)
{
    (void)st;
    job j = {0};
    jobArg a = {&j, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, 0};
    assert_false(job_busy(&j));
    assert_true(job_start(&j, jobRun, &a));
    assert_true(job_busy(&j));
    assert_false(job_start(&j, jobRun, &a)); /* still under way: not twice */
    pthread_mutex_lock(&a.mu);
    a.go = true;
    pthread_cond_signal(&a.cv);
    pthread_mutex_unlock(&a.mu);
    while (job_busy(&j)) /* bounded by the thread's one step */
        sched_yield();
    assert_true(job_start(&j, jobRun, &a)); /* joins the finished one first */
    pthread_mutex_lock(&a.mu);
    a.go = true;
    pthread_cond_signal(&a.cv);
    pthread_mutex_unlock(&a.mu);
    job_close(&j);
    assert_false(job_busy(&j));
    assert_int_equal(a.runs, 2);
    job_close(&j); /* twice is harmless */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_basics),
        cmocka_unit_test(test_json_str),
        cmocka_unit_test(test_json_numbers),
        cmocka_unit_test(test_json_base64),
        cmocka_unit_test(test_addr),
        cmocka_unit_test(test_duration_parse),
        cmocka_unit_test(test_duration_format),
        cmocka_unit_test(test_go_time),
        cmocka_unit_test(test_job),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
