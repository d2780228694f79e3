/*
 * test_metrics.c: histograms (buckets, cumulative output, bad values) and
 * the text format's escaping.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "metrics/metrics.h"

static void test_histogram_buckets_are_cumulative(void **state)
{
    (void)state;
    metrics_hist h = {0};
    metrics_observe(&h, 0.00005);  /* first bucket */
    metrics_observe(&h, 0.0001);   /* on a bound: that bucket (le) */
    metrics_observe(&h, 0.003);    /* 0.005 */
    metrics_observe(&h, 60);       /* beyond the last: +Inf only */
    metrics_observe(&h, -1);       /* a clock that went back: 0 */
    buf b = BUF_INIT;
    metrics_hist_write(&b, "x_seconds", "a=\"1\"", &h);
    assert_non_null(strstr(b.data, "x_seconds_bucket{a=\"1\",le=\"0.0001\"} 3\n"));
    assert_non_null(strstr(b.data, "x_seconds_bucket{a=\"1\",le=\"0.0025\"} 3\n"));
    assert_non_null(strstr(b.data, "x_seconds_bucket{a=\"1\",le=\"0.005\"} 4\n"));
    assert_non_null(strstr(b.data, "x_seconds_bucket{a=\"1\",le=\"10\"} 4\n"));
    assert_non_null(strstr(b.data, "x_seconds_bucket{a=\"1\",le=\"+Inf\"} 5\n"));
    assert_non_null(strstr(b.data, "x_seconds_count{a=\"1\"} 5\n"));
    assert_non_null(strstr(b.data, "x_seconds_sum{a=\"1\"} 60.00315"));
    buf_free(&b);
}

static void test_families_and_escaping(void **state)
{
    (void)state;
    buf b = BUF_INIT;
    metrics_family(&b, "a_total", "counter", "back\\slash\nnewline");
    buf l = BUF_INIT;
    metrics_label(&l, "path", "/x\"y\\z\n");
    metrics_label(&l, "code", "200");
    metrics_sample(&b, "a_total", l.data, 3);
    metrics_sample(&b, "b", "", 0.5);
    metrics_sample(&b, "c", NULL, 1e300 * 1e300);
    assert_string_equal(b.data, "# HELP a_total back\\\\slash\\nnewline\n# TYPE a_total counter\n"
                                "a_total{path=\"/x\\\"y\\\\z\\n\",code=\"200\"} 3\nb 0.5\nc +Inf\n");
    buf_free(&l);
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_histogram_buckets_are_cumulative),
        cmocka_unit_test(test_families_and_escaping),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
