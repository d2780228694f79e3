/*
 * backup/internal.h: what the files of backup/ share. A storage client
 * (s3.c, file.c) is one destination: the uploader and the restore speak to
 * it through these few calls, as rqlite's StorageClient interfaces do.
 */
#ifndef RQ_BACKUP_INTERNAL_H
#define RQ_BACKUP_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "backup/backup.h"

typedef struct backupClient backupClient;
struct backupClient {
    /* Store size bytes read from fd (from offset 0) under the destination
     * name, with id kept beside it (S3 metadata, METADATA.json). 0, or -1
     * with *err. Progress is logged for long transfers. */
    int (*upload)(backupClient *c, int fd, uint64_t size, const char *id, char **err);
    /* The id stored with the latest upload: 0 with *id (caller frees; ""
     * when the destination says there is none), or -1 with *err. */
    int (*current_id)(backupClient *c, char **id, char **err);
    /* Write the object into fd within timeout_ms; *bytes received. 0, or
     * -1 with *err. NULL: this type cannot restore. */
    int (*download)(backupClient *c, int fd, uint64_t timeout_ms, uint64_t *bytes, char **err);
    void (*free)(backupClient *c);
    /* Set (atomically) by the owner to abandon a transfer under way: the
     * call then fails soon. */
    bool cancel;
    char desc[1024]; /* as rqlite prints it: "s3://bucket/key", "dir:D, file:F" */
};

/* ---- s3.c */
/* An S3 client for cfg's sub (any S3-compatible service): requests signed
 * by libcurl (AWS SigV4), path-style URLs with force_path_style or an
 * endpoint that is an IP address or localhost, virtual-hosted otherwise.
 * timestamp: uploads go to backup_timestamped names. NULL with *err. */
backupClient *backupS3New(const backup_config *cfg, char **err);

/* ---- file.c */
/* The file type: dir must be absolute and name a plain file name; the
 * directory is created if missing and must be writable. NULL with *err. */
backupClient *backupFileNew(const backup_config *cfg, char **err);

/* ---- uploader.c */
/* An unlinked temporary file in dir, open for reading and writing: -1
 * with *err. */
int backupTempFile(const char *dir, char **err);
/* gzip (level 1, rqlite's BestSpeed) the size bytes of in into out, both
 * from offset 0; *out_size the compressed length. label names the work in
 * the progress lines logged for long runs; *cancel set stops it. 0, or -1
 * with *err. */
int backupGzip(int in, uint64_t size, int out, uint64_t *out_size, const char *label, const bool *cancel,
               char **err);
/* The inverse, for the restore; *out_size the plain length. It stops
 * with an error beyond max_out bytes (0: no limit). */
int backupGunzip(int in, int out, uint64_t max_out, uint64_t *out_size, char **err);
/* Human byte counts as rqlite logs them ("1.2 MB"). */
void backupBytes(uint64_t n, char *out, size_t size);

#endif
