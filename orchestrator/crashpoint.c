/* Test-only crash points of the commit sequence (sagad.h, sagad_crash_point):
 * SAGAD_CRASH_AT names the point, SAGAD_CRASH_AFTER=N the pass that dies;
 * SAGAD_STALL_DIR makes an instance stop itself (SIGSTOP) with a batch in hand. */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sagad.h"
#include "saga_log.h"

static const char *const names[SAGAD_CRASH__COUNT] = {
    [SAGAD_CRASH_BEFORE_SQLITE_COMMIT] = "before_sqlite_commit",
    [SAGAD_CRASH_AFTER_SQLITE_COMMIT] = "after_sqlite_commit",
    [SAGAD_CRASH_AFTER_PRODUCE] = "after_produce",
    [SAGAD_CRASH_AFTER_KAFKA_COMMIT] = "after_kafka_commit",
    [SAGAD_CRASH_AFTER_OUTBOX_DELETE] = "after_outbox_delete",
};

static char stall_file[4400];

void sagad_crash_point_instance(const char *instance_id) {
    const char *dir = getenv("SAGAD_STALL_DIR");
    if (dir && *dir && instance_id) snprintf(stall_file, sizeof stall_file, "%s/stall-%s", dir, instance_id);
}

/* After the produce of a relay pass whose shards committed, before its
 * Kafka commit: when DIR/stall-<instance id> exists (and, if it says
 * "without-offsets", the pass brings no new offsets), it is deleted and the
 * process stops itself (a GC-like pause, until SIGCONT). */
void sagad_stall_point(bool new_offsets) {
    if (!stall_file[0]) return;
    FILE *f = fopen(stall_file, "r");
    if (!f) return;
    char want[32] = "";
    if (!fgets(want, sizeof want, f)) want[0] = '\0';
    fclose(f);
    if (new_offsets && strncmp(want, "without-offsets", 15) == 0) return;
    unlink(stall_file);
    LOG_WARN("sagad", "stall point: stopping with a relay transaction in hand (SIGSTOP until SIGCONT; %s)", stall_file);
    fflush(NULL);
    raise(SIGSTOP);
    LOG_WARN("sagad", "stall point: continued");
}

void sagad_crash_point(sagad_crash_point_t at) {
    static int armed = -1; /* -1: env not read yet; SAGAD_CRASH__COUNT: off */
    static long left;
    if (armed < 0) {
        armed = SAGAD_CRASH__COUNT;
        const char *want = getenv("SAGAD_CRASH_AT");
        for (int i = 0; want && *want && i < SAGAD_CRASH__COUNT; i++)
            if (!strcmp(want, names[i])) armed = i;
        if (want && *want && armed == SAGAD_CRASH__COUNT)
            LOG_ERROR("sagad", "SAGAD_CRASH_AT=%s names no crash point (before_sqlite_commit, after_sqlite_commit, "
                      "after_produce, "
                      "after_kafka_commit, after_outbox_delete): ignored", want);
        const char *after = getenv("SAGAD_CRASH_AFTER");
        left = after && *after ? strtol(after, NULL, 10) : 1;
        if (left < 1) left = 1;
        if (armed != SAGAD_CRASH__COUNT)
            LOG_WARN("sagad", "crash point armed: SAGAD_CRASH_AT=%s, pass %ld (tests only)", names[armed], left);
    }
    if ((int)at != armed || --left > 0) return;
    LOG_ERROR("sagad", "crash point %s reached: _exit(137) (SAGAD_CRASH_AT)", names[at]);
    fflush(NULL);
    _exit(137);
}
