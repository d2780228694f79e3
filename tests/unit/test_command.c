/* Unit tests for command: rqlite's JSON request format into a command, the
 * binary encoding (payload and log entry) and its round trips, and the
 * decoder's refusal of malformed bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "command/command.h"

static void parseOk(const char *body, size_t len, cmd_batch *b)
{
    char *err = NULL;
    if (cmd_from_json(body, len, b, &err) != 0)
        fail_msg("parse %s: %s", body, err);
}

static void test_parse_errors(void **state)
{
    struct {
        const char *body, *err;
    } cases[] = {
        {"", "invalid request"},
        {"{}", "invalid request"},
        {"  [", "invalid JSON body"},
        {"[]", "no statements"},
        {"[1]", "invalid request"},
        {"[[]]", "invalid request"},
        {"[[1, 2]]", "invalid request"},
        {"[[\"SELECT ?\", {\"a\": {\"b\": 1}}]]", "unsupported type"},
        {"[[\"SELECT ?\", [1, 300]]]", "unsupported type"},
        {"[[\"SELECT ?\", [\"a\"]]]", "unsupported type"},
        {"[\"SELECT 1\\u0000\"]", "invalid request: SQL text contains a NUL byte"},
        {"[[\"SELECT ?\\u0000\", 1]]", "invalid request: SQL text contains a NUL byte"},
        {"[\"SELECT 1\"]\n\n\n\n", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *err = NULL;
        cmd_batch b;
        int rc = cmd_from_json(cases[i].body, strlen(cases[i].body), &b, &err);
        if (cases[i].err == NULL) {
            assert_int_equal(rc, 0);
            cmd_batch_free(&b);
            continue;
        }
        assert_int_equal(rc, -1);
        assert_string_equal(err, cases[i].err);
        free(err);
    }
    /* A raw NUL byte is not JSON; after the array neither is anything else. */
    const char raw[] = "[\"SELECT 1\"]\0";
    char *err = NULL;
    cmd_batch b;
    assert_int_equal(cmd_from_json(raw, sizeof raw - 1, &b, &err), -1);
    assert_string_equal(err, "invalid JSON body");
    free(err);
    /* Plain SQL text: no NUL, valid UTF-8. */
    err = NULL;
    assert_int_equal(cmd_from_sql("SELECT 1\0", 9, &b, &err), -1);
    assert_string_equal(err, "invalid request: SQL text contains a NUL byte");
    free(err);
    err = NULL;
    assert_int_equal(cmd_from_sql("SELECT '\xff'", 10, &b, &err), -1);
    assert_string_equal(err, "invalid request: SQL text is not valid UTF-8");
    free(err);
    assert_int_equal(cmd_from_sql("SELECT 'é'", strlen("SELECT 'é'"), &b, &err), 0);
    cmd_batch_free(&b);
}

/* The parameters of the only statement of b, as text for comparison. */
static void describe(const cmd_batch *b, char *out, size_t cap)
{
    cmd_view v = cmd_batch_view(b);
    cmd_iter it;
    cmd_stmt s;
    size_t n = 0;
    cmd_iter_init(&it, &v);
    while (cmd_next(&it, &s) == 1) {
        n += (size_t)snprintf(out + n, cap - n, "[%s]", s.sql);
        cmd_param_iter pi;
        cmd_param p;
        cmd_param_iter_init(&pi, &s);
        while (cmd_param_next(&pi, &p) == 1) {
            if (p.name)
                n += (size_t)snprintf(out + n, cap - n, " %s=", p.name);
            else
                n += (size_t)snprintf(out + n, cap - n, " ");
            switch (p.type) {
            case CMD_NULL: n += (size_t)snprintf(out + n, cap - n, "null"); break;
            case CMD_INT: n += (size_t)snprintf(out + n, cap - n, "i%lld", (long long)p.i); break;
            case CMD_REAL: n += (size_t)snprintf(out + n, cap - n, "r%g", p.r); break;
            case CMD_TEXT:
            case CMD_BLOB:
                n += (size_t)snprintf(out + n, cap - n, "%c%zu:", p.type == CMD_TEXT ? 't' : 'b', p.n);
                for (size_t k = 0; k < p.n; k++)
                    n += (size_t)snprintf(out + n, cap - n, "%02x", ((const unsigned char *)p.p)[k]);
                break;
            }
        }
    }
}

