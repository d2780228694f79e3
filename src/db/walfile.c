/*
 * walfile.c: the WAL files of our connections, as the default VFS opens
 * them, with one sync added.
 *
 * The write connection runs with synchronous=OFF, as rqlite's does, and
 * makes every checkpoint itself with the syncs synchronous=NORMAL would
 * make around it (dbCheckpoint). NORMAL makes one more: when a checkpoint
 * has copied the whole WAL, the next transaction starts the WAL over from
 * its beginning with a new header (new salts), and that header is synced
 * before any frame is written over the old ones. Without it a power loss
 * could leave the old header with some of the old frames still valid
 * after it, which recovery would lay over a database that already holds
 * newer versions of their pages. The VFS has no notion of "the header",
 * but SQLite writes it alone, at offset 0 of the WAL, and only then: that
 * write is followed by a sync here.
 */
#include <sqlite3.h>
#include <string.h>

#include "db/internal.h"

/* Our file object: the default VFS's own follows it in the same block. */
typedef struct walFile {
    sqlite3_file base; /* pMethods: walMethods */
    sqlite3_file *real;
} walFile;

#define REAL(f) (((walFile *)(f))->real)

static int walClose(sqlite3_file *f)
{
    int rc = REAL(f)->pMethods->xClose(REAL(f));
    f->pMethods = NULL;
    return rc;
}

static int walRead(sqlite3_file *f, void *p, int n, sqlite3_int64 off)
{
    return REAL(f)->pMethods->xRead(REAL(f), p, n, off);
}

/* The one change: the header, written at offset 0, is synced at once. */
static int walWrite(sqlite3_file *f, const void *p, int n, sqlite3_int64 off)
{
    int rc = REAL(f)->pMethods->xWrite(REAL(f), p, n, off);
    if (rc == SQLITE_OK && off == 0)
        rc = REAL(f)->pMethods->xSync(REAL(f), SQLITE_SYNC_NORMAL);
    return rc;
}

static int walTruncate(sqlite3_file *f, sqlite3_int64 size)
{
    return REAL(f)->pMethods->xTruncate(REAL(f), size);
}

static int walSync(sqlite3_file *f, int flags)
{
    return REAL(f)->pMethods->xSync(REAL(f), flags);
}

static int walFileSize(sqlite3_file *f, sqlite3_int64 *size)
{
    return REAL(f)->pMethods->xFileSize(REAL(f), size);
}

static int walLock(sqlite3_file *f, int level)
{
    return REAL(f)->pMethods->xLock(REAL(f), level);
}

static int walUnlock(sqlite3_file *f, int level)
{
    return REAL(f)->pMethods->xUnlock(REAL(f), level);
}

static int walCheckReserved(sqlite3_file *f, int *out)
{
    return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}

static int walFileControl(sqlite3_file *f, int op, void *arg)
{
    return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}

static int walSectorSize(sqlite3_file *f)
{
    return REAL(f)->pMethods->xSectorSize(REAL(f));
}

static int walDeviceCharacteristics(sqlite3_file *f)
{
    return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}

/* A WAL file has no shared memory or memory map of its own (the database
 * file has them): these are never called, but must exist in version 3. */
static int walShmMap(sqlite3_file *f, int pg, int sz, int extend, void volatile **pp)
{
    return REAL(f)->pMethods->xShmMap(REAL(f), pg, sz, extend, pp);
}

static int walShmLock(sqlite3_file *f, int off, int n, int flags)
{
    return REAL(f)->pMethods->xShmLock(REAL(f), off, n, flags);
}

static void walShmBarrier(sqlite3_file *f)
{
    REAL(f)->pMethods->xShmBarrier(REAL(f));
}

static int walShmUnmap(sqlite3_file *f, int del)
{
    return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}

static int walFetch(sqlite3_file *f, sqlite3_int64 off, int n, void **pp)
{
    return REAL(f)->pMethods->xFetch(REAL(f), off, n, pp);
}

static int walUnfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
    return REAL(f)->pMethods->xUnfetch(REAL(f), off, p);
}

static const sqlite3_io_methods walMethods = {
    3,           walClose,         walRead,          walWrite,        walTruncate,    walSync,
    walFileSize, walLock,          walUnlock,        walCheckReserved, walFileControl, walSectorSize,
    walDeviceCharacteristics,      walShmMap,        walShmLock,      walShmBarrier,  walShmUnmap,
    walFetch,    walUnfetch,
};

int dbWalFileSize(sqlite3_vfs *base)
{
    return (int)sizeof(walFile) + base->szOsFile;
}

int dbWalOpen(sqlite3_vfs *base, sqlite3_filename name, sqlite3_file *f, int flags, int *out)
{
    walFile *w = (walFile *)f;
    w->real = (sqlite3_file *)&w[1];
    int rc = base->xOpen(base, name, w->real, flags, out);
    /* The default VFS's methods must be those of version 3 for ours to
     * stand in for them (SQLite's unix VFS: always). */
    if (w->real->pMethods == NULL || w->real->pMethods->iVersion < 3) {
        if (w->real->pMethods)
            w->real->pMethods->xClose(w->real);
        f->pMethods = NULL;
        return rc == SQLITE_OK ? SQLITE_CANTOPEN : rc;
    }
    f->pMethods = &walMethods;
    return rc;
}
