saga_stack_test(it_thousand_sagas test_thousand_sagas.sh)
saga_stack_test(it_crash_recovery test_crash_recovery.sh)
saga_stack_test(it_sigterm_drain test_sigterm_drain.sh)
saga_stack_test(it_failures_compensate test_failures_compensate.sh)
saga_stack_test(it_reload_versions test_reload_versions.sh)
saga_stack_test(it_bulkhead test_bulkhead.sh)
# The long crash test: slow, but run by .ci/run (ctest runs every label).
saga_stack_test(it_crash_chaos test_crash_chaos.sh)
set_tests_properties(it_crash_chaos PROPERTIES LABELS "integration;slow" TIMEOUT 900)
