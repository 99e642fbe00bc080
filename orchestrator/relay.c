/* The outbox relay: hands the outbox rows of every shard to the
 * producer, deletes the acknowledged ones, and resends or parks the failed
 * ones (see docs/DESIGN.md, "The outbox relay"). Runs on the loop's thread.
 * A delivery's id names the shard and the row (shard.h, sagad_opaque). */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "changelog.h"
#include "datadir.h"
#include "sagad.h"
#include "saga_alloc.h"
#include "saga_clock.h"
#include "saga_error.h"
#include "saga_utf8.h"
#include "saga_json.h"
#include "saga_kafka.h"
#include "saga_log.h"
#include "saga_util.h"

#define RELAY_BATCH 2000

/* A transaction carries the consumed offsets at most this often: sending
 * them costs two blocking round trips on the loop's thread
 * (AddOffsetsToTxn, TxnOffsetCommit) and the plain commit after it a third
 * request. Offsets committed later only mean that more input is read again
 * after a crash, which dedup absorbs (docs/DESIGN.md, "The commit sequence"). */
#define OFFSETS_EVERY_MS 100

/* ---- the outbox relay ------------------------------------------------------
 * New rows are handed to the producer once, in id order (relay_after only
 * grows). A row whose delivery fails is dealt with alone: a transient error
 * sends it again after a backoff, a permanent one (the broker refuses these
 * bytes for good) parks it: a command's step fails, an event or dead letter
 * is replaced by a small stub. Rows delivered after a failed one are never
 * sent again. */

#define RESEND_BACKOFF_MS 100
#define RESEND_MAX_BACKOFF_MS 5000
#define UNKNOWN_TOPIC_ATTEMPTS 4 /* after librdkafka's own wait (topic.metadata.propagation.max.ms) */
#define TOO_LARGE_ATTEMPTS 3     /* the broker refused the batch: the row alone may fit */
#define MAX_FAILURES 1024
#define PARKED_ALERTS_PER_MINUTE 10

typedef struct {
    sagad_t *d;
    sagad_shard_t *sh;
    int64_t last_id;
    int attempt;
    bool queue_full;
    bool skip_resends;  /* the scan of new rows: rows waiting in the resend list go out from there */
    int rc;             /* a fatal transactional error */
} relay_ctx_t;

/* Whether row id waits in a list: then the scan of new rows skips it. */
static bool in_resend(const sagad_shard_t *sh, int64_t id) {
    for (int i = 0; i < sh->resend_count; i++)
        if (sh->resend[i].id == id) return true;
    for (int i = 0; i < sh->deferred_count; i++)
        if (sh->deferred[i].id == id) return true;
    return false;
}

/* A changelog record row read by the relay: it waits in the shard's
 * deferred list for a pass that sends the whole shard (send_records). */
static int defer_record(sagad_shard_t *sh, int64_t id, const char *saga_id, int attempt) {
    if (sh->deferred_count == sh->deferred_cap) {
        int cap = sh->deferred_cap ? sh->deferred_cap * 2 : 64;
        sagad_deferred_t *bigger = saga_realloc(sh->deferred, (size_t)cap * sizeof *bigger);
        if (!bigger) return SAGA_ENOMEM;
        sh->deferred = bigger;
        sh->deferred_cap = cap;
    }
    sagad_deferred_t *e = &sh->deferred[sh->deferred_count++];
    *e = (sagad_deferred_t){.id = id, .attempt = attempt};
    snprintf(e->key, sizeof e->key, "%s", saga_id ? saga_id : "");
    return 0;
}

/* Opens the pass's Kafka transaction unless it is open. */
static int txn_open(sagad_t *d) {
    if (d->txn_open) return 0;
    int rc = saga_bus_txn_begin(d->bus);
    if (!rc) d->txn_open = true;
    return rc;
}

static int relay_row(const saga_outbox_row_t *row, void *user) {
    relay_ctx_t *r = user;
    if (r->skip_resends && in_resend(r->sh, row->id)) {
        r->last_id = row->id;
        return 0;
    }
    if (row->record) { /* its value is encoded when the whole shard goes out */
        if (r->skip_resends && row->id <= r->sh->prefetched_through) { /* in the list already */
            r->last_id = row->id;
            return 0;
        }
        r->rc = defer_record(r->sh, row->id, row->key, r->attempt);
        if (r->rc) return 1;
        r->last_id = row->id;
        return 0;
    }
    r->rc = txn_open(r->d);
    if (r->rc) return 1;
    int rc = saga_bus_produce(r->d->bus, row->topic, row->partition, row->key, row->headers, row->payload, row->payload_len,
                              sagad_opaque(r->sh->partition, row->id), r->attempt);
    if (rc == SAGA_EIO) {
        r->queue_full = true;
        return 1; /* stop; this row is sent next time */
    }
    /* SAGA_EKAFKA: refused at once; the bus reports it as a failure, which
     * aborts the transaction; the row is then resent or parked. */
    r->last_id = row->id;
    if (!r->sh->pass_low || row->id < r->sh->pass_low) r->sh->pass_low = row->id;
    if (!rc) r->d->counters.produced++;
    return 0;
}