static void test_types(void **state)
{
    const char body[] = "[[\"INSERT INTO t VALUES(?,?,?,?,?,?,?,?,?)\", 1, -2.5, true, false, null, "
                        "\"a\\u0000b\", \"x'00FF'\", [0, 255], \"x'0g'\"], "
                        "[\"SELECT :a, @b\", {\"a\": 7}, 3, {\"b\": \"z\"}]]";
    cmd_batch b;
    parseOk(body, sizeof body - 1, &b);
    assert_int_equal(b.n, 2);
    char got[512];
    describe(&b, got, sizeof got);
    assert_string_equal(got, "[INSERT INTO t VALUES(?,?,?,?,?,?,?,?,?)] i1 r-2.5 i1 i0 null t3:610062 b2:00ff b2:00ff "
                             "t5:7827306727[SELECT :a, @b] a=i7 i3 b=t1:7a");
    cmd_batch_free(&b);
}

/* JSON -> command -> log entry -> decoded command, and command -> JSON ->
 * command: byte-identical each time (what followers apply, and what a
 * follower forwards, is what the leader parsed). */
static void test_round_trips(void **state)
{
    const char body[] = "[\"CREATE TABLE t (v)\", [\"INSERT INTO t VALUES(?)\", \"\\u0000\\u0000\"], "
                        "[\"SELECT ?, :n\", 9223372036854775807, {\"n\": [1, 2, 3]}], "
                        "[\"SELECT ?\", 1e300], [\"SELECT ?\", \"x'AbCd'\"]]";
    cmd_batch b;
    parseOk(body, sizeof body - 1, &b);
    cmd_view v = cmd_batch_view(&b);
    assert_true(cmd_valid(&v));
    cmd_entry e = {.origin = 1, .seq = 2, .flags = 3, .unix_ms = 4, .seed = 5, .steps = 6, .stmts = v};
    size_t len = cmd_entry_size(v.len);
    assert_int_equal(len % 8, 0);
    unsigned char *entry = malloc(len);
    cmd_entry_encode(&e, entry);
    cmd_entry d;
    assert_int_equal(cmd_entry_decode(entry, len, &d), 0);
    assert_int_equal(d.origin, 1);
    assert_int_equal(d.seq, 2);
    assert_int_equal(d.flags, 3);
    assert_int_equal(d.unix_ms, 4);
    assert_int_equal(d.seed, 5);
    assert_int_equal(d.steps, 6);
    assert_int_equal(d.stmts.n, v.n);
    assert_int_equal(d.stmts.len, v.len);
    assert_memory_equal(d.stmts.data, v.data, v.len);
    char *json = cmd_to_json(&v);
    cmd_batch back;
    parseOk(json, strlen(json), &back);
    assert_int_equal(back.n, b.n);
    assert_int_equal(back.payload.len, b.payload.len);
    assert_memory_equal(back.payload.data, b.payload.data, b.payload.len);
    /* Two payloads concatenate into one (queued writes merge this way). */
    cmd_batch m;
    cmd_batch_init(&m);
    cmd_batch_concat(&m, &v);
    cmd_batch_concat(&m, &v);
    cmd_view mv = cmd_batch_view(&m);
    assert_int_equal(m.n, 2 * b.n);
    assert_true(cmd_valid(&mv));
    cmd_batch_free(&m);
    cmd_batch_free(&back);
    free(json);
    free(entry);
    cmd_batch_free(&b);
}

/* Every prefix and every single-byte change of an entry either decodes to
 * something well-formed or is refused: nothing reads outside the bytes. */
