/* Which consumed input offsets a relay transaction may commit (pure; no
 * I/O). Each loop iteration that consumed input is remembered, in order,
 * with the highest outbox row id it left in each shard and the consumer
 * positions after it (the caller's payload). Its offsets may be sent in a
 * Kafka transaction once every outbox row it wrote is in that transaction
 * or an earlier committed one: for every shard, its highest id is at most
 * the shard's `through` (docs/DESIGN.md, "The commit sequence"). */
#ifndef SAGAD_TXNPLAN_H
#define SAGAD_TXNPLAN_H

#include <stdint.h>

#define SAGAD_TXNPLAN_MAX 64 /* pending iterations kept apart; more are merged into the newest */

typedef struct {
    int shards;
    int count;
    int64_t *max_ids;                       /* [iteration * shards + shard]; 0: wrote nothing there */
    void *payload[SAGAD_TXNPLAN_MAX];       /* the positions after the iteration (caller's) */
} sagad_txnplan_t;

/* 0, or -1 when out of memory. */
int sagad_txnplan_init(sagad_txnplan_t *plan, int shards);
/* Frees the plan; pending payloads go to free_payload (may be NULL). */
void sagad_txnplan_free(sagad_txnplan_t *plan, void (*free_payload)(void *));

/* Remembers an iteration (max_ids: one per shard). When the plan is full
 * the newest entry absorbs it (ids: the max; payload: the new one, the old
 * one is returned through *replaced for the caller to free, else NULL):
 * its offsets then wait for the rows of both, which is never too early. */
void sagad_txnplan_push(sagad_txnplan_t *plan, const int64_t *max_ids, void *payload, void **replaced);

/* The index of the newest pending iteration whose rows are all covered by
 * through[] (one per shard: every outbox row with id <= through[s] is in a
 * committed or the current transaction), or -1. Iterations are covered in
 * order: one whose rows are not all delivered hides those after it. */
int sagad_txnplan_covered(const sagad_txnplan_t *plan, const int64_t *through);

/* Forgets the iterations 0..n-1 (their offsets committed); their payloads
 * are handed to free_payload (may be NULL). */
void sagad_txnplan_drop(sagad_txnplan_t *plan, int n, void (*free_payload)(void *));

/* The shard was given up: no pending iteration waits for its rows any
 * more (the caller drops its offsets from the payloads). */
void sagad_txnplan_forget_shard(sagad_txnplan_t *plan, int shard);

#endif
