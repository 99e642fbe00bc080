/* order-worker: consumes order.commands, keeps its ledger in SQLite.
 * ORDER_WORKER_TEST_TRIGGERS=1 turns on the deterministic test trigger
 * (cancel of orders o-stuck*): see order.c and docs/PARTICIPANTS.md. */
#include "order.h"

#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    const char *on = getenv("ORDER_WORKER_TEST_TRIGGERS");
    if (on && strcmp(on, "1") == 0) order_worker_set_test_triggers(1);
    return participant_main(order_worker_spec(), argc, argv);
}