static void test_malformed(void **state)
{
    const char body[] = "[[\"SELECT ?, :a\", \"text\", {\"a\": [1, 2]}], \"SELECT 2\"]";
    cmd_batch b;
    parseOk(body, sizeof body - 1, &b);
    cmd_view v = cmd_batch_view(&b);
    cmd_entry e = {.stmts = v};
    size_t len = cmd_entry_size(v.len);
    unsigned char *entry = malloc(len);
    cmd_entry_encode(&e, entry);
    cmd_entry d;
    for (size_t n = 0; n < len; n++) {
        unsigned char *copy = malloc(n ? n : 1);
        memcpy(copy, entry, n);
        int rc = cmd_entry_decode(copy, n, &d);
        assert_true(n < 8 ? rc == 1 : rc == -1 || (rc == 0 && n >= CMD_ENTRY_HDR + v.len));
        free(copy);
    }
    int ok = 0, refused = 0;
    for (size_t i = 8; i < len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            entry[i] ^= (unsigned char)(1 << bit);
            int rc = cmd_entry_decode(entry, len, &d);
            if (rc == 0) {
                ok++;
                assert_true(cmd_valid(&d.stmts));
            } else {
                refused++;
            }
            entry[i] ^= (unsigned char)(1 << bit);
        }
    }
    assert_true(refused > 0 && ok > 0);
    /* The wrong count, a missing terminator, an unknown tag. */
    cmd_view bad = v;
    bad.n = v.n + 1;
    assert_false(cmd_valid(&bad));
    bad.n = v.n - 1;
    assert_false(cmd_valid(&bad));
    unsigned char *p = malloc(v.len);
    memcpy(p, v.data, v.len);
    cmd_view pv = {p, v.len, v.n};
    p[1 + strlen("SELECT ?, :a")] = 'x'; /* the SQL's terminator */
    assert_false(cmd_valid(&pv));
    free(p);
    assert_int_equal(cmd_entry_decode("RQEXEC01", 8, &d), 1);
    free(entry);
    cmd_batch_free(&b);
}

/* Building by hand: any bytes in text and blobs, counts past one byte. */
static void test_builder(void **state)
{
    cmd_batch b;
    cmd_batch_init(&b);
    char *err = NULL;
    assert_int_equal(cmd_add_stmt(&b, "SELECT 1", 8, &err), 0);
    for (int i = 0; i < 300; i++)
        cmd_add_int(&b, NULL, i);
    cmd_add_text(&b, "n", "\xff\x00", 2);
    assert_int_equal(cmd_add_stmt(&b, "", 0, &err), 0);
    cmd_view v = cmd_batch_view(&b);
    assert_true(cmd_valid(&v));
    cmd_iter it;
    cmd_stmt s;
    cmd_iter_init(&it, &v);
    assert_int_equal(cmd_next(&it, &s), 1);
    assert_int_equal(s.n_params, 301);
    assert_int_equal(cmd_next(&it, &s), 1);
    assert_int_equal(s.sql_len, 0);
    assert_int_equal(cmd_next(&it, &s), 0);
    cmd_batch_free(&b);
}

/* Entries compress (LZ4) above CMD_COMPRESS_MIN when it pays, and decode
 * to the same payload; damaged compressed entries are refused. */
