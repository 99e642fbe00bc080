"""The Kafka side of a participant (confluent-kafka), as workers/lib/participant_run.c.

Consume a batch of commands, process it in one ledger transaction, produce the replies with the
idempotent producer (acks=all) to each command's reply_partition, wait for every delivery report,
and only then store the consumer offsets (enable.auto.offset.store=false; auto commit writes the
stored ones). A crash anywhere in between re-delivers the commands, which the ledger's `processed`
rows turn into re-sent stored replies. Partitions are consumed in order, one batch at a time.
"""
import logging
import os
import time

from confluent_kafka import TIMESTAMP_CREATE_TIME, Consumer, KafkaError, KafkaException, Producer, TopicPartition

log = logging.getLogger("sagad_participant")

PRODUCER_DEFAULTS = {
    "enable.idempotence": True, "acks": "all", "linger.ms": 0, "message.timeout.ms": 30000,
    # Keyed records land where Java's default partitioner puts them (murmur2 of the key;
    # librdkafka's own default is crc32): the fallback when a command has no reply_partition.
    "partitioner": "murmur2_random",
}
CONSUMER_DEFAULTS = {
    "isolation.level": "read_committed",  # sagad writes in transactions
    "enable.auto.offset.store": False, "enable.auto.commit": True, "auto.commit.interval.ms": 500,
    "auto.offset.reset": "earliest", "fetch.wait.max.ms": 10, "session.timeout.ms": 6000,
    "heartbeat.interval.ms": 1000, "enable.partition.eof": False,
}
COMMON = {"broker.address.family": "v4", "socket.nagle.disable": True}


def write_file_atomic(path, text):
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


class Stages:
    """Where a command's time goes (--metrics-file): the C runner's histograms, in Prometheus text."""
    BOUNDS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5)  # saga_hist_fast_bounds
    HELP = {"participant_consume_lag_seconds": "A command's timestamp (its producer's clock) to the participant's poll",
            "participant_process_duration_seconds": "A batch's handlers and ledger commit",
            "participant_reply_duration_seconds": "A batch's replies produced until all are acknowledged"}

    def __init__(self):
        self.hist = {name: [[0] * (len(self.BOUNDS) + 1), 0.0] for name in self.HELP}
        self.commands = self.batches = 0
        self.written = 0.0

    def add(self, name, seconds):
        h = self.hist[name]
        h[0][next((i for i, b in enumerate(self.BOUNDS) if seconds <= b), len(self.BOUNDS))] += 1
        h[1] += seconds

    def write(self, path):
        lines = ["# HELP participant_commands_total Commands processed (duplicates included)",
                 "# TYPE participant_commands_total counter", f"participant_commands_total {self.commands}",
                 "# HELP participant_batches_total Batches processed (one ledger transaction each)",
                 "# TYPE participant_batches_total counter", f"participant_batches_total {self.batches}"]
        for name, (counts, total) in self.hist.items():
            lines += [f"# HELP {name} {self.HELP[name]}", f"# TYPE {name} histogram"]
            for i, le in enumerate([f"{b:g}" for b in self.BOUNDS] + ["+Inf"]):
                lines.append(f'{name}_bucket{{le="{le}"}} {sum(counts[:i + 1])}')
            lines += [f"{name}_sum {total:.6f}", f"{name}_count {sum(counts)}"]
        try:
            write_file_atomic(path, "\n".join(lines) + "\n")
        except OSError as e:
            log.warning("cannot write metrics file '%s': %s", path, e)
        self.written = time.monotonic()


class _Slot:
    """One consumed command, its reply and the reply's delivery state (None pending, True, False)."""

    def __init__(self, msg):
        self.msg, self.reply, self.delivered = msg, None, True
        self.traceparent = next((v for k, v in (msg.headers() or []) if k == "traceparent"), None)


