/* txn_probe: what a running broker implements of Kafka transactions (commit, abort, KIP-447 offsets, fencing, read_committed); asserts per broker kind. */
/*
 * Usage: txn_probe BOOTSTRAP dev|kafka OUT_TOPIC IN_TOPIC
 *
 * OUT_TOPIC and IN_TOPIC must exist (partition 0 is used) and be empty.
 * Scenarios, all on OUT_TOPIC partition 0, with producer A (transactional.id T):
 *   (a) produce a-1..a-3, commit;
 *   (b) produce b-1, b-2, send offsets IN/0=1 for group G, abort;
 *   (c) produce c-1, (read_committed read and OffsetFetch while open),
 *       send offsets IN/0=3 for G (KIP-447: the group metadata of a consumer
 *       that joined G and consumed IN), commit;
 *   (d) A begins and produces d-zombie-1; producer B starts with the same T;
 *       A's commit must fail fenced; B produces d-b-1 and commits;
 *       then read_committed and read_uncommitted reads of the partition, its
 *       high watermark (control records take offsets) and G's offset;
 *   (e) after the group's member left and a new one joined, B sends offsets
 *       IN/0=2 with the old member's metadata (a zombie consumer): refused,
 *       B aborts;
 *   (f) the new member commits IN/0=3 with a plain OffsetCommit.
 *
 * The expectations are those of Apache Kafka for "kafka" and, for "dev", what
 * librdkafka 2.0.2's mock cluster really does (docs/OPERATIONS.md,
 * "Transactions on the dev broker and on Apache Kafka"): it writes no control
 * records, hides nothing from read_committed, keeps no TxnOffsetCommit offsets
 * and fences nobody (neither producers nor zombie consumers). Each check
 * prints "ok - ..." or "not ok - ..."; exit 1 when one failed, 2 on a usage
 * or set-up error. */
#include <librdkafka/rdkafka.h>

#include <assert.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef enum { BROKER_DEV, BROKER_KAFKA } broker_kind_t;

enum { TIMEOUT_MS = 30000, VALUES_MAX = 4096 };

static const char *bootstrap;
static broker_kind_t kind;
static int checks, failures;

static void check(bool ok, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("%s - ", ok ? "ok" : "not ok");
    vprintf(fmt, ap);
    printf("\n");
    fflush(stdout);
    va_end(ap);
    checks++;
    if (!ok) failures++;
}

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "txn_probe: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

static void conf_set(rd_kafka_conf_t *conf, const char *key, const char *value) {
    char err[256];
    if (rd_kafka_conf_set(conf, key, value, err, sizeof err) != RD_KAFKA_CONF_OK)
        die("config %s=%s: %s", key, value, err);
}

static rd_kafka_conf_t *conf_new(rd_kafka_type_t type) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    conf_set(conf, "bootstrap.servers", bootstrap);
    conf_set(conf, "broker.address.family", "v4");
    /* The mock answers an empty fetch only after fetch.wait.max.ms. */
    if (type == RD_KAFKA_CONSUMER) conf_set(conf, "fetch.wait.max.ms", "10");
    return conf;
}

static rd_kafka_t *client_new(rd_kafka_type_t type, rd_kafka_conf_t *conf) {
    char err[256];
    rd_kafka_t *rk = rd_kafka_new(type, conf, err, sizeof err);
    if (!rk) die("creating a %s: %s", type == RD_KAFKA_PRODUCER ? "producer" : "consumer", err);
    return rk;
}

/* Delivery failures of the producers. */
static int delivery_errors;
static rd_kafka_resp_err_t last_delivery_error;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    (void)opaque;
    if (m->err) {
        delivery_errors++;
        last_delivery_error = m->err;
    }
}

static rd_kafka_t *txn_producer_new(const char *txn_id) {
    rd_kafka_conf_t *conf = conf_new(RD_KAFKA_PRODUCER);
    conf_set(conf, "transactional.id", txn_id);
    conf_set(conf, "linger.ms", "0");
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_t *rk = client_new(RD_KAFKA_PRODUCER, conf);
    rd_kafka_error_t *e = rd_kafka_init_transactions(rk, TIMEOUT_MS);
    if (e) die("init_transactions (%s): %s", txn_id, rd_kafka_error_string(e));
    return rk;
}

