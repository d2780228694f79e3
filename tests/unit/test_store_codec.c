/*
 * store/codec: what the store writes to the Raft log and to snapshots
 * decodes to what was encoded; truncated and corrupted input is refused
 * (never read past its end); the formats older versions wrote (RQSNAP01
 * snapshots, RQEXEC01 and JSON execute entries) still decode.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <raft.h>

#include "store/codec.h"
#include "util/le.h"

/* A heap copy of the first n bytes of p, so that ASan sees any read past
 * n (the decoders are given exactly n). */
static unsigned char *prefix(const void *p, size_t n)
{
    unsigned char *c = malloc(n ? n : 1);
    memcpy(c, p, n);
    return c;
}

static void test_snap_round_trip(void **state)
{
    (void)state;
    json_t *metas = json_pack("[{s:s,s:I,s:s,s:s}]", "id", "n1", "rid", (json_int_t)42, "addr", "h:4002", "api",
                              "http://h:4001");
    codec_snapshot in = {.raft_index = 1234567, .db_index = 1234500, .metas = metas};
    size_t len = 0;
    unsigned char *p = codec_snap_encode(&in, &len);
    assert_non_null(p);
    assert_memory_equal(p, CODEC_SNAP_MAGIC, 8);
    size_t mlen = (size_t)p[8] << 24 | (size_t)p[9] << 16 | (size_t)p[10] << 8 | p[11];
    assert_int_equal(len, CODEC_SNAP_HDR + mlen);
    assert_int_equal(metas->refcount, 1); /* borrowed, not stolen */

    codec_snapshot out;
    assert_int_equal(codec_snap_decode(p, len, &out), 0);
    assert_int_equal(out.version, 2);
    assert_int_equal(out.raft_index, 1234567);
    assert_int_equal(out.db_index, 1234500);
    assert_true(json_equal(out.metas, metas));
    assert_null(out.image);
    json_decref(out.metas);
    json_decref(metas);
    raft_free(p);
}

static void test_snap_without_metas(void **state)
{
    (void)state;
    codec_snapshot in = {.raft_index = 7, .db_index = 5};
    size_t len = 0;
    unsigned char *p = codec_snap_encode(&in, &len);
    assert_non_null(p);
    assert_int_equal(len, CODEC_SNAP_HDR + strlen("{\"i\":7,\"d\":5}"));
    assert_memory_equal(p + CODEC_SNAP_HDR, "{\"i\":7,\"d\":5}", len - CODEC_SNAP_HDR);
    codec_snapshot out;
    assert_int_equal(codec_snap_decode(p, len, &out), 0);
    assert_int_equal(out.db_index, 5);
    assert_null(out.metas);
    raft_free(p);
}

static void test_snap_truncated(void **state)
{
    (void)state;
    json_t *metas = json_array();
    codec_snapshot in = {.raft_index = 10, .db_index = 9, .metas = metas};
    size_t len = 0;
    unsigned char *p = codec_snap_encode(&in, &len);
    for (size_t n = 0; n < len; n++) {
        unsigned char *c = prefix(p, n);
        codec_snapshot out;
        assert_int_equal(codec_snap_decode(c, n, &out), -1);
        assert_null(out.metas);
        free(c);
    }
    codec_snapshot out;
    assert_int_equal(codec_snap_decode(NULL, 0, &out), -1);
    json_decref(metas);
    raft_free(p);
}

static void test_snap_corrupted(void **state)
{
    (void)state;
    codec_snapshot in = {.raft_index = 10, .db_index = 9};
    size_t len = 0;
    unsigned char *p = codec_snap_encode(&in, &len);
    codec_snapshot out;

    unsigned char *c = prefix(p, len);
    c[7] = '9'; /* "RQSNAP09": no such format */
    assert_int_equal(codec_snap_decode(c, len, &out), -1);
    free(c);

    c = prefix(p, len);
    c[8] = 0x80; /* a length past the end */
    assert_int_equal(codec_snap_decode(c, len, &out), -1);
    free(c);

    c = prefix(p, len);
    c[CODEC_SNAP_HDR] = '['; /* not a JSON object */
    assert_int_equal(codec_snap_decode(c, len, &out), -1);
    free(c);

    static const unsigned char arr[] = "RQSNAP02\0\0\0\3[1]";
    assert_int_equal(codec_snap_decode(arr, sizeof arr - 1, &out), -1);
    raft_free(p);
}

