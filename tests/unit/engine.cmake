saga_unit_test(test_engine SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_engine.c LIBS saga_engine)
saga_unit_test(test_messages SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_messages.c LIBS saga_engine)
saga_unit_test(test_store SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_store.c LIBS saga_store)
saga_unit_test(test_common SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_common.c LIBS saga_common)
