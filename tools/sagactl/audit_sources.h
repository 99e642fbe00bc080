/* sagactl audit: which shard files to audit, from one or several of sagad's data directories. */
#ifndef SAGACTL_AUDIT_SOURCES_H
#define SAGACTL_AUDIT_SOURCES_H

#include <stddef.h>

typedef struct {
    char **shards; /* P paths in partition order: the copy of each shard that is audited */
    int nshards;   /* P */
    int *from;     /* from[p]: index (in the paths given) of the directory shards[p] is in */
    int ndirs;     /* paths given */
} audit_sources_t;

/* Picks the shard files to audit from the npaths (>= 1) --saga-db paths.
 *
 * One path: as saga_shard_files (saga_shard_files.h): a data directory
 * with shard-000.db up to the highest one and none missing, or one
 * database file; from[] is all 0.
 *
 * Several paths (the data directories of sagad instances sharing the
 * partitions; a partition's file may be in several of them, stale copies
 * where it was owned before): each must be a directory with at least one
 * shard-NNN.db; every shard file in them must record in shard_meta its
 * 'partition' (= its NNN) and 'partitions' (P), the same P in every file of
 * every directory. For each p in 0..P-1 the copy with the highest
 * shard_meta 'changelog_offset' is taken (no such row counts as -1; a tie
 * keeps the earliest path given); a p in none of them is an error. The
 * values are read once, each file in its own read-only connection: a copy
 * written meanwhile is not looked at again.
 *
 * Returns SAGACTL_AUDIT_OK (0) with *s filled (audit_sources_free), or
 * SAGACTL_AUDIT_USAGE (a file among several paths; directories with
 * different P, err naming each with its P) or SAGACTL_AUDIT_UNREADABLE
 * (a path, a file or its shard_meta cannot be read, a shard missing, a file
 * recording another partition), with *s empty and the reason in err (one
 * line, starting with "--saga-db"). */
int audit_sources_resolve(const char *const *paths, int npaths, audit_sources_t *s, char *err, size_t errlen);

/* The shards taken from directory d as a compact list, "0-2,5" ("" for
 * none), into buf. Its length, or -1 when it did not fit (buf then holds
 * what did, cut). */
int audit_sources_list(const audit_sources_t *s, int d, char *buf, size_t len);

void audit_sources_free(audit_sources_t *s);

#endif
