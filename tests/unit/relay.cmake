# The relay's pieces outside the loop: the produce error classes (bus.c)
# and the outbox rows it resends and parks (store_outbox.c, migration 3).
saga_unit_test(test_relay
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_relay.c ${CMAKE_SOURCE_DIR}/orchestrator/bus/bus.c ${CMAKE_SOURCE_DIR}/orchestrator/bus/bus_txn.c
    ${CMAKE_SOURCE_DIR}/orchestrator/txnplan.c
  LIBS saga_store saga_kafka)
target_include_directories(test_relay PRIVATE ${CMAKE_SOURCE_DIR}/orchestrator/bus ${CMAKE_SOURCE_DIR}/orchestrator)
