# The fuzz targets' seed corpora (tests/fuzz/corpus/TARGET/, including every
# crash the fuzzers found) replayed without libFuzzer, in every build: the
# targets' invariants run as plain tests (scripts/fuzz does the fuzzing).
foreach(target fuzz_definition fuzz_template fuzz_messages fuzz_admin fuzz_changelog)
  add_executable(${target}_replay ${CMAKE_SOURCE_DIR}/tests/fuzz/${target}.c
                 ${CMAKE_SOURCE_DIR}/tests/fuzz/replay_main.c)
  if(target STREQUAL fuzz_admin)
    target_sources(${target}_replay PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/test_admin_fixture.c)
    target_include_directories(${target}_replay PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
    target_link_libraries(${target}_replay PRIVATE saga_admin saga_store PkgConfig::CURL)
  endif()
  if(target STREQUAL fuzz_changelog)
    target_include_directories(${target}_replay PRIVATE ${CMAKE_SOURCE_DIR}/orchestrator/store)
    target_link_libraries(${target}_replay PRIVATE saga_store)
  endif()
  target_link_libraries(${target}_replay PRIVATE saga_engine saga_core)
  # fuzz_messages and fuzz_admin load sagas/*.json
  target_compile_definitions(${target}_replay PRIVATE SAGA_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
  add_test(NAME ${target}_corpus
           COMMAND ${target}_replay ${CMAKE_SOURCE_DIR}/tests/fuzz/corpus/${target})
  set_tests_properties(${target}_corpus PROPERTIES LABELS unit TIMEOUT 120)
endforeach()

# What fuzz_messages and fuzz_admin found, as regression tests (the
# definition loader's and template engine's are in test_definition_regressions).
saga_unit_test(test_fuzz_regressions
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_fuzz_regressions.c ${CMAKE_CURRENT_SOURCE_DIR}/test_admin_fixture.c
  LIBS saga_admin PkgConfig::CURL)