static void test_compression(void **state)
{
    char *err = NULL;
    cmd_batch bulk, small, noise;
    cmd_batch_init(&bulk);
    cmd_batch_init(&small);
    cmd_batch_init(&noise);
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(cmd_add_stmt(&bulk, "INSERT INTO b(v) VALUES(?)", 26, &err), 0);
        cmd_add_text(&bulk, NULL, "bulk row", 8);
    }
    assert_int_equal(cmd_add_stmt(&small, "INSERT INTO t VALUES(1)", 23, &err), 0);
    assert_int_equal(cmd_add_stmt(&noise, "INSERT INTO t VALUES(?)", 23, &err), 0);
    unsigned char rnd[8192];
    uint64_t x = 88172645463325252ULL;
    for (size_t i = 0; i < sizeof rnd; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        rnd[i] = (unsigned char)x;
    }
    cmd_add_blob(&noise, NULL, rnd, sizeof rnd);
    cmd_batch *cases[] = {&bulk, &small, &noise};
    int encodings[] = {CMD_LZ4, 0, 0};
    json_t *before = command_vars();
    for (int k = 0; k < 3; k++) {
        cmd_view v = cmd_batch_view(cases[k]);
        cmd_entry e = {.origin = 7, .seq = 8, .steps = 9, .stmts = v};
        size_t len = 0;
        unsigned char *p = cmd_entry_pack(&e, &len);
        assert_non_null(p);
        assert_int_equal(len % 8, 0);
        unsigned encoding = p[60] | p[61] << 8;
        assert_int_equal(encoding, encodings[k]);
        assert_int_equal(cmd_entry_compressed(p, len), encoding == CMD_LZ4);
        if (encoding == CMD_LZ4)
            assert_true(len * 20 < v.len); /* 1,000 repeated rows shrink a lot */
        cmd_entry d;
        assert_int_equal(cmd_entry_decode(p, len, &d), 0);
        assert_int_equal(d.seq, 8);
        assert_int_equal(d.stmts.n, v.n);
        assert_int_equal(d.stmts.len, v.len);
        assert_memory_equal(d.stmts.data, v.data, v.len);
        assert_true(encoding == CMD_LZ4 ? d.owned != NULL : d.owned == NULL);
        cmd_entry_free(&d);
        if (encoding == CMD_LZ4) {
            /* The claimed size wrong, absurd, or the block damaged. */
            unsigned char *q = malloc(len);
            memcpy(q, p, len);
            q[CMD_ENTRY_HDR] ^= 1;
            assert_int_equal(cmd_entry_decode(q, len, &d), -1);
            memcpy(q, p, len);
            q[CMD_ENTRY_HDR + 7] = 0x7f;
            assert_int_equal(cmd_entry_decode(q, len, &d), -1);
            for (size_t i = CMD_ENTRY_HDR + 8; i < len; i++) {
                memcpy(q, p, len);
                q[i] ^= 0x55;
                int rc = cmd_entry_decode(q, len, &d);
                assert_true(rc == -1 || rc == 0);
                if (rc == 0)
                    cmd_entry_free(&d);
            }
            free(q);
        }
        free(p);
    }
    /* rqlite's proto counters: three entries packed, one compressed, one
     * too small to try, one (random bytes) not worth it. */
    json_t *after = command_vars();
#define DELTA(k) (json_integer_value(json_object_get(after, k)) - json_integer_value(json_object_get(before, k)))
    assert_int_equal(json_object_size(after), 7);
    assert_int_equal(DELTA("num_requests"), 3);
    assert_int_equal(DELTA("num_compressed_requests"), 1);
    assert_int_equal(DELTA("num_uncompressed_requests"), 1);
    assert_int_equal(DELTA("num_compression_misses"), 1);
    size_t all = cmd_batch_view(&bulk).len + cmd_batch_view(&small).len + cmd_batch_view(&noise).len;
    assert_int_equal(DELTA("num_precompressed_bytes"), all);
    assert_int_equal(DELTA("num_uncompressed_bytes"), cmd_batch_view(&small).len);
    assert_true(DELTA("num_compressed_bytes") > 0 && DELTA("num_compressed_bytes") * 20 < (long long)all);
#undef DELTA
    json_decref(before);
    json_decref(after);
    json_t *sp = command_sql_vars();
    assert_int_equal(json_object_size(sp), 2);
    json_decref(sp);
    cmd_batch_free(&bulk);
    cmd_batch_free(&small);
    cmd_batch_free(&noise);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_errors), cmocka_unit_test(test_types), cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_malformed),   cmocka_unit_test(test_builder),
        cmocka_unit_test(test_compression),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
