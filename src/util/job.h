/*
 * job: one background thread of a kind at a time, for periodic work that
 * must not pile up (a pass that outlasts its period is not started twice)
 * and must not hold up the thread that starts it (the Raft thread, say).
 *
 * The starter calls job_start() when the work is due and job_close() once,
 * at its end; the job's thread calls job_done() as its last step. A job is
 * zero-initialised. Only the starter's thread calls job_start/job_close.
 */
#ifndef RQ_UTIL_JOB_H
#define RQ_UTIL_JOB_H

#include <pthread.h>
#include <stdbool.h>

typedef struct job {
    pthread_t thread;
    bool started; /* thread created and not joined */
    bool busy;    /* atomically: the thread's work is under way */
} job;

/* Is the last run still under way? */
bool job_busy(job *j);
/* Run fn(arg) on a new thread, unless the last run is still busy (the
 * finished one is joined first). Returns true if it started. */
bool job_start(job *j, void *(*fn)(void *), void *arg);
/* The job's thread says its work is over (its last step). */
void job_done(job *j);
/* Joins the last thread, if any. */
void job_close(job *j);

#endif
