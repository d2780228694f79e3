/*
 * vacuum.c: -auto-vacuum-int, rqlite's automatic VACUUM.
 *
 * As rqlite does, the VACUUM is folded into snapshotting: a snapshot runs
 * on the Raft thread between two entries, so nothing writes to the file
 * meanwhile, and the snapshot's sync then makes the vacuumed file durable.
 * VACUUM leaves the content as it was, so every node does it on its own
 * schedule and nothing goes through the log.
 *
 * The schedule survives restarts (rqlite keeps it in its Raft store): the
 * file auto_vacuum in the data directory holds two times in Unix
 * milliseconds, "base last", where base is when auto-vacuum was first
 * enabled and last the latest VACUUM (0: none yet). The next one is due an
 * interval after the later of the two. Without the flag the file goes, so
 * enabling it again starts a new interval.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store/internal.h"
#include "util/duration.h"
#include "util/log.h"
#include "util/os.h"

static char *timesPath(store *s)
{
    return rq_sprintf("%s/auto_vacuum", s->cfg->data_dir);
}

static void timesSave(store *s)
{
    char *p = timesPath(s);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", p);
    FILE *f = fopen(tmp, "w");
    bool ok = f != NULL && fprintf(f, "%lld %lld\n", (long long)s->vac_base_ms, (long long)s->vac_last_ms) > 0;
    if (f != NULL && fclose(f) != 0)
        ok = false;
    if (!ok || rename(tmp, p) != 0) {
        /* The schedule restarts from now after a restart: no harm done. */
        rq_logl(RQ_LOG_WARN, "store", "cannot record the auto-vacuum time in %s: %s", p, strerror(errno));
        unlink(tmp);
    }
    free(p);
}

void storeVacuumInit(store *s)
{
    char *p = timesPath(s);
    if (s->cfg->auto_vacuum_int_ms == 0) {
        unlink(p);
        free(p);
        return;
    }
    long long base = 0, last = 0;
    FILE *f = fopen(p, "r");
    bool ok = f != NULL && fscanf(f, "%lld %lld", &base, &last) == 2 && base > 0 && last >= 0;
    if (f != NULL)
        fclose(f);
    free(p);
    pthread_mutex_lock(&s->mu);
    s->vac_base_ms = ok ? base : rq_wall_ms();
    s->vac_last_ms = ok ? last : 0;
    pthread_mutex_unlock(&s->mu);
    if (!ok)
        timesSave(s);
}

void storeVacuumMaybe(store *s)
{
    uint64_t every = s->cfg->auto_vacuum_int_ms;
    if (every == 0)
        return;
    int64_t from = s->vac_last_ms ? s->vac_last_ms : s->vac_base_ms;
    if (rq_wall_ms() - from <= (int64_t)every)
        return;
    int64_t t0 = rq_now_ms();
    long long before = db_file_size(s->db);
    char *err = NULL;
    if (db_vacuum(s->db, &err) != 0) {
        /* The snapshot goes on; the next one tries again. */
        storeStat(s, SSTAT_AUTO_VACUUMS_FAILED);
        rq_logl(RQ_LOG_WARN, "store", "auto-vacuum failed: %s", err);
        free(err);
        return;
    }
    int64_t took = rq_now_ms() - t0;
    pthread_mutex_lock(&s->mu);
    s->vac_last_ms = rq_wall_ms();
    s->vac_duration_ms = (uint64_t)took;
    pthread_mutex_unlock(&s->mu);
    timesSave(s);
    storeStat(s, SSTAT_AUTO_VACUUMS);
    rq_log("store", "database vacuumed in %lld ms (%lld bytes before)", (long long)took, before);
}

/* Go's time.Time in JSON. */
static json_t *goTime(int64_t ms)
{
    char out[64];
    rq_go_time(ms / 1000, (long)(ms % 1000) * 1000000L, out, sizeof out);
    return json_string(out);
}

void storeVacuumStatus(store *s, json_t *st)
{
    uint64_t every = s->cfg->auto_vacuum_int_ms;
    if (every == 0)
        return;
    json_t *av = json_object();
    int64_t from = s->vac_last_ms ? s->vac_last_ms : s->vac_base_ms;
    if (s->vac_last_ms)
        json_object_set_new(av, "last_vacuum", goTime(s->vac_last_ms));
    json_object_set_new(av, "next_vacuum_after", goTime(from + (int64_t)every));
    json_object_set_new(st, "auto_vacuum", av);
}
