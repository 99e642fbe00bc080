/* sagarestore: times a shard restore from saga.changelog records
 * (docs/BENCHMARKS.md, "Restore"). Builds N live order_fulfillment sagas
 * in a source shard through the real engine (fake clock), encodes each as
 * its changelog record (saga_changelog_encode), then applies them all to an
 * empty shard file, one SQLite transaction per batch, and prints the time.
 * Saga ids are random-looking (s-<16 hex>), as sagad makes them, so records
 * arrive in no key order. -S sorts each batch by key, -B uses bulk mode. */
#include <getopt.h>
#include <sys/resource.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "changelog.h"
#include "replay.h"
#include "saga_alloc.h"
#include "saga_clock.h"
#include "saga_error.h"
#include "store.h"

#define DIE(...) do { fprintf(stderr, "sagarestore: " __VA_ARGS__); fputc('\n', stderr); exit(1); } while (0)

typedef saga_changelog_record_t record_t;

static int64_t g_now = 1700000000000;
static uint64_t g_rng = 7;

/* Saga i's id: random-looking, as sagad makes them (s-<16 hex>), so the
 * restore inserts in no particular key order, as a real changelog does. */
static void saga_id_of(int i, char *buf, size_t len) {
    uint64_t z = (uint64_t)i * 0x9E3779B97F4A7C15ull + 1;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    snprintf(buf, len, "s-%016" PRIx64, z ^ (z >> 31));
}

static void apply(saga_store_t *st, saga_t *s, const saga_event_t *ev) {
    saga_effects_t fx;
    saga_effects_init(&fx);
    char why[256];
    saga_engine_config_t cfg = {.replies_topic = "saga.replies"};
    if (saga_engine_apply(&cfg, s, ev, g_now, &g_rng, &fx, why, sizeof why)) DIE("engine: %s: %s", s->id, why);
    if (saga_store_save(st, s, &fx, "saga.events", g_now)) DIE("save: %s", saga_store_errmsg(st));
    saga_effects_free(&fx);
    g_now += 3;
}

/* One live saga: started, create_order done, reserve_inventory retried once
 * and running again, so it has outputs, history, a step timer and the
 * deadline timer. */
static void build_saga(saga_store_t *st, const saga_definition_t *def, int i) {
    char id[64], mid[64], order[64];
    saga_id_of(i, id, sizeof id);
    snprintf(mid, sizeof mid, "m-%s", id);
    snprintf(order, sizeof order, "o-%07d", i);
    json_t *input = json_pack("{s:s, s:s, s:i, s:[{s:s, s:i}]}", "order_id", order, "customer", "c-1", "amount",
                              1999 + i % 100, "items", "sku", "sku-1", "qty", 2);
    saga_t s;
    saga_init(&s, id, def, input, "00-0123456789abcdef0123456789abcdef-0123456789abcdef-01", g_now);
    json_decref(input);
    if (saga_store_insert(st, &s, mid)) DIE("insert: %s", saga_store_errmsg(st));
    saga_event_t ev = {.kind = SAGA_EV_START};
    apply(st, &s, &ev);
    json_t *out = json_pack("{s:s}", "order_ref", order);
    ev = (saga_event_t){.kind = SAGA_EV_REPLY, .step = 0, .command_kind = SAGA_KIND_ACTION, .attempt = 1,
                        .reply_status = SAGA_REPLY_SUCCESS, .output = out};
    apply(st, &s, &ev);
    json_decref(out);
    ev = (saga_event_t){.kind = SAGA_EV_REPLY, .step = 1, .command_kind = SAGA_KIND_ACTION, .attempt = 1,
                        .reply_status = SAGA_REPLY_RETRY, .error_code = "BUSY", .error_message = "try again"};
    apply(st, &s, &ev);
    ev = (saga_event_t){.kind = SAGA_EV_TIMER, .slot = 1, .timer_kind = SAGA_TIMER_BACKOFF, .timer_attempt = 1};
    g_now += 20000; /* past any backoff */
    apply(st, &s, &ev);
    if (s.status != SAGA_STATUS_RUNNING || s.steps[1].status != SAGA_STEP_RUNNING) DIE("%s: not live", id);
    saga_clear(&s);
}