static void schedule_resend(sagad_shard_t *d, int64_t id, int attempt, bool alone, int64_t now) {
    if (d->resend_count == d->resend_cap) {
        int cap = d->resend_cap ? d->resend_cap * 2 : 64;
        sagad_resend_t *bigger = saga_realloc(d->resend, (size_t)cap * sizeof *bigger);
        if (!bigger) {
            LOG_ERROR("loop", "out of memory: outbox row %lld is sent again after a restart", (long long)id);
            return;
        }
        d->resend = bigger;
        d->resend_cap = cap;
    }
    int64_t backoff = RESEND_BACKOFF_MS << (attempt < 6 ? attempt - 1 : 5);
    if (backoff > RESEND_MAX_BACKOFF_MS) backoff = RESEND_MAX_BACKOFF_MS;
    d->resend[d->resend_count++] = (sagad_resend_t){.id = id, .attempt = attempt, .due_ms = now + backoff, .alone = alone};
}

/* A row the broker refused with its batch as too large is sent truly
 * alone: only when nothing else is in flight, one at a time, and nothing
 * else is produced in that pass (with linger.ms 0 it leaves in a request of
 * its own). Otherwise the small rows batched with a large one would be
 * refused with it again and again, and parked. Returns true when the pass
 * must send nothing else: such a row is due (it waits for the producer to
 * drain) or was just sent. */
static bool resend_alone_due(sagad_t *d, sagad_shard_t *sh, int64_t now, int *fatal) {
    for (int i = 0; i < sh->resend_count; i++) {
        sagad_resend_t *e = &sh->resend[i];
        if (!e->alone || e->due_ms > now) continue;
        if (saga_bus_in_flight(d->bus) > 0) return true;
        relay_ctx_t r = {.d = d, .sh = sh, .attempt = e->attempt};
        int found = saga_store_outbox_get(sh->store, e->id, relay_row, &r);
        *fatal = r.rc;
        if (found < 0 || r.queue_full || r.rc) return true;
        if (found) d->counters.produce_retries++;
        sh->resend[i] = sh->resend[--sh->resend_count];
        return found > 0;
    }
    return false;
}

/* Sends the rows whose backoff is over again, one by one. */
static void resend_due(sagad_t *d, sagad_shard_t *sh, int64_t now, int *fatal) {
    int kept = 0;
    bool full = false;
    for (int i = 0; i < sh->resend_count; i++) {
        sagad_resend_t *e = &sh->resend[i];
        if (full || e->alone || e->due_ms > now) {
            sh->resend[kept++] = *e;
            continue;
        }
        relay_ctx_t r = {.d = d, .sh = sh, .attempt = e->attempt};
        int found = saga_store_outbox_get(sh->store, e->id, relay_row, &r);
        if (r.rc) *fatal = r.rc;
        if (found < 0 || r.queue_full || r.rc) {
            full = true;
            sh->resend[kept++] = *e;
            continue;
        }
        if (found) d->counters.produce_retries++;
        /* gone: acknowledged late or parked meanwhile */
    }
    sh->resend_count = kept;
}

/* Rows not acknowledged yet, in every shard. */
static long long outbox_backlog(sagad_t *d) {
    long long n = 0;
    for (int p = 0; p < d->shard_count; p++) {
        if (!d->shards[p].store) continue;
        long long b = saga_store_outbox_backlog(d->shards[p].store);
        if (b > 0) n += b;
    }
    return n;
}

static void free_positions(void *p) {
    if (p) rd_kafka_topic_partition_list_destroy(p);
}

void sagad_relay_note_iteration(sagad_t *d, rd_kafka_message_t **msgs, int n) {
    static int64_t ids[SAGA_DATADIR_MAX_PARTITIONS];
    if (n == 0) return;
    saga_bus_offsets_merge(&d->positions, msgs, n);
    for (int p = 0; p < d->shard_count; p++) {
        ids[p] = d->shards[p].store ? saga_store_outbox_max_id(d->shards[p].store) : 0;
        if (ids[p] < 0) {
            /* Cannot tell: these offsets wait for a restart (re-read, absorbed by dedup). */
            LOG_ERROR("relay", "shard %d: %s: the offsets of this batch are not committed", p,
                      saga_store_errmsg(d->shards[p].store));
            ids[p] = INT64_MAX;
        }
    }
    void *replaced = NULL;
    sagad_txnplan_push(&d->txnplan, ids, rd_kafka_topic_partition_list_copy(d->positions), &replaced);
    free_positions(replaced);
}