/* Produces VALUE to TOPIC partition 0 and waits until it is on the broker. */
static void produce(rd_kafka_t *rk, const char *topic, const char *value) {
    rd_kafka_resp_err_t err = rd_kafka_producev(
        rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(0),
        RD_KAFKA_V_VALUE((void *)value, strlen(value)), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_END);
    if (err) die("produce %s to %s: %s", value, topic, rd_kafka_err2str(err));
    int before = delivery_errors;
    if (rd_kafka_flush(rk, TIMEOUT_MS))
        die("produce %s to %s: not delivered after %d s", value, topic, TIMEOUT_MS / 1000);
    if (delivery_errors != before)
        die("produce %s to %s: %s", value, topic, rd_kafka_err2str(last_delivery_error));
}

static void txn_must(rd_kafka_error_t *e, const char *what) {
    if (e) die("%s: %s", what, rd_kafka_error_string(e));
}

/* Adds IN/0=OFFSET for the group whose member MD describes to the current
 * transaction; the error, if any. */
static rd_kafka_error_t *send_offsets_md(rd_kafka_t *producer, const rd_kafka_consumer_group_metadata_t *md,
                                         const char *in_topic, int64_t offset) {
    rd_kafka_topic_partition_list_t *offs = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(offs, in_topic, 0)->offset = offset;
    rd_kafka_error_t *e = rd_kafka_send_offsets_to_transaction(producer, offs, md, TIMEOUT_MS);
    rd_kafka_topic_partition_list_destroy(offs);
    return e;
}

/* Adds IN/0=OFFSET for the group of CONSUMER (KIP-447: its member id and
 * generation go along) to the current transaction. */
static void send_offsets(rd_kafka_t *producer, rd_kafka_t *consumer, const char *in_topic,
                         int64_t offset) {
    rd_kafka_consumer_group_metadata_t *md = rd_kafka_consumer_group_metadata(consumer);
    if (!md) die("no group metadata from the consumer");
    txn_must(send_offsets_md(producer, md, in_topic, offset), "send_offsets_to_transaction");
    rd_kafka_consumer_group_metadata_destroy(md);
}

/* G's committed offset of IN/0 as an outside consumer with ISOLATION sees
 * it within TIMEOUT_MS; the error of the OffsetFetch in *ERR. librdkafka
 * asks for stable offsets (require_stable) when read_committed, so on Kafka
 * pending transactional offsets make that consumer wait. */
static int64_t committed_offset_err(const char *group, const char *in_topic, const char *isolation,
                                    int timeout_ms, rd_kafka_resp_err_t *err) {
    rd_kafka_conf_t *conf = conf_new(RD_KAFKA_CONSUMER);
    conf_set(conf, "group.id", group);
    conf_set(conf, "isolation.level", isolation);
    rd_kafka_t *rk = client_new(RD_KAFKA_CONSUMER, conf);
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(parts, in_topic, 0);
    *err = rd_kafka_committed(rk, parts, timeout_ms);
    if (!*err) *err = parts->elems[0].err;
    int64_t off = parts->elems[0].offset;
    rd_kafka_topic_partition_list_destroy(parts);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return off;
}

/* G's committed offset of IN/0, read_uncommitted (never waits). */
static int64_t committed_offset(const char *group, const char *in_topic) {
    rd_kafka_resp_err_t err;
    int64_t off = committed_offset_err(group, in_topic, "read_uncommitted", TIMEOUT_MS, &err);
    if (err) die("committed offsets of group %s: %s", group, rd_kafka_err2str(err));
    return off;
}

/* Reads TOPIC partition 0 from the start until end of partition (the LSO
 * for read_committed), the payloads comma-separated into OUT. */
