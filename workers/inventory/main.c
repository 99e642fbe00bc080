/* inventory-worker: consumes inventory.commands, keeps its ledger in SQLite. */
#include "inventory.h"

int main(int argc, char **argv) { return participant_main(inventory_worker_spec(), argc, argv); }