void sagad_relay_free(sagad_t *d) {
    if (d->txnplan.max_ids) sagad_txnplan_free(&d->txnplan, free_positions);
    free_positions(d->positions);
    d->positions = NULL;
}

/* SAGAD_ABORT_TXN=N (tests): the N-th transaction that produced rows is
 * aborted after its rows were produced. */
static bool abort_on_purpose(uint64_t txn) {
    static long n = -1;
    if (n < 0) {
        const char *v = getenv("SAGAD_ABORT_TXN");
        n = v && *v ? strtol(v, NULL, 10) : 0;
        if (n > 0) LOG_WARN("relay", "SAGAD_ABORT_TXN=%ld: that relay transaction is aborted on purpose (tests only)", n);
    }
    return n > 0 && txn == (uint64_t)n;
}

/* SAGAD_FATAL_TXN=N[:fenced] (tests): the producer hits a fatal error
 * (a sequence desynchronisation, or with ":fenced" a fencing) in the N-th
 * transaction that produced rows, after its rows were produced. */
static void fatal_on_purpose(sagad_t *d, uint64_t txn) {
    static long n = -1;
    static bool fenced;
    if (n < 0) {
        const char *v = getenv("SAGAD_FATAL_TXN");
        char *end = NULL;
        n = v && *v ? strtol(v, &end, 10) : 0;
        fenced = end && !strcmp(end, ":fenced");
        if (n > 0) LOG_WARN("relay", "SAGAD_FATAL_TXN=%s: that relay transaction hits a fatal error on purpose (tests only)", v);
    }
    if (n > 0 && txn == (uint64_t)n) saga_bus_test_fatal(d->bus, fenced);
}

static int cmp_deferred(const void *a, const void *b) {
    const sagad_deferred_t *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : (x->id > y->id) - (x->id < y->id);
}

/* The end of the run of deferred[i..] with deferred[i]'s key (sorted list). */
static int key_run_end(const sagad_shard_t *sh, int i) {
    int j = i + 1;
    while (j < sh->deferred_count && !strcmp(sh->deferred[j].key, sh->deferred[i].key)) j++;
    return j;
}

static void forget_encodings(sagad_shard_t *sh) {
    for (int i = 0; i < sh->deferred_count; i++) {
        saga_free(sh->deferred[i].value);
        sh->deferred[i].value = NULL;
        sh->deferred[i].encoded = false;
    }
}

/* The record of the saga of carrier as the shard holds it now, kept in it (a
 * tombstone when the saga is gone). */
static int encode_carrier(sagad_t *d, sagad_shard_t *sh, sagad_deferred_t *carrier) {
    int rc = sagad_changelog_record(d, sh, carrier->key, &carrier->value, &carrier->len);
    if (rc == SAGA_ENOTFOUND) rc = 0;
    carrier->encoded = rc == 0;
    return rc;
}

typedef struct {
    sagad_shard_t *sh;
    int before; /* deferred[0..before) were in the list already */
} prefetch_ctx_t;

static int prefetch_one(int64_t id, const char *saga_id, void *user) {
    prefetch_ctx_t *c = user;
    for (int i = 0; i < c->before; i++)
        if (c->sh->deferred[i].id == id) return 0; /* met again after an abort */
    int rc = defer_record(c->sh, id, saga_id, 0);
    if (rc) return rc;
    c->sh->prefetched_through = id;
    return 0;
}

/* Before a shard's rows are produced: its new changelog record rows join
 * the deferred list, and the record of each saga in the list is encoded
 * now, so that the pass then produces the commands and the records in one
 * burst (encoding between the two split them into two produce requests
 * per broker, which cost the dev broker about a third more per saga). Not
 * done when the shard cannot go out whole in this pass (a row waits for
 * a resend). Runs in one read transaction. */
static int prefetch_records(sagad_t *d, sagad_shard_t *sh) {
    if (sh->resend_count > 0) return 0;
    bool reading = !sh->in_tx;
    int rc = reading ? saga_store_read_begin(sh->store) : 0;
    if (rc) return rc;
    prefetch_ctx_t c = {.sh = sh, .before = sh->deferred_count};
    int n = saga_store_outbox_records(sh->store, sh->relay_after, RELAY_BATCH, prefetch_one, &c);
    if (n < 0) rc = n;
    if (!rc && n < RELAY_BATCH && sh->deferred_count > 0) {
        qsort(sh->deferred, (size_t)sh->deferred_count, sizeof *sh->deferred, cmp_deferred);
        for (int i = 0; !rc && i < sh->deferred_count; i = key_run_end(sh, i)) {
            rc = encode_carrier(d, sh, &sh->deferred[key_run_end(sh, i) - 1]);
        }
    }
    if (reading) {
        int crc = saga_store_commit(sh->store);
        if (!rc) rc = crc;
    }
    return rc;
}