static void read_partition(const char *topic, const char *isolation, char *out, size_t outlen) {
    rd_kafka_conf_t *conf = conf_new(RD_KAFKA_CONSUMER);
    char group[64];
    snprintf(group, sizeof group, "txn-probe-reader-%d", (int)getpid());
    conf_set(conf, "group.id", group);
    conf_set(conf, "enable.auto.commit", "false");
    conf_set(conf, "enable.partition.eof", "true");
    conf_set(conf, "isolation.level", isolation);
    rd_kafka_t *rk = client_new(RD_KAFKA_CONSUMER, conf);
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(parts, topic, 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
    if (rd_kafka_assign(rk, parts)) die("assign %s/0", topic);
    rd_kafka_topic_partition_list_destroy(parts);
    size_t len = 0;
    out[0] = '\0';
    bool eof = false;
    time_t deadline = time(NULL) + TIMEOUT_MS / 1000;
    while (!eof && time(NULL) < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m) continue;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            eof = true;
        } else if (m->err) {
            fprintf(stderr, "txn_probe: reading %s (%s): %s\n", topic, isolation, rd_kafka_message_errstr(m));
        } else {
            int n = snprintf(out + len, outlen - len, "%s%.*s", len ? "," : "", (int)m->len,
                             (const char *)m->payload);
            if (n > 0 && (size_t)n < outlen - len) len += (size_t)n;
        }
        rd_kafka_message_destroy(m);
    }
    if (!eof) die("reading %s/0 with %s: no end of partition after %d s", topic, isolation, TIMEOUT_MS / 1000);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
}

static int64_t high_watermark(rd_kafka_t *rk, const char *topic) {
    int64_t lo = -1, hi = -1;
    rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(rk, topic, 0, &lo, &hi, TIMEOUT_MS);
    if (err) die("watermarks of %s/0: %s", topic, rd_kafka_err2str(err));
    return hi;
}

static bool has_assignment(rd_kafka_t *rk) {
    rd_kafka_topic_partition_list_t *parts = NULL;
    if (rd_kafka_assignment(rk, &parts)) return false;
    bool any = parts->cnt > 0;
    rd_kafka_topic_partition_list_destroy(parts);
    return any;
}

/* A consumer of IN in group G that has joined (has partitions) and consumed
 * IN/0's COUNT records: its group metadata is what KIP-447 sends with the
 * offsets. */
static rd_kafka_t *group_consumer_new(const char *group, const char *in_topic, int count) {
    rd_kafka_conf_t *conf = conf_new(RD_KAFKA_CONSUMER);
    conf_set(conf, "group.id", group);
    conf_set(conf, "enable.auto.commit", "false");
    conf_set(conf, "auto.offset.reset", "earliest");
    conf_set(conf, "isolation.level", "read_committed");
    conf_set(conf, "session.timeout.ms", "6000");
    rd_kafka_t *rk = client_new(RD_KAFKA_CONSUMER, conf);
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(sub, in_topic, RD_KAFKA_PARTITION_UA);
    if (rd_kafka_subscribe(rk, sub)) die("subscribe %s", in_topic);
    rd_kafka_topic_partition_list_destroy(sub);
    int got = 0;
    time_t deadline = time(NULL) + TIMEOUT_MS / 1000;
    while ((got < count || !has_assignment(rk)) && time(NULL) < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m) continue;
        if (!m->err && m->partition == 0) got++;
        rd_kafka_message_destroy(m);
    }
    if (got < count || !has_assignment(rk))
        die("group %s: joined %s, consumed %d of %d records of %s/0", group, has_assignment(rk) ? "yes" : "no",
            got, count, in_topic);
    return rk;
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static const char *offset_str(int64_t off, char *buf, size_t len) {
    if (off == RD_KAFKA_OFFSET_INVALID) snprintf(buf, len, "none");
    else snprintf(buf, len, "%lld", (long long)off);
    return buf;
}

/* (e) KIP-447's zombie fencing: B sends offsets with the group metadata of
 * a member that has since left G (*CONSUMERP, replaced by a new member).
 * (f) The new member commits IN/0=3 with a plain OffsetCommit. */
