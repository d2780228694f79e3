/*
 * backup: rqlite's automatic backups (-auto-backup) and automatic restore
 * (-auto-restore), to and from S3-compatible object stores or a local
 * directory.
 *
 * The configuration files are rqlite's JSON, with $VAR and ${VAR}
 * replaced from the environment first (Go's os.ExpandEnv: a variable that
 * is not set becomes the empty string). Google Cloud Storage ("gcs") is
 * recognised and refused: this build has no client for it.
 *
 * Uploads run on a thread of their own, every interval, on the leader
 * only: a consistent copy of the database (store_copy), gzipped unless
 * no_compress, is streamed from a temporary file to the destination. Only
 * temporary files hold the database, never memory. A failed upload is
 * logged, counted and tried again at the next interval.
 *
 * The restore is downloaded before the store opens (main.c), and loaded
 * through the log (store_load) the first time this node is leader; the
 * node is not ready until then, or until another node became leader first
 * (the restore is then skipped, as rqlite does).
 */
#ifndef RQ_BACKUP_BACKUP_H
#define RQ_BACKUP_BACKUP_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "store/store.h"

typedef enum { BACKUP_TYPE_S3 = 1, BACKUP_TYPE_GCS, BACKUP_TYPE_FILE } backup_type;

/* Which file is parsed: they share a format, not every field. */
typedef enum { BACKUP_FOR_UPLOAD, BACKUP_FOR_RESTORE } backup_use;

/* A parsed configuration file: plain data, owned by whoever parsed it
 * (backup_config_free). */
typedef struct backup_config {
    int version;              /* at most 1 */
    backup_type type;
    int64_t interval_ns;      /* upload: > 0 */
    int64_t timeout_ns;       /* restore: the download's bound, 30 s when unset */
    bool timestamp;           /* upload: YYYYMMDDHHMMSS_ before the last path segment */
    bool no_compress;         /* upload: send the database as it is, not gzipped */
    bool vacuum;              /* upload: a VACUUMed copy */
    bool continue_on_failure; /* restore: start empty when the download fails */
    /* "sub" for s3 */
    char *endpoint, *region, *access_key_id, *secret_access_key, *bucket, *path;
    bool force_path_style;
    /* "sub" for file */
    char *dir, *name;
} backup_config;

/* Go's os.ExpandEnv on s: a new string (caller frees). */
char *backup_expand_env(const char *s);

/* Parse a configuration (already expanded) as rqlite does, with its error
 * texts ("invalid version", "unsupported storage type", "invalid
 * interval", JSON errors), plus what rqlite leaves to fail later: a
 * missing interval, an s3 sub without bucket or path, a file sub whose dir
 * is not absolute or whose name is not a plain file name. 0, or -1 with
 * *err (caller frees; *out is then empty). */
int backup_config_parse(const char *text, backup_use use, backup_config *out, char **err);
/* Read the file at path, expand it and parse it; the error says which
 * step failed ("failed to read auto-backup file: ...", "failed to parse
 * auto-backup file: ..."). */
int backup_config_load(const char *path, backup_use use, backup_config *out, char **err);
void backup_config_free(backup_config *c);

/* What can be checked of a destination without sending anything, so
 * that a bad one stops the node at start: the file type's directory is
 * created if missing and must be writable. 0, or -1 with *err. */
int backup_check_destination(const backup_config *cfg, char **err);

/* rqlite's timestamped name: "a/b/db.gz" at t becomes
 * "a/b/20240102030405_db.gz" (t in UTC). Caller frees. */
char *backup_timestamped(const char *path, time_t t);

/* ---- uploads (-auto-backup) ---------------------------------------- */

typedef struct backup_uploader backup_uploader;

/* Check the destination as far as it can be without sending anything
 * (the file type creates its directory and tries a write there), then
 * start the upload thread. tmp_dir holds the temporary gzip file. 0, or
 * -1 with *err. cfg is copied; st must outlive the uploader. */
int backup_uploader_start(const backup_config *cfg, store *st, const char *tmp_dir, backup_uploader **out,
                          char **err);
/* Stop the thread (an upload under way is abandoned) and free u; NULL is
 * allowed. Before store_close. */
void backup_uploader_stop(backup_uploader *u);
/* rqlite's "uploader" map of /debug/vars (u NULL: all zeros, as rqlite
 * shows it without -auto-backup). Caller owns. */
json_t *backup_uploader_vars(backup_uploader *u);
/* rqlite's "auto_backups" section of /status. Caller owns. */
json_t *backup_uploader_status(backup_uploader *u);

/* ---- restore (-auto-restore) --------------------------------------- */

typedef struct backup_restore backup_restore;

/* Download the restore file (gunzipped when it is gzip) into an unlinked
 * temporary file in tmp_dir, within the configured timeout. Returns 0
 * with *out set (its counters kept for /debug/vars): with the file, or
 * without it when the download failed and continue_on_failure says to
 * start empty (logged). -1 with *err when the node must not start (a
 * failed download, or what came is not a SQLite database). A gzipped
 * file stops decompressing beyond max_bytes (0: no limit): a larger one
 * could not be loaded anyway, and a gzip bomb must not fill the disk. */
int backup_restore_download(const backup_config *cfg, const char *tmp_dir, uint64_t max_bytes, backup_restore **out,
                            char **err);
/* After the store is open and before anyone can ask it: hold the store
 * not ready (store_hold_ready) and load the file through the log when this
 * node first becomes leader, or skip it when another node leads first;
 * then release the store. r may be NULL (nothing to restore). */
void backup_restore_start(backup_restore *r, store *st);
/* Stop waiting and free r; NULL is allowed. Before store_close. */
void backup_restore_stop(backup_restore *r);
/* rqlite's "downloader" map of /debug/vars, and the auto-restore counters
 * of its "store" map (num_auto_restores, _skipped, _failed); r NULL: the
 * counters of a node that downloaded nothing. Caller owns. */
json_t *backup_downloader_vars(backup_restore *r);
json_t *backup_restore_store_vars(backup_restore *r);

#endif
