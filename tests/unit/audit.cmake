# sagactl audit (tools/sagactl/audit.c) against crafted sagad databases and
# ledgers written by the real worker handlers, good and damaged
# (test_audit.c); which shard files it reads, one missing or several data
# directories (test_audit_sources.c). Both on test_audit_fixture.c.
if(TARGET sagactl_audit AND TARGET saga_worker_order AND TARGET saga_worker_inventory
   AND TARGET saga_worker_payment AND TARGET saga_worker_notification)
  saga_unit_test(test_audit
    SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_audit.c ${CMAKE_CURRENT_LIST_DIR}/test_audit_fixture.c
    LIBS sagactl_audit saga_worker_order saga_worker_inventory saga_worker_payment saga_worker_notification)
  saga_unit_test(test_audit_sources
    SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_audit_sources.c ${CMAKE_CURRENT_LIST_DIR}/test_audit_fixture.c
    LIBS sagactl_audit saga_worker_order saga_worker_inventory saga_worker_payment saga_worker_notification)
  foreach(t test_audit test_audit_sources) # both run the sagactl binary too
    target_include_directories(${t} PRIVATE ${CMAKE_SOURCE_DIR}/orchestrator/store)
    add_dependencies(${t} sagactl)
    target_compile_definitions(${t} PRIVATE SAGACTL_PATH="$<TARGET_FILE:sagactl>")
  endforeach()
endif()

# common/saga_shard_files: listing sagad's data directory for sagactl audit.
saga_unit_test(test_shard_files SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_shard_files.c LIBS saga_core)
