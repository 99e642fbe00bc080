# Saga definitions (loader, registry, directory) and payload templates.
saga_unit_test(test_definition SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_definition.c LIBS saga_engine)
saga_unit_test(test_template SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_template.c LIBS saga_engine)
