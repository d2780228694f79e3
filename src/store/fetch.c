/*
 * fetch.c: a follower's copy of the leader's database, for a snapshot.
 *
 * Snapshots carry no data, only a marker (codec.h): the database file is
 * the state, and a follower that needs a snapshot is behind the file of any
 * up-to-date node. When an InstallSnapshot arrives (raftio.c) and our file
 * holds less than the database index the snapshot stands for, the message
 * is held back while a thread of ours streams a consistent copy of the
 * sender's file over the sender's Raft port (cluster_fetch_image; the
 * sender's side is storeImageCopy, served by transport.c). The copy is
 * written to disk as it arrives, with its progress in the log; once it is
 * complete the Raft thread swaps it in and only then hands the message to
 * libraft, whose restore (fsm.c) finds the file already holding the
 * snapshot. Memory stays bounded whatever the size of the database.
 *
 * Threads: storeFetchStart and storeFetchDone run on the Raft thread, the
 * transfer on its own; they share fetch_done, fetch_rc, fetch_err and
 * fetch_from under s->mu. store_copy runs on any thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cluster/cluster.h"
#include "store/codec.h"
#include "store/internal.h"
#include "util/log.h"
#include "util/os.h"

/* Whether store_close has begun: a transfer stops rather than hold it up. */
static bool closing(store *s)
{
    pthread_mutex_lock(&s->mu);
    bool c = s->closing;
    pthread_mutex_unlock(&s->mu);
    return c;
}

/* The copy is made in a file unlinked at once, so that a crash leaves
 * nothing behind and the copy lives as long as the descriptor. */
