"""Unit tests of the Kafka runner with stand-in clients (no broker): offsets are stored only after the
ledger commit and every reply's delivery report; failed deliveries are produced again; replies go to
their command's reply_partition with the saga_id key and headers; stopping with undelivered replies
stores no offset."""
import json
import logging
import os
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from confluent_kafka import KafkaError  # noqa: E402

from sagad_participant import ACTION, Handler, Participant  # noqa: E402
from sagad_participant.runner import Runner  # noqa: E402

logging.disable(logging.CRITICAL)


class Msg:
    def __init__(self, partition, offset, value, headers=None):
        self._p, self._o, self._v, self._h = partition, offset, value, headers

    def topic(self): return "toy.commands"
    def partition(self): return self._p
    def offset(self): return self._o
    def value(self): return self._v
    def headers(self): return self._h
    def error(self): return None
    def timestamp(self): return (1, int(time.time() * 1000) - 20)  # CreateTime, 20 ms ago


class FakeConsumer:
    """Hands out the given batches, then stops the runner; records stored offsets and what the
    producer had acknowledged when they were stored."""

    def __init__(self, batches, producer):
        self.batches, self.producer, self.stored, self.closed = list(batches), producer, [], False

    def subscribe(self, topics, on_assign, on_revoke):
        on_assign(self, ["toy.commands[0]"])

    def consume(self, num_messages, timeout):
        if self.batches:
            return self.batches.pop(0)
        self.runner.stop()
        return []

    def store_offsets(self, offsets):
        self.stored.append(({(tp.topic, tp.partition): tp.offset for tp in offsets}, list(self.producer.acked)))

    def close(self):
        self.closed = True


class FakeProducer:
    """Acknowledges on flush; `fail` maps a reply message_id to how many deliveries of it fail
    (with `error`), `forever` fails every one and stops the runner (SIGTERM) at the third flush."""

    def __init__(self, fail=None, error=KafkaError._MSG_TIMED_OUT, forever=False):
        self.fail, self.error, self.forever = dict(fail or {}), error, forever
        self.pending, self.produced, self.acked, self.flushes = [], [], [], 0

    def produce(self, topic, value, key, partition, headers, on_delivery):
        mid = json.loads(value)["message_id"]
        self.produced.append({"topic": topic, "key": key, "partition": partition, "headers": headers, "id": mid})
        self.pending.append((mid, on_delivery))

    def flush(self, timeout=None):
        self.flushes += 1
        if self.forever and self.flushes == 3:
            self.runner.stop()
        pending, self.pending = self.pending, []
        for mid, cb in pending:
            if self.forever or self.fail.get(mid, 0) > 0:
                self.fail[mid] = self.fail.get(mid, 0) - 1
                cb(KafkaError(self.error), None)
            else:
                self.acked.append(mid)
                cb(None, None)
        return 0

    def poll(self, timeout=None):
        return 0


def command(saga, reply_partition=2, **extra):
    doc = {"type": "saga.command", "message_id": f"{saga}/n/action/1", "saga_id": saga, "step": "n",
           "kind": "action", "action": "toy.do", "attempt": 1, "idempotency_key": f"{saga}/n/action",
           "reply_to": "saga.replies", "reply_partition": reply_partition, "payload": {}}
    doc.update(extra)
    return json.dumps(doc).encode()


class RunnerTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.p = Participant("toy", [Handler("toy.do", ACTION, lambda db, cmd: {"done": cmd.saga_id})],
                             os.path.join(self.tmp.name, "toy.db"))

    def tearDown(self):
        self.p.close()
        self.tmp.cleanup()

    def run_batches(self, batches, producer):
        consumer = FakeConsumer(batches, producer)
        ready = os.path.join(self.tmp.name, "ready")
        self.metrics = os.path.join(self.tmp.name, "toy.prom")
        runner = Runner(self.p, "unused:9092", "toy.commands", "g", "toy-worker", ready, {}, 500,
                        producer=producer, consumer=consumer, metrics_file=self.metrics)
        consumer.runner = producer.runner = runner
        runner.run()
        self.assertTrue(consumer.closed)
        return consumer, ready

    def test_offsets_stored_after_every_reply_is_acknowledged(self):
        producer = FakeProducer(fail={"r-b/n/action/1": 2})
        batch = [Msg(0, 10, command("a"), [("traceparent", b"00-abc-def-01")]), Msg(0, 11, command("b")),
                 Msg(1, 5, command("c", reply_partition=0)), Msg(0, 12, b"junk")]
        consumer, ready = self.run_batches([batch], producer)
        self.assertEqual(len(consumer.stored), 1)
        offsets, acked_then = consumer.stored[0]
        self.assertEqual(offsets, {("toy.commands", 0): 13, ("toy.commands", 1): 6})  # junk skipped, offset stored
        self.assertEqual(sorted(acked_then), ["r-a/n/action/1", "r-b/n/action/1", "r-c/n/action/1"])
        self.assertEqual([p["id"] for p in producer.produced].count("r-b/n/action/1"), 3)  # re-produced until acked
        first = producer.produced[0]
        self.assertEqual((first["topic"], first["key"], first["partition"]), ("saga.replies", b"a", 2))
        self.assertEqual(first["headers"], [("saga_id", "a"), ("content-type", "application/json"),
                                            ("traceparent", b"00-abc-def-01")])
        self.assertEqual([p["key"] for p in producer.produced[:3]], [b"a", b"b", b"c"])  # in consumed order
        with open(ready) as f:
            self.assertEqual(f.read(), "READY\n")
        with open(self.metrics) as f:  # --metrics-file: the C runner's metrics
            prom = f.read().splitlines()
        for line in ("participant_commands_total 4", "participant_batches_total 1",
                     'participant_consume_lag_seconds_bucket{le="0.01"} 0',
                     'participant_consume_lag_seconds_bucket{le="0.05"} 4',
                     'participant_consume_lag_seconds_bucket{le="+Inf"} 4', "participant_process_duration_seconds_count 1",
                     "# TYPE participant_reply_duration_seconds histogram"):
            self.assertIn(line, prom)

    def test_a_partition_the_topic_lacks_is_replaced_by_the_key(self):
        producer = FakeProducer(fail={"r-x/n/action/1": 1}, error=KafkaError._UNKNOWN_PARTITION)
        consumer, _ = self.run_batches([[Msg(0, 0, command("x", reply_partition=99))]], producer)
        self.assertEqual([p["partition"] for p in producer.produced], [99, -1])
        self.assertEqual(consumer.stored[0][0], {("toy.commands", 0): 1})

    def test_stopping_with_undelivered_replies_stores_no_offset(self):
        producer = FakeProducer(forever=True)
        consumer, _ = self.run_batches([[Msg(0, 0, command("y"))]], producer)
        self.assertEqual(consumer.stored, [])
        # the outcome is in the ledger: the re-delivered command gets the stored reply
        again = self.p.process(command("y"))
        self.assertTrue(again.duplicate)


if __name__ == "__main__":
    unittest.main()
