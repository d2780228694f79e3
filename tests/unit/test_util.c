/* Unit tests for util/: buf and the Go-compatible JSON writers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"

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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_basics),
        cmocka_unit_test(test_json_str),
        cmocka_unit_test(test_json_numbers),
        cmocka_unit_test(test_json_base64),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
