// The Kafka side of a participant, as workers/lib's participant_run.c: poll a batch of commands,
// process it in one ledger transaction, produce the replies (idempotent producer, acks=all) to each
// command's reply_partition, wait until Kafka acknowledged every one, and only then commit the
// consumer offsets. A crash anywhere in between re-delivers the commands, which the ledger's
// `processed` rows answer with their stored replies.
package dev.sagad.participant;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.Producer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.AuthorizationException;
import org.apache.kafka.common.errors.OutOfOrderSequenceException;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.apache.kafka.common.errors.UnsupportedVersionException;
import org.apache.kafka.common.errors.WakeupException;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.StringSerializer;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

public final class KafkaRunner {
    /** What the runner needs besides the participant. */
    public static final class Options {
        public String bootstrap, topic, group, clientId, readyFile;
        public int batchMax = 500;
        public Map<String, String> kafkaProps = new HashMap<>();
    }

    /** librdkafka names (the C workers' -X, and what scripts/stack passes) with another name in Java. */
    static final Map<String, String> LIBRDKAFKA_TO_JAVA = Map.of(
            "fetch.wait.max.ms", "fetch.max.wait.ms",
            "message.timeout.ms", "delivery.timeout.ms",
            "sasl.mechanisms", "sasl.mechanism");

    private final Participant p;
    private final Options o;
    private volatile boolean stop;
    private KafkaConsumer<byte[], byte[]> consumer;

    public KafkaRunner(Participant p, Options o) {
        this.p = p;
        this.o = o;
    }

    /** Asks the loop to finish its batch and return (from a signal handler's thread). */
    public void requestStop() {
        stop = true;
        KafkaConsumer<byte[], byte[]> c = consumer;
        if (c != null) c.wakeup();
    }

    /** -X properties under their Java names; one that neither client knows is named in a warning. */
    static Properties javaProps(Map<String, String> given) {
        Properties props = new Properties();
        given.forEach((k, v) -> {
            String key = LIBRDKAFKA_TO_JAVA.getOrDefault(k, k);
            if (!ProducerConfig.configNames().contains(key) && !ConsumerConfig.configNames().contains(key))
                Log.warn("participant", "-X " + k + ": not a property of Apache Kafka's Java client; ignored");
            else props.put(key, v);
        });
        return props;
    }

