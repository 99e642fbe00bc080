/* payment-worker: consumes payment.commands, keeps its ledger in SQLite.
 * PAYMENT_WORKER_TEST_TRIGGERS=1 turns on the deterministic test triggers
 * (customers c-flaky*, c-slow*; PAYMENT_WORKER_TEST_SLOW_MS sets the delay
 * of c-slow*): see payment.c and docs/PARTICIPANTS.md. */
#include "payment.h"

#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    const char *on = getenv("PAYMENT_WORKER_TEST_TRIGGERS");
    const char *slow = getenv("PAYMENT_WORKER_TEST_SLOW_MS");
    if (on && strcmp(on, "1") == 0) payment_worker_set_test_triggers(1, slow ? atoll(slow) : 0);
    return participant_main(payment_worker_spec(), argc, argv);
}