/* Sends the shard's waiting changelog records, in a pass that has handed
 * every other row of the shard to the producer: each record holds the
 * shard's state as it is in this pass (encoded by prefetch_records, or
 * now), and every change that state holds has its messages in this
 * transaction or an earlier committed one. A saga with several waiting
 * rows gets one record (the same bytes twice would be a duplicate): the
 * newest row carries it, the older ones are deleted (in the shard's next
 * SQLite commit; the carrier stays until it is delivered or parked, so
 * nothing is lost if that commit comes first). */
static int send_records(sagad_t *d, sagad_shard_t *sh, bool *queue_full) {
    static int64_t riders[4096];
    int n = sh->deferred_count, kept = 0, nriders = 0, rc = 0;
    if (n == 0) return 0;
    qsort(sh->deferred, (size_t)n, sizeof *sh->deferred, cmp_deferred);
    bool reading = false;
    for (int i = 0; i < n;) {
        int j = key_run_end(sh, i);
        sagad_deferred_t *carrier = &sh->deferred[j - 1];
        int prc = 1;
        if (!rc && !*queue_full && j - 1 - i <= (int)(sizeof riders / sizeof riders[0]) - nriders) {
            rc = txn_open(d);
            if (!rc && !carrier->encoded) { /* deferred during the scan */
                if (!reading && !sh->in_tx && (rc = saga_store_read_begin(sh->store)) == 0) reading = true;
                if (!rc) rc = encode_carrier(d, sh, carrier);
            }
            if (!rc) {
                prc = saga_bus_produce(d->bus, d->cfg.changelog_topic, sh->partition, carrier->key, "{}", carrier->value,
                                       carrier->len, sagad_opaque(sh->partition, carrier->id), carrier->attempt);
                if (prc == SAGA_EIO) *queue_full = true; /* sent in a later pass */
            }
        }
        if (rc || prc == SAGA_EIO || prc == 1) {
            for (int k = i; k < j; k++) sh->deferred[kept++] = sh->deferred[k];
        } else {
            /* SAGA_EKAFKA: refused at once, reported as a failure (as in relay_row) */
            if (!prc) {
                d->counters.produced++;
                d->counters.changelog_records++;
            }
            if (!sh->pass_low || carrier->id < sh->pass_low) sh->pass_low = carrier->id;
            for (int k = i; k < j; k++) {
                assert(k == j - 1 || sh->deferred[k].id != carrier->id);
                if (k < j - 1) riders[nriders++] = sh->deferred[k].id;
                saga_free(sh->deferred[k].value);
            }
        }
        i = j;
    }
    sh->deferred_count = kept;
    if (reading) {
        int crc = saga_store_commit(sh->store);
        if (!rc) rc = crc;
    }
    if (nriders && !rc) {
        rc = sagad_shard_begin(sh);
        if (!rc) rc = saga_store_outbox_delete(sh->store, riders, nriders);
    }
    return rc;
}

/* Each shard's relay position goes back to before the lowest row this
 * pass produced: an aborted transaction's rows go out again. */
static void rewind_pass(sagad_t *d) {
    for (int p = 0; p < d->shard_count; p++) {
        sagad_shard_t *sh = &d->shards[p];
        int64_t back = sh->pass_start;
        if (sh->pass_low && sh->pass_low - 1 < back) back = sh->pass_low - 1;
        sh->relay_after = back;
    }
}

/* Hands rows to the producer: the due resends, then the new rows, all in
 * one Kafka transaction, and notes the offsets of the newest iteration
 * whose rows it completes; sagad_relay_commit commits it (docs/DESIGN.md,
 * "The commit sequence"). */
