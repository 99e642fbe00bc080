/* The inputs of a loop iteration (handle.c), each applied in its saga's
 * shard transaction, which the loop commits (loop.c): a consumed message
 * (saga.start, saga.replies, saga.control), a due timer of shard sh, an
 * operator's command from the admin API. Each returns 0, or a negative
 * code that stops the iteration (a store failure: nothing of it commits). */
#ifndef SAGAD_HANDLE_H
#define SAGAD_HANDLE_H

#include "commands.h"
#include "sagad.h"

int sagad_handle_message(sagad_t *d, const rd_kafka_message_t *m, int64_t now);
int sagad_fire_timer(sagad_t *d, sagad_shard_t *sh, const saga_timer_row_t *t, int64_t now);
int sagad_run_command(sagad_t *d, const saga_command_t *cmd, int64_t now);

#endif
