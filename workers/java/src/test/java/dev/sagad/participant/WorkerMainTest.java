// The command line of a Java worker: the C workers' flags, environment variables and -X properties.
package dev.sagad.participant;

import dev.sagad.payment.PaymentWorker;
import org.junit.jupiter.api.Test;

import java.util.HashMap;
import java.util.Map;
import java.util.Properties;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class WorkerMainTest {
    final Spec spec = new PaymentWorker(false, 0).spec();

    @Test
    void theStackArgumentsAndTheEnvironmentAreRead() throws Exception {
        Map<String, String> kafka = new HashMap<>();
        Map<String, String> v = WorkerMain.parse(spec, new String[] {"--bootstrap-file", "/run/bootstrap", "--db=/run/p.db",
                "--seed", "seed.json", "--ready-file", "/run/p.ready", "-X", "fetch.wait.max.ms=1"},
                Map.of("PAYMENT_WORKER_TOPIC", "pay.cmds", "PAYMENT_WORKER_DB", "/env.db"), kafka);
        assertEquals("/run/bootstrap", v.get("bootstrap-file"));
        assertEquals("/run/p.db", v.get("db"), "a flag wins over the environment");
        assertEquals("pay.cmds", v.get("topic"));
        assertEquals("payment-worker", v.get("group"));
        assertEquals("/run/p.ready", v.get("ready-file"));
        assertEquals(Map.of("fetch.wait.max.ms", "1"), kafka);
        Properties props = KafkaRunner.javaProps(kafka);
        assertEquals("1", props.get("fetch.max.wait.ms"), "librdkafka's name translated");
        assertFalse(props.containsKey("fetch.wait.max.ms"));
    }

    @Test
    void mistakesAreConfigurationErrors() {
        assertThrows(WorkerMain.ConfigError.class, () -> WorkerMain.parse(spec, new String[] {"--no-such"}, Map.of(), new HashMap<>()));
        assertThrows(WorkerMain.ConfigError.class, () -> WorkerMain.parse(spec, new String[] {"-X"}, Map.of(), new HashMap<>()));
        assertThrows(WorkerMain.ConfigError.class, () -> WorkerMain.parse(spec, new String[] {"--db"}, Map.of(), new HashMap<>()));
        assertEquals(2, WorkerMain.run(spec, new String[] {"--fail-rate", "2"}), "exit status 2, as the C workers");
        assertTrue(KafkaRunner.javaProps(Map.of("no.such.property", "1")).isEmpty());
    }
}