    private Properties producerProps() {
        Properties pp = new Properties();
        pp.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, o.bootstrap);
        pp.put(ProducerConfig.CLIENT_ID_CONFIG, o.clientId + "-producer");
        pp.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        pp.put(ProducerConfig.ACKS_CONFIG, "all");
        pp.put(ProducerConfig.LINGER_MS_CONFIG, "0"); // a saga waits on every hop
        pp.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
        pp.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "30000");
        // No partitioner set: Kafka's default (murmur2 of the key) for a reply without reply_partition.
        for (var e : javaProps(o.kafkaProps).entrySet())
            if (ProducerConfig.configNames().contains((String) e.getKey())) pp.put(e.getKey(), e.getValue());
        return pp;
    }

    private Properties consumerProps() {
        Properties cp = new Properties();
        cp.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, o.bootstrap);
        cp.put(ConsumerConfig.CLIENT_ID_CONFIG, o.clientId);
        cp.put(ConsumerConfig.GROUP_ID_CONFIG, o.group);
        // sagad writes commands in Kafka transactions; Java's default would also read aborted ones
        cp.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        cp.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false"); // committed after the replies are acknowledged
        cp.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        cp.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, Integer.toString(o.batchMax));
        cp.put(ConsumerConfig.FETCH_MAX_WAIT_MS_CONFIG, "10");
        cp.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, "6000"); // a replaced worker's partitions move on quickly
        cp.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, "1000");
        for (var e : javaProps(o.kafkaProps).entrySet())
            if (ConsumerConfig.configNames().contains((String) e.getKey())) cp.put(e.getKey(), e.getValue());
        return cp;
    }

    /** Runs until requestStop(); throws KafkaException on a fatal Kafka error (exit 1). */
    public void run() {
        String name = p.spec.name;
        try (KafkaProducer<String, byte[]> producer = new KafkaProducer<>(producerProps(), new StringSerializer(), new ByteArraySerializer());
             KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(consumerProps(), new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
            consumer = c;
            if (stop) return;
            c.subscribe(List.of(o.topic), new ConsumerRebalanceListener() {
                private boolean readyWritten;

                @Override
                public void onPartitionsAssigned(Collection<TopicPartition> parts) {
                    Log.info(name, "assigned " + parts.size() + " partition(s)");
                    if (o.readyFile != null && !readyWritten) readyWritten = writeReady(o.readyFile, name);
                }

                @Override
                public void onPartitionsRevoked(Collection<TopicPartition> parts) {
                    // every batch's offsets are committed before the next poll: nothing pending
                    Log.info(name, parts.size() + " partition(s) revoked");
                }
            });
            Log.info(name, "consuming " + o.topic + " as group " + o.group + " (bootstrap " + o.bootstrap + ")");
            while (!stop) {
                ConsumerRecords<byte[], byte[]> records;
                try {
                    records = c.poll(Duration.ofMillis(100));
                } catch (WakeupException e) {
                    break;
                }
                if (records.isEmpty()) continue;
                List<ConsumerRecord<byte[], byte[]>> batch = new ArrayList<>();
                records.forEach(batch::add);
                Reply[] replies = processBatch(batch);
                if (deliverAll(producer, batch, replies)) commitOffsets(c, batch);
            }
            Log.info(name, "stopping: " + p.processedCount() + " commands processed");
        } finally {
            consumer = null;
        }
    }

    private static boolean writeReady(String path, String name) {
        try {
            Path target = Path.of(path), tmp = Path.of(path + ".tmp");
            Files.writeString(tmp, "READY\n");
            Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            return true;
        } catch (IOException e) {
            Log.error(name, "cannot write ready file '" + path + "': " + e.getMessage());
            return false;
        }
    }

    private static String where(ConsumerRecord<?, ?> r) { return r.topic() + "[" + r.partition() + "]@" + r.offset(); }

    /** The batch in one ledger transaction; when its commit fails, each command in its own. */
    private Reply[] processBatch(List<ConsumerRecord<byte[], byte[]>> batch) {
        Reply[] replies = new Reply[batch.size()];
        boolean began;
        try {
            p.batchBegin();
            began = true;
        } catch (java.sql.SQLException e) {
            Log.error(p.spec.name, "cannot begin a ledger transaction: " + e.getMessage());
            began = false;
        }
        for (int i = 0; began && i < batch.size(); i++)
            replies[i] = p.batchProcess(batch.get(i).value(), where(batch.get(i))).reply();
        if (began && p.batchCommit()) return replies;
        Log.warn(p.spec.name, "batch of " + batch.size() + " rolled back; processing its commands one by one");
        for (int i = 0; i < batch.size(); i++) replies[i] = p.process(batch.get(i).value(), where(batch.get(i)));
        return replies;
    }

    /** The reply's record: at its command's reply_partition when the topic has it, else keyed (murmur2). */
    static ProducerRecord<String, byte[]> record(Producer<String, byte[]> producer, Reply r, Header traceparent) {
        Integer partition = null;
        if (r.partition >= 0) {
            int count = producer.partitionsFor(r.topic).size();
            if (r.partition < count) partition = r.partition;
            else forgetPartition(r, count);
        }
        ProducerRecord<String, byte[]> rec = new ProducerRecord<>(r.topic, partition, r.key, r.body);
        rec.headers().add("saga_id", r.key.getBytes(StandardCharsets.UTF_8))
                .add("content-type", "application/json".getBytes(StandardCharsets.UTF_8));
        if (traceparent != null) rec.headers().add("traceparent", traceparent.value());
        return rec;
    }

    private static void forgetPartition(Reply r, int count) {
        Log.warn("participant", "reply_partition " + r.partition + " is not a partition of " + r.topic + " (" + count
                + " partitions): the reply for saga " + r.key + " is produced keyed by its saga_id instead");
        r.partition = -1;
    }

    /** Sends every reply and waits until all are acknowledged, sending failed ones again (they are
     * deterministic) until they succeed or a stop is asked. True when all were delivered. */
    private boolean deliverAll(KafkaProducer<String, byte[]> producer, List<ConsumerRecord<byte[], byte[]>> batch, Reply[] replies) {
        List<Integer> pending = new ArrayList<>();
        for (int i = 0; i < replies.length; i++) if (replies[i] != null && replies[i].body != null) pending.add(i);
        for (int round = 0; !pending.isEmpty(); round++) {
            if (stop && round > 1) {
                Log.warn("participant", "stopping with " + pending.size() + " reply(ies) undelivered: offsets not committed, "
                        + "the commands will be re-delivered and answered from the ledger");
                return false;
            }
            if (round > 0) sleep(200);
            Map<Integer, Future<RecordMetadata>> sent = new HashMap<>();
            for (int i : pending) {
                try {
                    sent.put(i, producer.send(record(producer, replies[i], batch.get(i).headers().lastHeader("traceparent"))));
                } catch (KafkaException e) {
                    if (isFatal(e)) throw e;
                    Log.warn("participant", "cannot produce reply to " + replies[i].topic + ": " + e.getMessage());
                }
            }
            List<Integer> failed = new ArrayList<>();
            for (int i : pending) {
                Future<RecordMetadata> f = sent.get(i);
                try {
                    if (f == null) throw new ExecutionException("not sent", null);
                    f.get(60, TimeUnit.SECONDS);
                } catch (ExecutionException | TimeoutException e) {
                    if (e.getCause() != null && isFatal(e.getCause()))
                        throw new KafkaException("fatal Kafka error: " + e.getCause().getMessage(), e.getCause());
                    if (f != null) Log.warn("participant", "reply to " + replies[i].topic + " not delivered: " + e.getMessage());
                    failed.add(i);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    return false;
                }
            }
            pending = failed;
        }
        return true;
    }

    /** Errors a retry cannot cure (the C runner's rd_kafka_fatal_error): the worker exits 1. */
    static boolean isFatal(Throwable t) {
        return t instanceof AuthorizationException || t instanceof UnsupportedVersionException
                || t instanceof ProducerFencedException || t instanceof OutOfOrderSequenceException;
    }

    private static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private void commitOffsets(KafkaConsumer<byte[], byte[]> c, List<ConsumerRecord<byte[], byte[]>> batch) {
        Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
        for (ConsumerRecord<byte[], byte[]> r : batch)
            offsets.merge(new TopicPartition(r.topic(), r.partition()), new OffsetAndMetadata(r.offset() + 1),
                    (a, b) -> a.offset() >= b.offset() ? a : b);
        try {
            c.commitSync(offsets);
        } catch (WakeupException e) {
            c.commitSync(offsets); // asked to stop meanwhile: the batch is done, keep its offsets
        } catch (KafkaException e) {
            // typically a partition revoked meanwhile: its commands are re-delivered to the new
            // owner and answered from the ledger
            Log.warn(p.spec.name, "committing offsets: " + e.getMessage());
        }
    }
}
