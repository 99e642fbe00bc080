/* Restores missing, corrupt or lagging shards from the changelog topic at start (restore.h). */
#define _GNU_SOURCE
#include "restore.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "changelog.h"
#include "datadir.h"
#include "saga_alloc.h"
#include "saga_clock.h"
#include "saga_error.h"
#include "saga_kafka.h"
#include "saga_log.h"
#include "store.h"

#define BATCH 10000

static bool exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static void sync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

/* Deletes path and its SQLite side files. */
static void unlink_db(const char *path) {
    static const char *const sides[] = {"", "-wal", "-shm", "-journal"};
    char p[4300];
    for (size_t i = 0; i < sizeof sides / sizeof sides[0]; i++) {
        snprintf(p, sizeof p, "%s%s", path, sides[i]);
        unlink(p);
    }
}

/* The SAGAD_CRASH_AT=during_restore hook: the record count to die after, or 0. */
static uint64_t crash_after(void) {
    const char *at = getenv("SAGAD_CRASH_AT"), *after = getenv("SAGAD_CRASH_AFTER");
    if (!at || strcmp(at, "during_restore")) return 0;
    long long n = after ? atoll(after) : 1;
    return n > 0 ? (uint64_t)n : 1;
}

/* 1 when path opens and passes PRAGMA quick_check; else 0 with why. */
static int shard_healthy(const char *path, char *why, size_t whylen) {
    sqlite3 *db = NULL;
    int ok = 0;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
        snprintf(why, whylen, "cannot open: %s", db ? sqlite3_errmsg(db) : "out of memory");
    } else {
        sqlite3_busy_timeout(db, 5000);
        sqlite3_stmt *q = NULL;
        if (sqlite3_prepare_v2(db, "PRAGMA quick_check", -1, &q, NULL) != SQLITE_OK) {
            snprintf(why, whylen, "quick_check: %s", sqlite3_errmsg(db));
        } else if (sqlite3_step(q) != SQLITE_ROW) {
            snprintf(why, whylen, "quick_check: %s", sqlite3_errmsg(db));
        } else {
            const char *r = (const char *)sqlite3_column_text(q, 0);
            ok = r && !strcmp(r, "ok");
            if (!ok) snprintf(why, whylen, "quick_check: %.300s", r ? r : "no answer");
        }
        sqlite3_finalize(q);
    }
    sqlite3_close(db);
    return ok;
}

/* Moves a corrupt shard (and its side files) aside as PATH.corrupt-<time>. */
static int move_aside(const char *path, const char *why, char *err, size_t errlen) {
    static const char *const sides[] = {"", "-wal", "-shm"};
    long long t = (long long)(saga_now_ms() / 1000);
    for (size_t i = 0; i < sizeof sides / sizeof sides[0]; i++) {
        char from[4300], to[4400];
        snprintf(from, sizeof from, "%s%s", path, sides[i]);
        snprintf(to, sizeof to, "%s.corrupt-%lld%s", path, t, sides[i]);
        if (!exists(from)) continue;
        if (rename(from, to) != 0) {
            snprintf(err, errlen, "cannot move the corrupt shard %s aside to %s: %s", from, to, strerror(errno));
            return SAGA_EIO;
        }
    }
    LOG_ERROR("restore", "shard %s is corrupt (%s): moved aside as %s.corrupt-%lld; restoring it from the changelog",
              path, why, path, t);
    return 0;
}

/* A consumer of the changelog (no group, read_committed, EOF events). */
rd_kafka_t *sagad_restore_consumer(const sagad_restore_config_t *cfg, char *err, size_t errlen) {
    /* librdkafka wants a group.id for assign(); the group is never joined
     * (no subscribe) and no offset is committed. */
    rd_kafka_conf_t *conf = saga_kafka_conf_new(SAGA_KAFKA_CONSUMER, cfg->bootstrap, "sagad-restore",
                                                "sagad-restore", cfg->props, err, errlen);
    if (!conf) return NULL;
    if (saga_kafka_conf_set(conf, "isolation.level", "read_committed", err, errlen) ||
        saga_kafka_conf_set(conf, "enable.partition.eof", "true", err, errlen) ||
        saga_kafka_conf_set(conf, "enable.auto.commit", "false", err, errlen)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    char reason[256];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, reason, sizeof reason);
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        snprintf(err, errlen, "Kafka consumer for the changelog: %s", reason);
        return NULL;
    }
    return rk;
}

