# Participant library and example workers (no Kafka needed: real SQLite files
# in a temporary directory).
if(TARGET saga_participant)
  saga_unit_test(test_participant
    SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_participant.c
    LIBS saga_participant)
  # participant_run against librdkafka's in-process mock cluster (no broker).
  saga_unit_test(test_participant_reply_partition
    SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_participant_reply_partition.c
    LIBS saga_participant Threads::Threads)
endif()
if(TARGET saga_worker_order AND TARGET saga_worker_inventory AND TARGET saga_worker_payment
   AND TARGET saga_worker_notification)
  saga_unit_test(test_workers
    SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_workers.c
    LIBS saga_worker_order saga_worker_inventory saga_worker_payment saga_worker_notification)
endif()
