# Saga definitions (loader, registry, directory) and payload templates.
saga_unit_test(test_definition SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_definition.c
               ${CMAKE_CURRENT_SOURCE_DIR}/test_definition_fixture.c LIBS saga_engine)
# The hash, the registry, directory loading and allocation failure.
saga_unit_test(test_definition_registry SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_definition_registry.c
               ${CMAKE_CURRENT_SOURCE_DIR}/test_definition_fixture.c LIBS saga_engine)
# The invalid-definition corpus (tests/fixtures/definitions/invalid/NAME.json
# with NAME.expected): the loader's full error list, exactly.
saga_unit_test(test_definition_invalid SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_definition_invalid.c
               LIBS saga_engine)
# What the fuzz targets (tests/fuzz) found, as regression tests.
saga_unit_test(test_definition_regressions SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_definition_regressions.c
               LIBS saga_engine)
saga_unit_test(test_template SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_template.c LIBS saga_engine)

# The published JSON Schemas against the same fixtures. Needs python3 with
# jsonschema >= 4: Debian's python3-jsonschema, installed by scripts/deps, so
# Debian's interpreter is preferred over any other python3 on the PATH.
find_program(SAGA_PYTHON3 python3 PATHS /usr/bin NO_DEFAULT_PATH)
if(NOT SAGA_PYTHON3)
  find_program(SAGA_PYTHON3 python3 REQUIRED)
endif()
add_test(NAME test_definition_schemas
         COMMAND ${SAGA_PYTHON3} ${CMAKE_SOURCE_DIR}/tests/fixtures/definitions/check_schemas.py
                 ${CMAKE_SOURCE_DIR})
set_tests_properties(test_definition_schemas PROPERTIES LABELS unit TIMEOUT 60)

# `sagactl validate` over every example definition (sagas/*.json, globbed
# when the test runs): they must all be valid. More sagactl validate tests
# are in test_sagactl.c.
if(TARGET sagactl)
  add_test(NAME sagactl_validate_sagas
           COMMAND sh -c "\"$1\" validate \"$2\"/sagas/*.json" sh $<TARGET_FILE:sagactl> ${CMAKE_SOURCE_DIR})
  set_tests_properties(sagactl_validate_sagas PROPERTIES LABELS unit TIMEOUT 60)
endif()