static double seconds_since(int64_t t0) { return (double)(saga_monotonic_us() - t0) / 1e6; }

/* CPU seconds (user + system) of this process so far. */
static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

int main(int argc, char **argv) {
    int n = 100000, batch = 1000, opt, sorted = 0, bulk = 0;
    const char *dir = NULL, *sync = "FULL";
    while ((opt = getopt(argc, argv, "n:b:d:s:SBh")) != -1) {
        switch (opt) {
        case 'n': n = atoi(optarg); break;
        case 'b': batch = atoi(optarg); break;
        case 'd': dir = optarg; break;
        case 's': sync = optarg; break;
        case 'S': sorted = 1; break;
        case 'B': bulk = 1; break;
        default:
            fprintf(stderr, "usage: sagarestore [-n SAGAS (100000)] [-b RECORDS_PER_TRANSACTION (1000)]"
                            " [-d DIR (a new /tmp directory, removed after)] [-s SYNCHRONOUS (FULL)]\n"
                            "  -S  apply each batch sorted by key (then offset)\n"
                            "  -B  bulk mode (saga_changelog_bulk_begin/_end: journal off, one fsync at the end)\n");
            return opt == 'h' ? 0 : 2;
        }
    }
    if (n < 1 || batch < 1) DIE("-n and -b must be positive");
    char tmp[64] = "/tmp/sagarestore-XXXXXX", src_path[512], dst_path[512], err[512];
    if (!dir && !(dir = mkdtemp(tmp))) DIE("mkdtemp failed");
    snprintf(src_path, sizeof src_path, "%s/source.db", dir);
    snprintf(dst_path, sizeof dst_path, "%s/restored.db", dir);
    unlink(src_path);
    unlink(dst_path);

    saga_registry_t *reg = saga_registry_new();
    if (saga_registry_load_dir(reg, SAGA_SOURCE_DIR "/sagas", err, sizeof err)) DIE("sagas/: %s", err);
    const saga_definition_t *def = saga_registry_get(reg, "order_fulfillment", 1);
    if (!def) DIE("sagas/order_fulfillment.json not found");

    /* 1. the source shard (not timed; synchronous=OFF) */
    saga_store_options_t fast = {.synchronous = "OFF"};
    saga_store_t *src = saga_store_open(src_path, &fast, err, sizeof err);
    if (!src) DIE("%s", err);
    int64_t t0 = saga_monotonic_us();
    saga_store_begin(src);
    if (saga_store_put_definition(src, def, g_now, err, sizeof err)) DIE("%s", err);
    for (int i = 0; i < n; i++) {
        build_saga(src, def, i);
        if (i % 5000 == 4999) {
            saga_store_commit(src);
            saga_store_begin(src);
        }
    }
    if (saga_store_commit(src)) DIE("commit: %s", saga_store_errmsg(src));
    fprintf(stderr, "built %d live sagas in %.1f s\n", n, seconds_since(t0));

    /* 2. the records, in memory, as a consumer would hand them over */
    record_t *recs = calloc((size_t)n + 1, sizeof *recs);
    size_t bytes = 0, largest = 0;
    char key[256];
    t0 = saga_monotonic_us();
    saga_changelog_definition_key(def->name, def->version, key, sizeof key);
    recs[0].key = strdup(key);
    recs[0].key_len = strlen(key);
    recs[0].offset = 0;
    char *value;
    if (saga_changelog_encode_definition(src, def->name, def->version, 0, &value, &recs[0].value_len, err,
                                         sizeof err))
        DIE("%s", err);
    recs[0].value = value;
    for (int i = 0; i < n; i++) {
        record_t *r = &recs[i + 1];
        saga_id_of(i, key, sizeof key);
        r->key = strdup(key);
        r->key_len = strlen(key);
        r->offset = i + 1;
        if (saga_changelog_encode(src, key, 0, &value, &r->value_len, err, sizeof err)) DIE("%s", err);
        r->value = value;
        bytes += r->value_len;
        if (r->value_len > largest) largest = r->value_len;
    }
    double encode_s = seconds_since(t0);
    fprintf(stderr, "encoded %d records in %.1f s: %.1f MB, %zu bytes on average, largest %zu\n", n, encode_s,
            (double)bytes / 1e6, bytes / (size_t)n, largest);

    /* 3. the restore (timed): an empty shard file, synchronous as asked */
    saga_store_options_t durable = {.synchronous = sync};
    t0 = saga_monotonic_us();
    double cpu0 = cpu_seconds();
    saga_store_t *dst = saga_store_open(dst_path, &durable, err, sizeof err);
    if (!dst) DIE("%s", err);
    if (bulk && saga_changelog_bulk_begin(dst, err, sizeof err)) DIE("%s", err);
    for (int i = 0; i <= n; i += batch) {
        int end = i + batch <= n + 1 ? i + batch : n + 1;
        if (sorted) {
            if (saga_changelog_apply_batch(dst, recs + i, (size_t)(end - i), err, sizeof err)) DIE("%s", err);
            continue;
        }
        if (saga_store_begin(dst)) DIE("begin: %s", saga_store_errmsg(dst));
        for (int j = i; j < end; j++) {
            record_t *r = &recs[j];
            if (saga_changelog_apply(dst, r->key, r->key_len, r->value, r->value_len, r->offset, err, sizeof err))
                DIE("%s", err);
        }
        if (saga_store_commit(dst)) DIE("commit: %s", saga_store_errmsg(dst));
    }
    if (bulk && saga_changelog_bulk_end(dst, sync, err, sizeof err)) DIE("%s", err);
    double restore_s = seconds_since(t0), restore_cpu = cpu_seconds() - cpu0;

    /* 4. checks (not timed): the marker, and one saga as the admin API shows it */
    int64_t marker = -1;
    if (saga_changelog_offset_get(dst, &marker) || marker != n) DIE("marker %" PRId64 ", expected %d", marker, n);
    saga_t a, b;
    char diff[256];
    saga_id_of(n / 2, key, sizeof key);
    if (saga_store_load(src, reg, key, &a, err, sizeof err) || saga_store_load(dst, reg, key, &b, err, sizeof err))
        DIE("%s", err);
    if (!saga_equal(&a, &b, diff, sizeof diff)) DIE("%s differs after restore: %s", key, diff);
    saga_clear(&a);
    saga_clear(&b);
    if (saga_store_state_at(dst, reg, key, INT64_MAX, &b, err, sizeof err)) DIE("%s", err);
    saga_clear(&b);

    printf("restore: %d sagas (%.1f MB of records) into an empty shard, %s%s, %d records per "
           "transaction%s: %.2f s (%.0f records/s; %.2f s CPU)\n",
           n, (double)bytes / 1e6, bulk ? "bulk (journal off, then fsync), then synchronous=" : "synchronous=", sync,
           batch, sorted ? " sorted by key" : "", restore_s, n / restore_s, restore_cpu);
    for (int i = 0; i <= n; i++) {
        free((char *)recs[i].key);
        saga_free((char *)recs[i].value);
    }
    free(recs);
    saga_store_close(&src);
    saga_store_close(&dst);
    saga_registry_free(&reg);
    if (strcmp(dir, tmp) == 0) {
        unlink(src_path);
        unlink(dst_path);
        char wal[600];
        snprintf(wal, sizeof wal, "%s-wal", src_path); unlink(wal);
        snprintf(wal, sizeof wal, "%s-shm", src_path); unlink(wal);
        snprintf(wal, sizeof wal, "%s-wal", dst_path); unlink(wal);
        snprintf(wal, sizeof wal, "%s-shm", dst_path); unlink(wal);
        rmdir(dir);
    }
    return 0;
}