int sagad_relay_send(sagad_t *d) {
    static int64_t through[SAGA_DATADIR_MAX_PARTITIONS];
    assert(!d->relay_pending);
    /* Nothing leaves before the group check of the first assignment passed:
     * a sagad that finds another member in its group must not send the
     * outbox of its (perhaps stale) database. */
    if (!saga_bus_ready(d->bus)) return 0;
    if (saga_bus_fenced(d->bus)) return SAGA_EKAFKA;
    assert(!d->txn_open);
    int64_t now = saga_now_ms();
    for (int p = 0; p < d->shard_count; p++) {
        d->shards[p].pass_start = d->shards[p].relay_after;
        d->shards[p].pass_low = 0;
        d->shards[p].prefetched_through = 0;
    }
    int total = 0, fatal = 0;
    bool alone = false;
    for (int p = 0; p < d->shard_count && !alone; p++) {
        sagad_shard_t *sh = &d->shards[p];
        if (sh->store && sh->resend_count && resend_alone_due(d, sh, now, &fatal)) alone = true;
    }
    for (int p = 0; !alone && !fatal && p < d->shard_count; p++)
        if (d->shards[p].store && d->shards[p].resend_count) resend_due(d, &d->shards[p], now, &fatal);
    for (int p = 0; !alone && !fatal && d->cfg.changelog_topic && p < d->shard_count; p++)
        if (d->shards[p].store) fatal = prefetch_records(d, &d->shards[p]);
    /* The first shard relayed turns round: when the producer's queue fills,
     * the shards after it wait for the next pass, never the same ones. */
    static int turn;
    turn = (turn + 1) % d->shard_count;
    for (int k = 0; !alone && !fatal && k < d->shard_count; k++) {
        sagad_shard_t *sh = &d->shards[(turn + k) % d->shard_count];
        if (!sh->store) continue;
        relay_ctx_t r = {.d = d, .sh = sh, .last_id = sh->relay_after, .skip_resends = true};
        int n = saga_store_outbox_scan(sh->store, sh->relay_after, RELAY_BATCH, relay_row, &r);
        if (n < 0) return n;
        fatal = r.rc;
        assert(r.last_id < ((int64_t)1 << SAGAD_OPAQUE_SHIFT));
        sh->relay_after = r.last_id;
        total += n;
        /* The whole shard is handed over (the scan reached its end, nothing
         * waits for a resend): its changelog records may go. */
        if (!fatal && !r.queue_full && n < RELAY_BATCH && sh->resend_count == 0)
            fatal = send_records(d, sh, &r.queue_full);
        if (r.queue_full) break;
    }
    for (int p = 0; p < d->shard_count; p++) forget_encodings(&d->shards[p]); /* the state may change before they go */
    if (fatal == SAGA_EIO) return total; /* init_transactions not done yet: nothing was produced */
    if (fatal) return fatal;
    /* Every row up to through[p] is in this transaction or an earlier
     * committed one, but for those waiting in the resend list. */
    for (int p = 0; p < d->shard_count; p++) {
        sagad_shard_t *sh = &d->shards[p];
        through[p] = sh->relay_after;
        for (int i = 0; i < sh->resend_count; i++)
            if (sh->resend[i].id - 1 < through[p]) through[p] = sh->resend[i].id - 1;
        for (int i = 0; i < sh->deferred_count; i++)
            if (sh->deferred[i].id - 1 < through[p]) through[p] = sh->deferred[i].id - 1;
    }
    int covered = sagad_txnplan_covered(&d->txnplan, through);
    int64_t mono_ms = saga_monotonic_us() / 1000;
    /* Alone in the group (every shard here) the offsets may wait a little;
     * sharing it, every transaction carries them: the group generation they
     * go with is what fences this instance once it lost its shards (KIP-447). */
    bool sharing = d->owned_count < d->shard_count;
    if (covered >= 0 && !d->offsets_now && !sharing && mono_ms - d->offsets_sent_ms < OFFSETS_EVERY_MS) covered = -1;
    if (!d->txn_open && covered < 0) return total; /* nothing to deliver, no offsets to commit */
    int rc = txn_open(d);
    if (rc) return rc == SAGA_EIO ? total : rc;
    d->relay_pending = true;
    d->relay_covered = covered;
    d->relay_mono_ms = mono_ms;
    return total;
}

int sagad_relay_commit(sagad_t *d) {
    if (!d->relay_pending) return 0;
    d->relay_pending = false;
    int covered = d->relay_covered;
    bool produced = false;
    for (int p = 0; p < d->shard_count; p++) produced |= d->shards[p].pass_low > 0;
    if (produced) d->txns++;
    saga_bus_flush(d->bus, 60000);
    if (produced) {
        sagad_stall_point(covered >= 0);
        sagad_crash_point(SAGAD_CRASH_AFTER_PRODUCE);
    }
    rd_kafka_topic_partition_list_t *offsets = covered >= 0 ? d->txnplan.payload[covered] : NULL;
    /* A transaction with no new offsets carries the last ones again, so the
     * group generation check (KIP-447) still applies to it: always while
     * sharing the group; alone in it once OFFSETS_EVERY_MS passed since
     * offsets last went, the clock read here, after the produce, so that an
     * instance that stalled alone (and was replaced meanwhile) is fenced too. */
    bool sharing = d->owned_count < d->shard_count;
    int64_t since_offsets_ms = saga_monotonic_us() / 1000 - d->offsets_sent_ms;
    if (!offsets && produced && (sharing || since_offsets_ms >= OFFSETS_EVERY_MS) && d->committed &&
        d->committed->cnt > 0)
        offsets = d->committed;
    if (produced) fatal_on_purpose(d, d->txns);
    int rc = saga_bus_txn_commit(d->bus, offsets, produced && abort_on_purpose(d->txns));
    d->txn_open = false;
    if (rc == 0) {
        if (produced) sagad_crash_point(SAGAD_CRASH_AFTER_KAFKA_COMMIT);
        if (offsets && offsets != d->committed) {
            if (d->committed) rd_kafka_topic_partition_list_destroy(d->committed);
            d->committed = rd_kafka_topic_partition_list_copy(offsets);
        }
        if (covered >= 0) {
            d->offsets_sent_ms = d->relay_mono_ms;
            saga_bus_commit_offsets(d->bus, offsets); /* the dev broker drops TxnOffsetCommit */
            sagad_txnplan_drop(&d->txnplan, covered + 1, free_positions);
        }
        return 0;
    }
    if (rc != SAGA_ESTALE) return rc; /* fatal: fenced */
    /* Aborted: nothing of it is visible; its rows go out again in a later
     * transaction (the failed ones from the resend list, or parked). */
    d->counters.txn_aborts++;
    rewind_pass(d);
    sagad_relay_check_fenced(d);
    return 0;
}

