/* The shards' commit: every shard an iteration touched commits at once, on kept commit threads (sagad.h). */
#include <assert.h>
#include <pthread.h>

#include "changelog.h"
#include "datadir.h"
#include "sagad.h"
#include "saga_clock.h"
#include "saga_error.h"
#include "saga_log.h"

typedef struct {
    sagad_shard_t *sh;
    int rc;
} commit_job_t;

static void commit_one(commit_job_t *job) { job->rc = saga_store_commit(job->sh->store); }

/* The commit workers: one per shard beyond the first an iteration touched,
 * started on first need and kept (a thread created and joined per shard per
 * iteration cost a clone, a stack and an exit every iteration). The loop
 * hands worker i its job and waits until the worker clears it. */
typedef struct {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* job set (the worker waits) or cleared (the loop waits): never both */
    commit_job_t *job;
    bool stop;
} commit_worker_t;

static commit_worker_t g_workers[SAGA_DATADIR_MAX_PARTITIONS];
static int g_worker_count; /* g_workers[1..g_worker_count] run; a failed start leaves the rest inline */
static bool g_worker_failed;

static void *commit_worker(void *arg) {
    commit_worker_t *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->job && !w->stop) pthread_cond_wait(&w->cv, &w->mu);
        if (w->stop) break;
        commit_job_t *job = w->job;
        pthread_mutex_unlock(&w->mu);
        commit_one(job);
        pthread_mutex_lock(&w->mu);
        w->job = NULL;
        pthread_cond_signal(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* Worker i (1 <= i < SAGA_DATADIR_MAX_PARTITIONS), started if need be; NULL
 * when no thread could be started (its job then runs on the loop's). */
static commit_worker_t *worker(int i) {
    assert(i >= 1 && i < SAGA_DATADIR_MAX_PARTITIONS);
    while (g_worker_count < i && !g_worker_failed) {
        commit_worker_t *w = &g_workers[g_worker_count + 1];
        *w = (commit_worker_t){0};
        pthread_mutex_init(&w->mu, NULL);
        pthread_cond_init(&w->cv, NULL);
        if (pthread_create(&w->thread, NULL, commit_worker, w) != 0) {
            pthread_mutex_destroy(&w->mu);
            pthread_cond_destroy(&w->cv);
            g_worker_failed = true;
            LOG_WARN("loop", "could not start a commit thread: shards beyond %d commit in turn", g_worker_count + 1);
            break;
        }
        g_worker_count++;
    }
    return i <= g_worker_count ? &g_workers[i] : NULL;
}

void sagad_commit_workers_stop(void) {
    for (int i = 1; i <= g_worker_count; i++) {
        commit_worker_t *w = &g_workers[i];
        pthread_mutex_lock(&w->mu);
        w->stop = true;
        pthread_cond_signal(&w->cv);
        pthread_mutex_unlock(&w->mu);
        pthread_join(w->thread, NULL);
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cv);
    }
    g_worker_count = 0;
    g_worker_failed = false;
}

/* The touched shards commit at once, one commit worker each (the first on
 * the loop's thread): their fsyncs overlap instead of adding up. Each
 * connection is used by one thread at a time; the loop waits for all
 * before going on. */
int sagad_flush_changelogs(sagad_t *d, int64_t now) {
    for (int p = 0; p < d->shard_count; p++) {
        if (!d->shards[p].in_tx) continue;
        int rc = sagad_changelog_flush(d, &d->shards[p], now);
        if (rc) {
            LOG_ERROR("loop", "shard %d: changelog records: %s", p, saga_strerror(rc));
            return rc; /* the caller rolls back */
        }
    }
    return 0;
}

int sagad_commit_shards(sagad_t *d) {
    static commit_job_t jobs[SAGA_DATADIR_MAX_PARTITIONS];
    static commit_worker_t *busy[SAGA_DATADIR_MAX_PARTITIONS];
    int n = 0;
    int rc = sagad_flush_changelogs(d, saga_now_ms()); /* those written since, if any */
    if (rc) return rc;
    for (int p = 0; p < d->shard_count; p++)
        if (d->shards[p].in_tx) jobs[n++] = (commit_job_t){.sh = &d->shards[p]};
    for (int i = 1; i < n; i++) {
        commit_worker_t *w = busy[i] = worker(i);
        if (!w) continue;
        pthread_mutex_lock(&w->mu);
        assert(!w->job);
        w->job = &jobs[i];
        pthread_cond_signal(&w->cv);
        pthread_mutex_unlock(&w->mu);
    }
    if (n > 0) commit_one(&jobs[0]);
    for (int i = 1; i < n; i++) {
        commit_worker_t *w = busy[i];
        if (!w) {
            commit_one(&jobs[i]); /* no thread: in turn */
            continue;
        }
        pthread_mutex_lock(&w->mu);
        while (w->job) pthread_cond_wait(&w->cv, &w->mu);
        pthread_mutex_unlock(&w->mu);
    }
    for (int i = 0; i < n; i++) {
        sagad_shard_t *sh = jobs[i].sh;
        if (jobs[i].rc) {
            LOG_ERROR("loop", "shard %d: commit failed: %s", sh->partition, saga_store_errmsg(sh->store));
            saga_store_rollback(sh->store);
            if (!rc) rc = jobs[i].rc;
        } else {
            d->counters.commits++;
            d->counters.sql_statements += saga_store_statements_take(sh->store);
        }
        sagad_changelog_forget(sh, jobs[i].rc == 0);
        sh->in_tx = false;
    }
    return rc;
}

void sagad_rollback_shards(sagad_t *d) {
    for (int p = 0; p < d->shard_count; p++) {
        sagad_changelog_forget(&d->shards[p], false);
        if (!d->shards[p].in_tx) continue;
        saga_store_rollback(d->shards[p].store);
        saga_changelog_history_reset(d->shards[p].store);
        d->shards[p].in_tx = false;
    }
}
