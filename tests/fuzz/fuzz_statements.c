/* libFuzzer: rqlite's JSON request format into a command (cmd_from_json),
 * and the command's round trips: through a log entry (what followers
 * decode is what the leader built, byte for byte) and back to JSON (what a
 * follower forwards to the leader parses to the same command). */
#include <raft.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "command/command.h"

/* Not assert(): release builds must check too. */
#define CHECK(c) ((c) ? (void)0 : abort())

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *err = NULL;
    cmd_batch b;
    if (cmd_from_json((const char *)data, size, &b, &err) != 0) {
        CHECK(err != NULL);
        free(err);
        return 0;
    }
    cmd_view v = cmd_batch_view(&b);
    CHECK(cmd_valid(&v));
    cmd_entry in = {.origin = 1, .seq = 2, .flags = 3, .unix_ms = 4, .seed = 5, .steps = 6, .stmts = v};
    size_t len = 0;
    unsigned char *entry = cmd_entry_pack(&in, &len); /* compressed when it pays */
    CHECK(entry != NULL);
    cmd_entry out;
    CHECK(cmd_entry_decode(entry, len, &out) == 0);
    CHECK(out.seq == 2 && out.steps == 6 && out.stmts.n == v.n && out.stmts.len == v.len);
    CHECK(v.len == 0 || memcmp(out.stmts.data, v.data, v.len) == 0);
    cmd_entry_free(&out);
    char *json = cmd_to_json(&v);
    CHECK(json != NULL);
    cmd_batch back;
    CHECK(cmd_from_json(json, strlen(json), &back, &err) == 0);
    CHECK(back.n == b.n && back.payload.len == b.payload.len &&
          memcmp(back.payload.data, b.payload.data, b.payload.len) == 0);
    cmd_batch_free(&back);
    free(json);
    free(entry);
    cmd_batch_free(&b);
    return 0;
}