void sagad_relay_check_fenced(sagad_t *d) {
    if (!saga_bus_take_stale_generation(d->bus)) return;
    /* This instance stalled past its session (or past its transaction's
     * timeout): the group gave its shards to others, whose transactions
     * win. Nothing of this one is visible; every shard goes (a file with
     * commits this transaction carried has diverged: rebuilt if it comes
     * back, restore.c). */
    d->counters.txn_fenced++;
    LOG_ERROR("relay", "relay transaction refused: this instance's group generation is stale (it lost its "
              "partitions while it stalled); aborted, giving up every shard until the group assigns again");
    sagad_ownership_release_all(d, 10000);
}

void sagad_relay_abandon(sagad_t *d) {
    if (!d->relay_pending) return;
    d->relay_pending = false;
    d->txn_open = false;
    int rc = saga_bus_txn_abort(d->bus);
    if (rc != SAGA_ESTALE) LOG_ERROR("relay", "aborting the relay transaction: %s", saga_strerror(rc));
    rewind_pass(d);
}

int sagad_relay(sagad_t *d) {
    int total = sagad_relay_send(d);
    if (total < 0) return total;
    int rc = sagad_relay_commit(d);
    return rc ? rc : total;
}

typedef struct {
    char *topic, *key, *headers, *payload;
    size_t payload_len;
    bool tombstone;
} row_copy_t;

static int copy_row(const saga_outbox_row_t *row, void *user) {
    row_copy_t *c = user;
    c->topic = saga_strdup(row->topic ? row->topic : "");
    c->key = saga_strdup(row->key ? row->key : "");
    c->headers = saga_strdup(row->headers ? row->headers : "{}");
    c->payload = saga_malloc(row->payload_len + 1);
    if (!c->topic || !c->key || !c->headers || !c->payload) return SAGA_ENOMEM;
    if (row->payload_len) memcpy(c->payload, row->payload, row->payload_len);
    c->payload[row->payload_len] = '\0';
    c->payload_len = row->payload_len;
    c->tombstone = row->payload == NULL;
    return 0;
}

static void row_copy_free(row_copy_t *c) {
    saga_free(c->topic);
    saga_free(c->key);
    saga_free(c->headers);
    saga_free(c->payload);
}

/* A command the broker refused for good: its step fails now (instead of
 * timing out and resending the same bytes). Returns the outcome. */
static int fail_command_step(sagad_t *d, sagad_shard_t *sh, const json_t *cmd, rd_kafka_resp_err_t err, const char *reason,
                             int64_t now, const char **outcome) {
    const char *saga_id = saga_json_str(cmd, "saga_id"), *step = saga_json_str(cmd, "step");
    int kind = saga_command_kind_parse(saga_json_str(cmd, "kind"));
    long long attempt = 0;
    *outcome = "dropped";
    if (!saga_id || !step || kind < 0 || saga_json_int(cmd, "attempt", &attempt)) return 0;
    saga_t *s = &sh->scratch;
    char why[512] = "";
    int rc = saga_store_load(sh->store, d->registry, saga_id, s, why, sizeof why);
    if (rc) return rc == SAGA_ENOTFOUND ? 0 : rc;
    int idx = saga_definition_step_index(s->def, step);
    if (idx >= 0) {
        bool too_large = err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE ||
                         err == RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE;
        uint64_t stale = 0;
        saga_event_t ev = {.kind = SAGA_EV_UNDELIVERABLE, .step = idx, .command_kind = (saga_command_kind_t)kind,
                           .attempt = (int)attempt, .error_code = too_large ? "PAYLOAD_TOO_LARGE" : "COMMAND_REJECTED",
                           .error_message = reason};
        rc = sagad_apply_and_save(d, sh, s, &ev, now, &stale);
        if (!rc && !stale)
            *outcome = kind == SAGA_KIND_ACTION ? "step_failed" : "compensation_failed";
    }
    saga_clear(s);
    return rc;
}

/* An event or dead letter the broker refused for good: a small stub saying
 * what was dropped takes its place (a new row, sent in order); a stub that
 * is refused too is dropped. */
