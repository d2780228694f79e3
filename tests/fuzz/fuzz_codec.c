/* libFuzzer: the decoders of Raft log entries and snapshots (store/codec). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/codec.h"

/* Not assert(): release builds must check too. */
#define CHECK(c) ((c) ? (void)0 : abort())

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rq_exec_entry ex;
    if (rq_exec_decode(data, size, &ex) == 0) {
        CHECK(ex.json >= (const char *)data && ex.json + ex.json_len <= (const char *)data + size);
        json_decref(json_loadb(ex.json, ex.json_len, 0, NULL));
    }
    rq_load_entry ld;
    if (rq_load_decode(data, size, &ld) == 0)
        CHECK(ld.image >= data && ld.image + ld.image_len <= data + size);
    rq_snapshot snap;
    if (rq_snap_decode(data, size, &snap) == 0) {
        CHECK(snap.version == 1 || snap.version == 2);
        if (snap.image)
            CHECK(snap.image >= data && snap.image + snap.image_len <= data + size);
        json_decref(snap.metas);
    }
    return 0;
}