/* Applies n records sorted by key then offset in one transaction; on a
 * refused record err names shard, offset and key. */
static int apply_batch(saga_store_t *st, int p, const char *topic, saga_changelog_record_t *recs, size_t n,
                       char *err, size_t errlen) {
    if (n > 1) qsort(recs, n, sizeof *recs, saga_changelog_record_cmp);
    if (saga_store_begin(st)) {
        snprintf(err, errlen, "shard %d: restore: begin: %s", p, saga_store_errmsg(st));
        return SAGA_ESTORE;
    }
    int rc = 0;
    char why[1024];
    for (size_t i = 0; !rc && i < n; i++) {
        rc = saga_changelog_apply(st, recs[i].key, recs[i].key_len, recs[i].value, recs[i].value_len, recs[i].offset,
                                  why, sizeof why);
        if (rc)
            snprintf(err, errlen,
                     "shard %d: the changelog record at %s[%d] offset %" PRId64 " (key '%.*s') cannot be applied: "
                     "%s. sagad will not start this shard on a partial state: repair or delete that record "
                     "(produce the saga's current record or a tombstone under the same key), or restore the "
                     "shard file from a backup, then start sagad again",
                     p, topic, p, recs[i].offset, (int)(recs[i].key_len > 200 ? 200 : recs[i].key_len),
                     recs[i].key, why);
    }
    if (!rc && saga_store_commit(st)) {
        snprintf(err, errlen, "shard %d: restore: commit: %s", p, saga_store_errmsg(st));
        rc = SAGA_ESTORE;
    }
    if (rc) saga_store_rollback(st);
    return rc;
}

/* Assigns topic[p] alone to rk, to be read from offset `from` (the caller
 * unassigns it when done): 0, or SAGA_EKAFKA with err saying why. */
static int assign_from(rd_kafka_t *rk, const sagad_restore_config_t *cfg, int p, int64_t from, char *err,
                       size_t errlen) {
    rd_kafka_topic_partition_list_t *tp = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(tp, cfg->topic, p)->offset = from;
    rd_kafka_resp_err_t e = rd_kafka_assign(rk, tp);
    rd_kafka_topic_partition_list_destroy(tp);
    if (e) {
        snprintf(err, errlen, "shard %d: assigning %s[%d]: %s", p, cfg->topic, p, rd_kafka_err2str(e));
        return SAGA_EKAFKA;
    }
    return 0;
}

/* Reads topic[p] from `from` up to (not including) `end` into st in batches.
 * Counts into stat. */
static int replay(rd_kafka_t *rk, const sagad_restore_config_t *cfg, int p, saga_store_t *st, int64_t from,
                  int64_t end, sagad_restore_stat_t *stat, char *err, size_t errlen) {
    int rc = assign_from(rk, cfg, p, from, err, errlen);
    if (rc) return rc;
    rd_kafka_message_t **msgs = saga_calloc(BATCH, sizeof *msgs);
    saga_changelog_record_t *recs = saga_calloc(BATCH, sizeof *recs);
    if (!msgs || !recs) {
        saga_free(msgs);
        saga_free(recs);
        snprintf(err, errlen, "out of memory");
        return SAGA_ENOMEM;
    }
    uint64_t die_after = crash_after();
    size_t n = 0;
    bool done = false;
    int64_t last_progress = saga_monotonic_us(), last_log = last_progress;
    while (!rc && !done) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (!m) {
            if (saga_monotonic_us() - last_progress > (int64_t)cfg->timeout_ms * 1000 * 6) {
                snprintf(err, errlen, "shard %d: no progress reading %s[%d] (at record %" PRIu64 ", end offset %" PRId64
                         ")", p, cfg->topic, p, stat->records + n, end);
                rc = SAGA_EKAFKA;
            }
        } else if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            done = true;
            rd_kafka_message_destroy(m);
        } else if (m->err) {
            LOG_WARN("restore", "shard %d: reading %s[%d]: %s", p, cfg->topic, p, rd_kafka_message_errstr(m));
            if (m->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET || m->err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED) {
                snprintf(err, errlen, "shard %d: reading %s[%d]: %s", p, cfg->topic, p, rd_kafka_message_errstr(m));
                rc = SAGA_EKAFKA;
            }
            rd_kafka_message_destroy(m);
        } else if (m->offset >= end) { /* produced after the restore began: the loop's business */
            done = true;
            rd_kafka_message_destroy(m);
        } else {
            last_progress = saga_monotonic_us();
            msgs[n] = m;
            recs[n] = (saga_changelog_record_t){.key = m->key ? m->key : "", .key_len = m->key_len,
                                                .value = m->payload, .value_len = m->payload ? m->len : 0,
                                                .offset = m->offset};
            n++;
            if (m->offset >= end - 1) done = true;
        }
        bool crash = die_after && stat->records + n >= die_after;
        if (!rc && n > 0 && (n == BATCH || done || crash)) {
            rc = apply_batch(st, p, cfg->topic, recs, n, err, errlen);
            for (size_t i = 0; i < n; i++) {
                if (!rc && saga_changelog_key_kind(msgs[i]->key, msgs[i]->key_len) == SAGA_CHANGELOG_KEY_SAGA &&
                    msgs[i]->payload && msgs[i]->len)
                    stat->sagas++;
                rd_kafka_message_destroy(msgs[i]);
            }
            if (!rc) stat->records += n;
            n = 0;
            if (crash && !rc) {
                LOG_ERROR("restore", "SAGAD_CRASH_AT=during_restore: exiting after %" PRIu64 " records of shard %d",
                          stat->records, p);
                _exit(137);
            }
        }
        if (saga_monotonic_us() - last_log > 5 * 1000000LL) {
            LOG_INFO("restore", "shard %d: %" PRIu64 " records applied (end offset %" PRId64 ")", p, stat->records, end);
            last_log = saga_monotonic_us();
        }
    }
    for (size_t i = 0; i < n; i++) rd_kafka_message_destroy(msgs[i]);
    saga_free(msgs);
    saga_free(recs);
    rd_kafka_assign(rk, NULL);
    return rc;
}

