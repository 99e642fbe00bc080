# Issue 14 (items 2 and 5): what the broker implements of Kafka transactions
# (commit, abort, KIP-447 offsets, fencing, read_committed). txn_probe asserts
# Apache Kafka's behaviour on it_txn_real and the mock's (which hides no
# aborted record, keeps no transactional offsets and fences nobody) on it_txn:
# see docs/OPERATIONS.md, "Transactions on the dev broker and on Apache Kafka".
add_executable(txn_probe txn_probe.c)
target_link_libraries(txn_probe PRIVATE PkgConfig::RDKAFKA)
saga_stack_test(it_txn test_txn.sh)
set_tests_properties(it_txn PROPERTIES TIMEOUT 300)
# The commit sequence's crash points (SAGAD_CRASH_AT; txn_crash.sh), on the
# dev broker and (twins) on Apache Kafka.
foreach(point before_sqlite_commit after_sqlite_commit after_produce after_kafka_commit after_outbox_delete)
  saga_stack_test(it_txn_crash_${point} test_txn_crash_${point}.sh)
  set_tests_properties(it_txn_crash_${point} PROPERTIES TIMEOUT 400)
endforeach()
# Aborted relay transactions are invisible to read_committed (SAGAD_ABORT_TXN); Apache Kafka only.
saga_stack_test(it_txn_abort test_txn_abort.sh)
set_tests_properties(it_txn_abort PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300)
# A fatal producer error replaces the producer; a fencing stops sagad (SAGAD_FATAL_TXN).
saga_stack_test(it_txn_fatal test_txn_fatal.sh)
set_tests_properties(it_txn_fatal PROPERTIES TIMEOUT 300)
