"""sagad_participant: how a Python service joins a saga run by sagad (docs/PARTICIPANTS.md, "Python").

The Python twin of workers/lib, with the same contract:
- the business change, the `processed` row (keyed by idempotency_key, holding the reply) and the
  reply decided in ONE local transaction of the service's own SQLite ledger (or DB-API connection);
- a duplicate command (any attempt of a key already processed) runs nothing: the stored reply is
  re-sent with the new attempt, in_reply_to and id r-<idempotency_key>/<attempt>;
- a compensation whose action did not succeed here is a successful no-op that leaves its mark
  (processed.noop = 1), so a late action after it is refused (COMPENSATED_BEFORE_ACTION);
- handlers return their output, raise Failure (recorded, changes rolled back) or Retry (nothing
  recorded); malformed commands are answered MALFORMED_COMMAND, unknown actions UNKNOWN_ACTION;
- on Kafka (Runner): offsets stored only after the ledger commit and the acknowledgement of every
  reply of the batch; each partition is processed in order.

    from sagad_participant import ACTION, Handler, Failure, main

    def send(db, cmd):
        db.execute("INSERT INTO sent(key, saga_id) VALUES(?, ?)", (cmd.idempotency_key, cmd.saga_id))
        return {"sent": True}

    main("mail", [Handler("mail.send", ACTION, send)],
         schema="CREATE TABLE IF NOT EXISTS sent(key TEXT PRIMARY KEY, saga_id TEXT)")
"""
from .cli import main
from .command import ACTION, COMPENSATION, FAILURE, RETRY, SUCCESS, Command, MalformedCommand, parse_command
from .participant import Failure, Faults, Handler, Participant, Reply, Retry, now_rfc3339

__version__ = "0.1.0"
__all__ = ["ACTION", "COMPENSATION", "SUCCESS", "FAILURE", "RETRY", "Command", "MalformedCommand",
           "parse_command", "Failure", "Retry", "Faults", "Handler", "Participant", "Reply", "now_rfc3339",
           "main", "Runner"]


def __getattr__(name):
    if name == "Runner":  # confluent-kafka only when the Kafka runner is wanted
        from .runner import Runner
        return Runner
    raise AttributeError(name)
