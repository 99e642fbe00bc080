"""The smallest Python participant with an action and its compensation (for the conformance kit's
compensation rules, which the notification participant lacks): tally.add records one row per saga
step, tally.remove marks exactly that row removed. Output {"tally_id"} / {"tally_id", "removed"}.
Ledger: tallies(tally_id PK, saga_id, step, state 'added'|'removed'); the kit's applied query is
`SELECT count(*) FROM tallies WHERE saga_id = ?`. Same command line as every worker (topic
tally.commands, env TALLY_WORKER_*), run by workers/python/bin/tally-worker.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # the checkout's library
from sagad_participant import ACTION, COMPENSATION, Handler, main  # noqa: E402

SCHEMA = ("CREATE TABLE IF NOT EXISTS tallies(tally_id TEXT PRIMARY KEY, saga_id TEXT NOT NULL, step TEXT NOT NULL,"
          " state TEXT NOT NULL CHECK (state IN ('added', 'removed')))")


def tally_add(db, cmd):
    tally_id = f"tally-{cmd.saga_id}/{cmd.step}"
    db.execute("INSERT INTO tallies(tally_id, saga_id, step, state) VALUES(?, ?, ?, 'added')",
               (tally_id, cmd.saga_id, cmd.step))
    return {"tally_id": tally_id}


def tally_remove(db, cmd):  # runs only when tally.add succeeded here, once
    tally_id = cmd.action_output["tally_id"]
    db.execute("UPDATE tallies SET state = 'removed' WHERE tally_id = ?", (tally_id,))
    return {"tally_id": tally_id, "removed": True}


HANDLERS = [Handler("tally.add", ACTION, tally_add), Handler("tally.remove", COMPENSATION, tally_remove)]

if __name__ == "__main__":
    sys.exit(main("tally", HANDLERS, schema=SCHEMA,
                  description="Example saga participant in Python with a compensation: tally.add / tally.remove."))
