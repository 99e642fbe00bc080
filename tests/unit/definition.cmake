# Saga definitions (loader, registry, directory) and payload templates.
saga_unit_test(test_definition SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_definition.c LIBS saga_engine)
saga_unit_test(test_template SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_template.c LIBS saga_engine)

# The published JSON Schemas against the same fixtures (needs python3 with
# jsonschema >= 4, Debian package python3-jsonschema; skipped without it).
find_program(SAGA_PYTHON3 python3)
if(SAGA_PYTHON3)
  execute_process(COMMAND ${SAGA_PYTHON3} -c "import jsonschema; jsonschema.Draft202012Validator"
                  RESULT_VARIABLE _saga_jsonschema_rc OUTPUT_QUIET ERROR_QUIET)
endif()
if(SAGA_PYTHON3 AND _saga_jsonschema_rc EQUAL 0)
  add_test(NAME test_definition_schemas
           COMMAND ${SAGA_PYTHON3} ${CMAKE_SOURCE_DIR}/tests/fixtures/definitions/check_schemas.py
                   ${CMAKE_SOURCE_DIR})
  set_tests_properties(test_definition_schemas PROPERTIES LABELS unit TIMEOUT 60)
else()
  message(STATUS "python3 jsonschema not found: test_definition_schemas skipped (apt-get install python3-jsonschema)")
endif()
