/* Unit tests for the shell's rendering: rqlite's exact output bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/render.h"

/* Render into a memory stream and compare. */
static void check_rows(const char *cols, const char *vals, render_mode mode, const char *want)
{
    json_t *c = json_loads(cols, 0, NULL), *v = vals ? json_loads(vals, 0, NULL) : NULL;
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    render_rows(f, c, v, mode);
    fclose(f);
    assert_string_equal(out, want);
    free(out);
    json_decref(c);
    json_decref(v);
}

static void test_table(void **st)
{
    check_rows("[\"id\"]", "[[1]]", MODE_COLUMN, "+----+\n| id |\n+----+\n| 1  |\n+----+\n");
    check_rows("[\"sql\"]", NULL, MODE_COLUMN, "+-----+\n| sql |\n+-----+\n");
    check_rows("[\"sql\"]", "[[\"CREATE TABLE foo (id INT)\"]]", MODE_COLUMN,
               "+---------------------------+\n| sql                       |\n"
               "+---------------------------+\n| CREATE TABLE foo (id INT) |\n"
               "+---------------------------+\n");
    check_rows("[\"a\",\"bb\"]", "[[null,2.5],[true,[1,2]]]", MODE_COLUMN,
               "+-------+-------+\n| a     | bb    |\n+-------+-------+\n| <nil> | 2.5   |\n"
               "+-------+-------+\n| true  | [1 2] |\n+-------+-------+\n");
}

static void test_other_modes(void **st)
{
    check_rows("[\"a\",\"b\"]", "[[1,\"x,y\"],[null,\"q\\\"\"]]", MODE_CSV,
               "a,b\n1,\"x,y\"\nNULL,\"q\"\"\"\n");
    check_rows("[\"id\",\"name\"]", "[[1,\"a\"],[2,\"b\"]]", MODE_LINE,
               "  id = 1\nname = a\n\n  id = 2\nname = b\n");
    check_rows("[\"b\",\"a\"]", "[[1,2]]", MODE_JSON, "[\n  {\n    \"a\": 2,\n    \"b\": 1\n  }\n]\n");
}

static void test_affected_and_floats(void **st)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    render_affected(f, 0);
    render_affected(f, 1);
    render_affected(f, 7);
    fclose(f);
    assert_string_equal(out, "0 row affected\n1 row affected\n7 rows affected\n");
    free(out);
    char b[64];
    render_go_float(b, sizeof b, 12);
    assert_string_equal(b, "12");
    render_go_float(b, sizeof b, 123456);
    assert_string_equal(b, "123456");
    render_go_float(b, sizeof b, 1234567);
    assert_string_equal(b, "1.234567e+06");
    render_go_float(b, sizeof b, 0.5);
    assert_string_equal(b, "0.5");
    render_go_float(b, sizeof b, 0.00001);
    assert_string_equal(b, "1e-05");
}

static void test_kv(void **st)
{
    json_t *doc = json_loads("{\"b\":{\"y\":\"v\",\"x\":[1,\"a\"]},\"a\":true,\"n\":null,\"c\":3}", 0, NULL);
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    render_kv(f, doc, 0);
    fclose(f);
    assert_string_equal(out, "a: true\nb:\n  x: [1 a]\n  y: v\nc: 3\n");
    free(out);
    json_decref(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_other_modes),
        cmocka_unit_test(test_affected_and_floats),
        cmocka_unit_test(test_kv),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
