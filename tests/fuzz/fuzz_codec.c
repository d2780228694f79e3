/* libFuzzer: the decoders of Raft log entries and snapshots (store/codec). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "command/command.h"
#include "store/codec.h"

/* Not assert(): release builds must check too. */
#define CHECK(c) ((c) ? (void)0 : abort())

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cmd_entry ce;
    if (cmd_entry_decode(data, size, &ce) == 0) {
        /* Every statement and parameter lies inside the entry. */
        cmd_iter it;
        cmd_stmt s;
        cmd_iter_init(&it, &ce.stmts);
        uint32_t n = 0;
        while (cmd_next(&it, &s) == 1) {
            n++;
            CHECK(s.sql >= (const char *)data && s.sql + s.sql_len < (const char *)data + size);
            CHECK(s.sql[s.sql_len] == 0 && strlen(s.sql) == s.sql_len);
            cmd_param_iter pi;
            cmd_param p;
            int rc;
            cmd_param_iter_init(&pi, &s);
            while ((rc = cmd_param_next(&pi, &p)) == 1)
                if (p.type == CMD_TEXT || p.type == CMD_BLOB)
                    CHECK((const uint8_t *)p.p >= data && (const uint8_t *)p.p + p.n <= data + size);
            CHECK(rc == 0);
        }
        CHECK(n == ce.stmts.n);
        cmd_entry_free(&ce);
    }
    codec_exec_entry ex;
    if (codec_exec_decode(data, size, &ex) == 0) {
        CHECK(ex.json >= (const char *)data && ex.json + ex.json_len <= (const char *)data + size);
        json_decref(json_loadb(ex.json, ex.json_len, 0, NULL));
    }
    codec_load_entry ld;
    if (codec_load_decode(data, size, &ld) == 0)
        CHECK(ld.image >= data && ld.image + ld.image_len <= data + size);
    codec_snapshot snap;
    if (codec_snap_decode(data, size, &snap) == 0) {
        CHECK(snap.version == 1 || snap.version == 2);
        if (snap.image)
            CHECK(snap.image >= data && snap.image + snap.image_len <= data + size);
        json_decref(snap.metas);
    }
    return 0;
}
