/* sagad's data directory: one SQLite file per partition (a shard), plus
 * the lock and the admin token. The contract every reader uses:
 *
 *   DIR/shard-000.db ... DIR/shard-NNN.db   partition p in shard-%03d.db, 0..P-1,
 *                                           each with the full schema (schema.h);
 *                                           shard_meta holds partition and partitions
 *   DIR/sagad.lock                          one sagad per data directory (lock.c)
 *   DIR/admin.token                         the generated admin token
 *   DIR/.building/                          only while shards are built (below)
 *
 * Shards are never created in place: a fresh set, or the conversion of a
 * single-file database of an older release (--db), is built in
 * DIR/.building, marked complete (.building/READY: "fresh", or "converted
 * FILE"), then renamed into DIR;
 * the old file is renamed to FILE.converted last. A crash before READY
 * leaves a build that the next start throws away and redoes; a crash after
 * it, one that the next start finishes. */
#ifndef SAGA_DATADIR_H
#define SAGA_DATADIR_H

#include <stddef.h>

#include "store.h"

#include "saga_shard_files.h"

#define SAGA_DATADIR_MAX_PARTITIONS SAGA_SHARD_MAX /* shard-%03d */

/* DIR/shard-%03d.db into out. */
void saga_datadir_shard_path(const char *dir, int partition, char *out, size_t len);

/* Creates dir (and its parents) if missing. 0, or an error with err set. */
int saga_datadir_create(const char *dir, char *err, size_t errlen);

/* Makes dir hold the P shard files, ready to open (the caller holds the
 * data directory's lock): finishes or throws away an interrupted build;
 * converts legacy_db (a single-file database; NULL or "" for none) when it
 * exists and dir holds no shard yet; creates P empty shards in an empty
 * dir. Refuses (SAGA_EINVAL, err says what and what to do) a dir whose
 * shard files do not match P, or that holds shards while legacy_db still
 * exists unconverted. *converted (may be NULL) says whether it converted.
 * 0 or a negative code. */
int saga_datadir_prepare(const char *dir, const char *legacy_db, int partitions, const char *synchronous,
                         int *converted, char *err, size_t errlen);

/* saga_datadir_prepare for a sagad that restores shards from its
 * changelog (restore.h): an empty dir (without legacy_db) is left empty, and
 * shard files missing from a dir whose shards record P partitions are left
 * missing (0), for the restore to rebuild. */
int saga_datadir_prepare_restorable(const char *dir, const char *legacy_db, int partitions,
                                    const char *synchronous, int *converted, char *err, size_t errlen);

/* Opens shard p of dir and checks that it is partition p of P (shard_meta).
 * NULL with err naming the file on failure. */
saga_store_t *saga_datadir_open_shard(const char *dir, int partition, int partitions,
                                      const saga_store_options_t *opt, char *err, size_t errlen);

#endif
