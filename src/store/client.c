/*
 * client.c: what the HTTP layer asks of the store: writes proposed as log
 * entries (store_execute, store_load, the writing half of store_request)
 * and reads at each consistency level (store_query): none and weak read
 * the local database (none within ?freshness), linearizable confirms the
 * leadership first (readindex.c), strong goes through the log.
 *
 * All of it runs on caller threads; the Raft thread's part goes through
 * ops (ops.c). Requests are checked here, before anything is proposed, so
 * that a refusal costs no log entry. The leader's -auto-optimize-int
 * passes are such writes too, from a thread of their own.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "store/codec.h"
#include "store/internal.h"
#include "util/log.h"
#include "util/os.h"

/* freshness_strict: how long contact must have been steady (no gap over
 * three heartbeat intervals) before what the leader says counts as news. */
#define CONTACT_SETTLE_MS 200

int store_check(store *s, const cmd_view *stmts, bool *readonly)
{
    return db_check(s->db, stmts, readonly) == DB_CHECK_DISALLOWED_PRAGMA ? STORE_DISALLOWED : STORE_OK;
}

/* -raft-apply-timeout (ms) for a write or a barrier to be applied. */
static uint64_t applyTimeout(store *s)
{
    return s->cfg->raft_apply_timeout_ms ? s->cfg->raft_apply_timeout_ms : 10000;
}

/* The VM step budget of an entry: -db-max-write-steps, lowered to about
 * db_timeout_us worth of work. 0: none. */
static uint64_t stepBudget(store *s, uint64_t db_timeout_us)
{
    uint64_t steps = s->cfg->db_max_write_steps;
    if (db_timeout_us > 0) {
        uint64_t t = db_timeout_us * STORE_STEPS_PER_MS / 1000;
        if (t == 0)
            t = 1;
        if (steps == 0 || t < steps)
            steps = t;
    }
    return steps;
}

/* Propose a command entry (leader only) and wait for it to be applied. */
static int applyEntry(store *s, const cmd_view *stmts, unsigned flags, uint64_t db_timeout_us, buf *out,
                      uint64_t *raft_index, char **err)
{
    if (!store_is_leader(s))
        return STORE_NOT_LEADER;
    /* Refused here, not by every node after it is committed. */
    double t0 = rq_now_sec();
    if (!cmd_valid(stmts)) {
        *err = strdup("invalid request");
        return STORE_INVALID;
    }
    if (stmts->len > CMD_MAX_PAYLOAD) {
        *err = rq_sprintf("request too large: %zu bytes of statements", stmts->len);
        return STORE_TOO_LARGE;
    }
    op *o = storeOpNewApply(s);
    /* The proposer fixes the entry's clock and random seed: every replica
     * evaluates 'now' and random() from them (see db_set_entropy). */
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof seed, 0) != (ssize_t)sizeof seed)
        seed = (uint64_t)now.tv_nsec * 0x9E3779B97F4A7C15ULL ^ o->seq;
    cmd_entry ce = {.origin = s->id,
                    .seq = o->seq,
                    .flags = flags,
                    .unix_ms = (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000,
                    .seed = seed & 0x7fffffffffffffffULL,
                    .steps = stepBudget(s, db_timeout_us),
                    .stmts = *stmts};
    /* The entry as it goes in the log: compressed when that pays (LZ4). */
    size_t size = 0;
    void *packed = cmd_entry_pack(&ce, &size);
    if (packed == NULL)
        return storeOpNoMemory(s, o, err);
    storeStat(s, cmd_entry_compressed(packed, size) ? SSTAT_COMPRESSED_COMMANDS : SSTAT_UNCOMPRESSED_COMMANDS);
    if (s->cfg->raft_max_entry_size && size > s->cfg->raft_max_entry_size) {
        free(packed);
        *err = rq_sprintf("request too large: its log entry would be %zu bytes (-raft-max-entry-size %llu)", size,
                          (unsigned long long)s->cfg->raft_max_entry_size);
        storeOpRelease(s, o);
        storeOpRelease(s, o);
        return STORE_TOO_LARGE;
    }
    o->entry = raft_malloc(size);
    if (o->entry == NULL) {
        free(packed);
        return storeOpNoMemory(s, o, err);
    }
    memcpy(o->entry, packed, size);
    free(packed);
    o->entry_len = size;
    o->want_results = out != NULL;
    o->batchable = true;
    if (out) { /* the FSM appends straight into the caller's buffer */
        o->out = *out;
        buf_init(out);
    }
    store_stage(s, STORE_STAGE_ENCODE, rq_now_sec() - t0);
    int rc = storeOpRun(s, o, applyTimeout(s));
    if (rc == STORE_OK) {
        if (out) {
            *out = o->out;
            buf_init(&o->out);
        }
        if (raft_index)
            *raft_index = o->index;
    } else if (rc == STORE_ERROR) {
        *err = storeOpTakeErr(o, "timeout waiting for the write to be applied");
    }
    storeOpRelease(s, o);
    return rc;
}