/* An old-format snapshot: the metadata array, then the database inline. */
static void test_snap_legacy_v1(void **state)
{
    (void)state;
    const char *m = "[{\"id\":\"n1\",\"rid\":1,\"addr\":\"a\",\"api\":\"b\"}]";
    const char image[] = "SQLite format 3\0 and the rest";
    size_t mlen = strlen(m), len = CODEC_SNAP_HDR + mlen + sizeof image;
    unsigned char *p = malloc(len);
    memcpy(p, CODEC_SNAP_MAGIC_V1, 8);
    p[8] = p[9] = p[10] = 0;
    p[11] = (unsigned char)mlen;
    memcpy(p + CODEC_SNAP_HDR, m, mlen);
    memcpy(p + CODEC_SNAP_HDR + mlen, image, sizeof image);

    codec_snapshot out;
    assert_int_equal(codec_snap_decode(p, len, &out), 0);
    assert_int_equal(out.version, 1);
    assert_true(json_is_array(out.metas));
    assert_string_equal(json_string_value(json_object_get(json_array_get(out.metas, 0), "id")), "n1");
    assert_ptr_equal(out.image, p + CODEC_SNAP_HDR + mlen);
    assert_int_equal(out.image_len, sizeof image);
    assert_memory_equal(out.image, image, sizeof image);
    json_decref(out.metas);

    /* An empty image is an image; a length past the end is not. */
    assert_int_equal(codec_snap_decode(p, CODEC_SNAP_HDR + mlen, &out), 0);
    assert_int_equal(out.image_len, 0);
    json_decref(out.metas);
    assert_int_equal(codec_snap_decode(p, CODEC_SNAP_HDR + mlen - 1, &out), -1);
    free(p);
}

static void test_load_round_trip(void **state)
{
    (void)state;
    for (size_t n = 0; n < 20; n++) {
        unsigned char image[20];
        for (size_t i = 0; i < n; i++)
            image[i] = (unsigned char)(0xA0 + i);
        codec_load_entry in = {.origin = 0x7fffffffffffffffULL, .seq = 99, .image = image, .image_len = n};
        size_t len = 0;
        unsigned char *p = codec_load_encode(&in, &len);
        assert_non_null(p);
        assert_int_equal(len, codec_load_size(n));
        assert_int_equal(len % 8, 0);
        assert_true(len >= CODEC_LOAD_HDR + n && len < CODEC_LOAD_HDR + n + 8);
        for (size_t i = CODEC_LOAD_HDR + n; i < len; i++)
            assert_int_equal(p[i], 0); /* zero padding */

        codec_load_entry out;
        assert_int_equal(codec_load_decode(p, len, &out), 0);
        assert_int_equal(out.origin, in.origin);
        assert_int_equal(out.seq, 99);
        assert_int_equal(out.image_len, n);
        assert_ptr_equal(out.image, p + CODEC_LOAD_HDR);
        if (n)
            assert_memory_equal(out.image, image, n);
        raft_free(p);
    }
}

static void test_load_truncated_and_corrupted(void **state)
{
    (void)state;
    const unsigned char image[] = "0123456789abcdef";
    codec_load_entry in = {.origin = 1, .seq = 2, .image = image, .image_len = sizeof image};
    size_t len = 0;
    unsigned char *p = codec_load_encode(&in, &len);
    codec_load_entry out;
    for (size_t n = 0; n < CODEC_LOAD_HDR + sizeof image; n++) {
        unsigned char *c = prefix(p, n);
        /* Too short to have the magic: not a load entry; else malformed. */
        assert_int_equal(codec_load_decode(c, n, &out), n < 8 ? 1 : -1);
        free(c);
    }
    unsigned char *c = prefix(p, len);
    le64_put(c + 24, UINT64_MAX); /* a length past the end */
    assert_int_equal(codec_load_decode(c, len, &out), -1);
    le64_put(c + 24, len - CODEC_LOAD_HDR + 1);
    assert_int_equal(codec_load_decode(c, len, &out), -1);
    memcpy(c, CODEC_EXEC_MAGIC, 8); /* another entry */
    assert_int_equal(codec_load_decode(c, len, &out), 1);
    free(c);
    raft_free(p);
}

/* Entries are told apart by their magic: each decoder leaves the others'. */
static void test_decoders_leave_others(void **state)
{
    (void)state;
    const unsigned char image[] = "img";
    codec_load_entry ld = {.origin = 1, .seq = 2, .image = image, .image_len = 3};
    size_t len = 0;
    unsigned char *p = codec_load_encode(&ld, &len);
    codec_exec_entry ex;
    assert_int_equal(codec_exec_decode(p, len, &ex), 1);
    codec_snapshot snap;
    assert_int_equal(codec_snap_decode(p, len, &snap), -1);
    raft_free(p);

    codec_exec_entry e = {.origin = 1, .json = "[]", .json_len = 2};
    p = codec_exec_encode(&e, &len);
    assert_int_equal(codec_load_decode(p, len, &ld), 1);
    raft_free(p);
}

