/* job.c: one background thread of a kind at a time, see job.h. */
#include "util/job.h"

bool job_busy(job *j)
{
    return __atomic_load_n(&j->busy, __ATOMIC_ACQUIRE);
}

bool job_start(job *j, void *(*fn)(void *), void *arg)
{
    if (job_busy(j))
        return false;
    if (j->started) {
        pthread_join(j->thread, NULL); /* finished: not busy */
        j->started = false;
    }
    __atomic_store_n(&j->busy, true, __ATOMIC_RELEASE);
    if (pthread_create(&j->thread, NULL, fn, arg) != 0) {
        __atomic_store_n(&j->busy, false, __ATOMIC_RELEASE);
        return false;
    }
    j->started = true;
    return true;
}

void job_done(job *j)
{
    __atomic_store_n(&j->busy, false, __ATOMIC_RELEASE);
}

void job_close(job *j)
{
    if (j->started)
        pthread_join(j->thread, NULL);
    j->started = false;
}