int store_image_check(store *s, const void *image, size_t len, char **err)
{
    return db_image_check(s->db, image, len, err);
}

/* A load is one entry holding the whole image (codec.h), so that every
 * node swaps its database at the same index. */
int store_load(store *s, const void *image, size_t len, bool boot, char **err)
{
    if (!store_is_leader(s))
        return STORE_NOT_LEADER;
    size_t padded = codec_load_size(len);
    if (s->cfg->raft_max_entry_size && padded > s->cfg->raft_max_entry_size) {
        *err = rq_sprintf("database image too large: its log entry would be %zu bytes (-raft-max-entry-size %llu)",
                          padded, (unsigned long long)s->cfg->raft_max_entry_size);
        return STORE_TOO_LARGE;
    }
    /* Every node checks again when it applies the entry, alike; this is so
     * that the client hears of a bad image, and nothing is proposed. */
    if (db_image_check(s->db, image, len, err) != 0)
        return STORE_INVALID;
    op *o = storeOpNewApply(s);
    codec_load_entry le = {.origin = s->id, .seq = o->seq, .image = image, .image_len = len};
    o->entry = codec_load_encode(&le, &o->entry_len);
    if (o->entry == NULL)
        return storeOpNoMemory(s, o, err);
    o->want_results = true;
    int rc = storeOpRun(s, o, s->cfg->raft_apply_timeout_ms ? s->cfg->raft_apply_timeout_ms * 6 : 60000);
    if (rc == STORE_OK && o->out.len) {
        rc = STORE_ERROR;
        *err = strdup("load failed: invalid database image");
    } else if (rc == STORE_ERROR) {
        *err = storeOpTakeErr(o, "timeout waiting for the load to be applied");
    } else if (rc == STORE_OK) {
        storeStat(s, boot ? SSTAT_BOOTS : SSTAT_LOADS);
    }
    storeOpRelease(s, o);
    return rc;
}

int store_execute(store *s, const cmd_view *stmts, unsigned db_flags, uint64_t db_timeout_us, buf *out,
                  uint64_t *raft_index, char **err)
{
    if (!store_is_leader(s))
        return STORE_NOT_LEADER;
    bool readonly;
    if (store_check(s, stmts, &readonly) == STORE_DISALLOWED)
        return STORE_DISALLOWED;
    return applyEntry(s, stmts, db_flags, db_timeout_us, out, raft_index, err);
}

/* Wait until the leader has confirmed its leadership and applied
 * everything committed before now, through the log. */
static int barrier(store *s, char **err)
{
    op *o = storeOpNew(s, OP_BARRIER);
    int rc = storeOpRun(s, o, applyTimeout(s));
    if (rc == STORE_ERROR)
        *err = storeOpTakeErr(o, "timeout waiting for the read barrier");
    storeOpRelease(s, o);
    return rc;
}

/* Is a contact age_ms old (a whole number of milliseconds, so up to a
 * millisecond older than that) too old for freshness_us? A freshness under
 * a millisecond is honoured, not rounded away. */
static bool tooOld(int64_t age_ms, uint64_t freshness_us)
{
    return age_ms < 0 || (uint64_t)(age_ms + 1) * 1000 > freshness_us;
}

/* level=none with ?freshness: whether the local data is older than the
 * read allows (then it is refused as a "stale read"). */
static bool stale(store *s, const store_read *r)
{
    if (r->freshness_us == 0)
        return false;
    if (store_is_leader(s)) {
        /* A leader's data is as fresh as its last contact with a
         * majority (an isolated leader has not stepped down yet). */
        pthread_mutex_lock(&s->mu);
        int64_t q = s->quorum_contact_ms;
        pthread_mutex_unlock(&s->mu);
        return q == 0 || tooOld(rq_now_ms() - q, r->freshness_us);
    }
    /* A follower refuses to answer from data older than asked. */
    pthread_mutex_lock(&s->mu);
    bool known = s->leader_id != 0 && s->last_contact_ms > 0;
    int64_t now = rq_now_ms();
    int64_t age = now - s->last_contact_ms;
    /* Strict: caught up with what the leader last said it had
     * committed, and that said after a settling time, so that a
     * backlog delivered after a partition is not taken for news. */
    bool behind = s->leader_commit > s->applied_index || now - s->contact_since_ms < CONTACT_SETTLE_MS ||
                  age > 3 * (int64_t)s->hb_ms;
    pthread_mutex_unlock(&s->mu);
    return !known || tooOld(age, r->freshness_us) || (r->freshness_strict && behind);
}

/* level=linearizable: the leader confirms it still leads (readindex.c),
 * or, when that is not confirmed in time, goes through the log; then it
 * waits up to ?linearizable_timeout to have applied up to the read's
 * index ("index N: timeout waiting for fsm" after that, as rqlite). */
