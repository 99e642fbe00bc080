# Issue 13 (items 4, 8, 10): one sagad per database and per consumer group,
# timers after a stall wait for the replies already in Kafka, retention.
saga_stack_test(it_single_instance test_single_instance.sh)
saga_stack_test(it_stall_catchup test_stall_catchup.sh)
# Issue 14 item 1: an older release's single database converted into shards
# (sagad --db; the stack passes DIR/sagad.db), sagas caught by kill -9 finish.
saga_stack_test(it_data_dir_convert test_data_dir_convert.sh)
# Short form of the retention soak (tests/soak/retention.sh): 10,000 sagas
# at 100/s with --retention 10s, the database file flat after the first
# minute. Label slow: no Apache Kafka twin (retention does not touch Kafka).
saga_stack_test(it_retention_soak ../soak/retention.sh)
set_tests_properties(it_retention_soak PROPERTIES LABELS "integration;soak;slow" TIMEOUT 900)
# OffsetFetch failing with coordinator errors while sagad joins (sagabroker's
# fault injection: no Apache Kafka twin).
list(APPEND SAGA_MOCK_ONLY_TESTS it_sagad_offset_fetch_faults)
saga_stack_test(it_sagad_offset_fetch_faults test_sagad_offset_fetch_faults.sh)
set_tests_properties(it_sagad_offset_fetch_faults PROPERTIES SKIP_RETURN_CODE 77)
# Wall-clock jumps through an LD_PRELOAD shim on sagad (no Kafka involved:
# no Apache Kafka twin).
list(APPEND SAGA_MOCK_ONLY_TESTS it_clock_jump)
saga_stack_test(it_clock_jump test_clock_jump.sh)
set_tests_properties(it_clock_jump PROPERTIES SKIP_RETURN_CODE 77)
# Issue 14 item 3: shards restored from saga.changelog at start (a lost data
# directory, a corrupt shard, a shard behind, a crash mid-restore, a corrupt
# record). changelog_dump encodes a run's shards as changelog records.
add_executable(changelog_dump changelog_dump.c)
target_link_libraries(changelog_dump PRIVATE saga_store)
saga_stack_test(it_restore test_restore.sh)
# Issue 14 item 3 end to end: the whole data directory lost after kill -9,
# every shard restored from the saga.changelog records sagad produced
# (changelog_out.c); once, and three times in one run.
saga_stack_test(it_lose_disk test_lose_disk.sh)
saga_stack_test(it_lose_disk_thrice test_lose_disk_thrice.sh)
# Issue 14: the records sagad writes to saga.changelog (one latest record
# per saga equal to the codec's, definitions first, markers, tombstones).
saga_stack_test(it_changelog_records test_changelog_records.sh)
# The dev broker keeps the last 5 MB of a partition: a restore that needs
# deleted changelog records says so (restore.c, truncated).
list(APPEND SAGA_MOCK_ONLY_TESTS it_changelog_truncated)
saga_stack_test(it_changelog_truncated test_changelog_truncated.sh)