class Runner:
    """Runs a Participant on Kafka until stop() (or a signal handler setting .stopping)."""

    def __init__(self, participant, bootstrap, topic, group, client_id, ready_file=None, kafka_props=None,
                 batch_max=500, producer=None, consumer=None, metrics_file=None):
        self.p, self.topic, self.group, self.ready_file = participant, topic, group, ready_file
        self.metrics_file, self.stages = metrics_file, Stages()
        self.batch_max = 1 if participant.faults.delay_ms > 0 else batch_max  # a slow worker: one at a time
        self.stopping, self.fatal, self.ready_written = False, None, False
        base = {"bootstrap.servers": bootstrap, "client.id": client_id, "error_cb": self._on_error,
                "logger": logging.getLogger("rdkafka"), **COMMON}
        props = dict(kafka_props or {})
        # producer/consumer: given by tests only (stand-ins with the same methods)
        self.producer = producer if producer is not None else Producer({**base, **PRODUCER_DEFAULTS, **props})
        self.consumer = consumer if consumer is not None else Consumer(
            {**base, **CONSUMER_DEFAULTS, "group.id": group, **props})

    def stop(self):
        self.stopping = True

    def _on_error(self, err):
        if err.fatal():
            self.fatal = err
        log.warning("kafka: %s", err)

    def _on_assign(self, consumer, parts):
        log.info("assigned %d partition(s)", len(parts))
        if self.ready_file and not self.ready_written:
            try:
                write_file_atomic(self.ready_file, "READY\n")
                self.ready_written = True
            except OSError as e:
                log.error("cannot write ready file '%s': %s", self.ready_file, e)

    def _on_revoke(self, consumer, parts):
        log.info("%d partition(s) revoked", len(parts))

    # ---- replies -----------------------------------------------------------------------------
    def _forget_partition(self, r):
        log.warning("reply_partition %d is not a partition of %s: the reply for saga %s is produced keyed "
                    "by its saga_id instead", r.partition, r.topic, r.key)
        r.partition = -1

    def _produce(self, slot):
        r = slot.reply
        headers = [("saga_id", r.key), ("content-type", "application/json")]
        if slot.traceparent is not None:
            headers.append(("traceparent", slot.traceparent))

        def on_delivery(err, _msg):
            if err is not None:
                log.warning("reply to %s not delivered: %s", r.topic, err)
                if err.code() == KafkaError._UNKNOWN_PARTITION and r.partition >= 0:
                    self._forget_partition(r)
            slot.delivered = err is None

        slot.delivered = None
        while True:
            try:
                self.producer.produce(r.topic, value=r.body.encode(), key=r.key.encode(), partition=r.partition,
                                      headers=headers, on_delivery=on_delivery)
                return
            except BufferError:
                if self.stopping:
                    break
                self.producer.poll(0.05)
            except KafkaException as e:
                if e.args[0].code() == KafkaError._UNKNOWN_PARTITION and r.partition >= 0:
                    self._forget_partition(r)
                    continue
                log.error("cannot produce reply to %s: %s", r.topic, e)
                break
        slot.delivered = False

    def _deliver_all(self, slots):
        """Sends every reply of the batch and waits until all are acknowledged; failed deliveries
        are produced again (the replies are deterministic). True when all were delivered."""
        for s in slots:
            if s.reply.body is not None:
                self._produce(s)
        rounds = 0
        while True:
            self.producer.flush(10)
            pending = sum(1 for s in slots if s.delivered is None)
            failed = [s for s in slots if s.delivered is False]
            if not pending and not failed:
                return True
            if self.stopping and rounds > 0:
                log.warning("stopping with %d reply(ies) undelivered: offsets not stored, the commands will be "
                            "re-delivered and answered from the ledger", pending + len(failed))
                return False
            rounds += 1
            if failed:
                time.sleep(0.2)
                for s in failed:
                    self._produce(s)

    def _store_offsets(self, slots):
        last = {}
        for s in slots:
            key = (s.msg.topic(), s.msg.partition())
            last[key] = max(last.get(key, 0), s.msg.offset() + 1)
        try:
            self.consumer.store_offsets(offsets=[TopicPartition(t, p, o) for (t, p), o in last.items()])
        except KafkaException as e:
            # typically a partition revoked meanwhile: its commands go to the new owner, answered from the ledger
            log.warning("storing offsets: %s", e)

    def _process_batch(self, slots):
        def where(m):
            return f"{m.topic()}[{m.partition()}]@{m.offset()}"
        self.p.batch_begin()
        for s in slots:
            s.reply = self.p.batch_process(s.msg.value(), where(s.msg))
        if self.p.batch_commit():
            return
        # The group commit failed and was rolled back: one transaction per command.
        log.warning("batch of %d rolled back; processing its commands one by one", len(slots))
        for s in slots:
            s.reply = self.p.process(s.msg.value(), where(s.msg))

    def _note_consume_lag(self, m):
        """The command's timestamp (its producer's clock, CreateTime) to now."""
        kind, ts = m.timestamp()
        now_ms = time.time() * 1000
        if kind == TIMESTAMP_CREATE_TIME and 0 < ts <= now_ms:
            self.stages.add("participant_consume_lag_seconds", (now_ms - ts) / 1000)

    # ---- the loop ----------------------------------------------------------------------------
    def run(self):
        """Consume, process, reply, store offsets until stopped. Raises KafkaException on a fatal error."""
        self.consumer.subscribe([self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
        log.info("consuming %s as group %s", self.topic, self.group)
        try:
            while not self.stopping and self.fatal is None:
                msgs = self.consumer.consume(num_messages=self.batch_max, timeout=0.1)
                self.producer.poll(0)
                slots = []
                for m in msgs:
                    if m.error():
                        if m.error().code() != KafkaError._PARTITION_EOF:
                            log.warning("consumer: %s", m.error())
                    else:
                        slots.append(_Slot(m))
                        self._note_consume_lag(m)
                if self.metrics_file and time.monotonic() - self.stages.written >= 1:
                    self.stages.write(self.metrics_file)
                if not slots:
                    continue
                t0 = time.monotonic()
                self._process_batch(slots)
                t1 = time.monotonic()
                delivered = self._deliver_all(slots)
                self.stages.add("participant_process_duration_seconds", t1 - t0)
                self.stages.add("participant_reply_duration_seconds", time.monotonic() - t1)
                self.stages.commands += len(slots)
                self.stages.batches += 1
                if delivered:
                    self._store_offsets(slots)
                log.debug("batch of %d commands done", len(slots))
            log.info("stopping: %d commands processed", self.p.processed)
            if self.metrics_file:
                self.stages.write(self.metrics_file)
        finally:
            self.producer.flush(10)
            self.consumer.close()  # commits the stored offsets
        if self.fatal is not None:
            raise KafkaException(self.fatal)