static int send_stub(sagad_shard_t *sh, const row_copy_t *row, const json_t *doc, const char *reason, int64_t now,
                     const char **outcome) {
    json_t *h = json_loads(row->headers, 0, NULL);
    if (!json_is_object(h)) {
        json_decref(h);
        h = json_object();
    }
    if (json_object_get(h, "sagad_dropped")) { /* a stub already */
        json_decref(h);
        *outcome = "dropped";
        return 0;
    }
    json_object_set_new(h, "sagad_dropped", json_string(reason));
    json_t *stub = json_pack("{s:s, s:s, s:s, s:s, s:I}", "type", "saga.dropped", "saga_id", row->key, "topic",
                             row->topic, "reason", reason, "original_bytes", (json_int_t)row->payload_len);
    const char *mid = saga_json_str(doc, "message_id");
    if (stub && mid) {
        json_object_set_new(stub, "original_message_id", json_string(mid));
        char id[300];
        snprintf(id, sizeof id, "dropped/%.280s", mid);
        json_object_set_new(stub, "message_id", json_string(id));
    }
    const char *keep[] = {"type", "event", "seq", "step", "status", "dlq_reason"};
    for (size_t i = 0; stub && doc && i < sizeof keep / sizeof keep[0]; i++) {
        json_t *v = json_object_get(doc, keep[i]);
        if (v && (!json_is_string(v) || json_string_length(v) < 256))
            json_object_set(stub, i == 0 ? "original_type" : keep[i], v);
    }
    char *headers = saga_json_dump(h), *payload = stub ? saga_json_dump(stub) : NULL;
    int rc = headers && payload ? saga_store_outbox_add(sh->store, row->topic, row->key, headers, payload,
                                                        strlen(payload), now)
                                : SAGA_ENOMEM;
    saga_free(headers);
    saga_free(payload);
    json_decref(h);
    json_decref(stub);
    *outcome = "stub_sent";
    return rc;
}

/* Parks outbox row id, which the broker refused for good, and does what
 * replaces it; alerts and counts. Runs inside the loop's transaction. */
static int park_row(sagad_t *d, sagad_shard_t *sh, int64_t id, rd_kafka_resp_err_t err, int attempt, int64_t now) {
    row_copy_t row = {0};
    int rc = sagad_shard_begin(sh);
    if (!rc) rc = saga_store_outbox_get(sh->store, id, copy_row, &row);
    if (rc <= 0) {
        row_copy_free(&row);
        return rc; /* gone already */
    }
    char reason[400];
    snprintf(reason, sizeof reason, "%s refused the %zu-byte message for good: %s (%s)", row.topic, row.payload_len,
             rd_kafka_err2str(err), rd_kafka_err2name(err));
    json_t *doc = row.tombstone ? NULL : saga_json_parse(row.payload, row.payload_len, NULL, 0);
    const char *type = saga_json_str(doc, "type");
    const char *outcome = "dropped";
    /* A changelog record is never replaced by a stub (a stub under a saga
     * key would be a corrupt record for the restore): it is dropped, loudly
     * (the alert below; changelog_refused counts it). */
    bool changelog = d->cfg.changelog_topic && !strcmp(row.topic, d->cfg.changelog_topic);
    bool is_command = !changelog && type && !strcmp(type, "saga.command") &&
                      strcmp(row.topic, d->cfg.events_topic) != 0 && strcmp(row.topic, d->cfg.dlq_topic) != 0;
    rc = 0; /* saga_store_outbox_get's 1 (found) */
    if (changelog) d->counters.changelog_refused++;
    else rc = is_command ? fail_command_step(d, sh, doc, err, reason, now, &outcome)
                         : send_stub(sh, &row, doc, reason, now, &outcome);
    if (!rc) rc = saga_store_outbox_park(sh->store, id, now, reason, outcome);
    if (!rc) {
        d->counters.outbox_parked++;
        saga_log_ctx_t ctx = {.saga_id = row.key};
        saga_log(SAGA_LOG_ERROR, "relay", &ctx, "outbox row %lld parked after %d attempt(s): %s; %s", (long long)id,
                 attempt + 1, reason, outcome);
        /* At most PARKED_ALERTS_PER_MINUTE (a topic sagad may not write
         * parks every command to it); the next one counts those skipped. */
        if (now - d->parked_alert_window >= 60000) {
            d->parked_alert_window = now;
            d->parked_alerts = 0;
        }
        if (d->parked_alerts < PARKED_ALERTS_PER_MINUTE) {
            d->parked_alerts++;
            sagad_raise_alert(d, "outbox_parked",
                        json_pack("{s:I, s:s, s:s, s:s, s:s, s:I, s:i}", "outbox_id", (json_int_t)id, "topic",
                                  row.topic, "key", row.key, "reason", reason, "outcome", outcome, "bytes",
                                  (json_int_t)row.payload_len, "not_alerted_before", d->parked_unalerted));
            d->parked_unalerted = 0;
        } else {
            d->parked_unalerted++;
        }
    }
    json_decref(doc);
    row_copy_free(&row);
    return rc;
}

