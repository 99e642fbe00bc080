# The dev broker (tools/sagabroker) with kcat, and scripts/stack's process
# handling with stand-in sagad/workers. Exit 77 = skipped (not built).
saga_stack_test(broker test_broker.sh)
set_tests_properties(broker PROPERTIES SKIP_RETURN_CODE 77)
