# sagabench's figures (tools/sagabench/bench.c).
saga_unit_test(test_bench SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_bench.c LIBS sagabench_figures)
