// Creates topics on the test broker (kcat cannot): used by scripts/kafka start.
//   java -cp 'CACHE/*:CACHE/classes' CreateTopics BOOTSTRAP PARTITIONS TOPIC...
// TOPIC:compact creates TOPIC with cleanup.policy=compact (the changelog).
// The replication factor is the broker's default.replication.factor (3 on
// a three-node cluster, 1 on one node). Topics that exist already are left
// alone. Exit 0 once every topic exists and each partition has a leader and
// every replica in sync.
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;

public class CreateTopics {
    public static void main(String[] args) throws Exception {
        if (args.length < 3) {
            System.err.println("usage: CreateTopics BOOTSTRAP PARTITIONS TOPIC...");
            System.exit(2);
        }
        int partitions = Integer.parseInt(args[1]);
        List<String> topics = new ArrayList<>();
        Set<String> compacted = new HashSet<>();
        for (String a : Arrays.asList(args).subList(2, args.length)) {
            String name = a.endsWith(":compact") ? a.substring(0, a.length() - 8) : a;
            if (!name.equals(a)) compacted.add(name);
            topics.add(name);
        }
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "30000");
        try (Admin admin = Admin.create(p)) {
            Set<String> existing = admin.listTopics().names().get(30, TimeUnit.SECONDS);
            List<NewTopic> create = new ArrayList<>();
            for (String t : topics)
                if (!existing.contains(t)) {
                    NewTopic nt = new NewTopic(t, Optional.of(partitions), Optional.empty());
                    if (compacted.contains(t)) nt.configs(Map.of("cleanup.policy", "compact"));
                    create.add(nt);
                }
            if (!create.isEmpty()) admin.createTopics(create).all().get(30, TimeUnit.SECONDS);
            long deadline = System.currentTimeMillis() + 30000;
            for (;;) {
                Object seen;
                boolean ok = true;
                try {
                    Map<String, TopicDescription> d =
                        admin.describeTopics(topics).allTopicNames().get(30, TimeUnit.SECONDS);
                    for (TopicDescription td : d.values())
                        for (TopicPartitionInfo pi : td.partitions())
                            ok &= pi.leader() != null && pi.isr().size() == pi.replicas().size();
                    seen = d;
                } catch (ExecutionException e) {
                    // a node of a cluster may not know a new topic yet
                    if (!(e.getCause() instanceof UnknownTopicOrPartitionException)) throw e;
                    ok = false;
                    seen = e.getCause();
                }
                if (ok) break;
                if (System.currentTimeMillis() > deadline)
                    throw new IllegalStateException("topics without a leader or with replicas out of sync after 30 s: " + seen);
                Thread.sleep(100);
            }
        }
    }
}
