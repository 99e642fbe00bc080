# Several sagad instances in one consumer group (issue 15): shards move on
# failover; the chaos short form. Its real twin runs in CI (core list).
saga_stack_test(it_cluster_failover test_cluster_failover.sh)
# The zombie (SIGSTOP past the session, then continued): Apache Kafka only,
# the dev-broker form skips (77).
saga_stack_test(it_cluster_zombie test_cluster_zombie.sh)
set_tests_properties(it_cluster_zombie PROPERTIES SKIP_RETURN_CODE 77)
# Operator commands through saga.control: redirected to the owner, applied
# after a failover.
saga_stack_test(it_cluster_control test_cluster_control.sh)
# Rolling restart and scale 3→1→3→1 under an open-loop load.
saga_stack_test(it_cluster_rolling test_cluster_rolling.sh)
# Lists and stats over every shard from any instance (gathered from the
# owners), scope=local, and a 503 naming the shards while an owner is gone.
saga_stack_test(it_cluster_lists test_cluster_lists.sh)
