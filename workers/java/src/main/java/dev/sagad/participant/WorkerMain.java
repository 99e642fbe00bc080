// The command line every participant shares, as workers/lib's participant_main.c: the same flags,
// environment variables <PREFIX>_<NAME>, --help, SIGTERM handling and exit statuses
// (0 stopped, 1 runtime error, 2 configuration error).
package dev.sagad.participant;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

public final class WorkerMain {
    private record Option(String name, String def, String help) {}

    private static Option[] options(Spec s) {
        return new Option[] {
            new Option("bootstrap", null, "Kafka bootstrap servers (host:port,...)"),
            new Option("bootstrap-file", null, "read the bootstrap list from this file (dev broker)"),
            new Option("bootstrap-wait-ms", "30000", "how long to wait for --bootstrap-file to appear"),
            new Option("db", "./" + s.name + ".db", "SQLite ledger file"),
            new Option("seed", null, "seed JSON loaded into an empty ledger (sagas/examples/seed.json)"),
            new Option("topic", s.name + ".commands", "command topic to consume"),
            new Option("group", s.name + "-worker", "Kafka consumer group"),
            new Option("ready-file", null, "write READY to this file once partitions are assigned"),
            new Option("batch-max", "500", "commands per ledger transaction (group commit)"),
            new Option("log-level", "info", "debug, info, warn or error"),
            new Option("log-json", "true", "JSON log lines (false: plain text)"),
            new Option("fail-rate", "0", "fault injection: probability of a business failure of an action"),
            new Option("retry-rate", "0", "fault injection: probability of a transient (retry) outcome"),
            new Option("no-reply-rate", "0", "fault injection: probability that a processed command's reply is not sent"),
            new Option("delay-ms", "0", "fault injection: sleep this long before each command"),
            new Option("crash-after", "0", "fault injection: exit 134 once N commands are committed (0: never)"),
            new Option("fault-seed", "0", "seed of the fault injection random numbers (0: random)"),
        };
    }

    /** A configuration error: exit status 2. */
    static final class ConfigError extends Exception {
        private static final long serialVersionUID = 1L;
        ConfigError(String m) { super(m); }
    }

    private static String envName(String prefix, String name) { return prefix + "_" + name.replace('-', '_').toUpperCase(); }

    /** Flags and environment into values (null: help was printed); -X key=value into kafka. */
    static Map<String, String> parse(Spec s, String[] argv, Map<String, String> env, Map<String, String> kafka) throws ConfigError {
        Map<String, Option> byName = new LinkedHashMap<>();
        Map<String, String> v = new LinkedHashMap<>();
        for (Option o : options(s)) {
            byName.put(o.name, o);
            v.put(o.name, env.getOrDefault(envName(s.envPrefix, o.name), o.def));
        }
        for (int i = 0; i < argv.length; i++) {
            String a = argv[i];
            if (a.equals("-h") || a.equals("--help")) {
                usage(s);
                return null;
            }
            if (a.equals("-X")) {
                if (i + 1 >= argv.length) throw new ConfigError("-X needs key=value");
                String kv = argv[++i];
                int eq = kv.indexOf('=');
                if (eq <= 0) throw new ConfigError("-X '" + kv + "': expected key=value");
                kafka.put(kv.substring(0, eq), kv.substring(eq + 1));
                continue;
            }
            if (!a.startsWith("--")) throw new ConfigError("unexpected argument '" + a + "' (see --help)");
            int eq = a.indexOf('=');
            String name = eq > 0 ? a.substring(2, eq) : a.substring(2);
            if (!byName.containsKey(name)) throw new ConfigError("unknown option '--" + name + "' (see --help)");
            String value;
            if (eq > 0) value = a.substring(eq + 1);
            else if (name.equals("log-json") && (i + 1 >= argv.length || argv[i + 1].startsWith("--") || argv[i + 1].equals("-X"))) value = "true";
            else if (i + 1 < argv.length) value = argv[++i];
            else throw new ConfigError("option '--" + name + "' needs a value");
            v.put(name, value);
        }
        return v;
    }

    private static void usage(Spec s) {
        StringBuilder b = new StringBuilder("Usage: " + s.program + " [options]\n" + s.summary + "\n\nOptions (flag, environment variable, default):\n");
        for (Option o : options(s))
            b.append(String.format("  --%s  (%s, default: %s)%n      %s%n", o.name, envName(s.envPrefix, o.name), o.def == null ? "none" : o.def, o.help));
        b.append("  -X key=value\n      any property of Apache Kafka's Java client (librdkafka's fetch.wait.max.ms,\n"
                + "      message.timeout.ms and sasl.mechanisms are translated), repeatable\n  -h, --help\n      this text\n");
        System.out.print(b);
    }

