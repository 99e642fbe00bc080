# Shards (issue 14 item 1): routing of sagas, messages and deliveries to
# partitions (orchestrator/shard.c) and the data directory: fresh shards,
# the conversion of a single-file database, P mismatch (store/datadir.c).
saga_unit_test(test_shard
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_shard.c ${CMAKE_SOURCE_DIR}/orchestrator/shard.c
  LIBS saga_store PkgConfig::SQLITE3)
target_include_directories(test_shard PRIVATE ${CMAKE_SOURCE_DIR}/orchestrator)
