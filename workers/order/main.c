/* order-worker: consumes order.commands, keeps its ledger in SQLite. */
#include "order.h"

int main(int argc, char **argv) { return participant_main(order_worker_spec(), argc, argv); }
