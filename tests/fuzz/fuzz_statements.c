/* libFuzzer: the JSON request parser (db_parse_request), the pragma filter,
 * and the statements' round trip through an execute log entry. */
#include <raft.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "db/db.h"
#include "store/codec.h"

/* Not assert(): release builds must check too. */
#define CHECK(c) ((c) ? (void)0 : abort())

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *err = NULL;
    json_t *stmts = db_parse_request((const char *)data, size, &err);
    free(err);
    if (stmts == NULL)
        return 0;
    (void)db_has_disallowed_pragma(stmts);
    char *text = json_dumps(stmts, JSON_COMPACT);
    CHECK(text != NULL);
    rq_exec_entry in = {.origin = 1, .seq = 2, .flags = 3, .ms = 4, .seed = 5, .json = text,
                        .json_len = strlen(text)};
    size_t len = 0;
    void *entry = rq_exec_encode(&in, &len);
    rq_exec_entry out;
    CHECK(rq_exec_decode(entry, len, &out) == 0);
    CHECK(out.seq == 2 && out.json_len == in.json_len && memcmp(out.json, text, in.json_len) == 0);
    json_t *back = json_loadb(out.json, out.json_len, 0, NULL);
    CHECK(back != NULL && json_equal(back, stmts)); /* followers apply what the leader parsed */
    json_decref(back);
    raft_free(entry);
    free(text);
    json_decref(stmts);
    return 0;
}
