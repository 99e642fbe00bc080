// Where the runner produces a reply: explicitly at the command's reply_partition, else keyed by
// saga_id with the Java client's default partitioner (murmur2, the saga's partition in sagad).
package dev.sagad.participant;

import org.apache.kafka.clients.producer.MockProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.internals.BuiltInPartitioner;
import org.apache.kafka.common.Cluster;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.apache.kafka.common.utils.Utils;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

class ReplyPartitionTest {
    static MockProducer<String, byte[]> producer(int partitions) {
        Node n = new Node(0, "localhost", 9092);
        List<PartitionInfo> parts = new ArrayList<>();
        for (int i = 0; i < partitions; i++) parts.add(new PartitionInfo("saga.replies", i, n, new Node[] {n}, new Node[] {n}));
        Cluster cluster = new Cluster("c", List.of(n), parts, Set.of(), Set.of());
        return new MockProducer<>(cluster, true, null, new StringSerializer(), new ByteArraySerializer());
    }

    static Reply reply(String saga, int partition) {
        return new Reply("r-1", "saga.replies", partition, saga, "{}".getBytes(StandardCharsets.UTF_8), Status.SUCCESS, false);
    }

    @Test
    void explicitPartitionIsUsedAsGiven() throws Exception {
        MockProducer<String, byte[]> mp = producer(8);
        // a saga whose murmur2 partition is not 6: the explicit one must win
        String saga = "o-1-saga";
        int murmur = Utils.toPositive(Utils.murmur2(saga.getBytes(StandardCharsets.UTF_8))) % 8;
        int given = (murmur + 1) % 8;
        ProducerRecord<String, byte[]> rec = KafkaRunner.record(mp, reply(saga, given), null);
        assertEquals(given, rec.partition());
        assertEquals(given, mp.send(rec).get().partition());
        assertEquals("o-1-saga", new String(rec.headers().lastHeader("saga_id").value(), StandardCharsets.UTF_8));
        assertEquals("application/json", new String(rec.headers().lastHeader("content-type").value(), StandardCharsets.UTF_8));
    }

    @Test
    void withoutOneTheDefaultPartitionerHashesTheSagaIdWithMurmur2() {
        MockProducer<String, byte[]> mp = producer(8);
        for (String saga : List.of("o-1-saga", "s-2", "crash-17", "x")) {
            ProducerRecord<String, byte[]> rec = KafkaRunner.record(mp, reply(saga, -1), null);
            assertNull(rec.partition(), "left to the producer's default partitioner");
            assertEquals(saga, rec.key());
            // what KafkaProducer does with a keyed record and no partitioner.class: murmur2, as sagad
            byte[] key = saga.getBytes(StandardCharsets.UTF_8);
            assertEquals(Utils.toPositive(Utils.murmur2(key)) % 8, BuiltInPartitioner.partitionForKey(key, 8));
        }
    }

    @Test
    void aPartitionTheTopicLacksFallsBackToTheKey() {
        MockProducer<String, byte[]> mp = producer(4);
        Reply r = reply("s-9", 6);
        ProducerRecord<String, byte[]> rec = KafkaRunner.record(mp, r, null);
        assertNull(rec.partition());
        assertEquals(-1, r.partition, "re-sends use the key too");
    }
}
