/*
 * pretty: re-indent compact JSON the way Go's json.MarshalIndent(v, "", "    ")
 * does (rqlite's ?pretty): 4-space indents, "key": value, empty containers
 * kept as {} and [], no trailing newline.
 */
#ifndef RQ_HTTP_PRETTY_H
#define RQ_HTTP_PRETTY_H

#include <stddef.h>

#include "util/buf.h"

void pretty_json(const char *in, size_t n, buf *out);

#endif
