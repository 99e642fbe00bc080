/* notification-worker: consumes notification.commands, keeps its ledger in SQLite. */
#include "notification.h"

int main(int argc, char **argv) { return participant_main(notification_worker_spec(), argc, argv); }