static void zombie_consumer(rd_kafka_t *b, rd_kafka_t **consumerp, const char *group, const char *out,
                            const char *in, bool dev) {
    char buf[VALUES_MAX], o1[32];
    rd_kafka_consumer_group_metadata_t *old = rd_kafka_consumer_group_metadata(*consumerp);
    if (!old) die("no group metadata from the consumer");
    rd_kafka_consumer_close(*consumerp);
    rd_kafka_destroy(*consumerp);
    *consumerp = group_consumer_new(group, in, 0);
    txn_must(rd_kafka_begin_transaction(b), "(e) begin B");
    produce(b, out, "e-1");
    rd_kafka_error_t *e = send_offsets_md(b, old, in, 2);
    rd_kafka_consumer_group_metadata_destroy(old);
    if (dev) {
        check(!e, "(e) dev: offsets sent with the metadata of a member that left the group are accepted "
              "(mock TxnOffsetCommit is v2 at most: no member or generation check)%s%s",
              e ? ": " : "", e ? rd_kafka_error_string(e) : "");
        if (e) rd_kafka_error_destroy(e);
        e = rd_kafka_commit_transaction(b, TIMEOUT_MS);
        check(!e, "(e) dev: that transaction commits%s%s", e ? ": " : "", e ? rd_kafka_error_string(e) : "");
    } else {
        check(e && rd_kafka_error_txn_requires_abort(e) &&
                  (rd_kafka_error_code(e) == RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID ||
                   rd_kafka_error_code(e) == RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION),
              "(e) offsets sent with the metadata of a member that left the group are refused "
              "(UNKNOWN_MEMBER_ID or ILLEGAL_GENERATION), the transaction must abort (got %s)",
              e ? rd_kafka_error_name(e) : "success");
        if (e) rd_kafka_error_destroy(e);
        e = rd_kafka_abort_transaction(b, TIMEOUT_MS);
        check(!e, "(e) B aborts that transaction%s%s", e ? ": " : "", e ? rd_kafka_error_string(e) : "");
    }
    if (e) rd_kafka_error_destroy(e);
    int64_t off = committed_offset(group, in);
    if (dev)
        check(off == RD_KAFKA_OFFSET_INVALID, "(e) dev: the group has no committed offset (got %s)",
              offset_str(off, o1, sizeof o1));
    else
        check(off == 3, "(e) the group's committed offset is still 3 (got %s)", offset_str(off, o1, sizeof o1));
    read_partition(out, "read_committed", buf, sizeof buf);
    if (dev)
        check(!strcmp(buf, "a-1,a-2,a-3,b-1,b-2,c-1,d-zombie-1,d-b-1,e-1"),
              "(e) dev: read_committed sees e-1 too (got %s)", buf);
    else
        check(!strcmp(buf, "a-1,a-2,a-3,c-1,d-b-1"), "(e) read_committed does not see e-1 (got %s)", buf);

    rd_kafka_topic_partition_list_t *offs = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(offs, in, 0)->offset = 3;
    rd_kafka_resp_err_t err = rd_kafka_commit(*consumerp, offs, 0);
    rd_kafka_topic_partition_list_destroy(offs);
    off = committed_offset(group, in);
    check(!err && off == 3, "(f) a plain OffsetCommit by the group's member stores IN/0=3 (the dev "
          "broker's only way to store offsets) (commit: %s, committed: %s)", rd_kafka_err2name(err),
          offset_str(off, o1, sizeof o1));
}

