# The dev broker (tools/sagabroker) with kcat, and scripts/stack's process
# handling with stand-in sagad/workers. Exit 77 = skipped (not built).
saga_stack_test(broker test_broker.sh)
set_tests_properties(broker PROPERTIES SKIP_RETURN_CODE 77)
# Issue 15 item 4: scripts/stack with SAGAD_INSTANCES=3 (kill-sagad,
# restart-sagad DIR K, the shared admin token, stack.env's ADMIN_URLS,
# SAGAD_K_PID, SAGA_DBS). Needs sagad's cluster mode (--instance-id, several
# instances in one group).
saga_stack_test(it_stack_instances test_stack_instances.sh)
