# Several sagad instances in one consumer group (issue 15): shards move on
# failover; the chaos short form. Its real twin runs in CI (core list).
saga_stack_test(it_cluster_failover test_cluster_failover.sh)
