/* payment-worker: consumes payment.commands, keeps its ledger in SQLite. */
#include "payment.h"

int main(int argc, char **argv) { return participant_main(payment_worker_spec(), argc, argv); }
