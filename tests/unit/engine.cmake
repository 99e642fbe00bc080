saga_unit_test(test_engine SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_engine.c
               ${CMAKE_CURRENT_SOURCE_DIR}/test_engine_fixture.c LIBS saga_engine)
saga_unit_test(test_engine_steps SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_engine_steps.c
               ${CMAKE_CURRENT_SOURCE_DIR}/test_engine_fixture.c LIBS saga_engine)
saga_unit_test(test_engine_limits SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_engine_limits.c
               ${CMAKE_CURRENT_SOURCE_DIR}/test_engine_fixture.c LIBS saga_engine)
saga_unit_test(test_messages SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_messages.c LIBS saga_engine)
saga_unit_test(test_store SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_store.c LIBS saga_store)
saga_unit_test(test_common SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_common.c LIBS saga_core)
saga_unit_test(test_transitions SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_transitions.c LIBS saga_engine)
saga_unit_test(test_flow SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_flow.c LIBS saga_engine)
saga_unit_test(test_json SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_json.c LIBS saga_core)
saga_unit_test(test_changelog SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_changelog.c
               ${CMAKE_CURRENT_SOURCE_DIR}/test_changelog_fixture.c LIBS saga_store)
saga_unit_test(test_changelog_apply SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_changelog_apply.c
               ${CMAKE_CURRENT_SOURCE_DIR}/test_changelog_fixture.c LIBS saga_store)
saga_unit_test(test_changelog_text SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_changelog_text.c LIBS saga_store)
saga_unit_test(test_reply_partition SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_reply_partition.c LIBS saga_engine)

# The pure engine's include boundary: orchestrator/engine/ (and the core
# headers) include only C11/POSIX headers, <jansson.h> and saga_core's
# headers, whose names come from saga_core's source list (common/CMakeLists.txt).
get_target_property(_core_sources saga_core SOURCES)
set(_core_headers "")
foreach(s ${_core_sources})
  get_filename_component(s ${s} NAME_WE)
  list(APPEND _core_headers ${s}.h)
endforeach()
add_test(NAME engine_includes
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/check_engine_includes.sh ${CMAKE_SOURCE_DIR} ${_core_headers})
set_tests_properties(engine_includes PROPERTIES LABELS unit TIMEOUT 60)