    private static long integer(Map<String, String> v, String name, long min, long max) throws ConfigError {
        try {
            long n = Long.parseLong(v.get(name));
            if (n < min || n > max) throw new NumberFormatException();
            return n;
        } catch (NumberFormatException e) {
            throw new ConfigError("--" + name + ": '" + v.get(name) + "' is not an integer from " + min + " to " + max);
        }
    }

    private static double rate(Map<String, String> v, String name) throws ConfigError {
        try {
            double d = Double.parseDouble(v.get(name));
            if (!(d >= 0.0 && d <= 1.0)) throw new NumberFormatException();
            return d;
        } catch (NumberFormatException e) {
            throw new ConfigError("--" + name + ": '" + v.get(name) + "' is not a probability between 0 and 1");
        }
    }

    private static String bootstrap(Map<String, String> v) throws ConfigError {
        String b = v.get("bootstrap"), file = v.get("bootstrap-file");
        if (b != null && !b.isEmpty()) return b;
        if (file == null || file.isEmpty()) throw new ConfigError("no Kafka bootstrap servers: give --bootstrap or --bootstrap-file");
        long waitMs = integer(v, "bootstrap-wait-ms", 0, Long.MAX_VALUE);
        for (long waited = 0;; waited += 50) {
            try {
                String text = Files.readString(Path.of(file)).lines().findFirst().orElse("").trim();
                if (!text.isEmpty()) return text;
            } catch (java.io.IOException e) {
                // not there yet
            }
            if (waited >= waitMs) throw new ConfigError("bootstrap file '" + file + "' is missing or empty");
            try {
                Thread.sleep(50);
            } catch (InterruptedException e) {
                throw new ConfigError("interrupted while waiting for " + file);
            }
        }
    }

    /** main() of a worker: returns the exit status. */
    public static int run(Spec s, String[] argv) {
        Map<String, String> kafka = new LinkedHashMap<>();
        Map<String, String> v;
        Participant.Faults faults = new Participant.Faults();
        int batchMax;
        try {
            v = parse(s, argv, System.getenv(), kafka);
            if (v == null) return 0;
            String lj = v.get("log-json");
            Log.setJson(!(lj.equalsIgnoreCase("false") || lj.equals("0") || lj.equalsIgnoreCase("no") || lj.equalsIgnoreCase("off")));
            if (!Log.setLevel(v.get("log-level")))
                throw new ConfigError("--log-level: '" + v.get("log-level") + "' is not one of debug, info, warn, error");
            faults.failRate = rate(v, "fail-rate");
            faults.retryRate = rate(v, "retry-rate");
            faults.noReplyRate = rate(v, "no-reply-rate");
            faults.delayMs = integer(v, "delay-ms", 0, Long.MAX_VALUE);
            faults.crashAfter = integer(v, "crash-after", 0, Long.MAX_VALUE);
            faults.seed = integer(v, "fault-seed", Long.MIN_VALUE, Long.MAX_VALUE);
            batchMax = (int) integer(v, "batch-max", 1, 100000);
        } catch (ConfigError e) {
            System.err.println(s.program + ": " + e.getMessage());
            return 2;
        }
        try (Participant p = new Participant(s, v.get("db"))) {
            if (v.get("seed") != null) p.seedFile(v.get("seed"));
            p.setFaults(faults);
            if (faults.any())
                Log.warn(s.name, String.format("fault injection on: fail-rate %s, retry-rate %s, no-reply-rate %s, delay %d ms, crash after %d",
                        faults.failRate, faults.retryRate, faults.noReplyRate, faults.delayMs, faults.crashAfter));
            KafkaRunner.Options o = new KafkaRunner.Options();
            try {
                o.bootstrap = bootstrap(v);
            } catch (ConfigError e) {
                Log.error(s.name, e.getMessage());
                return 2;
            }
            o.topic = v.get("topic");
            o.group = v.get("group");
            o.clientId = s.program;
            o.readyFile = v.get("ready-file");
            // --delay-ms simulates a slow worker: one command at a time
            o.batchMax = faults.delayMs > 0 ? 1 : batchMax;
            o.kafkaProps = kafka;
            Log.info(s.name, "ledger " + v.get("db"));
            KafkaRunner runner = new KafkaRunner(p, o);
            // SIGTERM/SIGINT: finish the batch, commit, close the clients, then exit with the
            // loop's status (0), not the JVM's 143 for a signal.
            Runtime.getRuntime().addShutdownHook(new Thread(() -> {
                runner.requestStop();
                try {
                    if (finished.await(20, TimeUnit.SECONDS)) Runtime.getRuntime().halt(status);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }));
            runner.run();
        } catch (Exception e) {
            Log.error(s.name, e.getMessage() == null ? e.toString() : e.getMessage());
            status = 1;
        } finally {
            finished.countDown();
        }
        return status;
    }

    private static final CountDownLatch finished = new CountDownLatch(1);
    private static volatile int status = 0;
}