/* Delivery failures since the last call: transient ones are sent again
 * after a backoff, permanent ones parked. Inside the loop's transaction. */
int sagad_relay_failures(sagad_t *d, int64_t now) {
    static saga_bus_failure_t failed[MAX_FAILURES];
    int n, rc = 0;
    while (!rc && (n = saga_bus_take_failed(d->bus, failed, MAX_FAILURES)) > 0) {
        for (int i = 0; i < n; i++) {
            saga_bus_failure_t *f = &failed[i];
            int p = sagad_opaque_shard(f->id);
            int64_t row = sagad_opaque_row(f->id);
            assert(p >= 0 && p < d->shard_count);
            sagad_shard_t *sh = &d->shards[p];
            if (!sh->store) continue; /* given up: its new owner sends its own rows */
            saga_bus_error_class_t cls = saga_bus_classify(f->err);
            if (cls == SAGA_BUS_UNKNOWN_TOPIC)
                cls = f->attempt + 1 >= UNKNOWN_TOPIC_ATTEMPTS ? SAGA_BUS_PERMANENT : SAGA_BUS_TRANSIENT;
            if (cls == SAGA_BUS_TOO_LARGE)
                cls = f->at_once || f->attempt + 1 >= TOO_LARGE_ATTEMPTS ? SAGA_BUS_PERMANENT : SAGA_BUS_TRANSIENT;
            if (cls == SAGA_BUS_PERMANENT) {
                if (!rc) rc = park_row(d, sh, row, f->err, f->attempt, now);
                if (rc) schedule_resend(sh, row, f->attempt + 1, false, now); /* rolled back: try again later */
                continue;
            }
            LOG_WARN("relay", "delivery of outbox row %lld of shard %d failed: %s (attempt %d; sent again after a backoff)",
                     (long long)row, p, rd_kafka_err2str(f->err), f->attempt + 1);
            schedule_resend(sh, row, f->attempt + 1, saga_bus_classify(f->err) == SAGA_BUS_TOO_LARGE, now);
        }
    }
    return rc;
}

static int compare_opaque(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Acknowledged deliveries, sorted (by shard, then row), deleted shard by shard. */
int sagad_relay_acked(sagad_t *d) {
    static int64_t ids[4096];
    int n, rc = 0;
    while (!rc && (n = saga_bus_take_acked(d->bus, ids, 4096)) > 0) {
        qsort(ids, (size_t)n, sizeof *ids, compare_opaque);
        for (int i = 0; !rc && i < n;) {
            int p = sagad_opaque_shard(ids[i]), j = i;
            assert(p >= 0 && p < d->shard_count);
            while (j < n && sagad_opaque_shard(ids[j]) == p) {
                ids[j] = sagad_opaque_row(ids[j]);
                j++;
            }
            if (d->shards[p].store) { /* else given up since: the rows stay in its file */
                rc = sagad_shard_begin(&d->shards[p]);
                if (!rc) rc = saga_store_outbox_delete(d->shards[p].store, ids + i, j - i);
                d->deleted_in_tx = true;
            }
            i = j;
        }
    }
    /* The shards' changelog markers: the highest saga.changelog offset a
     * committed relay transaction delivered for each, in the same SQLite
     * transaction as the deletes of its rows (docs/DESIGN.md, "Changelog
     * record"). The restore's catch-up reads from there on. */
    for (int p = 0; !rc && p < d->shard_count; p++) {
        int64_t offset = saga_bus_take_marker(d->bus, p);
        if (offset < 0 || !d->shards[p].store) continue;
        rc = sagad_shard_begin(&d->shards[p]);
        int64_t old = -1;
        if (!rc && (saga_changelog_offset_get(d->shards[p].store, &old) != 0 || old < offset))
            rc = saga_changelog_offset_set(d->shards[p].store, offset);
    }
    return rc;
}

int sagad_drain_outbox(sagad_t *d, int timeout_ms) {
    int64_t deadline = saga_monotonic_us() + (int64_t)timeout_ms * 1000;
    int rc = 0;
    d->offsets_now = true; /* shutting down: every pass commits the offsets it covers */
    while (!rc && saga_bus_ready(d->bus) && saga_monotonic_us() < deadline) {
        rc = sagad_relay(d);
        if (rc < 0) break;
        saga_bus_flush(d->bus, 100);
        rc = sagad_relay_acked(d);
        if (!rc) rc = sagad_relay_failures(d, saga_now_ms());
        if (!rc) rc = sagad_commit_shards(d);
        else sagad_rollback_shards(d);
        sagad_send_alerts(d, !rc);
        if (rc) break;
        if (saga_bus_in_flight(d->bus) == 0 && outbox_backlog(d) == 0) return 0;
    }
    long long left = outbox_backlog(d);
    if (left > 0) LOG_WARN("loop", "%lld outbox message(s) not acknowledged yet; they are sent after restart", left);
    return rc;
}
