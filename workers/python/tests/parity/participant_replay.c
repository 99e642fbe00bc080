/* participant_replay: runs saga.command lines through workers/lib (participant_process) with a toy
 * counter participant and prints each reply body, or "-" when there is none: the reference that
 * workers/python/tests/test_parity.py holds the Python library's replies and ledger against.
 *
 *   participant_replay LEDGER.db < commands   (one command per line)
 *
 * counter.add (action): payload {name, by (default 1), fail, retry} adds `by` to the counter
 * `name`; fail: true answers failure TOY_DECLINED, retry: true answers retry TOY_BUSY (both after
 * the change, which the library must undo); output {"name", "added"}. counter.sub (compensation)
 * takes back what its action recorded; output {"name", "removed"}. */
#include "participant.h"
#include "saga_json.h"
#include "saga_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int counter_add(sqlite3 *db, const participant_command_t *cmd, participant_result_t *res, void *user) {
    (void)user;
    const char *name = saga_json_str(cmd->payload, "name");
    long long by = 1;
    saga_json_int(cmd->payload, "by", &by);
    int rc = participant_exec(db, "INSERT INTO counters(name, value) VALUES(?1, ?2)"
                                  " ON CONFLICT(name) DO UPDATE SET value = value + ?2", "ti", name, by);
    if (rc) return rc;
    if (json_is_true(json_object_get(cmd->payload, "fail")))
        return participant_fail(res, "TOY_DECLINED", "declined %s", name);
    if (json_is_true(json_object_get(cmd->payload, "retry"))) return participant_retry(res, "TOY_BUSY", "try later");
    res->output = json_pack("{s:s,s:I}", "name", name, "added", (json_int_t)by);
    return 0;
}

static int counter_sub(sqlite3 *db, const participant_command_t *cmd, participant_result_t *res, void *user) {
    (void)user;
    long long by = 0;
    saga_json_int(cmd->action_output, "added", &by);
    const char *name = saga_json_str(cmd->action_output, "name");
    int rc = participant_exec(db, "UPDATE counters SET value = value - ? WHERE name = ?", "it", by, name);
    if (rc) return rc;
    res->output = json_pack("{s:s,s:I}", "name", name, "removed", (json_int_t)by);
    return 0;
}

static const participant_handler_t HANDLERS[] = {
    {"counter.add", PARTICIPANT_ACTION, counter_add},
    {"counter.sub", PARTICIPANT_COMPENSATION, counter_sub},
    {"counter.only", PARTICIPANT_ACTION, counter_add},
    {NULL, PARTICIPANT_ACTION, NULL},
};

static const participant_spec_t TOY = {
    .name = "toy", .program = "participant_replay", .env_prefix = "TOY",
    .summary = "toy", .schema_sql = "CREATE TABLE IF NOT EXISTS counters(name TEXT PRIMARY KEY, value INTEGER NOT NULL);",
    .handlers = HANDLERS,
};

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: participant_replay LEDGER.db < commands\n");
        return 2;
    }
    saga_log_set_level_name("error");
    char err[512];
    participant_t *p = participant_open(&TOY, argv[1], err, sizeof err);
    if (!p) {
        fprintf(stderr, "participant_replay: %s\n", err);
        return 1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, stdin)) > 0) {
        if (line[n - 1] == '\n') line[--n] = '\0';
        participant_reply_t reply;
        participant_process(p, line, (size_t)n, "stdin", &reply);
        printf("%s\n", reply.body ? reply.body : "-");
        participant_reply_clear(&reply);
    }
    free(line);
    participant_close(&p);
    return 0;
}
