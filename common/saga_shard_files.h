/* The files of sagad's shards: its data directory DIR holds one SQLite
 * file per partition, DIR/shard-000.db ... DIR/shard-NNN.db (p zero-padded
 * to 3 digits), each with the full schema (orchestrator/store/schema.h);
 * a saga lives in shard saga_partition_of(saga_id, P). For the tools that
 * read them (sagactl audit, the admin API's tests): a path is either such
 * a directory or one database file (a single shard, as before shards). */
#ifndef SAGA_SHARD_FILES_H
#define SAGA_SHARD_FILES_H

#include <stddef.h>

#define SAGA_SHARD_MAX 1000 /* three digits */

/* DIR/shard-<p, 3 digits>.db into buf; -1 when it does not fit or p is
 * out of 0..SAGA_SHARD_MAX-1, else its length. */
int saga_shard_file(const char *dir, int p, char *buf, size_t len);

/* p when name (a file name, no directory) is "shard-NNN.db" with exactly
 * three digits, else -1. */
int saga_shard_number(const char *name);

/* The shard files of path, in partition order: a directory gives its
 * shard-NNN.db files, which must be shard-000.db to shard-<P-1>.db with
 * none missing (other files are ignored); anything else is a single
 * database file. 0 with *paths (P strings; saga_shard_files_free) and
 * *count, or -1 with the reason (naming the path, and the missing shard)
 * in err. The files are not opened. */
int saga_shard_files(const char *path, char ***paths, int *count, char *err, size_t errlen);
void saga_shard_files_free(char **paths, int count);

#endif
