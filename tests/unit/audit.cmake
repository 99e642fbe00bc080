# sagactl audit (tools/sagactl/audit.c) against crafted sagad databases and
# ledgers written by the real worker handlers, good and damaged.
if(TARGET sagactl_audit AND TARGET saga_worker_order AND TARGET saga_worker_inventory
   AND TARGET saga_worker_payment AND TARGET saga_worker_notification)
  saga_unit_test(test_audit
    SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_audit.c
    LIBS sagactl_audit saga_worker_order saga_worker_inventory saga_worker_payment saga_worker_notification)
  target_include_directories(test_audit PRIVATE ${CMAKE_SOURCE_DIR}/orchestrator/store)
  add_dependencies(test_audit sagactl)
  target_compile_definitions(test_audit PRIVATE SAGACTL_PATH="$<TARGET_FILE:sagactl>")
endif()

# common/saga_shard_files: listing sagad's data directory for sagactl audit.
saga_unit_test(test_shard_files SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_shard_files.c LIBS saga_core)