/* Rebuilds shard p into PATH.restoring (bulk mode), then renames it in. */
static int rebuild(rd_kafka_t *rk, const sagad_restore_config_t *cfg, int p, const char *path, int64_t low,
                   int64_t end, sagad_restore_stat_t *stat, char *err, size_t errlen) {
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s.restoring", path);
    unlink_db(tmp);
    saga_store_options_t opt = {.synchronous = "FULL"};
    saga_store_t *st = saga_store_open(tmp, &opt, err, errlen);
    if (!st) return SAGA_ESTORE;
    int rc = saga_store_meta_set(st, "partition", p);
    if (!rc) rc = saga_store_meta_set(st, "partitions", cfg->partitions);
    if (rc) snprintf(err, errlen, "%s: %s", tmp, saga_store_errmsg(st));
    if (!rc) rc = saga_changelog_bulk_begin(st, err, errlen);
    if (!rc && end > low) rc = replay(rk, cfg, p, st, low, end, stat, err, errlen);
    if (!rc) rc = saga_changelog_bulk_end(st, cfg->synchronous, err, errlen);
    saga_store_close(&st);
    if (!rc && rename(tmp, path) != 0) {
        snprintf(err, errlen, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
        rc = SAGA_EIO;
    }
    if (rc) {
        unlink_db(tmp);
        return rc;
    }
    sync_dir(cfg->dir);
    return 0;
}

/* The changelog partition starts at low > 0 while the restore needs what
 * came before (from offset 0, or after the shard's marker): those records
 * were deleted, not compacted, and sagas whose newest record was among
 * them cannot come back. Said loudly, counted; the restore goes on with
 * what is left (refusing to start would stop every other saga too). */
static void truncated(const sagad_restore_config_t *cfg, int p, int64_t low, int64_t marker, sagad_restore_stat_t *stat) {
    stat->lost_before = low;
    LOG_ERROR("restore",
              "shard %d: %s[%d] starts at offset %" PRId64 ", but the restore needs its records from offset %" PRId64
              ": they were deleted (the dev broker keeps only the last 5 MB of each partition; on Apache Kafka the "
              "topic must be cleanup.policy=compact, without retention): sagas whose newest record was there are "
              "not restored",
              p, cfg->topic, p, low, marker + 1);
}

/* "id topic key; ..." of the first outbox rows, for the log. */
typedef struct {
    char text[400];
    size_t used;
} rows_text_t;

static int describe_row(const saga_outbox_row_t *row, void *user) {
    rows_text_t *t = user;
    if (t->used < sizeof t->text)
        t->used += (size_t)snprintf(t->text + t->used, sizeof t->text - t->used, "%s#%lld %s %.60s", t->used ? "; " : "",
                                    (long long)row->id, row->topic ? row->topic : "?", row->key ? row->key : "");
    return 0;
}

/* 1 when a record of topic[p] in [from, end) was written by another
 * instance than cfg->writer (or by none named: an older sagad), with its
 * offset and writer in *at and who; 0 when all are ours; < 0 on error. */
static int foreign_record(rd_kafka_t *rk, const sagad_restore_config_t *cfg, int p, int64_t from, int64_t end,
                          int64_t *at, char *who, size_t wholen, char *err, size_t errlen) {
    int rc = assign_from(rk, cfg, p, from, err, errlen);
    if (rc) return rc;
    int found = 0;
    int64_t last_progress = saga_monotonic_us();
    while (!found) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (!m) {
            if (saga_monotonic_us() - last_progress > (int64_t)cfg->timeout_ms * 1000 * 6) {
                snprintf(err, errlen, "shard %d: no progress reading %s[%d] (end offset %" PRId64 ")", p, cfg->topic, p,
                         end);
                found = SAGA_EKAFKA;
            }
            continue;
        }
        bool done = m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF || (!m->err && m->offset >= end - 1);
        if (!m->err && m->offset < end) {
            last_progress = saga_monotonic_us();
            char writer[256];
            if (saga_kafka_header(m, SAGA_KAFKA_WRITER_HEADER, writer, sizeof writer) != 0) snprintf(writer, sizeof writer, "(none)");
            if (!cfg->writer || strcmp(writer, cfg->writer)) {
                *at = m->offset;
                snprintf(who, wholen, "%s", writer);
                found = 1;
            }
        }
        rd_kafka_message_destroy(m);
        if (done) break;
    }
    rd_kafka_assign(rk, NULL);
    return found;
}

