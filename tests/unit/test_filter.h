/* Lets ctest run one cmocka test per process: `test_x NAME` runs only the
 * test function NAME (see tests/unit/CMakeLists.txt). Include after cmocka.h. */
#ifndef SAGA_TEST_FILTER_H
#define SAGA_TEST_FILTER_H

static inline void saga_test_filter(int argc, char **argv) {
    if (argc > 1) cmocka_set_test_filter(argv[1]);
}

#endif
