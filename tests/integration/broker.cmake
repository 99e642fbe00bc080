# The dev broker (tools/sagabroker) and scripts/stack, with kcat.
saga_stack_test(broker test_broker.sh)