int sagad_restore_shard(rd_kafka_t *rk, const sagad_restore_config_t *cfg, int p, sagad_restore_stat_t *stat,
                        char *err, size_t errlen) {
    assert(p >= 0 && p < cfg->partitions);
    *stat = (sagad_restore_stat_t){0};
    int rc = 0;
    char path[4200], tmp[4300], why[512];
    saga_datadir_shard_path(cfg->dir, p, path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s.restoring", path);
    if (exists(tmp)) {
        LOG_WARN("restore", "deleting %s, left by a restore that did not finish", tmp);
        unlink_db(tmp);
    }
    bool missing = !exists(path);
    if (!missing && !shard_healthy(path, why, sizeof why)) {
        rc = move_aside(path, why, err, errlen);
        missing = true;
    }
    int64_t low = 0, end = 0;
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
    for (int tries = 0; !rc; tries++) { /* the leader may be moving: a few tries */
        e = rd_kafka_query_watermark_offsets(rk, cfg->topic, p, &low, &end, cfg->timeout_ms);
        if (!e || tries >= 5) break;
        usleep(500 * 1000);
    }
    if (!rc && e) {
        snprintf(err, errlen, "shard %d: cannot read the end offset of %s[%d]: %s", p, cfg->topic, p,
                 rd_kafka_err2str(e));
        rc = SAGA_EKAFKA;
    }
    if (rc) return rc;
    int64_t t0 = saga_monotonic_us();
    if (!missing) {
        saga_store_options_t opt = {.synchronous = cfg->synchronous};
        saga_store_t *st = saga_datadir_open_shard(cfg->dir, p, cfg->partitions, &opt, err, errlen);
        if (!st) return SAGA_ESTORE;
        int64_t marker = -1;
        int got = saga_changelog_offset_get(st, &marker);
        if (got == SAGA_ENOTFOUND) marker = -1;
        else if (got) {
            snprintf(err, errlen, "shard %d: reading its changelog marker: %s", p, saga_store_errmsg(st));
            rc = SAGA_ESTORE;
        }
        /* Offsets have gaps on Apache Kafka (transaction markers): the
         * read from marker + 1 may find no record at all — the usual
         * case, as sagad's marker is the last record it delivered and a
         * commit marker follows it: then the shard was not behind. */
        int64_t from = marker + 1 < low ? low : marker + 1;
        /* Records after the marker that another instance wrote (it owned
         * the shard meanwhile) while this file holds outbox rows: those
         * rows are commits this instance made that never reached the
         * changelog (a transaction fenced or cut short), the file has
         * diverged from it and is rebuilt, never caught up in place. */
        long long unsent = rc || marker + 1 >= end ? 0 : saga_store_outbox_backlog(st);
        if (unsent > 0) {
            int64_t at = -1;
            char who[256] = "";
            int f = foreign_record(rk, cfg, p, from, end, &at, who, sizeof who, err, errlen);
            if (f < 0) rc = f;
            else if (f) {
                rows_text_t rows = {.used = 0};
                saga_store_outbox_scan(st, 0, 3, describe_row, &rows);
                LOG_WARN("restore", "shard %d: %s[%d] offset %" PRId64 " was written by instance %s after this file's "
                         "marker %" PRId64 ", while the file holds %lld outbox row(s) that never reached the changelog "
                         "(%s): its state diverged; rebuilding it from the changelog", p, cfg->topic, p, at, who, marker,
                         unsent, rows.text);
                missing = true;
                stat->diverged = true;
            }
        }
        if (!rc && !missing && marker + 1 < end) {
            if (marker + 1 < low) truncated(cfg, p, low, marker, stat);
            LOG_DEBUG("restore", "shard %d: reading %s[%d] after its marker %" PRId64 " (end offset %" PRId64 ")",
                      p, cfg->topic, p, marker, end);
            stat->kind = SAGAD_RESTORE_CAUGHT_UP;
            stat->in_progress = true;
            saga_changelog_only_newer(st, true); /* never older than what the file holds */
            rc = replay(rk, cfg, p, st, from, end, stat, err, errlen);
            if (!rc && stat->records == 0) stat->kind = SAGAD_RESTORE_NONE;
            else if (!rc)
                LOG_WARN("restore", "shard %d was behind its changelog (marker %" PRId64 ", end offset %" PRId64
                         "): caught up from offset %" PRId64, p, marker, end, from);
        }
        saga_store_close(&st);
        if (!rc && missing) unlink_db(path);
    }
    if (!rc && missing) {
        if (low > 0) truncated(cfg, p, low, -1, stat);
        if (!stat->diverged)
            LOG_WARN("restore", "shard %d (%s) is missing: restoring it from %s[%d], offsets %" PRId64 "..%" PRId64,
                     p, path, cfg->topic, p, low, end);
        stat->kind = SAGAD_RESTORE_REBUILT;
        stat->in_progress = true;
        rc = rebuild(rk, cfg, p, path, low, end, stat, err, errlen);
    }
    stat->in_progress = false;
    stat->seconds = (double)(saga_monotonic_us() - t0) / 1e6;
    if (!rc && stat->kind != SAGAD_RESTORE_NONE)
        LOG_INFO("restore", "shard %d %s: %" PRIu64 " records, %" PRIu64 " sagas in %.2f s", p,
                 stat->kind == SAGAD_RESTORE_REBUILT ? "restored" : "caught up", stat->records, stat->sagas,
                 stat->seconds);
    return rc;
}

int sagad_restore_shards(const sagad_restore_config_t *cfg, sagad_restore_stat_t *stats, char *err,
                         size_t errlen) {
    assert(cfg->partitions > 0 && cfg->partitions <= SAGA_DATADIR_MAX_PARTITIONS);
    rd_kafka_t *rk = sagad_restore_consumer(cfg, err, errlen);
    if (!rk) return SAGA_EKAFKA;
    int rc = 0;
    for (int p = 0; !rc && p < cfg->partitions; p++) {
        sagad_restore_stat_t local;
        rc = sagad_restore_shard(rk, cfg, p, stats ? &stats[p] : &local, err, errlen);
    }
    rd_kafka_destroy(rk);
    return rc;
}

json_t *sagad_restore_json(const sagad_restore_stat_t *stats, int partitions) {
    static const char *const kinds[] = {"none", "rebuilt", "caught_up"};
    json_t *a = json_array();
    for (int p = 0; a && p < partitions; p++)
        json_array_append_new(a, json_pack("{s:i, s:s, s:b, s:b, s:I, s:I, s:f, s:I}", "shard", p, "kind",
                                           kinds[stats[p].kind], "in_progress", stats[p].in_progress, "diverged", stats[p].diverged, "records",
                                           (json_int_t)stats[p].records, "sagas", (json_int_t)stats[p].sagas,
                                           "seconds", stats[p].seconds, "lost_before",
                                           (json_int_t)stats[p].lost_before));
    return a;
}
