# Engine simulation (randomized, seeded: SAGA_SIM_SEED reproduces a run) and replay tests.
saga_unit_test(test_engine_sim SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_engine_sim.c
               ${CMAKE_CURRENT_SOURCE_DIR}/test_engine_sim_checks.c
               ${CMAKE_CURRENT_SOURCE_DIR}/test_engine_sim_shapes.c LIBS saga_engine)
saga_unit_test(test_replay SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_replay.c LIBS saga_engine)
