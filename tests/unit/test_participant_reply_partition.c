/* participant_run against an in-process mock Kafka cluster: each reply goes
 * to the partition its command names in reply_partition (not where
 * librdkafka's default crc32 partitioner or murmur2 would put it), and a
 * command without one (or with one the topic lacks) is answered keyed by
 * saga_id with murmur2, Java's default partitioner. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_filter.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "participant.h"
#include "saga_json.h"
#include "saga_partition.h"

#define REPLY_PARTITIONS 8

static int ok_handler(sqlite3 *db, const participant_command_t *cmd, participant_result_t *res, void *user) {
    (void)db;
    (void)cmd;
    (void)user;
    res->output = json_object();
    return 0;
}

static const participant_handler_t HANDLERS[] = {
    {"toy.do", PARTICIPANT_ACTION, ok_handler},
    {NULL, PARTICIPANT_ACTION, NULL},
};

static const participant_spec_t TOY = {
    .name = "toy", .program = "toy-worker", .env_prefix = "TOY_WORKER", .summary = "test",
    .handlers = HANDLERS,
};

typedef struct {
    participant_t *p;
    participant_run_opts_t opts;
    int rc;
    char err[256];
} runner_t;

static void *run_thread(void *arg) {
    runner_t *r = arg;
    r->rc = participant_run(r->p, &r->opts, r->err, sizeof r->err);
    return NULL;
}

static rd_kafka_t *client(rd_kafka_type_t type, const char *bootstrap) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char e[256];
    assert_int_equal(rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, e, sizeof e), RD_KAFKA_CONF_OK);
    if (type == RD_KAFKA_CONSUMER)
        assert_int_equal(rd_kafka_conf_set(conf, "group.id", "check", e, sizeof e), RD_KAFKA_CONF_OK);
    rd_kafka_t *rk = rd_kafka_new(type, conf, e, sizeof e);
    assert_non_null(rk);
    return rk;
}

/* One command for saga `id` (reply_partition rp, or none when rp == -1). */
static void send_command(rd_kafka_t *producer, const char *id, int rp) {
    char text[512];
    char extra[48] = "";
    if (rp != -1) snprintf(extra, sizeof extra, ", \"reply_partition\": %d", rp);
    snprintf(text, sizeof text,
             "{\"type\": \"saga.command\", \"message_id\": \"%s/s/action/1\", \"saga_id\": \"%s\","
             " \"definition\": \"d\", \"step\": \"s\", \"kind\": \"action\", \"action\": \"toy.do\","
             " \"attempt\": 1, \"idempotency_key\": \"%s/s/action\", \"payload\": {},"
             " \"reply_to\": \"saga.replies\"%s, \"deadline\": \"2030-01-01T00:00:00Z\"}",
             id, id, id, extra);
    assert_int_equal(rd_kafka_producev(producer, RD_KAFKA_V_TOPIC("toy.commands"), RD_KAFKA_V_PARTITION(0),
                                       RD_KAFKA_V_KEY(id, strlen(id)), RD_KAFKA_V_VALUE(text, strlen(text)),
                                       RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
}

static void test_reply_goes_to_the_commanded_partition(void **state) {
    (void)state;
    static const struct { const char *id; int rp, want; } cases[] = {
        /* murmur2 -> 7, crc32 -> 6: the commanded partition wins */
        {"s-1", 2, 2},
        /* none: murmur2 (4), not librdkafka's default crc32 (3) */
        {"a", -1, 4},
        /* not a partition of saga.replies: murmur2 (6), not crc32 (5) */
        {"foobar", 99, 6},
        {"order-17", 0, 0},
    };
    const int ncases = (int)(sizeof cases / sizeof cases[0]);
    for (int i = 0; i < ncases; i++)
        if (cases[i].rp < 0 || cases[i].rp >= REPLY_PARTITIONS)
            assert_int_equal(cases[i].want, saga_partition_of(cases[i].id, REPLY_PARTITIONS));
        else
            assert_int_not_equal(cases[i].want, saga_partition_of(cases[i].id, REPLY_PARTITIONS));

    char e[256];
    rd_kafka_t *host = rd_kafka_new(RD_KAFKA_PRODUCER, rd_kafka_conf_new(), e, sizeof e);
    assert_non_null(host);
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(host, 1);
    assert_non_null(mc);
    assert_int_equal(rd_kafka_mock_topic_create(mc, "toy.commands", 1, 1), 0);
    assert_int_equal(rd_kafka_mock_topic_create(mc, "saga.replies", REPLY_PARTITIONS, 1), 0);
    const char *bootstrap = rd_kafka_mock_cluster_bootstraps(mc);

    char dir[] = "/tmp/saga-rp-XXXXXX", db[64];
    assert_non_null(mkdtemp(dir));
    snprintf(db, sizeof db, "%s/toy.db", dir);
    static volatile sig_atomic_t stop;
    stop = 0;
    runner_t r = {0};
    r.p = participant_open(&TOY, db, e, sizeof e);
    assert_non_null(r.p);
    r.opts = (participant_run_opts_t){.bootstrap = bootstrap, .topic = "toy.commands", .group = "toy",
                                      .stop = &stop};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, run_thread, &r), 0);

    rd_kafka_t *producer = client(RD_KAFKA_PRODUCER, bootstrap);
    for (int i = 0; i < ncases; i++) send_command(producer, cases[i].id, cases[i].rp);
    assert_int_equal(rd_kafka_flush(producer, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);

    rd_kafka_t *consumer = client(RD_KAFKA_CONSUMER, bootstrap);
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(REPLY_PARTITIONS);
    for (int p = 0; p < REPLY_PARTITIONS; p++)
        rd_kafka_topic_partition_list_add(parts, "saga.replies", p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    assert_int_equal(rd_kafka_assign(consumer, parts), 0);
    rd_kafka_topic_partition_list_destroy(parts);
    int got[8] = {-1, -1, -1, -1, -1, -1, -1, -1}, seen = 0;
    for (int tries = 0; tries < 300 && seen < ncases; tries++) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(consumer, 100);
        if (!m) continue;
        if (!m->err) {
            json_t *reply = saga_json_parse(m->payload, m->len, NULL, 0);
            const char *sid = saga_json_str(reply, "saga_id");
            for (int i = 0; sid && i < ncases; i++)
                if (!strcmp(sid, cases[i].id) && got[i] < 0) {
                    got[i] = (int)m->partition;
                    seen++;
                }
            json_decref(reply);
        }
        rd_kafka_message_destroy(m);
    }
    stop = 1;
    pthread_join(th, NULL);
    assert_int_equal(r.rc, 0);
    for (int i = 0; i < ncases; i++) {
        if (got[i] != cases[i].want)
            fprintf(stderr, "saga %s (reply_partition %d): reply on partition %d, expected %d\n", cases[i].id,
                    cases[i].rp, got[i], cases[i].want);
        assert_int_equal(got[i], cases[i].want);
    }

    rd_kafka_consumer_close(consumer);
    rd_kafka_destroy(consumer);
    rd_kafka_destroy(producer);
    participant_close(&r.p);
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(host);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(int argc, char **argv) {
    saga_test_filter(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reply_goes_to_the_commanded_partition),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