int store_copy(store *s, unsigned flags, db_progress_fn progress, void *arg, uint64_t *size, char **err)
{
    char *tmp = rq_sprintf("%s.copy-%lx-%llx", s->db_path, (unsigned long)pthread_self(),
                           (unsigned long long)rq_now_ms());
    int64_t t0 = rq_now_ms();
    if (db_backup_file(s->db, tmp, flags, progress, arg, NULL, err) != 0) {
        free(tmp);
        return -1;
    }
    int fd = open(tmp, O_RDWR | O_CLOEXEC);
    int e = errno;
    unlink(tmp);
    free(tmp);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0) {
        *err = rq_sprintf("cannot read the copy: %s", strerror(fd < 0 ? e : errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    *size = (uint64_t)sb.st_size;
    if (!(flags & DB_BACKUP_KEEP_INDEX)) /* a backup, not a follower's transfer */
        storeStat(s, SSTAT_BACKUPS);
    rq_log("store", "%lld-byte copy of the database made in %lld ms", (long long)sb.st_size,
           (long long)(rq_now_ms() - t0));
    return fd;
}

/* The transport's transport_image_fn (a sender thread, never the Raft thread): a
 * consistent copy of the database with its Raft index. */
int storeImageCopy(void *arg, transport_progress_fn progress, void *parg, uint64_t *size, char **err)
{
    return store_copy(arg, DB_BACKUP_KEEP_INDEX, progress, parg, size, err);
}

/* Progress of a transfer (about once a second); nonzero when the store is
 * closing, which abandons it. */
static int fetchLog(void *arg, bool copying, long long done, long long total)
{
    store *s = arg;
    double secs = (double)(rq_now_ms() - s->fetch_started_ms) / 1000.0;
    if (copying)
        rq_log("store", "snapshot transfer: the sender is copying its database, %lld of %lld bytes (%d%%)",
               done, total, total > 0 ? (int)(done * 100 / total) : 0);
    else if (total > 0)
        rq_log("store", "snapshot transfer: %lld of %lld bytes (%d%%), %.1f MB/s", done, total,
               (int)(done * 100 / total), secs > 0 ? (double)done / 1e6 / secs : 0.0);
    else
        rq_log("store", "snapshot transfer: %lld bytes, %.1f MB/s", done,
               secs > 0 ? (double)done / 1e6 / secs : 0.0);
    return closing(s);
}

/* For tests only: with RQ_TEST_FETCH_GATE=<file> in the environment, a
 * transferred database waits until that file exists (at most a minute)
 * before storeFetchDone() sees it, so that a test can have entries applied
 * meanwhile (tests/system/test_cluster.py). */
static void testGate(store *s, int rc)
{
    const char *gate = getenv("RQ_TEST_FETCH_GATE");
    if (gate == NULL || rc != 0)
        return;
    rq_log("store", "test gate: holding the transferred database until %s exists", gate);
    for (int i = 0; i < 600 && access(gate, F_OK) != 0; i++) {
        if (closing(s))
            return;
        usleep(100000);
    }
}

/* The transfer, on a thread of its own: it takes as long as the database
 * is large, and the Raft thread must keep answering meanwhile. */
static void *fetchThread(void *arg)
{
    store *s = arg;
    char *err = NULL;
    int rc = -1;
    long long bytes = 0;
    pthread_mutex_lock(&s->mu); /* the Raft thread may replace the held message */
    char *from = strdup(s->fetch_from);
    pthread_mutex_unlock(&s->mu);
    for (int attempt = 0; attempt < 3 && rc != 0; attempt++) {
        free(err);
        err = NULL;
        rq_log("store", "fetching the database from %s (its Raft port%s)", from, s->cfg->node_tls ? ", TLS" : "");
        rc = cluster_fetch_image(s->cfg->node_tls, from, s->fetch_path, fetchLog, s, &bytes, &err);
        if (closing(s))
            break;
    }
    free(from);
    testGate(s, rc);
    pthread_mutex_lock(&s->mu);
    s->fetch_done = true;
    s->fetch_rc = rc;
    s->fetch_err = err;
    s->fetch_bytes = bytes;
    if (!s->closing) /* the loop closes its handles only after closing is set */
        uv_async_send(&s->wake);
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* A received message that will not reach libraft: free what libraft
 * would have freed once done with it. */
static void releaseMessage(struct raft_message *m)
{
    if (m->type == RAFT_IO_INSTALL_SNAPSHOT) {
        raft_free(m->install_snapshot.data.base);
        raft_configuration_close(&m->install_snapshot.conf);
    }
}

/* Raft thread: an InstallSnapshot whose state our file does not hold yet.
 * Keep the message, fetch the sender's file; storeFetchDone() delivers it. */
static void holdMessage(store *s, struct raft_message *m, raft_index need)
{
    s->fetch_msg = *m;
    s->fetch_need = need;
    free(s->fetch_from);
    s->fetch_from = strdup(m->server_address);
    s->fetch_msg.server_address = s->fetch_from;
}

/* Raft thread: start the transfer of the held message's sender's file. */
static void fetchLaunch(store *s)
{
    struct raft_message *m = &s->fetch_msg;
    raft_index need = s->fetch_need;
    s->fetching = true;
    s->fetch_done = false;
    s->fetch_started_ms = rq_now_ms();
    rq_log("store", "snapshot %llu from %s needs database index %llu (this file holds %llu): "
           "transferring the database", (unsigned long long)m->install_snapshot.last_index, s->fetch_from,
           (unsigned long long)need, (unsigned long long)db_index(s->db));
    if (pthread_create(&s->fetch_thread, NULL, fetchThread, s) != 0) {
        rq_logl(RQ_LOG_WARN, "store", "cannot start the snapshot transfer thread");
        releaseMessage(&s->fetch_msg);
        s->fetching = false;
        return;
    }
    s->fetch_joinable = true;
}

void storeFetchStart(store *s, struct raft_message *m, raft_index need)
{
    if (s->fetching) {
        /* The leader sent it again (a retry, or a newer snapshot after a
         * membership change): one transfer is enough, but answer the newest
         * message, the one the leader waits for. The transfer in progress
         * brings the sender's current file, which normally covers it. */
        struct raft_install_snapshot *held = &s->fetch_msg.install_snapshot;
        if (m->install_snapshot.term > held->term ||
            (m->install_snapshot.term == held->term && m->install_snapshot.last_index >= held->last_index)) {
            pthread_mutex_lock(&s->mu); /* the thread copies fetch_from under mu */
            releaseMessage(&s->fetch_msg);
            holdMessage(s, m, need);
            pthread_mutex_unlock(&s->mu);
        } else {
            releaseMessage(m);
        }
        return;
    }
    holdMessage(s, m, need);
    fetchLaunch(s);
}

/* Raft thread: the transferred file replaces ours, unless entries applied
 * during the transfer (from a newer leader, say) took our file past the
 * copy: installing it would lose them, since libraft will not apply them
 * again. -1 when it cannot be installed (the message is dropped; the
 * leader sends it again). */
static int installFetched(store *s, raft_index want)
{
    double secs = (double)(rq_now_ms() - s->fetch_started_ms) / 1000.0;
    uint64_t got = 0;
    if (db_file_index(s->fetch_path, want, &got) == 0 && got < db_index(s->db)) {
        rq_log("store", "transferred database (index %llu) is older than ours (index %llu): kept ours",
               (unsigned long long)got, (unsigned long long)db_index(s->db));
        unlink(s->fetch_path);
        return 0;
    }
    /* Forwarded requests need the leader's node ID and API address the
     * moment the file is in: take the snapshot's node metadata now rather
     * than when libraft restores it (fsmRestore); publish.c shows them at
     * the end of this loop iteration. */
    codec_snapshot snap;
    const struct raft_buffer *sd = &s->fetch_msg.install_snapshot.data;
    if (codec_snap_decode(sd->base, sd->len, &snap) == 0) {
        if (json_is_array(snap.metas))
            storeMetasFromJson(s, snap.metas);
        json_decref(snap.metas);
    }
    char *err = NULL;
    if (db_install_file(s->db, s->fetch_path, &err) != 0) {
        rq_logl(RQ_LOG_WARN, "store", "cannot install the transferred database: %s", err ? err : "?");
        free(err);
        releaseMessage(&s->fetch_msg);
        return -1;
    }
    db_resolve_index(s->db, want);
    storeStat(s, SSTAT_SNAPSHOT_TRANSFERS);
    metrics_observe(&s->m_transfer, secs);
    rq_log("store", "snapshot transfer done: %lld bytes in %.2f s (%.1f MB/s), database at index %llu",
           s->fetch_bytes, secs, secs > 0 ? (double)s->fetch_bytes / 1e6 / secs : 0.0,
           (unsigned long long)db_index(s->db));
    return 0;
}

void storeFetchDone(store *s)
{
    pthread_mutex_lock(&s->mu);
    bool done = s->fetching && s->fetch_done;
    pthread_mutex_unlock(&s->mu);
    if (!done)
        return;
    pthread_join(s->fetch_thread, NULL);
    s->fetch_joinable = false;
    s->fetching = false;
    raft_index want = s->fetch_need;
    if (s->fetch_rc != 0) {
        rq_logl(RQ_LOG_WARN, "store", "snapshot transfer failed: %s (the leader will retry)",
                s->fetch_err ? s->fetch_err : "?");
        free(s->fetch_err);
        s->fetch_err = NULL;
        releaseMessage(&s->fetch_msg);
        return;
    }
    if (installFetched(s, want) != 0)
        return;
    if (db_index(s->db) < want) {
        rq_log("store", "the database (index %llu) is older than the snapshot (needs index %llu): fetching again",
               (unsigned long long)db_index(s->db), (unsigned long long)want);
        fetchLaunch(s);
        return;
    }
    s->raft_recv(&s->io, &s->fetch_msg);
}

void storeFetchClose(store *s)
{
    if (!s->fetch_joinable)
        return;
    pthread_join(s->fetch_thread, NULL);
    releaseMessage(&s->fetch_msg);
    unlink(s->fetch_path);
    free(s->fetch_err);
}
