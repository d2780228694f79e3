/*
 * internal: what the db module's files share (not for other modules).
 */
#ifndef RQ_DB_INTERNAL_H
#define RQ_DB_INTERNAL_H

#include <sqlite3.h>
#include <stdint.h>

/* The name of the VFS with a freezable clock (registered on first use). */
const char *det_vfs_name(void);
/* Replace random() and randomblob() on c with a generator over *state. */
int det_install(sqlite3 *c, uint64_t *state);
/* Freeze SQLite's clock on this thread at unix_ms (0: real clock). */
void det_freeze(int64_t unix_ms);

#endif
