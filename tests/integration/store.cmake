# Issue 13 (items 4, 8, 10): one sagad per database and per consumer group,
# timers after a stall wait for the replies already in Kafka, retention.
saga_stack_test(it_single_instance test_single_instance.sh)
saga_stack_test(it_stall_catchup test_stall_catchup.sh)