int main(int argc, char **argv) {
    if (argc != 5 || (strcmp(argv[2], "dev") && strcmp(argv[2], "kafka")))
        die("usage: txn_probe BOOTSTRAP dev|kafka OUT_TOPIC IN_TOPIC");
    bootstrap = argv[1];
    kind = !strcmp(argv[2], "dev") ? BROKER_DEV : BROKER_KAFKA;
    const char *out = argv[3], *in = argv[4];
    bool dev = kind == BROKER_DEV;
    char txn_id[64], group[64], buf[VALUES_MAX], o1[32];
    snprintf(txn_id, sizeof txn_id, "txn-probe-%d", (int)getpid());
    snprintf(group, sizeof group, "txn-probe-group-%d", (int)getpid());
    printf("# broker %s (%s), transactional.id %s, group %s\n", bootstrap, dev ? "dev" : "kafka", txn_id, group);

    /* Input of the group: 3 records on IN/0 from a plain idempotent producer. */
    rd_kafka_conf_t *pconf = conf_new(RD_KAFKA_PRODUCER);
    conf_set(pconf, "enable.idempotence", "true");
    rd_kafka_conf_set_dr_msg_cb(pconf, on_delivery);
    rd_kafka_t *plain = client_new(RD_KAFKA_PRODUCER, pconf);
    for (int i = 1; i <= 3; i++) {
        char v[16];
        snprintf(v, sizeof v, "in-%d", i);
        produce(plain, in, v);
    }
    rd_kafka_t *consumer = group_consumer_new(group, in, 3);
    double t0 = now_ms();
    rd_kafka_t *a = txn_producer_new(txn_id);
    printf("# init_transactions: %.1f ms\n", now_ms() - t0);

    /* (a) commit */
    txn_must(rd_kafka_begin_transaction(a), "(a) begin");
    for (int i = 1; i <= 3; i++) {
        char v[16];
        snprintf(v, sizeof v, "a-%d", i);
        produce(a, out, v);
    }
    t0 = now_ms();
    rd_kafka_error_t *e = rd_kafka_commit_transaction(a, TIMEOUT_MS);
    printf("# (a) commit_transaction: %.1f ms\n", now_ms() - t0);
    check(!e, "(a) a transaction of 3 records commits%s%s", e ? ": " : "", e ? rd_kafka_error_string(e) : "");
    if (e) rd_kafka_error_destroy(e);

    /* (b) abort, with offsets */
    txn_must(rd_kafka_begin_transaction(a), "(b) begin");
    produce(a, out, "b-1");
    produce(a, out, "b-2");
    send_offsets(a, consumer, in, 1);
    e = rd_kafka_abort_transaction(a, TIMEOUT_MS);
    check(!e, "(b) a transaction of 2 records and offsets aborts%s%s", e ? ": " : "",
          e ? rd_kafka_error_string(e) : "");
    if (e) rd_kafka_error_destroy(e);
    int64_t off = committed_offset(group, in);
    check(off == RD_KAFKA_OFFSET_INVALID, "(b) the aborted transaction's offsets are not committed (got %s)",
          offset_str(off, o1, sizeof o1));

    /* (c) offsets with KIP-447 group metadata, commit; the LSO while open */
    txn_must(rd_kafka_begin_transaction(a), "(c) begin");
    produce(a, out, "c-1");
    read_partition(out, "read_committed", buf, sizeof buf);
    if (dev)
        check(!strcmp(buf, "a-1,a-2,a-3,b-1,b-2,c-1"),
              "(c) dev: read_committed while c is open reads to the high watermark, aborted "
              "and open records included (mock: LSO = HWM, no aborted list) (got %s)", buf);
    else
        check(!strcmp(buf, "a-1,a-2,a-3"),
              "(c) read_committed while c is open stops at the LSO, aborted records hidden (got %s)", buf);
    t0 = now_ms();
    send_offsets(a, consumer, in, 3);
    printf("# (c) send_offsets_to_transaction: %.1f ms\n", now_ms() - t0);
    off = committed_offset(group, in);
    check(off == RD_KAFKA_OFFSET_INVALID, "(c) offsets sent in the open transaction are not visible yet (got %s)",
          offset_str(off, o1, sizeof o1));
    rd_kafka_resp_err_t ferr;
    off = committed_offset_err(group, in, "read_committed", 3000, &ferr);
    if (dev)
        check(!ferr && off == RD_KAFKA_OFFSET_INVALID,
              "(c) dev: a read_committed consumer's OffsetFetch answers at once (got %s, %s)",
              rd_kafka_err2name(ferr), offset_str(off, o1, sizeof o1));
    else
        check(ferr == RD_KAFKA_RESP_ERR__TIMED_OUT || ferr == RD_KAFKA_RESP_ERR_UNSTABLE_OFFSET_COMMIT,
              "(c) a read_committed consumer's OffsetFetch waits while the transaction's offsets are "
              "pending (require_stable: UNSTABLE_OFFSET_COMMIT, retried until the 3 s timeout) (got %s)",
              rd_kafka_err2name(ferr));
    t0 = now_ms();
    e = rd_kafka_commit_transaction(a, TIMEOUT_MS);
    printf("# (c) commit_transaction: %.1f ms\n", now_ms() - t0);
    check(!e, "(c) the transaction with records and offsets commits%s%s", e ? ": " : "",
          e ? rd_kafka_error_string(e) : "");
    if (e) rd_kafka_error_destroy(e);
    off = committed_offset(group, in);
    if (dev)
        check(off == RD_KAFKA_OFFSET_INVALID,
              "(c) dev: the committed transaction's offsets are NOT stored (mock TxnOffsetCommit "
              "discards them) (got %s)", offset_str(off, o1, sizeof o1));
    else
        check(off == 3, "(c) the group's committed offset is the one the transaction sent, 3 (got %s)",
              offset_str(off, o1, sizeof o1));

    /* (d) fencing: B with the same transactional.id while A has an open
     * transaction. */
    txn_must(rd_kafka_begin_transaction(a), "(d) begin A");
    produce(a, out, "d-zombie-1");
    rd_kafka_t *b = txn_producer_new(txn_id);
    e = rd_kafka_commit_transaction(a, TIMEOUT_MS);
    if (dev) {
        check(!e, "(d) dev: A's commit after B started with the same transactional.id succeeds "
              "(mock: a new producer id per InitProducerId, no fencing)%s%s",
              e ? ": " : "", e ? rd_kafka_error_string(e) : "");
    } else {
        rd_kafka_resp_err_t code = e ? rd_kafka_error_code(e) : RD_KAFKA_RESP_ERR_NO_ERROR;
        char fatal[256] = "";
        rd_kafka_resp_err_t fcode = rd_kafka_fatal_error(a, fatal, sizeof fatal);
        check(e && rd_kafka_error_is_fatal(e) && fcode == RD_KAFKA_RESP_ERR__FENCED,
              "(d) A's commit fails with a fatal fencing error once B started with the same "
              "transactional.id (commit: %s; fatal: %s %s)",
              e ? rd_kafka_err2name(code) : "success", rd_kafka_err2name(fcode), fatal);
    }
    if (e) rd_kafka_error_destroy(e);
    txn_must(rd_kafka_begin_transaction(b), "(d) begin B");
    produce(b, out, "d-b-1");
    e = rd_kafka_commit_transaction(b, TIMEOUT_MS);
    check(!e, "(d) B's transaction commits%s%s", e ? ": " : "", e ? rd_kafka_error_string(e) : "");
    if (e) rd_kafka_error_destroy(e);

    /* What consumers see in the end. */
    const char *all = "a-1,a-2,a-3,b-1,b-2,c-1,d-zombie-1,d-b-1";
    read_partition(out, "read_committed", buf, sizeof buf);
    if (dev)
        check(!strcmp(buf, all), "dev: read_committed sees every record, aborted and fenced ones "
              "included (mock: no aborted list, no markers) (got %s)", buf);
    else
        check(!strcmp(buf, "a-1,a-2,a-3,c-1,d-b-1"),
              "read_committed sees exactly the committed records (got %s)", buf);
    read_partition(out, "read_uncommitted", buf, sizeof buf);
    check(!strcmp(buf, all), "read_uncommitted sees every data record, no control record (got %s)", buf);
    int64_t hwm = high_watermark(plain, out);
    /* 8 data records; on Kafka 5 control records: commit (a), abort (b),
     * commit (c), abort (A's zombie transaction, by B's InitProducerId),
     * commit (d). */
    if (dev)
        check(hwm == 8, "dev: the high watermark is 8, the data records only (mock EndTxn writes no "
              "control records) (got %lld)", (long long)hwm);
    else
        check(hwm == 13, "the high watermark is 13: 8 data records + 5 transaction markers (got %lld)",
              (long long)hwm);
    off = committed_offset(group, in);
    if (dev)
        check(off == RD_KAFKA_OFFSET_INVALID, "dev: the group still has no committed offset (got %s)",
              offset_str(off, o1, sizeof o1));
    else
        check(off == 3, "the group's committed offset is still 3 (got %s)", offset_str(off, o1, sizeof o1));

    zombie_consumer(b, &consumer, group, out, in, dev);

    rd_kafka_consumer_close(consumer);
    rd_kafka_destroy(consumer);
    rd_kafka_destroy(a);
    rd_kafka_destroy(b);
    rd_kafka_flush(plain, TIMEOUT_MS);
    rd_kafka_destroy(plain);
    assert(checks > 0);
    printf("# %d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
