// Creates topics on the test broker (kcat cannot): used by scripts/kafka start.
//   java -cp 'CACHE/*:CACHE/classes' CreateTopics BOOTSTRAP PARTITIONS TOPIC...
// TOPIC:compact creates TOPIC with cleanup.policy=compact (the changelog).
// Topics that exist already are left alone. Exit 0 once every topic exists
// and has a leader for each partition.
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.common.TopicPartitionInfo;

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
                    NewTopic nt = new NewTopic(t, partitions, (short) 1);
                    if (compacted.contains(t)) nt.configs(Map.of("cleanup.policy", "compact"));
                    create.add(nt);
                }
            if (!create.isEmpty()) admin.createTopics(create).all().get(30, TimeUnit.SECONDS);
            long deadline = System.currentTimeMillis() + 30000;
            for (;;) {
                Map<String, TopicDescription> d =
                    admin.describeTopics(topics).allTopicNames().get(30, TimeUnit.SECONDS);
                boolean ok = true;
                for (TopicDescription td : d.values())
                    for (TopicPartitionInfo pi : td.partitions()) ok &= pi.leader() != null;
                if (ok) break;
                if (System.currentTimeMillis() > deadline)
                    throw new IllegalStateException("topics without leaders after 30 s: " + d);
                Thread.sleep(100);
            }
        }
    }
}