static void test_exec_legacy(void **state)
{
    (void)state;
    const char *json = "[\"INSERT INTO t VALUES(1)\"]";
    codec_exec_entry in = {.origin = 5, .seq = 6, .flags = 7, .ms = 1700000000000ULL, .seed = 8, .json = json,
                        .json_len = strlen(json)};
    size_t len = 0;
    unsigned char *p = codec_exec_encode(&in, &len);
    assert_non_null(p);
    assert_int_equal(len % 8, 0);
    assert_memory_equal(p, CODEC_EXEC_MAGIC, 8);

    codec_exec_entry out;
    assert_int_equal(codec_exec_decode(p, len, &out), 0);
    assert_int_equal(out.origin, 5);
    assert_int_equal(out.seq, 6);
    assert_int_equal(out.flags, 7);
    assert_int_equal(out.ms, 1700000000000ULL);
    assert_int_equal(out.seed, 8);
    assert_int_equal(out.json_len, strlen(json));
    assert_memory_equal(out.json, json, strlen(json));

    for (size_t n = 0; n < CODEC_EXEC_HDR + strlen(json); n++) {
        unsigned char *c = prefix(p, n);
        assert_int_equal(codec_exec_decode(c, n, &out), n < 8 ? 1 : -1);
        free(c);
    }
    le64_put(p + 48, UINT64_MAX);
    assert_int_equal(codec_exec_decode(p, len, &out), -1);
    raft_free(p);
}

static void test_exec_legacy_json(void **state)
{
    (void)state;
    const char *text = "{\"t\":\"x\",\"o\":3,\"s\":4,\"f\":1,\"ts\":1700000000000,\"r\":9,"
                       "\"q\":[\"SELECT 1\"]}";
    json_t *e = json_loadb(text, strlen(text), 0, NULL);
    assert_non_null(e);
    codec_exec_entry x;
    char *q = codec_jexec_decode(e, &x);
    assert_non_null(q);
    assert_ptr_equal(x.json, q);
    assert_string_equal(q, "[\"SELECT 1\"]");
    assert_int_equal(x.json_len, strlen(q));
    assert_int_equal(x.origin, 3);
    assert_int_equal(x.seq, 4);
    assert_int_equal(x.flags, 1);
    assert_int_equal(x.ms, 1700000000000ULL);
    assert_int_equal(x.seed, 9);
    free(q);
    json_decref(e);

    e = json_pack("{s:s}", "t", "x"); /* no statements: read as none */
    q = codec_jexec_decode(e, &x);
    assert_non_null(q);
    assert_string_equal(q, "");
    free(q);
    json_decref(e);

    e = json_pack("{s:s}", "t", "m");
    assert_null(codec_jexec_decode(e, &x));
    json_decref(e);
}

static void test_meta_round_trip(void **state)
{
    (void)state;
    codec_meta_entry in = {.id = "node-1", .rid = 0x123456789ULL, .addr = "10.0.0.1:4002", .api = NULL};
    size_t len = 0;
    char *p = codec_meta_encode(&in, &len);
    assert_non_null(p);
    assert_int_equal(len % 8, 0);
    json_t *e = json_loadb(p, len, 0, NULL); /* the padding is JSON whitespace */
    assert_non_null(e);
    codec_meta_entry out;
    assert_int_equal(codec_meta_decode(e, &out), 0);
    assert_string_equal(out.id, "node-1");
    assert_int_equal(out.rid, 0x123456789ULL);
    assert_string_equal(out.addr, "10.0.0.1:4002");
    assert_string_equal(out.api, "");
    codec_exec_entry x;
    assert_null(codec_jexec_decode(e, &x));
    json_decref(e);
    raft_free(p);

    e = json_pack("{s:s}", "t", "x");
    assert_int_equal(codec_meta_decode(e, &out), 1);
    json_decref(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_snap_round_trip),
        cmocka_unit_test(test_snap_without_metas),
        cmocka_unit_test(test_snap_truncated),
        cmocka_unit_test(test_snap_corrupted),
        cmocka_unit_test(test_snap_legacy_v1),
        cmocka_unit_test(test_load_round_trip),
        cmocka_unit_test(test_load_truncated_and_corrupted),
        cmocka_unit_test(test_decoders_leave_others),
        cmocka_unit_test(test_exec_legacy),
        cmocka_unit_test(test_exec_legacy_json),
        cmocka_unit_test(test_meta_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
