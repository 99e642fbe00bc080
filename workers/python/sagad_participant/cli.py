"""A whole worker's main(): the command line every example worker shares (workers/lib/participant_main.c).

Flags --bootstrap, --bootstrap-file, --bootstrap-wait-ms, --db, --seed, --topic, --group,
--ready-file, --metrics-file, --batch-max, --log-level, --log-json, the fault flags and -X key=value
(any librdkafka property, both clients); each also read from the environment as <PREFIX>_<NAME> (e.g.
NOTIFICATION_WORKER_DB). SIGTERM/SIGINT finish the current batch, flush and close (exit 0); exit 1
on a runtime error, 2 on a configuration error.
"""
import argparse
import datetime
import logging
import os
import signal
import sys
import time

from . import command as C
from .participant import Faults, Participant

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}


class JsonLines(logging.Formatter):
    """The C workers' log format: one JSON object per line (ts, level, component, msg)."""

    def __init__(self, component):
        super().__init__()
        self.component = component

    def format(self, record):
        ts = datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc)
        msg = record.getMessage()
        if record.exc_info:
            msg += "\n" + self.formatException(record.exc_info)
        level = {"WARNING": "warn", "CRITICAL": "error"}.get(record.levelname, record.levelname.lower())
        component = "rdkafka" if record.name == "rdkafka" else self.component
        return C.dumps({"ts": ts.isoformat(timespec="milliseconds").replace("+00:00", "Z"), "level": level,
                        "component": component, "msg": msg})


def _bool(text):
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"'{text}' is not a boolean (true/false)")


def _rate(text):
    try:
        v = float(text)
    except ValueError:
        v = -1.0
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"'{text}' is not a probability between 0 and 1")
    return v


def _prop(text):
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"'{text}' is not key=value")
    return key, value


def build_parser(name, program, env_prefix, description):
    """The common flags, with defaults from <env_prefix>_<NAME> environment variables."""
    p = argparse.ArgumentParser(prog=program, description=description,
                                formatter_class=argparse.RawDescriptionHelpFormatter)

    def opt(flag, default, help_text, **kw):
        env = f"{env_prefix}_{flag.upper().replace('-', '_')}"
        if env in os.environ:
            default = os.environ[env]
        p.add_argument(f"--{flag}", default=default, help=f"{help_text} (env {env})", **kw)

    opt("bootstrap", None, "Kafka bootstrap servers (host:port,...)")
    opt("bootstrap-file", None, "read the bootstrap list from this file (dev broker)")
    opt("bootstrap-wait-ms", "30000", "how long to wait for --bootstrap-file to appear", type=int)
    opt("db", f"./{name}.db", "SQLite ledger file")
    opt("seed", None, "seed JSON loaded into an empty ledger")
    opt("topic", f"{name}.commands", "command topic to consume")
    opt("group", f"{name}-worker", "Kafka consumer group")
    opt("ready-file", None, "write READY to this file once partitions are assigned")
    opt("metrics-file", None, "rewrite this file every second with the worker's stage latencies, in Prometheus text")
    opt("batch-max", "500", "commands per ledger transaction (group commit)", type=int)
    opt("log-level", "info", "debug, info, warn or error", choices=sorted(LEVELS))
    opt("log-json", "true", "JSON log lines (false: plain text)", type=_bool)
    opt("fail-rate", "0", "fault injection: probability of a business failure of an action", type=_rate)
    opt("retry-rate", "0", "fault injection: probability of a transient (retry) outcome", type=_rate)
    opt("no-reply-rate", "0", "fault injection: probability that a processed command's reply is not sent",
        type=_rate)
    opt("delay-ms", "0", "fault injection: sleep this long before each command", type=int)
    opt("crash-after", "0", "fault injection: abort() once N commands are committed (0: never)", type=int)
    opt("fault-seed", "0", "seed of the fault injection random numbers (0: random)", type=int)
    p.add_argument("-X", dest="props", action="append", type=_prop, default=[], metavar="KEY=VALUE",
                   help="any librdkafka property (both clients)")
    return p


def read_bootstrap(args):
    if args.bootstrap:
        return args.bootstrap
    if not args.bootstrap_file:
        raise ValueError("no Kafka bootstrap servers: give --bootstrap or --bootstrap-file")
    deadline = time.monotonic() + args.bootstrap_wait_ms / 1000
    while True:
        try:
            with open(args.bootstrap_file) as f:
                line = f.readline().strip()
            if line:
                return line
        except OSError:
            pass
        if time.monotonic() >= deadline:
            raise ValueError(f"bootstrap file '{args.bootstrap_file}' is missing or empty")
        time.sleep(0.05)


def main(name, handlers, schema=(), seed=None, *, program=None, env_prefix=None, description=None,
         argv=None, extra_options=None, on_args=None):
    """Runs a participant worker: parses the command line, opens and seeds the ledger, runs on Kafka.

    extra_options(parser) may add the worker's own flags; on_args(args) sees them all and returns
    None or an error message (a configuration error, exit 2). Returns the exit status."""
    program = program or f"{name}-worker"
    env_prefix = env_prefix or f"{name.upper()}_WORKER"
    parser = build_parser(name, program, env_prefix, description)
    if extra_options:
        extra_options(parser)
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return 0 if e.code == 0 else 2
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLines(name) if args.log_json else
                         logging.Formatter(f"%(asctime)s %(levelname)-5s [{name}] %(message)s"))
    logging.basicConfig(level=LEVELS[args.log_level], handlers=[handler], force=True)
    if args.delay_ms < 0 or args.crash_after < 0 or not 1 <= args.batch_max <= 100000:
        print(f"{program}: --delay-ms and --crash-after must be >= 0, --batch-max 1..100000", file=sys.stderr)
        return 2
    err = on_args(args) if on_args else None
    if err:
        print(f"{program}: {err}", file=sys.stderr)
        return 2
    log = logging.getLogger("sagad_participant")
    faults = Faults(args.fail_rate, args.retry_rate, args.no_reply_rate, args.delay_ms, args.crash_after,
                    args.fault_seed)
    from .runner import Runner  # confluent-kafka: imported only to run on Kafka
    runner = None

    def on_signal(signum, _frame):
        if runner:
            runner.stop()
        else:
            raise SystemExit(0)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        participant = Participant(name, handlers, args.db, schema=schema, seed=seed, faults=faults)
    except Exception as e:
        log.error("cannot open ledger '%s': %s", args.db, e)
        return 1
    try:
        if args.seed:
            try:
                with open(args.seed, "rb") as f:
                    participant.seed(C.loads(f.read()))
            except (OSError, ValueError) as e:
                log.error("seed: %s: %s", args.seed, e)
                return 1
        if any((faults.fail_rate, faults.retry_rate, faults.no_reply_rate, faults.delay_ms, faults.crash_after)):
            log.warning("fault injection on: %s", faults)
        try:
            bootstrap = read_bootstrap(args)
        except ValueError as e:
            log.error("%s", e)
            return 2
        log.info("ledger %s, bootstrap %s", args.db, bootstrap)
        try:
            runner = Runner(participant, bootstrap, args.topic, args.group, program, args.ready_file,
                            dict(args.props), args.batch_max, metrics_file=args.metrics_file)
            runner.run()
        except Exception as e:
            log.error("%s", e)
            return 1
        return 0
    finally:
        participant.close()