static int readIndex(store *s, const store_read *r, char **err)
{
    op *o = storeOpNew(s, OP_READINDEX);
    o->deadline_ms = rq_now_ms() + 1000;
    o->wait_ms = r->linearizable_timeout_ms ? r->linearizable_timeout_ms : 1000;
    int rc = storeOpRun(s, o, 5000 + o->wait_ms);
    if (rc == STORE_ERROR && o->done && o->confirmed) {
        *err = storeOpTakeErr(o, "timeout waiting for fsm");
        storeOpRelease(s, o);
        return rc;
    }
    if (rc == STORE_ERROR && o->done) {
        /* Not confirmed in time: confirm through the log instead. */
        storeOpRelease(s, o);
        return barrier(s, err);
    }
    if (rc == STORE_ERROR)
        *err = storeOpTakeErr(o, "timeout waiting for the read index");
    storeOpRelease(s, o);
    return rc;
}

/* The policy looks at the statements as they run (db_query). */
int store_query(store *s, const cmd_view *stmts, unsigned db_flags, const store_read *r, buf *out, char **err)
{
    store_level level = r->level;
    if (level == STORE_LEVEL_AUTO)
        level = s->cfg->raft_non_voter ? STORE_LEVEL_NONE : STORE_LEVEL_WEAK;
    if (level == STORE_LEVEL_NONE && stale(s, r)) {
        *err = strdup("stale read");
        return STORE_ERROR;
    }
    if (level != STORE_LEVEL_NONE) {
        if (!store_is_leader(s))
            return STORE_NOT_LEADER;
        int rc = STORE_OK;
        if (level == STORE_LEVEL_LINEARIZABLE)
            rc = readIndex(s, r, err);
        else if (level == STORE_LEVEL_STRONG) /* through the log: a barrier entry, then read locally */
            rc = barrier(s, err);
        if (rc != STORE_OK)
            return rc;
    }
    return db_query(s->db, stmts, db_flags, r->db_timeout_us, out) == DB_CHECK_OK ? STORE_OK : STORE_DISALLOWED;
}

int store_request(store *s, const cmd_view *stmts, unsigned db_flags, const store_read *r, buf *out, char **err)
{
    bool readonly;
    if (store_check(s, stmts, &readonly) == STORE_DISALLOWED)
        return STORE_DISALLOWED;
    if (r->level != STORE_LEVEL_STRONG && readonly) {
        store_read q = *r;
        if (q.level == STORE_LEVEL_AUTO)
            q.level = STORE_LEVEL_WEAK;
        return store_query(s, stmts, db_flags, &q, out, err);
    }
    return applyEntry(s, stmts, db_flags | DB_READ_ROWS, r->db_timeout_us, out, NULL, err);
}

int store_dump(store *s, const char *tables, buf *out, char **err)
{
    storeStat(s, SSTAT_BACKUPS);
    return db_dump(s->db, tables, out, err);
}

/* ---- -auto-optimize-int ------------------------------------------------------------- */

/* One pass: the statements that bring the planner's statistics up to date
 * (db_optimize_plan), as one entry that every node applies, so that every
 * replica has the same statistics (and plans its queries alike). PRAGMA
 * optimize run on each node, as rqlite does, would write statistics that
 * differ between replicas. */
static void *optimizeThread(void *arg)
{
    store *s = arg;
    int64_t t0 = rq_now_ms();
    cmd_batch b;
    cmd_batch_init(&b);
    int n = db_optimize_plan(s->db, &b);
    bool ok = n >= 0;
    char *err = NULL;
    if (n > 0) {
        cmd_view v = cmd_batch_view(&b);
        buf out = BUF_INIT;
        int rc = store_execute(s, &v, 0, 0, &out, NULL, &err);
        ok = rc == STORE_OK && (out.data == NULL || strstr(out.data, "\"error\"") == NULL);
        if (!ok && err == NULL)
            err = strdup(rc == STORE_OK ? out.data : "not applied");
        buf_free(&out);
    }
    cmd_batch_free(&b);
    storeStat(s, ok ? SSTAT_AUTO_OPTIMIZES : SSTAT_AUTO_OPTIMIZES_FAILED);
    storeStatSet(s, SSTAT_AUTO_OPTIMIZE_MS, (uint64_t)(rq_now_ms() - t0));
    if (!ok)
        rq_logl(RQ_LOG_WARN, "store", "auto-optimize failed: %s", err ? err : "cannot read the database");
    else if (n > 0)
        rq_log("store", "auto-optimize: statistics of %d table(s) brought up to date on every node", n);
    free(err);
    job_done(&s->optimize);
    return NULL;
}

void storeOptimizeCheck(store *s)
{
    uint64_t every = s->cfg->auto_optimize_int_ms;
    if (every == 0 || s->raft.state != RAFT_LEADER || !s->leader_ready) {
        s->optimize_due_ms = 0;
        return;
    }
    int64_t now = rq_now_ms();
    if (s->optimize_due_ms == 0) { /* leading since now: a whole interval first */
        s->optimize_due_ms = now + (int64_t)every;
        return;
    }
    if (now < s->optimize_due_ms || job_busy(&s->optimize))
        return;
    s->optimize_due_ms = now + (int64_t)every;
    job_start(&s->optimize, optimizeThread, s);
}

void storeOptimizeClose(store *s)
{
    job_close(&s->optimize);
}
